//! Tickets as a provider verifies them, offline, with the platform's keys.

use crate::ConnectorError;
use serde::Deserialize;
use tsunagu_core::Code;
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::jws;
use tsunagu_crypto::keys::Alg;

pub const TICKET_TYP: &str = "tsunagu-ticket+jwt";
/// Clock skew tolerated.
const SKEW: i64 = 30;

/// The claims of a ticket.
#[derive(Debug, Clone, Deserialize)]
pub struct TicketClaims {
    pub iss: String,
    /// The provider's service id.
    pub aud: String,
    /// The provider's pairwise id for the resident.
    pub sub: String,
    /// The consumer's service id.
    pub cns: String,
    pub purpose: String,
    pub items: Vec<String>,
    /// `consent:<id>` or `rule:<purpose_id>`.
    pub basis: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub cnf: Confirmation,
}

/// What the consumer must show to redeem the ticket: one of the two.
#[derive(Debug, Clone, Deserialize)]
pub struct Confirmation {
    /// RFC 7638 thumbprint of the consumer key the ticket is bound to (a DPoP proof).
    #[serde(default)]
    pub jkt: Option<String>,
    /// RFC 8705: the SHA-256 of the client certificate the consumer connects with.
    #[serde(default, rename = "x5t#S256")]
    pub x5t_s256: Option<String>,
}

fn invalid(detail: impl Into<String>) -> ConnectorError {
    ConnectorError::invalid(Code::TicketInvalid, detail)
}

/// The `kid` of a ticket, to find the platform key.
pub fn key_id(compact: &str) -> Result<String, ConnectorError> {
    let token = jws::parse(compact).map_err(|e| invalid(format!("ticket: {e}")))?;
    token.kid.ok_or_else(|| invalid("ticket without kid"))
}

/// Verifies a ticket for `audience` (this provider) issued by `issuer` (the platform URL).
pub fn verify(
    compact: &str,
    key: &PublicJwk,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<TicketClaims, ConnectorError> {
    let token = jws::parse(compact).map_err(|e| invalid(format!("ticket: {e}")))?;
    if token.alg != Alg::Es256 || token.typ.as_deref() != Some(TICKET_TYP) {
        return Err(invalid(
            "a ticket is an ES256 JWS of type tsunagu-ticket+jwt",
        ));
    }
    token
        .verify(key)
        .map_err(|_| invalid("the ticket's signature does not verify"))?;
    let claims: TicketClaims = token
        .payload_as()
        .map_err(|e| invalid(format!("ticket claims: {e}")))?;
    if claims.iss.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(invalid("the ticket was issued by another platform"));
    }
    if claims.aud != audience {
        return Err(invalid("the ticket is for another provider"));
    }
    if claims.exp + SKEW <= now {
        return Err(ConnectorError::invalid(
            Code::TicketExpired,
            "the ticket has expired",
        ));
    }
    if claims.iat > now + SKEW || claims.exp - claims.iat > tsunagu_core::ticket::MAX_TICKET_SECONDS
    {
        return Err(invalid("the ticket's times are not plausible"));
    }
    if claims.items.is_empty() {
        return Err(invalid("the ticket names no items"));
    }
    if claims.cnf.jkt.is_some() == claims.cnf.x5t_s256.is_some() {
        return Err(invalid(
            "the ticket must be bound to the consumer by exactly one of cnf.jkt and cnf.x5t#S256",
        ));
    }
    Ok(claims)
}
