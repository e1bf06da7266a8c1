//! Arbitrary bytes as the payload of a resident-signed consent or consent change, as the
//! platform reads it out of a verified JWS (`payload_as`, then `check_consent` /
//! `check_change`). Never a panic; a payload that parses survives a serialization round
//! trip unchanged; whatever `check_consent` accepts really matches the purpose it names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsunagu_core::consent::{
    self, ChangeAction, ChangePayload, ConsentPayload, ConsentStatus, PurposeFacts, ResidentFacts,
};
use tsunagu_core::identity::{AccountStatus, Level};
use tsunagu_core::service::LegalBasis;

const NOW: i64 = 1_790_000_000;
const MAX: i64 = consent::DEFAULT_MAX_CONSENT_SECONDS;

fn purpose() -> PurposeFacts {
    PurposeFacts {
        consumer: "daycare".into(),
        provider: "school".into(),
        items: vec!["allergy".into(), "class".into()],
        legal_basis: LegalBasis::Consent,
        terms_sha256: "ab".repeat(32),
        services_approved: true,
    }
}

const VERIFIED: ResidentFacts = ResidentFacts {
    level: Level::Verified,
    status: AccountStatus::Active,
    restriction: tsunagu_core::identity::Restriction::None,
    erased: false,
};

/// Within `ISSUED_AT_WINDOW` of `now`, computed without any chance of overflow.
fn fresh(issued_at: i64, now: i64) -> bool {
    (i128::from(issued_at) - i128::from(now)).abs() <= i128::from(consent::ISSUED_AT_WINDOW)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = serde_json::from_slice::<ConsentPayload>(data) {
        let again = serde_json::to_vec(&payload).expect("serializes");
        assert_eq!(
            serde_json::from_slice::<ConsentPayload>(&again).expect("reparses"),
            payload
        );
        let purpose = purpose();
        // Every `now` the fuzzer may choose as well as a fixed one, so both ends are reached.
        for now in [NOW, payload.issued_at] {
            if consent::check_consent(&payload, Some(&purpose), VERIFIED, now, MAX).is_ok() {
                assert_eq!(payload.v, 1);
                assert_eq!(payload.consumer, purpose.consumer);
                assert_eq!(payload.provider, purpose.provider);
                assert_eq!(payload.terms_sha256, purpose.terms_sha256);
                assert!(!payload.items.is_empty());
                assert!(payload.items.iter().all(|i| purpose.items.contains(i)));
                assert!(!payload.nonce.is_empty() && payload.nonce.len() <= 128);
                assert!(payload.expires_at > now);
                assert!(
                    fresh(payload.issued_at, now),
                    "issued_at {} accepted at {now}",
                    payload.issued_at
                );
            }
            // Nothing but a verified, active resident consents; no consent without a purpose.
            let provisional = ResidentFacts {
                level: Level::Provisional,
                ..VERIFIED
            };
            assert!(
                consent::check_consent(&payload, Some(&purpose), provisional, now, MAX).is_err()
            );
            assert!(consent::check_consent(&payload, None, VERIFIED, now, MAX).is_err());
        }
    }
    if let Ok(change) = serde_json::from_slice::<ChangePayload>(data) {
        let again = serde_json::to_vec(&change).expect("serializes");
        assert_eq!(
            serde_json::from_slice::<ChangePayload>(&again).expect("reparses"),
            change
        );
        for now in [NOW, change.issued_at] {
            for status in [
                ConsentStatus::Active,
                ConsentStatus::Revoked,
                ConsentStatus::Superseded,
                ConsentStatus::Expired,
            ] {
                let ok = consent::check_change(&change, status, NOW + 86_400, now, MAX).is_ok();
                // Only an active consent changes; an expiry change names a future expiry.
                if ok {
                    assert_eq!(status, ConsentStatus::Active);
                    assert!(
                        fresh(change.issued_at, now),
                        "issued_at {} accepted at {now}",
                        change.issued_at
                    );
                    if change.action == ChangeAction::Expiry {
                        assert!(change.expires_at.is_some_and(|t| t > now));
                    }
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(status) = ConsentStatus::parse(text) {
            assert_eq!(status.as_str(), text);
        }
        if let Some(kind) = consent::ConsentEventKind::parse(text) {
            assert_eq!(kind.as_str(), text);
        }
    }
});
