//! The governance capability's API: applications, the service directory, registration
//! updates and client secrets, the committee's votes, and alerts.

use crate::error::ApiError;
use crate::extract::{Body, Json, Query, ServiceCaller, bearer, json_response};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tsunagu_core::Code;
use tsunagu_core::service::ServiceStatus;
use tsunagu_platform::Platform;
use tsunagu_platform::directory::ServiceEntry;
use tsunagu_platform::exchange::AlertRow;
use tsunagu_platform::services::{RegistrationUpdate, parse_application, parse_jwks};

type State_ = State<Arc<Platform>>;

/// This capability's routes (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/services"),
    ("GET", "/v1/services"),
    ("GET", "/v1/services/{id}"),
    ("PUT", "/v1/services/{id}/registration"),
    ("POST", "/v1/services/{id}/client_secret"),
    ("POST", "/v1/governance/services/{id}/votes"),
    ("GET", "/v1/governance/alerts"),
    ("GET", "/v1/governance/obligations"),
];

pub fn router(platform: Arc<Platform>) -> Router {
    Router::new()
        .route("/v1/services", post(apply).get(list))
        .route("/v1/services/{id}", get(service))
        .route("/v1/services/{id}/registration", put(update_registration))
        .route(
            "/v1/services/{id}/client_secret",
            post(rotate_client_secret),
        )
        .route("/v1/governance/services/{id}/votes", post(vote))
        .route("/v1/governance/alerts", get(alerts))
        .route("/v1/governance/obligations", get(obligations))
        .with_state(platform)
}

/// `GET /v1/governance/obligations`: the contract obligations a service accepts with its
/// approval, and the hash it signs to accept them (`obligations_acceptance` in the
/// application).
async fn obligations() -> axum::Json<Value> {
    axum::Json(serde_json::json!({
        "obligations": tsunagu_core::service::OBLIGATIONS
            .iter()
            .map(|(code, ja, en)| serde_json::json!({"code": code, "text_ja": ja, "text_en": en}))
            .collect::<Vec<_>>(),
        "text": tsunagu_core::service::obligations_text(),
        "obligations_sha256": tsunagu_platform::services::obligations_sha256(),
        "acceptance": "a compact JWS (ES256, header kid = a key of the application's JWKS) over {\"obligations_sha256\": <obligations_sha256>}, sent as obligations_acceptance in the application",
    }))
}

async fn apply(
    State(p): State_,
    caller: ServiceCaller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::CREATED,
        &p.services
            .apply_over(parse_application(&body)?, caller.client_cert())
            .await?,
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
}

async fn list(State(p): State_, Query(q): Query<ListQuery>) -> Result<axum::Json<Value>, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            ServiceStatus::parse(s)
                .ok_or_else(|| ApiError::new(Code::InvalidRequest, format!("status `{s}`")))?,
        ),
    };
    let rows = p.services.list(status).await?;
    Ok(axum::Json(json!({
        "services": rows.iter().map(|r| json!({
            "service_id": r.id,
            "name": r.name,
            "organization": r.organization,
            "kind": r.kind,
            "status": r.status,
            "created_at": r.created_at,
        })).collect::<Vec<_>>(),
    })))
}

/// What anyone may read about a service.
pub fn public_view(entry: &ServiceEntry) -> Value {
    json!({
        "service_id": entry.row.id,
        "name": entry.row.name,
        "organization": entry.row.organization,
        "contact": entry.row.contact,
        "kind": entry.row.kind,
        "status": entry.row.status,
        "round": entry.row.round,
        "lint": entry.findings(),
        "endpoint": entry.row.endpoint,
        "jwks": entry.jwks().to_value(),
        "redirect_uris": entry.application.redirect_uris,
        "offers": entry.application.offers,
        "purposes": entry.purposes.iter().map(|p| {
            let mut v = serde_json::to_value(&p.purpose).unwrap_or(Value::Null);
            v["terms_sha256"] = Value::String(p.row.terms_sha256.clone());
            v
        }).collect::<Vec<_>>(),
        "security": entry.application.security,
        "created_at": entry.row.created_at,
        "updated_at": entry.row.updated_at,
    })
}

async fn service(State(p): State_, Path(id): Path<String>) -> Result<axum::Json<Value>, ApiError> {
    let entry = p.services.get(&id.into()).await?;
    Ok(axum::Json(public_view(&entry)))
}

/// `PUT /v1/services/{id}/registration`: absent fields stay as they are; an empty
/// `endpoint` removes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrationBody {
    #[serde(default)]
    jwks: Option<Value>,
    #[serde(default)]
    redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    post_logout_redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    endpoint: Option<String>,
    /// PEM, or its `x5t#S256`; empty removes it.
    #[serde(default)]
    tls_client_certificate: Option<String>,
    #[serde(default)]
    obligations_acceptance: Option<String>,
}

async fn update_registration(
    State(p): State_,
    Path(id): Path<String>,
    caller: ServiceCaller,
    Json(body): Json<RegistrationBody>,
) -> Result<Response, ApiError> {
    let id = id.into();
    p.exchange.authenticate_self(caller.bearer(), &id).await?;
    let update = RegistrationUpdate {
        jwks: body.jwks.map(|v| parse_jwks(&v.to_string())).transpose()?,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        endpoint: body.endpoint,
        tls_client_certificate: body.tls_client_certificate,
        obligations_acceptance: body.obligations_acceptance,
        presented_client_cert: caller.client_cert,
    };
    Ok(json_response(
        StatusCode::OK,
        &p.services.update_registration(&id, &update).await?,
    ))
}

async fn rotate_client_secret(
    State(p): State_,
    Path(id): Path<String>,
    caller: ServiceCaller,
) -> Result<Response, ApiError> {
    let id = id.into();
    p.exchange.authenticate_self(caller.bearer(), &id).await?;
    Ok(json_response(
        StatusCode::OK,
        &p.services.rotate_client_secret(&id).await?,
    ))
}

#[derive(Deserialize)]
struct VoteRequest {
    vote_jws: String,
}

async fn vote(
    State(p): State_,
    Path(id): Path<String>,
    Json(req): Json<VoteRequest>,
) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &p.governance.vote(&id.into(), &req.vote_jws).await?,
    ))
}

#[derive(Deserialize)]
struct SinceQuery {
    since: Option<i64>,
}

/// An alert as JSON.
pub fn alert_json(a: &AlertRow) -> Value {
    json!({
        "cursor": a.seq,
        "kind": a.kind,
        "service_id": a.service_id,
        "ticket_id": a.ticket_id,
        "detail": a.detail,
        "at": a.created_at,
    })
}

async fn alerts(
    State(p): State_,
    headers: HeaderMap,
    Query(q): Query<SinceQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    p.governance.overseer(bearer(&headers)).await?;
    let since = q.since.unwrap_or(0).max(0);
    let rows = p.exchange.alerts(since, 500).await?;
    Ok(axum::Json(json!({
        "alerts": rows.iter().map(alert_json).collect::<Vec<_>>(),
        "next": rows.last().map(|a| a.seq).unwrap_or(since),
    })))
}
