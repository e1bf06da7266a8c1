//! The data governance committee's signed votes: arbitrary bytes as a vote's JWS payload
//! (`tsunagu_core::governance::VotePayload`, as the platform reads it), then `Decision::parse` and `check_overrides` on what it says;
//! and structured rounds of votes for `tally`. Never a panic; an approval `tally` counts
//! always passes `check_overrides`; `tally` only ever moves a service to an outcome its
//! status allows.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tsunagu_core::governance::{self, CastVote, Decision, VotePayload};
use tsunagu_core::service::ServiceStatus;

const DECISIONS: [Decision; 4] = [
    Decision::Approve,
    Decision::Reject,
    Decision::Suspend,
    Decision::Reinstate,
];
const STATUSES: [ServiceStatus; 4] = [
    ServiceStatus::PendingReview,
    ServiceStatus::Approved,
    ServiceStatus::Rejected,
    ServiceStatus::Suspended,
];
/// A small alphabet of lint codes, so that overrides and findings often meet.
const CODES: [&str; 4] = ["missing_retention", "broad_items", "weak_terms", "x"];

fn code(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    Ok(if bool::arbitrary(u)? {
        (*u.choose(&CODES)?).to_owned()
    } else {
        String::arbitrary(u)?
    })
}

fn codes(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<String>> {
    let n = u.int_in_range(0..=4)?;
    (0..n).map(|_| code(u)).collect()
}

fn round(data: &[u8]) -> arbitrary::Result<()> {
    let mut u = Unstructured::new(data);
    let status = *u.choose(&STATUSES)?;
    let quorum = u.int_in_range(0..=4)?;
    let blocking = codes(&mut u)?;
    let n = u.int_in_range(0..=8)?;
    let mut votes = Vec::new();
    for _ in 0..n {
        votes.push(CastVote {
            member: format!("m{}", u.int_in_range(0..=4u8)?),
            decision: *u.choose(&DECISIONS)?,
            overrides: codes(&mut u)?,
        });
    }
    let outcome = governance::tally(status, &votes, quorum, &blocking);
    // The latest vote of each member, as tally counts them.
    let mut latest: Vec<&CastVote> = Vec::new();
    for v in &votes {
        latest.retain(|l| l.member != v.member);
        latest.push(v);
    }
    if let Some(outcome) = outcome {
        assert!(
            governance::allowed(status)
                .iter()
                .any(|d| d.outcome() == outcome)
        );
        let backing = latest
            .iter()
            .filter(|v| {
                v.decision.outcome() == outcome
                    && governance::check_vote(status, v.decision).is_ok()
                    && governance::check_overrides(v.decision, &v.overrides, &blocking).is_ok()
            })
            .count();
        assert!(
            backing >= quorum.max(1),
            "{backing} votes behind {outcome:?}, quorum {quorum}"
        );
        if outcome == ServiceStatus::Approved && status == ServiceStatus::PendingReview {
            // Every approval that helped reach it names exactly the blocking findings.
            for v in latest.iter().filter(|v| v.decision == Decision::Approve) {
                if governance::check_overrides(v.decision, &v.overrides, &blocking).is_ok() {
                    assert!(blocking.iter().all(|b| v.overrides.contains(b)));
                    assert!(v.overrides.iter().all(|o| blocking.contains(o)));
                }
            }
        }
    }
    // An approval alone cannot carry a quorum if it does not pass check_overrides.
    let approvals: Vec<&&CastVote> = latest
        .iter()
        .filter(|v| v.decision == Decision::Approve)
        .collect();
    if status == ServiceStatus::PendingReview
        && approvals
            .iter()
            .all(|v| governance::check_overrides(v.decision, &v.overrides, &blocking).is_err())
    {
        assert_ne!(outcome, Some(ServiceStatus::Approved));
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = serde_json::from_slice::<VotePayload>(data) {
        if let Some(decision) = Decision::parse(&payload.decision) {
            assert_eq!(decision.as_str(), payload.decision);
            let blocking: Vec<String> = CODES.iter().take(2).map(|c| (*c).to_owned()).collect();
            for b in [&blocking[..], &[]] {
                if governance::check_overrides(decision, &payload.overrides, b).is_ok() {
                    if decision == Decision::Approve {
                        assert!(b.iter().all(|c| payload.overrides.contains(c)));
                    }
                    assert!(payload.overrides.iter().all(|o| b.contains(o)));
                }
            }
            for status in STATUSES {
                let _ = governance::check_vote(status, decision);
            }
        }
    }
    let _ = round(data);
});
