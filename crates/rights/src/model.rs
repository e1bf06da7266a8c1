//! The rules of data-subject requests, without I/O: the request types and what each does,
//! the states and their transitions, deadlines, and the `[dsr]` configuration.

use serde::{Deserialize, Serialize};
use std::path::Path;
use tsunagu_capability::{ConfigError, Section};
use tsunagu_core::Code;
use tsunagu_core::identity::Restriction;

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// What a resident asks (APPI Art. 33–35 and seed 000's 開示・訂正・利用停止).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestType {
    /// 開示: a copy of everything the platform holds about the resident.
    Disclosure,
    /// 訂正: a correction (a person decides).
    Correction,
    /// 利用停止: the platform stops using the resident's data.
    Suspension,
    /// 消去: the account and its personal data are erased.
    Erasure,
    /// 第三者提供の停止: no consent-based provision to third parties.
    StopProvision,
    /// Lifts a suspension or a stop of provision.
    Resume,
}

impl RequestType {
    pub const ALL: [RequestType; 6] = [
        RequestType::Disclosure,
        RequestType::Correction,
        RequestType::Suspension,
        RequestType::Erasure,
        RequestType::StopProvision,
        RequestType::Resume,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::Disclosure => "disclosure",
            RequestType::Correction => "correction",
            RequestType::Suspension => "suspension",
            RequestType::Erasure => "erasure",
            RequestType::StopProvision => "stop_provision",
            RequestType::Resume => "resume",
        }
    }

    pub fn parse(s: &str) -> Option<RequestType> {
        RequestType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// How the request is handled when it is filed.
    pub fn handling(self) -> Handling {
        match self {
            RequestType::Disclosure => Handling::Disclose,
            RequestType::Suspension => Handling::Restrict(Restriction::Suspension),
            RequestType::StopProvision => Handling::Restrict(Restriction::StopProvision),
            RequestType::Resume => Handling::Restrict(Restriction::None),
            RequestType::Erasure => Handling::Erase,
            RequestType::Correction => Handling::Staff,
        }
    }
}

/// What filing a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Completed at once: the export is ready.
    Disclose,
    /// Completed at once by setting the account's restriction.
    Restrict(Restriction),
    /// Completed at once by erasing the account.
    Erase,
    /// Waits in the staff queue.
    Staff,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Received,
    InProgress,
    Completed,
    Refused,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Received => "received",
            RequestStatus::InProgress => "in_progress",
            RequestStatus::Completed => "completed",
            RequestStatus::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<RequestStatus> {
        match s {
            "received" => Some(RequestStatus::Received),
            "in_progress" => Some(RequestStatus::InProgress),
            "completed" => Some(RequestStatus::Completed),
            "refused" => Some(RequestStatus::Refused),
            _ => None,
        }
    }

    /// Still waiting for a decision.
    pub fn is_open(self) -> bool {
        matches!(self, RequestStatus::Received | RequestStatus::InProgress)
    }
}

/// Whether staff may move a request from `from` to `to` (received → in_progress →
/// completed | refused; a decision is final). A refusal needs a reason.
pub fn transition(
    from: RequestStatus,
    to: RequestStatus,
    reason: Option<&str>,
) -> Result<(), (Code, &'static str)> {
    if !from.is_open() {
        return Err((Code::RequestClosed, "the request was already decided"));
    }
    match to {
        RequestStatus::Received => Err((
            Code::InvalidRequest,
            "a decision is in_progress, completed or refused",
        )),
        RequestStatus::InProgress if from == RequestStatus::InProgress => {
            Err((Code::InvalidRequest, "the request is already in progress"))
        }
        RequestStatus::Refused if reason.is_none_or(|r| r.trim().is_empty()) => Err((
            Code::ReasonRequired,
            "a refusal must give the resident a reason",
        )),
        _ => Ok(()),
    }
}

/// `[dsr]`: residents' data-subject requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DsrConfig {
    /// Days from receipt to the deadline, per request type.
    #[serde(default)]
    pub deadline_days: DeadlineDays,
}

/// `[dsr.deadline_days]`: days per request type (defaults 14; erasure 30).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadlineDays {
    pub disclosure: u32,
    pub correction: u32,
    pub suspension: u32,
    pub erasure: u32,
    pub stop_provision: u32,
    pub resume: u32,
}

impl Default for DeadlineDays {
    fn default() -> Self {
        DeadlineDays {
            disclosure: 14,
            correction: 14,
            suspension: 14,
            erasure: 30,
            stop_provision: 14,
            resume: 14,
        }
    }
}

impl DeadlineDays {
    pub fn days(&self, t: RequestType) -> u32 {
        match t {
            RequestType::Disclosure => self.disclosure,
            RequestType::Correction => self.correction,
            RequestType::Suspension => self.suspension,
            RequestType::Erasure => self.erasure,
            RequestType::StopProvision => self.stop_provision,
            RequestType::Resume => self.resume,
        }
    }
}

impl DsrConfig {
    /// The deadline of a request of this type received at `received_at`.
    pub fn deadline(&self, t: RequestType, received_at: i64) -> i64 {
        received_at.saturating_add(i64::from(self.deadline_days.days(t)) * DAY)
    }
}

impl Section for DsrConfig {
    const NAME: &'static str = "dsr";

    fn resolve_paths(&mut self, _base: &Path) {}

    fn validate(&self) -> Result<(), ConfigError> {
        for t in RequestType::ALL {
            let days = self.deadline_days.days(t);
            if !(1..=366).contains(&days) {
                return Err(ConfigError::Invalid(format!(
                    "dsr.deadline_days.{}: {days} is not between 1 and 366 days",
                    t.as_str()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn deadlines_default_to_14_days_and_30_for_erasure() {
        let c = DsrConfig::default();
        assert_eq!(c.deadline(RequestType::Disclosure, 1_000), 1_000 + 14 * DAY);
        assert_eq!(c.deadline(RequestType::Erasure, 1_000), 1_000 + 30 * DAY);
        c.validate().unwrap();
    }

    #[test]
    fn a_deadline_of_zero_days_is_refused_naming_the_key() {
        let mut c = DsrConfig::default();
        c.deadline_days.correction = 0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("dsr.deadline_days.correction"), "{e}");
    }

    #[test]
    fn only_correction_waits_for_staff() {
        for t in RequestType::ALL {
            assert_eq!(
                t.handling() == Handling::Staff,
                t == RequestType::Correction,
                "{t:?}"
            );
            assert_eq!(RequestType::parse(t.as_str()), Some(t));
        }
        assert_eq!(RequestType::parse("delete_everything"), None);
    }

    #[test]
    fn a_refusal_needs_a_reason_and_a_decision_is_final() {
        use RequestStatus::*;
        assert_eq!(
            transition(Received, Refused, None).unwrap_err().0,
            Code::ReasonRequired
        );
        assert_eq!(
            transition(Received, Refused, Some("  ")).unwrap_err().0,
            Code::ReasonRequired
        );
        transition(Received, Refused, Some("not ours")).unwrap();
        transition(Received, InProgress, None).unwrap();
        transition(InProgress, Completed, None).unwrap();
        assert_eq!(
            transition(InProgress, InProgress, None).unwrap_err().0,
            Code::InvalidRequest
        );
        assert_eq!(
            transition(Received, Received, None).unwrap_err().0,
            Code::InvalidRequest
        );
        for closed in [Completed, Refused] {
            for to in [Received, InProgress, Completed, Refused] {
                assert_eq!(
                    transition(closed, to, Some("x")).unwrap_err().0,
                    Code::RequestClosed
                );
            }
        }
    }

    proptest! {
        #[test]
        fn a_deadline_never_precedes_receipt(t in 0usize..6, at in any::<i64>(), days in 1u32..=366) {
            let mut c = DsrConfig::default();
            c.deadline_days.disclosure = days;
            c.deadline_days.erasure = days;
            let d = c.deadline(RequestType::ALL[t], at);
            prop_assert!(d >= at);
        }
    }
}
