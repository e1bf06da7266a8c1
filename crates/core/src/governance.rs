//! The data governance committee (データガバナンス委員会): signed votes and the quorum rule.

use crate::Code;
use crate::service::ServiceStatus;
use serde::{Deserialize, Serialize};

/// What a member votes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
    Suspend,
    Reinstate,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
            Decision::Suspend => "suspend",
            Decision::Reinstate => "reinstate",
        }
    }

    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "approve" => Some(Decision::Approve),
            "reject" => Some(Decision::Reject),
            "suspend" => Some(Decision::Suspend),
            "reinstate" => Some(Decision::Reinstate),
            _ => None,
        }
    }

    /// The status this decision leads to once it reaches the quorum.
    pub fn outcome(self) -> ServiceStatus {
        match self {
            Decision::Approve | Decision::Reinstate => ServiceStatus::Approved,
            Decision::Reject => ServiceStatus::Rejected,
            Decision::Suspend => ServiceStatus::Suspended,
        }
    }
}

/// The payload of a committee member's signed vote (a JWS, header `kid` = the member id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VotePayload {
    pub service_id: String,
    /// `approve`, `reject`, `suspend` or `reinstate` ([`Decision::parse`]).
    pub decision: String,
    #[serde(default)]
    pub comment: String,
    pub issued_at: i64,
    pub nonce: String,
    /// The lint error findings an approval overrides, by code ([`check_overrides`]).
    #[serde(default, rename = "override", skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
}

/// The decisions a vote may carry for a service in `status`.
pub fn allowed(status: ServiceStatus) -> &'static [Decision] {
    match status {
        ServiceStatus::PendingReview => &[Decision::Approve, Decision::Reject],
        ServiceStatus::Approved => &[Decision::Suspend],
        ServiceStatus::Suspended => &[Decision::Reinstate, Decision::Reject],
        ServiceStatus::Rejected => &[],
    }
}

/// Checks that a vote can be cast now.
pub fn check_vote(status: ServiceStatus, decision: Decision) -> Result<(), Code> {
    if allowed(status).contains(&decision) {
        Ok(())
    } else {
        Err(Code::VoteNotApplicable)
    }
}

/// A vote counted in the current round: the latest vote of each member since the service's
/// last change of status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CastVote {
    pub member: String,
    pub decision: Decision,
    /// The lint error codes the member approves over (`override` in the signed vote).
    pub overrides: Vec<String>,
}

/// Checks a vote's `override` against the application's blocking findings (the codes of its
/// lint findings of severity `error`): an approval must name every one of them, and only
/// them; other decisions override nothing.
pub fn check_overrides(
    decision: Decision,
    overrides: &[String],
    blocking: &[String],
) -> Result<(), (Code, String)> {
    if decision != Decision::Approve {
        if overrides.is_empty() {
            return Ok(());
        }
        return Err((
            Code::InvalidRequest,
            "only an approval overrides lint findings: `override` must be empty".into(),
        ));
    }
    if let Some(stray) = overrides.iter().find(|c| !blocking.contains(c)) {
        return Err((
            Code::InvalidRequest,
            format!(
                "`override` names `{stray}`, which is not an error finding of this application"
            ),
        ));
    }
    let missing: Vec<&str> = blocking
        .iter()
        .filter(|c| !overrides.contains(c))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err((
            Code::FindingsNotOverridden,
            format!(
                "the application has error findings that block approval; an approving vote \
                 must name each one it overrides in `override`: {}",
                missing.join(", ")
            ),
        ))
    }
}

/// The new status once some decision has `quorum` distinct members behind it. Each member's
/// latest vote counts once; votes for decisions no longer allowed do not count, nor do
/// approvals that do not override every finding in `blocking`.
pub fn tally(
    status: ServiceStatus,
    votes: &[CastVote],
    quorum: usize,
    blocking: &[String],
) -> Option<ServiceStatus> {
    let quorum = quorum.max(1);
    let mut latest: Vec<&CastVote> = Vec::new();
    for vote in votes {
        latest.retain(|v| v.member != vote.member);
        latest.push(vote);
    }
    allowed(status).iter().find_map(|decision| {
        let count = latest
            .iter()
            .filter(|v| {
                v.decision == *decision
                    && check_overrides(v.decision, &v.overrides, blocking).is_ok()
            })
            .count();
        (count >= quorum).then(|| decision.outcome())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(member: &str, decision: Decision) -> CastVote {
        CastVote {
            member: member.into(),
            decision,
            overrides: vec![],
        }
    }

    #[test]
    fn a_quorum_of_distinct_members_decides() {
        let votes = [vote("m1", Decision::Approve), vote("m1", Decision::Approve)];
        assert_eq!(
            tally(ServiceStatus::PendingReview, &votes, 2, &[]),
            None,
            "one member counts once"
        );
        let votes = [vote("m1", Decision::Approve), vote("m2", Decision::Approve)];
        assert_eq!(
            tally(ServiceStatus::PendingReview, &votes, 2, &[]),
            Some(ServiceStatus::Approved)
        );
    }

    #[test]
    fn a_member_who_changes_their_mind_counts_with_the_latest_vote() {
        let votes = [
            vote("m1", Decision::Approve),
            vote("m2", Decision::Approve),
            vote("m1", Decision::Reject),
        ];
        assert_eq!(tally(ServiceStatus::PendingReview, &votes, 2, &[]), None);
    }

    #[test]
    fn votes_must_fit_the_state() {
        assert_eq!(
            check_vote(ServiceStatus::PendingReview, Decision::Suspend),
            Err(Code::VoteNotApplicable)
        );
        assert_eq!(
            check_vote(ServiceStatus::Approved, Decision::Suspend),
            Ok(())
        );
        assert_eq!(
            check_vote(ServiceStatus::Suspended, Decision::Reinstate),
            Ok(())
        );
        assert_eq!(
            check_vote(ServiceStatus::Rejected, Decision::Approve),
            Err(Code::VoteNotApplicable)
        );
        let votes = [vote("m1", Decision::Suspend)];
        assert_eq!(
            tally(ServiceStatus::Approved, &votes, 1, &[]),
            Some(ServiceStatus::Suspended)
        );
        assert_eq!(
            tally(
                ServiceStatus::Suspended,
                &[vote("m1", Decision::Reinstate)],
                1,
                &[]
            ),
            Some(ServiceStatus::Approved)
        );
    }

    #[test]
    fn error_findings_block_approval_unless_each_is_overridden() {
        let blocking = vec!["purpose_too_broad".to_owned(), "no_retention".to_owned()];
        let approve = |member: &str, overrides: &[&str]| CastVote {
            member: member.into(),
            decision: Decision::Approve,
            overrides: overrides.iter().map(|s| (*s).to_owned()).collect(),
        };
        // Plain approvals do not count over error findings.
        let votes = [vote("m1", Decision::Approve), vote("m2", Decision::Approve)];
        assert_eq!(
            tally(ServiceStatus::PendingReview, &votes, 2, &blocking),
            None
        );
        // Overriding one of two is not enough.
        let votes = [
            approve("m1", &["purpose_too_broad"]),
            approve("m2", &["no_retention", "purpose_too_broad"]),
        ];
        assert_eq!(
            tally(ServiceStatus::PendingReview, &votes, 2, &blocking),
            None
        );
        let votes = [
            approve("m1", &["no_retention", "purpose_too_broad"]),
            approve("m2", &["purpose_too_broad", "no_retention"]),
        ];
        assert_eq!(
            tally(ServiceStatus::PendingReview, &votes, 2, &blocking),
            Some(ServiceStatus::Approved)
        );
        // Rejecting needs no override.
        let votes = [vote("m1", Decision::Reject)];
        assert_eq!(
            tally(ServiceStatus::PendingReview, &votes, 1, &blocking),
            Some(ServiceStatus::Rejected)
        );

        let missing = check_overrides(Decision::Approve, &[], &blocking).unwrap_err();
        assert_eq!(missing.0, Code::FindingsNotOverridden);
        assert!(missing.1.contains("purpose_too_broad") && missing.1.contains("no_retention"));
        let stray = check_overrides(
            Decision::Approve,
            &[
                "no_retention".into(),
                "purpose_too_broad".into(),
                "made_up".into(),
            ],
            &blocking,
        )
        .unwrap_err();
        assert_eq!(stray.0, Code::InvalidRequest);
        assert!(stray.1.contains("made_up"));
        assert_eq!(
            check_overrides(Decision::Reject, &["no_retention".into()], &blocking)
                .unwrap_err()
                .0,
            Code::InvalidRequest,
            "a rejection overrides nothing"
        );
        assert_eq!(check_overrides(Decision::Approve, &[], &[]), Ok(()));
    }
}
