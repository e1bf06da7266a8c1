//! # tsunagu-server
//!
//! The platform process: configuration, the HTTP API (axum), the services that order the
//! domain rules of `tsunagu-core` and the checks of `tsunagu-crypto` around storage, the
//! ledger's in-memory tree and group commit, and background work (tree heads, CRL refresh
//! and status checks, purges, retention).
//!
//! Invariant: decisions that need no I/O live in `tsunagu-core`; handlers decode, call one
//! service function, and encode.

pub mod app;
pub mod assertion;
pub mod config;
pub mod consents;
pub mod error;
pub mod exchange;
pub mod governance;
pub mod history;
pub mod http;
pub mod identity;
pub mod keys;
pub mod ledger;
pub mod oidc;
pub mod services;
pub mod trust;
pub mod web;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

pub use app::App;
pub use config::Config;

static METRICS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder once per process.
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    METRICS
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

/// A server running in this process.
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The base URL on loopback.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits for the server to stop (it stops on error only).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await??;
        Ok(())
    }

    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Starts the platform on `config.server.bind` (port 0 picks a free port) and returns at
/// once with the address.
pub async fn spawn(mut config: Config) -> anyhow::Result<Running> {
    metrics_handle();
    let listener = tokio::net::TcpListener::bind(&config.server.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.bind))?;
    let addr = listener.local_addr()?;
    if config.server.public_url.is_none() {
        config.server.public_url = Some(format!("http://{addr}"));
    }
    let app = App::start(config).await?;
    app.spawn_background();
    let router = http::router(app.clone());
    let task = tokio::spawn(async move { axum::serve(listener, router).await });
    tracing::info!(%addr, backend = app.store.backend(), "tsunagu is listening");
    Ok(Running { addr, app, task })
}
