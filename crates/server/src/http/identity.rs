//! Enrollment, login and the resident's own resources.

use super::{AppState, Body, Json, Query, Resident, json_response};
use crate::error::ApiError;
use crate::identity::{self as service, NONCE_ENROLL, NONCE_LOGIN};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

pub async fn enrollment_challenge(State(app): State<AppState>) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        service::challenge(&app, NONCE_ENROLL).await?,
    ))
}

pub async fn enroll(State(app): State<AppState>, Body(body): Body) -> Result<Response, ApiError> {
    let enrolled = service::enroll(&app, &body).await?;
    let status = if enrolled.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(
        status,
        serde_json::to_value(&enrolled).map_err(|e| ApiError::internal("response", e))?,
    ))
}

pub async fn auth_challenge(State(app): State<AppState>) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        service::challenge(&app, NONCE_LOGIN).await?,
    ))
}

#[derive(Deserialize)]
pub struct LoginRequest {
    credential: String,
    nonce: String,
    signature: String,
}

pub async fn login(
    State(app): State<AppState>,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let logged_in = service::login(&app, &req.credential, &req.nonce, &req.signature).await?;
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_value(&logged_in).map_err(|e| ApiError::internal("response", e))?,
    ))
}

pub async fn me(
    State(app): State<AppState>,
    Resident(session): Resident,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(service::me(&app, &session).await?))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    before: Option<u64>,
    limit: Option<u32>,
}

pub async fn history(
    State(app): State<AppState>,
    Resident(session): Resident,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(
        crate::history::history(&app, &session, q.before, q.limit.unwrap_or(50)).await?,
    ))
}

pub async fn revoke_device(
    State(app): State<AppState>,
    Resident(session): Resident,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(
        service::revoke_device(&app, &session, &id).await?,
    ))
}
