//! The ledger's public endpoints: tree heads and proofs for anyone, entries for auditors.

use super::{AppState, Query, bearer};
use crate::app::now;
use crate::error::ApiError;
use crate::ledger::ProofRequestError;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use tsunagu_core::Code;
use tsunagu_crypto::b64;
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_ledger::SignedTreeHead;

/// Most entries in one response.
const MAX_ENTRIES: u64 = 1000;

impl From<ProofRequestError> for ApiError {
    fn from(e: ProofRequestError) -> Self {
        match e {
            ProofRequestError::Range(r) => ApiError::new(Code::InvalidRange, r.to_string()),
            ProofRequestError::Store(s) => s.into(),
        }
    }
}

pub async fn sth(State(app): State<AppState>) -> Result<axum::Json<SignedTreeHead>, ApiError> {
    Ok(axum::Json(app.ledger.sth(now()).await?))
}

#[derive(Deserialize)]
pub struct InclusionQuery {
    leaf_index: u64,
    tree_size: u64,
}

pub async fn inclusion(
    State(app): State<AppState>,
    Query(q): Query<InclusionQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let (leaf, path) = app.ledger.inclusion(q.leaf_index, q.tree_size).await?;
    Ok(axum::Json(json!({
        "leaf_index": q.leaf_index,
        "tree_size": q.tree_size,
        "leaf_hash": b64::std_encode(leaf),
        "audit_path": path.iter().map(b64::std_encode).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
pub struct ConsistencyQuery {
    first: u64,
    second: u64,
}

pub async fn consistency(
    State(app): State<AppState>,
    Query(q): Query<ConsistencyQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let proof = app.ledger.consistency(q.first, q.second).await?;
    Ok(axum::Json(json!({
        "first": q.first,
        "second": q.second,
        "proof": proof.iter().map(b64::std_encode).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
pub struct EntriesQuery {
    start: u64,
    end: u64,
}

pub async fn entries(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EntriesQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    if !app.config.ledger.public_entries {
        let token = bearer(&headers).ok_or_else(|| {
            ApiError::new(
                Code::Unauthorized,
                "ledger entries are for auditors: send an auditor assertion",
            )
        })?;
        let auditors = &app.config.ledger.auditors;
        crate::assertion::verify(&app, token, |id, _kid| {
            auditors
                .iter()
                .find(|a| a.id == id)
                .and_then(|a| PublicJwk::from_value(&a.jwk).ok())
        })
        .await?;
    }
    if q.start >= q.end || q.end - q.start > MAX_ENTRIES {
        return Err(ApiError::new(
            Code::InvalidRange,
            format!("need start < end and at most {MAX_ENTRIES} entries"),
        ));
    }
    let size = app.ledger.sync().await?;
    if q.end > size {
        return Err(ApiError::new(
            Code::InvalidRange,
            format!("the log has {size} entries"),
        ));
    }
    let rows = app.store.leaves(q.start, q.end).await?;
    Ok(axum::Json(json!({
        "entries": rows.iter().map(|r| json!({
            "leaf_index": r.index,
            "leaf_input": r.input.as_ref().map(b64::std_encode),
            "leaf_hash": b64::std_encode(r.hash),
        })).collect::<Vec<_>>(),
    })))
}
