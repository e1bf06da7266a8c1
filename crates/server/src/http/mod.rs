//! The HTTP face: small handlers over typed extractors; errors become problem+json in one
//! place; metrics and tracing are layers.

mod exchange;
mod identity;
mod ledger;
mod meta;

use crate::app::App;
use crate::error::ApiError;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Instant;
use tsunagu_core::Code;

pub type AppState = Arc<App>;

/// Every route, for the router and for checking that the OpenAPI document covers them.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", "/v1/enrollment/challenge"),
    ("POST", "/v1/enrollment"),
    ("POST", "/v1/auth/challenge"),
    ("POST", "/v1/auth/login"),
    ("GET", "/v1/me"),
    ("GET", "/v1/me/history"),
    ("POST", "/v1/me/devices/{id}/revoke"),
    ("GET", "/v1/ledger/sth"),
    ("GET", "/v1/ledger/proof/inclusion"),
    ("GET", "/v1/ledger/proof/consistency"),
    ("GET", "/v1/ledger/entries"),
    ("POST", "/v1/services"),
    ("GET", "/v1/services"),
    ("GET", "/v1/services/{id}"),
    ("PUT", "/v1/services/{id}/registration"),
    ("POST", "/v1/services/{id}/client_secret"),
    ("POST", "/v1/governance/services/{id}/votes"),
    ("GET", "/v1/governance/alerts"),
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

/// The application router.
pub fn router(app: AppState) -> Router {
    let body_limit = app.config.server.body_limit_bytes;
    Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/metrics", get(meta::metrics))
        .route("/openapi.json", get(meta::openapi))
        .route("/.well-known/jwks.json", get(meta::jwks))
        .route(
            "/v1/enrollment/challenge",
            post(identity::enrollment_challenge),
        )
        .route("/v1/enrollment", post(identity::enroll))
        .route("/v1/auth/challenge", post(identity::auth_challenge))
        .route("/v1/auth/login", post(identity::login))
        .route("/v1/me", get(identity::me))
        .route("/v1/me/history", get(identity::history))
        .route("/v1/me/devices/{id}/revoke", post(identity::revoke_device))
        .route("/v1/ledger/sth", get(ledger::sth))
        .route("/v1/ledger/proof/inclusion", get(ledger::inclusion))
        .route("/v1/ledger/proof/consistency", get(ledger::consistency))
        .route("/v1/ledger/entries", get(ledger::entries))
        .route("/v1/services", post(exchange::apply).get(exchange::list))
        .route("/v1/services/{id}", get(exchange::get))
        .route(
            "/v1/services/{id}/registration",
            put(exchange::update_registration),
        )
        .route(
            "/v1/services/{id}/client_secret",
            post(exchange::rotate_client_secret),
        )
        .route("/v1/governance/services/{id}/votes", post(exchange::vote))
        .route("/v1/governance/alerts", get(exchange::alerts))
        .route("/v1/me/offers", get(exchange::offers))
        .route(
            "/v1/me/consents",
            get(exchange::my_consents).post(exchange::consent),
        )
        .route("/v1/me/consents/{id}/revoke", post(exchange::revoke))
        .route("/v1/me/consents/{id}/expiry", post(exchange::expiry))
        .route("/v1/me/pairwise/{service_id}", get(exchange::pairwise))
        .route("/v1/exchange/tickets", post(exchange::ticket))
        .route("/v1/exchange/receipts", post(exchange::receipt))
        .route("/v1/exchange/consents", get(exchange::feed))
        .merge(crate::web::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(record_metrics))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "this method is not allowed here")
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("tsunagu_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("tsunagu_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

/// The raw body, with a size error as problem+json.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(Code::PayloadTooLarge, "the request body is too large")
                } else {
                    ApiError::new(Code::InvalidRequest, e.body_text())
                }
            })
    }
}

/// A JSON body of type `T`; any other body is `invalid_json` with the reason.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Body(bytes) = Body::from_request(req, state).await?;
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|e| ApiError::new(Code::InvalidJson, format!("request body: {e}")))
    }
}

/// Query parameters of type `T`; malformed ones are `invalid_request`.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::new(Code::InvalidRequest, e.body_text()))
    }
}

/// The `Authorization: Bearer` token, if any.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// An authenticated resident (a session from `/v1/auth/login`).
pub struct Resident(pub crate::identity::Session);

impl FromRequestParts<AppState> for Resident {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::new(Code::Unauthorized, "a bearer access token is required")
        })?;
        crate::identity::authenticate(app, token)
            .await
            .map(Resident)
    }
}

/// JSON responses with a status.
pub fn json_response(status: axum::http::StatusCode, value: serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}
