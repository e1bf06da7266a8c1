//! # tsunagu-capability
//!
//! The contract a capability crate implements so that the server can put it together with
//! the others without a central list of anything but the capabilities themselves. A
//! capability exposes:
//!
//! - its **routes** (an axum router with its state already given),
//! - its **background jobs** (name, interval, body; the server runs one scheduler, logs
//!   every error and counts every run in `/metrics`),
//! - the **configuration sections** it owns (top-level TOML tables, also the
//!   `TSUNAGU_<SECTION>__` prefixes; it reads them with [`Context::section`]),
//! - its **migrations** (its own tables, one SQL text per dialect, numbered per capability),
//! - the **ledger event types** it writes (the server refuses two capabilities that claim
//!   the same type),
//! - its **assessment section**: the personal-data files it keeps, the flows it makes and the
//!   measures it enforces, read from the running deployment ([`assessment`]).
//!
//! Invariant: a capability crate depends on this crate, the platform and the store, never on
//! `tsunagu-server`. ARCHITECTURE.md has the recipe for a new capability.

pub mod assessment;

pub use assessment::{AssessmentSection, DataFile, DataFlow, DataItem, Measure};

use axum::Router;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use tsunagu_platform::{ConfigError, ConfigSource, Platform, Section};
pub use tsunagu_store::{Migration, Migrations};
/// The client certificate of the connection a request came on (mutual TLS, RFC 8705), in
/// its extensions when the listener asked for one and the client sent one that chains to
/// `[server] client_ca`. A service registers the certificate's `x5t#S256` to authenticate
/// by it.
pub use tsunagu_tls::ClientCert;

/// Who sent a request, as the listener puts it in every request's extensions: the peer's
/// address, or the client named by `X-Forwarded-For` when the peer is one of
/// `[server] trusted_proxies`; and whether the client reached the platform over HTTPS (the
/// listener's TLS, or a trusted proxy's `X-Forwarded-Proto: https`). Read it for rate limits
/// and logs keyed by client; never read the forwarding headers directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    pub ip: std::net::IpAddr,
    pub https: bool,
}

/// What [`Capability::assessment`] returns.
pub type SectionFuture<'a> =
    Pin<Box<dyn Future<Output = anyhow::Result<AssessmentSection>> + Send + 'a>>;

/// What a job's run returns: how many things it did (logged when not zero).
pub type JobResult = anyhow::Result<u64>;

type JobFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = JobResult> + Send>> + Send + Sync>;

/// A background job: run every `every`, one run at a time.
#[derive(Clone)]
pub struct Job {
    /// A stable name (`consents.expire`): in logs and in the metrics' `job` label.
    pub name: &'static str,
    pub every: Duration,
    run: JobFn,
}

impl Job {
    pub fn new<F, Fut>(name: &'static str, every: Duration, run: F) -> Job
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult> + Send + 'static,
    {
        Job {
            name,
            every: every.max(Duration::from_millis(100)),
            run: Arc::new(move || Box::pin(run())),
        }
    }

    /// Runs the job once.
    pub fn run(&self) -> Pin<Box<dyn Future<Output = JobResult> + Send>> {
        (self.run)()
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// What a capability puts into the running server.
#[derive(Default)]
pub struct Mount {
    pub routes: Router,
    pub jobs: Vec<Job>,
}

impl Mount {
    pub fn routes(routes: Router) -> Mount {
        Mount {
            routes,
            jobs: vec![],
        }
    }

    pub fn job(mut self, job: Job) -> Mount {
        self.jobs.push(job);
        self
    }
}

/// What a capability is given when it is mounted.
pub struct Context {
    pub platform: Arc<Platform>,
    pub config: ConfigSource,
    /// How often the periodic sweeps run (`[server] sweep_interval_seconds`).
    pub sweep_every: Duration,
    /// The names of every capability this server mounts (those turned on).
    pub capabilities: Vec<&'static str>,
}

impl Context {
    /// A configuration section this capability owns.
    pub fn section<S: Section>(&self) -> Result<S, ConfigError> {
        self.config.section()
    }

    /// Whether a capability of this name is part of this server.
    pub fn has(&self, name: &str) -> bool {
        self.capabilities.contains(&name)
    }
}

/// A capability of the platform.
pub trait Capability: Send + Sync {
    /// A stable, unique name (`exchange`, `web`, `registry`).
    fn name(&self) -> &'static str;

    /// The configuration sections this capability owns.
    fn config_sections(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether its configuration turns it on (default: always on). A capability that is off
    /// is neither mounted nor listed in [`Context::capabilities`]; its sections are still
    /// known, so a configuration that names them is not refused.
    fn enabled(&self, _config: &ConfigSource) -> Result<bool, ConfigError> {
        Ok(true)
    }

    /// Its own tables, if it has any.
    fn migrations(&self) -> Option<Migrations> {
        None
    }

    /// The ledger event types it writes.
    fn ledger_events(&self) -> &'static [&'static str] {
        &[]
    }

    /// Its routes and jobs, given the running platform.
    fn mount(&self, ctx: &Context) -> anyhow::Result<Mount>;

    /// Its part of the privacy impact assessment, read from the running deployment. A
    /// capability that keeps no personal data, makes no flows and enforces no measure of its
    /// own has nothing to say (the default).
    fn assessment<'a>(&'a self, _ctx: &'a Context) -> SectionFuture<'a> {
        Box::pin(async { Ok(AssessmentSection::default()) })
    }
}
