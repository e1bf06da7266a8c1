//! "Log in with tsunagu": the provider's rules, called as the pages and the token endpoint
//! call them.

use crate::city::{City, URL, now};
use serde_json::json;
use tsunagu_core::consent::ConsentStatus;
use tsunagu_core::oidc::AuthorizeParams;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::{b64, jws, random, sha256};
use tsunagu_platform::oidc::{AuthorizeOutcome, ClientAuthHeader, DpopHeader, TOKEN_PATH};

const REDIRECT: &str = "https://rp.example.jp/cb";

/// A relying party asking for the name of verified residents.
pub(crate) async fn relying_party(city: &City) -> (tsunagu_core::ServiceId, SigningKey) {
    let key = SigningKey::generate(Alg::Es256).unwrap();
    let id = city
        .apply(&json!({
            "name": "会員サイト", "organization": "前橋市", "contact": "rp@example.jp",
            "kind": "consumer", "jwks": {"keys": [key.published_jwk().to_value()]},
            "redirect_uris": [REDIRECT],
            "purposes": [{"id": "login", "title_ja": "会員登録", "title_en": "Membership",
                "description_ja": "会員証の発行のため、氏名を受け取ります。",
                "description_en": "We receive your name to issue your membership card.",
                "provider": "tsunagu", "items": ["name"], "uses": {"name": "会員証に印字するため"},
                "retention_days": 365, "legal_basis": "consent"}],
            "security": {"iso27001": true, "incident_contact": "soc@example.jp"},
        }))
        .await;
    city.approve(&id).await;
    (id, key)
}

pub(crate) fn params(client: &str, verifier: &str) -> AuthorizeParams {
    AuthorizeParams {
        response_type: Some("code".into()),
        client_id: Some(client.into()),
        redirect_uri: Some(REDIRECT.into()),
        scope: Some("openid profile".into()),
        state: Some("s1".into()),
        nonce: Some("n1".into()),
        code_challenge: Some(b64::url_encode(sha256(verifier.as_bytes()))),
        code_challenge_method: Some("S256".into()),
        ..AuthorizeParams::default()
    }
}

pub(crate) fn query(url: &str, name: &str) -> Option<String> {
    let (_, q) = url.split_once('?')?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

/// The form of a token request for `code`, with a `private_key_jwt` client assertion.
pub(crate) fn code_grant(
    code: &str,
    verifier: &str,
    client: &str,
    key: &SigningKey,
) -> Vec<(String, String)> {
    [
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", REDIRECT.to_owned()),
        ("code_verifier", verifier.to_owned()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
        ("client_assertion", client_assertion(client, key)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn client_assertion(client: &str, key: &SigningKey) -> String {
    let t = now();
    jws::sign_json(
        key,
        Some("JWT"),
        &json!({"iss": client, "sub": client, "aud": format!("{URL}{TOKEN_PATH}"),
                "jti": random::token(16).unwrap(), "iat": t, "exp": t + 60}),
    )
    .unwrap()
}

#[tokio::test]
async fn a_signed_consent_buys_an_id_token_whose_claims_stop_when_it_is_revoked() {
    let city = City::new().await;
    let (client, key) = relying_party(&city).await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let oidc = &city.platform.oidc;
    let verifier = random::token(32).unwrap();

    // Without a session: the login page.
    let outcome = oidc
        .authorize(params(client.as_str(), &verifier), None)
        .await
        .unwrap();
    assert!(matches!(outcome, AuthorizeOutcome::Login(_)), "{outcome:?}");

    // Signed in: the consent page, with the exact payload to sign.
    let outcome = oidc
        .authorize(params(client.as_str(), &verifier), Some(&hanako.session))
        .await
        .unwrap();
    let AuthorizeOutcome::Consent(view) = outcome else {
        panic!("expected the consent page: {outcome:?}");
    };
    assert_eq!(view.client_id, client);
    let items: Vec<&str> = view.items.iter().map(|i| i.item.as_str()).collect();
    assert_eq!(items, ["name"]);
    let payload: serde_json::Value = serde_json::from_str(&view.payload).unwrap();
    let consent = hanako.sign(&payload);
    let outcome = oidc
        .consent_decision(&hanako.session, &view.request_id, "approve", Some(&consent))
        .await
        .unwrap();
    let AuthorizeOutcome::Redirect(to) = outcome else {
        panic!("expected a redirect with a code: {outcome:?}");
    };
    assert!(to.starts_with(REDIRECT), "{to}");
    assert_eq!(query(&to, "state").as_deref(), Some("s1"));
    let code = query(&to, "code").expect("a code");

    let tokens = oidc
        .token(
            &ClientAuthHeader::None,
            &DpopHeader::Absent,
            code_grant(&code, &verifier, client.as_str(), &key),
        )
        .await
        .unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    let id_token = jws::parse(&tokens.id_token).unwrap();
    let claims: serde_json::Value = id_token.payload_as().unwrap();
    assert_eq!(claims["aud"], client.as_str());
    assert_eq!(claims["nonce"], "n1");
    assert_eq!(claims["acr"], "urn:tsunagu:acr:verified");
    let sub = claims["sub"].as_str().unwrap().to_owned();
    assert_eq!(
        sub,
        city.platform
            .keys
            .pairwise_id(&client, hanako.account())
            .as_str(),
        "the sub is the resident's pairwise id for this service"
    );

    let bearer = format!("Bearer {}", tokens.access_token);
    let info = oidc
        .userinfo(Some(&bearer), &DpopHeader::Absent, "GET")
        .await
        .unwrap();
    assert_eq!(info.sub.as_str(), sub);
    assert_eq!(info.claims.name.as_deref(), Some("前橋　花子"));
    assert_eq!(info.claims.birthdate, None, "only what was consented to");

    // Revoking the consent stops the claims at the next call.
    let record = city
        .platform
        .consents
        .list(&hanako.session)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.consumer == client)
        .unwrap();
    assert_eq!(record.status, ConsentStatus::Active);
    city.revoke(&hanako, &record.consent_id).await.unwrap();
    let after = oidc
        .userinfo(Some(&bearer), &DpopHeader::Absent, "GET")
        .await
        .unwrap();
    assert_eq!(after.sub.as_str(), sub);
    assert_eq!(
        after.claims.name, None,
        "no claim without a consent in force"
    );
}

#[tokio::test]
async fn a_code_used_twice_revokes_what_it_bought() {
    let city = City::new().await;
    let (client, key) = relying_party(&city).await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let oidc = &city.platform.oidc;
    let verifier = random::token(32).unwrap();
    let AuthorizeOutcome::Consent(view) = oidc
        .authorize(params(client.as_str(), &verifier), Some(&hanako.session))
        .await
        .unwrap()
    else {
        panic!("expected the consent page");
    };
    let payload: serde_json::Value = serde_json::from_str(&view.payload).unwrap();
    let AuthorizeOutcome::Redirect(to) = oidc
        .consent_decision(
            &hanako.session,
            &view.request_id,
            "approve",
            Some(&hanako.sign(&payload)),
        )
        .await
        .unwrap()
    else {
        panic!("expected a redirect");
    };
    let code = query(&to, "code").unwrap();
    let tokens = oidc
        .token(
            &ClientAuthHeader::None,
            &DpopHeader::Absent,
            code_grant(&code, &verifier, client.as_str(), &key),
        )
        .await
        .unwrap();
    let again = oidc
        .token(
            &ClientAuthHeader::None,
            &DpopHeader::Absent,
            code_grant(&code, &verifier, client.as_str(), &key),
        )
        .await
        .unwrap_err();
    assert_eq!(again.error, "invalid_grant");
    let bearer = format!("Bearer {}", tokens.access_token);
    let revoked = oidc
        .userinfo(Some(&bearer), &DpopHeader::Absent, "GET")
        .await
        .unwrap_err();
    assert_eq!(revoked.error, "invalid_token");
}

/// docs/oidc.md: a provisional ID logs in but is never asked for consent and gets no
/// identity claims; the ID token's `acr` says which.
#[tokio::test]
async fn a_provisional_id_logs_in_without_consent_and_without_claims() {
    let city = City::new().await;
    let (client, key) = relying_party(&city).await;
    let provisional = city.resident(None).await;
    let oidc = &city.platform.oidc;
    // A code at once (no consent page), redeemed for tokens.
    let tokens = tokens_for(&city, &client, &key, &provisional.session).await;
    let claims: serde_json::Value = jws::parse(&tokens.id_token).unwrap().payload_as().unwrap();
    assert_eq!(claims["acr"], "urn:tsunagu:acr:provisional");
    assert!(claims.get("name").is_none(), "{claims}");
    let info = oidc
        .userinfo(
            Some(&format!("Bearer {}", tokens.access_token)),
            &DpopHeader::Absent,
            "GET",
        )
        .await
        .unwrap();
    assert_eq!(info.claims.name, None);
}

#[tokio::test]
async fn an_unregistered_redirect_uri_is_shown_not_followed() {
    let city = City::new().await;
    let (client, _) = relying_party(&city).await;
    let mut p = params(client.as_str(), "v");
    p.redirect_uri = Some("https://evil.example/cb".into());
    let outcome = city.platform.oidc.authorize(p, None).await.unwrap();
    assert!(
        matches!(outcome, AuthorizeOutcome::Show { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_token_request_names_its_client_and_proves_it() {
    let city = City::new().await;
    let (client, _) = relying_party(&city).await;
    let stranger = SigningKey::generate(Alg::Es256).unwrap();
    let pairs = vec![
        ("grant_type".to_owned(), "authorization_code".to_owned()),
        ("code".to_owned(), "x".to_owned()),
        (
            "client_assertion_type".to_owned(),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
        (
            "client_assertion".to_owned(),
            client_assertion(client.as_str(), &stranger),
        ),
    ];
    let err = city
        .platform
        .oidc
        .token(&ClientAuthHeader::None, &DpopHeader::Absent, pairs)
        .await
        .unwrap_err();
    assert_eq!(err.error, "invalid_client");
    let err = city
        .platform
        .oidc
        .token(&ClientAuthHeader::None, &DpopHeader::Absent, vec![])
        .await
        .unwrap_err();
    assert_eq!(err.error, "invalid_client");
}

/// `resident` logs in to the relying party and consents to its name: the token set.
async fn logged_in(
    city: &City,
    client: &tsunagu_core::ServiceId,
    key: &SigningKey,
    resident: &crate::city::Resident,
) -> tsunagu_platform::oidc::TokenSet {
    let oidc = &city.platform.oidc;
    let verifier = random::token(32).unwrap();
    let to = match oidc
        .authorize(params(client.as_str(), &verifier), Some(&resident.session))
        .await
        .unwrap()
    {
        AuthorizeOutcome::Consent(view) => {
            let payload: serde_json::Value = serde_json::from_str(&view.payload).unwrap();
            let AuthorizeOutcome::Redirect(to) = oidc
                .consent_decision(
                    &resident.session,
                    &view.request_id,
                    "approve",
                    Some(&resident.sign(&payload)),
                )
                .await
                .unwrap()
            else {
                panic!("expected a redirect");
            };
            to
        }
        // Consented before: straight back to the client.
        AuthorizeOutcome::Redirect(to) => to,
        _ => panic!("expected the consent page or a redirect"),
    };
    let code = query(&to, "code").expect("a code");
    oidc.token(
        &ClientAuthHeader::None,
        &DpopHeader::Absent,
        code_grant(&code, &verifier, client.as_str(), key),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn no_claim_and_no_token_for_a_resident_whose_card_was_revoked() {
    // After a move the card certificate is revoked and the address held is stale: the
    // relying party gets no userinfo and no refreshed tokens until the resident re-proofs.
    let city = City::new().await;
    let (client, key) = relying_party(&city).await;
    let mut hanako = city.resident(Some("前橋　花子")).await;
    let tokens = logged_in(&city, &client, &key, &hanako).await;
    let oidc = &city.platform.oidc;
    let bearer = format!("Bearer {}", tokens.access_token);
    oidc.userinfo(Some(&bearer), &DpopHeader::Absent, "GET")
        .await
        .unwrap();

    let old = hanako.card.take().unwrap();
    city.revoke_card(&old).await;
    let refused = oidc
        .userinfo(Some(&bearer), &DpopHeader::Absent, "GET")
        .await
        .unwrap_err();
    assert_eq!(refused.code, Some(tsunagu_core::Code::ReproofRequired));
    assert_eq!(refused.error, "invalid_token");
    let refresh: Vec<(String, String)> = [
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", tokens.refresh_token.clone()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
        ("client_assertion", client_assertion(client.as_str(), &key)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let refused = oidc
        .token(&ClientAuthHeader::None, &DpopHeader::Absent, refresh)
        .await
        .unwrap_err();
    assert_eq!(refused.code, Some(tsunagu_core::Code::ReproofRequired));
    assert_eq!(refused.error, "invalid_grant");
}

fn refresh_grant(
    client: &tsunagu_core::ServiceId,
    key: &SigningKey,
    refresh_token: &str,
) -> Vec<(String, String)> {
    [
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token.to_owned()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
        ("client_assertion", client_assertion(client.as_str(), key)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[tokio::test]
async fn revoking_a_device_ends_the_logins_it_started() {
    // Defect 7: a relying party that logged the resident in from a lost device kept
    // refreshing tokens and reading name and address after the device was revoked.
    let city = City::new().await;
    let (client, key) = relying_party(&city).await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let tokens = logged_in(&city, &client, &key, &hanako).await;
    let oidc = &city.platform.oidc;
    let logins = oidc.logins(&hanako.session).await.unwrap();
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0].client_id, client);
    assert_eq!(logins[0].device_id, hanako.session.device_id);

    let revoked = city
        .platform
        .identity
        .revoke_device(&hanako.session, &hanako.session.device_id)
        .await
        .unwrap();
    assert_eq!(
        revoked.ended_logins.len(),
        1,
        "the resident is told what it logs out"
    );
    assert_eq!(revoked.ended_logins[0].client_id, client);
    assert_eq!(revoked.ended_logins[0].grant_id, logins[0].grant_id);

    let bearer = format!("Bearer {}", tokens.access_token);
    let refused = oidc
        .userinfo(Some(&bearer), &DpopHeader::Absent, "GET")
        .await
        .unwrap_err();
    assert_eq!(refused.error, "invalid_token");
    let refused = oidc
        .token(
            &ClientAuthHeader::None,
            &DpopHeader::Absent,
            refresh_grant(&client, &key, &tokens.refresh_token),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.error, "invalid_grant");
    let grant = city
        .platform
        .oidc
        .end_login(&hanako.session, &logins[0].grant_id)
        .await
        .unwrap();
    assert_eq!(
        grant.revoked_reason.as_deref(),
        Some(tsunagu_platform::identity::DEVICE_REVOKED_REASON),
        "ending an ended login answers as the first time"
    );
    let page = city
        .platform
        .history
        .page(&hanako.session, None, 50)
        .await
        .unwrap();
    assert!(
        page.items
            .iter()
            .any(|i| i.kind() == Some("oidc.grant_revoked")
                && i.reason().as_deref() == Some("device revoked")),
        "her history says the login ended with the device"
    );
}

#[tokio::test]
async fn a_resident_ends_one_service_login_on_its_own() {
    let city = City::new().await;
    let (client, key) = relying_party(&city).await;
    let taro = city.resident(Some("高崎　太郎")).await;
    let other = city.resident(Some("前橋　花子")).await;
    let first = logged_in(&city, &client, &key, &taro).await;
    let second = logged_in(&city, &client, &key, &taro).await;
    let oidc = &city.platform.oidc;
    let logins = oidc.logins(&taro.session).await.unwrap();
    assert_eq!(logins.len(), 2, "each login is its own grant");
    assert!(oidc.logins(&other.session).await.unwrap().is_empty());

    // Another resident cannot end it, nor learn that it exists.
    let refused = oidc
        .end_login(&other.session, &logins[0].grant_id)
        .await
        .unwrap_err();
    assert_eq!(refused.code, tsunagu_core::Code::NotFound);

    // Ending one login stops its tokens; the other keeps working.
    let ended = oidc
        .end_login(&taro.session, &logins[0].grant_id)
        .await
        .unwrap();
    assert!(ended.revoked_at.is_some());
    let mut answers = Vec::new();
    for tokens in [&first, &second] {
        answers.push(
            oidc.userinfo(
                Some(&format!("Bearer {}", tokens.access_token)),
                &DpopHeader::Absent,
                "GET",
            )
            .await
            .map_err(|e| e.error),
        );
    }
    assert_eq!(
        answers.iter().filter(|a| a.is_err()).count(),
        1,
        "exactly the ended login stops: {answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|a| a.as_ref().err() == Some(&"invalid_token"))
    );
    let left = oidc.logins(&taro.session).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].grant_id, logins[1].grant_id);
}

/// A provisional resident's code flow to the end: the token response.
async fn tokens_for(
    city: &City,
    client: &tsunagu_core::ServiceId,
    key: &SigningKey,
    session: &tsunagu_platform::identity::Session,
) -> tsunagu_platform::oidc::TokenSet {
    let verifier = random::token(32).unwrap();
    let outcome = city
        .platform
        .oidc
        .authorize(params(client.as_str(), &verifier), Some(session))
        .await
        .unwrap();
    let AuthorizeOutcome::Redirect(to) = outcome else {
        panic!("expected a code at once: {outcome:?}");
    };
    let code = query(&to, "code").expect("a code");
    city.platform
        .oidc
        .token(
            &ClientAuthHeader::None,
            &DpopHeader::Absent,
            code_grant(&code, &verifier, client.as_str(), key),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn an_id_token_signed_before_a_signing_rotation_still_verifies_and_later_ones_carry_the_new_key()
 {
    let city = City::with(|c| {
        c.keys.refresh_seconds = 1;
        c.keys.publish_ahead_seconds = 1;
    })
    .await;
    let (client, key) = relying_party(&city).await;
    let resident = city.resident(None).await;
    let before = tokens_for(&city, &client, &key, &resident.session).await;
    let old_kid = jws::parse(&before.id_token).unwrap().kid.unwrap();

    let admin = tsunagu_platform::rotation::KeyAdmin::of(&city.platform);
    let rotated = admin.rotate_signing(now()).await.unwrap();
    while now() < rotated.activate_at {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let after = tokens_for(&city, &client, &key, &resident.session).await;
    let new_kid = jws::parse(&after.id_token).unwrap().kid.unwrap();
    assert_eq!(new_kid, rotated.key);
    assert_ne!(new_kid, old_kid);

    // A relying party verifies both with the published keys, as it fetches them.
    let jwks = city.platform.keys.jwks();
    for (token, kid) in [(&before.id_token, &old_kid), (&after.id_token, &new_kid)] {
        jws::parse(token)
            .unwrap()
            .verify(jwks.find(kid).expect("published"))
            .unwrap();
    }
    // The access token issued before the rotation still reads the userinfo.
    let info = city
        .platform
        .oidc
        .userinfo(
            Some(&format!("Bearer {}", before.access_token)),
            &DpopHeader::Absent,
            "GET",
        )
        .await
        .unwrap();
    assert_eq!(info.claims.name, None);
    // …and the old ID token is still a valid `id_token_hint` at the end-session endpoint.
    let hint =
        std::collections::HashMap::from([("id_token_hint".to_owned(), before.id_token.clone())]);
    let outcome = city.platform.oidc.logout(&hint, None, false).await.unwrap();
    assert!(
        matches!(outcome, tsunagu_platform::oidc::LogoutOutcome::Done { .. }),
        "{outcome:?}"
    );
}
