//! The governance committee's votes: each a JWS (ES256) by a configured member's key over
//! `{service_id, decision, comment, issued_at, nonce}`; a quorum of distinct members moves
//! the service (`tsunagu_core::governance`). Every vote and every change is a ledger leaf.
//! Also who may read the committee's alerts, and the members' sign-in.

use crate::assertion::{self, Assertions};
use crate::config::{AuditorConfig, GovernanceConfig};
use crate::directory::Directory;
use crate::ledger::{Committer, leaf};
use crate::{Outcome, Refusal, now};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tsunagu_core::alert::AlertKind;
use tsunagu_core::consent::ISSUED_AT_WINDOW;
use tsunagu_core::event::Event;
use tsunagu_core::governance::{self, CastVote, Decision};
use tsunagu_core::service::ServiceStatus;
use tsunagu_core::{Code, MemberId, ServiceId};
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::{jws, sha256};
use tsunagu_store::{AlertRow, Commit, ExchangeChange, ServiceChange, Store, StoreError, VoteRow};

/// The `override` of a stored vote's JWS (empty when it has none or cannot be read).
fn overrides_of(vote_jws: &str) -> Vec<String> {
    jws::parse(vote_jws)
        .ok()
        .and_then(|t| t.payload_as::<governance::VotePayload>().ok())
        .map(|p| p.overrides)
        .unwrap_or_default()
}

/// The codes of a service's lint findings of severity `error`: they block approval unless
/// overridden.
/// Fails closed: stored findings that cannot be read block nothing silently, they stop
/// the vote.
fn blocking_findings(lint_json: &str) -> Outcome<Vec<String>> {
    let findings: Vec<tsunagu_core::lint::Finding> = serde_json::from_str(lint_json)
        .map_err(|e| Refusal::internal("reading the stored lint findings", e))?;
    Ok(tsunagu_core::lint::blocking_codes(&findings))
}

/// A vote cast in the current round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CastVoteView {
    pub member: MemberId,
    pub decision: Decision,
    pub issued_at: i64,
    /// When the platform recorded it.
    #[serde(skip)]
    pub cast_at: i64,
}

/// Where a service stands after a vote.
#[derive(Debug, Clone, Serialize)]
pub struct VoteOutcome {
    /// What this vote decided for.
    #[serde(skip)]
    pub decision: Decision,
    pub service_id: ServiceId,
    pub status: ServiceStatus,
    pub round: i64,
    pub quorum: usize,
    pub votes: Vec<CastVoteView>,
}

/// Who may read alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overseer {
    Member(MemberId),
    Auditor(String),
}

/// The committee: members, votes and their effect.
#[derive(Clone)]
pub struct Governance {
    store: Arc<dyn Store>,
    committer: Committer,
    directory: Arc<Directory>,
    assertions: Assertions,
    config: GovernanceConfig,
    auditors: Vec<AuditorConfig>,
}

impl Governance {
    pub fn new(
        store: Arc<dyn Store>,
        committer: Committer,
        directory: Arc<Directory>,
        assertions: Assertions,
        config: GovernanceConfig,
        auditors: Vec<AuditorConfig>,
    ) -> Governance {
        Governance {
            store,
            committer,
            directory,
            assertions,
            config,
            auditors,
        }
    }

    /// Votes of distinct members needed for a decision.
    pub fn quorum(&self) -> usize {
        self.config.quorum
    }

    /// The public key of a committee member.
    pub fn member_key(&self, id: &str) -> Option<PublicJwk> {
        self.config
            .members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.jwk.clone())
    }

    /// Whether `id` is a configured member (a member removed from the configuration is
    /// signed out at once).
    pub fn is_member(&self, id: &str) -> bool {
        self.member_key(id).is_some()
    }

    fn auditor_key(&self, id: &str) -> Option<PublicJwk> {
        self.auditors
            .iter()
            .find(|a| a.id == id)
            .map(|a| a.jwk.clone())
    }

    /// Checks a member's sign-in assertion for `audience` (`kid`, if present, = `iss` = the
    /// member id) against the configured key, and that it names `member_id` when one is
    /// given; uses up its `jti`.
    pub async fn member_sign_in(
        &self,
        member_id: &str,
        assertion: &str,
        audience: &str,
    ) -> Outcome<MemberId> {
        if assertion.is_empty() {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "assertion is required: sign it with your member key",
            ));
        }
        let verified = assertion::check_for(assertion, &[audience.to_owned()], |iss, kid| {
            if kid.is_some_and(|k| k != iss) {
                return None;
            }
            self.member_key(iss)
        })?;
        if !member_id.is_empty() && member_id != verified.party {
            return Err(Refusal::new(
                Code::Unauthorized,
                "the assertion was signed for another member id",
            ));
        }
        self.assertions.consume(&verified).await?;
        Ok(MemberId::from(verified.party))
    }

    /// Authenticates a committee member or an auditor by a bearer assertion (alerts).
    pub async fn overseer(&self, bearer: Option<&str>) -> Outcome<Overseer> {
        let token = bearer.ok_or_else(|| {
            Refusal::new(
                Code::Unauthorized,
                "alerts are for committee members and auditors",
            )
        })?;
        let party = self
            .assertions
            .verify(token, |id, _| {
                self.member_key(id).or_else(|| self.auditor_key(id))
            })
            .await?;
        Ok(if self.is_member(&party) {
            Overseer::Member(party.into())
        } else {
            Overseer::Auditor(party)
        })
    }

    /// `POST /v1/governance/services/{id}/votes`.
    pub async fn vote(&self, service_id: &ServiceId, vote_jws: &str) -> Outcome<VoteOutcome> {
        self.cast(service_id, vote_jws, None).await
    }

    /// A vote from the committee console: it must be signed by the signed-in member's key
    /// and, when a button was pressed (`pressed` not empty), carry the button's decision.
    /// Anything else is refused before anything is recorded.
    pub async fn vote_as(
        &self,
        member: &MemberId,
        pressed: &str,
        service_id: &ServiceId,
        vote_jws: &str,
    ) -> Outcome<VoteOutcome> {
        self.cast(service_id, vote_jws, Some((member, pressed)))
            .await
    }

    async fn cast(
        &self,
        service_id: &ServiceId,
        vote_jws: &str,
        expected: Option<(&MemberId, &str)>,
    ) -> Outcome<VoteOutcome> {
        let token = jws::parse(vote_jws)
            .map_err(|e| Refusal::new(Code::InvalidRequest, format!("vote_jws: {e}")))?;
        // Kept and hashed in its one canonical form (low-S): a twin signature is the same
        // vote with the same `vote_sha256`.
        let vote_jws = &token.canonical_compact();
        let member = token.kid.clone().ok_or_else(|| {
            Refusal::new(
                Code::UnknownMember,
                "the vote's header needs `kid` = the member id",
            )
        })?;
        if let Some((signed_in, pressed)) = expected {
            if signed_in.as_str() != member {
                return Err(Refusal::new(
                    Code::Forbidden,
                    "the vote is signed by another member than the one signed in",
                ));
            }
            #[derive(Deserialize)]
            struct Claimed {
                #[serde(default)]
                decision: String,
            }
            let claimed: Claimed = token
                .payload_as()
                .map_err(|e| Refusal::new(Code::InvalidRequest, format!("vote payload: {e}")))?;
            if !pressed.is_empty()
                && (pressed != claimed.decision || Decision::parse(pressed).is_none())
            {
                return Err(Refusal::new(
                    Code::InvalidRequest,
                    "the signed decision differs from the button pressed",
                ));
            }
        }
        let key = self.member_key(&member).ok_or_else(|| {
            Refusal::new(
                Code::UnknownMember,
                format!("`{member}` is not a committee member"),
            )
        })?;
        token.verify(&key).map_err(|_| {
            Refusal::new(
                Code::SignatureInvalid,
                "the vote's signature does not verify with the member's key",
            )
        })?;
        let payload: governance::VotePayload = token
            .payload_as()
            .map_err(|e| Refusal::new(Code::InvalidRequest, format!("vote payload: {e}")))?;
        if payload.service_id != service_id.as_str() {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "the vote is for another service",
            ));
        }
        let decision = Decision::parse(&payload.decision).ok_or_else(|| {
            Refusal::new(
                Code::InvalidRequest,
                "decision is approve, reject, suspend or reinstate",
            )
        })?;
        let t = now();
        if payload.issued_at.abs_diff(t) > ISSUED_AT_WINDOW.unsigned_abs() {
            return Err(Refusal::new(
                Code::StaleRequest,
                "issued_at is more than five minutes from now",
            ));
        }
        if payload.nonce.is_empty()
            || payload.nonce.len() > 128
            || payload.comment.chars().count() > 4000
        {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "nonce (1-128 characters) and comment (up to 4000)",
            ));
        }
        let service = self.store.service(service_id).await?.ok_or_else(|| {
            Refusal::new(Code::UnknownService, format!("no service `{service_id}`"))
        })?;
        governance::check_vote(service.status, decision).map_err(|code| {
            Refusal::new(
                code,
                format!(
                    "a service that is {} cannot be voted to {}",
                    service.status.as_str(),
                    decision.as_str()
                ),
            )
        })?;
        if payload.overrides.len() > 64 {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "`override` names at most 64 findings",
            ));
        }
        governance::check_overrides(
            decision,
            &payload.overrides,
            &blocking_findings(&service.lint)?,
        )
        .map_err(|(code, detail)| Refusal::new(code, detail))?;

        let commit = Commit::new()
            .change(ServiceChange::InsertVote(VoteRow {
                member_id: member.as_str().into(),
                nonce: payload.nonce.clone(),
                service_id: service_id.clone(),
                round: service.round,
                decision,
                comment: payload.comment.clone(),
                issued_at: payload.issued_at,
                jws: vote_jws.to_owned(),
                created_at: t,
            }))
            .leaf(leaf(
                &Event::Vote {
                    service: service_id.to_string(),
                    member: member.clone(),
                    decision,
                    round: u32::try_from(service.round).unwrap_or(u32::MAX),
                    vote_sha256: hex::encode(sha256(vote_jws.as_bytes())),
                },
                &[],
                t,
            ));
        match self.committer.commit(commit).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(Refusal::new(
                    Code::NonceInvalid,
                    "this member already used this nonce",
                ));
            }
            Err(e) => return Err(e.into()),
        }

        let status = self.settle(service_id).await?;
        let current = self
            .store
            .service(service_id)
            .await?
            .ok_or_else(|| Refusal::internal("vote", "service vanished"))?;
        let votes = self.votes(service_id, current.round).await?;
        Ok(VoteOutcome {
            decision,
            service_id: service_id.clone(),
            status,
            round: current.round,
            quorum: self.config.quorum,
            votes,
        })
    }

    /// The votes of a round, in the order they were cast.
    pub async fn votes(&self, service_id: &ServiceId, round: i64) -> Outcome<Vec<CastVoteView>> {
        Ok(self
            .store
            .votes(service_id, round)
            .await?
            .into_iter()
            .map(|v| CastVoteView {
                member: v.member_id,
                decision: v.decision,
                issued_at: v.issued_at,
                cast_at: v.created_at,
            })
            .collect())
    }

    /// Applies the quorum rule to the current round until the status is stable.
    async fn settle(&self, service_id: &ServiceId) -> Outcome<ServiceStatus> {
        for _ in 0..5 {
            let service = self
                .store
                .service(service_id)
                .await?
                .ok_or_else(|| Refusal::internal("vote", "service vanished"))?;
            let votes: Vec<CastVote> = self
                .store
                .votes(service_id, service.round)
                .await?
                .into_iter()
                .map(|v| CastVote {
                    overrides: overrides_of(&v.jws),
                    member: v.member_id.into_string(),
                    decision: v.decision,
                })
                .collect();
            let blocking = blocking_findings(&service.lint)?;
            let Some(to) = governance::tally(service.status, &votes, self.config.quorum, &blocking)
            else {
                return Ok(service.status);
            };
            let approval =
                to == ServiceStatus::Approved && service.status == ServiceStatus::PendingReview;
            // Checked again at approval: obligations changed since the application are not
            // accepted under the old hash.
            let accepted = approval
                && self.directory.get(service_id).await?.is_some_and(|e| {
                    e.application
                        .obligations_acceptance
                        .as_deref()
                        .is_some_and(|a| {
                            crate::services::verify_obligations_acceptance(&e.application.jwks, a)
                                .is_ok()
                        })
                });
            let t = now();
            let mut commit = Commit::new().change(ServiceChange::SetServiceStatus {
                id: service_id.clone(),
                from: service.status,
                to,
                round: service.round,
                updated_at: t,
            });
            if to == ServiceStatus::Suspended {
                commit.push(ExchangeChange::InsertAlert(AlertRow {
                    seq: 0,
                    kind: AlertKind::ServiceSuspended,
                    service_id: Some(service_id.clone()),
                    ticket_id: None,
                    detail: format!("{} was suspended by the committee", service.name),
                    created_at: t,
                }));
            }
            let commit = commit.leaf(leaf(
                &Event::ServiceStatusChanged {
                    service: service_id.to_string(),
                    from: service.status,
                    to,
                    obligations: if approval {
                        tsunagu_core::service::OBLIGATIONS
                            .iter()
                            .map(|(code, _, _)| (*code).to_owned())
                            .collect()
                    } else {
                        vec![]
                    },
                    overridden: if approval { blocking } else { vec![] },
                    obligations_accepted: approval.then_some(accepted),
                },
                &[],
                t,
            ));
            match self.committer.commit(commit).await {
                Ok(_) => {
                    self.directory.invalidate(service_id);
                    metrics::counter!("tsunagu_service_decisions_total", "to" => to.as_str())
                        .increment(1);
                    return Ok(to);
                }
                // Another vote settled it first: look again.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Refusal::internal(
            "vote",
            "the service's status kept changing",
        ))
    }
}
