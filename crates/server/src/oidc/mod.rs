//! "Log in with tsunagu": an OpenID Connect provider (Core 1.0, code flow only) with PKCE
//! (S256, required), pairwise subjects, claims released only by a signed consent, refresh
//! token rotation with reuse detection, RP-initiated logout, pushed authorization requests
//! (RFC 9126) and DPoP (RFC 9449).
//!
//! The protocol decisions that need no I/O are in `tsunagu_core::oidc`; this module orders
//! them around storage, keys and the ledger. Pages (login, consent, errors) are rendered by
//! `crate::web` from the outcomes returned here.

mod authorize;
pub mod client;
mod token;

pub use authorize::{
    AuthorizeOutcome, ConsentItem, ConsentView, LoginView, authorize, consent_decision,
    identity_item_title, login, pending_for_consent, push, resume, web_login_page,
};
pub use client::signing_key;
pub use token::{LogoutOutcome, logout, token, userinfo};

use crate::app::App;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tsunagu_core::oidc::SCOPES_SUPPORTED;
use tsunagu_crypto::sha256;

/// The OpenID Connect paths.
pub const AUTHORIZE_PATH: &str = "/oauth2/authorize";
pub const TOKEN_PATH: &str = "/oauth2/token";
pub const USERINFO_PATH: &str = "/oauth2/userinfo";
pub const PAR_PATH: &str = "/oauth2/par";
pub const LOGOUT_PATH: &str = "/oauth2/logout";
pub const CONSENT_PATH: &str = "/oauth2/consent";
/// RFC 9126 request URIs.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How far a DPoP proof's `iat` may be from the clock.
pub const DPOP_WINDOW: i64 = 60;

/// An OAuth 2.0 error response (RFC 6749 §5.2; RFC 6750 §3 for protected resources).
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// `WWW-Authenticate` for 401 answers.
    pub challenge: Option<String>,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            challenge: None,
        }
    }

    pub fn bad(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, error, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        OAuthError::bad("invalid_grant", description)
    }

    pub fn invalid_client(description: impl Into<String>, basic: bool) -> Self {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
            challenge: basic.then(|| "Basic realm=\"tsunagu\"".to_owned()),
        }
    }

    /// A protected resource's refusal (RFC 6750 §3, RFC 9449 §7.1).
    pub fn invalid_token(description: impl Into<String>, scheme: &str) -> Self {
        let description = description.into();
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_token",
            challenge: Some(format!(
                "{scheme} error=\"invalid_token\", error_description=\"{}\"",
                description.replace('"', "'")
            )),
            description,
        }
    }

    pub fn server(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(%context, error = %err, "internal error at an OAuth endpoint");
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "an internal error occurred; it has been logged",
        )
    }
}

impl From<tsunagu_store::StoreError> for OAuthError {
    fn from(e: tsunagu_store::StoreError) -> Self {
        match e {
            tsunagu_store::StoreError::Unavailable(_) => OAuthError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the database is unavailable; try again",
            ),
            other => OAuthError::server("store", other),
        }
    }
}

impl From<crate::error::ApiError> for OAuthError {
    fn from(e: crate::error::ApiError) -> Self {
        if e.status.is_server_error() {
            OAuthError::new(e.status, "server_error", e.detail)
        } else {
            OAuthError::bad("invalid_request", e.detail)
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, c);
        }
        response
    }
}

/// SHA-256 (hex) of a code or token: only this is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(sha256(token.as_bytes()))
}

/// An endpoint's absolute URL.
pub fn endpoint(app: &App, path: &str) -> String {
    format!("{}{path}", app.public_url)
}

/// `/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §3).
pub fn discovery(app: &App) -> Value {
    let e = |p| endpoint(app, p);
    json!({
        "issuer": app.public_url,
        "authorization_endpoint": e(AUTHORIZE_PATH),
        "token_endpoint": e(TOKEN_PATH),
        "userinfo_endpoint": e(USERINFO_PATH),
        "jwks_uri": e("/.well-known/jwks.json"),
        "end_session_endpoint": e(LOGOUT_PATH),
        "pushed_authorization_request_endpoint": e(PAR_PATH),
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "name", "address", "birthdate", "gender"],
        "acr_values_supported": [tsunagu_core::oidc::ACR_VERIFIED, tsunagu_core::oidc::ACR_PROVISIONAL],
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": true,
        "require_request_uri_registration": false,
        "require_pushed_authorization_requests": false,
        "authorization_response_iss_parameter_supported": true,
        "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
        "ui_locales_supported": ["ja", "en"],
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
    })
}

/// Appends query parameters to a URL that may already have a query.
pub fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut url = base.to_owned();
    let mut sep = if base.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        url.push(sep);
        url.push_str(&urlencode(k));
        url.push('=');
        url.push_str(&urlencode(v));
        sep = '&';
    }
    url
}

/// `application/x-www-form-urlencoded` / query component encoding.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_appended_and_encoded() {
        assert_eq!(
            with_query("https://rp/cb", &[("code", "a b"), ("state", "x&y")]),
            "https://rp/cb?code=a%20b&state=x%26y"
        );
        assert_eq!(
            with_query("https://rp/cb?k=1", &[("code", "c")]),
            "https://rp/cb?k=1&code=c"
        );
    }
}
