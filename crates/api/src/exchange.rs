//! The exchange capability's API: what residents may consent to and their consents, and for
//! services tickets, receipts and the consent feed.

use crate::error::ApiError;
use crate::extract::{Json, Query, Resident, ServiceCaller, json_response};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tsunagu_core::consent::ChangeAction;
use tsunagu_platform::Platform;
use tsunagu_platform::exchange::{ReceiptRequest, TicketRequest};
use tsunagu_platform::identity::webauthn::WireAssertion;

type State_ = State<Arc<Platform>>;

/// This capability's routes (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/me/offers"),
    ("GET", "/v1/me/consents"),
    ("POST", "/v1/me/consents"),
    ("POST", "/v1/me/consents/{id}/revoke"),
    ("POST", "/v1/me/consents/{id}/expiry"),
    ("GET", "/v1/me/pairwise/{service_id}"),
    ("POST", "/v1/exchange/tickets"),
    ("POST", "/v1/exchange/receipts"),
    ("GET", "/v1/exchange/consents"),
];

pub fn router(platform: Arc<Platform>) -> Router {
    Router::new()
        .route("/v1/me/offers", get(offers))
        .route("/v1/me/consents", get(my_consents).post(consent))
        .route("/v1/me/consents/{id}/revoke", post(revoke))
        .route("/v1/me/consents/{id}/expiry", post(expiry))
        .route("/v1/me/pairwise/{service_id}", get(pairwise))
        .route("/v1/exchange/tickets", post(ticket))
        .route("/v1/exchange/receipts", post(receipt))
        .route("/v1/exchange/consents", get(feed))
        .with_state(platform)
}

async fn offers(
    State(p): State_,
    Resident(session): Resident,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(
        json!({ "offers": p.consents.offers(&session).await? }),
    ))
}

async fn my_consents(
    State(p): State_,
    Resident(session): Resident,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(
        json!({ "consents": p.consents.list(&session).await? }),
    ))
}

#[derive(Deserialize)]
struct ConsentRequest {
    consent_jws: String,
    /// For a device gated by WebAuthn: the assertion over SHA-256 of `consent_jws`.
    #[serde(default)]
    user_verification: Option<WireAssertion>,
}

async fn consent(
    State(p): State_,
    Resident(session): Resident,
    Json(req): Json<ConsentRequest>,
) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::CREATED,
        &p.consents
            .grant_verified(&session, &req.consent_jws, req.user_verification.as_ref())
            .await?,
    ))
}

#[derive(Deserialize)]
struct ChangeRequest {
    change_jws: String,
    /// For a device gated by WebAuthn: the assertion over SHA-256 of `change_jws`.
    #[serde(default)]
    user_verification: Option<WireAssertion>,
}

async fn change(
    p: &Platform,
    session: &tsunagu_platform::identity::Session,
    id: String,
    action: ChangeAction,
    req: &ChangeRequest,
) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &p.consents
            .change_verified(
                session,
                &id.into(),
                action,
                &req.change_jws,
                req.user_verification.as_ref(),
            )
            .await?,
    ))
}

async fn revoke(
    State(p): State_,
    Resident(session): Resident,
    Path(id): Path<String>,
    Json(req): Json<ChangeRequest>,
) -> Result<Response, ApiError> {
    change(&p, &session, id, ChangeAction::Revoke, &req).await
}

async fn expiry(
    State(p): State_,
    Resident(session): Resident,
    Path(id): Path<String>,
    Json(req): Json<ChangeRequest>,
) -> Result<Response, ApiError> {
    change(&p, &session, id, ChangeAction::Expiry, &req).await
}

async fn pairwise(
    State(p): State_,
    Resident(session): Resident,
    Path(service_id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &p.consents
            .show_pairwise(&session, &service_id.into())
            .await?,
    ))
}

async fn ticket(
    State(p): State_,
    caller: ServiceCaller,
    Json(req): Json<TicketRequest>,
) -> Result<Response, ApiError> {
    let auth = p
        .exchange
        .authenticate(caller.bearer(), caller.client_cert())
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &p.exchange.ticket(&auth, req).await?,
    ))
}

async fn receipt(
    State(p): State_,
    caller: ServiceCaller,
    Json(req): Json<ReceiptRequest>,
) -> Result<Response, ApiError> {
    let auth = p
        .exchange
        .authenticate(caller.bearer(), caller.client_cert())
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &p.exchange.receipt(&auth, req).await?,
    ))
}

#[derive(Deserialize)]
struct FeedQuery {
    since: Option<i64>,
    limit: Option<u32>,
}

async fn feed(
    State(p): State_,
    caller: ServiceCaller,
    Query(q): Query<FeedQuery>,
) -> Result<Response, ApiError> {
    let auth = p
        .exchange
        .authenticate(caller.bearer(), caller.client_cert())
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &p.exchange
            .feed(&auth, q.since.unwrap_or(0), q.limit.unwrap_or(100))
            .await?,
    ))
}
