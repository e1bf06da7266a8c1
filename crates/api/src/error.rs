//! Errors at the HTTP edge: RFC 9457 problem+json with a stable `code`, and OAuth 2.0 error
//! bodies for the OpenID Connect endpoints.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tsunagu_core::Code;
use tsunagu_platform::Refusal;
use tsunagu_platform::StoreError;
use tsunagu_platform::oidc::OAuthError;

/// A refusal or failure, as the client will see it.
#[derive(Debug, Clone)]
pub struct ApiError(pub Refusal);

impl ApiError {
    pub fn new(code: Code, detail: impl Into<String>) -> ApiError {
        ApiError(Refusal::new(code, detail))
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> ApiError {
        ApiError(Refusal::internal(context, err))
    }

    pub fn code(&self) -> Code {
        self.0.code
    }

    pub fn status(&self) -> StatusCode {
        status_of(self.0.code)
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError(r)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(e.into())
    }
}

/// The HTTP status for a code.
pub fn status_of(code: Code) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl ApiError {
    /// The problem+json answer with another status than the code's own (a staff lock-out
    /// answers `locked` with 429, where a device's lock-out answers 423).
    pub fn into_response_with(self, status: StatusCode) -> Response {
        problem(&self.0, status)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        problem(&self.0, status)
    }
}

fn problem(refusal: &Refusal, status: StatusCode) -> Response {
    let body = json!({
        "type": format!("urn:tsunagu:problem:{}", refusal.code.as_str()),
        "title": refusal.code.title(),
        "status": status.as_u16(),
        "detail": tsunagu_core::code::public_detail(&refusal.detail),
        "code": refusal.code.as_str(),
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// An OAuth 2.0 error as an HTTP answer: JSON `{error, error_description}`, not cached,
/// with `WWW-Authenticate` for 401 answers.
pub struct OAuthResponse(pub OAuthError);

impl IntoResponse for OAuthResponse {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status.code()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut body = json!({
            "error": e.error,
            "error_description": tsunagu_core::code::public_detail(&e.description),
        });
        if let Some(code) = e.code {
            body["code"] = json!(code.as_str());
        }
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(c) = e.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, c);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_status_and_a_title() {
        for code in Code::ALL {
            assert!(!code.title().is_empty());
            let status = status_of(*code);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code}"
            );
        }
    }
}
