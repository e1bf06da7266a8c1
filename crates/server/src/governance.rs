//! The governance committee's votes: each a JWS (ES256) by a configured member's key over
//! `{service_id, decision, comment, issued_at, nonce}`; a quorum of distinct members moves
//! the service (`tsunagu_core::governance`). Every vote and every change is a ledger leaf.

use crate::app::{App, now};
use crate::error::ApiError;
use crate::ledger::leaf;
use serde::Deserialize;
use serde_json::{Value, json};
use tsunagu_core::Code;
use tsunagu_core::consent::ISSUED_AT_WINDOW;
use tsunagu_core::event::Event;
use tsunagu_core::governance::{self, CastVote, Decision};
use tsunagu_core::service::ServiceStatus;
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::{jws, sha256};
use tsunagu_store::{AlertRow, Commit, ExchangeChange, ServiceChange, StoreError, VoteRow};

/// Obligations a service accepts by contract with its approval (SPEC §4), recorded in the
/// approval's ledger leaf.
pub const OBLIGATIONS: &[&str] = &[
    "purpose_limitation",
    "no_id_linkage_beyond_limit",
    "no_advertising_use",
    "incident_reporting",
    "resident_interest_first",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VotePayload {
    service_id: String,
    decision: String,
    #[serde(default)]
    comment: String,
    issued_at: i64,
    nonce: String,
}

/// The public key of a committee member.
pub fn member_key(app: &App, id: &str) -> Option<PublicJwk> {
    app.config
        .governance
        .members
        .iter()
        .find(|m| m.id == id)
        .and_then(|m| PublicJwk::from_value(&m.jwk).ok())
}

/// `POST /v1/governance/services/{id}/votes`.
pub async fn vote(app: &App, service_id: &str, vote_jws: &str) -> Result<Value, ApiError> {
    let token = jws::parse(vote_jws)
        .map_err(|e| ApiError::new(Code::InvalidRequest, format!("vote_jws: {e}")))?;
    let member = token.kid.clone().ok_or_else(|| {
        ApiError::new(
            Code::UnknownMember,
            "the vote's header needs `kid` = the member id",
        )
    })?;
    let key = member_key(app, &member).ok_or_else(|| {
        ApiError::new(
            Code::UnknownMember,
            format!("`{member}` is not a committee member"),
        )
    })?;
    token.verify(&key).map_err(|_| {
        ApiError::new(
            Code::SignatureInvalid,
            "the vote's signature does not verify with the member's key",
        )
    })?;
    let payload: VotePayload = token
        .payload_as()
        .map_err(|e| ApiError::new(Code::InvalidRequest, format!("vote payload: {e}")))?;
    if payload.service_id != service_id {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "the vote is for another service",
        ));
    }
    let decision = Decision::parse(&payload.decision).ok_or_else(|| {
        ApiError::new(
            Code::InvalidRequest,
            "decision is approve, reject, suspend or reinstate",
        )
    })?;
    let t = now();
    if (payload.issued_at - t).abs() > ISSUED_AT_WINDOW {
        return Err(ApiError::new(
            Code::StaleRequest,
            "issued_at is more than five minutes from now",
        ));
    }
    if payload.nonce.is_empty()
        || payload.nonce.len() > 128
        || payload.comment.chars().count() > 4000
    {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "nonce (1-128 characters) and comment (up to 4000)",
        ));
    }
    let service =
        app.store.service(service_id).await?.ok_or_else(|| {
            ApiError::new(Code::UnknownService, format!("no service `{service_id}`"))
        })?;
    governance::check_vote(service.status, decision).map_err(|code| {
        ApiError::new(
            code,
            format!(
                "a service that is {} cannot be voted to {}",
                service.status.as_str(),
                decision.as_str()
            ),
        )
    })?;

    let commit = Commit {
        changes: tsunagu_store::changes![ServiceChange::InsertVote(VoteRow {
            member_id: member.clone(),
            nonce: payload.nonce.clone(),
            service_id: service_id.to_owned(),
            round: service.round,
            decision: decision.as_str().to_owned(),
            comment: payload.comment.clone(),
            issued_at: payload.issued_at,
            jws: vote_jws.to_owned(),
            created_at: t,
        })],
        leaves: vec![leaf(
            Event::Vote {
                service: service_id.to_owned(),
                member: member.clone(),
                decision,
                round: u32::try_from(service.round).unwrap_or(u32::MAX),
                vote_sha256: hex::encode(sha256(vote_jws.as_bytes())),
            },
            &[],
            t,
        )],
    };
    match app.committer.commit(commit).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                Code::NonceInvalid,
                "this member already used this nonce",
            ));
        }
        Err(e) => return Err(e.into()),
    }

    let status = settle(app, service_id).await?;
    let current = app
        .store
        .service(service_id)
        .await?
        .ok_or_else(|| ApiError::internal("vote", "service vanished"))?;
    let votes = app.store.votes(service_id, current.round).await?;
    Ok(json!({
        "service_id": service_id,
        "status": status,
        "round": current.round,
        "quorum": app.config.governance.quorum,
        "votes": votes.iter().map(|v| json!({"member": v.member_id, "decision": v.decision, "issued_at": v.issued_at})).collect::<Vec<_>>(),
    }))
}

/// Applies the quorum rule to the current round until the status is stable.
async fn settle(app: &App, service_id: &str) -> Result<ServiceStatus, ApiError> {
    for _ in 0..5 {
        let service = app
            .store
            .service(service_id)
            .await?
            .ok_or_else(|| ApiError::internal("vote", "service vanished"))?;
        let votes: Vec<CastVote> = app
            .store
            .votes(service_id, service.round)
            .await?
            .into_iter()
            .filter_map(|v| {
                Decision::parse(&v.decision).map(|d| CastVote {
                    member: v.member_id,
                    decision: d,
                })
            })
            .collect();
        let Some(to) = governance::tally(service.status, &votes, app.config.governance.quorum)
        else {
            return Ok(service.status);
        };
        let t = now();
        let mut changes = tsunagu_store::changes![ServiceChange::SetServiceStatus {
            id: service_id.to_owned(),
            from: service.status,
            to,
            round: service.round,
            updated_at: t,
        }];
        if to == ServiceStatus::Suspended {
            changes.push(tsunagu_store::AnyChange::from(ExchangeChange::InsertAlert(
                AlertRow {
                    seq: 0,
                    kind: "service_suspended".into(),
                    service_id: Some(service_id.to_owned()),
                    detail: format!("{} was suspended by the committee", service.name),
                    created_at: t,
                },
            )));
        }
        let commit = Commit {
            changes,
            leaves: vec![leaf(
                Event::ServiceStatusChanged {
                    service: service_id.to_owned(),
                    from: service.status,
                    to,
                    obligations: if to == ServiceStatus::Approved
                        && service.status == ServiceStatus::PendingReview
                    {
                        OBLIGATIONS.iter().map(|s| (*s).to_owned()).collect()
                    } else {
                        vec![]
                    },
                },
                &[],
                t,
            )],
        };
        match app.committer.commit(commit).await {
            Ok(_) => {
                app.directory.invalidate(service_id);
                metrics::counter!("tsunagu_service_decisions_total", "to" => to.as_str())
                    .increment(1);
                return Ok(to);
            }
            // Another vote settled it first: look again.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal(
        "vote",
        "the service's status kept changing",
    ))
}
