//! "Log in with tsunagu": an OpenID Connect provider (Core 1.0, code flow only) with PKCE
//! (S256, required), pairwise subjects, claims released only by a signed consent, refresh
//! token rotation with reuse detection, RP-initiated logout, pushed authorization requests
//! (RFC 9126) and DPoP (RFC 9449).
//!
//! The protocol decisions that need no I/O are in `tsunagu_core::oidc`; this module orders
//! them around storage, keys and the ledger. What comes from HTTP (a form's pairs, the
//! `Authorization` and `DPoP` headers) arrives as plain values; pages and JSON are made by
//! the web and API crates from the outcomes returned here.

mod authorize;
pub mod client;
pub mod logins;
mod token;

pub use authorize::{
    AuthorizeOutcome, ConsentItem, ConsentView, LoginView, Pushed, identity_item_title,
    pending_for_consent,
};
pub use client::{ClientAuthHeader, parse_params};
pub use token::{DpopHeader, LogoutOutcome, TokenSet, UserInfo};

use crate::Refusal;
use crate::config::OidcConfig;
use crate::consents::Consents;
use crate::directory::Directory;
use crate::identity::Identity;
use crate::keys::PlatformKeys;
use crate::ledger::Committer;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use std::sync::Arc;
use tsunagu_core::oidc::{ACR_PROVISIONAL, ACR_VERIFIED, SCOPES_SUPPORTED};
use tsunagu_crypto::sha256;
use tsunagu_store::{Store, StoreError};

/// The OpenID Connect paths.
pub const AUTHORIZE_PATH: &str = "/oauth2/authorize";
pub const TOKEN_PATH: &str = "/oauth2/token";
pub const USERINFO_PATH: &str = "/oauth2/userinfo";
pub const PAR_PATH: &str = "/oauth2/par";
pub const LOGOUT_PATH: &str = "/oauth2/logout";
pub const CONSENT_PATH: &str = "/oauth2/consent";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// RFC 9126 request URIs.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How far a DPoP proof's `iat` may be from the clock.
pub const DPOP_WINDOW: i64 = 60;

/// The HTTP status of an OAuth error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthStatus {
    BadRequest,
    Unauthorized,
    InternalServerError,
    ServiceUnavailable,
}

impl OAuthStatus {
    pub fn code(self) -> u16 {
        match self {
            OAuthStatus::BadRequest => 400,
            OAuthStatus::Unauthorized => 401,
            OAuthStatus::InternalServerError => 500,
            OAuthStatus::ServiceUnavailable => 503,
        }
    }
}

/// An OAuth 2.0 error (RFC 6749 §5.2; RFC 6750 §3 for protected resources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: OAuthStatus,
    pub error: &'static str,
    pub description: String,
    /// `WWW-Authenticate` for 401 answers.
    pub challenge: Option<String>,
    /// The platform's stable refusal code when the OAuth error stands for one (sent as the
    /// extra member `code`, as problem+json answers carry it).
    pub code: Option<tsunagu_core::Code>,
}

impl OAuthError {
    pub fn new(status: OAuthStatus, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            challenge: None,
            code: None,
        }
    }

    /// The same error, naming the platform's refusal code.
    pub fn with_code(mut self, code: tsunagu_core::Code) -> Self {
        self.code = Some(code);
        self
    }

    pub fn bad(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError::new(OAuthStatus::BadRequest, error, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        OAuthError::bad("invalid_grant", description)
    }

    pub fn invalid_client(description: impl Into<String>, basic: bool) -> Self {
        OAuthError {
            status: OAuthStatus::Unauthorized,
            error: "invalid_client",
            description: description.into(),
            challenge: basic.then(|| "Basic realm=\"tsunagu\"".to_owned()),
            code: None,
        }
    }

    /// A protected resource's refusal (RFC 6750 §3, RFC 9449 §7.1).
    pub fn invalid_token(description: impl Into<String>, scheme: &str) -> Self {
        let description = description.into();
        OAuthError {
            status: OAuthStatus::Unauthorized,
            error: "invalid_token",
            challenge: Some(format!(
                "{scheme} error=\"invalid_token\", error_description=\"{}\"",
                description.replace('"', "'")
            )),
            description,
            code: None,
        }
    }

    pub fn server(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(%context, error = %err, "internal error at an OAuth endpoint");
        OAuthError::new(
            OAuthStatus::InternalServerError,
            "server_error",
            "an internal error occurred; it has been logged",
        )
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => OAuthError::new(
                OAuthStatus::ServiceUnavailable,
                "temporarily_unavailable",
                "the database is unavailable; try again",
            ),
            other => OAuthError::server("store", other),
        }
    }
}

impl From<Refusal> for OAuthError {
    fn from(e: Refusal) -> Self {
        match e.code {
            tsunagu_core::Code::Unavailable => {
                OAuthError::new(OAuthStatus::ServiceUnavailable, "server_error", e.detail)
            }
            tsunagu_core::Code::InternalError => {
                OAuthError::new(OAuthStatus::InternalServerError, "server_error", e.detail)
            }
            _ => OAuthError::bad("invalid_request", e.detail),
        }
    }
}

/// SHA-256 (hex) of a code or token: only this is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(sha256(token.as_bytes()))
}

/// Everything but the unreserved characters of RFC 3986 is percent-encoded.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A query component, percent-encoded (a space is `%20`).
pub fn urlencode(s: &str) -> String {
    utf8_percent_encode(s, QUERY_COMPONENT).to_string()
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

/// `/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §3).
#[derive(Debug, Clone, Serialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    pub jwks_uri: String,
    pub end_session_endpoint: String,
    pub pushed_authorization_request_endpoint: String,
    pub scopes_supported: &'static [&'static str],
    pub response_types_supported: [&'static str; 1],
    pub response_modes_supported: [&'static str; 1],
    pub grant_types_supported: [&'static str; 2],
    pub subject_types_supported: [&'static str; 1],
    pub id_token_signing_alg_values_supported: [&'static str; 1],
    pub token_endpoint_auth_methods_supported: [&'static str; 3],
    pub token_endpoint_auth_signing_alg_values_supported: [&'static str; 1],
    pub code_challenge_methods_supported: [&'static str; 1],
    pub claims_supported: [&'static str; 13],
    pub acr_values_supported: [&'static str; 2],
    pub claim_types_supported: [&'static str; 1],
    pub claims_parameter_supported: bool,
    pub request_parameter_supported: bool,
    pub request_uri_parameter_supported: bool,
    pub require_request_uri_registration: bool,
    pub require_pushed_authorization_requests: bool,
    pub authorization_response_iss_parameter_supported: bool,
    pub dpop_signing_alg_values_supported: [&'static str; 2],
    pub ui_locales_supported: [&'static str; 2],
    pub frontchannel_logout_supported: bool,
    pub backchannel_logout_supported: bool,
}

/// Adds to `commit` the revocation of `grant` for `reason` at `t`: the change and its
/// `oidc.grant_revoked` leaf in the resident's history. Every way a grant ends (a replayed
/// code or refresh token, the resident ending it, its device revoked) goes through here.
pub(crate) fn revoke_grant_in(
    commit: tsunagu_store::Commit,
    keys: &PlatformKeys,
    grant: &tsunagu_store::GrantRow,
    reason: &str,
    t: i64,
) -> tsunagu_store::Commit {
    commit
        .change(tsunagu_store::OidcChange::RevokeGrant {
            id: grant.id.clone(),
            reason: reason.to_owned(),
            at: t,
        })
        .leaf(crate::ledger::leaf(
            &tsunagu_core::event::Event::OidcGrantRevoked {
                subject: keys.ledger_subject(&grant.account_id).into_string(),
                client: grant.client_id.to_string(),
                grant: grant.id.to_string(),
                reason: reason.to_owned(),
            },
            &[&grant.account_id],
            t,
        ))
}

/// The OpenID Connect provider.
#[derive(Clone)]
pub struct Oidc {
    store: Arc<dyn Store>,
    committer: Committer,
    directory: Arc<Directory>,
    keys: Arc<PlatformKeys>,
    identity: Identity,
    consents: Consents,
    config: OidcConfig,
    max_consent_days: i64,
    public_url: String,
}

impl Oidc {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        committer: Committer,
        directory: Arc<Directory>,
        keys: Arc<PlatformKeys>,
        identity: Identity,
        consents: Consents,
        config: OidcConfig,
        max_consent_days: i64,
        public_url: String,
    ) -> Oidc {
        Oidc {
            store,
            committer,
            directory,
            keys,
            identity,
            consents,
            config,
            max_consent_days,
            public_url,
        }
    }

    /// An endpoint's absolute URL.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }

    /// The provider's metadata.
    pub fn discovery(&self) -> ProviderMetadata {
        let e = |p| self.endpoint(p);
        ProviderMetadata {
            issuer: self.public_url.clone(),
            authorization_endpoint: e(AUTHORIZE_PATH),
            token_endpoint: e(TOKEN_PATH),
            userinfo_endpoint: e(USERINFO_PATH),
            jwks_uri: e(JWKS_PATH),
            end_session_endpoint: e(LOGOUT_PATH),
            pushed_authorization_request_endpoint: e(PAR_PATH),
            scopes_supported: SCOPES_SUPPORTED,
            response_types_supported: ["code"],
            response_modes_supported: ["query"],
            grant_types_supported: ["authorization_code", "refresh_token"],
            subject_types_supported: ["pairwise"],
            id_token_signing_alg_values_supported: ["ES256"],
            token_endpoint_auth_methods_supported: [
                "private_key_jwt",
                "client_secret_basic",
                "tls_client_auth",
            ],
            token_endpoint_auth_signing_alg_values_supported: ["ES256"],
            code_challenge_methods_supported: ["S256"],
            claims_supported: [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "acr",
                "amr",
                "name",
                "address",
                "birthdate",
                "gender",
            ],
            acr_values_supported: [ACR_VERIFIED, ACR_PROVISIONAL],
            claim_types_supported: ["normal"],
            claims_parameter_supported: false,
            request_parameter_supported: false,
            request_uri_parameter_supported: true,
            require_request_uri_registration: false,
            require_pushed_authorization_requests: false,
            authorization_response_iss_parameter_supported: true,
            dpop_signing_alg_values_supported: ["ES256", "EdDSA"],
            ui_locales_supported: ["ja", "en"],
            frontchannel_logout_supported: false,
            backchannel_logout_supported: false,
        }
    }

    /// Grants to a client that are not revoked (for the service console).
    pub async fn active_grants(&self, client: &tsunagu_core::ServiceId) -> Result<u64, StoreError> {
        self.store.count_active_grants(client).await
    }

    /// Deletes expired authorization requests, and codes and tokens a day past their expiry.
    /// Returns rows deleted.
    pub async fn purge(&self) -> Result<u64, StoreError> {
        self.store.purge_oidc(crate::now()).await
    }
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
        assert_eq!(urlencode("a-._~z/é"), "a-._~z%2F%C3%A9");
    }
}
