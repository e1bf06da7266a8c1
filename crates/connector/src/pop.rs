//! Proof of possession of the consumer's key when it presents a ticket, in the shape of a
//! DPoP proof (RFC 9449): a JWS with the public key in its header (`typ: dpop+jwt`) over
//! `{jti, htm, htu, iat, ath}`, where `ath` is the base64url SHA-256 of the ticket. The
//! ticket's `cnf.jkt` must be that key's thumbprint, so a stolen ticket is useless.

use crate::ConnectorError;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tsunagu_core::Code;
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::{b64, jws, random, sha256};

pub const POP_TYP: &str = "dpop+jwt";
/// How far `iat` may be from the provider's clock.
pub const WINDOW: i64 = 60;

/// `ath`: base64url SHA-256 of the ticket.
pub fn ticket_hash(ticket: &str) -> String {
    b64::url_encode(sha256(ticket.as_bytes()))
}

/// Makes a proof for presenting `ticket` with `method` at `url`.
pub fn proof(
    key: &SigningKey,
    method: &str,
    url: &str,
    ticket: &str,
    now: i64,
) -> Result<String, ConnectorError> {
    let mut header = Map::new();
    header.insert("typ".into(), json!(POP_TYP));
    header.insert("jwk".into(), key.public_jwk().to_value());
    let jti = random::token(16).map_err(|e| ConnectorError::Config(e.to_string()))?;
    let claims =
        json!({"jti": jti, "htm": method, "htu": url, "iat": now, "ath": ticket_hash(ticket)});
    let payload =
        tsunagu_crypto::jcs::to_vec(&claims).map_err(|e| ConnectorError::Config(e.to_string()))?;
    jws::sign_with_header(key, header, &payload).map_err(|e| ConnectorError::Config(e.to_string()))
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    ath: String,
}

/// A verified proof: its `jti`, to refuse a replay.
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    pub jti: String,
}

fn invalid(detail: impl Into<String>) -> ConnectorError {
    ConnectorError::invalid(Code::ProofInvalid, detail)
}

/// `scheme://host[:port]/path`, without query or fragment, for comparing `htu`.
fn normalize(url: &str) -> &str {
    url.split(['?', '#'])
        .next()
        .unwrap_or(url)
        .trim_end_matches('/')
}

/// Verifies a proof for `ticket` presented with `method` at `url` by the key whose
/// thumbprint is `jkt`.
pub fn verify(
    proof: &str,
    method: &str,
    url: &str,
    ticket: &str,
    jkt: &str,
    now: i64,
) -> Result<VerifiedProof, ConnectorError> {
    let token = jws::parse(proof).map_err(|e| invalid(format!("proof: {e}")))?;
    if token.alg != Alg::Es256 || token.typ.as_deref() != Some(POP_TYP) {
        return Err(invalid("the proof is an ES256 JWS of type dpop+jwt"));
    }
    let jwk = PublicJwk::from_value(token.header.get("jwk").unwrap_or(&Value::Null))
        .map_err(|e| invalid(format!("proof jwk: {e}")))?;
    if jwk.thumbprint() != jkt {
        return Err(invalid(
            "the proof's key is not the key the ticket is bound to (cnf.jkt)",
        ));
    }
    token
        .verify(&jwk)
        .map_err(|_| invalid("the proof's signature does not verify"))?;
    let claims: Claims = token
        .payload_as()
        .map_err(|e| invalid(format!("proof claims: {e}")))?;
    if !claims.htm.eq_ignore_ascii_case(method) || normalize(&claims.htu) != normalize(url) {
        return Err(invalid("the proof is for another request (htm, htu)"));
    }
    if (claims.iat - now).abs() > WINDOW {
        return Err(invalid("the proof's iat is not recent"));
    }
    if claims.ath != ticket_hash(ticket) {
        return Err(invalid("the proof is for another ticket (ath)"));
    }
    if claims.jti.is_empty() || claims.jti.len() > 200 {
        return Err(invalid("the proof needs a jti"));
    }
    Ok(VerifiedProof { jti: claims.jti })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_binds_key_request_and_ticket() {
        let key = SigningKey::generate(Alg::Es256).unwrap();
        let jkt = key.public_jwk().thumbprint();
        let url = "https://school.example/tsunagu/redeem";
        let p = proof(&key, "POST", url, "T", 1_000).unwrap();
        assert!(verify(&p, "POST", url, "T", &jkt, 1_010).is_ok());
        assert!(verify(&p, "POST", url, "other ticket", &jkt, 1_010).is_err());
        assert!(verify(&p, "GET", url, "T", &jkt, 1_010).is_err());
        assert!(
            verify(
                &p,
                "POST",
                "https://evil.example/tsunagu/redeem",
                "T",
                &jkt,
                1_010
            )
            .is_err()
        );
        assert!(verify(&p, "POST", url, "T", &jkt, 1_100).is_err());
        let thief = SigningKey::generate(Alg::Es256).unwrap();
        let stolen = proof(&thief, "POST", url, "T", 1_000).unwrap();
        assert!(
            verify(&stolen, "POST", url, "T", &jkt, 1_000).is_err(),
            "a stolen ticket is useless"
        );
    }
}
