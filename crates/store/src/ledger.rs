//! The ledger's stored leaves, history index and signed tree heads, and the platform's own
//! sealed keys. Leaves are written only by `commit_batch`.

use crate::commit::Change;
use crate::identity::{all, one};
use crate::sql::{Conn, RowReader, expect_one};
use crate::{KeyStore, LedgerStore, Result, SqlStore, StoreError, params};
use async_trait::async_trait;
use tsunagu_core::AccountId;

/// A stored ledger leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRow {
    pub index: u64,
    pub hash: [u8; 32],
    /// None after retention.
    pub input: Option<Vec<u8>>,
    pub created_at: i64,
}

/// A stored signed tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SthRow {
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    pub timestamp: i64,
    pub key_id: String,
    pub signature: Vec<u8>,
}

/// A platform key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub name: String,
    pub purpose: String,
    pub kid: String,
    pub alg: String,
    pub secret: Vec<u8>,
    pub active: bool,
    pub created_at: i64,
    /// A signing or ledger key signs from this time on (the newest activated key wins).
    pub activate_at: i64,
    /// A signing key leaves the JWKS (and is deleted) at this time.
    pub retire_at: Option<i64>,
    /// A ledger key's announcement: the JSON of the handover tree head (ADR 0019).
    pub announcement: Option<String>,
}

/// Changes to the platform's keys, committed with the leaf that records them.
#[derive(Debug, Clone)]
pub enum KeyChange {
    /// Inserts a new key; a key with its name is a conflict.
    Insert(KeyRow),
    /// Sets when a key leaves service, if no time is set yet.
    SetRetireAt { name: String, retire_at: i64 },
    /// Deletes a key whose `retire_at` has passed at `now` (once, across replicas).
    DeleteRetired { name: String, now: i64 },
}

const SQL_INSERT_KEY_STRICT: &str = "INSERT INTO platform_keys (name, purpose, kid, alg, secret, active, created_at, activate_at, retire_at, announcement) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const SQL_SET_RETIRE_AT: &str =
    "UPDATE platform_keys SET retire_at = $1 WHERE name = $2 AND retire_at IS NULL";
const SQL_DELETE_RETIRED: &str =
    "DELETE FROM platform_keys WHERE name = $1 AND retire_at IS NOT NULL AND retire_at <= $2";
const SQL_ALL_KEYS: &str = "SELECT name, purpose, kid, alg, secret, active, created_at, activate_at, retire_at, announcement FROM platform_keys ORDER BY created_at, name";
const SQL_SET_ANNOUNCEMENT: &str =
    "UPDATE platform_keys SET announcement = $1 WHERE name = $2 AND announcement IS NULL";
const SQL_RESEAL_KEY: &str = "UPDATE platform_keys SET secret = $1 WHERE name = $2 AND secret = $3";
const SQL_SEALED_ATTRIBUTES: &str = "SELECT id, attributes FROM accounts WHERE attributes IS NOT NULL AND id > $1 ORDER BY id LIMIT $2";
const SQL_RESEAL_ATTRIBUTES: &str =
    "UPDATE accounts SET attributes = $1 WHERE id = $2 AND attributes = $3";

/// Inserts a key row with `sql` (strict, or `ON CONFLICT DO NOTHING`); rows written.
fn insert_key(conn: &mut dyn Conn, sql: &str, k: &KeyRow) -> Result<u64> {
    conn.execute(
        sql,
        &params![
            &k.name,
            &k.purpose,
            &k.kid,
            &k.alg,
            &k.secret,
            k.active,
            k.created_at,
            k.activate_at,
            k.retire_at,
            &k.announcement
        ],
    )
}

impl Change for KeyChange {
    fn apply(&self, conn: &mut dyn Conn) -> Result<()> {
        match self {
            KeyChange::Insert(k) => {
                let n = insert_key(conn, SQL_INSERT_KEY_STRICT, k)?;
                expect_one(n, "insert key")
            }
            KeyChange::SetRetireAt { name, retire_at } => {
                let n = conn.execute(SQL_SET_RETIRE_AT, &params![*retire_at, name])?;
                expect_one(n, "set a key's retirement")
            }
            KeyChange::DeleteRetired { name, now } => {
                let n = conn.execute(SQL_DELETE_RETIRED, &params![name, *now])?;
                expect_one(n, "delete a retired key")
            }
        }
    }
}

const SQL_LEDGER_SIZE: &str = "SELECT tree_size FROM ledger_head WHERE id = 1";
const SQL_LEAF_HASHES: &str =
    "SELECT idx, leaf_hash FROM ledger_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx";
const SQL_LEAVES: &str = "SELECT idx, leaf_hash, leaf_input, created_at FROM ledger_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx";
const SQL_SUBJECT_LEAVES: &str = "SELECT l.idx, l.leaf_hash, l.leaf_input, l.created_at FROM ledger_subjects s JOIN ledger_leaves l ON l.idx = s.idx WHERE s.account_id = $1 AND s.idx < $2 ORDER BY s.idx DESC LIMIT $3";
const SQL_PUT_STH: &str = "INSERT INTO ledger_sths (tree_size, root_hash, timestamp, key_id, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING";
const SQL_LATEST_STH: &str = "SELECT tree_size, root_hash, timestamp, key_id, signature FROM ledger_sths ORDER BY tree_size DESC LIMIT 1";
const SQL_EXPIRE_LEAF_INPUTS: &str =
    "UPDATE ledger_leaves SET leaf_input = NULL WHERE created_at < $1 AND leaf_input IS NOT NULL";
const SQL_KEYS: &str = "SELECT name, purpose, kid, alg, secret, active, created_at, activate_at, retire_at, announcement FROM platform_keys WHERE purpose = $1 ORDER BY created_at, name";
const SQL_INSERT_KEY: &str = "INSERT INTO platform_keys (name, purpose, kid, alg, secret, active, created_at, activate_at, retire_at, announcement) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (name) DO NOTHING";

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Database(format!("{v} does not fit a BIGINT")))
}

fn leaf_row(r: &mut RowReader) -> Result<LeafRow> {
    Ok(LeafRow {
        index: r.u64()?,
        hash: r.hash32()?,
        input: r.opt_bytes()?,
        created_at: r.int()?,
    })
}

fn sth_row(r: &mut RowReader) -> Result<SthRow> {
    Ok(SthRow {
        tree_size: r.u64()?,
        root_hash: r.bytes()?,
        timestamp: r.int()?,
        key_id: r.text()?,
        signature: r.bytes()?,
    })
}

fn key_row(r: &mut RowReader) -> Result<KeyRow> {
    Ok(KeyRow {
        name: r.text()?,
        purpose: r.text()?,
        kid: r.text()?,
        alg: r.text()?,
        secret: r.bytes()?,
        active: r.bool()?,
        created_at: r.int()?,
        activate_at: r.int()?,
        retire_at: r.opt_int()?,
        announcement: r.opt_text()?,
    })
}

#[async_trait]
impl LedgerStore for SqlStore {
    async fn ledger_size(&self) -> Result<u64> {
        self.db
            .read(|c| {
                let n = c.query_int(SQL_LEDGER_SIZE, &[])?;
                u64::try_from(n).map_err(|_| StoreError::Corrupt("negative ledger size".into()))
            })
            .await
    }

    async fn leaf_hashes(&self, start: u64, end: u64) -> Result<Vec<[u8; 32]>> {
        let (first, last) = (to_i64(start)?, to_i64(end)?);
        self.db
            .read(move |c| {
                let rows = c.query(SQL_LEAF_HASHES, &params![first, last])?;
                let mut out = Vec::with_capacity(rows.len());
                for (i, row) in rows.into_iter().enumerate() {
                    let mut r = row.reader();
                    if r.u64()? != start + i as u64 {
                        return Err(StoreError::Corrupt("ledger leaves are not dense".into()));
                    }
                    out.push(r.hash32()?);
                }
                Ok(out)
            })
            .await
    }

    async fn leaves(&self, start: u64, end: u64) -> Result<Vec<LeafRow>> {
        let (start, end) = (to_i64(start)?, to_i64(end)?);
        self.db
            .read(move |c| all(c.query(SQL_LEAVES, &params![start, end])?, leaf_row))
            .await
    }

    async fn subject_leaves(
        &self,
        account_id: &AccountId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<LeafRow>> {
        let before = match before {
            Some(b) => to_i64(b)?,
            None => i64::MAX,
        };
        let account_id = account_id.clone();
        self.db
            .read(move |c| {
                all(
                    c.query(SQL_SUBJECT_LEAVES, &params![&account_id, before, limit])?,
                    leaf_row,
                )
            })
            .await
    }

    async fn put_sth(&self, sth: &SthRow) -> Result<()> {
        let sth = sth.clone();
        let size = to_i64(sth.tree_size)?;
        self.db
            .write(move |c| {
                c.execute(
                    SQL_PUT_STH,
                    &params![
                        size,
                        &sth.root_hash,
                        sth.timestamp,
                        &sth.key_id,
                        &sth.signature
                    ],
                )?;
                Ok(())
            })
            .await
    }

    async fn latest_sth(&self) -> Result<Option<SthRow>> {
        self.db
            .read(|c| one(c.query_opt(SQL_LATEST_STH, &[])?, sth_row))
            .await
    }

    async fn expire_leaf_inputs(&self, before: i64, keep: &[u64]) -> Result<u64> {
        // The kept indexes are integers from the database itself, written into the statement
        // (a list parameter is not portable between SQLite and PostgreSQL).
        let sql = if keep.is_empty() {
            SQL_EXPIRE_LEAF_INPUTS.to_owned()
        } else {
            let list = keep
                .iter()
                .map(|i| to_i64(*i).map(|i| i.to_string()))
                .collect::<Result<Vec<_>>>()?
                .join(", ");
            format!("{SQL_EXPIRE_LEAF_INPUTS} AND idx NOT IN ({list})")
        };
        self.db
            .write(move |c| c.execute(&sql, &params![before]))
            .await
    }
}

#[async_trait]
impl KeyStore for SqlStore {
    async fn keys(&self, purpose: &str) -> Result<Vec<KeyRow>> {
        let purpose = purpose.to_owned();
        self.db
            .read(move |c| all(c.query(SQL_KEYS, &params![&purpose])?, key_row))
            .await
    }

    async fn insert_key_if_absent(&self, key: &KeyRow) -> Result<bool> {
        let k = key.clone();
        self.db
            .write(move |c| {
                let n = insert_key(c, SQL_INSERT_KEY, &k)?;
                Ok(n == 1)
            })
            .await
    }

    async fn all_keys(&self) -> Result<Vec<KeyRow>> {
        self.db
            .read(|c| all(c.query(SQL_ALL_KEYS, &[])?, key_row))
            .await
    }

    async fn set_key_announcement(&self, name: &str, announcement: &str) -> Result<bool> {
        let (name, announcement) = (name.to_owned(), announcement.to_owned());
        self.db
            .write(move |c| {
                Ok(c.execute(SQL_SET_ANNOUNCEMENT, &params![&announcement, &name])? == 1)
            })
            .await
    }

    async fn reseal_key(&self, name: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        let (name, old, new) = (name.to_owned(), old.to_vec(), new.to_vec());
        self.db
            .write(move |c| Ok(c.execute(SQL_RESEAL_KEY, &params![&new, &name, &old])? == 1))
            .await
    }

    async fn sealed_attributes(
        &self,
        after: Option<&AccountId>,
        limit: u32,
    ) -> Result<Vec<(AccountId, Vec<u8>)>> {
        let after = after.map(|a| a.as_str().to_owned()).unwrap_or_default();
        self.db
            .read(move |c| {
                all(
                    c.query(SQL_SEALED_ATTRIBUTES, &params![&after, limit])?,
                    |r| Ok((r.id()?, r.bytes()?)),
                )
            })
            .await
    }

    async fn reseal_attributes(&self, id: &AccountId, old: &[u8], new: &[u8]) -> Result<bool> {
        let (id, old, new) = (id.clone(), old.to_vec(), new.to_vec());
        self.db
            .write(move |c| Ok(c.execute(SQL_RESEAL_ATTRIBUTES, &params![&new, &id, &old])? == 1))
            .await
    }
}
