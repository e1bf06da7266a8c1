//! Changes and their ledger leaves, applied together: group commit with the ledger head lock
//! (ADR 0003) and bulk writes of insert-only changes (ADR 0011), written once for both
//! backends.
//!
//! A [`Change`] is one mutation of one aggregate. Each aggregate (and each capability crate)
//! defines its own change type; nothing here lists them.

use crate::sql::{BulkTable, ColumnType, Conn, Dialect, Param};
use crate::{Result, StoreError, params};
use std::fmt;
use tsunagu_core::AccountId;

/// One mutation, applied inside a commit batch's transaction.
pub trait Change: Send + Sync + fmt::Debug + 'static {
    /// Applies the change. A precondition that no longer holds (a compare-and-set that
    /// matched nothing, a uniqueness violation) is `StoreError::Conflict`.
    fn apply(&self, conn: &mut dyn Conn) -> Result<()>;

    /// For an insert-only change that the optimistic path may write in bulk: its table and
    /// row. Only changes whose rows nothing else in the same batch reads or depends on
    /// qualify (ADR 0011); a violated unique key still refuses the batch, which is then
    /// applied again one change at a time with [`Change::apply`].
    fn bulk(&self) -> Option<(&'static BulkTable, Vec<Param<'_>>)> {
        None
    }
}

/// Any change, boxed.
#[derive(Debug)]
pub struct AnyChange(Box<dyn Change>);

impl<C: Change> From<C> for AnyChange {
    fn from(change: C) -> Self {
        AnyChange(Box::new(change))
    }
}

impl AnyChange {
    pub fn get(&self) -> &dyn Change {
        self.0.as_ref()
    }
}

/// A leaf to append, with the accounts whose history it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLeaf {
    pub input: Vec<u8>,
    /// RFC 9162 leaf hash of `input`, computed by the caller.
    pub hash: [u8; 32],
    pub subjects: Vec<AccountId>,
    pub created_at: i64,
}

/// Changes and leaves applied atomically.
#[derive(Debug, Default)]
pub struct Commit {
    pub changes: Vec<AnyChange>,
    pub leaves: Vec<NewLeaf>,
}

impl Commit {
    pub fn new() -> Commit {
        Commit::default()
    }

    /// Adds a change.
    pub fn change(mut self, change: impl Into<AnyChange>) -> Commit {
        self.changes.push(change.into());
        self
    }

    /// Adds a leaf.
    pub fn leaf(mut self, leaf: NewLeaf) -> Commit {
        self.leaves.push(leaf);
        self
    }

    pub fn push(&mut self, change: impl Into<AnyChange>) {
        self.changes.push(change.into());
    }
}

/// Where a commit's leaves landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Index of the commit's first leaf (equal to the next index when it has none).
    pub first_leaf: u64,
    pub leaf_count: u64,
}

/// The result of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The ledger size before the batch (leaves below it may come from other replicas).
    pub size_before: u64,
    /// The ledger size after the batch.
    pub size_after: u64,
    pub results: Vec<Result<Committed>>,
}

const LEDGER_LEAVES: BulkTable = BulkTable {
    table: "ledger_leaves",
    columns: &[
        ("idx", ColumnType::Int),
        ("leaf_hash", ColumnType::Bytes),
        ("leaf_input", ColumnType::Bytes),
        ("created_at", ColumnType::Int),
    ],
    tail: "",
};

const LEDGER_SUBJECTS: BulkTable = BulkTable {
    table: "ledger_subjects",
    columns: &[("account_id", ColumnType::Text), ("idx", ColumnType::Int)],
    tail: " ON CONFLICT DO NOTHING",
};

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Database(format!("{v} does not fit a BIGINT")))
}

/// The ledger size, under the head lock: SQLite's write transaction already excludes other
/// writers; PostgreSQL locks the head row until the transaction ends.
fn locked_head(conn: &mut dyn Conn) -> Result<u64> {
    let sql = match conn.dialect() {
        Dialect::Sqlite => "SELECT tree_size FROM ledger_head WHERE id = 1",
        Dialect::Postgres => "SELECT tree_size FROM ledger_head WHERE id = 1 FOR UPDATE",
    };
    let size = conn.query_int(sql, &[])?;
    u64::try_from(size).map_err(|_| StoreError::Corrupt("negative ledger size".into()))
}

/// Inserts the leaves (and their history-index rows) of `commits`, numbered from `first`.
fn insert_leaves<'c>(
    conn: &mut dyn Conn,
    commits: impl Iterator<Item = &'c Commit>,
    first: u64,
) -> Result<u64> {
    let mut leaves = Vec::new();
    let mut subjects = Vec::new();
    let mut idx = to_i64(first)?;
    for leaf in commits.flat_map(|c| c.leaves.iter()) {
        leaves.push(
            params![
                idx,
                leaf.hash.as_slice(),
                leaf.input.as_slice(),
                leaf.created_at
            ]
            .to_vec(),
        );
        for subject in &leaf.subjects {
            subjects.push(params![subject, idx].to_vec());
        }
        idx += 1;
    }
    if !leaves.is_empty() {
        conn.bulk_insert(&LEDGER_LEAVES, &leaves)?;
    }
    if !subjects.is_empty() {
        conn.bulk_insert(&LEDGER_SUBJECTS, &subjects)?;
    }
    u64::try_from(idx).map_err(|_| StoreError::Corrupt("negative ledger index".into()))
}

fn set_head(conn: &mut dyn Conn, before: u64, after: u64) -> Result<()> {
    if after != before {
        conn.execute(
            "UPDATE ledger_head SET tree_size = $1 WHERE id = 1",
            &params![to_i64(after)?],
        )?;
    }
    Ok(())
}

/// The optimistic path: every change of every commit, bulk ones grouped per table, the
/// leaves in bulk. `Ok(Some(refusal))` when some commit was refused (the caller rolls back).
fn apply_optimistically(
    conn: &mut dyn Conn,
    commits: &[Commit],
    size_before: u64,
) -> Result<Option<StoreError>> {
    let mut bulk: Vec<(&'static BulkTable, Vec<Vec<Param<'_>>>)> = Vec::new();
    for change in commits.iter().flat_map(|c| c.changes.iter()) {
        match change.get().bulk() {
            Some((table, row)) => match bulk.iter_mut().find(|(t, _)| std::ptr::eq(*t, table)) {
                Some((_, rows)) => rows.push(row),
                None => bulk.push((table, vec![row])),
            },
            None => match change.get().apply(conn) {
                Ok(()) => {}
                Err(e @ StoreError::Conflict(_)) => return Ok(Some(e)),
                Err(e) => return Err(e),
            },
        }
    }
    for (table, rows) in &bulk {
        match conn.bulk_insert(table, rows) {
            Ok(()) => {}
            Err(e @ StoreError::Conflict(_)) => return Ok(Some(e)),
            Err(e) => return Err(e),
        }
    }
    let after = insert_leaves(conn, commits.iter(), size_before)?;
    set_head(conn, size_before, after)?;
    Ok(None)
}

/// Where each commit of an applied batch landed.
fn placements(commits: &[Commit], size_before: u64) -> (Vec<Result<Committed>>, u64) {
    let mut next = size_before;
    let results = commits
        .iter()
        .map(|c| {
            let committed = Committed {
                first_leaf: next,
                leaf_count: c.leaves.len() as u64,
            };
            next += committed.leaf_count;
            Ok(committed)
        })
        .collect();
    (results, next)
}

/// The batch with each commit in its own savepoint, so that a refused commit undoes only
/// itself. Changes are applied one by one, in order (bulk ones too).
fn apply_isolated(conn: &mut dyn Conn, commits: &[Commit]) -> Result<BatchOutcome> {
    let size_before = locked_head(conn)?;
    let mut next = size_before;
    let mut results = Vec::with_capacity(commits.len());
    for commit in commits {
        conn.batch("SAVEPOINT tsunagu_commit")?;
        let applied = commit
            .changes
            .iter()
            .try_for_each(|c| c.get().apply(conn))
            .and_then(|()| insert_leaves(conn, std::iter::once(commit), next));
        match applied {
            Ok(after) => {
                conn.batch("RELEASE SAVEPOINT tsunagu_commit")?;
                results.push(Ok(Committed {
                    first_leaf: next,
                    leaf_count: after - next,
                }));
                next = after;
            }
            Err(e @ StoreError::Conflict(_)) => {
                conn.batch(
                    "ROLLBACK TO SAVEPOINT tsunagu_commit; RELEASE SAVEPOINT tsunagu_commit",
                )?;
                results.push(Err(e));
            }
            Err(e) => return Err(e),
        }
    }
    set_head(conn, size_before, next)?;
    Ok(BatchOutcome {
        size_before,
        size_after: next,
        results,
    })
}

fn rollback_quietly(conn: &mut dyn Conn) {
    if let Err(e) = conn.rollback() {
        tracing::error!(error = %e, "rollback failed");
    }
}

/// Applies commits in one transaction under the ledger head lock (see the crate
/// documentation). The outer error means nothing was applied; an inner error means that
/// commit alone was refused.
pub(crate) fn commit_batch(conn: &mut dyn Conn, commits: &[Commit]) -> Result<BatchOutcome> {
    // Optimistically, every commit applies: no savepoints, insert-only rows and leaves in
    // bulk.
    conn.begin_write()?;
    let optimistic = locked_head(conn).and_then(|size_before| {
        apply_optimistically(conn, commits, size_before).map(|refusal| (size_before, refusal))
    });
    match optimistic {
        Ok((size_before, None)) => {
            if let Err(e) = conn.commit() {
                rollback_quietly(conn);
                return Err(e);
            }
            let (results, size_after) = placements(commits, size_before);
            Ok(BatchOutcome {
                size_before,
                size_after,
                results,
            })
        }
        Ok((size_before, Some(refusal))) => {
            rollback_quietly(conn);
            if commits.len() == 1 {
                return Ok(BatchOutcome {
                    size_before,
                    size_after: size_before,
                    results: vec![Err(refusal)],
                });
            }
            // Some commit was refused: start again, each commit in a savepoint.
            crate::sql::in_transaction(conn, |conn| apply_isolated(conn, commits))
        }
        Err(e) => {
            rollback_quietly(conn);
            Err(e)
        }
    }
}
