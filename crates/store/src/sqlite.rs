//! The SQLite backend (sqlx): a WAL-mode file with `synchronous = FULL`. SQLite has one
//! writer at a time; `BEGIN IMMEDIATE` takes the write lock at the start of a batch, which
//! is also the ledger head lock.

use crate::common::*;
use crate::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Acquire, Row};
use std::path::Path;
use std::time::Duration;
use tsunagu_core::consent::ConsentStatus;
use tsunagu_core::identity::{AccountStatus, DeviceStatus, Level};
use tsunagu_core::service::{LegalBasis, ServiceStatus};

/// SQLite store.
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
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
        .foreign_keys(true)
        // Reads come from the kernel's page cache by mmap instead of a pread per page, and each
        // connection keeps 32 MiB of pages (the default is 2 MiB); see docs/PERFORMANCE.md.
        .pragma("mmap_size", "1073741824")
        .pragma("cache_size", "-32768");
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

/// Rows per multi-row INSERT on SQLite (4 parameters a row, well under its limit).
const SQLITE_ROWS_PER_INSERT: usize = 500;

/// `INSERT INTO {table} ({columns}) VALUES ($1, …), (…), …` for `rows` rows.
fn multi_row_insert(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + rows * columns * 6 + tail.len());
    sql.push_str(head);
    let mut n = 1;
    for r in 0..rows {
        sql.push_str(if r == 0 { " (" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&n.to_string());
            n += 1;
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

async fn bulk_insert_leaves(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    leaves: &LeafColumns,
) -> Result<()> {
    for start in (0..leaves.idx.len()).step_by(SQLITE_ROWS_PER_INSERT) {
        let end = (start + SQLITE_ROWS_PER_INSERT).min(leaves.idx.len());
        let sql = multi_row_insert(
            "INSERT INTO ledger_leaves (idx, leaf_hash, leaf_input, created_at) VALUES",
            4,
            end - start,
            "",
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in start..end {
            query = query
                .bind(leaves.idx[i])
                .bind(leaves.hash[i].as_slice())
                .bind(leaves.input[i].as_slice())
                .bind(leaves.created_at[i]);
        }
        query.execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

/// Writes a batch's bulk changes (see `common::is_bulk`), a multi-row INSERT per table.
async fn bulk_apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    bulk: &BulkColumns,
) -> Result<()> {
    for start in (0..bulk.jti_key.len()).step_by(SQLITE_ROWS_PER_INSERT) {
        let end = (start + SQLITE_ROWS_PER_INSERT).min(bulk.jti_key.len());
        let sql = multi_row_insert(
            "INSERT INTO nonces (nonce, purpose, expires_at) VALUES",
            3,
            end - start,
            "",
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in start..end {
            query = query
                .bind(&bulk.jti_key[i])
                .bind("jti")
                .bind(bulk.jti_expires_at[i]);
        }
        query.execute(&mut **tx).await.map_err(map_err)?;
    }
    for start in (0..bulk.link_sector.len()).step_by(SQLITE_ROWS_PER_INSERT) {
        let end = (start + SQLITE_ROWS_PER_INSERT).min(bulk.link_sector.len());
        let sql = multi_row_insert(
            "INSERT INTO subjects (sector, subject, account_id, created_at) VALUES",
            4,
            end - start,
            " ON CONFLICT DO NOTHING",
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in start..end {
            query = query
                .bind(&bulk.link_sector[i])
                .bind(&bulk.link_subject[i])
                .bind(&bulk.link_account_id[i])
                .bind(bulk.link_created_at[i]);
        }
        query.execute(&mut **tx).await.map_err(map_err)?;
    }
    let t = &bulk.tickets;
    for start in (0..t.len()).step_by(SQLITE_ROWS_PER_INSERT) {
        let end = (start + SQLITE_ROWS_PER_INSERT).min(t.len());
        let sql = multi_row_insert(
            &format!("{SQL_INSERT_TICKETS_HEAD} VALUES"),
            15,
            end - start,
            "",
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in start..end {
            query = query
                .bind(&t.id[i])
                .bind(&t.consumer_id[i])
                .bind(&t.provider_id[i])
                .bind(&t.account_id[i])
                .bind(&t.purpose_id[i])
                .bind(&t.items[i])
                .bind(&t.basis[i])
                .bind(&t.requester[i])
                .bind(&t.reason[i])
                .bind(t.issued_at[i])
                .bind(t.expires_at[i])
                .bind(&t.consumer_receipt[i])
                .bind(&t.provider_receipt[i])
                .bind(&t.state[i])
                .bind(t.updated_at[i]);
        }
        query.execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

async fn bulk_insert_subjects(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    subjects: &SubjectColumns,
) -> Result<()> {
    for start in (0..subjects.idx.len()).step_by(SQLITE_ROWS_PER_INSERT) {
        let end = (start + SQLITE_ROWS_PER_INSERT).min(subjects.idx.len());
        let sql = multi_row_insert(
            "INSERT INTO ledger_subjects (account_id, idx) VALUES",
            2,
            end - start,
            " ON CONFLICT DO NOTHING",
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in start..end {
            query = query
                .bind(subjects.account_id[i].as_str())
                .bind(subjects.idx[i]);
        }
        query.execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

impl SqliteStore {
    fn account_row(row: &sqlx::sqlite::SqliteRow) -> Result<AccountRow> {
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
            status: AccountStatus::parse(&status).ok_or_else(|| corrupt("account status"))?,
            attributes: row.try_get("attributes").map_err(map_err)?,
            card,
            version: row.try_get("version").map_err(map_err)?,
            created_at: row.try_get("created_at").map_err(map_err)?,
            updated_at: row.try_get("updated_at").map_err(map_err)?,
        })
    }

    fn device_row(row: &sqlx::sqlite::SqliteRow) -> Result<DeviceRow> {
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

    fn service_row(row: &sqlx::sqlite::SqliteRow) -> Result<ServiceRow> {
        let kind: String = row.try_get("kind").map_err(map_err)?;
        let status: String = row.try_get("status").map_err(map_err)?;
        Ok(ServiceRow {
            id: row.try_get("id").map_err(map_err)?,
            name: row.try_get("name").map_err(map_err)?,
            organization: row.try_get("organization").map_err(map_err)?,
            contact: row.try_get("contact").map_err(map_err)?,
            kind: parse_kind(&kind)?,
            status: ServiceStatus::parse(&status).ok_or_else(|| corrupt("service status"))?,
            application: row.try_get("application").map_err(map_err)?,
            jwks: row.try_get("jwks").map_err(map_err)?,
            endpoint: row.try_get("endpoint").map_err(map_err)?,
            lint: row.try_get("lint").map_err(map_err)?,
            round: row.try_get("round").map_err(map_err)?,
            created_at: row.try_get("created_at").map_err(map_err)?,
            updated_at: row.try_get("updated_at").map_err(map_err)?,
            client_secret_hash: row.try_get("client_secret_hash").map_err(map_err)?,
        })
    }

    fn purpose_row(row: &sqlx::sqlite::SqliteRow) -> Result<PurposeRow> {
        let basis: String = row.try_get("legal_basis").map_err(map_err)?;
        let items: String = row.try_get("items").map_err(map_err)?;
        Ok(PurposeRow {
            consumer_id: row.try_get("consumer_id").map_err(map_err)?,
            purpose_id: row.try_get("purpose_id").map_err(map_err)?,
            provider_id: row.try_get("provider_id").map_err(map_err)?,
            legal_basis: LegalBasis::parse(&basis).ok_or_else(|| corrupt("legal basis"))?,
            items: parse_items(&items)?,
            definition: row.try_get("definition").map_err(map_err)?,
            terms_sha256: row.try_get("terms_sha256").map_err(map_err)?,
        })
    }

    /// A consent row; `p` prefixes the column names (`c_` in the ticket context query).
    fn consent_row(row: &sqlx::sqlite::SqliteRow, p: &str) -> Result<ConsentRow> {
        let col = |name: &str| format!("{p}{name}");
        let status: String = row.try_get(col("status").as_str()).map_err(map_err)?;
        let items: String = row.try_get(col("items").as_str()).map_err(map_err)?;
        Ok(ConsentRow {
            id: row.try_get(col("id").as_str()).map_err(map_err)?,
            account_id: row.try_get(col("account_id").as_str()).map_err(map_err)?,
            consumer_id: row.try_get(col("consumer_id").as_str()).map_err(map_err)?,
            provider_id: row.try_get(col("provider_id").as_str()).map_err(map_err)?,
            purpose_id: row.try_get(col("purpose_id").as_str()).map_err(map_err)?,
            generation: row.try_get(col("generation").as_str()).map_err(map_err)?,
            items: parse_items(&items)?,
            expires_at: row.try_get(col("expires_at").as_str()).map_err(map_err)?,
            terms_sha256: row.try_get(col("terms_sha256").as_str()).map_err(map_err)?,
            status: ConsentStatus::parse(&status).ok_or_else(|| corrupt("consent status"))?,
            jws: row.try_get(col("jws").as_str()).map_err(map_err)?,
            device_id: row.try_get(col("device_id").as_str()).map_err(map_err)?,
            version: row.try_get(col("version").as_str()).map_err(map_err)?,
            created_at: row.try_get(col("created_at").as_str()).map_err(map_err)?,
            updated_at: row.try_get(col("updated_at").as_str()).map_err(map_err)?,
        })
    }

    fn consent_event_row(r: &sqlx::sqlite::SqliteRow) -> Result<ConsentEventRow> {
        let items: String = r.try_get("items").map_err(map_err)?;
        Ok(ConsentEventRow {
            seq: r.try_get("seq").map_err(map_err)?,
            consent_id: r.try_get("consent_id").map_err(map_err)?,
            account_id: r.try_get("account_id").map_err(map_err)?,
            consumer_id: r.try_get("consumer_id").map_err(map_err)?,
            provider_id: r.try_get("provider_id").map_err(map_err)?,
            purpose_id: r.try_get("purpose_id").map_err(map_err)?,
            status: r.try_get("status").map_err(map_err)?,
            items: parse_items(&items)?,
            expires_at: r.try_get("expires_at").map_err(map_err)?,
            created_at: r.try_get("created_at").map_err(map_err)?,
        })
    }

    fn ticket_row(row: &sqlx::sqlite::SqliteRow) -> Result<TicketRow> {
        let items: String = row.try_get("items").map_err(map_err)?;
        Ok(TicketRow {
            id: row.try_get("id").map_err(map_err)?,
            consumer_id: row.try_get("consumer_id").map_err(map_err)?,
            provider_id: row.try_get("provider_id").map_err(map_err)?,
            account_id: row.try_get("account_id").map_err(map_err)?,
            purpose_id: row.try_get("purpose_id").map_err(map_err)?,
            items: parse_items(&items)?,
            basis: row.try_get("basis").map_err(map_err)?,
            requester: row.try_get("requester").map_err(map_err)?,
            reason: row.try_get("reason").map_err(map_err)?,
            issued_at: row.try_get("issued_at").map_err(map_err)?,
            expires_at: row.try_get("expires_at").map_err(map_err)?,
            consumer_receipt: row.try_get("consumer_receipt").map_err(map_err)?,
            provider_receipt: row.try_get("provider_receipt").map_err(map_err)?,
            state: row.try_get("state").map_err(map_err)?,
            updated_at: row.try_get("updated_at").map_err(map_err)?,
        })
    }

    fn authz_request_row(row: &sqlx::sqlite::SqliteRow) -> Result<AuthzRequestRow> {
        Ok(AuthzRequestRow {
            id: row.try_get("id").map_err(map_err)?,
            client_id: row.try_get("client_id").map_err(map_err)?,
            params: row.try_get("params").map_err(map_err)?,
            pushed: row.try_get("pushed").map_err(map_err)?,
            login_nonce: row.try_get("login_nonce").map_err(map_err)?,
            expires_at: row.try_get("expires_at").map_err(map_err)?,
            created_at: row.try_get("created_at").map_err(map_err)?,
        })
    }

    /// A grant row; `p` prefixes the column names (`g_` when joined to a code or token).
    fn grant_row(row: &sqlx::sqlite::SqliteRow, p: &str) -> Result<GrantRow> {
        let col = |name: &str| format!("{p}{name}");
        let items: String = row.try_get(col("items").as_str()).map_err(map_err)?;
        Ok(GrantRow {
            id: row.try_get(col("id").as_str()).map_err(map_err)?,
            client_id: row.try_get(col("client_id").as_str()).map_err(map_err)?,
            account_id: row.try_get(col("account_id").as_str()).map_err(map_err)?,
            device_id: row.try_get(col("device_id").as_str()).map_err(map_err)?,
            scope: row.try_get(col("scope").as_str()).map_err(map_err)?,
            items: parse_items(&items)?,
            consent_id: row.try_get(col("consent_id").as_str()).map_err(map_err)?,
            auth_time: row.try_get(col("auth_time").as_str()).map_err(map_err)?,
            created_at: row.try_get(col("created_at").as_str()).map_err(map_err)?,
            revoked_at: row.try_get(col("revoked_at").as_str()).map_err(map_err)?,
            revoked_reason: row
                .try_get(col("revoked_reason").as_str())
                .map_err(map_err)?,
        })
    }

    fn code_row(row: &sqlx::sqlite::SqliteRow) -> Result<CodeRow> {
        Ok(CodeRow {
            code_hash: row.try_get("code_hash").map_err(map_err)?,
            grant_id: row.try_get("grant_id").map_err(map_err)?,
            redirect_uri: row.try_get("redirect_uri").map_err(map_err)?,
            code_challenge: row.try_get("code_challenge").map_err(map_err)?,
            nonce: row.try_get("nonce").map_err(map_err)?,
            dpop_jkt: row.try_get("dpop_jkt").map_err(map_err)?,
            expires_at: row.try_get("expires_at").map_err(map_err)?,
            used_at: row.try_get("used_at").map_err(map_err)?,
            created_at: row.try_get("created_at").map_err(map_err)?,
        })
    }

    fn oauth_token_row(row: &sqlx::sqlite::SqliteRow) -> Result<OauthTokenRow> {
        let kind: String = row.try_get("kind").map_err(map_err)?;
        Ok(OauthTokenRow {
            token_hash: row.try_get("token_hash").map_err(map_err)?,
            grant_id: row.try_get("grant_id").map_err(map_err)?,
            kind: TokenKind::parse(&kind).ok_or_else(|| corrupt("token kind"))?,
            scope: row.try_get("scope").map_err(map_err)?,
            dpop_jkt: row.try_get("dpop_jkt").map_err(map_err)?,
            expires_at: row.try_get("expires_at").map_err(map_err)?,
            used_at: row.try_get("used_at").map_err(map_err)?,
            created_at: row.try_get("created_at").map_err(map_err)?,
        })
    }

    fn leaf_row(row: &sqlx::sqlite::SqliteRow) -> Result<LeafRow> {
        Ok(LeafRow {
            index: to_u64(row.try_get("idx").map_err(map_err)?)?,
            hash: hash32(row.try_get("leaf_hash").map_err(map_err)?)?,
            input: row.try_get("leaf_input").map_err(map_err)?,
            created_at: row.try_get("created_at").map_err(map_err)?,
        })
    }

    async fn apply(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, change: &Change) -> Result<()> {
        let affected = match change {
            Change::InsertAccount(a) => {
                let card = a.card.as_ref();
                sqlx::query(SQL_INSERT_ACCOUNT)
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
            } => sqlx::query(SQL_UPDATE_ACCOUNT_PROOF)
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
            } => sqlx::query(SQL_SET_ACCOUNT_STATUS)
                .bind(to.as_str())
                .bind(updated_at)
                .bind(id)
                .bind(from.as_str())
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::InsertDevice(d) => sqlx::query(SQL_INSERT_DEVICE)
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
            Change::RevokeDevice { id, at } => sqlx::query(SQL_REVOKE_DEVICE)
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
            } => sqlx::query(SQL_SET_LOGIN_STATE)
                .bind(failures)
                .bind(locked_until)
                .bind(device_id)
                .bind(expected_failures)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::InsertSession(s) => sqlx::query(SQL_INSERT_SESSION)
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
                sqlx::query(SQL_DELETE_DEVICE_SESSIONS)
                    .bind(device_id)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
                return Ok(());
            }
            Change::InsertService(r) => sqlx::query(SQL_INSERT_SERVICE)
                .bind(&r.id)
                .bind(&r.name)
                .bind(&r.organization)
                .bind(&r.contact)
                .bind(r.kind.as_str())
                .bind(r.status.as_str())
                .bind(&r.application)
                .bind(&r.jwks)
                .bind(&r.endpoint)
                .bind(&r.lint)
                .bind(r.round)
                .bind(r.created_at)
                .bind(r.updated_at)
                .bind(&r.client_secret_hash)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::InsertPurpose(r) => sqlx::query(SQL_INSERT_PURPOSE)
                .bind(&r.consumer_id)
                .bind(&r.purpose_id)
                .bind(&r.provider_id)
                .bind(r.legal_basis.as_str())
                .bind(items_json(&r.items))
                .bind(&r.definition)
                .bind(&r.terms_sha256)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::InsertVote(r) => sqlx::query(SQL_INSERT_VOTE)
                .bind(&r.member_id)
                .bind(&r.nonce)
                .bind(&r.service_id)
                .bind(r.round)
                .bind(&r.decision)
                .bind(&r.comment)
                .bind(r.issued_at)
                .bind(&r.jws)
                .bind(r.created_at)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::SetServiceStatus {
                id,
                from,
                to,
                round,
                updated_at,
            } => sqlx::query(SQL_SET_SERVICE_STATUS)
                .bind(to.as_str())
                .bind(updated_at)
                .bind(id)
                .bind(from.as_str())
                .bind(round)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::InsertConsent(r) => sqlx::query(SQL_INSERT_CONSENT)
                .bind(&r.id)
                .bind(&r.account_id)
                .bind(&r.consumer_id)
                .bind(&r.provider_id)
                .bind(&r.purpose_id)
                .bind(r.generation)
                .bind(items_json(&r.items))
                .bind(r.expires_at)
                .bind(&r.terms_sha256)
                .bind(r.status.as_str())
                .bind(&r.jws)
                .bind(&r.device_id)
                .bind(r.version)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::SetConsentStatus {
                id,
                from,
                to,
                updated_at,
            } => sqlx::query(SQL_SET_CONSENT_STATUS)
                .bind(to.as_str())
                .bind(updated_at)
                .bind(id)
                .bind(from.as_str())
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::SetConsentExpiry {
                id,
                expected_version,
                expires_at,
                updated_at,
            } => sqlx::query(SQL_SET_CONSENT_EXPIRY)
                .bind(expires_at)
                .bind(updated_at)
                .bind(id)
                .bind(expected_version)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::InsertConsentChange {
                consent_id,
                action,
                expires_at,
                jws,
                created_at,
            } => sqlx::query(SQL_INSERT_CONSENT_CHANGE)
                .bind(consent_id)
                .bind(action)
                .bind(expires_at)
                .bind(jws)
                .bind(created_at)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::InsertConsentEvent(r) => sqlx::query(SQL_INSERT_CONSENT_EVENT)
                .bind(&r.consent_id)
                .bind(&r.account_id)
                .bind(&r.consumer_id)
                .bind(&r.provider_id)
                .bind(&r.purpose_id)
                .bind(&r.status)
                .bind(items_json(&r.items))
                .bind(r.expires_at)
                .bind(r.created_at)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::UseResidentNonce {
                account_id,
                nonce,
                expires_at,
            } => sqlx::query(SQL_USE_RESIDENT_NONCE)
                .bind(account_id)
                .bind(nonce)
                .bind(expires_at)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::LinkSubject {
                sector,
                subject,
                account_id,
                created_at,
            } => {
                sqlx::query(SQL_LINK_SUBJECT)
                    .bind(sector)
                    .bind(subject)
                    .bind(account_id)
                    .bind(created_at)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
                return Ok(());
            }
            Change::UseJti { key, expires_at } => sqlx::query(SQL_PUT_NONCE)
                .bind(key)
                .bind("jti")
                .bind(expires_at)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::InsertTicket(r) => sqlx::query(SQL_INSERT_TICKET)
                .bind(&r.id)
                .bind(&r.consumer_id)
                .bind(&r.provider_id)
                .bind(&r.account_id)
                .bind(&r.purpose_id)
                .bind(items_json(&r.items))
                .bind(&r.basis)
                .bind(&r.requester)
                .bind(&r.reason)
                .bind(r.issued_at)
                .bind(r.expires_at)
                .bind(&r.consumer_receipt)
                .bind(&r.provider_receipt)
                .bind(&r.state)
                .bind(r.updated_at)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::SetReceipt {
                ticket_id,
                side,
                payload_sha256,
                updated_at,
            } => sqlx::query(match side {
                ReceiptSide::Consumer => SQL_SET_CONSUMER_RECEIPT,
                ReceiptSide::Provider => SQL_SET_PROVIDER_RECEIPT,
            })
            .bind(payload_sha256)
            .bind(updated_at)
            .bind(ticket_id)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?
            .rows_affected(),
            Change::CloseTicket {
                ticket_id,
                state,
                updated_at,
            } => sqlx::query(SQL_CLOSE_TICKET)
                .bind(state)
                .bind(updated_at)
                .bind(ticket_id)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::InsertAlert(r) => sqlx::query(SQL_INSERT_ALERT)
                .bind(&r.kind)
                .bind(&r.service_id)
                .bind(&r.detail)
                .bind(r.created_at)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::InsertAuthzRequest(r) => sqlx::query(SQL_INSERT_AUTHZ_REQUEST)
                .bind(&r.id)
                .bind(&r.client_id)
                .bind(&r.params)
                .bind(r.pushed)
                .bind(&r.login_nonce)
                .bind(r.expires_at)
                .bind(r.created_at)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::SetAuthzLoginNonce { id, login_nonce } => {
                sqlx::query(SQL_SET_AUTHZ_LOGIN_NONCE)
                    .bind(login_nonce)
                    .bind(id)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected()
            }
            Change::DeleteAuthzRequest { id } => {
                sqlx::query(SQL_DELETE_AUTHZ_REQUEST)
                    .bind(id)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
                return Ok(());
            }
            Change::InsertGrant(r) => sqlx::query(SQL_INSERT_GRANT)
                .bind(&r.id)
                .bind(&r.client_id)
                .bind(&r.account_id)
                .bind(&r.device_id)
                .bind(&r.scope)
                .bind(items_json(&r.items))
                .bind(&r.consent_id)
                .bind(r.auth_time)
                .bind(r.created_at)
                .bind(r.revoked_at)
                .bind(&r.revoked_reason)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::RevokeGrant { id, reason, at } => sqlx::query(SQL_REVOKE_GRANT)
                .bind(at)
                .bind(reason)
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::InsertCode(r) => sqlx::query(SQL_INSERT_CODE)
                .bind(&r.code_hash)
                .bind(&r.grant_id)
                .bind(&r.redirect_uri)
                .bind(&r.code_challenge)
                .bind(&r.nonce)
                .bind(&r.dpop_jkt)
                .bind(r.expires_at)
                .bind(r.used_at)
                .bind(r.created_at)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::UseCode { code_hash, at } => sqlx::query(SQL_USE_CODE)
                .bind(at)
                .bind(code_hash)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::InsertOauthToken(r) => sqlx::query(SQL_INSERT_OAUTH_TOKEN)
                .bind(&r.token_hash)
                .bind(&r.grant_id)
                .bind(r.kind.as_str())
                .bind(&r.scope)
                .bind(&r.dpop_jkt)
                .bind(r.expires_at)
                .bind(r.used_at)
                .bind(r.created_at)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::UseRefreshToken { token_hash, at } => sqlx::query(SQL_USE_REFRESH_TOKEN)
                .bind(at)
                .bind(token_hash)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::SetClientSecret {
                service_id,
                secret_hash,
                updated_at,
            } => sqlx::query(SQL_SET_CLIENT_SECRET)
                .bind(secret_hash)
                .bind(updated_at)
                .bind(service_id)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::UpdateServiceRegistration {
                id,
                application,
                jwks,
                endpoint,
                updated_at,
            } => sqlx::query(SQL_UPDATE_SERVICE_REGISTRATION)
                .bind(application)
                .bind(jwks)
                .bind(endpoint)
                .bind(updated_at)
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected(),
            Change::DeleteSession { token_hash } => {
                sqlx::query(SQL_DELETE_SESSION)
                    .bind(token_hash)
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

    async fn head(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>) -> Result<u64> {
        let size: i64 = sqlx::query_scalar(SQL_LEDGER_SIZE)
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?;
        to_u64(size)
    }

    async fn finish(
        mut tx: sqlx::Transaction<'_, sqlx::Sqlite>,
        size_before: u64,
        size_after: u64,
    ) -> Result<()> {
        if size_after != size_before {
            sqlx::query(SQL_SET_HEAD)
                .bind(to_i64(size_after)?)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    /// The batch again with each commit in its own savepoint, so a refused commit
    /// undoes only itself.
    async fn commit_batch_isolated(&self, commits: &[Commit]) -> Result<BatchOutcome> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let size_before = Self::head(&mut tx).await?;
        let mut next = size_before;
        let mut results = Vec::with_capacity(commits.len());
        for commit in commits {
            let mut sp = (&mut *tx).begin().await.map_err(map_err)?;
            let applied = match Self::apply_changes(&mut sp, commit, false).await {
                Ok(()) => Self::insert_leaves(&mut sp, std::iter::once(commit), next).await,
                Err(e) => Err(e),
            };
            match applied {
                Ok(()) => {
                    sp.commit().await.map_err(map_err)?;
                    let count = commit.leaves.len() as u64;
                    results.push(Ok(Committed {
                        first_leaf: next,
                        leaf_count: count,
                    }));
                    next += count;
                }
                Err(e @ StoreError::Conflict(_)) => {
                    sp.rollback().await.map_err(map_err)?;
                    results.push(Err(e));
                }
                Err(e) => return Err(e),
            }
        }
        Self::finish(tx, size_before, next).await?;
        Ok(BatchOutcome {
            size_before,
            size_after: next,
            results,
        })
    }

    /// Applies a commit's changes in order; with `skip_bulk`, leaves out those the caller
    /// writes in bulk afterwards.
    async fn apply_changes(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        commit: &Commit,
        skip_bulk: bool,
    ) -> Result<()> {
        for change in &commit.changes {
            if !(skip_bulk && is_bulk(change)) {
                Self::apply(tx, change).await?;
            }
        }
        Ok(())
    }

    /// Inserts the leaves (and their subjects) of `commits`, numbered from `first`.
    async fn insert_leaves<'c>(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        commits: impl Iterator<Item = &'c Commit>,
        first: u64,
    ) -> Result<()> {
        let (leaves, subjects) = LeafColumns::of(commits, first)?;
        bulk_insert_leaves(tx, &leaves).await?;
        bulk_insert_subjects(tx, &subjects).await
    }
}

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn account(&self, id: &str) -> Result<Option<AccountRow>> {
        let row = sqlx::query(SQL_ACCOUNT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(Self::account_row).transpose()
    }

    async fn account_by_card(&self, binding: &str) -> Result<Option<AccountRow>> {
        let row = sqlx::query(SQL_ACCOUNT_BY_CARD)
            .bind(binding)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(Self::account_row).transpose()
    }

    async fn accounts_with_card(&self, issuer: &[u8], serial: &[u8]) -> Result<Vec<AccountRow>> {
        let rows = sqlx::query(SQL_ACCOUNTS_WITH_CARD)
            .bind(serial)
            .bind(issuer)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(Self::account_row).collect()
    }

    async fn device(&self, id: &str) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(SQL_DEVICE_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(Self::device_row).transpose()
    }

    async fn device_by_jkt(&self, jkt: &str) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(SQL_DEVICE_BY_JKT)
            .bind(jkt)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(Self::device_row).transpose()
    }

    async fn devices_of(&self, account_id: &str) -> Result<Vec<DeviceRow>> {
        let rows = sqlx::query(SQL_DEVICES_OF)
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
impl NonceStore for SqliteStore {
    async fn put_nonce(&self, nonce: &str, purpose: &str, expires_at: i64) -> Result<()> {
        sqlx::query(SQL_PUT_NONCE)
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
        let deleted = sqlx::query(SQL_TAKE_NONCE)
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
        Ok(sqlx::query(SQL_PURGE_NONCES)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected())
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>> {
        let row = sqlx::query(SQL_SESSION)
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
        Ok(sqlx::query(SQL_PURGE_SESSIONS)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected())
    }
}

#[async_trait]
impl LedgerStore for SqliteStore {
    async fn ledger_size(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(SQL_LEDGER_SIZE)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        to_u64(n)
    }

    async fn leaf_hashes(&self, start: u64, end: u64) -> Result<Vec<[u8; 32]>> {
        let rows = sqlx::query(SQL_LEAF_HASHES)
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
        let rows = sqlx::query(SQL_LEAVES)
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
        let rows = sqlx::query(SQL_SUBJECT_LEAVES)
            .bind(account_id)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(Self::leaf_row).collect()
    }

    async fn put_sth(&self, sth: &SthRow) -> Result<()> {
        sqlx::query(SQL_PUT_STH)
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
        let row = sqlx::query(SQL_LATEST_STH)
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
        Ok(sqlx::query(SQL_EXPIRE_LEAF_INPUTS)
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected())
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn keys(&self, purpose: &str) -> Result<Vec<KeyRow>> {
        let rows = sqlx::query(SQL_KEYS)
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
        Ok(sqlx::query(SQL_INSERT_KEY)
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
impl ServiceStore for SqliteStore {
    async fn service(&self, id: &str) -> Result<Option<ServiceRow>> {
        let row = sqlx::query(SQL_SERVICE_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(Self::service_row).transpose()
    }

    async fn services(&self, status: Option<ServiceStatus>) -> Result<Vec<ServiceRow>> {
        let rows = match status {
            Some(status) => sqlx::query(SQL_SERVICES_BY_STATUS).bind(status.as_str()),
            None => sqlx::query(SQL_SERVICES_ALL),
        }
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(Self::service_row).collect()
    }

    async fn purpose(&self, consumer_id: &str, purpose_id: &str) -> Result<Option<PurposeRow>> {
        let row = sqlx::query(SQL_PURPOSE)
            .bind(consumer_id)
            .bind(purpose_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(Self::purpose_row).transpose()
    }

    async fn all_purposes(&self) -> Result<Vec<PurposeRow>> {
        let rows = sqlx::query(SQL_ALL_PURPOSES)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(Self::purpose_row).collect()
    }

    async fn purposes_of(&self, consumer_id: &str) -> Result<Vec<PurposeRow>> {
        let rows = sqlx::query(SQL_PURPOSES_OF)
            .bind(consumer_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(Self::purpose_row).collect()
    }

    async fn votes(&self, service_id: &str, round: i64) -> Result<Vec<VoteRow>> {
        let rows = sqlx::query(SQL_VOTES)
            .bind(service_id)
            .bind(round)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(VoteRow {
                    member_id: r.try_get("member_id").map_err(map_err)?,
                    nonce: r.try_get("nonce").map_err(map_err)?,
                    service_id: r.try_get("service_id").map_err(map_err)?,
                    round: r.try_get("round").map_err(map_err)?,
                    decision: r.try_get("decision").map_err(map_err)?,
                    comment: r.try_get("comment").map_err(map_err)?,
                    issued_at: r.try_get("issued_at").map_err(map_err)?,
                    jws: r.try_get("jws").map_err(map_err)?,
                    created_at: r.try_get("created_at").map_err(map_err)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn consent(&self, id: &str) -> Result<Option<ConsentRow>> {
        let row = sqlx::query(SQL_CONSENT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(|r| Self::consent_row(r, "")).transpose()
    }

    async fn consents_of(&self, account_id: &str) -> Result<Vec<ConsentRow>> {
        let rows = sqlx::query(SQL_CONSENTS_OF)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| Self::consent_row(r, "")).collect()
    }

    async fn latest_consent(
        &self,
        account_id: &str,
        consumer_id: &str,
        purpose_id: &str,
    ) -> Result<Option<ConsentRow>> {
        let row = sqlx::query(SQL_LATEST_CONSENT)
            .bind(account_id)
            .bind(consumer_id)
            .bind(purpose_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(|r| Self::consent_row(r, "")).transpose()
    }

    async fn consent_events(
        &self,
        service_id: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<ConsentEventRow>> {
        let rows = sqlx::query(SQL_CONSENT_EVENTS)
            .bind(service_id)
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(Self::consent_event_row).collect()
    }

    async fn consent_history(&self, consent_id: &str) -> Result<Vec<ConsentEventRow>> {
        let rows = sqlx::query(SQL_CONSENT_HISTORY)
            .bind(consent_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(Self::consent_event_row).collect()
    }

    async fn due_expirations(&self, now: i64, limit: u32) -> Result<Vec<ConsentRow>> {
        let rows = sqlx::query(SQL_DUE_EXPIRATIONS)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| Self::consent_row(r, "")).collect()
    }

    async fn purge_resident_nonces(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query(SQL_PURGE_RESIDENT_NONCES)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected())
    }
}

#[async_trait]
impl ExchangeStore for SqliteStore {
    async fn account_for_subject(&self, sector: &str, subject: &str) -> Result<Option<String>> {
        let row = sqlx::query(SQL_ACCOUNT_FOR_SUBJECT)
            .bind(sector)
            .bind(subject)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|r| r.try_get("account_id").map_err(map_err))
            .transpose()
    }

    async fn ticket_context(
        &self,
        consumer_id: &str,
        provider_id: &str,
        purpose_id: &str,
        subject: &str,
    ) -> Result<Option<TicketContext>> {
        let row = sqlx::query(SQL_TICKET_CONTEXT)
            .bind(consumer_id)
            .bind(purpose_id)
            .bind(subject)
            .bind(provider_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let consumer: String = row.try_get("consumer_status").map_err(map_err)?;
        let provider: Option<String> = row.try_get("provider_status").map_err(map_err)?;
        let account_id: Option<String> = row.try_get("account_id").map_err(map_err)?;
        let consent_id: Option<String> = row.try_get("c_id").map_err(map_err)?;
        let resident = match account_id {
            Some(account_id) => {
                let level: String = row.try_get("account_level").map_err(map_err)?;
                let status: String = row.try_get("account_status").map_err(map_err)?;
                Some(ResidentRow {
                    account_id,
                    level: Level::parse(&level).ok_or_else(|| corrupt("account level"))?,
                    status: AccountStatus::parse(&status)
                        .ok_or_else(|| corrupt("account status"))?,
                })
            }
            None => None,
        };
        Ok(Some(TicketContext {
            consumer_status: ServiceStatus::parse(&consumer)
                .ok_or_else(|| corrupt("service status"))?,
            provider_status: provider
                .map(|p| ServiceStatus::parse(&p).ok_or_else(|| corrupt("service status")))
                .transpose()?,
            resident,
            consent: match consent_id {
                Some(_) => Some(Self::consent_row(&row, "c_")?),
                None => None,
            },
        }))
    }

    async fn ticket(&self, id: &str) -> Result<Option<TicketRow>> {
        let row = sqlx::query(SQL_TICKET_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(Self::ticket_row).transpose()
    }

    async fn overdue_tickets(&self, before: i64, limit: u32) -> Result<Vec<TicketRow>> {
        let rows = sqlx::query(SQL_OVERDUE_TICKETS)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(Self::ticket_row).collect()
    }

    async fn tickets_of(&self, account_id: &str, limit: u32) -> Result<Vec<TicketRow>> {
        let rows = sqlx::query(SQL_TICKETS_OF)
            .bind(account_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(Self::ticket_row).collect()
    }

    async fn alerts(&self, since: i64, limit: u32) -> Result<Vec<AlertRow>> {
        let rows = sqlx::query(SQL_ALERTS)
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(AlertRow {
                    seq: r.try_get("seq").map_err(map_err)?,
                    kind: r.try_get("kind").map_err(map_err)?,
                    service_id: r.try_get("service_id").map_err(map_err)?,
                    detail: r.try_get("detail").map_err(map_err)?,
                    created_at: r.try_get("created_at").map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn ticket_counts(&self, service_id: &str) -> Result<Vec<(String, String, u64)>> {
        let rows = sqlx::query(SQL_TICKET_COUNTS)
            .bind(service_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("role").map_err(map_err)?,
                    r.try_get("state").map_err(map_err)?,
                    to_u64(r.try_get("n").map_err(map_err)?)?,
                ))
            })
            .collect()
    }
}

#[async_trait]
impl OidcStore for SqliteStore {
    async fn authz_request(&self, id: &str) -> Result<Option<AuthzRequestRow>> {
        let row = sqlx::query(SQL_AUTHZ_REQUEST_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(Self::authz_request_row).transpose()
    }

    async fn authz_request_by_login_nonce(&self, nonce: &str) -> Result<Option<AuthzRequestRow>> {
        let row = sqlx::query(SQL_AUTHZ_REQUEST_BY_LOGIN_NONCE)
            .bind(nonce)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(Self::authz_request_row).transpose()
    }

    async fn grant(&self, id: &str) -> Result<Option<GrantRow>> {
        let row = sqlx::query(SQL_GRANT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(|r| Self::grant_row(r, "")).transpose()
    }

    async fn code(&self, code_hash: &str) -> Result<Option<(CodeRow, GrantRow)>> {
        let row = sqlx::query(SQL_CODE)
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref()
            .map(|r| Ok((Self::code_row(r)?, Self::grant_row(r, "g_")?)))
            .transpose()
    }

    async fn oauth_token(&self, token_hash: &str) -> Result<Option<(OauthTokenRow, GrantRow)>> {
        let row = sqlx::query(SQL_OAUTH_TOKEN)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref()
            .map(|r| Ok((Self::oauth_token_row(r)?, Self::grant_row(r, "g_")?)))
            .transpose()
    }

    async fn grants_of(&self, account_id: &str, limit: u32) -> Result<Vec<GrantRow>> {
        let rows = sqlx::query(SQL_GRANTS_OF)
            .bind(account_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| Self::grant_row(r, "")).collect()
    }

    async fn count_active_grants(&self, client_id: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(SQL_COUNT_ACTIVE_GRANTS)
            .bind(client_id)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        to_u64(n)
    }

    async fn purge_oidc(&self, now: i64) -> Result<u64> {
        let mut deleted = 0;
        let retained = now.saturating_sub(OIDC_RETENTION_SECS);
        for (sql, before) in [
            (SQL_PURGE_AUTHZ_REQUESTS, now),
            (SQL_PURGE_CODES, retained),
            (SQL_PURGE_OAUTH_TOKENS, retained),
        ] {
            deleted += sqlx::query(sql)
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
        }
        Ok(deleted)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn commit_batch(&self, commits: &[Commit]) -> Result<BatchOutcome> {
        // Optimistically, every commit applies: no savepoints, leaves in bulk.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let size_before = Self::head(&mut tx).await?;

        let mut conflict = None;
        for commit in commits {
            match Self::apply_changes(&mut tx, commit, true).await {
                Ok(()) => {}
                Err(e @ StoreError::Conflict(_)) => {
                    conflict = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if conflict.is_none() {
            match bulk_apply(&mut tx, &BulkColumns::of(commits.iter())).await {
                Ok(()) => {}
                Err(e @ StoreError::Conflict(_)) => conflict = Some(e),
                Err(e) => return Err(e),
            }
        }
        match conflict {
            None => {
                Self::insert_leaves(&mut tx, commits.iter(), size_before).await?;
                let (results, next) = placements(commits, size_before);
                Self::finish(tx, size_before, next).await?;
                Ok(BatchOutcome {
                    size_before,
                    size_after: next,
                    results,
                })
            }
            Some(e) if commits.len() == 1 => {
                tx.rollback().await.map_err(map_err)?;
                Ok(BatchOutcome {
                    size_before,
                    size_after: size_before,
                    results: vec![Err(e)],
                })
            }
            Some(_) => {
                // Some commit was refused: start again, each commit in a savepoint.
                tx.rollback().await.map_err(map_err)?;
                self.commit_batch_isolated(commits).await
            }
        }
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
