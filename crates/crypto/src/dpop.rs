//! DPoP proofs (RFC 9449): a JWS of type `dpop+jwt` with the public key in its header, over
//! `{jti, htm, htu, iat}` and, when presenting a token, `ath` (base64url SHA-256 of the
//! token). The platform checks them at its token and userinfo endpoints; the connector uses
//! the same shape to present tickets. The clock and the replay cache belong to the caller.

use crate::jwk::PublicJwk;
use crate::keys::{Alg, SigningKey};
use crate::{CryptoError, b64, jcs, jws, random, sha256};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The JWS `typ` of a proof.
pub const TYP: &str = "dpop+jwt";

/// `ath`: base64url SHA-256 of an access token (or a ticket).
pub fn token_hash(token: &str) -> String {
    b64::url_encode(sha256(token.as_bytes()))
}

/// Makes a proof for a request with `method` at `url`, presenting `token` if any.
pub fn proof(
    key: &SigningKey,
    method: &str,
    url: &str,
    token: Option<&str>,
    now: i64,
) -> Result<String, CryptoError> {
    let mut header = Map::new();
    header.insert("typ".into(), json!(TYP));
    header.insert("jwk".into(), key.public_jwk().to_value());
    let mut claims = json!({"jti": random::token(16)?, "htm": method, "htu": url, "iat": now});
    if let Some(token) = token {
        claims["ath"] = json!(token_hash(token));
    }
    jws::sign_with_header(key, header, &jcs::to_vec(&claims)?)
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
}

/// A proof that verified.
#[derive(Debug, Clone)]
pub struct Verified {
    /// RFC 7638 thumbprint of the proof's key: what tokens are bound to (`cnf.jkt`).
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
}

/// `scheme://host[:port]/path` without query or fragment (RFC 9449 §4.3 compares `htu` so).
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Verifies a proof for a request with `method` at `url`. With `token`, the proof's `ath`
/// must be that token's hash; without, it must have none. `window` bounds how far `iat` may
/// be from `now`. The caller checks the `jti` was not seen before and, for a bound token,
/// that `jkt` is the one it is bound to. Errors are readable sentences.
pub fn verify(
    proof: &str,
    method: &str,
    url: &str,
    token: Option<&str>,
    now: i64,
    window: i64,
) -> Result<Verified, String> {
    let parsed = jws::parse(proof).map_err(|e| format!("not a JWS ({e})"))?;
    if parsed.typ.as_deref() != Some(TYP) {
        return Err("typ must be dpop+jwt".into());
    }
    if !matches!(parsed.alg, Alg::Es256 | Alg::EdDsa) {
        return Err("alg must be ES256 or EdDSA".into());
    }
    let jwk = PublicJwk::from_value(parsed.header.get("jwk").unwrap_or(&Value::Null))
        .map_err(|e| format!("the header's jwk: {e}"))?;
    parsed
        .verify(&jwk)
        .map_err(|_| "the signature does not verify with the header's key".to_owned())?;
    let claims: Claims = parsed
        .payload_as()
        .map_err(|e| format!("claims jti, htm, htu, iat: {e}"))?;
    if claims.htm != method {
        return Err(format!("htm must be {method}"));
    }
    if without_query(&claims.htu).trim_end_matches('/') != without_query(url).trim_end_matches('/')
    {
        return Err("htu is not this endpoint".into());
    }
    // `abs_diff`: `(iat - now).abs()` overflowed for an `iat` near `i64::MIN`, and wrapped to
    // a negative number (so "recent") for `iat = now - 2^63`.
    if i64::try_from(claims.iat.abs_diff(now)).map_or(true, |d| d > window) {
        return Err("iat is not recent".into());
    }
    if claims.jti.is_empty() || claims.jti.len() > 200 {
        return Err("jti must be 1-200 characters".into());
    }
    match (token, claims.ath.as_deref()) {
        (Some(t), Some(ath)) if ath == token_hash(t) => {}
        (Some(_), _) => return Err("ath is not the hash of the presented token".into()),
        (None, None) => {}
        (None, Some(_)) => return Err("ath given where no token is presented".into()),
    }
    Ok(Verified {
        jkt: jwk.thumbprint(),
        jti: claims.jti,
        iat: claims.iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_binds_method_url_time_and_token() {
        let key = SigningKey::generate(Alg::Es256).unwrap();
        let url = "https://id.example/oauth2/token";
        let p = proof(&key, "POST", url, None, 1_000).unwrap();
        let v = verify(&p, "POST", url, None, 1_010, 60).unwrap();
        assert_eq!(v.jkt, key.public_jwk().thumbprint());
        assert!(verify(&p, "GET", url, None, 1_010, 60).is_err());
        assert!(verify(&p, "POST", "https://id.example/other", None, 1_010, 60).is_err());
        assert!(verify(&p, "POST", &format!("{url}?x=1"), None, 1_010, 60).is_ok());
        assert!(verify(&p, "POST", url, None, 1_100, 60).is_err());
        assert!(verify(&p, "POST", url, Some("AT"), 1_000, 60).is_err());

        let p = proof(&key, "GET", url, Some("AT"), 1_000).unwrap();
        assert!(verify(&p, "GET", url, Some("AT"), 1_000, 60).is_ok());
        assert!(verify(&p, "GET", url, Some("other"), 1_000, 60).is_err());
        assert!(verify(&p, "GET", url, None, 1_000, 60).is_err());

        let forged = {
            let (head, rest) = p.split_once('.').unwrap();
            let (_, sig) = rest.split_once('.').unwrap();
            let other = b64::url_encode(
                br#"{"jti":"x","htm":"GET","htu":"https://id.example/oauth2/token","iat":1000}"#,
            );
            format!("{head}.{other}.{sig}")
        };
        assert!(verify(&forged, "GET", url, None, 1_000, 60).is_err());
    }
}
