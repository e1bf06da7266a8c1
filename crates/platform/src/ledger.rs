//! The ledger service: the in-memory Merkle tree kept in step with the database, signed
//! tree heads, proofs; and the committer that group-commits changes with their leaves.
//!
//! Every replica keeps its own copy of the tree (two hashes a leaf). Leaves appended by this
//! process are pushed as soon as their batch commits; leaves appended by other replicas
//! are read from the database before any answer that depends on the current size.

use crate::keys::PlatformKeys;
use std::sync::{Arc, RwLock};
use tokio::sync::{Mutex, mpsc, oneshot};
use tsunagu_core::AccountId;
use tsunagu_core::event::{Leaf, LedgerEvent};
use tsunagu_crypto::{b64, jcs};
use tsunagu_ledger::tree::TreeError;
use tsunagu_ledger::{Hash, MerkleTree, SignedTreeHead, leaf_hash};
use tsunagu_store::{Commit, Committed, NewLeaf, SthRow, Store, StoreError};

/// Leaf hashes read per query when catching up.
const SYNC_CHUNK: u64 = 50_000;

/// The tree and its signer.
pub struct LedgerService {
    store: Arc<dyn Store>,
    tree: RwLock<MerkleTree>,
    /// Serializes catching up, so leaves are pushed once and in order.
    sync_lock: Mutex<()>,
    /// The tree-head key is the one these keys say signs at the time (ADR 0019).
    keys: Arc<PlatformKeys>,
    latest: RwLock<Option<SignedTreeHead>>,
}

impl LedgerService {
    /// Loads every leaf hash from the store and rebuilds the tree.
    pub async fn load(
        store: Arc<dyn Store>,
        keys: Arc<PlatformKeys>,
    ) -> Result<LedgerService, StoreError> {
        let service = LedgerService {
            store,
            tree: RwLock::new(MerkleTree::new()),
            sync_lock: Mutex::new(()),
            keys,
            latest: RwLock::new(None),
        };
        service.sync().await?;
        if let Some(row) = service.store.latest_sth().await? {
            *service.latest.write().expect("ledger lock") = Some(SignedTreeHead {
                tree_size: row.tree_size,
                root_hash: b64::std_encode(&row.root_hash),
                timestamp: row.timestamp,
                key_id: row.key_id,
                signature: b64::std_encode(&row.signature),
            });
        }
        Ok(service)
    }

    /// Leaves in the local tree.
    pub fn size(&self) -> u64 {
        self.tree.read().expect("ledger lock").size()
    }

    /// Reads leaves appended elsewhere until the local tree reaches `target` (or the
    /// database's size when `None`).
    pub async fn sync_to(&self, target: Option<u64>) -> Result<u64, StoreError> {
        let _guard = self.sync_lock.lock().await;
        let target = match target {
            Some(t) => t,
            None => self.store.ledger_size().await?,
        };
        loop {
            let size = self.size();
            if size >= target {
                return Ok(size);
            }
            let end = target.min(size + SYNC_CHUNK);
            let hashes = self.store.leaf_hashes(size, end).await?;
            if hashes.len() as u64 != end - size {
                return Err(StoreError::Corrupt(format!(
                    "expected leaves {size}..{end}, got {}",
                    hashes.len()
                )));
            }
            let mut tree = self.tree.write().expect("ledger lock");
            if tree.size() == size {
                for h in hashes {
                    tree.push(h);
                }
            }
        }
    }

    /// Catches up with the database.
    pub async fn sync(&self) -> Result<u64, StoreError> {
        self.sync_to(None).await
    }

    /// Records leaves that were just committed at `first`: pushed directly when the tree is
    /// at `first`, otherwise after reading the gap.
    async fn push_committed(&self, first: u64, hashes: &[Hash]) -> Result<(), StoreError> {
        {
            let mut tree = self.tree.write().expect("ledger lock");
            if tree.size() == first {
                for h in hashes {
                    tree.push(*h);
                }
                return Ok(());
            }
        }
        self.sync_to(Some(first + hashes.len() as u64))
            .await
            .map(|_| ())
    }

    /// The latest signed tree head, signing a new one first when the log has grown or the
    /// tree-head key has changed (after a rotation, no head is signed by the old key).
    pub async fn sth(&self, now: i64) -> Result<SignedTreeHead, StoreError> {
        let size = self.sync().await?;
        let key = self.keys.ledger_at(now);
        if let Some(latest) = self.latest.read().expect("ledger lock").clone()
            && latest.tree_size >= size
            && latest.key_id == key.kid()
        {
            return Ok(latest);
        }
        let root = self.root(size)?;
        let sth = SignedTreeHead::sign(&key, size, &root, now)
            .map_err(|e| StoreError::Database(format!("signing a tree head: {e}")))?;
        let signature =
            b64::std_decode(&sth.signature).map_err(|e| StoreError::Database(e.to_string()))?;
        self.store
            .put_sth(&SthRow {
                tree_size: size,
                root_hash: root.to_vec(),
                timestamp: now,
                key_id: sth.key_id.clone(),
                signature,
            })
            .await?;
        let mut latest = self.latest.write().expect("ledger lock");
        if latest.as_ref().is_none_or(|l| {
            l.tree_size < sth.tree_size || (l.tree_size == sth.tree_size && l.key_id != sth.key_id)
        }) {
            *latest = Some(sth.clone());
        }
        Ok(sth)
    }

    pub fn root(&self, size: u64) -> Result<Hash, StoreError> {
        self.tree
            .read()
            .expect("ledger lock")
            .root(size)
            .map_err(|e| StoreError::Database(e.to_string()))
    }

    /// Leaf hash and audit path; the tree is brought up to `size` first if needed.
    pub async fn inclusion(
        &self,
        index: u64,
        size: u64,
    ) -> Result<(Hash, Vec<Hash>), ProofRequestError> {
        self.ensure(size).await?;
        let tree = self.tree.read().expect("ledger lock");
        let path = tree.inclusion_proof(index, size)?;
        let leaf =
            tree.leaf(index)
                .ok_or(ProofRequestError::Range(TreeError::IndexOutOfRange {
                    index,
                    size,
                }))?;
        Ok((leaf, path))
    }

    pub async fn consistency(
        &self,
        first: u64,
        second: u64,
    ) -> Result<Vec<Hash>, ProofRequestError> {
        self.ensure(second).await?;
        Ok(self
            .tree
            .read()
            .expect("ledger lock")
            .consistency_proof(first, second)?)
    }

    async fn ensure(&self, size: u64) -> Result<(), ProofRequestError> {
        if size > self.size() {
            self.sync().await?;
        }
        Ok(())
    }
}

/// Why a proof request cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum ProofRequestError {
    #[error("{0}")]
    Range(#[from] TreeError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Builds a ledger leaf for an event of any capability, in the history of `subjects`.
pub fn leaf<E: LedgerEvent + ?Sized>(event: &E, subjects: &[&AccountId], now: i64) -> NewLeaf {
    let input =
        jcs::to_vec(&Leaf::new(now, event)).expect("ledger events always serialize to JSON");
    NewLeaf {
        hash: leaf_hash(&input),
        input,
        subjects: subjects.iter().map(|s| (*s).clone()).collect(),
        created_at: now,
    }
}

struct Job {
    commit: Commit,
    reply: oneshot::Sender<Result<Committed, StoreError>>,
}

/// Group commit: requests queue their commits; one task applies whatever has queued up in
/// a single transaction, then extends the tree.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
}

/// Most commits in one transaction.
const MAX_BATCH: usize = 512;

impl Committer {
    pub fn start(store: Arc<dyn Store>, ledger: Arc<LedgerService>) -> Committer {
        let (tx, mut rx) = mpsc::channel::<Job>(8192);
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
                let (commits, replies): (Vec<Commit>, Vec<_>) =
                    jobs.drain(..).map(|j| (j.commit, j.reply)).unzip();
                let leaf_hashes: Vec<Vec<Hash>> = commits
                    .iter()
                    .map(|c| c.leaves.iter().map(|l| l.hash).collect())
                    .collect();
                let count = commits.len();
                match store.commit_batch(commits).await {
                    Ok(outcome) => {
                        let hashes: Vec<Hash> = leaf_hashes
                            .into_iter()
                            .zip(&outcome.results)
                            .filter(|(_, result)| result.is_ok())
                            .flat_map(|(hashes, _)| hashes)
                            .collect();
                        if let Err(e) = ledger.push_committed(outcome.size_before, &hashes).await {
                            tracing::error!(error = %e, "ledger tree out of step; it will resync");
                        }
                        metrics::counter!("tsunagu_ledger_leaves_appended_total")
                            .increment(hashes.len() as u64);
                        metrics::histogram!("tsunagu_commit_batch_size").record(count as f64);
                        for (reply, result) in replies.into_iter().zip(outcome.results) {
                            let _ = reply.send(result);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "batch commit failed");
                        for reply in replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        Committer { tx }
    }

    /// Applies `commit`; returns where its leaves landed once they are durable.
    pub async fn commit(&self, commit: Commit) -> Result<Committed, StoreError> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(Job { commit, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the committer has stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Unavailable("the committer has stopped".into()))?
    }
}

impl From<ProofRequestError> for crate::Refusal {
    fn from(e: ProofRequestError) -> Self {
        match e {
            ProofRequestError::Range(r) => {
                crate::Refusal::new(tsunagu_core::Code::InvalidRange, r.to_string())
            }
            ProofRequestError::Store(s) => s.into(),
        }
    }
}
