//! Services, governance, consents and exchange endpoints.

use super::{AppState, Body, Json, Query, Resident, json_response};
use crate::error::ApiError;
use crate::exchange::{self, ReceiptRequest, TicketRequest};
use crate::{consents, governance, services};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use tsunagu_core::Code;
use tsunagu_core::consent::ChangeAction;

pub async fn apply(State(app): State<AppState>, Body(body): Body) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::CREATED,
        services::apply(&app, &body).await?,
    ))
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
}

pub async fn list(
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(services::list(&app, q.status.as_deref()).await?))
}

pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(services::get(&app, &id).await?))
}

/// A service authenticated by its client assertion, acting on itself only.
async fn own_service(
    app: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<exchange::ServiceAuth, ApiError> {
    let auth = exchange::authenticate(app, headers).await?;
    if auth.service.row.id != id {
        return Err(ApiError::new(
            Code::Forbidden,
            "a service may change only its own registration",
        ));
    }
    crate::assertion::consume(app, &auth.assertion).await?;
    Ok(auth)
}

pub async fn update_registration(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(req): Json<services::RegistrationUpdate>,
) -> Result<axum::Json<Value>, ApiError> {
    own_service(&app, &headers, &id).await?;
    Ok(axum::Json(
        services::update_registration(&app, &id, &req).await?,
    ))
}

pub async fn rotate_client_secret(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    own_service(&app, &headers, &id).await?;
    Ok(axum::Json(services::rotate_client_secret(&app, &id).await?))
}

#[derive(Deserialize)]
pub struct VoteRequest {
    vote_jws: String,
}

pub async fn vote(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Json(req): Json<VoteRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(
        governance::vote(&app, &id, &req.vote_jws).await?,
    ))
}

#[derive(Deserialize)]
pub struct SinceQuery {
    since: Option<i64>,
    limit: Option<u32>,
}

pub async fn alerts(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SinceQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(
        exchange::alerts(&app, &headers, q.since.unwrap_or(0)).await?,
    ))
}

pub async fn offers(
    State(app): State<AppState>,
    Resident(session): Resident,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(consents::offers(&app, &session).await?))
}

pub async fn my_consents(
    State(app): State<AppState>,
    Resident(session): Resident,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(consents::list(&app, &session).await?))
}

#[derive(Deserialize)]
pub struct ConsentRequest {
    consent_jws: String,
}

pub async fn consent(
    State(app): State<AppState>,
    Resident(session): Resident,
    Json(req): Json<ConsentRequest>,
) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::CREATED,
        consents::grant(&app, &session, &req.consent_jws).await?,
    ))
}

#[derive(Deserialize)]
pub struct ChangeRequest {
    change_jws: String,
}

pub async fn revoke(
    State(app): State<AppState>,
    Resident(session): Resident,
    Path(id): Path<String>,
    Json(req): Json<ChangeRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(
        consents::change(&app, &session, &id, ChangeAction::Revoke, &req.change_jws).await?,
    ))
}

pub async fn expiry(
    State(app): State<AppState>,
    Resident(session): Resident,
    Path(id): Path<String>,
    Json(req): Json<ChangeRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(
        consents::change(&app, &session, &id, ChangeAction::Expiry, &req.change_jws).await?,
    ))
}

pub async fn pairwise(
    State(app): State<AppState>,
    Resident(session): Resident,
    Path(service_id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(
        consents::show_pairwise(&app, &session, &service_id).await?,
    ))
}

pub async fn ticket(
    State(app): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<TicketRequest>,
) -> Result<Response, ApiError> {
    let auth = exchange::authenticate(&app, &headers).await?;
    Ok(json_response(
        StatusCode::CREATED,
        exchange::ticket(&app, &auth, req).await?,
    ))
}

pub async fn receipt(
    State(app): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<ReceiptRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    let auth = exchange::authenticate(&app, &headers).await?;
    Ok(axum::Json(exchange::receipt(&app, &auth, req).await?))
}

pub async fn feed(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SinceQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let auth = exchange::authenticate(&app, &headers).await?;
    Ok(axum::Json(
        exchange::feed(&app, &auth, q.since.unwrap_or(0), q.limit.unwrap_or(100)).await?,
    ))
}
