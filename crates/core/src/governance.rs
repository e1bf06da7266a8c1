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
}

/// The new status once some decision has `quorum` distinct members behind it. Each member's
/// latest vote counts once; votes for decisions no longer allowed do not count.
pub fn tally(status: ServiceStatus, votes: &[CastVote], quorum: usize) -> Option<ServiceStatus> {
    let quorum = quorum.max(1);
    let mut latest: Vec<&CastVote> = Vec::new();
    for vote in votes {
        latest.retain(|v| v.member != vote.member);
        latest.push(vote);
    }
    allowed(status).iter().find_map(|decision| {
        let count = latest.iter().filter(|v| v.decision == *decision).count();
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
        }
    }

    #[test]
    fn a_quorum_of_distinct_members_decides() {
        let votes = [vote("m1", Decision::Approve), vote("m1", Decision::Approve)];
        assert_eq!(
            tally(ServiceStatus::PendingReview, &votes, 2),
            None,
            "one member counts once"
        );
        let votes = [vote("m1", Decision::Approve), vote("m2", Decision::Approve)];
        assert_eq!(
            tally(ServiceStatus::PendingReview, &votes, 2),
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
        assert_eq!(tally(ServiceStatus::PendingReview, &votes, 2), None);
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
            tally(ServiceStatus::Approved, &votes, 1),
            Some(ServiceStatus::Suspended)
        );
        assert_eq!(
            tally(
                ServiceStatus::Suspended,
                &[vote("m1", Decision::Reinstate)],
                1
            ),
            Some(ServiceStatus::Approved)
        );
    }
}
