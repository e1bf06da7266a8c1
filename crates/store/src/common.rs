//! What both backends share: column lists, row buffers for bulk inserts, conversions.

use crate::*;

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

pub(crate) fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Database(format!("{v} does not fit a BIGINT")))
}

pub(crate) fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt("negative index"))
}

pub(crate) fn hash32(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| corrupt("leaf hash is not 32 bytes"))
}

/// Leaves to insert, column by column.
#[derive(Default)]
pub(crate) struct LeafColumns {
    pub idx: Vec<i64>,
    pub hash: Vec<Vec<u8>>,
    pub input: Vec<Vec<u8>>,
    pub created_at: Vec<i64>,
}

/// History index rows to insert.
#[derive(Default)]
pub(crate) struct SubjectColumns {
    pub account_id: Vec<String>,
    pub idx: Vec<i64>,
}

impl LeafColumns {
    /// The leaves (and their subjects) of `commits`, numbered from `first`.
    pub(crate) fn of<'c>(
        commits: impl Iterator<Item = &'c Commit>,
        first: u64,
    ) -> Result<(LeafColumns, SubjectColumns)> {
        let mut leaves = LeafColumns::default();
        let mut subjects = SubjectColumns::default();
        let mut idx = to_i64(first)?;
        for commit in commits {
            for leaf in &commit.leaves {
                leaves.idx.push(idx);
                leaves.hash.push(leaf.hash.to_vec());
                leaves.input.push(leaf.input.clone());
                leaves.created_at.push(leaf.created_at);
                for subject in &leaf.subjects {
                    subjects.account_id.push(subject.clone());
                    subjects.idx.push(idx);
                }
                idx += 1;
            }
        }
        Ok((leaves, subjects))
    }
}

/// Where each commit of an applied batch landed.
pub(crate) fn placements(commits: &[Commit], size_before: u64) -> (Vec<Result<Committed>>, u64) {
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

macro_rules! account_columns {
    () => {
        "id, level, status, attributes, card_binding, card_issuer, card_serial, card_not_after, version, created_at, updated_at"
    };
}

macro_rules! device_columns {
    () => {
        "id, account_id, jkt, jwk, status, failed_logins, locked_until, expires_at, created_at, revoked_at"
    };
}

// Statements both backends run as they are ($N parameters work in both).
pub(crate) const SQL_ACCOUNT_BY_ID: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE id = $1"
);
pub(crate) const SQL_ACCOUNT_BY_CARD: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE card_binding = $1"
);
pub(crate) const SQL_ACCOUNTS_WITH_CARD: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE card_serial = $1 AND card_issuer = $2"
);
pub(crate) const SQL_DEVICE_BY_ID: &str =
    concat!("SELECT ", device_columns!(), " FROM devices WHERE id = $1");
pub(crate) const SQL_DEVICE_BY_JKT: &str =
    concat!("SELECT ", device_columns!(), " FROM devices WHERE jkt = $1");
pub(crate) const SQL_DEVICES_OF: &str = concat!(
    "SELECT ",
    device_columns!(),
    " FROM devices WHERE account_id = $1 ORDER BY created_at, id"
);
pub(crate) const SQL_INSERT_ACCOUNT: &str = concat!(
    "INSERT INTO accounts (",
    account_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);
pub(crate) const SQL_UPDATE_ACCOUNT_PROOF: &str = "UPDATE accounts SET level = $1, status = $2, attributes = $3, card_binding = $4, card_issuer = $5, card_serial = $6, card_not_after = $7, version = version + 1, updated_at = $8 WHERE id = $9 AND version = $10";
pub(crate) const SQL_SET_ACCOUNT_STATUS: &str = "UPDATE accounts SET status = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND status = $4";
pub(crate) const SQL_INSERT_DEVICE: &str = concat!(
    "INSERT INTO devices (",
    device_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);
pub(crate) const SQL_REVOKE_DEVICE: &str =
    "UPDATE devices SET status = 'revoked', revoked_at = $1 WHERE id = $2 AND status = 'active'";
pub(crate) const SQL_SET_LOGIN_STATE: &str =
    "UPDATE devices SET failed_logins = $1, locked_until = $2 WHERE id = $3 AND failed_logins = $4";
pub(crate) const SQL_INSERT_SESSION: &str = "INSERT INTO sessions (token_hash, account_id, device_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const SQL_DELETE_DEVICE_SESSIONS: &str = "DELETE FROM sessions WHERE device_id = $1";
pub(crate) const SQL_SESSION: &str = "SELECT token_hash, account_id, device_id, expires_at, created_at FROM sessions WHERE token_hash = $1";
pub(crate) const SQL_PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at <= $1";
pub(crate) const SQL_PUT_NONCE: &str =
    "INSERT INTO nonces (nonce, purpose, expires_at) VALUES ($1, $2, $3)";
pub(crate) const SQL_TAKE_NONCE: &str =
    "DELETE FROM nonces WHERE nonce = $1 AND purpose = $2 RETURNING expires_at";
pub(crate) const SQL_PURGE_NONCES: &str = "DELETE FROM nonces WHERE expires_at <= $1";
pub(crate) const SQL_LEDGER_SIZE: &str = "SELECT tree_size FROM ledger_head WHERE id = 1";
pub(crate) const SQL_SET_HEAD: &str = "UPDATE ledger_head SET tree_size = $1 WHERE id = 1";
pub(crate) const SQL_LEAF_HASHES: &str =
    "SELECT idx, leaf_hash FROM ledger_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx";
pub(crate) const SQL_LEAVES: &str = "SELECT idx, leaf_hash, leaf_input, created_at FROM ledger_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx";
pub(crate) const SQL_SUBJECT_LEAVES: &str = "SELECT l.idx, l.leaf_hash, l.leaf_input, l.created_at FROM ledger_subjects s JOIN ledger_leaves l ON l.idx = s.idx WHERE s.account_id = $1 AND s.idx < $2 ORDER BY s.idx DESC LIMIT $3";
pub(crate) const SQL_PUT_STH: &str = "INSERT INTO ledger_sths (tree_size, root_hash, timestamp, key_id, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING";
pub(crate) const SQL_LATEST_STH: &str = "SELECT tree_size, root_hash, timestamp, key_id, signature FROM ledger_sths ORDER BY tree_size DESC LIMIT 1";
pub(crate) const SQL_EXPIRE_LEAF_INPUTS: &str =
    "UPDATE ledger_leaves SET leaf_input = NULL WHERE created_at < $1 AND leaf_input IS NOT NULL";
pub(crate) const SQL_KEYS: &str = "SELECT name, purpose, kid, alg, secret, active, created_at FROM platform_keys WHERE purpose = $1 ORDER BY created_at, name";
pub(crate) const SQL_INSERT_KEY: &str = "INSERT INTO platform_keys (name, purpose, kid, alg, secret, active, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING";

/// A name for a change, in conflict messages.
pub(crate) fn change_name(change: &Change) -> &'static str {
    match change {
        Change::InsertAccount(_) => "insert account",
        Change::UpdateAccountProof { .. } => "update account proof",
        Change::SetAccountStatus { .. } => "set account status",
        Change::InsertDevice(_) => "insert device",
        Change::RevokeDevice { .. } => "revoke device",
        Change::SetLoginState { .. } => "set login state",
        Change::InsertSession(_) => "insert session",
        Change::DeleteDeviceSessions { .. } => "delete device sessions",
    }
}
