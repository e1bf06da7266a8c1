//! # tsunagu-store
//!
//! Persistence behind one trait per aggregate, with two implementations proven by one test
//! suite: SQLite (the embedded default, a file in the data directory) and PostgreSQL (for
//! production, shared by any number of stateless server replicas).
//!
//! Reads go through the aggregate traits. Every write that must be recorded in the
//! transparency ledger goes through [`Store::commit_batch`]: the changes and their ledger
//! leaves are applied in one database transaction that also assigns the leaves their
//! indices under the ledger head lock, so a change and its leaf are durable together or not
//! at all, and leaf indices are dense and ordered across replicas. Several commits share one
//! transaction (group commit); each runs inside its own savepoint so that one refused
//! commit does not undo the others.
//!
//! Invariant: no business rules here. Conditional writes are compare-and-set on values the
//! caller read; the caller decides and retries.

mod common;
mod model;
mod postgres;
mod sqlite;

pub use model::*;

use async_trait::async_trait;
use tsunagu_core::service::ServiceStatus;

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
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Accounts and their device credentials.
#[async_trait]
pub trait IdentityStore {
    async fn account(&self, id: &str) -> Result<Option<AccountRow>>;
    async fn account_by_card(&self, binding: &str) -> Result<Option<AccountRow>>;
    /// Accounts proofed with the certificate of this issuer (DER name) and serial.
    async fn accounts_with_card(&self, issuer: &[u8], serial: &[u8]) -> Result<Vec<AccountRow>>;
    async fn device(&self, id: &str) -> Result<Option<DeviceRow>>;
    async fn device_by_jkt(&self, jkt: &str) -> Result<Option<DeviceRow>>;
    async fn devices_of(&self, account_id: &str) -> Result<Vec<DeviceRow>>;
    async fn count_accounts(&self) -> Result<u64>;
}

/// Single-use, short-lived nonces.
#[async_trait]
pub trait NonceStore {
    async fn put_nonce(&self, nonce: &str, purpose: &str, expires_at: i64) -> Result<()>;
    /// Consumes the nonce if it exists for this purpose and has not expired at `now`.
    /// Returns whether it was valid. A nonce is consumed at most once, across replicas.
    async fn take_nonce(&self, nonce: &str, purpose: &str, now: i64) -> Result<bool>;
    async fn purge_nonces(&self, now: i64) -> Result<u64>;
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
        account_id: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<LeafRow>>;
    async fn put_sth(&self, sth: &SthRow) -> Result<()>;
    async fn latest_sth(&self) -> Result<Option<SthRow>>;
    /// Deletes the content of leaves created before `before`, keeping their hashes.
    async fn expire_leaf_inputs(&self, before: i64) -> Result<u64>;
}

/// The platform's own keys, sealed by the keyring.
#[async_trait]
pub trait KeyStore {
    async fn keys(&self, purpose: &str) -> Result<Vec<KeyRow>>;
    /// Inserts a key unless one with this name exists. Returns whether it was inserted.
    async fn insert_key_if_absent(&self, key: &KeyRow) -> Result<bool>;
}

/// Services, their purposes and the committee's votes.
#[async_trait]
pub trait ServiceStore {
    async fn service(&self, id: &str) -> Result<Option<ServiceRow>>;
    /// All services, or those in one status; newest first.
    async fn services(&self, status: Option<ServiceStatus>) -> Result<Vec<ServiceRow>>;
    async fn purpose(&self, consumer_id: &str, purpose_id: &str) -> Result<Option<PurposeRow>>;
    /// Every purpose of every service.
    async fn all_purposes(&self) -> Result<Vec<PurposeRow>>;
    async fn purposes_of(&self, consumer_id: &str) -> Result<Vec<PurposeRow>>;
    /// Votes on a service in one round, in the order they were cast.
    async fn votes(&self, service_id: &str, round: i64) -> Result<Vec<VoteRow>>;
}

/// Consents, their changes and the feed.
#[async_trait]
pub trait ConsentStore {
    async fn consent(&self, id: &str) -> Result<Option<ConsentRow>>;
    /// A resident's consents, newest first.
    async fn consents_of(&self, account_id: &str) -> Result<Vec<ConsentRow>>;
    /// The newest consent to this purpose (the highest generation).
    async fn latest_consent(
        &self,
        account_id: &str,
        consumer_id: &str,
        purpose_id: &str,
    ) -> Result<Option<ConsentRow>>;
    /// Feed entries where the service is the consumer or the provider, after `since`.
    async fn consent_events(
        &self,
        service_id: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<ConsentEventRow>>;
    /// The feed entries of one consent, oldest first (for its receipt).
    async fn consent_history(&self, consent_id: &str) -> Result<Vec<ConsentEventRow>>;
    /// Active consents whose expiry has passed.
    async fn due_expirations(&self, now: i64, limit: u32) -> Result<Vec<ConsentRow>>;
    async fn purge_resident_nonces(&self, now: i64) -> Result<u64>;
}

/// Pairwise subjects, tickets, receipts and alerts.
#[async_trait]
pub trait ExchangeStore {
    /// The account behind a pairwise subject in a sector.
    async fn account_for_subject(&self, sector: &str, subject: &str) -> Result<Option<String>>;
    /// The statuses of both services, the resident behind `subject` at `consumer_id`, and
    /// their latest consent to the consumer's purpose, in one query. `None` when the
    /// consumer is unknown.
    async fn ticket_context(
        &self,
        consumer_id: &str,
        provider_id: &str,
        purpose_id: &str,
        subject: &str,
    ) -> Result<Option<TicketContext>>;
    async fn ticket(&self, id: &str) -> Result<Option<TicketRow>>;
    /// Open exchanges whose ticket expired before `before`.
    async fn overdue_tickets(&self, before: i64, limit: u32) -> Result<Vec<TicketRow>>;
    /// A resident's tickets (for their history), newest first.
    async fn tickets_of(&self, account_id: &str, limit: u32) -> Result<Vec<TicketRow>>;
    async fn alerts(&self, since: i64, limit: u32) -> Result<Vec<AlertRow>>;
    /// Ticket counts by state where the service is the consumer (`"consumer"`) or the
    /// provider (`"provider"`): (role, state, count), sorted.
    async fn ticket_counts(&self, service_id: &str) -> Result<Vec<(String, String, u64)>>;
}

/// OpenID Connect: pending authorization requests, grants, codes and tokens.
#[async_trait]
pub trait OidcStore {
    async fn authz_request(&self, id: &str) -> Result<Option<AuthzRequestRow>>;
    async fn authz_request_by_login_nonce(&self, nonce: &str) -> Result<Option<AuthzRequestRow>>;
    async fn grant(&self, id: &str) -> Result<Option<GrantRow>>;
    /// A code and its grant, in one query.
    async fn code(&self, code_hash: &str) -> Result<Option<(CodeRow, GrantRow)>>;
    /// A token and its grant, in one query.
    async fn oauth_token(&self, token_hash: &str) -> Result<Option<(OauthTokenRow, GrantRow)>>;
    /// A resident's grants (for their view), newest first.
    async fn grants_of(&self, account_id: &str, limit: u32) -> Result<Vec<GrantRow>>;
    /// Grants to a client that are not revoked (for the service console's statistics).
    async fn count_active_grants(&self, client_id: &str) -> Result<u64>;
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

    /// Applies commits in one transaction (see the crate documentation). The outer error
    /// means nothing was applied; an inner error means that commit alone was refused.
    async fn commit_batch(&self, commits: &[Commit]) -> Result<BatchOutcome>;

    /// Checks the database answers.
    async fn ping(&self) -> Result<()>;
}

pub use postgres::{PgStore, open_postgres};
pub use sqlite::{SqliteStore, open_sqlite};

/// Opens the store for a `database_url` (`postgres://…`) or, without one, the SQLite file
/// `tsunagu.db` in `data_dir`.
pub async fn open(
    database_url: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn Store>> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(std::sync::Arc::new(open_postgres(url, None).await?))
        }
        Some(url) if url.starts_with("sqlite:") => Ok(std::sync::Arc::new(
            open_sqlite(std::path::Path::new(url.trim_start_matches("sqlite:"))).await?,
        )),
        Some(other) => Err(StoreError::Unavailable(format!(
            "database_url must start with postgres:// or sqlite: (got `{}`)",
            other.split(':').next().unwrap_or("")
        ))),
        None => Ok(std::sync::Arc::new(
            open_sqlite(&data_dir.join("tsunagu.db")).await?,
        )),
    }
}
