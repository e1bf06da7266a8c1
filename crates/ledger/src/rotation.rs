//! Following announced tree-head key changes (ADR 0019): each `ledger.key_rotated` leaf is
//! proven included in a head signed by the key trusted before it, and names it as the
//! previous key. Pure: the auditor's tool (`tsunagu ledger verify`) fetches the proofs
//! (`GET /v1/ledger/key-rotations`) and passes them in; the fuzz target `ledger_rotations`
//! feeds it arbitrary ones.

use crate::{ProofError, SignedTreeHead, SthError, leaf_hash, verify_inclusion};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tsunagu_crypto::b64;
use tsunagu_crypto::jwk::PublicJwk;

/// The most key changes [`follow_key_rotations`] reads.
pub const MAX_ROTATIONS: usize = 256;

/// Why a key change cannot be followed.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("tree head: {0}")]
    Sth(#[from] SthError),
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    #[error("{0}")]
    Invalid(String),
}

/// One tree-head key change as the platform serves it (`GET /v1/ledger/key-rotations`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRotationProof {
    pub leaf_index: u64,
    /// Base64 of the `ledger.key_rotated` leaf.
    pub leaf_input: Option<String>,
    /// The handover head: the first including the leaf, signed by the previous key.
    pub sth: SignedTreeHead,
    pub audit_path: Vec<String>,
}

/// Checks one announced change from the trusted `key`: the handover head is signed by it,
/// the leaf is included in that head, and the leaf is a `ledger.key_rotated` naming `key` as
/// the previous key. Returns the new key.
fn check_rotation(key: &PublicJwk, r: &KeyRotationProof) -> Result<PublicJwk, RotationError> {
    let invalid = |why: &str| {
        RotationError::Invalid(format!(
            "the key change announced at leaf {}: {why}",
            r.leaf_index
        ))
    };
    r.sth.verify(key)?;
    let input = r
        .leaf_input
        .as_deref()
        .and_then(|s| b64::std_decode(s).ok())
        .ok_or_else(|| invalid("its leaf content is missing"))?;
    let path = r
        .audit_path
        .iter()
        .map(|h| b64::std_decode(h).map_err(|_| invalid("its audit path is not base64")))
        .collect::<Result<Vec<_>, _>>()?;
    verify_inclusion(
        r.leaf_index,
        r.sth.tree_size,
        &leaf_hash(&input),
        &path,
        &r.sth.root()?,
    )?;
    let leaf: Value =
        serde_json::from_slice(&input).map_err(|_| invalid("its leaf is not JSON"))?;
    if leaf["type"] != "ledger.key_rotated" {
        return Err(invalid("its leaf is not a ledger.key_rotated event"));
    }
    if leaf["previous_kid"].as_str() != Some(key.thumbprint().as_str()) {
        return Err(invalid(
            "its leaf does not name the trusted key as the previous one",
        ));
    }
    let new =
        PublicJwk::from_value(&leaf["jwk"]).map_err(|_| invalid("its new key is not a JWK"))?;
    if leaf["kid"].as_str() != Some(new.thumbprint().as_str()) {
        return Err(invalid("its kid is not the new key's thumbprint"));
    }
    Ok(new)
}

/// Follows announced tree-head key changes from the `trusted` key to the key `target`: each
/// step is a `ledger.key_rotated` leaf proven included in a head signed by the key trusted
/// before it. Returns the target key and the handover heads (each must be consistent with
/// the later heads). A key that no change announced is refused.
pub fn follow_key_rotations(
    trusted: &PublicJwk,
    target: &str,
    rotations: &[KeyRotationProof],
) -> Result<(PublicJwk, Vec<SignedTreeHead>), RotationError> {
    // A deployment rotates its tree-head key a few times in its life; a server that answers
    // with thousands of changes is refused before they cost a signature check each.
    if rotations.len() > MAX_ROTATIONS {
        return Err(RotationError::Invalid(format!(
            "{} key changes served; at most {MAX_ROTATIONS} are read",
            rotations.len()
        )));
    }
    let mut key = trusted.clone();
    let mut handovers = Vec::new();
    while key.thumbprint() != target {
        let kid = key.thumbprint();
        let mut last_error = None;
        let mut next: Option<(PublicJwk, SignedTreeHead)> = None;
        for r in rotations.iter().filter(|r| r.sth.key_id == kid) {
            match check_rotation(&key, r) {
                Ok(new) => match &next {
                    None => next = Some((new, r.sth.clone())),
                    // The same change served twice is one change; two different successors
                    // announced under one key are a fork a monitor must not choose between
                    // (whoever holds the old key could be announcing their own).
                    Some((first, _)) if first.thumbprint() != new.thumbprint() => {
                        return Err(RotationError::Invalid(format!(
                            "the key {kid} announced two different successors ({} and {}); refusing to choose (the old key may be compromised)",
                            first.thumbprint(),
                            new.thumbprint()
                        )));
                    }
                    Some(_) => {}
                },
                Err(e) => last_error = Some(e),
            }
        }
        let Some((new, handover)) = next else {
            return Err(last_error.unwrap_or_else(|| {
                RotationError::Invalid(format!(
                    "the tree head is signed by key {target}, but no key change was announced under the trusted key {kid}; refusing a key nobody announced"
                ))
            }));
        };
        if handovers.len() > rotations.len() {
            return Err(RotationError::Invalid(
                "the key changes go round in a circle".into(),
            ));
        }
        handovers.push(handover);
        key = new;
    }
    Ok((key, handovers))
}

/// Genuine key changes for tests and fuzz seeds (feature `test-support`).
#[cfg(any(test, feature = "test-support"))]
pub mod testing {
    use super::KeyRotationProof;
    use crate::{MerkleTree, SignedTreeHead, leaf_hash};
    use serde_json::json;
    use tsunagu_crypto::b64;
    use tsunagu_crypto::keys::SigningKey;

    /// A three-leaf log whose leaf 1 announces `new` as the successor of `old`, and the
    /// handover head over it signed by `signer` (`old` for a genuine change).
    pub fn announcement(
        old: &SigningKey,
        new: &SigningKey,
        signer: &SigningKey,
    ) -> KeyRotationProof {
        let announcement = serde_json::to_vec(&json!({
            "v": 1, "at": 10, "type": "ledger.key_rotated",
            "kid": new.kid(), "jwk": new.public_jwk().to_value(),
            "previous_kid": old.kid(), "activate_at": 20,
        }))
        .expect("JSON of a test announcement");
        let leaves = [b"first".to_vec(), announcement.clone(), b"third".to_vec()];
        let mut tree = MerkleTree::new();
        for l in &leaves {
            tree.push(leaf_hash(l));
        }
        let root = tree.root(3).expect("a root of three leaves");
        let sth = SignedTreeHead::sign(signer, 3, &root, 11).expect("a test tree head");
        KeyRotationProof {
            leaf_index: 1,
            leaf_input: Some(b64::std_encode(&announcement)),
            sth,
            audit_path: tree
                .inclusion_proof(1, 3)
                .expect("an inclusion proof")
                .iter()
                .map(b64::std_encode)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsunagu_crypto::keys::{Alg, SigningKey};

    fn rotation(old: &SigningKey, new: &SigningKey, signer: &SigningKey) -> KeyRotationProof {
        testing::announcement(old, new, signer)
    }

    fn key() -> SigningKey {
        SigningKey::generate(Alg::EdDsa).unwrap()
    }

    #[test]
    fn an_announced_key_is_followed_step_by_step() {
        let (k0, k1, k2) = (key(), key(), key());
        let steps = [rotation(&k1, &k2, &k1), rotation(&k0, &k1, &k0)];
        let (got, handovers) = follow_key_rotations(k0.public_jwk(), k2.kid(), &steps).unwrap();
        assert_eq!(got.thumbprint(), k2.kid());
        assert_eq!(
            handovers
                .iter()
                .map(|h| h.key_id.as_str())
                .collect::<Vec<_>>(),
            [k0.kid(), k1.kid()]
        );
    }

    #[test]
    fn a_key_nobody_announced_is_refused() {
        let (k0, k1, forged) = (key(), key(), key());
        let steps = [rotation(&k0, &k1, &k0)];
        let err = follow_key_rotations(k0.public_jwk(), forged.kid(), &steps).unwrap_err();
        assert!(
            err.to_string().contains("no key change was announced"),
            "{err}"
        );
        // No rotations at all.
        assert!(follow_key_rotations(k0.public_jwk(), forged.kid(), &[]).is_err());
    }

    #[test]
    fn an_announcement_not_signed_by_the_trusted_key_is_refused() {
        let (k0, forged) = (key(), key());
        // The forger announces its own key in a head it signs itself, claiming k0's id.
        let mut step = rotation(&k0, &forged, &forged);
        step.sth.key_id = k0.kid().to_owned();
        let err = follow_key_rotations(k0.public_jwk(), forged.kid(), &[step]).unwrap_err();
        assert!(matches!(err, RotationError::Sth(_)), "{err}");
    }

    #[test]
    fn an_announcement_outside_the_head_is_refused() {
        let (k0, k1, k2) = (key(), key(), key());
        let mut step = rotation(&k0, &k1, &k0);
        // Swap the leaf for one announcing another key: its inclusion proof fails.
        let other = rotation(&k0, &k2, &k0);
        step.leaf_input = other.leaf_input;
        let err = follow_key_rotations(k0.public_jwk(), k2.kid(), &[step]).unwrap_err();
        assert!(matches!(err, RotationError::Proof(_)), "{err}");
    }

    #[test]
    fn a_leaf_that_names_another_previous_key_is_refused() {
        let (k0, k1, k2) = (key(), key(), key());
        // Included and signed by k0, but it hands over from k1.
        let step = rotation(&k1, &k2, &k0);
        let err = follow_key_rotations(k0.public_jwk(), k2.kid(), &[step]).unwrap_err();
        assert!(err.to_string().contains("previous"), "{err}");
    }

    #[test]
    fn two_successors_announced_under_one_key_are_refused() {
        let (k0, k1, k2) = (key(), key(), key());
        let steps = [rotation(&k0, &k1, &k0), rotation(&k0, &k2, &k0)];
        for target in [k1.kid(), k2.kid()] {
            let err = follow_key_rotations(k0.public_jwk(), target, &steps).unwrap_err();
            assert!(
                err.to_string().contains("two different successors"),
                "{err}"
            );
        }
        // The same announcement served twice is one change.
        let same = [rotation(&k0, &k1, &k0), rotation(&k0, &k1, &k0)];
        assert!(follow_key_rotations(k0.public_jwk(), k1.kid(), &same).is_ok());
    }
}
