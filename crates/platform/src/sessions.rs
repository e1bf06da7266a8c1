//! Sessions of the service console and the committee console: after a party signs in with
//! its own key, the platform gives it a token it signs itself — a compact JWS of its own
//! `typ`, naming the party in one claim and a session id `sid`, valid eight hours — and
//! checks it on every request. The session id is a row among the nonces (purpose
//! `console-session` or `committee-session`) that lives until the token expires or the party
//! signs out: signing out deletes it, so a copied cookie is worthless after logout, on every
//! replica.

use crate::keys::PlatformKeys;
use crate::{Outcome, Refusal};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tsunagu_crypto::jwk::JwkSet;
use tsunagu_crypto::{jws, random};
use tsunagu_store::Store;

/// How long a console session lasts.
pub const SESSION_SECONDS: i64 = 8 * 3600;
/// Clock skew tolerated on a session token's `iat`.
const SKEW: i64 = 60;

/// What tells one console's sessions from another's.
#[derive(Debug, Clone, Copy)]
pub struct SessionKind {
    /// The token's `typ` (`console+jwt`, `committee+jwt`).
    pub typ: &'static str,
    /// The claim naming who signed in (`service_id`, `member_id`).
    pub claim: &'static str,
    /// The purpose of the session's row among the nonces.
    pub purpose: &'static str,
}

/// Issues, checks and ends console session tokens.
#[derive(Clone)]
pub struct ConsoleSessions {
    keys: Arc<PlatformKeys>,
    issuer: String,
    store: Arc<dyn Store>,
}

impl ConsoleSessions {
    pub fn new(keys: Arc<PlatformKeys>, issuer: String, store: Arc<dyn Store>) -> ConsoleSessions {
        ConsoleSessions {
            keys,
            issuer,
            store,
        }
    }

    /// A session token for `party`, from `t` for [`SESSION_SECONDS`], and its row.
    pub async fn issue(&self, kind: SessionKind, party: &str, t: i64) -> Outcome<String> {
        let sid = random::token(16).map_err(|e| Refusal::internal("session id", e))?;
        let claims = json!({
            kind.claim: party,
            "sid": sid,
            "iss": self.issuer,
            "iat": t,
            "exp": t + SESSION_SECONDS,
        });
        let token = jws::sign_json(&self.keys.signing(), Some(kind.typ), &claims)
            .map_err(|e| Refusal::internal("signing a console session", e))?;
        self.store
            .put_nonce(&sid, kind.purpose, t + SESSION_SECONDS)
            .await?;
        Ok(token)
    }

    /// The party of a session token, if the platform signed it, it is current at `t` and
    /// its session has not been ended. A store error counts as no session (fail closed).
    pub async fn verify(&self, kind: SessionKind, token: &str, t: i64) -> Option<String> {
        let claims = verify_session(&self.keys.signing_jwks(), &self.issuer, kind.typ, token, t)?;
        let sid = claims.get("sid")?.as_str()?;
        match self.store.nonce_live(sid, kind.purpose, t).await {
            Ok(true) => Some(claims.get(kind.claim)?.as_str()?.to_owned()),
            Ok(false) => None,
            Err(e) => {
                tracing::error!(error = %e, "checking a console session");
                None
            }
        }
    }

    /// Ends the session of a token the platform signed (expired or not): its row is deleted,
    /// so the token is refused from now on, on every replica.
    pub async fn end(&self, kind: SessionKind, token: &str, t: i64) -> Outcome<()> {
        let Some(sid) = signed_claims(&self.keys.signing_jwks(), &self.issuer, kind.typ, token)
            .and_then(|c| c.get("sid").and_then(Value::as_str).map(str::to_owned))
        else {
            return Ok(());
        };
        self.store.take_nonce(&sid, kind.purpose, t).await?;
        Ok(())
    }
}

/// The claims of a session token, if the platform signed it (a key of its JWKS), it has type
/// `typ`, names this platform as issuer and has not expired at `t`.
fn verify_session(
    jwks: &JwkSet,
    issuer: &str,
    typ: &str,
    token: &str,
    t: i64,
) -> Option<Map<String, Value>> {
    let claims = signed_claims(jwks, issuer, typ, token)?;
    let exp = claims.get("exp")?.as_i64()?;
    let iat = claims.get("iat")?.as_i64()?;
    let ok = exp > t && iat <= t + SKEW && exp - iat <= SESSION_SECONDS;
    ok.then_some(claims)
}

/// The claims of a session token the platform signed, of type `typ` and this issuer,
/// whatever its times.
fn signed_claims(
    jwks: &JwkSet,
    issuer: &str,
    typ: &str,
    token: &str,
) -> Option<Map<String, Value>> {
    let parsed = jws::parse(token).ok()?;
    if parsed.typ.as_deref() != Some(typ) || parsed.alg != tsunagu_crypto::keys::Alg::Es256 {
        return None;
    }
    let key = jwks.find(parsed.kid.as_deref()?)?;
    parsed.verify(key).ok()?;
    let claims = parsed.json_payload().ok()?;
    (claims.get("iss")?.as_str()? == issuer).then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsunagu_crypto::keys::{Alg, SigningKey};

    const CONSOLE_TYP: &str = "console+jwt";

    fn claims(service: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("service_id".into(), Value::String(service.into()));
        m
    }

    fn sign(key: &SigningKey, typ: &str, iss: &str, iat: i64, exp: i64) -> String {
        let mut c = claims("svc_a");
        c.insert("iss".into(), json!(iss));
        c.insert("iat".into(), json!(iat));
        c.insert("exp".into(), json!(exp));
        jws::sign_json(key, Some(typ), &Value::Object(c)).unwrap()
    }

    #[test]
    fn a_session_token_is_checked_for_signer_type_issuer_and_time() {
        let platform = SigningKey::generate(Alg::Es256).unwrap();
        let other = SigningKey::generate(Alg::Es256).unwrap();
        let jwks = JwkSet {
            keys: vec![platform.published_jwk()],
        };
        let iss = "https://city.example.jp";
        let t = 1_800_000_000;
        let good = sign(&platform, CONSOLE_TYP, iss, t, t + SESSION_SECONDS);
        let c = verify_session(&jwks, iss, CONSOLE_TYP, &good, t + 10).expect("valid");
        assert_eq!(c["service_id"], "svc_a");

        // Expired, and not yet valid.
        assert!(verify_session(&jwks, iss, CONSOLE_TYP, &good, t + SESSION_SECONDS).is_none());
        let future = sign(&platform, CONSOLE_TYP, iss, t + 3600, t + 3600 + 60);
        assert!(verify_session(&jwks, iss, CONSOLE_TYP, &future, t).is_none());
        // A lifetime longer than a session.
        let long = sign(&platform, CONSOLE_TYP, iss, t, t + SESSION_SECONDS + 1);
        assert!(verify_session(&jwks, iss, CONSOLE_TYP, &long, t).is_none());
        // Another type (the committee's), another issuer, another signer.
        let committee = sign(&platform, "committee+jwt", iss, t, t + 60);
        assert!(verify_session(&jwks, iss, CONSOLE_TYP, &committee, t).is_none());
        let elsewhere = sign(&platform, CONSOLE_TYP, "https://evil.example", t, t + 60);
        assert!(verify_session(&jwks, iss, CONSOLE_TYP, &elsewhere, t).is_none());
        let forged = sign(&other, CONSOLE_TYP, iss, t, t + 60);
        assert!(verify_session(&jwks, iss, CONSOLE_TYP, &forged, t).is_none());
        // A changed payload under the platform's signature.
        let parts: Vec<&str> = good.split('.').collect();
        let mut c = claims("svc_b");
        c.insert("iss".into(), json!(iss));
        c.insert("iat".into(), json!(t));
        c.insert("exp".into(), json!(t + 60));
        let swapped = format!(
            "{}.{}.{}",
            parts[0],
            tsunagu_crypto::b64::url_encode(serde_json::to_vec(&c).unwrap()),
            parts[2]
        );
        assert!(verify_session(&jwks, iss, CONSOLE_TYP, &swapped, t).is_none());
        assert!(verify_session(&jwks, iss, CONSOLE_TYP, "not-a-token", t).is_none());
    }
}
