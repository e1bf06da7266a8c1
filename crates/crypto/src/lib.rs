//! # tsunagu-crypto
//!
//! Every cryptographic operation tsunagu performs, on top of maintained primitives
//! (aws-lc-rs, rustls-webpki, x509-parser):
//!
//! - [`jcs`]: RFC 8785 JSON canonicalization, the byte form of everything tsunagu signs;
//! - [`jwk`]: public JWKs and RFC 7638 thumbprints;
//! - [`keys`]: ES256 and Ed25519 signing keys;
//! - [`jws`]: JWS compact serialization (ES256, EdDSA), strict parsing;
//! - [`jwe`]: JWE ECDH-ES + A256GCM, to encrypt payloads to a consumer;
//! - [`dpop`]: RFC 9449 DPoP proofs (made and checked);
//! - [`x509`]: certificate path validation to configured trust anchors, with key usage and
//!   revocation by CRL;
//! - [`jpki`]: the four basic items from a JPKI signing certificate's subjectAltName;
//! - [`proofing`]: the whole enrollment proof check (signed data, card signature, chain,
//!   attributes);
//! - [`aead`]: a keyring for AES-256-GCM encryption at rest;
//! - [`pairwise`]: pairwise subject identifiers;
//! - [`pinbox`]: secrets sealed under a PIN (Argon2id + AES-256-GCM) for wallets and cards;
//! - [`webauthn`]: registrations and assertions of a platform authenticator (ES256,
//!   attestation "none", user verification required) that gate the browser wallet's key.
//!
//! Invariant: no HTTP, no storage, no clock. Callers pass the time in.

pub mod aead;
pub mod b64;
pub mod dpop;
pub mod jcs;
pub mod jpki;
pub mod jwe;
pub mod jwk;
pub mod jws;
pub mod keys;
pub mod pairwise;
pub mod pinbox;
pub mod proofing;
pub mod random;
pub mod totp;
pub mod webauthn;
pub mod x509;

mod error;

pub use error::CryptoError;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Compares two secrets in constant time.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
