//! Health, metrics, the OpenAPI document and the platform's public keys.

use super::AppState;
use crate::error::ApiError;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub async fn healthz(State(app): State<AppState>) -> Response {
    let database = app.store.ping().await;
    let trust = app.trust.current();
    let body = json!({
        "status": if database.is_ok() { "ok" } else { "degraded" },
        "database": {
            "backend": app.store.backend(),
            "ok": database.is_ok(),
        },
        "ledger": { "tree_size": app.ledger.size() },
        "jpki": {
            "trust_anchors": trust.anchors.len(),
            "crls": trust.sources,
        },
    });
    let status = if database.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

pub async fn metrics() -> Response {
    match crate::metrics_handle() {
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
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub async fn jwks(State(app): State<AppState>) -> axum::Json<Value> {
    axum::Json(app.keys.jwks.to_value())
}

#[cfg(test)]
mod tests {
    use super::OPENAPI;
    use crate::http::ROUTES;

    #[test]
    fn the_openapi_document_covers_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for (method, path) in ROUTES {
            let operation = &doc["paths"][path][method.to_lowercase()];
            assert!(operation.is_object(), "{method} {path} is not documented");
            assert!(
                operation["responses"].is_object(),
                "{method} {path} has no responses"
            );
        }
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(
            documented,
            ROUTES.len(),
            "the document lists routes that do not exist"
        );
    }
}
