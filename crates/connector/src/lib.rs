//! # tsunagu-connector
//!
//! What a service runs to exchange residents' data through tsunagu (SPEC §6), as a library
//! and as the `tsunagu connector` sidecar:
//!
//! - [`identity`]: the service's signing key and its client assertions (RFC 7523 style);
//! - [`platform`]: the platform's API for services: tickets, receipts, the consent feed,
//!   and the platform's and other services' public keys (cached);
//! - [`ticket`]: verifying a ticket offline against the platform's keys;
//! - [`pop`]: proof of possession of the consumer's key, in the shape of DPoP (RFC 9449);
//! - [`payload`]: the provider's signed payload, optionally encrypted to the consumer
//!   (JWE ECDH-ES + A256GCM);
//! - [`provider`]: redeeming tickets in front of an existing API (the upstream);
//! - [`consumer`]: asking for a ticket, calling the provider, verifying the payload, sending
//!   the receipt;
//! - [`sidecar`]: the configuration and HTTP faces of the sidecar.
//!
//! Invariant: it talks to the platform only over HTTP and never depends on the server crate.
//! The payload goes from provider to consumer directly; the platform sees only hashes.

pub mod consumer;
pub mod identity;
pub mod payload;
pub mod platform;
pub mod pop;
pub mod provider;
pub mod sidecar;
pub mod ticket;

mod error;

pub use error::ConnectorError;
pub use identity::ServiceIdentity;

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
