//! The ticket decision (SPEC §6): may this consumer receive these items about this resident
//! for this purpose, now, and on what basis? A pure function of what the platform knows at
//! the moment of the request.

use crate::consent::{ConsentStatus, ResidentFacts};
use crate::identity::{AccountStatus, Level};
use crate::ids::{ConsentId, PurposeId};
use crate::service::{LegalBasis, ServiceStatus};
use crate::{Code, UnixSeconds};
use serde::{Deserialize, Serialize};

/// Longest ticket lifetime.
pub const MAX_TICKET_SECONDS: i64 = 120;

/// The approved purpose a ticket request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPurpose {
    pub id: String,
    pub legal_basis: LegalBasis,
    pub items: Vec<String>,
}

/// The resident's latest consent to this purpose with this consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentFacts {
    pub id: String,
    pub status: ConsentStatus,
    pub items: Vec<String>,
    pub expires_at: UnixSeconds,
}

/// Everything the decision looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFacts<'a> {
    pub consumer: ServiceStatus,
    /// `None` when the consumer has no such approved purpose.
    pub purpose: Option<&'a TicketPurpose>,
    /// `None` when the provider is unknown.
    pub provider: Option<ServiceStatus>,
    pub items: &'a [String],
    /// `None` when the subject is not a pairwise id the platform gave this consumer.
    pub resident: Option<ResidentFacts>,
    pub consent: Option<&'a ConsentFacts>,
    /// Who asks and why: required when the basis is not consent.
    pub requester: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub now: UnixSeconds,
}

/// Why a ticket may be issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Basis {
    /// The resident's consent with this id.
    Consent(ConsentId),
    /// A standing legal-basis rule: the purpose with this id.
    Rule(PurposeId),
}

impl Basis {
    /// The `basis` claim of a ticket: `consent:<id>` or `rule:<purpose_id>`.
    pub fn claim(&self) -> String {
        match self {
            Basis::Consent(id) => format!("consent:{id}"),
            Basis::Rule(purpose) => format!("rule:{purpose}"),
        }
    }

    /// Reads a `basis` claim back.
    pub fn parse(claim: &str) -> Option<Basis> {
        match claim.split_once(':') {
            Some(("consent", id)) if !id.is_empty() => Some(Basis::Consent(id.into())),
            Some(("rule", id)) if !id.is_empty() => Some(Basis::Rule(id.into())),
            _ => None,
        }
    }

    /// The consent behind the ticket, if the basis is a consent.
    pub fn consent(&self) -> Option<&ConsentId> {
        match self {
            Basis::Consent(id) => Some(id),
            Basis::Rule(_) => None,
        }
    }
}

/// Where an exchange stands. A ticket opens it; the two receipts (payload hashes from the
/// consumer and the provider) close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// Issued; receipts outstanding.
    Open,
    /// Both receipts arrived and name the same payload.
    Completed,
    /// Both receipts arrived and name different payloads (flagged).
    Mismatch,
    /// A receipt did not arrive within the grace period after the ticket expired (flagged).
    Missing,
}

impl TicketState {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Open => "open",
            TicketState::Completed => "completed",
            TicketState::Mismatch => "mismatch",
            TicketState::Missing => "missing",
        }
    }

    pub fn parse(s: &str) -> Option<TicketState> {
        match s {
            "open" => Some(TicketState::Open),
            "completed" => Some(TicketState::Completed),
            "mismatch" => Some(TicketState::Mismatch),
            "missing" => Some(TicketState::Missing),
            _ => None,
        }
    }

    /// Both receipts are in: an open exchange completes when they name the same payload and
    /// is flagged as a mismatch otherwise. `None` when the exchange is already closed.
    pub fn on_receipts(self, consumer_sha256: &str, provider_sha256: &str) -> Option<TicketState> {
        match self {
            TicketState::Open if consumer_sha256 == provider_sha256 => Some(TicketState::Completed),
            TicketState::Open => Some(TicketState::Mismatch),
            _ => None,
        }
    }

    /// The grace period for receipts has passed: an open exchange is flagged as missing.
    pub fn on_overdue(self) -> Option<TicketState> {
        (self == TicketState::Open).then_some(TicketState::Missing)
    }

    /// Whether the exchange was flagged for the committee.
    pub fn is_flagged(self) -> bool {
        matches!(self, TicketState::Mismatch | TicketState::Missing)
    }
}

fn covered(wanted: &[String], allowed: &[String]) -> bool {
    wanted.iter().all(|i| allowed.contains(i))
}

fn present(s: Option<&str>) -> bool {
    s.is_some_and(|s| !s.trim().is_empty())
}

/// Decides a ticket request. Services are checked first (a suspended service learns nothing
/// about residents), then the items against the purpose, then the resident, then the basis.
pub fn decide(f: &TicketFacts<'_>) -> Result<Basis, Code> {
    match f.consumer {
        ServiceStatus::Suspended => return Err(Code::ServiceSuspended),
        ServiceStatus::Approved => {}
        ServiceStatus::PendingReview | ServiceStatus::Rejected => {
            return Err(Code::PurposeNotApproved);
        }
    }
    let purpose = f.purpose.ok_or(Code::PurposeNotApproved)?;
    match f.provider {
        Some(ServiceStatus::Suspended) => return Err(Code::ServiceSuspended),
        Some(ServiceStatus::Approved) => {}
        _ => return Err(Code::PurposeNotApproved),
    }
    if f.items.is_empty() {
        return Err(Code::InvalidRequest);
    }
    if !covered(f.items, &purpose.items) {
        return Err(Code::ItemsNotCovered);
    }
    let resident = f.resident.ok_or(Code::UnknownSubject)?;
    if resident.erased {
        return Err(Code::AccountErased);
    }
    if resident.level == Level::Provisional {
        return Err(Code::ProvisionalId);
    }
    // The card certificate that proofed the resident was revoked (a move, a new name): the
    // attributes behind the account may be stale, so nothing flows until the resident proofs
    // again (seed 000: 古い個人情報を誤って利用しない), whatever the basis.
    if resident.status == AccountStatus::ReproofRequired {
        return Err(Code::ReproofRequired);
    }
    match purpose.legal_basis {
        // The resident stopped use or provision (SPEC §9): no consent counts until they
        // resume; the legal-basis rules below still provide.
        LegalBasis::Consent if resident.restriction.stops_provision() => {
            Err(Code::SuspendedByResident)
        }
        LegalBasis::Consent => {
            let consent = f.consent.ok_or(Code::NoConsent)?;
            match consent.status {
                ConsentStatus::Revoked => Err(Code::ConsentRevoked),
                ConsentStatus::Superseded => Err(Code::NoConsent),
                ConsentStatus::Expired => Err(Code::ConsentExpired),
                ConsentStatus::Active if consent.expires_at <= f.now => Err(Code::ConsentExpired),
                ConsentStatus::Active if !covered(f.items, &consent.items) => {
                    Err(Code::ItemsNotCovered)
                }
                ConsentStatus::Active => Ok(Basis::Consent(consent.id.as_str().into())),
            }
        }
        LegalBasis::VitalInterest | LegalBasis::Statutory => {
            if present(f.requester) && present(f.reason) {
                Ok(Basis::Rule(purpose.id.as_str().into()))
            } else {
                Err(Code::RequesterRequired)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VERIFIED: ResidentFacts = ResidentFacts {
        level: Level::Verified,
        status: AccountStatus::Active,
        restriction: crate::identity::Restriction::None,
        erased: false,
    };

    fn consent_purpose() -> TicketPurpose {
        TicketPurpose {
            id: "allergy-to-daycare".into(),
            legal_basis: LegalBasis::Consent,
            items: vec!["allergy".into(), "class".into()],
        }
    }

    fn facts<'a>(
        p: &'a TicketPurpose,
        items: &'a [String],
        consent: Option<&'a ConsentFacts>,
    ) -> TicketFacts<'a> {
        TicketFacts {
            consumer: ServiceStatus::Approved,
            purpose: Some(p),
            provider: Some(ServiceStatus::Approved),
            items,
            resident: Some(VERIFIED),
            consent,
            requester: None,
            reason: None,
            now: 1_000,
        }
    }

    #[test]
    fn a_resident_who_stopped_use_or_provision_gets_no_consent_ticket_but_rules_still_apply() {
        use crate::identity::Restriction;
        let p = consent_purpose();
        let items = vec!["allergy".to_string()];
        let consent = active(&["allergy"], 2_000);
        let ok = facts(&p, &items, Some(&consent));
        assert!(decide(&ok).is_ok());
        for restriction in [Restriction::Suspension, Restriction::StopProvision] {
            let stopped = ResidentFacts {
                restriction,
                ..VERIFIED
            };
            assert_eq!(
                decide(&TicketFacts {
                    resident: Some(stopped),
                    ..ok.clone()
                }),
                Err(Code::SuspendedByResident),
                "{restriction:?}"
            );
            for basis in [LegalBasis::Statutory, LegalBasis::VitalInterest] {
                let rule = TicketPurpose {
                    legal_basis: basis,
                    ..p.clone()
                };
                assert!(
                    decide(&TicketFacts {
                        purpose: Some(&rule),
                        resident: Some(stopped),
                        requester: Some("officer-1"),
                        reason: Some("statute"),
                        ..ok.clone()
                    })
                    .is_ok(),
                    "{restriction:?} {basis:?}"
                );
            }
        }
        let erased = ResidentFacts {
            erased: true,
            ..VERIFIED
        };
        assert_eq!(
            decide(&TicketFacts {
                resident: Some(erased),
                ..ok.clone()
            }),
            Err(Code::AccountErased)
        );
    }

    fn active(items: &[&str], expires_at: i64) -> ConsentFacts {
        ConsentFacts {
            id: "c1".into(),
            status: ConsentStatus::Active,
            items: items.iter().map(|s| s.to_string()).collect(),
            expires_at,
        }
    }

    #[test]
    fn every_refusal_code_has_its_situation() {
        let p = consent_purpose();
        let allergy = vec!["allergy".to_string()];
        let c = active(&["allergy"], 2_000);
        let ok = facts(&p, &allergy, Some(&c));
        assert_eq!(decide(&ok), Ok(Basis::Consent("c1".into())));
        assert_eq!(
            decide(&TicketFacts {
                consumer: ServiceStatus::Suspended,
                ..ok.clone()
            }),
            Err(Code::ServiceSuspended)
        );
        assert_eq!(
            decide(&TicketFacts {
                provider: Some(ServiceStatus::Suspended),
                ..ok.clone()
            }),
            Err(Code::ServiceSuspended)
        );
        assert_eq!(
            decide(&TicketFacts {
                consumer: ServiceStatus::PendingReview,
                ..ok.clone()
            }),
            Err(Code::PurposeNotApproved)
        );
        assert_eq!(
            decide(&TicketFacts {
                purpose: None,
                ..ok.clone()
            }),
            Err(Code::PurposeNotApproved)
        );
        assert_eq!(
            decide(&TicketFacts {
                resident: None,
                ..ok.clone()
            }),
            Err(Code::UnknownSubject)
        );
        let provisional = ResidentFacts {
            level: Level::Provisional,
            status: AccountStatus::Active,
            restriction: crate::identity::Restriction::None,
            erased: false,
        };
        assert_eq!(
            decide(&TicketFacts {
                resident: Some(provisional),
                ..ok.clone()
            }),
            Err(Code::ProvisionalId)
        );
        assert_eq!(
            decide(&TicketFacts {
                consent: None,
                ..ok.clone()
            }),
            Err(Code::NoConsent)
        );
        let stale = ResidentFacts {
            level: Level::Verified,
            status: AccountStatus::ReproofRequired,
            restriction: crate::identity::Restriction::None,
            erased: false,
        };
        assert_eq!(
            decide(&TicketFacts {
                resident: Some(stale),
                ..ok.clone()
            }),
            Err(Code::ReproofRequired)
        );
        let rule = TicketPurpose {
            legal_basis: LegalBasis::Statutory,
            ..p.clone()
        };
        assert_eq!(
            decide(&TicketFacts {
                purpose: Some(&rule),
                resident: Some(stale),
                requester: Some("officer-1"),
                reason: Some("statute"),
                ..ok.clone()
            }),
            Err(Code::ReproofRequired)
        );
        let revoked = ConsentFacts {
            status: ConsentStatus::Revoked,
            ..c.clone()
        };
        assert_eq!(
            decide(&TicketFacts {
                consent: Some(&revoked),
                ..ok.clone()
            }),
            Err(Code::ConsentRevoked)
        );
        let expired = active(&["allergy"], 1_000);
        assert_eq!(
            decide(&TicketFacts {
                consent: Some(&expired),
                ..ok.clone()
            }),
            Err(Code::ConsentExpired)
        );
        let both = vec!["allergy".to_string(), "class".to_string()];
        assert_eq!(
            decide(&TicketFacts {
                items: &both,
                ..ok.clone()
            }),
            Err(Code::ItemsNotCovered),
            "consented to allergy only"
        );
        let income = vec!["income".to_string()];
        assert_eq!(
            decide(&TicketFacts {
                items: &income,
                ..ok.clone()
            }),
            Err(Code::ItemsNotCovered),
            "not in the purpose"
        );
    }

    #[test]
    fn a_rule_needs_a_requester_and_a_reason() {
        let p = TicketPurpose {
            id: "allergy-to-fire-brigade".into(),
            legal_basis: LegalBasis::VitalInterest,
            items: vec!["allergy".into()],
        };
        let allergy = vec!["allergy".to_string()];
        let f = facts(&p, &allergy, None);
        assert_eq!(decide(&f), Err(Code::RequesterRequired));
        assert_eq!(
            decide(&TicketFacts {
                requester: Some("救急隊 前橋中央 隊長"),
                reason: Some(" "),
                ..f.clone()
            }),
            Err(Code::RequesterRequired)
        );
        assert_eq!(
            decide(&TicketFacts {
                requester: Some("救急隊 前橋中央 隊長"),
                reason: Some("救急搬送中のアナフィラキシー"),
                ..f
            }),
            Ok(Basis::Rule("allergy-to-fire-brigade".into()))
        );
        assert_eq!(Basis::Rule("p".into()).claim(), "rule:p");
        assert_eq!(Basis::Consent("c".into()).claim(), "consent:c");
    }

    /// One step of a resident's dealings with a purpose.
    #[derive(Debug, Clone)]
    enum Step {
        Grant {
            allergy: bool,
            class: bool,
            lasts: i64,
        },
        Revoke,
        Extend {
            lasts: i64,
        },
        Wait(i64),
        Ask {
            allergy: bool,
            class: bool,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (any::<bool>(), any::<bool>(), 1i64..500).prop_map(|(allergy, class, lasts)| {
                Step::Grant {
                    allergy,
                    class,
                    lasts,
                }
            }),
            Just(Step::Revoke),
            (1i64..500).prop_map(|lasts| Step::Extend { lasts }),
            (1i64..300).prop_map(Step::Wait),
            (any::<bool>(), any::<bool>())
                .prop_map(|(allergy, class)| Step::Ask { allergy, class }),
        ]
    }

    fn items(allergy: bool, class: bool) -> Vec<String> {
        let mut v = Vec::new();
        if allergy {
            v.push("allergy".to_string());
        }
        if class {
            v.push("class".to_string());
        }
        v
    }

    proptest! {
        /// No sequence of consent changes yields a ticket that the latest consent state
        /// does not allow: the records (as stored: every consent kept, the newest one
        /// decides) and an independent model of "what did the resident last say" agree on
        /// every request.
        #[test]
        fn tickets_follow_the_latest_consent(steps in proptest::collection::vec(step(), 1..60)) {
            let purpose = consent_purpose();
            let mut now = 1_000i64;
            let mut records: Vec<ConsentFacts> = Vec::new();
            // The model: the items the resident last agreed to and until when, or nothing.
            let mut model: Option<(Vec<String>, i64)> = None;
            for s in steps {
                match s {
                    Step::Grant { allergy, class, lasts } => {
                        let granted = items(allergy, class);
                        if granted.is_empty() { continue; }
                        for r in records.iter_mut().filter(|r| r.status == ConsentStatus::Active) {
                            r.status = ConsentStatus::Superseded;
                        }
                        records.push(ConsentFacts { id: format!("c{}", records.len()), status: ConsentStatus::Active, items: granted.clone(), expires_at: now + lasts });
                        model = Some((granted, now + lasts));
                    }
                    Step::Revoke => {
                        if let Some(r) = records.iter_mut().rev().find(|r| r.status == ConsentStatus::Active) {
                            r.status = ConsentStatus::Revoked;
                        }
                        model = None;
                    }
                    Step::Extend { lasts } => {
                        if let Some(r) = records.iter_mut().rev().find(|r| r.status == ConsentStatus::Active && r.expires_at > now) {
                            r.expires_at = now + lasts;
                            if let Some((_, until)) = model.as_mut() { *until = now + lasts; }
                        }
                    }
                    Step::Wait(secs) => now += secs,
                    Step::Ask { allergy, class } => {
                        let wanted = items(allergy, class);
                        if wanted.is_empty() { continue; }
                        let latest = records.last();
                        let mut f = facts(&purpose, &wanted, latest);
                        f.now = now;
                        let decision = decide(&f);
                        let allowed = model.as_ref().is_some_and(|(granted, until)| {
                            *until > now && wanted.iter().all(|i| granted.contains(i))
                        });
                        prop_assert_eq!(decision.is_ok(), allowed, "decision {:?} at {} with records {:?}", decision, now, records);
                        if let Ok(Basis::Consent(id)) = decision {
                            let used = records.iter().find(|r| r.id == id).unwrap();
                            prop_assert_eq!(used.status, ConsentStatus::Active);
                            prop_assert!(used.expires_at > now);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn an_exchange_closes_once_by_its_receipts_or_its_deadline() {
        use TicketState::*;
        assert_eq!(Open.on_receipts("a", "a"), Some(Completed));
        assert_eq!(Open.on_receipts("a", "b"), Some(Mismatch));
        assert_eq!(Completed.on_receipts("a", "b"), None);
        assert_eq!(Open.on_overdue(), Some(Missing));
        assert_eq!(Mismatch.on_overdue(), None);
        for s in [Open, Completed, Mismatch, Missing] {
            assert_eq!(TicketState::parse(s.as_str()), Some(s));
        }
        assert!(Missing.is_flagged() && !Completed.is_flagged());
    }

    #[test]
    fn a_basis_claim_reads_back() {
        for b in [Basis::Consent("c1".into()), Basis::Rule("fire".into())] {
            assert_eq!(Basis::parse(&b.claim()), Some(b));
        }
        assert_eq!(Basis::parse("consent:"), None);
        assert_eq!(Basis::parse("other:x"), None);
    }
}
