//! The running platform: configuration, storage, keys, trust, ledger, and the background
//! work that keeps them fresh.

use crate::config::Config;
use crate::keys::{PlatformKeys, load_or_create_keyring};
use crate::ledger::{Committer, LedgerService};
use crate::trust::Trust;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tsunagu_store::Store;

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix seconds as an RFC 3339 UTC time, for messages.
pub fn iso8601(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Everything a request handler needs.
pub struct App {
    pub config: Config,
    pub public_url: String,
    pub store: Arc<dyn Store>,
    pub keys: PlatformKeys,
    pub trust: Trust,
    pub ledger: Arc<LedgerService>,
    pub committer: Committer,
    /// Service definitions, cached.
    pub directory: crate::services::Directory,
    /// Per-process rate limits.
    pub rates: crate::exchange::RateLimiter,
    /// CRL entries (issuer, serial) already matched against accounts.
    pub(crate) status_checked: Mutex<HashSet<(Vec<u8>, Vec<u8>)>>,
}

impl App {
    /// Opens storage, loads or creates keys, loads trust, rebuilds the ledger tree, runs the
    /// first status check.
    pub async fn start(config: Config) -> anyhow::Result<Arc<App>> {
        std::fs::create_dir_all(&config.storage.data_dir)
            .map_err(|e| anyhow::anyhow!("data_dir {}: {e}", config.storage.data_dir.display()))?;
        let store = tsunagu_store::open(
            config.storage.database_url.as_deref(),
            &config.storage.data_dir,
        )
        .await?;
        let keyring = load_or_create_keyring(&config.keyring_path())?;
        let keys = PlatformKeys::load(store.as_ref(), keyring, now()).await?;
        let trust = Trust::load(&config.identity, &config.storage.data_dir).await?;
        let ledger = Arc::new(LedgerService::load(store.clone(), keys.ledger.try_clone()?).await?);
        let committer = Committer::start(store.clone(), ledger.clone());
        let app = Arc::new(App {
            public_url: config.public_url(),
            config,
            store,
            keys,
            trust,
            ledger,
            committer,
            directory: crate::services::Directory::default(),
            rates: crate::exchange::RateLimiter::default(),
            status_checked: Mutex::new(HashSet::new()),
        });
        crate::identity::status_check(&app).await?;
        Ok(app)
    }

    /// Spawns the periodic work: tree heads, CRL refresh and status checks, purges,
    /// retention.
    pub fn spawn_background(self: &Arc<Self>) {
        let app = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(
                app.config.ledger.sth_interval_seconds.max(1),
            ));
            loop {
                tick.tick().await;
                if let Err(e) = app.ledger.sth(now()).await {
                    tracing::error!(error = %e, "signing a tree head failed");
                }
            }
        });
        let app = self.clone();
        tokio::spawn(async move {
            let full = Duration::from_secs(app.config.identity.crl_refresh_seconds.max(1));
            let mut last_full = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                if last_full.elapsed() >= full || app.trust.files_changed() {
                    last_full = tokio::time::Instant::now();
                    match app.trust.refresh().await {
                        Ok(_) => {
                            if let Err(e) = crate::identity::status_check(&app).await {
                                tracing::error!(error = %e, "status check failed");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "CRL refresh failed"),
                    }
                }
            }
        });
        let app = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(
                app.config.server.sweep_interval_seconds.max(1),
            ));
            loop {
                tick.tick().await;
                let t = now();
                let _ = app.store.purge_nonces(t).await;
                let _ = app.store.purge_sessions(t).await;
                let _ = app.store.purge_resident_nonces(t).await;
                match crate::consents::sweep_expirations(&app).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(consents = n, "consents expired"),
                    Err(e) => tracing::error!(error = %e, "consent expiry sweep failed"),
                }
                match crate::exchange::sweep_missing_receipts(&app).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::warn!(exchanges = n, "exchanges flagged for missing receipts")
                    }
                    Err(e) => tracing::error!(error = %e, "receipt sweep failed"),
                }
                let cutoff = t - i64::from(app.config.ledger.retention_days) * 86_400;
                match app.store.expire_leaf_inputs(cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(leaves = n, "ledger contents past retention deleted"),
                    Err(e) => tracing::error!(error = %e, "retention sweep failed"),
                }
            }
        });
    }
}
