//! Services: registration updates and client secrets.

use crate::city::City;
use serde_json::json;
use tsunagu_core::Code;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_platform::services::{RegistrationUpdate, parse_jwks};

#[tokio::test]
async fn an_application_without_a_signing_key_is_refused() {
    let city = City::new().await;
    let key = SigningKey::generate(Alg::Es256).unwrap();
    let mut jwk = key.published_jwk().to_value();
    jwk["use"] = json!("enc");
    let application = tsunagu_platform::services::parse_application(
        &serde_json::to_vec(&json!({
            "name": "library", "organization": "city", "contact": "c@example.jp", "kind": "provider",
            "jwks": {"keys": [jwk]}, "endpoint": "http://127.0.0.1:9/redeem",
            "offers": [{"item": "loans", "title_ja": "貸出記録", "data_class": "limited"}],
            "security": {"iso27001": true, "incident_contact": "soc@example.jp"},
        }))
        .unwrap(),
    )
    .unwrap();
    let refusal = city.platform.services.apply(application).await.unwrap_err();
    assert_eq!(refusal.code, Code::ApplicationInvalid);
    assert!(refusal.detail.contains("signing key"), "{refusal:?}");
    // A private key is not even an application.
    let private = tsunagu_platform::services::parse_application(
        br#"{"name": "x", "organization": "x", "contact": "x", "kind": "provider",
             "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "c"}]}}"#,
    )
    .unwrap_err();
    assert_eq!(private.code, Code::ApplicationInvalid);
}

#[tokio::test]
async fn a_service_replaces_its_keys_and_only_changes_are_recorded() {
    let city = City::new().await;
    let services = &city.platform.services;
    let id = &city.consumer.id;
    let new_key = SigningKey::generate(Alg::Es256).unwrap();
    let jwks = parse_jwks(
        &json!({"keys": [city.consumer.key.published_jwk().to_value(), new_key.published_jwk().to_value()]})
            .to_string(),
    )
    .unwrap();
    let update = RegistrationUpdate {
        jwks: Some(jwks),
        ..RegistrationUpdate::default()
    };
    let changed = services.update_registration(id, &update).await.unwrap();
    assert_eq!(changed.changed, ["jwks"]);
    assert_eq!(changed.kids.len(), 2);
    let again = services.update_registration(id, &update).await.unwrap();
    assert!(again.changed.is_empty(), "nothing changed the second time");
    // The new key authenticates the service at once.
    let entry = services.get(id).await.unwrap();
    assert!(
        entry
            .signing_key(id.as_str(), Some(new_key.kid()))
            .is_some()
    );

    let only_enc = {
        let mut jwk = new_key.published_jwk().to_value();
        jwk["use"] = json!("enc");
        parse_jwks(&json!({"keys": [jwk]}).to_string()).unwrap()
    };
    let refusal = services
        .update_registration(
            id,
            &RegistrationUpdate {
                jwks: Some(only_enc),
                ..RegistrationUpdate::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::ApplicationInvalid);
    assert_eq!(
        parse_jwks("{").unwrap_err().code,
        Code::ApplicationInvalid,
        "not JSON"
    );
}

#[tokio::test]
async fn only_a_client_secret_basic_service_has_a_secret_to_rotate() {
    let city = City::new().await;
    let refusal = city
        .platform
        .services
        .rotate_client_secret(&city.consumer.id)
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::InvalidRequest);
    let unknown = city
        .platform
        .services
        .rotate_client_secret(&"svc_nobody".into())
        .await
        .unwrap_err();
    assert_eq!(unknown.code, Code::UnknownService);
}
