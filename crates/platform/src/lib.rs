//! # tsunagu-platform
//!
//! The platform's services over the store's traits: identity (enrollment, proofing, login,
//! devices, the status check against CRLs), services and their applications, the
//! committee's governance, residents' consents, the exchange (tickets, receipts, the consent
//! feed, alerts), the resident's history, and the OpenID Connect provider's rules. Each
//! service is a value holding what it needs (the store, the committer, keys, its
//! configuration section), and each call takes typed arguments and returns a typed result or
//! a [`Refusal`] with a stable code.
//!
//! Invariant: no HTTP, no HTML, no JSON values. This crate does not depend on axum, askama,
//! tower or hyper, and `serde_json::Value` is not in its API: the JSON of the HTTP API is
//! made in `tsunagu-api`, the pages in `tsunagu-web`. Rules that need no I/O stay in
//! `tsunagu-core`; this crate orders them around storage, keys and the ledger, and records
//! every outcome in the ledger.

pub mod assertion;
pub mod config;
pub mod consents;
pub mod directory;
pub mod exchange;
pub mod governance;
pub mod history;
pub mod identity;
pub mod keys;
pub mod ledger;
pub mod oidc;
pub mod rates;
mod refusal;
pub mod resident;
pub mod rotation;
pub mod services;
pub mod sessions;
pub mod trust;

pub use config::{ConfigError, ConfigSource, PlatformConfig, Section};
pub use refusal::{Outcome, Refusal};
pub use tsunagu_store::StoreError;

use std::sync::Arc;
use tsunagu_store::{Migrations, Store};

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix seconds as an RFC 3339 UTC time, for messages and receipts.
pub fn iso8601(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// The running platform: its shared state and every service.
pub struct Platform {
    pub config: Arc<PlatformConfig>,
    /// The public URL without a trailing slash (issuer, audience).
    pub public_url: String,
    /// The store, for the services. A capability with tables of its own reaches them
    /// through [`Platform::database`]; the API and the pages only call services.
    pub(crate) store: Arc<dyn Store>,
    pub keys: Arc<keys::PlatformKeys>,
    pub trust: Arc<trust::Trust>,
    pub ledger: Arc<ledger::LedgerService>,
    pub committer: ledger::Committer,
    pub directory: Arc<directory::Directory>,
    pub assertions: assertion::Assertions,
    pub identity: identity::Identity,
    pub services: services::Services,
    pub governance: governance::Governance,
    pub consents: consents::Consents,
    pub exchange: exchange::Exchange,
    pub history: history::History,
    pub oidc: oidc::Oidc,
    pub console_sessions: sessions::ConsoleSessions,
}

/// How the platform is doing, for `/healthz`.
pub struct Health {
    /// `storage` answered a query.
    pub database_ok: bool,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    pub tree_size: u64,
    pub trust: Arc<trust::TrustState>,
}

impl Platform {
    /// The database, for a capability's own tables (its statements run on the same threads,
    /// its changes commit with the platform's `committer`).
    pub fn database(&self) -> &tsunagu_store::Database {
        self.store.database()
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Checks the database and reports the ledger's size and the trust in JPKI.
    pub async fn health(&self) -> Health {
        Health {
            database_ok: self.store.ping().await.is_ok(),
            backend: self.store.backend(),
            tree_size: self.ledger.size(),
            trust: self.trust.current(),
        }
    }

    /// Opens storage and applies the platform's and `migrations`' steps, loads or creates the
    /// keys, loads trust, rebuilds the ledger tree, and runs the first status check.
    pub async fn start(
        config: PlatformConfig,
        public_url: String,
        migrations: &[Migrations],
    ) -> anyhow::Result<Arc<Platform>> {
        let config = Arc::new(config);
        let public_url = public_url.trim_end_matches('/').to_owned();
        std::fs::create_dir_all(&config.storage.data_dir)
            .map_err(|e| anyhow::anyhow!("data_dir {}: {e}", config.storage.data_dir.display()))?;
        let store = tsunagu_store::open(
            config.storage.database_url.as_deref(),
            &config.storage.data_dir,
        )
        .await?;
        store.migrate(migrations).await?;
        let keys = Arc::new(
            keys::PlatformKeys::load_from_file(store.as_ref(), &config.keyring_path(), now())
                .await?,
        );
        let trust = Arc::new(trust::Trust::load(&config.identity, &config.storage.data_dir).await?);
        let ledger = Arc::new(ledger::LedgerService::load(store.clone(), keys.clone()).await?);
        let committer = ledger::Committer::start(store.clone(), ledger.clone());
        let directory = Arc::new(directory::Directory::new(store.clone()));
        let assertions = assertion::Assertions::new(store.clone(), public_url.clone());
        let identity = identity::Identity::new(
            store.clone(),
            committer.clone(),
            keys.clone(),
            trust.clone(),
            config.identity.clone(),
            public_url.clone(),
        );
        let services = services::Services::new(
            store.clone(),
            committer.clone(),
            directory.clone(),
            config.governance.max_retention_days.clone(),
        );
        let governance = governance::Governance::new(
            store.clone(),
            committer.clone(),
            directory.clone(),
            assertions.clone(),
            config.governance.clone(),
            config.ledger.auditors.clone(),
        );
        let consents = consents::Consents::new(
            store.clone(),
            committer.clone(),
            directory.clone(),
            keys.clone(),
            config.exchange.max_consent_days,
            public_url.clone(),
        );
        let exchange = exchange::Exchange::new(
            store.clone(),
            committer.clone(),
            directory.clone(),
            keys.clone(),
            assertions.clone(),
            config.exchange.clone(),
            public_url.clone(),
        );
        let history = history::History::new(
            store.clone(),
            directory.clone(),
            keys.clone(),
            ledger.clone(),
            assertions.clone(),
            config.ledger.clone(),
        );
        let oidc = oidc::Oidc::new(
            store.clone(),
            committer.clone(),
            directory.clone(),
            keys.clone(),
            identity.clone(),
            consents.clone(),
            config.oidc.clone(),
            config.exchange.max_consent_days,
            public_url.clone(),
        );
        let console_sessions =
            sessions::ConsoleSessions::new(keys.clone(), public_url.clone(), store.clone());
        let platform = Arc::new(Platform {
            config,
            public_url,
            store,
            keys,
            trust,
            ledger,
            committer,
            directory,
            assertions,
            identity,
            services,
            governance,
            consents,
            exchange,
            history,
            oidc,
            console_sessions,
        });
        platform.identity.status_check().await?;
        Ok(platform)
    }
}
