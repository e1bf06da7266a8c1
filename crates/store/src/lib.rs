//! # tsunagu-store
//!
//! Persistence behind one trait per aggregate, written once over a small neutral layer
//! ([`sql`]: parameters, rows, a connection) and run on two backends proven by one test
//! suite: SQLite (the embedded default, a file in the data directory) and PostgreSQL (for
//! production, shared by any number of stateless server replicas). Each backend keeps only
//! its connections, parameter binding, bulk inserts and migrations' SQL.
//!
//! Every database connection lives on a thread of its own ([`Database`]); a read, or a whole
//! commit batch with all its statements, is one hand-off to such a thread.
//!
//! Reads go through the aggregate traits. Every write that must be recorded in the
//! transparency ledger goes through [`Store::commit_batch`]: the changes and their ledger
//! leaves are applied in one database transaction that also assigns the leaves their
//! indices under the ledger head lock, so a change and its leaf are durable together or not
//! at all, and leaf indices are dense and ordered across replicas. Several commits share one
//! transaction (group commit); a refused commit is undone alone.
//!
//! A change is any type implementing [`Change`]: each aggregate has its own change enum
//! ([`IdentityChange`], [`ServiceChange`], [`ConsentChange`], [`ExchangeChange`],
//! [`OidcChange`]), and a capability crate adds its own the same way, with its tables
//! created by its own [`Migrations`].
//!
//! Invariant: no business rules here. Conditional writes are compare-and-set on values the
//! caller read; the caller decides and retries.

mod commit;
mod consents;
mod exchange;
mod identity;
mod ledger;
mod migrate;
mod oidc;
mod pool;
mod postgres;
mod services;
mod snapshot;
pub mod sql;
mod sqlite;

pub use commit::{AnyChange, BatchOutcome, Change, Commit, Committed, NewLeaf};
pub use consents::{ConsentChange, ConsentEventRow, ConsentRow};
pub use exchange::{AlertRow, ExchangeChange, ReceiptSide, ResidentRow, TicketContext, TicketRow};
pub use identity::{AccountRow, CardRef, DeviceRow, IdentityChange, SessionRow, UvCredential};
pub use ledger::{KeyChange, KeyRow, LeafRow, SthRow};
pub use migrate::{Migration, Migrations, PLATFORM};
pub use oidc::{AuthzRequestRow, CodeRow, GrantRow, OauthTokenRow, OidcChange, TokenKind};
pub use pool::Database;
pub use services::{PurposeRow, ServiceChange, ServiceRow, VoteRow};
pub use snapshot::{ExportSink, ImportSource, Layout, TableLayout, foreign_key_order};
pub use sql::Dialect;

use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tsunagu_core::service::ServiceStatus;
use tsunagu_core::ticket::TicketState;
use tsunagu_core::{
    AccountId, ConsentId, DeviceId, GrantId, PairwiseId, PurposeId, RequestId, ServiceId, TicketId,
};

/// Errors of the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness or compare-and-set precondition failed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database could not be reached or timed out.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be read back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(String),
    /// What was asked cannot be done to this database or with this input (a restore into a
    /// database that is not empty, rows its schema refuses); the message says why.
    #[error("{0}")]
    Refused(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Accounts and their device credentials.
#[async_trait]
pub trait IdentityStore {
    async fn account(&self, id: &AccountId) -> Result<Option<AccountRow>>;
    async fn account_by_card(&self, binding: &str) -> Result<Option<AccountRow>>;
    /// Accounts proofed with the certificate of this issuer (DER name) and serial.
    async fn accounts_with_card(&self, issuer: &[u8], serial: &[u8]) -> Result<Vec<AccountRow>>;
    async fn device(&self, id: &DeviceId) -> Result<Option<DeviceRow>>;
    async fn device_by_jkt(&self, jkt: &str) -> Result<Option<DeviceRow>>;
    async fn devices_of(&self, account_id: &AccountId) -> Result<Vec<DeviceRow>>;
    async fn count_accounts(&self) -> Result<u64>;
}

/// Single-use, short-lived nonces.
#[async_trait]
pub trait NonceStore {
    async fn put_nonce(&self, nonce: &str, purpose: &str, expires_at: i64) -> Result<()>;
    /// Consumes the nonce if it exists for this purpose and has not expired at `now`.
    /// Returns whether it was valid. A nonce is consumed at most once, across replicas.
    async fn take_nonce(&self, nonce: &str, purpose: &str, now: i64) -> Result<bool>;
    /// Whether the nonce exists for this purpose and has not expired at `now`, without
    /// consuming it (a console session lives as long as its row).
    async fn nonce_live(&self, nonce: &str, purpose: &str, now: i64) -> Result<bool>;
    async fn purge_nonces(&self, now: i64) -> Result<u64>;
    /// Counts one failed login of the device, atomically (concurrent failures all count,
    /// across replicas), and returns the count now. `None` when there is no such device.
    async fn count_login_failure(&self, device_id: &DeviceId) -> Result<Option<i64>>;
}

/// Bearer sessions (inserted through commits, together with the login's leaf).
#[async_trait]
pub trait SessionStore {
    async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>>;
    async fn purge_sessions(&self, now: i64) -> Result<u64>;
}

/// The ledger's stored leaves, subjects and signed tree heads.
#[async_trait]
pub trait LedgerStore {
    async fn ledger_size(&self) -> Result<u64>;
    /// Leaf hashes `[start, end)`, in order.
    async fn leaf_hashes(&self, start: u64, end: u64) -> Result<Vec<[u8; 32]>>;
    /// Leaves `[start, end)`, in order.
    async fn leaves(&self, start: u64, end: u64) -> Result<Vec<LeafRow>>;
    /// The leaves about an account, newest first, below `before` (exclusive) if given.
    async fn subject_leaves(
        &self,
        account_id: &AccountId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<LeafRow>>;
    async fn put_sth(&self, sth: &SthRow) -> Result<()>;
    async fn latest_sth(&self) -> Result<Option<SthRow>>;
    /// Deletes the content of leaves created before `before`, keeping their hashes.
    /// Blanks the contents of leaves created before `before`, except the leaves at `keep`
    /// (announcements that carry no personal data and that auditors must read forever, such
    /// as tree-head key changes). Answers how many were blanked.
    async fn expire_leaf_inputs(&self, before: i64, keep: &[u64]) -> Result<u64>;
}

/// The platform's own keys, sealed by the keyring.
#[async_trait]
pub trait KeyStore {
    async fn keys(&self, purpose: &str) -> Result<Vec<KeyRow>>;
    /// Inserts a key unless one with this name exists. Returns whether it was inserted.
    async fn insert_key_if_absent(&self, key: &KeyRow) -> Result<bool>;
    /// Every key of every purpose, oldest first.
    async fn all_keys(&self) -> Result<Vec<KeyRow>>;
    /// Records a ledger key's announcement (the handover tree head) once.
    async fn set_key_announcement(&self, name: &str, announcement: &str) -> Result<bool>;
    /// Replaces a key's sealed secret if it is still `old` (a re-seal pass).
    async fn reseal_key(&self, name: &str, old: &[u8], new: &[u8]) -> Result<bool>;
    /// Accounts with sealed attributes, by id, after `after`: `(id, sealed)`.
    async fn sealed_attributes(
        &self,
        after: Option<&AccountId>,
        limit: u32,
    ) -> Result<Vec<(AccountId, Vec<u8>)>>;
    /// Replaces an account's sealed attributes if they are still `old` (a re-seal pass; the
    /// plaintext is unchanged, so the account's version is not).
    async fn reseal_attributes(&self, id: &AccountId, old: &[u8], new: &[u8]) -> Result<bool>;
}

/// Services, their purposes and the committee's votes.
#[async_trait]
pub trait ServiceStore {
    async fn service(&self, id: &ServiceId) -> Result<Option<ServiceRow>>;
    /// The service that registered the client certificate with this `x5t#S256`.
    async fn service_by_client_cert(&self, x5t_s256: &str) -> Result<Option<ServiceId>>;
    /// All services, or those in one status; newest first.
    async fn services(&self, status: Option<ServiceStatus>) -> Result<Vec<ServiceRow>>;
    async fn purpose(
        &self,
        consumer_id: &ServiceId,
        purpose_id: &PurposeId,
    ) -> Result<Option<PurposeRow>>;
    /// Every purpose of every service.
    async fn all_purposes(&self) -> Result<Vec<PurposeRow>>;
    async fn purposes_of(&self, consumer_id: &ServiceId) -> Result<Vec<PurposeRow>>;
    /// Votes on a service in one round, in the order they were cast.
    async fn votes(&self, service_id: &ServiceId, round: i64) -> Result<Vec<VoteRow>>;
}

/// Consents, their changes and the feed.
#[async_trait]
pub trait ConsentStore {
    async fn consent(&self, id: &ConsentId) -> Result<Option<ConsentRow>>;
    /// A resident's consents, newest first.
    async fn consents_of(&self, account_id: &AccountId) -> Result<Vec<ConsentRow>>;
    /// The newest consent to this purpose (the highest generation).
    async fn latest_consent(
        &self,
        account_id: &AccountId,
        consumer_id: &ServiceId,
        purpose_id: &PurposeId,
    ) -> Result<Option<ConsentRow>>;
    /// Feed entries where the service is the consumer or the provider, after `since`.
    async fn consent_events(
        &self,
        service_id: &ServiceId,
        since: i64,
        limit: u32,
    ) -> Result<Vec<ConsentEventRow>>;
    /// The feed entries of one consent, oldest first (for its receipt).
    async fn consent_history(&self, consent_id: &ConsentId) -> Result<Vec<ConsentEventRow>>;
    /// Active consents whose expiry has passed.
    async fn due_expirations(&self, now: i64, limit: u32) -> Result<Vec<ConsentRow>>;
    async fn purge_resident_nonces(&self, now: i64) -> Result<u64>;
}

/// Pairwise subjects, tickets, receipts and alerts.
#[async_trait]
pub trait ExchangeStore {
    /// The account behind a pairwise subject in a sector.
    async fn account_for_subject(
        &self,
        sector: &ServiceId,
        subject: &PairwiseId,
    ) -> Result<Option<AccountId>>;
    /// The statuses of both services, the resident behind `subject` at `consumer_id`, and
    /// their latest consent to the consumer's purpose, in one query. `None` when the
    /// consumer is unknown.
    async fn ticket_context(
        &self,
        consumer_id: &ServiceId,
        provider_id: &ServiceId,
        purpose_id: &PurposeId,
        subject: &PairwiseId,
    ) -> Result<Option<TicketContext>>;
    async fn ticket(&self, id: &TicketId) -> Result<Option<TicketRow>>;
    /// Open exchanges whose ticket expired before `before`.
    async fn overdue_tickets(&self, before: i64, limit: u32) -> Result<Vec<TicketRow>>;
    /// A resident's tickets (for their history), newest first.
    async fn tickets_of(&self, account_id: &AccountId, limit: u32) -> Result<Vec<TicketRow>>;
    async fn alerts(&self, since: i64, limit: u32) -> Result<Vec<AlertRow>>;
    /// Ticket counts by state where the service is the consumer or the provider: (side,
    /// state, count), sorted by side then state name.
    async fn ticket_counts(
        &self,
        service_id: &ServiceId,
    ) -> Result<Vec<(ReceiptSide, TicketState, u64)>>;
}

/// OpenID Connect: pending authorization requests, grants, codes and tokens.
#[async_trait]
pub trait OidcStore {
    async fn authz_request(&self, id: &RequestId) -> Result<Option<AuthzRequestRow>>;
    async fn authz_request_by_login_nonce(&self, nonce: &str) -> Result<Option<AuthzRequestRow>>;
    async fn grant(&self, id: &GrantId) -> Result<Option<GrantRow>>;
    /// A code and its grant, in one query.
    async fn code(&self, code_hash: &str) -> Result<Option<(CodeRow, GrantRow)>>;
    /// A token and its grant, in one query.
    async fn oauth_token(&self, token_hash: &str) -> Result<Option<(OauthTokenRow, GrantRow)>>;
    /// A resident's grants (for their view), newest first.
    async fn grants_of(&self, account_id: &AccountId, limit: u32) -> Result<Vec<GrantRow>>;
    /// A resident's grants that a client can still use at `now` — not revoked, with a code
    /// not yet redeemed or a token (an unused refresh token, an access token) not yet
    /// expired — newest first: the services the resident is logged in to.
    async fn live_grants_of(&self, account_id: &AccountId, now: i64) -> Result<Vec<GrantRow>>;
    /// Grants to a client that are not revoked (for the service console's statistics).
    async fn count_active_grants(&self, client_id: &ServiceId) -> Result<u64>;
    /// Deletes authorization requests that expired before `now`, codes and tokens that
    /// expired more than a day before `now`. Returns rows deleted.
    async fn purge_oidc(&self, now: i64) -> Result<u64>;
}

/// Everything the platform persists.
#[async_trait]
pub trait Store:
    IdentityStore
    + NonceStore
    + SessionStore
    + LedgerStore
    + KeyStore
    + ServiceStore
    + ConsentStore
    + ExchangeStore
    + OidcStore
    + Send
    + Sync
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The database itself, for a capability's own tables (its statements run through the
    /// same neutral layer, on the same threads).
    fn database(&self) -> &Database;

    /// Applies commits in one transaction (see the crate documentation). The outer error
    /// means nothing was applied; an inner error means that commit alone was refused.
    async fn commit_batch(&self, commits: Vec<Commit>) -> Result<BatchOutcome>;

    /// Applies the migrations of capabilities beyond the platform's own.
    async fn migrate(&self, sets: &[Migrations]) -> Result<()>;

    /// Checks the database answers.
    async fn ping(&self) -> Result<()>;
}

/// The one implementation of every store trait, on either backend.
pub struct SqlStore {
    db: Database,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The platform's own tables (accounts, ledger, services, consents, exchange, OpenID
/// Connect), created before any capability's.
pub const PLATFORM_MIGRATIONS: Migrations = Migrations {
    capability: PLATFORM,
    steps: &[
        Migration {
            version: 1,
            name: "identity_ledger",
            sqlite: include_str!("../migrations/sqlite/0001_identity_ledger.sql"),
            postgres: include_str!("../migrations/postgres/0001_identity_ledger.sql"),
        },
        Migration {
            version: 2,
            name: "services_consents_exchange",
            sqlite: include_str!("../migrations/sqlite/0002_services_consents_exchange.sql"),
            postgres: include_str!("../migrations/postgres/0002_services_consents_exchange.sql"),
        },
        Migration {
            version: 3,
            name: "oidc",
            sqlite: include_str!("../migrations/sqlite/0003_oidc.sql"),
            postgres: include_str!("../migrations/postgres/0003_oidc.sql"),
        },
        Migration {
            version: 4,
            name: "alert_ticket",
            sqlite: include_str!("../migrations/sqlite/0004_alert_ticket.sql"),
            postgres: include_str!("../migrations/postgres/0004_alert_ticket.sql"),
        },
        Migration {
            version: 5,
            name: "key_rotation",
            sqlite: include_str!("../migrations/sqlite/0005_key_rotation.sql"),
            postgres: include_str!("../migrations/postgres/0005_key_rotation.sql"),
        },
        Migration {
            version: 6,
            name: "service_client_cert",
            sqlite: include_str!("../migrations/sqlite/0006_service_client_cert.sql"),
            postgres: include_str!("../migrations/postgres/0006_service_client_cert.sql"),
        },
        Migration {
            version: 7,
            name: "device_user_verification",
            sqlite: include_str!("../migrations/sqlite/0007_device_user_verification.sql"),
            postgres: include_str!("../migrations/postgres/0007_device_user_verification.sql"),
        },
        Migration {
            version: 8,
            name: "resident_rights",
            sqlite: include_str!("../migrations/sqlite/0008_resident_rights.sql"),
            postgres: include_str!("../migrations/postgres/0008_resident_rights.sql"),
        },
    ],
};

impl SqlStore {
    async fn with_platform_schema(db: Database) -> Result<SqlStore> {
        let store = SqlStore { db };
        store.migrate(&[]).await?;
        Ok(store)
    }

    /// Creates an empty PostgreSQL schema (a restore target in tests).
    pub async fn create_schema(url: &str, schema: &str) -> Result<()> {
        postgres::create_schema(url, schema).await
    }

    /// Drops a PostgreSQL schema made by [`open_postgres`] (test clean-up).
    pub async fn drop_schema(url: &str, schema: &str) -> Result<()> {
        postgres::drop_schema(url, schema).await
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        self.db.dialect().name()
    }

    fn database(&self) -> &Database {
        &self.db
    }

    async fn commit_batch(&self, commits: Vec<Commit>) -> Result<BatchOutcome> {
        self.db
            .write(move |c| commit::commit_batch(c, &commits))
            .await
    }

    async fn migrate(&self, sets: &[Migrations]) -> Result<()> {
        let mut all = vec![PLATFORM_MIGRATIONS];
        all.extend_from_slice(sets);
        self.db
            .write(move |c| migrate::migrate(c, &all, unix_now()))
            .await
    }

    async fn ping(&self) -> Result<()> {
        self.db
            .read(|c| c.query_int("SELECT 1", &[]).map(|_| ()))
            .await
    }
}

/// Opens (creating if needed) the SQLite database at `path` and creates the platform's
/// tables. WAL journal, `synchronous = FULL` (a commit is on disk when it returns), foreign
/// keys on.
pub async fn open_sqlite(path: &Path) -> Result<SqlStore> {
    let path = path.to_owned();
    let db = tokio::task::spawn_blocking(move || sqlite::open(&path))
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))??;
    SqlStore::with_platform_schema(db).await
}

/// Connects to PostgreSQL (TLS when the server offers it or `sslmode=require`) and creates
/// the platform's tables. With `schema`, everything lives in that schema (created if
/// missing): the test suite gives every test its own.
pub async fn open_postgres(url: &str, schema: Option<&str>) -> Result<SqlStore> {
    SqlStore::with_platform_schema(postgres::open(url, schema).await?).await
}

/// Opens the store for a `database_url` (`postgres://…`) or, without one, the SQLite file
/// `tsunagu.db` in `data_dir`.
pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(open_postgres(url, None).await?))
        }
        Some(url) if url.starts_with("sqlite:") => Ok(Arc::new(
            open_sqlite(Path::new(url.trim_start_matches("sqlite:"))).await?,
        )),
        Some(other) => Err(StoreError::Unavailable(format!(
            "database_url must start with postgres:// or sqlite: (got `{}`)",
            other.split(':').next().unwrap_or("")
        ))),
        None => Ok(Arc::new(open_sqlite(&data_dir.join("tsunagu.db")).await?)),
    }
}

/// The database named by the configuration, as [`open`] finds it, without creating or
/// migrating any table: for tools that read or fill a whole database (backups).
pub async fn open_database(database_url: Option<&str>, data_dir: &Path) -> Result<Database> {
    let sqlite = |path: PathBuf| async move {
        tokio::task::spawn_blocking(move || sqlite::open(&path))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
    };
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            postgres::open(url, None).await
        }
        Some(url) if url.starts_with("sqlite:") => {
            sqlite(PathBuf::from(url.trim_start_matches("sqlite:"))).await
        }
        Some(other) => Err(StoreError::Unavailable(format!(
            "database_url must start with postgres:// or sqlite: (got `{}`)",
            other.split(':').next().unwrap_or("")
        ))),
        None => sqlite(data_dir.join("tsunagu.db")).await,
    }
}

/// The SQLite file the configuration names, `None` for PostgreSQL.
pub fn sqlite_path(database_url: Option<&str>, data_dir: &Path) -> Option<PathBuf> {
    match database_url {
        Some(url) if url.starts_with("sqlite:") => {
            Some(PathBuf::from(url.trim_start_matches("sqlite:")))
        }
        Some(_) => None,
        None => Some(data_dir.join("tsunagu.db")),
    }
}

/// A `Vec<AnyChange>` from changes of any aggregate.
#[macro_export]
macro_rules! changes {
    ($($c:expr),* $(,)?) => { vec![$($crate::AnyChange::from($c)),*] };
}

/// Upgrading a database that earlier versions wrote.
#[cfg(test)]
mod upgrade_tests {
    use super::*;
    use crate::params;

    /// A database at the platform's schema version 3, with alerts as version 3 wrote them
    /// (the ticket only in the detail's text); then opened by this version.
    async fn upgraded_alerts(db: Database) -> Vec<AlertRow> {
        let before = Migrations {
            capability: PLATFORM,
            steps: &PLATFORM_MIGRATIONS.steps[..3],
        };
        db.write(move |c| migrate::migrate(c, &[before], unix_now()))
            .await
            .unwrap();
        db.write(|c| {
            for (kind, detail) in [
                (
                    "legal_basis_use",
                    "ticket abc_DEF-1: 消防局 used the standing rule `vital_interest`",
                ),
                ("receipt_missing", "ticket t1: the provider's receipt missing"),
                ("service_suspended", "X was suspended by the committee"),
                ("receipt_mismatch", "ticket : nothing"),
                ("receipt_mismatch", "ticket a b: spaced"),
            ] {
                c.execute(
                    "INSERT INTO alerts (kind, service_id, detail, created_at) VALUES ($1, NULL, $2, 1)",
                    &params![kind, detail],
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
        let store = SqlStore::with_platform_schema(db).await.unwrap();
        store.alerts(0, 10).await.unwrap()
    }

    fn ticket_ids(alerts: &[AlertRow]) -> Vec<Option<&str>> {
        alerts
            .iter()
            .map(|a| a.ticket_id.as_ref().map(|t| t.as_str()))
            .collect()
    }

    /// The ticket of an exchange alert is read from its detail, `ticket <id>: …`, and
    /// nothing else is taken for one.
    const EXPECTED: [Option<&str>; 5] = [Some("abc_DEF-1"), Some("t1"), None, None, None];

    #[tokio::test]
    async fn sqlite_alerts_of_version_3_get_the_ticket_from_their_detail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = tokio::task::spawn_blocking(move || sqlite::open(&path))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ticket_ids(&upgraded_alerts(db).await), EXPECTED);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_alerts_of_version_3_get_the_ticket_from_their_detail() {
        let Ok(url) = std::env::var("TSUNAGU_TEST_DATABASE_URL") else {
            println!("NOTICE: TSUNAGU_TEST_DATABASE_URL not set: PostgreSQL case skipped");
            return;
        };
        let schema = format!("t_upgrade_alerts_{}", std::process::id());
        let db = postgres::open(&url, Some(&schema)).await.unwrap();
        let got = upgraded_alerts(db).await;
        SqlStore::drop_schema(&url, &schema).await.unwrap();
        assert_eq!(ticket_ids(&got), EXPECTED);
    }
}
