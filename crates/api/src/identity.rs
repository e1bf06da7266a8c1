//! The identity capability's API: enrollment, login, and the resident's own account,
//! history and devices.

use crate::error::ApiError;
use crate::extract::{Body, Json, Query, Resident, json_response};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tsunagu_crypto::b64;
use tsunagu_platform::Platform;
use tsunagu_platform::history::HistoryPage;
use tsunagu_platform::identity::webauthn::WireAssertion;
use tsunagu_platform::identity::{Me, NoncePurpose, RevokedDevice};

type State_ = State<Arc<Platform>>;

/// This capability's routes (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/enrollment/challenge"),
    ("POST", "/v1/enrollment"),
    ("POST", "/v1/auth/challenge"),
    ("POST", "/v1/auth/login"),
    ("GET", "/v1/me"),
    ("GET", "/v1/me/history"),
    ("POST", "/v1/me/devices/{id}/revoke"),
    ("GET", "/v1/me/logins"),
    ("POST", "/v1/me/logins/{id}/revoke"),
];

pub fn router(platform: Arc<Platform>) -> Router {
    Router::new()
        .route("/v1/enrollment/challenge", post(enrollment_challenge))
        .route("/v1/enrollment", post(enroll))
        .route("/v1/auth/challenge", post(auth_challenge))
        .route("/v1/auth/login", post(login))
        .route("/v1/me", get(me))
        .route("/v1/me/history", get(history))
        .route("/v1/me/devices/{id}/revoke", post(revoke_device))
        .route("/v1/me/logins", get(logins))
        .route("/v1/me/logins/{id}/revoke", post(end_login))
        .with_state(platform)
}

async fn enrollment_challenge(State(p): State_) -> Result<Response, ApiError> {
    let challenge = p.identity.challenge(NoncePurpose::Enroll).await?;
    Ok(json_response(StatusCode::OK, &challenge))
}

async fn enroll(State(p): State_, Body(body): Body) -> Result<Response, ApiError> {
    let request = tsunagu_platform::identity::parse_enrollment(&body)?;
    let enrolled = p.identity.enroll(request).await?;
    let status = if enrolled.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &enrolled))
}

async fn auth_challenge(State(p): State_) -> Result<Response, ApiError> {
    let challenge = p.identity.challenge(NoncePurpose::Login).await?;
    Ok(json_response(StatusCode::OK, &challenge))
}

#[derive(Deserialize)]
struct LoginRequest {
    credential: String,
    nonce: String,
    signature: String,
    /// For a device gated by WebAuthn: the assertion over SHA-256 of the nonce.
    #[serde(default)]
    user_verification: Option<WireAssertion>,
}

async fn login(State(p): State_, Json(req): Json<LoginRequest>) -> Result<Response, ApiError> {
    let logged_in = p
        .identity
        .login_verified(
            &req.credential,
            &req.nonce,
            &req.signature,
            req.user_verification.as_ref(),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &logged_in))
}

/// `GET /v1/me` as JSON.
pub fn me_json(me: &Me) -> Value {
    json!({
        "account_id": me.account_id,
        "level": me.level,
        "status": me.status,
        "attributes": me.attributes.as_ref().map(|a| json!({
            "name": a.name,
            "address": a.address,
            "birthdate": a.birthdate,
            "sex": a.sex.as_str(),
        })),
        "proofed_until": me.proofed_until,
        "devices": me.devices.iter().map(|d| json!({
            "id": d.id,
            "status": d.status,
            "created_at": d.created_at,
            "expires_at": d.expires_at,
            "revoked_at": d.revoked_at,
            "locked_until": d.locked_until,
            "current": d.current,
            "key_thumbprint": d.key_thumbprint,
            "user_verification": if d.user_verification { "webauthn" } else { "none" },
        })).collect::<Vec<_>>(),
        "ledger_subject": me.ledger_subject,
    })
}

async fn me(State(p): State_, Resident(session): Resident) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(me_json(&p.identity.me(&session).await?)))
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<u64>,
    limit: Option<u32>,
}

/// A page of the resident's history as JSON (`GET /v1/me/history`, and the web app's
/// `history.json`).
pub fn history_json(page: &HistoryPage) -> Value {
    json!({
        "items": page.items.iter().map(|item| {
            // A capability's leaf is shown as written (its members are its own).
            let event = item.record.as_ref().and_then(|r| serde_json::to_value(r).ok()).or_else(|| {
                item.other
                    .as_ref()
                    .and(item.leaf.input.as_deref())
                    .and_then(|input| serde_json::from_slice::<Value>(input).ok())
            });
            json!({
                "leaf_index": item.leaf.index,
                "leaf_input": item.leaf.input.as_ref().map(b64::std_encode),
                "leaf_hash": b64::std_encode(item.leaf.hash),
                "at": item.leaf.created_at,
                "type": item.kind(),
                "outcome": item.outcome,
                "reason": event.as_ref().and_then(|e| e.get("reason")).cloned(),
                "event": event,
                "details": item.details,
            })
        }).collect::<Vec<_>>(),
        "next_before": page.next_before,
        "sth": page.sth,
    })
}

async fn history(
    State(p): State_,
    Resident(session): Resident,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let page = p
        .history
        .page(&session, q.before, q.limit.unwrap_or(50))
        .await?;
    Ok(axum::Json(history_json(&page)))
}

/// A device revocation as JSON.
pub fn revoked_json(r: &RevokedDevice) -> Value {
    json!({
        "device_id": r.device_id,
        "status": r.status,
        "revoked_at": r.revoked_at,
        "ended_logins": r.ended_logins,
    })
}

/// `GET /v1/me/logins`: the services the resident is logged in to (live login grants).
async fn logins(
    State(p): State_,
    Resident(session): Resident,
) -> Result<axum::Json<Value>, ApiError> {
    let logins = p.oidc.logins(&session).await?;
    Ok(axum::Json(json!({ "logins": logins })))
}

/// `POST /v1/me/logins/{id}/revoke`: ends one service's login grant.
async fn end_login(
    State(p): State_,
    Resident(session): Resident,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let ended = p.oidc.end_login(&session, &id.into()).await?;
    Ok(axum::Json(json!(ended)))
}

async fn revoke_device(
    State(p): State_,
    Resident(session): Resident,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let revoked = p.identity.revoke_device(&session, &id.into()).await?;
    Ok(axum::Json(revoked_json(&revoked)))
}
