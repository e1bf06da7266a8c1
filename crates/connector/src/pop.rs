//! Proof of possession of the consumer's key when it presents a ticket, in the shape of a
//! DPoP proof (RFC 9449): a JWS with the public key in its header (`typ: dpop+jwt`) over
//! `{jti, htm, htu, iat, ath}`, where `ath` is the base64url SHA-256 of the ticket. The
//! ticket's `cnf.jkt` must be that key's thumbprint, so a stolen ticket is useless.

use crate::ConnectorError;
use tsunagu_core::Code;
use tsunagu_crypto::dpop;
use tsunagu_crypto::keys::SigningKey;

pub const POP_TYP: &str = dpop::TYP;
/// How far `iat` may be from the provider's clock.
pub const WINDOW: i64 = 60;

/// `ath`: base64url SHA-256 of the ticket.
pub fn ticket_hash(ticket: &str) -> String {
    dpop::token_hash(ticket)
}

/// Makes a proof for presenting `ticket` with `method` at `url`.
pub fn proof(
    key: &SigningKey,
    method: &str,
    url: &str,
    ticket: &str,
    now: i64,
) -> Result<String, ConnectorError> {
    dpop::proof(key, method, url, Some(ticket), now)
        .map_err(|e| ConnectorError::Config(e.to_string()))
}

/// A verified proof: its `jti`, to refuse a replay.
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    pub jti: String,
}

fn invalid(detail: impl Into<String>) -> ConnectorError {
    ConnectorError::invalid(Code::ProofInvalid, detail)
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
    let verified = dpop::verify(
        proof,
        &method.to_ascii_uppercase(),
        url,
        Some(ticket),
        now,
        WINDOW,
    )
    .map_err(|e| invalid(format!("proof: {e}")))?;
    if verified.jkt != jkt {
        return Err(invalid(
            "the proof's key is not the key the ticket is bound to (cnf.jkt)",
        ));
    }
    Ok(VerifiedProof { jti: verified.jti })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsunagu_crypto::keys::Alg;

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
