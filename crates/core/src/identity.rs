//! Resident identity: assurance levels, account and device states, the four basic items,
//! the lock-out rule for failed logins, and how an enrollment binds to accounts.

use crate::{Code, UnixSeconds};
use serde::{Deserialize, Serialize};

/// Assurance level of a resident ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// 仮ID: a device key with no identity proofing. May log in; may not consent to data
    /// linkage nor use payment-like services.
    Provisional,
    /// Proofed once with the My Number card's signing certificate (署名用電子証明書).
    Verified,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Provisional => "provisional",
            Level::Verified => "verified",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "provisional" => Some(Level::Provisional),
            "verified" => Some(Level::Verified),
            _ => None,
        }
    }
}

/// What a resident asked the platform to stop (SPEC §9), orthogonal to level and status.
/// Either stops every consent-based ticket and every identity claim to services; a
/// suspension (利用停止) is the stronger. Standing legal-basis rules still provide under both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Restriction {
    #[default]
    None,
    /// 利用停止: no use of the resident's data on the platform.
    Suspension,
    /// 第三者提供の停止: no provision to third parties.
    StopProvision,
}

impl Restriction {
    pub fn as_str(self) -> &'static str {
        match self {
            Restriction::None => "none",
            Restriction::Suspension => "suspension",
            Restriction::StopProvision => "stop_provision",
        }
    }

    pub fn parse(s: &str) -> Option<Restriction> {
        match s {
            "none" => Some(Restriction::None),
            "suspension" => Some(Restriction::Suspension),
            "stop_provision" => Some(Restriction::StopProvision),
            _ => None,
        }
    }

    /// Whether consent-based provision is stopped.
    pub fn stops_provision(self) -> bool {
        self != Restriction::None
    }

    /// Whether the platform releases identity claims to services (OpenID Connect): not under
    /// either (a relying party is a third party too).
    pub fn releases_claims(self) -> bool {
        self == Restriction::None
    }

    /// What a resident's request for `requested` leaves in force: `None` is the resume and
    /// lifts either; otherwise the stronger of the two (a stop of provision asked under a
    /// suspension does not weaken it).
    pub fn then(self, requested: Restriction) -> Restriction {
        match (self, requested) {
            (_, Restriction::None) => Restriction::None,
            (Restriction::Suspension, _) | (_, Restriction::Suspension) => Restriction::Suspension,
            _ => Restriction::StopProvision,
        }
    }
}

#[cfg(test)]
mod restriction_tests {
    use super::Restriction::{self, *};

    #[test]
    fn a_request_never_weakens_a_restriction_except_the_resume() {
        let all = [None, Suspension, StopProvision];
        for current in all {
            assert_eq!(current.then(Restriction::None), Restriction::None);
            assert_eq!(current.then(Suspension), Suspension);
        }
        assert_eq!(Restriction::None.then(StopProvision), StopProvision);
        assert_eq!(StopProvision.then(StopProvision), StopProvision);
        assert_eq!(Suspension.then(StopProvision), Suspension);
        for r in all {
            assert_eq!(r.stops_provision(), r != Restriction::None);
            assert_eq!(r.releases_claims(), r == Restriction::None);
            assert_eq!(Restriction::parse(r.as_str()), Some(r));
        }
    }
}

/// State of an account, orthogonal to its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    /// The card certificate that proofed this ID was revoked (for example because a move
    /// changed the address, and J-LIS revoked the certificate): the proofed attributes may be
    /// stale, so the resident must proof again with the new certificate (JPKI 現況確認).
    ReproofRequired,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::ReproofRequired => "reproof_required",
        }
    }

    pub fn parse(s: &str) -> Option<AccountStatus> {
        match s {
            "active" => Some(AccountStatus::Active),
            "reproof_required" => Some(AccountStatus::ReproofRequired),
            _ => None,
        }
    }
}

/// State of a device credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    Active,
    /// Revoked (lost device, or by the resident): it can sign nothing more. Consents it
    /// signed earlier stay valid.
    Revoked,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Active => "active",
            DeviceStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<DeviceStatus> {
        match s {
            "active" => Some(DeviceStatus::Active),
            "revoked" => Some(DeviceStatus::Revoked),
            _ => None,
        }
    }
}

/// Sex as recorded in the basic items (性別). The code values on the JPKI certificate are
/// not published; `1`/`2`/`3` and the Japanese words are accepted (see DOMAIN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Male,
    Female,
    /// Code `3` or any other recorded value: not stated as male or female.
    Other,
}

impl Sex {
    /// Reads the value of the JPKI sex otherName.
    pub fn from_jpki(value: &str) -> Option<Sex> {
        match value.trim() {
            "1" | "男" | "男性" => Some(Sex::Male),
            "2" | "女" | "女性" => Some(Sex::Female),
            "3" | "9" | "不明" | "その他" => Some(Sex::Other),
            _ => None,
        }
    }

    /// The OpenID Connect `gender` claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
            Sex::Other => "other",
        }
    }
}

/// The four basic items (基本4情報) read from the card's signing certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasicAttributes {
    /// 氏名
    pub name: String,
    /// 住所
    pub address: String,
    /// 生年月日, ISO 8601 `YYYY-MM-DD`.
    pub birthdate: String,
    /// 性別
    pub sex: Sex,
    /// 氏名代替文字: substitute characters for a name that holds characters outside the
    /// card's character set (外字).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_substitute: Option<String>,
    /// 住所代替文字.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_substitute: Option<String>,
}

/// The growing lock-out applied to a device credential after failed logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutPolicy {
    /// Failures tolerated before the first lock.
    pub threshold: u32,
    /// Length of the first lock.
    pub base_seconds: u64,
    /// Longest lock.
    pub max_seconds: u64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            threshold: 3,
            base_seconds: 30,
            max_seconds: 24 * 3600,
        }
    }
}

impl LockoutPolicy {
    /// How long to lock after the `failures`-th consecutive failure: nothing below the
    /// threshold, then the base doubled for each further failure, capped at the maximum.
    pub fn lock_after(&self, failures: u32) -> Option<u64> {
        if failures < self.threshold.max(1) {
            return None;
        }
        let doublings = failures - self.threshold.max(1);
        let factor = 1u64.checked_shl(doublings.min(63)).unwrap_or(u64::MAX);
        Some(
            self.base_seconds
                .saturating_mul(factor)
                .min(self.max_seconds)
                .max(1),
        )
    }
}

/// What the platform knows about a device credential when a login arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceGate {
    pub status: DeviceStatus,
    pub locked_until: Option<UnixSeconds>,
    pub expires_at: UnixSeconds,
}

/// May this device attempt a login at `now`? Checked before the nonce and the signature so
/// that a locked or revoked credential learns nothing from a correct signature.
pub fn login_gate(device: &DeviceGate, now: UnixSeconds) -> Result<(), Code> {
    if device.status == DeviceStatus::Revoked {
        return Err(Code::CredentialRevoked);
    }
    if device.expires_at <= now {
        return Err(Code::CredentialExpired);
    }
    if let Some(until) = device.locked_until
        && until > now
    {
        return Err(Code::Locked);
    }
    Ok(())
}

/// A device credential lives until the earlier of the card certificate's expiry and the
/// configured maximum; a provisional one (no card) until the maximum.
pub fn credential_expiry(
    now: UnixSeconds,
    card_not_after: Option<UnixSeconds>,
    max_seconds: i64,
) -> UnixSeconds {
    let max = now.saturating_add(max_seconds);
    match card_not_after {
        Some(not_after) => not_after.min(max),
        None => max,
    }
}

/// An account as the enrollment decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountFacts {
    pub account_id: String,
    pub level: Level,
    pub status: AccountStatus,
    /// Birth date of the proofed person, when the account is verified.
    pub birthdate: Option<String>,
    /// Name of the proofed person (as on the residence record), when the account is verified.
    pub name: Option<String>,
}

/// A device key that is already enrolled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolledDevice {
    pub device_id: String,
    pub status: DeviceStatus,
    pub account: AccountFacts,
}

/// A verified card proof, reduced to what binding needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardProof {
    pub birthdate: String,
    pub name: String,
    /// The account this very card certificate already proofed, if any.
    pub bound_account: Option<AccountFacts>,
    /// The account an earlier certificate of the same person proofed, when J-LIS links that
    /// certificate's serial number to this one (シリアル番号の紐付け: the card was renewed or
    /// the certificate reissued after a move or a change of name).
    pub linked_account: Option<AccountFacts>,
}

/// What an accepted enrollment does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollmentPlan {
    /// A new provisional ID with this device.
    NewProvisional,
    /// A new verified ID with this device and card.
    NewVerified,
    /// Another device for the account this card already proofed.
    AddDevice { account_id: String },
    /// A provisional ID proofed with a card: upgraded to verified.
    Upgrade { account_id: String },
    /// A verified ID proofed again (a new card certificate after a move or renewal).
    Reproof { account_id: String },
    /// A new device for an account whose earlier certificate J-LIS links to this card's: the
    /// account is proofed again with the new certificate and the device added to it.
    ReproofWithNewDevice { account_id: String },
}

/// Names as the residence record writes them, compared without the spaces (half- or
/// full-width) that separate family and given names.
pub fn same_name(a: &str, b: &str) -> bool {
    let strip = |s: &str| -> String { s.chars().filter(|c| !c.is_whitespace()).collect() };
    let (a, b) = (strip(a), strip(b));
    !a.is_empty() && a == b
}

/// Whether a new certificate may re-proof a verified account: the unchangeable birth date and
/// the name must both match, or J-LIS must link the account's certificate to the new one (a
/// change of name, by marriage for example, is only followed through that linkage). A birth
/// date alone is shared by twins and by strangers.
fn same_person(account: &AccountFacts, proof: &CardProof) -> bool {
    let linked = proof
        .linked_account
        .as_ref()
        .is_some_and(|l| l.account_id == account.account_id);
    let matches = account.birthdate.as_deref() == Some(proof.birthdate.as_str())
        && account
            .name
            .as_deref()
            .is_some_and(|n| same_name(n, &proof.name));
    linked || matches
}

/// Decides how an enrollment binds, from the enrolled device (if the key is known) and the
/// verified card proof (if one was given).
///
/// A new card certificate reaches an existing account in two ways: through an enrolled device
/// of that account when the birth date and the name match, or through J-LIS's linkage of the
/// old certificate's serial number to the new one. Otherwise it is a different person.
pub fn decide_enrollment(
    device: Option<&EnrolledDevice>,
    proof: Option<&CardProof>,
) -> Result<EnrollmentPlan, Code> {
    match (device, proof) {
        (Some(d), _) if d.status == DeviceStatus::Revoked => Err(Code::CredentialRevoked),
        (Some(_), None) => Err(Code::DeviceAlreadyEnrolled),
        (Some(d), Some(p)) => {
            let elsewhere = |a: &Option<AccountFacts>| {
                a.as_ref()
                    .is_some_and(|a| a.account_id != d.account.account_id)
            };
            if elsewhere(&p.bound_account) || elsewhere(&p.linked_account) {
                return Err(Code::IdentityMismatch);
            }
            match d.account.level {
                Level::Provisional => Ok(EnrollmentPlan::Upgrade {
                    account_id: d.account.account_id.clone(),
                }),
                Level::Verified if same_person(&d.account, p) => Ok(EnrollmentPlan::Reproof {
                    account_id: d.account.account_id.clone(),
                }),
                Level::Verified => Err(Code::IdentityMismatch),
            }
        }
        (None, None) => Ok(EnrollmentPlan::NewProvisional),
        (None, Some(p)) => match (&p.bound_account, &p.linked_account) {
            (Some(bound), _) => Ok(EnrollmentPlan::AddDevice {
                account_id: bound.account_id.clone(),
            }),
            (None, Some(linked)) => Ok(EnrollmentPlan::ReproofWithNewDevice {
                account_id: linked.account_id.clone(),
            }),
            (None, None) => Ok(EnrollmentPlan::NewVerified),
        },
    }
}

/// A device's state at a moment, as the resident is shown it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Active,
    Locked,
    Expired,
    Revoked,
}

impl DeviceState {
    /// The state at `now` of a device with this stored status, lock and credential expiry:
    /// revoked stays revoked; an active credential past its expiry is expired; one whose
    /// lock has not run out is locked.
    pub fn at(status: DeviceStatus, locked_until: Option<i64>, expires_at: i64, now: i64) -> Self {
        match status {
            DeviceStatus::Revoked => DeviceState::Revoked,
            DeviceStatus::Active if expires_at <= now => DeviceState::Expired,
            DeviceStatus::Active if locked_until.is_some_and(|u| u > now) => DeviceState::Locked,
            DeviceStatus::Active => DeviceState::Active,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Active => "active",
            DeviceState::Locked => "locked",
            DeviceState::Expired => "expired",
            DeviceState::Revoked => "revoked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(level: Level, birthdate: Option<&str>) -> AccountFacts {
        AccountFacts {
            account_id: "acct-1".into(),
            level,
            status: AccountStatus::Active,
            birthdate: birthdate.map(str::to_owned),
            name: birthdate.map(|_| "山田 花子".to_owned()),
        }
    }

    fn device(status: DeviceStatus, account: AccountFacts) -> EnrolledDevice {
        EnrolledDevice {
            device_id: "dev-1".into(),
            status,
            account,
        }
    }

    fn proof(birthdate: &str, bound: Option<AccountFacts>) -> CardProof {
        named("山田　花子", birthdate, bound)
    }

    fn named(name: &str, birthdate: &str, bound: Option<AccountFacts>) -> CardProof {
        CardProof {
            birthdate: birthdate.into(),
            name: name.into(),
            bound_account: bound,
            linked_account: None,
        }
    }

    #[test]
    fn a_new_key_without_proof_gets_a_provisional_id() {
        assert_eq!(
            decide_enrollment(None, None),
            Ok(EnrollmentPlan::NewProvisional)
        );
    }

    #[test]
    fn a_new_key_with_a_new_card_gets_a_verified_id() {
        assert_eq!(
            decide_enrollment(None, Some(&proof("1980-01-01", None))),
            Ok(EnrollmentPlan::NewVerified)
        );
    }

    #[test]
    fn a_new_key_with_a_known_card_becomes_another_device_of_that_account() {
        let bound = account(Level::Verified, Some("1980-01-01"));
        assert_eq!(
            decide_enrollment(None, Some(&proof("1980-01-01", Some(bound)))),
            Ok(EnrollmentPlan::AddDevice {
                account_id: "acct-1".into()
            })
        );
    }

    #[test]
    fn an_enrolled_key_without_proof_is_refused() {
        let d = device(DeviceStatus::Active, account(Level::Provisional, None));
        assert_eq!(
            decide_enrollment(Some(&d), None),
            Err(Code::DeviceAlreadyEnrolled)
        );
    }

    #[test]
    fn a_revoked_key_can_never_enroll_again() {
        let d = device(DeviceStatus::Revoked, account(Level::Provisional, None));
        assert_eq!(
            decide_enrollment(Some(&d), Some(&proof("1980-01-01", None))),
            Err(Code::CredentialRevoked)
        );
    }

    #[test]
    fn a_provisional_id_is_upgraded_by_a_card_proof() {
        let d = device(DeviceStatus::Active, account(Level::Provisional, None));
        assert_eq!(
            decide_enrollment(Some(&d), Some(&proof("1980-01-01", None))),
            Ok(EnrollmentPlan::Upgrade {
                account_id: "acct-1".into()
            })
        );
    }

    #[test]
    fn a_verified_id_is_reproofed_only_by_the_same_person() {
        let d = device(
            DeviceStatus::Active,
            account(Level::Verified, Some("1980-01-01")),
        );
        assert_eq!(
            decide_enrollment(Some(&d), Some(&proof("1980-01-01", None))),
            Ok(EnrollmentPlan::Reproof {
                account_id: "acct-1".into()
            })
        );
        assert_eq!(
            decide_enrollment(Some(&d), Some(&proof("1990-05-05", None))),
            Err(Code::IdentityMismatch)
        );
    }

    #[test]
    fn the_same_birth_date_with_another_name_is_another_person() {
        // A twin or a sibling with the same birth date holding the device cannot take over.
        let d = device(
            DeviceStatus::Active,
            account(Level::Verified, Some("1980-01-01")),
        );
        assert_eq!(
            decide_enrollment(Some(&d), Some(&named("山田 太郎", "1980-01-01", None))),
            Err(Code::IdentityMismatch)
        );
    }

    #[test]
    fn a_change_of_name_is_followed_only_through_the_serial_linkage() {
        let acct = account(Level::Verified, Some("1980-01-01"));
        let d = device(DeviceStatus::Active, acct.clone());
        let married = named("佐藤 花子", "1980-01-01", None);
        assert_eq!(
            decide_enrollment(Some(&d), Some(&married)),
            Err(Code::IdentityMismatch)
        );
        let linked = CardProof {
            linked_account: Some(acct.clone()),
            ..married.clone()
        };
        assert_eq!(
            decide_enrollment(Some(&d), Some(&linked)),
            Ok(EnrollmentPlan::Reproof {
                account_id: "acct-1".into()
            })
        );
        // A new device with the linked certificate reaches the same account.
        assert_eq!(
            decide_enrollment(None, Some(&linked)),
            Ok(EnrollmentPlan::ReproofWithNewDevice {
                account_id: "acct-1".into()
            })
        );
        // A certificate linked to another account cannot move to this one.
        let mut other = acct;
        other.account_id = "acct-2".into();
        let elsewhere = CardProof {
            linked_account: Some(other),
            ..married
        };
        assert_eq!(
            decide_enrollment(Some(&d), Some(&elsewhere)),
            Err(Code::IdentityMismatch)
        );
    }

    #[test]
    fn names_compare_without_separating_spaces() {
        assert!(same_name("山田　花子", "山田 花子"));
        assert!(same_name("山田花子", " 山田 花子 "));
        assert!(!same_name("山田花子", "山田太郎"));
        assert!(!same_name("", " "));
    }

    #[test]
    fn a_card_bound_to_another_account_cannot_be_moved_by_enrolling() {
        let d = device(DeviceStatus::Active, account(Level::Provisional, None));
        let mut other = account(Level::Verified, Some("1980-01-01"));
        other.account_id = "acct-2".into();
        assert_eq!(
            decide_enrollment(Some(&d), Some(&proof("1980-01-01", Some(other)))),
            Err(Code::IdentityMismatch)
        );
    }

    #[test]
    fn lockout_starts_at_the_threshold_and_doubles_up_to_the_cap() {
        let p = LockoutPolicy {
            threshold: 3,
            base_seconds: 30,
            max_seconds: 200,
        };
        assert_eq!(p.lock_after(1), None);
        assert_eq!(p.lock_after(2), None);
        assert_eq!(p.lock_after(3), Some(30));
        assert_eq!(p.lock_after(4), Some(60));
        assert_eq!(p.lock_after(5), Some(120));
        assert_eq!(p.lock_after(6), Some(200));
        assert_eq!(p.lock_after(u32::MAX), Some(200));
    }

    #[test]
    fn the_login_gate_checks_revocation_then_expiry_then_lock() {
        let gate = |status, locked_until, expires_at| DeviceGate {
            status,
            locked_until,
            expires_at,
        };
        assert_eq!(
            login_gate(&gate(DeviceStatus::Revoked, Some(200), 50), 100),
            Err(Code::CredentialRevoked)
        );
        assert_eq!(
            login_gate(&gate(DeviceStatus::Active, Some(200), 50), 100),
            Err(Code::CredentialExpired)
        );
        assert_eq!(
            login_gate(&gate(DeviceStatus::Active, Some(200), 500), 100),
            Err(Code::Locked)
        );
        assert_eq!(
            login_gate(&gate(DeviceStatus::Active, Some(100), 500), 100),
            Ok(())
        );
        assert_eq!(
            login_gate(&gate(DeviceStatus::Active, None, 500), 100),
            Ok(())
        );
    }

    #[test]
    fn credentials_end_with_the_card_or_the_maximum_whichever_is_first() {
        assert_eq!(credential_expiry(100, Some(150), 1000), 150);
        assert_eq!(credential_expiry(100, Some(5000), 1000), 1100);
        assert_eq!(credential_expiry(100, None, 1000), 1100);
    }

    #[test]
    fn jpki_sex_values_are_read_in_codes_and_words() {
        assert_eq!(Sex::from_jpki("1"), Some(Sex::Male));
        assert_eq!(Sex::from_jpki("女"), Some(Sex::Female));
        assert_eq!(Sex::from_jpki("3"), Some(Sex::Other));
        assert_eq!(Sex::from_jpki("x"), None);
    }

    #[test]
    fn a_device_is_shown_revoked_expired_locked_or_active_in_that_order() {
        use DeviceState::*;
        let t = 1_000;
        assert_eq!(
            DeviceState::at(DeviceStatus::Revoked, Some(t + 9), t - 1, t),
            Revoked
        );
        assert_eq!(
            DeviceState::at(DeviceStatus::Active, Some(t + 9), t, t),
            Expired
        );
        assert_eq!(
            DeviceState::at(DeviceStatus::Active, Some(t + 9), t + 1, t),
            Locked
        );
        assert_eq!(
            DeviceState::at(DeviceStatus::Active, Some(t), t + 1, t),
            Active
        );
        assert_eq!(
            DeviceState::at(DeviceStatus::Active, None, t + 1, t),
            Active
        );
    }
}
