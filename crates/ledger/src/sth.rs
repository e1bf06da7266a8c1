//! Signed tree heads: Ed25519 over the JCS of `{"root_hash", "timestamp", "tree_size"}`,
//! with `root_hash` in standard base64 and `timestamp` in Unix seconds.

use crate::hash::Hash;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::keys::{self, Alg, SigningKey};
use tsunagu_crypto::{b64, jcs};

/// A tree head as served at `GET /v1/ledger/sth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    pub tree_size: u64,
    /// Standard base64 of the 32-byte root.
    pub root_hash: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// RFC 7638 thumbprint of the signing key, as in the JWKS.
    pub key_id: String,
    /// Standard base64 of the Ed25519 signature.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SthError {
    #[error("malformed tree head: {0}")]
    Malformed(String),
    #[error("the tree head's signature does not verify")]
    BadSignature,
    #[error("the tree head was signed by key {0}, not the expected one")]
    WrongKey(String),
}

/// The bytes that are signed.
pub fn signing_input(tree_size: u64, root: &Hash, timestamp: i64) -> Vec<u8> {
    jcs::to_vec(&json!({
        "root_hash": b64::std_encode(root),
        "timestamp": timestamp,
        "tree_size": tree_size,
    }))
    .expect("numbers and a string canonicalize")
}

impl SignedTreeHead {
    /// Signs a tree head with an Ed25519 key.
    pub fn sign(
        key: &SigningKey,
        tree_size: u64,
        root: &Hash,
        timestamp: i64,
    ) -> Result<SignedTreeHead, SthError> {
        if key.alg() != Alg::EdDsa {
            return Err(SthError::Malformed(
                "tree heads are signed with Ed25519".into(),
            ));
        }
        let sig = key
            .sign(&signing_input(tree_size, root, timestamp))
            .map_err(|e| SthError::Malformed(e.to_string()))?;
        Ok(SignedTreeHead {
            tree_size,
            root_hash: b64::std_encode(root),
            timestamp,
            key_id: key.kid().to_owned(),
            signature: b64::std_encode(sig),
        })
    }

    /// The root as bytes. Only the canonical base64 (padded, no whitespace) is read: a tree
    /// head has one spelling, so heads compared as text (monitors, gossip) compare truly.
    pub fn root(&self) -> Result<Hash, SthError> {
        canonical(&self.root_hash)
            .and_then(|b| Hash::try_from(b.as_slice()).ok())
            .ok_or_else(|| {
                SthError::Malformed("root_hash is not 32 bytes of canonical base64".into())
            })
    }

    /// Verifies the signature with the ledger's public key (OKP/Ed25519).
    pub fn verify(&self, key: &PublicJwk) -> Result<(), SthError> {
        let root = self.root()?;
        let sig = canonical(&self.signature)
            .ok_or_else(|| SthError::Malformed("signature is not canonical base64".into()))?;
        keys::verify(
            key,
            Alg::EdDsa,
            &signing_input(self.tree_size, &root, self.timestamp),
            &sig,
        )
        .map_err(|_| SthError::BadSignature)
    }
}

/// The bytes of `text` if it is their canonical standard base64 (as `b64::std_encode` writes).
fn canonical(text: &str) -> Option<Vec<u8>> {
    let bytes = b64::std_decode(text).ok()?;
    (b64::std_encode(&bytes) == text).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_head_verifies_and_a_changed_one_does_not() {
        let key = SigningKey::generate(Alg::EdDsa).unwrap();
        let sth = SignedTreeHead::sign(&key, 5, &[7u8; 32], 1_700_000_000).unwrap();
        sth.verify(key.public_jwk()).unwrap();
        let mut grown = sth.clone();
        grown.tree_size = 6;
        assert_eq!(grown.verify(key.public_jwk()), Err(SthError::BadSignature));
        let other = SigningKey::generate(Alg::EdDsa).unwrap();
        assert_eq!(sth.verify(other.public_jwk()), Err(SthError::BadSignature));
    }

    #[test]
    fn a_head_is_read_only_in_its_one_spelling() {
        // Found by the fuzz target ledger_rotations: "…==" spelt "…= " verified.
        let key = SigningKey::generate(Alg::EdDsa).unwrap();
        let sth = SignedTreeHead::sign(&key, 5, &[7u8; 32], 1_700_000_000).unwrap();
        let respell = |s: &str| {
            vec![
                format!("{s} "),
                format!(" {s}"),
                s.trim_end_matches('=').to_owned(),
                format!("{}= ", s.trim_end_matches('=')),
            ]
        };
        for signature in respell(&sth.signature) {
            let twin = SignedTreeHead {
                signature,
                ..sth.clone()
            };
            assert!(
                matches!(twin.verify(key.public_jwk()), Err(SthError::Malformed(_))),
                "{twin:?}"
            );
        }
        for root_hash in respell(&sth.root_hash) {
            let twin = SignedTreeHead {
                root_hash,
                ..sth.clone()
            };
            assert!(
                matches!(twin.verify(key.public_jwk()), Err(SthError::Malformed(_))),
                "{twin:?}"
            );
        }
        sth.verify(key.public_jwk()).unwrap();
    }

    #[test]
    fn the_signed_bytes_are_the_jcs_of_the_three_fields() {
        let input = signing_input(3, &[0u8; 32], 10);
        assert_eq!(
            String::from_utf8(input).unwrap(),
            r#"{"root_hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","timestamp":10,"tree_size":3}"#
        );
    }
}
