//! Bearer assertions from parties with registered keys (RFC 7523 style): a JWT signed with
//! ES256 by the party's key, `iss` = `sub` = the party's id, `aud` = the platform's public
//! URL, a `jti` used once, `iat`, and `exp` no more than five minutes ahead. Services
//! (consumers, providers), auditors and committee members authenticate this way.

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

/// A verified assertion whose `jti` is not consumed yet.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The party's id.
    pub party: String,
    /// The key that signed it (its RFC 7638 thumbprint binds tickets to it).
    pub key: PublicJwk,
    /// What to record so the `jti` is never accepted again.
    pub jti_key: String,
    pub exp: i64,
}

fn unauthorized(why: &str) -> ApiError {
    ApiError::new(Code::Unauthorized, format!("client assertion: {why}"))
}

/// Checks signature and claims of `token`. `key_of` maps a party id and the header's `kid`
/// to the key that may sign for it. The `jti` is not consumed: see [`consume`], or put
/// `IdentityChange::UseJti` in the caller's commit.
pub fn check(
    app: &App,
    token: &str,
    key_of: impl Fn(&str, Option<&str>) -> Option<PublicJwk>,
) -> Result<Verified, ApiError> {
    check_for(token, std::slice::from_ref(&app.public_url), key_of)
}

/// [`check`] with the audiences the assertion may name (without a trailing slash).
pub fn check_for(
    token: &str,
    audiences: &[String],
    key_of: impl Fn(&str, Option<&str>) -> Option<PublicJwk>,
) -> Result<Verified, ApiError> {
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
    let key = key_of(&claims.iss, parsed.kid.as_deref())
        .ok_or_else(|| unauthorized("unknown client or key"))?;
    parsed
        .verify(&key)
        .map_err(|_| unauthorized("signature does not verify"))?;
    let ours = |a: &str| audiences.iter().any(|x| x == a.trim_end_matches('/'));
    let audience_ok = match &claims.aud {
        serde_json::Value::String(a) => ours(a),
        serde_json::Value::Array(list) => list.iter().filter_map(|a| a.as_str()).any(ours),
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
    Ok(Verified {
        jti_key: format!("jti:{}:{}", claims.iss, claims.jti),
        party: claims.iss,
        key,
        exp: claims.exp,
    })
}

/// Consumes a verified assertion's `jti` on its own.
pub async fn consume(app: &App, verified: &Verified) -> Result<(), ApiError> {
    match app
        .store
        .put_nonce(&verified.jti_key, "jti", verified.exp)
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(unauthorized("jti was already used")),
        Err(e) => Err(e.into()),
    }
}

/// Checks and consumes in one step.
pub async fn verify(
    app: &App,
    token: &str,
    key_of: impl Fn(&str, Option<&str>) -> Option<PublicJwk>,
) -> Result<String, ApiError> {
    let verified = check(app, token, key_of)?;
    consume(app, &verified).await?;
    Ok(verified.party)
}
