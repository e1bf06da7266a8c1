//! Bearer assertions from parties with registered keys (RFC 7523 style): a JWT signed with
//! ES256 by the party's key, `iss` = `sub` = the party's id, `aud` = the platform's public
//! URL, a `jti` used once, `iat` and `exp`. An assertion is judged by the freshness of
//! `iat` — accepted only within five minutes after it was issued, whatever `exp` says (client
//! libraries' defaults such as authlib's `exp = iat + 3600` work, and an assertion signed long
//! ago cannot be replayed because its `exp` is near) — and its `jti` is kept for that window.
//! Services (consumers, providers), auditors and committee members authenticate this way.

use crate::{Outcome, Refusal, now};
use serde::Deserialize;
use std::sync::Arc;
use tsunagu_core::Code;
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::jws;
use tsunagu_crypto::keys::Alg;
use tsunagu_store::{IdentityChange, Store, StoreError};

/// How long after its `iat` an assertion is accepted.
pub const MAX_AGE: i64 = 300;
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
    /// Until when the `jti` must be kept: the end of the window in which the assertion is
    /// accepted at all.
    pub keep_until: i64,
}

impl Verified {
    /// The change that uses the assertion's `jti` up, for the caller's commit.
    pub fn use_jti(&self) -> IdentityChange {
        IdentityChange::UseJti {
            key: self.jti_key.clone(),
            expires_at: self.keep_until,
        }
    }
}

fn unauthorized(why: &str) -> Refusal {
    Refusal::new(Code::Unauthorized, format!("client assertion: {why}"))
}

/// The issuer an assertion claims, read before its signature is checked (to find the
/// party's keys).
pub fn claimed_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: String,
    }
    jws::parse(token)
        .ok()?
        .payload_as::<Issuer>()
        .ok()
        .map(|c| c.iss)
}

/// Checks the signature and claims of `token` for one of `audiences` (without a trailing
/// slash). `key_of` maps a party id and the header's `kid` to the key that may sign for it.
/// The `jti` is not consumed: see [`Assertions::consume`], or put [`Verified::use_jti`] in
/// the caller's commit.
pub fn check_for(
    token: &str,
    audiences: &[String],
    key_of: impl Fn(&str, Option<&str>) -> Option<PublicJwk>,
) -> Outcome<Verified> {
    check_at(token, audiences, key_of, now())
}

fn check_at(
    token: &str,
    audiences: &[String],
    key_of: impl Fn(&str, Option<&str>) -> Option<PublicJwk>,
    t: i64,
) -> Outcome<Verified> {
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
    if claims.exp <= t {
        return Err(unauthorized("expired"));
    }
    if claims.iat > t + SKEW {
        return Err(unauthorized("iat is in the future"));
    }
    if claims.iat < t - MAX_AGE {
        return Err(unauthorized(
            "iat is more than five minutes old: sign a fresh assertion for each request",
        ));
    }
    if claims.jti.is_empty() || claims.jti.len() > 200 {
        return Err(unauthorized("jti must be a non-empty string"));
    }
    Ok(Verified {
        jti_key: format!("jti:{}:{}", claims.iss, claims.jti),
        party: claims.iss,
        key,
        keep_until: claims.iat.saturating_add(MAX_AGE + SKEW),
    })
}

/// Checks party assertions for the platform's audience and uses up their `jti`s.
#[derive(Clone)]
pub struct Assertions {
    store: Arc<dyn Store>,
    public_url: String,
}

impl Assertions {
    pub fn new(store: Arc<dyn Store>, public_url: String) -> Assertions {
        Assertions { store, public_url }
    }

    /// [`check_for`] the platform's public URL.
    pub fn check(
        &self,
        token: &str,
        key_of: impl Fn(&str, Option<&str>) -> Option<PublicJwk>,
    ) -> Outcome<Verified> {
        check_for(token, std::slice::from_ref(&self.public_url), key_of)
    }

    /// Consumes a verified assertion's `jti` on its own.
    pub async fn consume(&self, verified: &Verified) -> Outcome<()> {
        match self
            .store
            .put_nonce(&verified.jti_key, "jti", verified.keep_until)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(unauthorized("jti was already used")),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks and consumes in one step; answers the party's id.
    pub async fn verify(
        &self,
        token: &str,
        key_of: impl Fn(&str, Option<&str>) -> Option<PublicJwk>,
    ) -> Outcome<String> {
        let verified = self.check(token, key_of)?;
        self.consume(&verified).await?;
        Ok(verified.party)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tsunagu_crypto::keys::SigningKey;

    fn assertion(key: &SigningKey, claims: serde_json::Value) -> String {
        jws::sign_json(key, Some("JWT"), &claims).unwrap()
    }

    #[test]
    fn an_assertion_is_checked_for_audience_lifetime_and_key() {
        let key = SigningKey::generate(Alg::Es256).unwrap();
        let public = key.public_jwk();
        let t = 1_800_000_000;
        let good = json!({"iss": "svc_a", "sub": "svc_a", "aud": ["https://p.example/", null], "jti": "1", "iat": t, "exp": t + 60});
        let key_of = |iss: &str, _: Option<&str>| (iss == "svc_a").then(|| public.clone());
        let aud = ["https://p.example".to_owned()];
        let ok = check_at(&assertion(&key, good.clone()), &aud, key_of, t).unwrap();
        assert_eq!(
            (ok.party.as_str(), ok.jti_key.as_str()),
            ("svc_a", "jti:svc_a:1")
        );

        let refused = |claims: serde_json::Value| {
            check_at(&assertion(&key, claims), &aud, key_of, t)
                .unwrap_err()
                .detail
        };
        let mut other = good.clone();
        other["aud"] = json!("https://elsewhere");
        assert!(refused(other).contains("aud"));
        // authlib's default (exp = iat + 3600) is accepted: freshness is judged on iat.
        let mut long = good.clone();
        long["exp"] = json!(t + 3600);
        let accepted = check_at(&assertion(&key, long), &aud, key_of, t).unwrap();
        assert_eq!(
            accepted.keep_until,
            t + MAX_AGE + SKEW,
            "the jti is kept for the window"
        );
        // An assertion issued a day ago is refused however near its exp.
        let mut stale = good.clone();
        stale["iat"] = json!(t - 86_400);
        stale["exp"] = json!(t + 30);
        assert!(refused(stale).contains("five minutes old"));
        let mut future = good.clone();
        future["iat"] = json!(t + 600);
        assert!(refused(future).contains("future"));
        let mut expired = good.clone();
        expired["exp"] = json!(t);
        assert!(refused(expired).contains("expired"));
        let mut stranger = good.clone();
        stranger["iss"] = json!("svc_b");
        stranger["sub"] = json!("svc_b");
        assert!(refused(stranger).contains("unknown client"));
        assert_eq!(
            claimed_issuer(&assertion(&key, good)).as_deref(),
            Some("svc_a")
        );
        assert_eq!(claimed_issuer("not a jws"), None);
    }
}
