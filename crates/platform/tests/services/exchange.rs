//! The exchange: tickets decided on a consent in force, receipts, the ledger of both.

use crate::city::{City, PURPOSE};
use tsunagu_core::Code;
use tsunagu_core::PurposeId;
use tsunagu_core::ticket::TicketState;
use tsunagu_platform::exchange::{ReceiptRequest, TicketRequest};
use tsunagu_platform::history::EntryOutcome;

fn request(city: &City, resident: &crate::city::Resident, items: &[&str]) -> TicketRequest {
    TicketRequest {
        subject: city.subject(resident),
        purpose_id: PurposeId::from(PURPOSE),
        items: items.iter().map(|s| s.to_string()).collect(),
        requester: None,
        reason: None,
    }
}

#[tokio::test]
async fn a_subject_the_consumer_never_got_through_a_consent_is_unknown() {
    let city = City::new().await;
    let hanako = city.resident(Some("前橋　花子")).await;
    // The consumer learns her pairwise id only through a consent; even guessed right, the
    // platform knows no such subject of the consumer's.
    let auth = city.consumer_auth().await;
    let refusal = city
        .platform
        .exchange
        .ticket(&auth, request(&city, &hanako, &["allergy"]))
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::UnknownSubject, "{refusal:?}");
}

#[tokio::test]
async fn a_consent_buys_a_ticket_for_its_items_only_until_it_is_revoked() {
    let city = City::new().await;
    let hanako = city.resident(Some("前橋　花子")).await;
    let consent = city.consented(&hanako, &["allergy"]).await;
    let exchange = &city.platform.exchange;

    let ticket = exchange
        .ticket(
            &city.consumer_auth().await,
            request(&city, &hanako, &["allergy"]),
        )
        .await
        .unwrap();
    assert_eq!(ticket.provider, city.provider.id);
    assert_eq!(ticket.basis, format!("consent:{}", consent.consent_id));
    let row = exchange
        .ticket_by_id(&ticket.ticket_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, TicketState::Open);

    let beyond = exchange
        .ticket(
            &city.consumer_auth().await,
            request(&city, &hanako, &["allergy", "class"]),
        )
        .await
        .unwrap_err();
    assert_eq!(beyond.code, Code::ItemsNotCovered);

    let id = consent.consent_id.clone();
    city.revoke(&hanako, &id).await.unwrap();
    let after = exchange
        .ticket(
            &city.consumer_auth().await,
            request(&city, &hanako, &["allergy"]),
        )
        .await
        .unwrap_err();
    assert_eq!(after.code, Code::ConsentRevoked);

    // Both the ticket and the refusals are in her history, as recorded and refused.
    let page = city
        .platform
        .history
        .page(&hanako.session, None, 50)
        .await
        .unwrap();
    let outcomes: Vec<(Option<&str>, EntryOutcome)> =
        page.items.iter().map(|i| (i.kind(), i.outcome)).collect();
    assert!(
        outcomes.contains(&(Some("ticket.issued"), EntryOutcome::Recorded)),
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .filter(|(k, o)| *k == Some("ticket.refused") && *o == EntryOutcome::Refused)
            .count()
            >= 2,
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn a_client_assertion_is_good_once() {
    let city = City::new().await;
    let exchange = &city.platform.exchange;
    let assertion = city.consumer.assertion();
    let hanako = city.resident(Some("前橋　花子")).await;
    city.consented(&hanako, &["allergy"]).await;
    let auth = exchange.authenticate(Some(&assertion), None).await.unwrap();
    exchange
        .ticket(&auth, request(&city, &hanako, &["allergy"]))
        .await
        .unwrap();
    let replay = exchange.authenticate(Some(&assertion), None).await;
    let refusal = match replay {
        Err(r) => r,
        Ok(auth) => exchange
            .ticket(&auth, request(&city, &hanako, &["allergy"]))
            .await
            .unwrap_err(),
    };
    assert_eq!(refusal.code, Code::Unauthorized);
    assert!(refusal.detail.contains("jti"), "{refusal:?}");
}

#[tokio::test]
async fn receipts_from_both_sides_with_the_same_hash_complete_a_ticket_and_differing_ones_flag_it()
{
    let city = City::new().await;
    let hanako = city.resident(Some("前橋　花子")).await;
    city.consented(&hanako, &["allergy"]).await;
    let exchange = &city.platform.exchange;
    let provider = || async {
        exchange
            .authenticate(Some(&city.provider.assertion()), None)
            .await
            .unwrap()
    };
    let hash = "ab".repeat(32);

    let ticket = exchange
        .ticket(
            &city.consumer_auth().await,
            request(&city, &hanako, &["allergy"]),
        )
        .await
        .unwrap();
    let receipt = |h: &str| ReceiptRequest {
        ticket_id: ticket.ticket_id.clone(),
        payload_sha256: h.to_owned(),
    };
    let first = exchange
        .receipt(&provider().await, receipt(&hash))
        .await
        .unwrap();
    assert_eq!(first.state, TicketState::Open);
    let second = exchange
        .receipt(&city.consumer_auth().await, receipt(&hash))
        .await
        .unwrap();
    assert_eq!(second.state, TicketState::Completed);

    let other = exchange
        .ticket(
            &city.consumer_auth().await,
            request(&city, &hanako, &["allergy"]),
        )
        .await
        .unwrap();
    let receipt = |h: &str| ReceiptRequest {
        ticket_id: other.ticket_id.clone(),
        payload_sha256: h.to_owned(),
    };
    exchange
        .receipt(&provider().await, receipt(&hash))
        .await
        .unwrap();
    let mismatch = exchange
        .receipt(&city.consumer_auth().await, receipt(&"cd".repeat(32)))
        .await
        .unwrap();
    assert_eq!(mismatch.state, TicketState::Mismatch);
    assert!(mismatch.state.is_flagged());
}

#[tokio::test]
async fn nothing_flows_for_a_resident_whose_card_was_revoked_until_they_reproof() {
    // After a move J-LIS revokes the card certificate: the address behind the account is
    // stale, so existing consents buy no ticket until the resident proofs again.
    let city = City::new().await;
    let mut hanako = city.resident(Some("前橋　花子")).await;
    city.consented(&hanako, &["allergy"]).await;
    let exchange = &city.platform.exchange;
    exchange
        .ticket(
            &city.consumer_auth().await,
            request(&city, &hanako, &["allergy"]),
        )
        .await
        .unwrap();
    let old = hanako.card.take().unwrap();
    let mut new = city.reissue(&old, "前橋　花子").await;
    let refusal = exchange
        .ticket(
            &city.consumer_auth().await,
            request(&city, &hanako, &["allergy"]),
        )
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::ReproofRequired, "{refusal:?}");
    city.enroll_with(&hanako.device, &mut new).await.unwrap();
    exchange
        .ticket(
            &city.consumer_auth().await,
            request(&city, &hanako, &["allergy"]),
        )
        .await
        .expect("a ticket again once the resident proofed with the new certificate");
}

#[tokio::test]
async fn a_registered_client_certificate_authenticates_without_assertion_and_binds_the_ticket() {
    use tsunagu_platform::exchange::Credential;
    use tsunagu_platform::services::RegistrationUpdate;
    let city = City::new().await;
    let exchange = &city.platform.exchange;
    let services = &city.platform.services;
    let hanako = city.resident(Some("前橋　花子")).await;
    city.consented(&hanako, &["allergy"]).await;
    let x5t = tsunagu_crypto::b64::url_encode([7u8; 32]);
    let other = tsunagu_crypto::b64::url_encode([8u8; 32]);
    let unknown = exchange.authenticate(None, Some(&x5t)).await.err().unwrap();
    assert_eq!(unknown.code, Code::Unauthorized, "not registered yet");

    // Registration takes the certificate on the connection (proof of possession).
    let register = |presented: Option<&str>, cert: &str| RegistrationUpdate {
        tls_client_certificate: Some(cert.to_owned()),
        presented_client_cert: presented.map(str::to_owned),
        ..RegistrationUpdate::default()
    };
    for presented in [None, Some(other.as_str())] {
        let refused = services
            .update_registration(&city.consumer.id, &register(presented, &x5t))
            .await
            .unwrap_err();
        assert_eq!(refused.code, Code::ApplicationInvalid);
        assert!(
            refused.detail.contains("proof of possession"),
            "{refused:?}"
        );
    }
    let not_canonical = format!("{}B", &x5t[..42]);
    let refused = services
        .update_registration(
            &city.consumer.id,
            &register(Some(&not_canonical), &not_canonical),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code, Code::ApplicationInvalid, "{refused:?}");
    let registered = services
        .update_registration(&city.consumer.id, &register(Some(&x5t), &x5t))
        .await
        .unwrap();
    assert_eq!(
        registered.tls_client_certificate_sha256.as_deref(),
        Some(x5t.as_str())
    );
    // The provider, even holding the same certificate, cannot register it as well.
    let taken = services
        .update_registration(&city.provider.id, &register(Some(&x5t), &x5t))
        .await
        .unwrap_err();
    assert!(taken.detail.contains("another service"), "{taken:?}");

    let auth = exchange.authenticate(None, Some(&x5t)).await.unwrap();
    assert_eq!(auth.service.row.id, city.consumer.id);
    assert!(matches!(&auth.credential, Credential::Certificate { x5t_s256 } if *x5t_s256 == x5t));
    assert!(auth.credential.use_jti().is_none(), "no jti to record");
    let issued = exchange
        .ticket(&auth, request(&city, &hanako, &["allergy"]))
        .await
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &tsunagu_crypto::b64::url_decode(issued.ticket.split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["cnf"], serde_json::json!({"x5t#S256": x5t}));
    // A bad assertion is refused even on a registered certificate's connection.
    let refused = exchange
        .authenticate(Some("not-an-assertion"), Some(&x5t))
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code, Code::Unauthorized);
    // Its own registration changes only by assertion.
    let refused = exchange
        .authenticate_self(None, &city.consumer.id)
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code, Code::Unauthorized);

    // Withdrawn: the certificate authenticates nobody.
    services
        .update_registration(&city.consumer.id, &register(None, ""))
        .await
        .unwrap();
    let gone = exchange.authenticate(None, Some(&x5t)).await.err().unwrap();
    assert_eq!(gone.code, Code::Unauthorized);
}
