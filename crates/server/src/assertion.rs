//! Bearer assertions from parties with registered keys (RFC 7523 style): a JWT signed with
//! ES256 by the party's key, `iss` = `sub` = the party's id, `aud` = the platform's public
//! URL, a `jti` used once, `iat`, and `exp` no more than five minutes ahead. Auditors use
//! them to read ledger entries; services (consumers and providers) will use the same.

use crate::app::{App, now};
use crate::error::ApiError;
use serde::Deserialize;
use tsunagu_core::Code;
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::jws;
use tsunagu_crypto::keys::Alg;
use tsunagu_store::StoreError;

/// Longest accepted assertion lifetime.
pub const MAX_LIFETIME: i64 = 300;
/// Clock skew tolerated on `iat`.
const SKEW: i64 = 60;

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: serde_json::Value,
    jti: String,
    iat: i64,
    exp: i64,
}

/// Checks `token` and returns the party id. `key_of` maps a party id (and the header's
/// `kid`) to the key that may sign for it.
pub async fn verify(
    app: &App,
    token: &str,
    key_of: impl Fn(&str, Option<&str>) -> Option<PublicJwk>,
) -> Result<String, ApiError> {
    let unauthorized =
        |why: &str| ApiError::new(Code::Unauthorized, format!("client assertion: {why}"));
    let parsed = jws::parse(token).map_err(|_| unauthorized("not a compact JWS"))?;
    if parsed.alg != Alg::Es256 {
        return Err(unauthorized("must be signed with ES256"));
    }
    let claims: Claims = parsed
        .payload_as()
        .map_err(|_| unauthorized("claims iss, sub, aud, jti, iat, exp are required"))?;
    if claims.iss != claims.sub {
        return Err(unauthorized("iss and sub must both be the client id"));
    }
    let key =
        key_of(&claims.iss, parsed.kid.as_deref()).ok_or_else(|| unauthorized("unknown client"))?;
    parsed
        .verify(&key)
        .map_err(|_| unauthorized("signature does not verify"))?;
    let audience_ok = match &claims.aud {
        serde_json::Value::String(a) => a.trim_end_matches('/') == app.public_url,
        serde_json::Value::Array(list) => list
            .iter()
            .any(|a| a.as_str().map(|a| a.trim_end_matches('/')) == Some(app.public_url.as_str())),
        _ => false,
    };
    if !audience_ok {
        return Err(unauthorized("aud must be the platform's public URL"));
    }
    let t = now();
    if claims.exp <= t {
        return Err(unauthorized("expired"));
    }
    if claims.exp > t + MAX_LIFETIME + SKEW {
        return Err(unauthorized("exp is more than five minutes ahead"));
    }
    if claims.iat > t + SKEW {
        return Err(unauthorized("iat is in the future"));
    }
    if claims.jti.is_empty() || claims.jti.len() > 200 {
        return Err(unauthorized("jti must be a non-empty string"));
    }
    match app
        .store
        .put_nonce(
            &format!("jti:{}:{}", claims.iss, claims.jti),
            "jti",
            claims.exp,
        )
        .await
    {
        Ok(()) => Ok(claims.iss),
        Err(StoreError::Conflict(_)) => Err(unauthorized("jti was already used")),
        Err(e) => Err(e.into()),
    }
}
