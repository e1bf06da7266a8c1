//! What the residents' rights change in the platform (SPEC §9): a suspension or a stop of
//! provision refuses every consent-based ticket with `suspended_by_resident` while a
//! standing legal-basis rule still provides; neither releases identity claims; an
//! erasure leaves an account that cannot log in, without attributes, devices or grants, and
//! tells each service through the consent feed.

use crate::city::{City, Service, application, now};
use crate::oidc::{params, query, relying_party};
use serde_json::json;
use tsunagu_core::identity::Restriction;
use tsunagu_core::{Code, PurposeId};
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::random;
use tsunagu_platform::exchange::TicketRequest;
use tsunagu_platform::oidc::{AuthorizeOutcome, ClientAuthHeader, DpopHeader};
use tsunagu_store::Commit;

async fn restrict(city: &City, account: &tsunagu_core::AccountId, to: Restriction) {
    let change = city
        .platform
        .restriction_change(account, to, now())
        .await
        .unwrap()
        .expect("a change");
    city.platform
        .committer
        .commit(Commit::new().change(change))
        .await
        .unwrap();
}

/// A consumer with a vital-interest rule for `allergy`, approved.
async fn paramedics(city: &City) -> Service {
    let key = SigningKey::generate(Alg::Es256).unwrap();
    let mut app = application("consumer", &key, Some(&city.provider.id));
    app["purposes"] = json!([{"id": "emergency", "title_ja": "救急時のアレルギー確認", "title_en": "Allergies in an emergency",
        "description_ja": "救急隊が搬送中の投薬で事故を起こさないよう、学校に登録された食物アレルギーを確認します。",
        "description_en": "Paramedics check the food allergies the school holds so that no medication harms the patient.",
        "provider": city.provider.id, "items": ["allergy"], "uses": {"allergy": "搬送中の投薬を安全にするため"},
        "retention_days": 30, "legal_basis": "vital_interest",
        "citation": "個人情報保護法第27条第1項第2号(人の生命・身体の保護)"}]);
    let id = city.apply(&app).await;
    city.approve(&id).await;
    Service { id, key }
}

#[tokio::test]
async fn a_suspension_or_a_stop_of_provision_refuses_consent_tickets_while_a_rule_still_provides() {
    let city = City::new().await;
    let fire = paramedics(&city).await;
    let hanako = city.resident(Some("前橋　花子")).await;
    city.consented(&hanako, &["allergy"]).await;
    // The resident showed the paramedics their pairwise id (as on a card at the scene).
    city.platform
        .consents
        .show_pairwise(&hanako.session, &fire.id)
        .await
        .unwrap();
    let consent_ticket = || TicketRequest {
        subject: city.subject(&hanako),
        purpose_id: PurposeId::from("meals"),
        items: vec!["allergy".into()],
        requester: None,
        reason: None,
    };
    let rule_ticket = || TicketRequest {
        subject: city.platform.keys.pairwise_id(&fire.id, hanako.account()),
        purpose_id: PurposeId::from("emergency"),
        items: vec!["allergy".into()],
        requester: Some("救急隊長".into()),
        reason: Some("搬送中の投薬前の確認".into()),
    };
    let fire_auth = || async {
        city.platform
            .exchange
            .authenticate(Some(&fire.assertion()), None)
            .await
            .unwrap()
    };
    city.platform
        .exchange
        .ticket(&city.consumer_auth().await, consent_ticket())
        .await
        .expect("the consent provides before any request");

    for restriction in [Restriction::Suspension, Restriction::StopProvision] {
        if restriction == Restriction::StopProvision {
            restrict(&city, hanako.account(), Restriction::None).await;
        }
        restrict(&city, hanako.account(), restriction).await;
        let refused = city
            .platform
            .exchange
            .ticket(&city.consumer_auth().await, consent_ticket())
            .await
            .unwrap_err();
        assert_eq!(refused.code, Code::SuspendedByResident, "{restriction:?}");
        city.platform
            .exchange
            .ticket(&fire_auth().await, rule_ticket())
            .await
            .expect("a standing legal-basis rule still provides");
    }
    restrict(&city, hanako.account(), Restriction::None).await;
    city.platform
        .exchange
        .ticket(&city.consumer_auth().await, consent_ticket())
        .await
        .expect("resume: the consent provides again");
    let texts = city.ledger_texts().await;
    assert!(
        texts.iter().any(|t| t.contains("suspended_by_resident")),
        "the refusal is a leaf"
    );
}

#[tokio::test]
async fn a_suspension_or_a_stop_of_provision_releases_no_identity_claims_and_a_resume_does() {
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
        panic!("expected a code");
    };
    let code = query(&to, "code").unwrap();
    let tokens = oidc
        .token(
            &ClientAuthHeader::None,
            &DpopHeader::Absent,
            crate::oidc::code_grant(&code, &verifier, client.as_str(), &key),
        )
        .await
        .unwrap();
    let bearer = format!("Bearer {}", tokens.access_token);
    let name = || async {
        oidc.userinfo(Some(&bearer), &DpopHeader::Absent, "GET")
            .await
            .unwrap()
            .claims
            .name
    };
    assert_eq!(name().await.as_deref(), Some("前橋　花子"));
    restrict(&city, hanako.account(), Restriction::StopProvision).await;
    assert_eq!(
        name().await,
        None,
        "第三者提供の停止: a relying party is a third party"
    );
    restrict(&city, hanako.account(), Restriction::None).await;
    assert_eq!(name().await.as_deref(), Some("前橋　花子"), "resumed");
    restrict(&city, hanako.account(), Restriction::Suspension).await;
    assert_eq!(name().await, None, "利用停止: no claim leaves the platform");
    // A stop of provision asked under a suspension leaves the suspension in force.
    assert_eq!(
        city.platform
            .restriction_change(hanako.account(), Restriction::StopProvision, now())
            .await
            .unwrap(),
        None
    );
    restrict(&city, hanako.account(), Restriction::None).await;
    assert_eq!(name().await.as_deref(), Some("前橋　花子"));
}

#[tokio::test]
async fn an_erased_account_cannot_log_in_and_each_service_learns_it_from_the_feed() {
    let city = City::new().await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let consent = city.consented(&hanako, &["allergy"]).await;
    let account = hanako.account().clone();
    let before = city
        .platform
        .account_by_id(&account)
        .await
        .unwrap()
        .unwrap();
    assert!(before.attributes.is_some());

    let commit = city.platform.erasure_commit(&account, now()).await.unwrap();
    city.platform.committer.commit(commit).await.unwrap();

    let after = city
        .platform
        .account_by_id(&account)
        .await
        .unwrap()
        .unwrap();
    assert!(after.erased_at.is_some());
    assert_eq!(after.attributes, None, "the sealed four items are gone");
    assert_eq!(after.card, None, "so is the card's binding");
    let (_, items) = city.platform.basic_items(&account).await.unwrap();
    assert_eq!(items, None);
    let record = city.platform.resident_record(&account).await.unwrap();
    assert!(
        record
            .devices
            .iter()
            .all(|d| d.status == tsunagu_core::identity::DeviceStatus::Revoked && d.uv.is_none())
    );

    // A new login with the device is refused as erased.
    let nonce = city
        .platform
        .identity
        .challenge(tsunagu_platform::identity::NoncePurpose::Login)
        .await
        .unwrap()
        .nonce;
    let signature = tsunagu_crypto::b64::url_encode(hanako.device.sign(nonce.as_bytes()).unwrap());
    let refused = city
        .platform
        .identity
        .login(&hanako.enrolled.credential, &nonce, &signature)
        .await
        .unwrap_err();
    assert_eq!(refused.code, Code::AccountErased);

    // The consent is revoked and the feed says why.
    let feed = city
        .platform
        .exchange
        .feed(&city.consumer_auth().await, 0, 100)
        .await
        .unwrap();
    let last = feed.events.last().unwrap();
    assert_eq!(last.status, "revoked");
    assert_eq!(last.reason.as_deref(), Some("erasure"));
    let rows = city
        .platform
        .resident_record(&account)
        .await
        .unwrap()
        .consents;
    assert!(
        rows.iter().any(|c| c.id == consent.consent_id
            && c.status == tsunagu_core::consent::ConsentStatus::Revoked)
    );
    // A ticket on the old consent is refused: the account is erased.
    let refused = city
        .platform
        .exchange
        .ticket(
            &city.consumer_auth().await,
            TicketRequest {
                subject: city.subject(&hanako),
                purpose_id: PurposeId::from("meals"),
                items: vec!["allergy".into()],
                requester: None,
                reason: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code, Code::AccountErased);
    // Erasing twice is refused, not repeated.
    assert_eq!(
        city.platform
            .erasure_commit(&account, now())
            .await
            .unwrap_err()
            .code,
        Code::AccountErased
    );
}
