//! The ledger capability's API: tree heads and proofs for anyone, entries for auditors.

use crate::error::ApiError;
use crate::extract::{Query, bearer};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tsunagu_crypto::b64;
use tsunagu_ledger::SignedTreeHead;
use tsunagu_platform::{Platform, now};

type State_ = State<Arc<Platform>>;

/// This capability's routes (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/ledger/sth"),
    ("GET", "/v1/ledger/proof/inclusion"),
    ("GET", "/v1/ledger/proof/consistency"),
    ("GET", "/v1/ledger/entries"),
    ("GET", "/v1/ledger/key-rotations"),
];

pub fn router(platform: Arc<Platform>) -> Router {
    Router::new()
        .route("/v1/ledger/sth", get(sth))
        .route("/v1/ledger/proof/inclusion", get(inclusion))
        .route("/v1/ledger/proof/consistency", get(consistency))
        .route("/v1/ledger/entries", get(entries))
        .route("/v1/ledger/key-rotations", get(key_rotations))
        .with_state(platform)
}

async fn sth(State(p): State_) -> Result<axum::Json<SignedTreeHead>, ApiError> {
    Ok(axum::Json(p.ledger.sth(now()).await?))
}

/// The tree-head key changes with their proofs: for each, the announcing leaf, the handover
/// head signed by the previous key and the leaf's inclusion proof in it (ADR 0019).
async fn key_rotations(State(p): State_) -> Result<axum::Json<Value>, ApiError> {
    let rotations = p.ledger_key_rotations().await?;
    Ok(axum::Json(json!({
        "rotations": rotations.iter().map(|r| json!({
            "leaf_index": r.leaf_index,
            "leaf_input": r.leaf_input.as_ref().map(b64::std_encode),
            "sth": r.sth,
            "audit_path": r.audit_path.iter().map(b64::std_encode).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct InclusionQuery {
    leaf_index: u64,
    tree_size: u64,
}

async fn inclusion(
    State(p): State_,
    Query(q): Query<InclusionQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let (leaf, path) = p
        .ledger
        .inclusion(q.leaf_index, q.tree_size)
        .await
        .map_err(tsunagu_platform::Refusal::from)?;
    Ok(axum::Json(json!({
        "leaf_index": q.leaf_index,
        "tree_size": q.tree_size,
        "leaf_hash": b64::std_encode(leaf),
        "audit_path": path.iter().map(b64::std_encode).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    first: u64,
    second: u64,
}

async fn consistency(
    State(p): State_,
    Query(q): Query<ConsistencyQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let proof = p
        .ledger
        .consistency(q.first, q.second)
        .await
        .map_err(tsunagu_platform::Refusal::from)?;
    Ok(axum::Json(json!({
        "first": q.first,
        "second": q.second,
        "proof": proof.iter().map(b64::std_encode).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct EntriesQuery {
    start: u64,
    end: u64,
}

async fn entries(
    State(p): State_,
    headers: HeaderMap,
    Query(q): Query<EntriesQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let rows = p.history.entries(bearer(&headers), q.start, q.end).await?;
    Ok(axum::Json(json!({
        "entries": rows.iter().map(|r| json!({
            "leaf_index": r.index,
            "leaf_input": r.input.as_ref().map(b64::std_encode),
            "leaf_hash": b64::std_encode(r.hash),
        })).collect::<Vec<_>>(),
    })))
}
