//! Consents: what a resident is offered, signs, changes and revokes.

use crate::city::{City, PURPOSE, now};
use tsunagu_core::Code;
use tsunagu_core::ConsentId;
use tsunagu_core::consent::{ChangeAction, ConsentStatus};

#[tokio::test]
async fn a_verified_resident_is_offered_the_purpose_with_its_terms_and_no_consent_yet() {
    let city = City::new().await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let offers = city
        .platform
        .consents
        .offers(&hanako.session)
        .await
        .unwrap();
    let offer = offers.iter().find(|o| o.purpose_id == PURPOSE).unwrap();
    assert_eq!(offer.consumer.service_id, city.consumer.id);
    assert_eq!(offer.provider.service_id, city.provider.id);
    let items: Vec<&str> = offer.items.iter().map(|i| i.item.as_str()).collect();
    assert_eq!(items, ["allergy", "class"]);
    assert_eq!(offer.terms_sha256.len(), 64);
    assert!(!offer.read_only);
    assert!(offer.consent.is_none());
    assert!(!offer.consent_in_force());
    // The proposed expiry is the purpose's retention, capped by the platform's maximum.
    let max_days = city.platform.consents.max_consent_days();
    let t = now();
    assert_eq!(
        offer.default_expiry(max_days, t),
        t + 86_400 * i64::from(offer.retention_days).min(max_days)
    );
}

#[tokio::test]
async fn a_signed_consent_is_in_force_and_its_receipt_names_the_parties() {
    let city = City::new().await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let terms = city.terms(&hanako).await;
    let record = city
        .platform
        .consents
        .grant(
            &hanako.session,
            &hanako.consent(&city, &terms, &["allergy"]),
        )
        .await
        .unwrap();
    assert_eq!(record.status, ConsentStatus::Active);
    assert_eq!(record.items, ["allergy"]);
    assert_eq!(record.consumer, city.consumer.id);
    assert_eq!(record.terms_sha256, terms);
    let offers = city
        .platform
        .consents
        .offers(&hanako.session)
        .await
        .unwrap();
    assert!(offers.iter().any(|o| o.consent_in_force()));
    let listed = city.platform.consents.list(&hanako.session).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].consent_id, record.consent_id);
}

#[tokio::test]
async fn a_provisional_id_may_not_consent() {
    let city = City::new().await;
    let provisional = city.resident(None).await;
    let terms = city.terms(&provisional).await;
    let refusal = city
        .platform
        .consents
        .grant(
            &provisional.session,
            &provisional.consent(&city, &terms, &["allergy"]),
        )
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::ProvisionalId);
}

#[tokio::test]
async fn a_consent_to_other_terms_than_offered_is_refused() {
    let city = City::new().await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let refusal = city
        .platform
        .consents
        .grant(
            &hanako.session,
            &hanako.consent(&city, &"0".repeat(64), &["allergy"]),
        )
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::TermsMismatch);
}

#[tokio::test]
async fn a_consent_signed_again_with_the_same_nonce_is_refused() {
    let city = City::new().await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let terms = city.terms(&hanako).await;
    let signed = hanako.consent(&city, &terms, &["allergy"]);
    city.platform
        .consents
        .grant(&hanako.session, &signed)
        .await
        .unwrap();
    let refusal = city
        .platform
        .consents
        .grant(&hanako.session, &signed)
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::NonceInvalid);
}

#[tokio::test]
async fn a_new_consent_supersedes_the_one_in_force() {
    let city = City::new().await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let terms = city.terms(&hanako).await;
    let consents = &city.platform.consents;
    let first = consents
        .grant(
            &hanako.session,
            &hanako.consent(&city, &terms, &["allergy"]),
        )
        .await
        .unwrap();
    let second = consents
        .grant(
            &hanako.session,
            &hanako.consent(&city, &terms, &["allergy", "class"]),
        )
        .await
        .unwrap();
    let first_now = consents
        .get(&hanako.session, &first.consent_id)
        .await
        .unwrap();
    assert_eq!(first_now.status, ConsentStatus::Superseded);
    assert_eq!(second.status, ConsentStatus::Active);
    assert_eq!(second.items, ["allergy", "class"]);
}

#[tokio::test]
async fn a_revoked_consent_is_no_longer_in_force_and_cannot_be_revoked_twice() {
    let city = City::new().await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let terms = city.terms(&hanako).await;
    let consents = &city.platform.consents;
    let granted = consents
        .grant(
            &hanako.session,
            &hanako.consent(&city, &terms, &["allergy"]),
        )
        .await
        .unwrap();
    let id = granted.consent_id.clone();
    let revoked = consents
        .change(
            &hanako.session,
            &id,
            ChangeAction::Revoke,
            &hanako.change(id.as_str(), "revoke", None),
        )
        .await
        .unwrap();
    assert_eq!(revoked.status, ConsentStatus::Revoked);
    let offers = consents.offers(&hanako.session).await.unwrap();
    assert!(!offers.iter().any(|o| o.consent_in_force()));
    let again = consents
        .change(
            &hanako.session,
            &id,
            ChangeAction::Revoke,
            &hanako.change(id.as_str(), "revoke", None),
        )
        .await
        .unwrap_err();
    assert_eq!(again.code, Code::ConsentRevoked);
}

#[tokio::test]
async fn another_residents_consent_is_not_found() {
    let city = City::new().await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let taro = city.resident(Some("前橋　太郎")).await;
    let granted = city.consented(&hanako, &["allergy"]).await;
    let refusal = city
        .platform
        .consents
        .get(&taro.session, &granted.consent_id)
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::UnknownConsent);
    let nothing = city
        .platform
        .consents
        .get(&hanako.session, &ConsentId::from("no-such-consent"))
        .await
        .unwrap_err();
    assert_eq!(nothing.code, Code::UnknownConsent);
}

#[tokio::test]
async fn a_twin_signature_is_the_same_statement_with_the_same_evidence_hash() {
    // ECDSA signatures come in pairs (s and n - s) that both verify; the consent is kept
    // and hashed in its low-S form, so the evidence hash cannot be doubled.
    let city = City::new().await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let terms = city.terms(&hanako).await;
    let signed = hanako.consent(&city, &terms, &["allergy"]);
    let token = tsunagu_crypto::jws::parse(&signed).unwrap();
    let twin = format!(
        "{}.{}",
        token.signing_input(),
        tsunagu_crypto::b64::url_encode(
            tsunagu_crypto::jws::es256_twin(token.signature()).unwrap()
        )
    );
    // Present whichever of the two has the high S.
    let high = if token.canonical_compact() == signed {
        twin
    } else {
        signed.clone()
    };
    let record = city
        .platform
        .consents
        .grant(&hanako.session, &high)
        .await
        .unwrap();
    assert_eq!(
        record.receipt.header.evidence.jws_sha256,
        hex::encode(tsunagu_crypto::sha256(token.canonical_compact().as_bytes()))
    );
}
