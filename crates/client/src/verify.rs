//! Offline verification of what the platform serves.

use crate::api::{ApiClient, ClientError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use tsunagu_crypto::b64;
use tsunagu_crypto::jwk::PublicJwk;
pub use tsunagu_ledger::rotation::{KeyRotationProof, RotationError, follow_key_rotations};
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
    #[error("{0}")]
    Rotation(#[from] RotationError),
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
