//! Governance: the committee's signed votes and the quorum.

use crate::city::City;
use serde_json::json;
use tsunagu_core::Code;
use tsunagu_core::service::ServiceStatus;
use tsunagu_crypto::keys::{Alg, SigningKey};

fn application() -> serde_json::Value {
    let key = SigningKey::generate(Alg::Es256).unwrap();
    json!({
        "name": "library", "organization": "city", "contact": "c@example.jp", "kind": "provider",
        "jwks": {"keys": [key.published_jwk().to_value()]}, "endpoint": "http://127.0.0.1:9/redeem",
        "offers": [{"item": "loans", "title_ja": "貸出記録", "data_class": "limited"}],
        "security": {"iso27001": true, "incident_contact": "soc@example.jp"},
    })
}

#[tokio::test]
async fn a_service_is_approved_when_the_quorum_has_voted_for_it() {
    let city = City::new().await;
    let id = city.apply(&application()).await;
    let governance = &city.platform.governance;
    let [chair, second] = &city.members[..] else {
        unreachable!()
    };
    let one = governance
        .vote(&id, &chair.vote(&id, "approve"))
        .await
        .unwrap();
    assert_eq!(one.status, ServiceStatus::PendingReview);
    assert_eq!(one.votes.len(), 1);
    assert_eq!(one.quorum, 2);
    let two = governance
        .vote(&id, &second.vote(&id, "approve"))
        .await
        .unwrap();
    assert_eq!(two.status, ServiceStatus::Approved);
}

#[tokio::test]
async fn a_vote_is_refused_unless_a_member_signed_it_for_this_service() {
    let city = City::new().await;
    let id = city.apply(&application()).await;
    let other = city.apply(&application()).await;
    let governance = &city.platform.governance;
    let chair = &city.members[0];
    let stranger = SigningKey::generate(Alg::Es256).unwrap();
    let forged = governance
        .vote(&id, &chair.vote_with_key(&stranger, &id, "approve"))
        .await
        .unwrap_err();
    assert_eq!(forged.code, Code::SignatureInvalid);
    let elsewhere = governance
        .vote(&id, &chair.vote(&other, "approve"))
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code, Code::InvalidRequest);
    let unsigned = governance.vote(&id, "a.b").await.unwrap_err();
    assert_eq!(unsigned.code, Code::InvalidRequest);
}

/// The committee console: the vote must be the signed-in member's, and carry the decision of
/// the button pressed.
#[tokio::test]
async fn a_console_vote_names_the_signed_in_member_and_the_button_pressed() {
    let city = City::new().await;
    let id = city.apply(&application()).await;
    let governance = &city.platform.governance;
    let [chair, second] = &city.members[..] else {
        unreachable!()
    };
    // Signed by another member than the one signed in.
    let theirs = governance
        .vote_as(&chair.id, "approve", &id, &second.vote(&id, "approve"))
        .await
        .unwrap_err();
    assert_eq!(theirs.code, Code::Forbidden);
    // A vote without a member id: `jws::sign` names the key by its thumbprint.
    let unnamed = tsunagu_crypto::jws::sign_json(
        &chair.key,
        None,
        &json!({"service_id": id, "decision": "approve", "comment": "", "issued_at": crate::city::now(), "nonce": "n1"}),
    )
    .unwrap();
    let refused = governance
        .vote_as(&chair.id, "approve", &id, &unnamed)
        .await
        .unwrap_err();
    assert_eq!(refused.code, Code::Forbidden);
    // The signed decision differs from the button.
    let mismatch = governance
        .vote_as(&chair.id, "reject", &id, &chair.vote(&id, "approve"))
        .await
        .unwrap_err();
    assert_eq!(mismatch.code, Code::InvalidRequest);
    // Nothing was recorded by the refusals; the right vote counts.
    let cast = governance
        .vote_as(&chair.id, "approve", &id, &chair.vote(&id, "approve"))
        .await
        .unwrap();
    assert_eq!(cast.votes.len(), 1);
    assert_eq!(cast.votes[0].member, chair.id);
}

#[tokio::test]
async fn error_findings_block_approval_until_each_vote_overrides_them() {
    // Defect 4: docs/exchange.md says error findings block approval; the committee could
    // approve over them without a word.
    let city = City::new().await;
    let mut app = application();
    app["security"]["incident_contact"] = json!("");
    let id = city.apply(&app).await;
    let governance = &city.platform.governance;
    let [chair, second] = &city.members[..] else {
        unreachable!()
    };
    let plain = governance
        .vote(&id, &chair.vote(&id, "approve"))
        .await
        .unwrap_err();
    assert_eq!(plain.code, Code::FindingsNotOverridden);
    assert!(
        plain.detail.contains("incident_contact_missing"),
        "{}",
        plain.detail
    );
    let stray = governance
        .vote(
            &id,
            &chair.approve_over(&id, &["incident_contact_missing", "made_up"]),
        )
        .await
        .unwrap_err();
    assert_eq!(stray.code, Code::InvalidRequest);

    let one = governance
        .vote(&id, &chair.approve_over(&id, &["incident_contact_missing"]))
        .await
        .unwrap();
    assert_eq!(one.status, ServiceStatus::PendingReview);
    let two = governance
        .vote(
            &id,
            &second.approve_over(&id, &["incident_contact_missing"]),
        )
        .await
        .unwrap();
    assert_eq!(two.status, ServiceStatus::Approved);

    // The approval leaf records what was overridden.
    let approval = city
        .ledger_texts()
        .await
        .into_iter()
        .find(|t| t.contains("service.status_changed") && t.contains(id.as_str()))
        .expect("an approval leaf");
    assert!(
        approval.contains(r#""overridden":["incident_contact_missing"]"#),
        "{approval}"
    );
}

#[tokio::test]
async fn residents_see_the_findings_a_service_was_approved_over() {
    let city = City::new().await;
    let key = SigningKey::generate(Alg::Es256).unwrap();
    let mut app = crate::city::application("consumer", &key, Some(&city.provider.id));
    app["name"] = json!("approved over findings");
    app["security"]["incident_contact"] = json!("");
    let id = city.apply(&app).await;
    for m in &city.members {
        city.platform
            .governance
            .vote(&id, &m.approve_over(&id, &["incident_contact_missing"]))
            .await
            .unwrap();
    }
    let hanako = city.resident(Some("前橋　花子")).await;
    let offers = city
        .platform
        .consents
        .offers(&hanako.session)
        .await
        .unwrap();
    let offer = offers
        .iter()
        .find(|o| o.consumer.service_id == id)
        .expect("the new consumer's offer");
    let codes: Vec<&str> = offer
        .approved_over
        .iter()
        .map(|f| f.code.as_str())
        .collect();
    assert_eq!(codes, ["incident_contact_missing"]);
    let clean = offers
        .iter()
        .find(|o| o.consumer.service_id == city.consumer.id)
        .unwrap();
    assert!(
        clean.approved_over.is_empty(),
        "a clean application shows nothing"
    );
}

fn accept_obligations(key: &SigningKey, hash: &str) -> String {
    let mut header = serde_json::Map::new();
    header.insert("kid".into(), json!(key.kid()));
    tsunagu_crypto::jws::sign_with_header(
        key,
        header,
        &tsunagu_crypto::jcs::to_vec(&json!({ "obligations_sha256": hash })).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_approval_records_whether_the_service_signed_the_obligations() {
    // Defect 5: the approval leaf recorded the obligations as accepted though the service
    // never saw or signed them.
    let city = City::new().await;
    let hash = tsunagu_platform::services::obligations_sha256();
    let key = SigningKey::generate(Alg::Es256).unwrap();
    let mut signed = application();
    signed["jwks"] = json!({"keys": [key.published_jwk().to_value()]});
    signed["obligations_acceptance"] = json!(accept_obligations(&key, &hash));
    let applied = city
        .platform
        .services
        .apply(
            tsunagu_platform::services::parse_application(&serde_json::to_vec(&signed).unwrap())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(
        applied
            .lint
            .iter()
            .all(|f| f.code != "obligations_not_accepted"),
        "{:?}",
        applied.lint
    );
    let accepted = applied.service_id;
    let unsigned = city.apply(&application()).await;
    let entry = city
        .platform
        .directory
        .get(&unsigned)
        .await
        .unwrap()
        .unwrap();
    assert!(
        entry
            .findings()
            .iter()
            .any(|f| f.code == "obligations_not_accepted"
                && f.severity == tsunagu_core::lint::Severity::Warning),
        "without the signature the lint warns"
    );

    // A signature by another key, or over other obligations, is refused outright.
    let stranger = SigningKey::generate(Alg::Es256).unwrap();
    for bad in [
        accept_obligations(&stranger, &hash),
        accept_obligations(&key, &"0".repeat(64)),
        "not-a-jws".to_owned(),
    ] {
        signed["obligations_acceptance"] = json!(bad);
        let refused = city
            .platform
            .services
            .apply(
                tsunagu_platform::services::parse_application(
                    &serde_json::to_vec(&signed).unwrap(),
                )
                .unwrap(),
            )
            .await
            .unwrap_err();
        assert_eq!(refused.code, Code::ApplicationInvalid, "{}", refused.detail);
        assert!(
            refused.detail.contains("obligations_acceptance"),
            "{}",
            refused.detail
        );
    }

    city.approve(&accepted).await;
    city.approve(&unsigned).await;
    let texts = city.ledger_texts().await;
    let approval = |id: &tsunagu_core::ServiceId| {
        texts
            .iter()
            .find(|t| t.contains("service.status_changed") && t.contains(id.as_str()))
            .cloned()
            .expect("an approval leaf")
    };
    assert!(approval(&accepted).contains(r#""obligations_accepted":true"#));
    assert!(approval(&unsigned).contains(r#""obligations_accepted":false"#));
}
