//! Dynamic opt-in consent (情報提供の管理, SPEC §5): what a signed consent and a signed change
//! must say, and what state a consent is in.

use crate::identity::{AccountStatus, Level};
use crate::service::LegalBasis;
use crate::{Code, UnixSeconds};
use serde::{Deserialize, Serialize};

/// How far `issued_at` may be from the platform's clock.
pub const ISSUED_AT_WINDOW: i64 = 300;

/// The payload a resident signs to consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentPayload {
    pub v: u32,
    pub purpose_id: String,
    pub consumer: String,
    pub provider: String,
    pub items: Vec<String>,
    pub expires_at: UnixSeconds,
    pub terms_sha256: String,
    pub issued_at: UnixSeconds,
    pub nonce: String,
}

/// The action of a signed change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    Revoke,
    Expiry,
}

/// The payload a resident signs to change a consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePayload {
    pub consent_id: String,
    pub action: ChangeAction,
    #[serde(default)]
    pub expires_at: Option<UnixSeconds>,
    pub issued_at: UnixSeconds,
    pub nonce: String,
}

/// The stored state of a consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    Active,
    Revoked,
    /// Replaced by a newer consent to the same purpose.
    Superseded,
    /// Reached its expiry (recorded by the platform's sweep; an active consent past its
    /// expiry is treated as expired before that).
    Expired,
}

impl ConsentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Active => "active",
            ConsentStatus::Revoked => "revoked",
            ConsentStatus::Superseded => "superseded",
            ConsentStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<ConsentStatus> {
        match s {
            "active" => Some(ConsentStatus::Active),
            "revoked" => Some(ConsentStatus::Revoked),
            "superseded" => Some(ConsentStatus::Superseded),
            "expired" => Some(ConsentStatus::Expired),
            _ => None,
        }
    }
}

impl ConsentStatus {
    /// The state at `now`: an active consent past its expiry is expired, whether or not the
    /// platform's sweep has recorded it yet.
    pub fn at(self, expires_at: UnixSeconds, now: UnixSeconds) -> ConsentStatus {
        match self {
            ConsentStatus::Active if expires_at <= now => ConsentStatus::Expired,
            other => other,
        }
    }
}

/// The state of a consent as seen at a moment: an active consent past its expiry is expired.
pub fn effective_status(
    status: ConsentStatus,
    expires_at: UnixSeconds,
    now: UnixSeconds,
) -> &'static str {
    status.at(expires_at, now).as_str()
}

/// Whether a consent is in force at `now`: active and not past its expiry. Everything that
/// releases data on a consent (tickets, OpenID Connect claims) asks this.
pub fn in_force(status: ConsentStatus, expires_at: UnixSeconds, now: UnixSeconds) -> bool {
    status.at(expires_at, now) == ConsentStatus::Active
}

/// The expiry offered by default when a resident consents: the purpose's retention, at least
/// a day and at most a year, and never beyond the longest consent allowed.
pub fn default_expiry(retention_days: u32, max_consent_days: i64, now: UnixSeconds) -> UnixSeconds {
    let days = i64::from(retention_days)
        .clamp(1, 365)
        .min(max_consent_days)
        .max(1);
    now + days * 86_400
}

/// What happened to a consent, as the feed to services and the receipt's events record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentEventKind {
    Granted,
    ExpiryChanged,
    Revoked,
    Expired,
}

impl ConsentEventKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentEventKind::Granted => "granted",
            ConsentEventKind::ExpiryChanged => "expiry_changed",
            ConsentEventKind::Revoked => "revoked",
            ConsentEventKind::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<ConsentEventKind> {
        match s {
            "granted" => Some(ConsentEventKind::Granted),
            "expiry_changed" => Some(ConsentEventKind::ExpiryChanged),
            "revoked" => Some(ConsentEventKind::Revoked),
            "expired" => Some(ConsentEventKind::Expired),
            _ => None,
        }
    }

    /// The status services read in their consent feed.
    pub fn feed_status(self) -> &'static str {
        match self {
            ConsentEventKind::ExpiryChanged => "changed",
            other => other.as_str(),
        }
    }

    /// The event type of a consent receipt (ISO/IEC TS 27560 vocabulary).
    pub fn receipt_event(self) -> &'static str {
        match self {
            ConsentEventKind::Granted => "given",
            ConsentEventKind::ExpiryChanged => "modified",
            ConsentEventKind::Revoked => "withdrawn",
            ConsentEventKind::Expired => "expired",
        }
    }
}

/// The approved purpose a consent refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeFacts {
    pub consumer: String,
    pub provider: String,
    pub items: Vec<String>,
    pub legal_basis: LegalBasis,
    pub terms_sha256: String,
    /// Whether the consumer and the provider are both approved (not pending, rejected or
    /// suspended).
    pub services_approved: bool,
}

/// Who is consenting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResidentFacts {
    pub level: Level,
    pub status: AccountStatus,
    /// What the resident asked the platform to stop.
    pub restriction: crate::identity::Restriction,
    /// The account was erased at the resident's request.
    pub erased: bool,
}

/// Longest a consent may last, in seconds, unless configured otherwise: about three years.
pub const DEFAULT_MAX_CONSENT_SECONDS: i64 = 3 * 366 * 86_400;

fn within_window(issued_at: UnixSeconds, now: UnixSeconds) -> bool {
    // `abs_diff`, not `(issued_at - now).abs()`: the subtraction overflows for a signed
    // `issued_at` far in the past (a panic with overflow checks), and `abs` of `i64::MIN`
    // wraps to a negative number that passed the check (found by the consent_payload fuzz
    // target: `issued_at = now - 2^63` was accepted as fresh).
    issued_at.abs_diff(now) <= ISSUED_AT_WINDOW.unsigned_abs()
}

/// Checks a consent payload against the purpose it names and the resident who signed it.
/// (The signature, the device credential and the nonce's freshness are checked by the
/// caller.)
pub fn check_consent(
    payload: &ConsentPayload,
    purpose: Option<&PurposeFacts>,
    resident: ResidentFacts,
    now: UnixSeconds,
    max_seconds: i64,
) -> Result<(), Code> {
    if resident.level != Level::Verified {
        return Err(Code::ProvisionalId);
    }
    if resident.status == AccountStatus::ReproofRequired {
        return Err(Code::ReproofRequired);
    }
    if payload.v != 1 {
        return Err(Code::InvalidRequest);
    }
    if !within_window(payload.issued_at, now) {
        return Err(Code::StaleRequest);
    }
    if payload.nonce.is_empty() || payload.nonce.len() > 128 {
        return Err(Code::NonceInvalid);
    }
    let purpose = purpose.ok_or(Code::PurposeNotApproved)?;
    if !purpose.services_approved {
        return Err(Code::PurposeNotApproved);
    }
    if purpose.legal_basis != LegalBasis::Consent {
        return Err(Code::NotConsentable);
    }
    if payload.consumer != purpose.consumer || payload.provider != purpose.provider {
        return Err(Code::TermsMismatch);
    }
    if payload.terms_sha256 != purpose.terms_sha256 {
        return Err(Code::TermsMismatch);
    }
    if payload.items.is_empty() {
        return Err(Code::ItemsNotCovered);
    }
    let mut seen = std::collections::BTreeSet::new();
    for item in &payload.items {
        if !purpose.items.contains(item) || !seen.insert(item) {
            return Err(Code::ItemsNotCovered);
        }
    }
    if payload.expires_at <= now || payload.expires_at > now.saturating_add(max_seconds) {
        return Err(Code::ExpiryInvalid);
    }
    Ok(())
}

/// Checks a signed change against the consent's current state.
pub fn check_change(
    change: &ChangePayload,
    status: ConsentStatus,
    expires_at: UnixSeconds,
    now: UnixSeconds,
    max_seconds: i64,
) -> Result<(), Code> {
    if !within_window(change.issued_at, now) {
        return Err(Code::StaleRequest);
    }
    if change.nonce.is_empty() || change.nonce.len() > 128 {
        return Err(Code::NonceInvalid);
    }
    match status {
        ConsentStatus::Revoked => return Err(Code::ConsentRevoked),
        ConsentStatus::Superseded => return Err(Code::ConsentSuperseded),
        ConsentStatus::Expired => return Err(Code::ConsentExpired),
        ConsentStatus::Active => {}
    }
    match change.action {
        ChangeAction::Revoke => Ok(()),
        ChangeAction::Expiry => {
            if expires_at <= now {
                return Err(Code::ConsentExpired);
            }
            match change.expires_at {
                Some(t) if t > now && t <= now.saturating_add(max_seconds) => Ok(()),
                _ => Err(Code::ExpiryInvalid),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn payload() -> ConsentPayload {
        ConsentPayload {
            v: 1,
            purpose_id: "p".into(),
            consumer: "daycare".into(),
            provider: "school".into(),
            items: vec!["allergy".into()],
            expires_at: 2_000,
            terms_sha256: "ab".repeat(32),
            issued_at: 1_000,
            nonce: "n".into(),
        }
    }

    const VERIFIED: ResidentFacts = ResidentFacts {
        level: Level::Verified,
        status: AccountStatus::Active,
        restriction: crate::identity::Restriction::None,
        erased: false,
    };

    #[test]
    fn an_issued_at_far_from_now_is_stale_without_overflow() {
        let now: UnixSeconds = 1_790_000_000;
        for issued_at in [i64::MIN, now.wrapping_sub(i64::MIN), i64::MAX] {
            let change = ChangePayload {
                consent_id: "c".into(),
                action: ChangeAction::Revoke,
                expires_at: None,
                issued_at,
                nonce: "n".into(),
            };
            assert_eq!(
                check_change(&change, ConsentStatus::Active, now + 10, now, 10_000),
                Err(Code::StaleRequest),
                "{issued_at}"
            );
            let p = ConsentPayload {
                issued_at,
                ..payload()
            };
            assert_eq!(
                check_consent(&p, Some(&purpose()), VERIFIED, now, 10_000),
                Err(Code::StaleRequest)
            );
        }
    }

    #[test]
    fn a_well_formed_consent_passes() {
        assert_eq!(
            check_consent(&payload(), Some(&purpose()), VERIFIED, 1_000, 10_000),
            Ok(())
        );
    }

    #[test]
    fn a_provisional_id_may_not_consent() {
        let r = ResidentFacts {
            level: Level::Provisional,
            status: AccountStatus::Active,
            restriction: crate::identity::Restriction::None,
            erased: false,
        };
        assert_eq!(
            check_consent(&payload(), Some(&purpose()), r, 1_000, 10_000),
            Err(Code::ProvisionalId)
        );
    }

    #[test]
    fn each_field_is_checked() {
        let check =
            |p: ConsentPayload| check_consent(&p, Some(&purpose()), VERIFIED, 1_000, 10_000);
        assert_eq!(
            check(ConsentPayload {
                items: vec!["income".into()],
                ..payload()
            }),
            Err(Code::ItemsNotCovered)
        );
        assert_eq!(
            check(ConsentPayload {
                items: vec![],
                ..payload()
            }),
            Err(Code::ItemsNotCovered)
        );
        assert_eq!(
            check(ConsentPayload {
                items: vec!["allergy".into(), "allergy".into()],
                ..payload()
            }),
            Err(Code::ItemsNotCovered)
        );
        assert_eq!(
            check(ConsentPayload {
                terms_sha256: "00".into(),
                ..payload()
            }),
            Err(Code::TermsMismatch)
        );
        assert_eq!(
            check(ConsentPayload {
                consumer: "other".into(),
                ..payload()
            }),
            Err(Code::TermsMismatch)
        );
        assert_eq!(
            check(ConsentPayload {
                issued_at: 1_000 - 301,
                ..payload()
            }),
            Err(Code::StaleRequest)
        );
        assert_eq!(
            check(ConsentPayload {
                expires_at: 1_000,
                ..payload()
            }),
            Err(Code::ExpiryInvalid)
        );
        assert_eq!(
            check(ConsentPayload {
                expires_at: 20_000,
                ..payload()
            }),
            Err(Code::ExpiryInvalid)
        );
        assert_eq!(
            check(ConsentPayload { v: 2, ..payload() }),
            Err(Code::InvalidRequest)
        );
        assert_eq!(
            check_consent(&payload(), None, VERIFIED, 1_000, 10_000),
            Err(Code::PurposeNotApproved)
        );
        let rule = PurposeFacts {
            legal_basis: LegalBasis::VitalInterest,
            ..purpose()
        };
        assert_eq!(
            check_consent(&payload(), Some(&rule), VERIFIED, 1_000, 10_000),
            Err(Code::NotConsentable)
        );
    }

    #[test]
    fn changes_apply_to_active_consents_only() {
        let change = ChangePayload {
            consent_id: "c".into(),
            action: ChangeAction::Expiry,
            expires_at: Some(5_000),
            issued_at: 1_000,
            nonce: "n".into(),
        };
        assert_eq!(
            check_change(&change, ConsentStatus::Active, 2_000, 1_000, 10_000),
            Ok(())
        );
        assert_eq!(
            check_change(&change, ConsentStatus::Revoked, 2_000, 1_000, 10_000),
            Err(Code::ConsentRevoked)
        );
        assert_eq!(
            check_change(&change, ConsentStatus::Active, 900, 1_000, 10_000),
            Err(Code::ConsentExpired)
        );
        let shorter = ChangePayload {
            expires_at: Some(999),
            ..change.clone()
        };
        assert_eq!(
            check_change(&shorter, ConsentStatus::Active, 2_000, 1_000, 10_000),
            Err(Code::ExpiryInvalid)
        );
        let revoke = ChangePayload {
            action: ChangeAction::Revoke,
            expires_at: None,
            ..change
        };
        assert_eq!(
            check_change(&revoke, ConsentStatus::Active, 900, 1_000, 10_000),
            Ok(()),
            "an expired consent can still be revoked"
        );
    }

    #[test]
    fn an_active_consent_past_its_expiry_reads_as_expired() {
        assert_eq!(effective_status(ConsentStatus::Active, 100, 100), "expired");
        assert_eq!(effective_status(ConsentStatus::Active, 101, 100), "active");
        assert_eq!(
            effective_status(ConsentStatus::Revoked, 101, 100),
            "revoked"
        );
    }
}
