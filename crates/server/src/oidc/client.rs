//! Client authentication at the token and PAR endpoints: `private_key_jwt` (RFC 7523, a JWT
//! signed with a key of the service's registered JWKS) or `client_secret_basic` (RFC 6749
//! §2.3.1, with a secret the platform issued), whichever the service registered.

use super::{OAuthError, TOKEN_PATH, endpoint};
use crate::app::App;
use crate::services::ServiceEntry;
use axum::http::HeaderMap;
use std::collections::HashMap;
use std::sync::Arc;
use tsunagu_core::service::{
    ServiceStatus, TOKEN_AUTH_CLIENT_SECRET_BASIC, TOKEN_AUTH_PRIVATE_KEY_JWT,
};
use tsunagu_crypto::jwk::{KeyMaterial, PublicJwk};
use tsunagu_crypto::{b64, sha256};
use tsunagu_store::IdentityChange;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An authenticated client.
pub struct Client {
    pub entry: Arc<ServiceEntry>,
    /// For `private_key_jwt`: the assertion's `jti`, to be consumed in the caller's commit.
    pub jti: Option<IdentityChange>,
}

impl Client {
    pub fn id(&self) -> &str {
        &self.entry.row.id
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs, refusing repeated parameters
/// (RFC 6749 §3.2: "parameters MUST NOT be included more than once").
pub fn form(pairs: Vec<(String, String)>) -> Result<HashMap<String, String>, OAuthError> {
    let mut out = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if out.insert(k.clone(), v).is_some() {
            return Err(OAuthError::bad(
                "invalid_request",
                format!("parameter `{k}` is repeated"),
            ));
        }
    }
    Ok(out)
}

/// Constant-time comparison of two hex digests.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// RFC 6749 §2.3.1: the id and secret in `Authorization: Basic` are form-urlencoded.
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), OAuthError>> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bad = || OAuthError::invalid_client("malformed Basic credentials", true);
    Some((|| {
        let decoded = b64::std_decode(rest.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (id, secret) = text.split_once(':').ok_or_else(bad)?;
        Ok((
            form_decode(id).ok_or_else(bad)?,
            form_decode(secret).ok_or_else(bad)?,
        ))
    })())
}

/// Authenticates the client of a token or PAR request.
pub async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Client, OAuthError> {
    if let Some(basic) = basic_credentials(headers) {
        let (id, secret) = basic?;
        if params.contains_key("client_assertion") {
            return Err(OAuthError::bad(
                "invalid_request",
                "use one client authentication method",
            ));
        }
        if params.get("client_id").is_some_and(|c| *c != id) {
            return Err(OAuthError::invalid_client(
                "client_id differs from the authenticated client",
                true,
            ));
        }
        let entry = app
            .directory
            .get(app.store.as_ref(), &id)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("unknown client or wrong secret", true))?;
        let stored = entry.row.client_secret_hash.as_deref().unwrap_or("");
        if entry.application.token_auth_method() != TOKEN_AUTH_CLIENT_SECRET_BASIC
            || stored.is_empty()
            || !same(stored, &hex::encode(sha256(secret.as_bytes())))
        {
            return Err(OAuthError::invalid_client(
                "unknown client or wrong secret",
                true,
            ));
        }
        return approved(entry, None);
    }

    match (
        params.get("client_assertion_type").map(String::as_str),
        params.get("client_assertion"),
    ) {
        (Some(JWT_BEARER), Some(assertion)) => {
            let claimed = tsunagu_crypto::jws::parse(assertion)
                .ok()
                .and_then(|t| t.json_payload().ok())
                .and_then(|p| p.get("iss").and_then(|v| v.as_str()).map(str::to_owned))
                .ok_or_else(|| {
                    OAuthError::invalid_client("client_assertion is not a JWT with iss", false)
                })?;
            if params.get("client_id").is_some_and(|c| *c != claimed) {
                return Err(OAuthError::invalid_client(
                    "client_id differs from the assertion's issuer",
                    false,
                ));
            }
            let entry = app
                .directory
                .get(app.store.as_ref(), &claimed)
                .await?
                .ok_or_else(|| OAuthError::invalid_client("unknown client", false))?;
            if entry.application.token_auth_method() != TOKEN_AUTH_PRIVATE_KEY_JWT {
                return Err(OAuthError::invalid_client(
                    "this client registered client_secret_basic",
                    false,
                ));
            }
            // RFC 7523 §3 / OpenID Connect Core §9: the audience is the issuer or the token
            // endpoint.
            let audiences = [app.public_url.clone(), endpoint(app, TOKEN_PATH)];
            let verified = crate::assertion::check_for(assertion, &audiences, |iss, kid| {
                signing_key(&entry, iss, kid)
            })
            .map_err(|e| OAuthError::invalid_client(e.detail, false))?;
            let jti = IdentityChange::UseJti {
                key: verified.jti_key,
                expires_at: verified.exp,
            };
            approved(entry, Some(jti))
        }
        (Some(_), _) => Err(OAuthError::invalid_client(
            "client_assertion_type must be jwt-bearer",
            false,
        )),
        (None, _) => Err(OAuthError::invalid_client(
            "client authentication is required (private_key_jwt or client_secret_basic)",
            true,
        )),
    }
}

/// A key of the service's JWKS that may sign its assertions (never a `use: enc` key).
pub fn signing_key(entry: &ServiceEntry, iss: &str, kid: Option<&str>) -> Option<PublicJwk> {
    if iss != entry.row.id {
        return None;
    }
    let signing = |k: &&PublicJwk| {
        matches!(k.material, KeyMaterial::P256 { .. }) && k.use_.as_deref() != Some("enc")
    };
    match kid {
        Some(kid) => entry.jwks.find(kid).filter(signing).cloned(),
        None => {
            let mut candidates = entry.jwks.keys.iter().filter(signing);
            match (candidates.next(), candidates.next()) {
                (Some(only), None) => Some(only.clone()),
                _ => None,
            }
        }
    }
}

fn approved(entry: Arc<ServiceEntry>, jti: Option<IdentityChange>) -> Result<Client, OAuthError> {
    match entry.row.status {
        ServiceStatus::Approved => Ok(Client { entry, jti }),
        ServiceStatus::Suspended => Err(OAuthError::bad(
            "unauthorized_client",
            "the governance committee suspended this service",
        )),
        _ => Err(OAuthError::bad(
            "unauthorized_client",
            "this service is not approved by the governance committee",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let raw = b64::std_encode("svc_a%3Ab:s%2Bcret+x");
        headers.insert(
            axum::http::header::AUTHORIZATION,
            format!("Basic {raw}").parse().unwrap(),
        );
        let (id, secret) = basic_credentials(&headers).unwrap().unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("svc_a:b", "s+cret x"));
        assert!(same("abcd", "abcd"));
        assert!(!same("abcd", "abce"));
        assert!(!same("abcd", "abc"));
    }

    #[test]
    fn repeated_parameters_are_refused() {
        let pairs = vec![
            ("a".to_owned(), "1".to_owned()),
            ("a".to_owned(), "2".to_owned()),
        ];
        assert_eq!(form(pairs).unwrap_err().error, "invalid_request");
    }
}
