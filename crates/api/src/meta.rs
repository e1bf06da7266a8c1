//! Health, metrics, the OpenAPI document and the platform's public keys.

use crate::error::ApiError;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use tsunagu_platform::Platform;

/// This capability's routes (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/.well-known/jwks.json"),
];

static METRICS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder once per process.
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    METRICS
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

pub fn router(platform: Arc<Platform>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(platform)
}

async fn healthz(State(p): State<Arc<Platform>>) -> Response {
    let health = p.health().await;
    let body = json!({
        "status": if health.database_ok { "ok" } else { "degraded" },
        "database": {
            "backend": health.backend,
            "ok": health.database_ok,
        },
        "ledger": { "tree_size": health.tree_size },
        "jpki": {
            "trust_anchors": health.trust.anchors.len(),
            "crls": health.trust.sources.iter().map(|s| json!({
                "location": public_location(&s.location),
                "loaded": s.loaded,
                // The reason, with its file paths, is in the server log.
                "error": s.error.as_ref().map(|_| "could not be loaded or refreshed: see the server log"),
                "this_update": s.this_update,
                "next_update": s.next_update,
                "revoked": s.revoked,
            })).collect::<Vec<_>>(),
        },
    });
    let status = if health.database_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// A CRL's location as `/healthz` shows it to anyone: a URL as it is (distribution points
/// are public), a file by its name only (the server's directories are not).
fn public_location(location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_owned();
    }
    std::path::Path::new(location)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn metrics() -> Response {
    match metrics_handle() {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => ApiError::new(tsunagu_core::Code::Unavailable, "metrics are not installed")
            .into_response(),
    }
}

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn jwks(State(p): State<Arc<Platform>>) -> axum::Json<Value> {
    axum::Json(p.keys.jwks().to_value())
}

#[cfg(test)]
mod tests {
    use super::public_location;

    #[test]
    fn healthz_shows_no_server_path() {
        assert_eq!(
            public_location("/etc/tsunagu/crl/jpki-sign.crl"),
            "jpki-sign.crl"
        );
        assert_eq!(public_location("crl/jpki.crl"), "jpki.crl");
        assert_eq!(
            public_location("http://crl.example.jp/sign.crl"),
            "http://crl.example.jp/sign.crl"
        );
    }
}
