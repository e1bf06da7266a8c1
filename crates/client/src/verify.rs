//! Offline verification of what the platform serves.

use crate::api::{ApiClient, ClientError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use tsunagu_crypto::b64;
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_ledger::{EMPTY_ROOT, SignedTreeHead, leaf_hash, verify_consistency, verify_inclusion};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("tree head: {0}")]
    Sth(#[from] tsunagu_ledger::SthError),
    #[error("proof: {0}")]
    Proof(#[from] tsunagu_ledger::ProofError),
    #[error("{0}")]
    Invalid(String),
    #[error("state file {0}")]
    State(String),
}

fn hashes(value: &Value, field: &str) -> Result<Vec<Vec<u8>>, VerifyError> {
    value[field]
        .as_array()
        .ok_or_else(|| VerifyError::Invalid(format!("`{field}` is not an array")))?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|s| b64::std_decode(s).ok())
                .ok_or_else(|| VerifyError::Invalid(format!("`{field}` holds a non-base64 hash")))
        })
        .collect()
}

/// Checks that a history item (`leaf_index`, `leaf_input`) is in the log whose signed head
/// is `sth`, using the inclusion proof the platform serves, and that the leaf's content is
/// exactly `leaf_input`.
pub async fn history_item_included(
    client: &ApiClient,
    item: &Value,
    sth: &SignedTreeHead,
) -> Result<(), VerifyError> {
    let index = item["leaf_index"]
        .as_u64()
        .ok_or_else(|| VerifyError::Invalid("item without leaf_index".into()))?;
    let input = item["leaf_input"]
        .as_str()
        .and_then(|s| b64::std_decode(s).ok())
        .ok_or_else(|| VerifyError::Invalid("item without leaf_input (expired?)".into()))?;
    let proof = client.inclusion(index, sth.tree_size).await?;
    let path = hashes(&proof, "audit_path")?;
    verify_inclusion(
        index,
        sth.tree_size,
        &leaf_hash(&input),
        &path,
        &sth.root()?,
    )?;
    Ok(())
}

/// Checks that the head `later` extends the head `earlier` (a consistency proof).
async fn check_extends(
    client: &ApiClient,
    earlier: &SignedTreeHead,
    later: &SignedTreeHead,
) -> Result<(), VerifyError> {
    if earlier.tree_size > later.tree_size {
        return Err(VerifyError::Invalid(format!(
            "a handover head of size {} is beyond the current head of size {}",
            earlier.tree_size, later.tree_size
        )));
    }
    if earlier.tree_size == later.tree_size {
        if earlier.root()? != later.root()? {
            return Err(VerifyError::Invalid(format!(
                "two different roots for the same size {}",
                later.tree_size
            )));
        }
        return Ok(());
    }
    if earlier.tree_size > 0 {
        let proof = client
            .consistency(earlier.tree_size, later.tree_size)
            .await?;
        verify_consistency(
            earlier.tree_size,
            later.tree_size,
            &hashes(&proof, "proof")?,
            &earlier.root()?,
            &later.root()?,
        )?;
    }
    Ok(())
}

/// What the monitor remembers between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorState {
    pub url: String,
    pub sth: SignedTreeHead,
    /// The ledger key, pinned at the first run.
    pub key: Value,
}

/// The outcome of one monitor run.
#[derive(Debug, Clone)]
pub struct MonitorReport {
    pub sth: SignedTreeHead,
    /// The saved size it was checked against, if any.
    pub previous: Option<u64>,
    /// The pinned ledger key changed (announced changes followed): the key ids, old first.
    pub key_changes: Vec<String>,
}

/// One tree-head key change as the platform serves it (`GET /v1/ledger/key-rotations`).
#[derive(Debug, Clone, Deserialize)]
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
fn check_rotation(key: &PublicJwk, r: &KeyRotationProof) -> Result<PublicJwk, VerifyError> {
    let invalid = |why: &str| {
        VerifyError::Invalid(format!(
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
) -> Result<(PublicJwk, Vec<SignedTreeHead>), VerifyError> {
    let mut key = trusted.clone();
    let mut handovers = Vec::new();
    while key.thumbprint() != target {
        let kid = key.thumbprint();
        let mut last_error = None;
        let mut next = None;
        for r in rotations.iter().filter(|r| r.sth.key_id == kid) {
            match check_rotation(&key, r) {
                Ok(new) => {
                    next = Some((new, r.sth.clone()));
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let Some((new, handover)) = next else {
            return Err(last_error.unwrap_or_else(|| {
                VerifyError::Invalid(format!(
                    "the tree head is signed by key {target}, but no key change was announced under the trusted key {kid}; refusing a key nobody announced"
                ))
            }));
        };
        if handovers.len() > rotations.len() {
            return Err(VerifyError::Invalid(
                "the key changes go round in a circle".into(),
            ));
        }
        handovers.push(handover);
        key = new;
    }
    Ok((key, handovers))
}

/// Fetches the current tree head, checks its signature with the platform's ledger key
/// (pinned in the state file after the first run), checks it extends the saved head, and
/// saves it.
pub async fn monitor(
    client: &ApiClient,
    state_path: Option<&Path>,
) -> Result<MonitorReport, VerifyError> {
    let sth = client.sth().await?;
    let saved: Option<MonitorState> = match state_path {
        Some(p) if p.exists() => Some(
            serde_json::from_slice(
                &std::fs::read(p)
                    .map_err(|e| VerifyError::State(format!("{}: {e}", p.display())))?,
            )
            .map_err(|e| VerifyError::State(format!("{}: {e}", p.display())))?,
        ),
        _ => None,
    };
    let mut key_changes = Vec::new();
    let key = match &saved {
        Some(s) => {
            let pinned = PublicJwk::from_value(&s.key)
                .map_err(|e| VerifyError::State(format!("pinned key: {e}")))?;
            if pinned.thumbprint() != sth.key_id {
                let rotations: Vec<KeyRotationProof> = serde_json::from_value(
                    client.ledger_key_rotations().await?["rotations"].take(),
                )
                .map_err(|e| VerifyError::Invalid(format!("key rotations: {e}")))?;
                let (new, handovers) = follow_key_rotations(&pinned, &sth.key_id, &rotations)?;
                for h in &handovers {
                    check_extends(client, h, &sth).await?;
                }
                // Each handover head is signed by the key it hands over from.
                key_changes = handovers.iter().map(|h| h.key_id.clone()).collect();
                key_changes.push(new.thumbprint());
                new
            } else {
                pinned
            }
        }
        None => client.ledger_key(&sth.key_id).await?,
    };
    sth.verify(&key)?;
    if sth.tree_size == 0 && sth.root()? != EMPTY_ROOT {
        return Err(VerifyError::Invalid(
            "an empty log must have the empty root".into(),
        ));
    }
    let previous = match &saved {
        None => None,
        Some(old) => {
            let old_sth = &old.sth;
            if sth.tree_size < old_sth.tree_size {
                return Err(VerifyError::Invalid(format!(
                    "the log shrank from {} to {} leaves",
                    old_sth.tree_size, sth.tree_size
                )));
            }
            if old_sth.tree_size > 0 && sth.tree_size > old_sth.tree_size {
                let proof = client.consistency(old_sth.tree_size, sth.tree_size).await?;
                verify_consistency(
                    old_sth.tree_size,
                    sth.tree_size,
                    &hashes(&proof, "proof")?,
                    &old_sth.root()?,
                    &sth.root()?,
                )?;
            } else if sth.tree_size == old_sth.tree_size && sth.root()? != old_sth.root()? {
                return Err(VerifyError::Invalid(format!(
                    "two different roots for the same size {}",
                    sth.tree_size
                )));
            }
            Some(old_sth.tree_size)
        }
    };
    if let Some(p) = state_path {
        let state = MonitorState {
            url: client.base().to_owned(),
            sth: sth.clone(),
            key: key.to_value(),
        };
        let text =
            serde_json::to_vec_pretty(&state).map_err(|e| VerifyError::State(e.to_string()))?;
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, p))
            .map_err(|e| VerifyError::State(format!("{}: {e}", p.display())))?;
    }
    Ok(MonitorReport {
        sth,
        previous,
        key_changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tsunagu_crypto::keys::{Alg, SigningKey};
    use tsunagu_ledger::MerkleTree;

    /// A log whose leaf 1 announces `new` under `old`, and the handover head over it signed
    /// by `signer`.
    fn rotation(old: &SigningKey, new: &SigningKey, signer: &SigningKey) -> KeyRotationProof {
        let announcement = serde_json::to_vec(&json!({
            "v": 1, "at": 10, "type": "ledger.key_rotated",
            "kid": new.kid(), "jwk": new.public_jwk().to_value(),
            "previous_kid": old.kid(), "activate_at": 20,
        }))
        .unwrap();
        let leaves = [b"first".to_vec(), announcement.clone(), b"third".to_vec()];
        let mut tree = MerkleTree::new();
        for l in &leaves {
            tree.push(leaf_hash(l));
        }
        let sth = SignedTreeHead::sign(signer, 3, &tree.root(3).unwrap(), 11).unwrap();
        KeyRotationProof {
            leaf_index: 1,
            leaf_input: Some(b64::std_encode(&announcement)),
            sth,
            audit_path: tree
                .inclusion_proof(1, 3)
                .unwrap()
                .iter()
                .map(b64::std_encode)
                .collect(),
        }
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
        assert!(matches!(err, VerifyError::Sth(_)), "{err}");
    }

    #[test]
    fn an_announcement_outside_the_head_is_refused() {
        let (k0, k1, k2) = (key(), key(), key());
        let mut step = rotation(&k0, &k1, &k0);
        // Swap the leaf for one announcing another key: its inclusion proof fails.
        let other = rotation(&k0, &k2, &k0);
        step.leaf_input = other.leaf_input;
        let err = follow_key_rotations(k0.public_jwk(), k2.kid(), &[step]).unwrap_err();
        assert!(matches!(err, VerifyError::Proof(_)), "{err}");
    }

    #[test]
    fn a_leaf_that_names_another_previous_key_is_refused() {
        let (k0, k1, k2) = (key(), key(), key());
        // Included and signed by k0, but it hands over from k1.
        let step = rotation(&k1, &k2, &k0);
        let err = follow_key_rotations(k0.public_jwk(), k2.kid(), &[step]).unwrap_err();
        assert!(err.to_string().contains("previous"), "{err}");
    }
}
