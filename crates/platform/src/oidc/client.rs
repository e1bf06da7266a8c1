//! Client authentication at the token and PAR endpoints: `private_key_jwt` (RFC 7523, a JWT
//! signed with a key of the service's registered JWKS), `client_secret_basic` (RFC 6749
//! §2.3.1, with a secret the platform issued) or `tls_client_auth` (RFC 8705 §2, the mutual-TLS
//! connection's certificate matching the one the service registered), whichever it registered.

use super::{OAuthError, Oidc, TOKEN_PATH};
use crate::assertion;
use crate::directory::ServiceEntry;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use tsunagu_core::service::{
    ServiceStatus, TOKEN_AUTH_CLIENT_SECRET_BASIC, TOKEN_AUTH_PRIVATE_KEY_JWT,
    TOKEN_AUTH_TLS_CLIENT_AUTH,
};
use tsunagu_crypto::{constant_time_eq, sha256};
use tsunagu_store::IdentityChange;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub use tsunagu_core::oidc::ClientAuthHeader;

/// An authenticated client.
pub struct Client {
    pub entry: Arc<ServiceEntry>,
    /// For `private_key_jwt`: the assertion's `jti`, to be used up in the caller's commit.
    pub jti: Option<IdentityChange>,
}

impl Client {
    pub fn id(&self) -> &str {
        self.entry.row.id.as_str()
    }
}

/// Decodes form pairs into a map, refusing repeated parameters (RFC 6749 §3.2: "parameters
/// MUST NOT be included more than once").
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

/// Typed parameters (e.g. an authorization request) from a form's distinct pairs. Unknown
/// parameters are ignored, as OAuth requires.
pub fn parse_params<T: for<'de> Deserialize<'de>>(
    params: &HashMap<String, String>,
) -> Result<T, OAuthError> {
    let encoded = serde_urlencoded::to_string(params)
        .map_err(|e| OAuthError::bad("invalid_request", e.to_string()))?;
    serde_urlencoded::from_str(&encoded)
        .map_err(|e| OAuthError::bad("invalid_request", e.to_string()))
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

impl Oidc {
    /// Authenticates the client of a token or PAR request.
    pub(crate) async fn authenticate_client(
        &self,
        header: &ClientAuthHeader,
        params: &HashMap<String, String>,
        client_cert: Option<&str>,
    ) -> Result<Client, OAuthError> {
        match header {
            ClientAuthHeader::MalformedBasic => {
                return Err(OAuthError::invalid_client(
                    "malformed Basic credentials",
                    true,
                ));
            }
            ClientAuthHeader::Basic { id, secret } => {
                if params.contains_key("client_assertion") {
                    return Err(OAuthError::bad(
                        "invalid_request",
                        "use one client authentication method",
                    ));
                }
                if params.get("client_id").is_some_and(|c| c != id) {
                    return Err(OAuthError::invalid_client(
                        "client_id differs from the authenticated client",
                        true,
                    ));
                }
                let entry = self.directory.find(id).await?.ok_or_else(|| {
                    OAuthError::invalid_client("unknown client or wrong secret", true)
                })?;
                let stored = entry.row.client_secret_hash.as_deref().unwrap_or("");
                let presented = hex::encode(sha256(secret.as_bytes()));
                if entry.application.token_auth_method() != TOKEN_AUTH_CLIENT_SECRET_BASIC
                    || stored.is_empty()
                    || !constant_time_eq(stored.as_bytes(), presented.as_bytes())
                {
                    return Err(OAuthError::invalid_client(
                        "unknown client or wrong secret",
                        true,
                    ));
                }
                return approved(entry, None);
            }
            ClientAuthHeader::None => {}
        }
        if !params.contains_key("client_assertion")
            && let Some(client) = self.tls_client(params, client_cert).await?
        {
            return Ok(client);
        }

        match (
            params.get("client_assertion_type").map(String::as_str),
            params.get("client_assertion"),
        ) {
            (Some(JWT_BEARER), Some(assertion)) => {
                let claimed = assertion::claimed_issuer(assertion).ok_or_else(|| {
                    OAuthError::invalid_client("client_assertion is not a JWT with iss", false)
                })?;
                if params.get("client_id").is_some_and(|c| *c != claimed) {
                    return Err(OAuthError::invalid_client(
                        "client_id differs from the assertion's issuer",
                        false,
                    ));
                }
                let entry = self
                    .directory
                    .find(&claimed)
                    .await?
                    .ok_or_else(|| OAuthError::invalid_client("unknown client", false))?;
                if entry.application.token_auth_method() != TOKEN_AUTH_PRIVATE_KEY_JWT {
                    return Err(OAuthError::invalid_client(
                        "this client registered client_secret_basic",
                        false,
                    ));
                }
                // RFC 7523 §3 / OpenID Connect Core §9: the audience is the issuer or the
                // token endpoint.
                let audiences = [self.public_url.clone(), self.endpoint(TOKEN_PATH)];
                let verified = assertion::check_for(assertion, &audiences, |iss, kid| {
                    entry.signing_key(iss, kid)
                })
                .map_err(|e| OAuthError::invalid_client(e.detail, false))?;
                let jti = verified.use_jti();
                approved(entry, Some(jti))
            }
            (Some(_), _) => Err(OAuthError::invalid_client(
                "client_assertion_type must be jwt-bearer",
                false,
            )),
            (None, _) => Err(OAuthError::invalid_client(
                "client authentication is required (private_key_jwt, client_secret_basic or tls_client_auth)",
                true,
            )),
        }
    }

    /// RFC 8705 §2 (`tls_client_auth`): a request with `client_id` and no other credential, on
    /// a connection whose client certificate is the one that client registered. `None` when
    /// the request does not use it.
    async fn tls_client(
        &self,
        params: &HashMap<String, String>,
        client_cert: Option<&str>,
    ) -> Result<Option<Client>, OAuthError> {
        let Some(client_id) = params.get("client_id") else {
            return Ok(None);
        };
        let Some(x5t_s256) = client_cert else {
            // A client registered for tls_client_auth that came without its certificate.
            if let Some(entry) = self.directory.find(client_id).await?
                && entry.application.token_auth_method() == TOKEN_AUTH_TLS_CLIENT_AUTH
            {
                return Err(OAuthError::invalid_client(
                    "this client authenticates with its registered TLS client certificate; connect with it",
                    false,
                ));
            }
            return Ok(None);
        };
        let Some(entry) = self.directory.by_client_cert(x5t_s256).await? else {
            return Ok(None);
        };
        if entry.row.id.as_str() != client_id
            || entry.application.token_auth_method() != TOKEN_AUTH_TLS_CLIENT_AUTH
        {
            return Ok(None);
        }
        approved(entry, None).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        let pairs = vec![
            ("a".to_owned(), "1".to_owned()),
            ("a".to_owned(), "2".to_owned()),
        ];
        assert_eq!(form(pairs).unwrap_err().error, "invalid_request");
    }

    #[test]
    fn parameters_become_typed_and_unknown_ones_are_ignored() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct P {
            client_id: Option<String>,
            scope: Option<String>,
        }
        let params = form(vec![
            ("client_id".into(), "svc_a".into()),
            ("extra".into(), "x".into()),
        ])
        .unwrap();
        assert_eq!(
            parse_params::<P>(&params).unwrap(),
            P {
                client_id: Some("svc_a".into()),
                scope: None
            }
        );
    }
}
