//! The SQL implementation, written once and instantiated for SQLite and PostgreSQL. The
//! statements are portable (`$N` parameters, `ON CONFLICT`, `RETURNING`); the two backends
//! differ only in connection setup and in how the ledger head is locked.

use crate::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Acquire, Row};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use tsunagu_core::identity::{AccountStatus, DeviceStatus, Level};

/// SQLite store.
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
}

/// PostgreSQL store.
pub struct PgStore {
    pool: sqlx::PgPool,
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db)
            if db.is_unique_violation()
                || db.is_foreign_key_violation()
                || db.is_check_violation() =>
        {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) if db.message().contains("database is locked") => {
            StoreError::Unavailable(db.message().to_owned())
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Database(e.to_string()),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Database(format!("{v} does not fit a BIGINT")))
}

fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt("negative index"))
}

fn hash32(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| corrupt("leaf hash is not 32 bytes"))
}

/// Opens (creating if needed) the SQLite database at `path` and migrates it. WAL journal,
/// `synchronous = FULL` (a commit is on disk when it returns), foreign keys on.
pub async fn open_sqlite(path: &Path) -> Result<SqliteStore> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", parent.display())))?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
    sqlx::migrate!("./migrations/sqlite")
        .run(&pool)
        .await
        .map_err(|e| StoreError::Database(format!("migration: {e}")))?;
    Ok(SqliteStore { pool })
}

/// Connects to PostgreSQL and migrates. With `schema`, everything lives in that schema
/// (created if missing): the test suite gives every test its own.
pub async fn open_postgres(url: &str, schema: Option<&str>) -> Result<PgStore> {
    let mut options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("database_url: {e}")))?;
    if let Some(schema) = schema {
        if !schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(StoreError::Database(format!("schema name `{schema}`")));
        }
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}"
        )))
        .execute(&admin)
        .await
        .map_err(map_err)?;
        admin.close().await;
        options = options.options([("search_path", schema)]);
    }
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(map_err)?;
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .map_err(|e| StoreError::Database(format!("migration: {e}")))?;
    Ok(PgStore { pool })
}

impl PgStore {
    /// Drops a schema made by [`open_postgres`] (test clean-up).
    pub async fn drop_schema(url: &str, schema: &str) -> Result<()> {
        if !schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(StoreError::Database(format!("schema name `{schema}`")));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("database_url: {e}")))?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&admin)
        .await
        .map_err(map_err)?;
        admin.close().await;
        Ok(())
    }
}

const ACCOUNT_COLUMNS: &str = "id, level, status, attributes, card_binding, card_issuer, card_serial, card_not_after, version, created_at, updated_at";
const DEVICE_COLUMNS: &str = "id, account_id, jkt, jwk, status, failed_logins, locked_until, expires_at, created_at, revoked_at";

/// Generates the trait implementations for one backend.
macro_rules! sql_store {
    ($store:ty, $db:ty, $row:ty, $backend:literal, $begin:ident ( $($begin_arg:expr),* ), $head_sql:literal) => {
        impl $store {
            fn account_row(row: &$row) -> Result<AccountRow> {
                let level: String = row.try_get("level").map_err(map_err)?;
                let status: String = row.try_get("status").map_err(map_err)?;
                let binding: Option<String> = row.try_get("card_binding").map_err(map_err)?;
                let card = match binding {
                    Some(binding) => Some(CardRef {
                        binding,
                        issuer: row
                            .try_get::<Option<Vec<u8>>, _>("card_issuer")
                            .map_err(map_err)?
                            .ok_or_else(|| corrupt("card_issuer"))?,
                        serial: row
                            .try_get::<Option<Vec<u8>>, _>("card_serial")
                            .map_err(map_err)?
                            .ok_or_else(|| corrupt("card_serial"))?,
                        not_after: row
                            .try_get::<Option<i64>, _>("card_not_after")
                            .map_err(map_err)?
                            .ok_or_else(|| corrupt("card_not_after"))?,
                    }),
                    None => None,
                };
                Ok(AccountRow {
                    id: row.try_get("id").map_err(map_err)?,
                    level: Level::parse(&level).ok_or_else(|| corrupt("account level"))?,
                    status: AccountStatus::parse(&status)
                        .ok_or_else(|| corrupt("account status"))?,
                    attributes: row.try_get("attributes").map_err(map_err)?,
                    card,
                    version: row.try_get("version").map_err(map_err)?,
                    created_at: row.try_get("created_at").map_err(map_err)?,
                    updated_at: row.try_get("updated_at").map_err(map_err)?,
                })
            }

            fn device_row(row: &$row) -> Result<DeviceRow> {
                let status: String = row.try_get("status").map_err(map_err)?;
                Ok(DeviceRow {
                    id: row.try_get("id").map_err(map_err)?,
                    account_id: row.try_get("account_id").map_err(map_err)?,
                    jkt: row.try_get("jkt").map_err(map_err)?,
                    jwk: row.try_get("jwk").map_err(map_err)?,
                    status: DeviceStatus::parse(&status).ok_or_else(|| corrupt("device status"))?,
                    failed_logins: row.try_get("failed_logins").map_err(map_err)?,
                    locked_until: row.try_get("locked_until").map_err(map_err)?,
                    expires_at: row.try_get("expires_at").map_err(map_err)?,
                    created_at: row.try_get("created_at").map_err(map_err)?,
                    revoked_at: row.try_get("revoked_at").map_err(map_err)?,
                })
            }

            fn leaf_row(row: &$row) -> Result<LeafRow> {
                Ok(LeafRow {
                    index: to_u64(row.try_get("idx").map_err(map_err)?)?,
                    hash: hash32(row.try_get("leaf_hash").map_err(map_err)?)?,
                    input: row.try_get("leaf_input").map_err(map_err)?,
                    created_at: row.try_get("created_at").map_err(map_err)?,
                })
            }

            async fn apply(
                tx: &mut sqlx::Transaction<'_, $db>,
                change: &Change,
            ) -> Result<()> {
                let affected = match change {
                    Change::InsertAccount(a) => {
                        let card = a.card.as_ref();
                        sqlx::query(
                            "INSERT INTO accounts (id, level, status, attributes, card_binding, card_issuer, card_serial, card_not_after, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                        )
                        .bind(&a.id)
                        .bind(a.level.as_str())
                        .bind(a.status.as_str())
                        .bind(&a.attributes)
                        .bind(card.map(|c| c.binding.clone()))
                        .bind(card.map(|c| c.issuer.clone()))
                        .bind(card.map(|c| c.serial.clone()))
                        .bind(card.map(|c| c.not_after))
                        .bind(a.version)
                        .bind(a.created_at)
                        .bind(a.updated_at)
                        .execute(&mut **tx)
                        .await
                        .map_err(map_err)?
                        .rows_affected()
                    }
                    Change::UpdateAccountProof {
                        id,
                        expected_version,
                        level,
                        status,
                        attributes,
                        card,
                        updated_at,
                    } => sqlx::query(
                        "UPDATE accounts SET level = $1, status = $2, attributes = $3, card_binding = $4, card_issuer = $5, card_serial = $6, card_not_after = $7, version = version + 1, updated_at = $8 WHERE id = $9 AND version = $10",
                    )
                    .bind(level.as_str())
                    .bind(status.as_str())
                    .bind(attributes)
                    .bind(&card.binding)
                    .bind(&card.issuer)
                    .bind(&card.serial)
                    .bind(card.not_after)
                    .bind(updated_at)
                    .bind(id)
                    .bind(expected_version)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected(),
                    Change::SetAccountStatus {
                        id,
                        from,
                        to,
                        updated_at,
                    } => sqlx::query(
                        "UPDATE accounts SET status = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND status = $4",
                    )
                    .bind(to.as_str())
                    .bind(updated_at)
                    .bind(id)
                    .bind(from.as_str())
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected(),
                    Change::InsertDevice(d) => sqlx::query(
                        "INSERT INTO devices (id, account_id, jkt, jwk, status, failed_logins, locked_until, expires_at, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(&d.id)
                    .bind(&d.account_id)
                    .bind(&d.jkt)
                    .bind(&d.jwk)
                    .bind(d.status.as_str())
                    .bind(d.failed_logins)
                    .bind(d.locked_until)
                    .bind(d.expires_at)
                    .bind(d.created_at)
                    .bind(d.revoked_at)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected(),
                    Change::RevokeDevice { id, at } => sqlx::query(
                        "UPDATE devices SET status = 'revoked', revoked_at = $1 WHERE id = $2 AND status = 'active'",
                    )
                    .bind(at)
                    .bind(id)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected(),
                    Change::SetLoginState {
                        device_id,
                        expected_failures,
                        failures,
                        locked_until,
                    } => sqlx::query(
                        "UPDATE devices SET failed_logins = $1, locked_until = $2 WHERE id = $3 AND failed_logins = $4",
                    )
                    .bind(failures)
                    .bind(locked_until)
                    .bind(device_id)
                    .bind(expected_failures)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected(),
                    Change::InsertSession(s) => sqlx::query(
                        "INSERT INTO sessions (token_hash, account_id, device_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&s.token_hash)
                    .bind(&s.account_id)
                    .bind(&s.device_id)
                    .bind(s.expires_at)
                    .bind(s.created_at)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected(),
                    Change::DeleteDeviceSessions { device_id } => {
                        sqlx::query("DELETE FROM sessions WHERE device_id = $1")
                            .bind(device_id)
                            .execute(&mut **tx)
                            .await
                            .map_err(map_err)?;
                        return Ok(());
                    }
                };
                if affected == 1 {
                    Ok(())
                } else {
                    Err(StoreError::Conflict(format!(
                        "precondition of {} no longer holds",
                        change_name(change)
                    )))
                }
            }

            async fn apply_commit(
                tx: &mut sqlx::Transaction<'_, $db>,
                commit: &Commit,
                first: u64,
            ) -> Result<u64> {
                for change in &commit.changes {
                    Self::apply(tx, change).await?;
                }
                for (i, leaf) in commit.leaves.iter().enumerate() {
                    let idx = to_i64(first + i as u64)?;
                    sqlx::query(
                        "INSERT INTO ledger_leaves (idx, leaf_hash, leaf_input, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(idx)
                    .bind(leaf.hash.as_slice())
                    .bind(leaf.input.as_slice())
                    .bind(leaf.created_at)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
                    for subject in &leaf.subjects {
                        sqlx::query(
                            "INSERT INTO ledger_subjects (account_id, idx) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        )
                        .bind(subject)
                        .bind(idx)
                        .execute(&mut **tx)
                        .await
                        .map_err(map_err)?;
                    }
                }
                Ok(commit.leaves.len() as u64)
            }
        }

        #[async_trait]
        impl IdentityStore for $store {
            async fn account(&self, id: &str) -> Result<Option<AccountRow>> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map(Self::account_row).transpose()
            }

            async fn account_by_card(&self, binding: &str) -> Result<Option<AccountRow>> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE card_binding = $1"
                )))
                .bind(binding)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map(Self::account_row).transpose()
            }

            async fn accounts_with_card(
                &self,
                issuer: &[u8],
                serial: &[u8],
            ) -> Result<Vec<AccountRow>> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE card_serial = $1 AND card_issuer = $2"
                )))
                .bind(serial)
                .bind(issuer)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map(Self::account_row).collect()
            }

            async fn device(&self, id: &str) -> Result<Option<DeviceRow>> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map(Self::device_row).transpose()
            }

            async fn device_by_jkt(&self, jkt: &str) -> Result<Option<DeviceRow>> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE jkt = $1"
                )))
                .bind(jkt)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map(Self::device_row).transpose()
            }

            async fn devices_of(&self, account_id: &str) -> Result<Vec<DeviceRow>> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE account_id = $1 ORDER BY created_at, id"
                )))
                .bind(account_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map(Self::device_row).collect()
            }

            async fn count_accounts(&self) -> Result<u64> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                to_u64(n)
            }
        }

        #[async_trait]
        impl NonceStore for $store {
            async fn put_nonce(&self, nonce: &str, purpose: &str, expires_at: i64) -> Result<()> {
                sqlx::query("INSERT INTO nonces (nonce, purpose, expires_at) VALUES ($1, $2, $3)")
                    .bind(nonce)
                    .bind(purpose)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn take_nonce(&self, nonce: &str, purpose: &str, now: i64) -> Result<bool> {
                // Deleting is the consumption: of concurrent takers, one deletes the row.
                let deleted = sqlx::query(
                    "DELETE FROM nonces WHERE nonce = $1 AND purpose = $2 RETURNING expires_at",
                )
                .bind(nonce)
                .bind(purpose)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                match deleted {
                    Some(row) => {
                        let expires_at: i64 = row.try_get("expires_at").map_err(map_err)?;
                        Ok(expires_at > now)
                    }
                    None => Ok(false),
                }
            }

            async fn purge_nonces(&self, now: i64) -> Result<u64> {
                Ok(sqlx::query("DELETE FROM nonces WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected())
            }
        }

        #[async_trait]
        impl SessionStore for $store {
            async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>> {
                let row = sqlx::query(
                    "SELECT token_hash, account_id, device_id, expires_at, created_at FROM sessions WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.map(|r| {
                    Ok(SessionRow {
                        token_hash: r.try_get("token_hash").map_err(map_err)?,
                        account_id: r.try_get("account_id").map_err(map_err)?,
                        device_id: r.try_get("device_id").map_err(map_err)?,
                        expires_at: r.try_get("expires_at").map_err(map_err)?,
                        created_at: r.try_get("created_at").map_err(map_err)?,
                    })
                })
                .transpose()
            }

            async fn purge_sessions(&self, now: i64) -> Result<u64> {
                Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected())
            }
        }

        #[async_trait]
        impl LedgerStore for $store {
            async fn ledger_size(&self) -> Result<u64> {
                let n: i64 = sqlx::query_scalar("SELECT tree_size FROM ledger_head WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                to_u64(n)
            }

            async fn leaf_hashes(&self, start: u64, end: u64) -> Result<Vec<[u8; 32]>> {
                let rows = sqlx::query(
                    "SELECT idx, leaf_hash FROM ledger_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                )
                .bind(to_i64(start)?)
                .bind(to_i64(end)?)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let mut out = Vec::with_capacity(rows.len());
                for (i, row) in rows.iter().enumerate() {
                    let idx = to_u64(row.try_get("idx").map_err(map_err)?)?;
                    if idx != start + i as u64 {
                        return Err(corrupt("ledger leaves are not dense"));
                    }
                    out.push(hash32(row.try_get("leaf_hash").map_err(map_err)?)?);
                }
                Ok(out)
            }

            async fn leaves(&self, start: u64, end: u64) -> Result<Vec<LeafRow>> {
                let rows = sqlx::query(
                    "SELECT idx, leaf_hash, leaf_input, created_at FROM ledger_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                )
                .bind(to_i64(start)?)
                .bind(to_i64(end)?)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map(Self::leaf_row).collect()
            }

            async fn subject_leaves(
                &self,
                account_id: &str,
                before: Option<u64>,
                limit: u32,
            ) -> Result<Vec<LeafRow>> {
                let before = match before {
                    Some(b) => to_i64(b)?,
                    None => i64::MAX,
                };
                let rows = sqlx::query(
                    "SELECT l.idx, l.leaf_hash, l.leaf_input, l.created_at FROM ledger_subjects s JOIN ledger_leaves l ON l.idx = s.idx WHERE s.account_id = $1 AND s.idx < $2 ORDER BY s.idx DESC LIMIT $3",
                )
                .bind(account_id)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map(Self::leaf_row).collect()
            }

            async fn put_sth(&self, sth: &SthRow) -> Result<()> {
                sqlx::query(
                    "INSERT INTO ledger_sths (tree_size, root_hash, timestamp, key_id, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING",
                )
                .bind(to_i64(sth.tree_size)?)
                .bind(&sth.root_hash)
                .bind(sth.timestamp)
                .bind(&sth.key_id)
                .bind(&sth.signature)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn latest_sth(&self) -> Result<Option<SthRow>> {
                let row = sqlx::query(
                    "SELECT tree_size, root_hash, timestamp, key_id, signature FROM ledger_sths ORDER BY tree_size DESC LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.map(|r| {
                    Ok(SthRow {
                        tree_size: to_u64(r.try_get("tree_size").map_err(map_err)?)?,
                        root_hash: r.try_get("root_hash").map_err(map_err)?,
                        timestamp: r.try_get("timestamp").map_err(map_err)?,
                        key_id: r.try_get("key_id").map_err(map_err)?,
                        signature: r.try_get("signature").map_err(map_err)?,
                    })
                })
                .transpose()
            }

            async fn expire_leaf_inputs(&self, before: i64) -> Result<u64> {
                Ok(sqlx::query(
                    "UPDATE ledger_leaves SET leaf_input = NULL WHERE created_at < $1 AND leaf_input IS NOT NULL",
                )
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected())
            }
        }

        #[async_trait]
        impl KeyStore for $store {
            async fn keys(&self, purpose: &str) -> Result<Vec<KeyRow>> {
                let rows = sqlx::query(
                    "SELECT name, purpose, kid, alg, secret, active, created_at FROM platform_keys WHERE purpose = $1 ORDER BY created_at, name",
                )
                .bind(purpose)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter()
                    .map(|r| {
                        Ok(KeyRow {
                            name: r.try_get("name").map_err(map_err)?,
                            purpose: r.try_get("purpose").map_err(map_err)?,
                            kid: r.try_get("kid").map_err(map_err)?,
                            alg: r.try_get("alg").map_err(map_err)?,
                            secret: r.try_get("secret").map_err(map_err)?,
                            active: r.try_get("active").map_err(map_err)?,
                            created_at: r.try_get("created_at").map_err(map_err)?,
                        })
                    })
                    .collect()
            }

            async fn insert_key_if_absent(&self, key: &KeyRow) -> Result<bool> {
                Ok(sqlx::query(
                    "INSERT INTO platform_keys (name, purpose, kid, alg, secret, active, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
                )
                .bind(&key.name)
                .bind(&key.purpose)
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.secret)
                .bind(key.active)
                .bind(key.created_at)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected()
                    == 1)
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn commit_batch(&self, commits: &[Commit]) -> Result<BatchOutcome> {
                let mut tx = self.pool.$begin($($begin_arg),*).await.map_err(map_err)?;
                let size: i64 = sqlx::query_scalar($head_sql)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let size_before = to_u64(size)?;
                let mut next = size_before;
                let mut results = Vec::with_capacity(commits.len());
                if let [commit] = commits {
                    // One commit: the transaction itself is its savepoint.
                    match Self::apply_commit(&mut tx, commit, next).await {
                        Ok(n) => {
                            results.push(Ok(Committed {
                                first_leaf: next,
                                leaf_count: n,
                            }));
                            next += n;
                        }
                        Err(e @ StoreError::Conflict(_)) => {
                            tx.rollback().await.map_err(map_err)?;
                            return Ok(BatchOutcome {
                                size_before,
                                size_after: size_before,
                                results: vec![Err(e)],
                            });
                        }
                        Err(e) => return Err(e),
                    }
                } else {
                    for commit in commits {
                        let mut sp = (&mut *tx).begin().await.map_err(map_err)?;
                        match Self::apply_commit(&mut sp, commit, next).await {
                            Ok(n) => {
                                sp.commit().await.map_err(map_err)?;
                                results.push(Ok(Committed {
                                    first_leaf: next,
                                    leaf_count: n,
                                }));
                                next += n;
                            }
                            Err(e @ StoreError::Conflict(_)) => {
                                sp.rollback().await.map_err(map_err)?;
                                results.push(Err(e));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                if next != size_before {
                    sqlx::query("UPDATE ledger_head SET tree_size = $1 WHERE id = 1")
                        .bind(to_i64(next)?)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(BatchOutcome {
                    size_before,
                    size_after: next,
                    results,
                })
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }
        }
    };
}

fn change_name(change: &Change) -> &'static str {
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

sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    "sqlite",
    begin_with("BEGIN IMMEDIATE"),
    "SELECT tree_size FROM ledger_head WHERE id = 1"
);

sql_store!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    "postgres",
    begin(),
    "SELECT tree_size FROM ledger_head WHERE id = 1 FOR UPDATE"
);
