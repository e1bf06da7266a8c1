//! The provider's payload: a JWS by the provider's key (originality: the consumer can show
//! who sent what), optionally encrypted to the consumer (JWE ECDH-ES + A256GCM). Receipts
//! carry the SHA-256 (hex) of the signed payload's compact form.

use crate::ConnectorError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tsunagu_core::Code;
use tsunagu_crypto::jwk::JwkSet;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::{jws, sha256};

pub const PAYLOAD_TYP: &str = "tsunagu-payload+jwt";

/// What the provider signs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadClaims {
    /// The provider's service id.
    pub iss: String,
    /// The consumer's service id.
    pub aud: String,
    /// The ticket's `jti` (not the resident's id: the consumer never sees the provider's).
    pub ticket: String,
    pub purpose: String,
    /// The items, by name. Only items the ticket names.
    pub items: Map<String, Value>,
    pub iat: i64,
}

pub fn sign(key: &SigningKey, claims: &PayloadClaims) -> Result<String, ConnectorError> {
    jws::sign_json(key, Some(PAYLOAD_TYP), claims)
        .map_err(|e| ConnectorError::Config(e.to_string()))
}

/// The SHA-256 (hex) a receipt reports.
pub fn digest(signed: &str) -> String {
    sha256(signed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn invalid(detail: impl Into<String>) -> ConnectorError {
    ConnectorError::invalid(Code::PayloadInvalid, detail)
}

/// Verifies a payload from `provider` (whose keys are `jwks`) for `consumer` and `ticket`.
pub fn verify(
    signed: &str,
    jwks: &JwkSet,
    provider: &str,
    consumer: &str,
    ticket: &str,
) -> Result<PayloadClaims, ConnectorError> {
    let token = jws::parse(signed).map_err(|e| invalid(format!("payload: {e}")))?;
    if token.alg != Alg::Es256 || token.typ.as_deref() != Some(PAYLOAD_TYP) {
        return Err(invalid(
            "a payload is an ES256 JWS of type tsunagu-payload+jwt",
        ));
    }
    let key = token
        .kid
        .as_deref()
        .and_then(|kid| jwks.find(kid))
        .ok_or_else(|| invalid("the payload's key is not one the provider registered"))?;
    token
        .verify(key)
        .map_err(|_| invalid("the payload's signature does not verify"))?;
    let claims: PayloadClaims = token
        .payload_as()
        .map_err(|e| invalid(format!("payload claims: {e}")))?;
    if claims.iss != provider || claims.aud != consumer || claims.ticket != ticket {
        return Err(invalid(
            "the payload is from another provider, for another consumer or ticket",
        ));
    }
    Ok(claims)
}
