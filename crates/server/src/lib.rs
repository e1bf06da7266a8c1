//! # tsunagu-server
//!
//! The composition root: it assembles the configuration from the sections of the server,
//! the platform and every capability, starts the platform (storage with every capability's
//! migrations, keys, trust, the ledger), mounts each capability's routes into one router
//! with the cross-cutting layers (metrics, tracing, body limit, problem+json fallbacks),
//! runs one scheduler for every capability's jobs, and owns the listener.
//!
//! Invariant: no capability depends on this crate, and this crate holds no business rules:
//! adding a capability adds one line to [`Server::new`] (or a `with` in the binary), nothing
//! else.

pub mod config;
mod edge;
mod scheduler;

pub use config::Config;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tsunagu_api::ApiError;
use tsunagu_capability::{AssessmentSection, Capability, Context, Migrations};
use tsunagu_core::Code;
use tsunagu_platform::Platform;

/// The capabilities of a server and how they are put together.
pub struct Server {
    capabilities: Vec<Arc<dyn Capability>>,
}

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

impl Server {
    /// The platform's capabilities: the JSON API (meta, identity, ledger, governance,
    /// exchange), "log in with tsunagu", the web pages, the residents' rights and the
    /// operator staff (every deployment has both: SPEC §8, §9).
    pub fn new() -> Server {
        Server {
            capabilities: vec![
                Arc::new(tsunagu_api::MetaApi),
                Arc::new(tsunagu_api::IdentityApi),
                Arc::new(tsunagu_api::LedgerApi),
                Arc::new(tsunagu_api::GovernanceApi),
                Arc::new(tsunagu_api::ExchangeApi),
                Arc::new(tsunagu_web::OidcProvider),
                Arc::new(tsunagu_web::WebApp),
                Arc::new(tsunagu_rights::RightsCapability),
                Arc::new(tsunagu_staff::StaffCapability),
            ],
        }
    }

    /// Adds a capability.
    pub fn with(mut self, capability: impl Capability + 'static) -> Server {
        self.capabilities.push(Arc::new(capability));
        self
    }

    /// The capabilities' names, in mounting order.
    pub fn names(&self) -> Vec<&'static str> {
        self.capabilities.iter().map(|c| c.name()).collect()
    }

    /// Every configuration section in use: the server's, then each capability's.
    pub fn sections(&self) -> Vec<&'static str> {
        let mut all: Vec<&'static str> = Config::SECTIONS.to_vec();
        for c in &self.capabilities {
            all.extend_from_slice(c.config_sections());
        }
        all
    }

    /// Loads the configuration for this server's sections.
    pub fn load_config(&self, path: Option<&Path>) -> Result<Config, config::ConfigError> {
        Config::load(path, &self.sections())
    }

    /// Checks that names, sections and ledger event types are each claimed once.
    pub fn check(&self) -> anyhow::Result<()> {
        let mut names = HashMap::new();
        let mut sections: HashMap<&str, &str> =
            Config::SECTIONS.iter().map(|s| (*s, "server")).collect();
        let mut events = HashMap::new();
        for c in &self.capabilities {
            if names.insert(c.name(), ()).is_some() {
                anyhow::bail!("two capabilities are named `{}`", c.name());
            }
            for s in c.config_sections() {
                if let Some(owner) = sections.insert(s, c.name()) {
                    anyhow::bail!(
                        "`{}` and `{owner}` both claim the section `[{s}]`",
                        c.name()
                    );
                }
            }
            for e in c.ledger_events() {
                if let Some(owner) = events.insert(*e, c.name()) {
                    anyhow::bail!(
                        "`{}` and `{owner}` both write ledger events of type `{e}`",
                        c.name()
                    );
                }
            }
        }
        Ok(())
    }

    /// The capabilities' own migrations (the platform's come first, from the store).
    pub fn migrations(&self) -> Vec<Migrations> {
        self.capabilities
            .iter()
            .filter_map(|c| c.migrations())
            .collect()
    }

    /// Starts the platform alone (storage migrated for every capability, keys, trust, the
    /// ledger) without a listener or jobs: for tools that work on a stopped server's
    /// storage, such as the benchmark seeder.
    pub async fn platform(&self, config: &mut Config) -> anyhow::Result<Arc<Platform>> {
        self.check()?;
        config.validate()?;
        config.platform.write_to(&mut config.source);
        Platform::start(
            config.platform.clone(),
            config.public_url(),
            &self.migrations(),
        )
        .await
    }

    /// Starts the platform on `config.server.bind` (port 0 picks a free port) and returns
    /// at once with the address. With `[server] tls_cert` and `tls_key` it serves HTTPS and
    /// re-reads them on SIGHUP or when they change.
    pub async fn spawn(self, mut config: Config) -> anyhow::Result<Running> {
        self.check()?;
        config.validate()?;
        tsunagu_api::metrics_handle();
        let tls = match config.server.tls() {
            Some((cert, key)) => Some(tsunagu_tls::Tls {
                cert: Arc::new(tsunagu_tls::ReloadingCert::load("server", cert, key)?),
                hangup: tsunagu_tls::hangup(),
                clients: match &config.server.client_ca {
                    Some(ca) => Some(tsunagu_tls::client_verifier("server", ca)?),
                    None => None,
                },
            }),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = tokio::net::TcpListener::bind(&config.server.bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.bind))?;
        let addr = listener.local_addr()?;
        if config.server.public_url.is_none() {
            config.server.public_url = Some(format!("{scheme}://{addr}"));
        }
        let hsts = tls.is_some() || config.public_url().starts_with("https://");
        let limits = tsunagu_tls::Limits {
            header_timeout: Duration::from_secs(config.server.header_timeout_seconds.max(1)),
            idle_timeout: Duration::from_secs(config.server.idle_timeout_seconds.max(1)),
        };
        let trusted: Arc<[ipnet::IpNet]> = config.server.trusted_proxy_nets().into();
        let decorate: tsunagu_tls::Decorate = Arc::new(move |peer, request| {
            let client = edge::client_of(peer.addr, peer.tls, request.headers(), &trusted);
            request.extensions_mut().insert(client);
        });
        let platform = self.platform(&mut config).await?;
        let mut active = Vec::new();
        for c in &self.capabilities {
            if c.enabled(&config.source)? {
                active.push(c.clone());
            }
        }
        let ctx = Context {
            platform: platform.clone(),
            config: config.source.clone(),
            sweep_every: Duration::from_secs(config.server.sweep_interval_seconds.max(1)),
            capabilities: active.iter().map(|c| c.name()).collect(),
        };
        let mut router = Router::new();
        let mut jobs = Vec::new();
        for c in &active {
            let mount = c
                .mount(&ctx)
                .map_err(|e| anyhow::anyhow!("capability `{}`: {e:#}", c.name()))?;
            router = router.merge(mount.routes);
            jobs.extend(mount.jobs);
        }
        let router = router
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn(record_metrics))
            .layer(middleware::from_fn_with_state(
                tsunagu_api::edge::SourceLimits::new(
                    config.server.anonymous_requests_per_minute,
                    config.server.service_applications_per_hour,
                ),
                tsunagu_api::edge::limit_anonymous,
            ))
            .layer(middleware::from_fn(
                tsunagu_api::edge::problem_for_plain_errors,
            ))
            .layer(
                tower_http::trace::TraceLayer::new_for_http()
                    .make_span_with(tsunagu_api::edge::request_span::<axum::body::Body>),
            )
            .layer(axum::extract::DefaultBodyLimit::max(
                config.server.body_limit_bytes,
            ))
            .layer(middleware::from_fn_with_state(hsts, edge::security_headers));
        let job_names: Vec<&'static str> = jobs.iter().map(|j| j.name).collect();
        let scheduler = scheduler::start(jobs);
        let task = tokio::spawn(tsunagu_tls::serve(listener, tls, limits, decorate, router));
        tracing::info!(%addr, %scheme, backend = platform.backend(), capabilities = ?ctx.capabilities, jobs = ?job_names, "tsunagu is listening");
        Ok(Running {
            addr,
            scheme,
            platform,
            jobs: job_names,
            active,
            ctx,
            task,
            _scheduler: scheduler,
        })
    }
}

/// Starts the platform with its own capabilities (see [`Server::spawn`]).
pub async fn spawn(config: Config) -> anyhow::Result<Running> {
    Server::new().spawn(config).await
}

/// A server running in this process.
pub struct Running {
    pub addr: SocketAddr,
    /// `https` when the listener serves TLS, else `http`.
    pub scheme: &'static str,
    pub platform: Arc<Platform>,
    /// The background jobs the scheduler runs.
    pub jobs: Vec<&'static str>,
    active: Vec<Arc<dyn Capability>>,
    ctx: Context,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _scheduler: scheduler::Scheduler,
}

impl Running {
    /// The capabilities mounted (those turned on), in order.
    pub fn capabilities(&self) -> &[&'static str] {
        &self.ctx.capabilities
    }

    /// Every mounted capability's part of the privacy impact assessment, by capability name,
    /// read from the running deployment now.
    pub async fn assessment(&self) -> anyhow::Result<Vec<(&'static str, AssessmentSection)>> {
        let mut sections = Vec::with_capacity(self.active.len());
        for c in &self.active {
            let section = c
                .assessment(&self.ctx)
                .await
                .map_err(|e| anyhow::anyhow!("capability `{}`: {e:#}", c.name()))?;
            sections.push((c.name(), section));
        }
        Ok(sections)
    }

    /// The base URL on the listener's address.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
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

async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "this method is not allowed here")
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("tsunagu_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("tsunagu_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platforms_capabilities_claim_their_sections_and_events_once() {
        let server = Server::new();
        server.check().unwrap();
        let sections = server.sections();
        for s in tsunagu_platform::PlatformConfig::SECTIONS {
            assert!(sections.contains(s), "no one owns [{s}]");
        }
        let declared: Vec<&str> = server
            .capabilities
            .iter()
            .flat_map(|c| c.ledger_events().iter().copied())
            .collect();
        for kind in tsunagu_core::event::Event::KINDS {
            assert!(declared.contains(kind), "no capability declares `{kind}`");
        }
    }

    /// A capability of the tests: `[probe] on = true` turns it on; it serves `GET /probe`
    /// and counts the runs of its job.
    struct Probe {
        name: &'static str,
        sections: &'static [&'static str],
        events: &'static [&'static str],
        runs: Arc<std::sync::atomic::AtomicU64>,
    }

    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ProbeConfig {
        #[serde(default)]
        on: bool,
    }

    impl tsunagu_platform::Section for ProbeConfig {
        const NAME: &'static str = "probe";
    }

    fn probe() -> Probe {
        Probe {
            name: "probe",
            sections: &["probe"],
            events: &["probe.seen"],
            runs: Arc::default(),
        }
    }

    impl Capability for Probe {
        fn name(&self) -> &'static str {
            self.name
        }

        fn config_sections(&self) -> &'static [&'static str] {
            self.sections
        }

        fn ledger_events(&self) -> &'static [&'static str] {
            self.events
        }

        fn enabled(
            &self,
            config: &tsunagu_platform::ConfigSource,
        ) -> Result<bool, tsunagu_platform::ConfigError> {
            Ok(config.section::<ProbeConfig>()?.on)
        }

        fn mount(&self, ctx: &Context) -> anyhow::Result<tsunagu_capability::Mount> {
            let runs = self.runs.clone();
            let job =
                tsunagu_capability::Job::new("probe.tick", Duration::from_millis(100), move || {
                    let runs = runs.clone();
                    async move {
                        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        Ok(0)
                    }
                });
            let others = ctx.capabilities.len();
            Ok(tsunagu_capability::Mount::routes(Router::new().route(
                "/probe",
                axum::routing::get(move || async move { format!("mounted beside {others}") }),
            ))
            .job(job))
        }
    }

    #[test]
    fn a_name_a_section_or_an_event_type_is_claimed_once() {
        let twice = Server::new().with(probe()).with(probe());
        assert!(
            twice
                .check()
                .unwrap_err()
                .to_string()
                .contains("two capabilities")
        );
        let section = Server::new().with(Probe {
            sections: &["identity"],
            ..probe()
        });
        let err = section.check().unwrap_err().to_string();
        assert!(err.contains("[identity]"), "{err}");
        let event = Server::new().with(Probe {
            events: &["consent.granted"],
            ..probe()
        });
        let err = event.check().unwrap_err().to_string();
        assert!(err.contains("consent.granted"), "{err}");
    }

    async fn get(url: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET /probe HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let status = answer[9..12].parse().unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (status, body)
    }

    async fn spawn_with(
        on: bool,
    ) -> (
        Running,
        Arc<std::sync::atomic::AtomicU64>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let probe = probe();
        let runs = probe.runs.clone();
        let server = Server::new().with(probe);
        let mut config = Config::default();
        config.server.bind = "127.0.0.1:0".into();
        config.storage.data_dir = dir.path().join("data");
        config.set(&ProbeConfig { on });
        (server.spawn(config).await.unwrap(), runs, dir)
    }

    /// The OpenAPI document lists every JSON route of every capability and nothing else.
    #[test]
    fn the_openapi_document_lists_exactly_the_json_routes() {
        let doc: serde_json::Value = serde_json::from_str(tsunagu_api::meta::OPENAPI).unwrap();
        let mut routes: Vec<(&str, &str)> = tsunagu_api::routes();
        routes.extend_from_slice(tsunagu_rights::ROUTES);
        routes.extend_from_slice(tsunagu_staff::ROUTES);
        for (method, path) in &routes {
            let operation = &doc["paths"][path][method.to_lowercase()];
            assert!(operation.is_object(), "{method} {path} is not documented");
            assert!(
                operation["responses"].is_object(),
                "{method} {path} has no responses"
            );
        }
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(
            documented,
            routes.len(),
            "the document lists routes that do not exist"
        );
    }

    /// Every background job of the platform is scheduled (before the capability contract,
    /// `oidc.purge` was implemented but never run).
    #[tokio::test]
    async fn the_default_server_schedules_every_job_of_the_platform() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.bind = "127.0.0.1:0".into();
        config.storage.data_dir = dir.path().join("data");
        let running = Server::new().spawn(config).await.unwrap();
        let mut jobs = running.jobs.clone();
        jobs.sort_unstable();
        assert_eq!(
            jobs,
            [
                "consents.expire",
                "consents.purge_nonces",
                "exchange.missing_receipts",
                "identity.crl_refresh",
                "identity.purge",
                "keys.refresh",
                "ledger.retention",
                "ledger.sign_tree_head",
                "oidc.purge",
                "staff.purge_sessions",
            ]
        );
        assert_eq!(running.capabilities(), Server::new().names());
        running.abort();
    }

    /// The assessment is read from the deployment: its configuration, and the flows the
    /// committee approved.
    #[tokio::test]
    async fn each_capability_reports_its_part_of_the_assessment_from_the_deployment() {
        use tsunagu_crypto::keys::{Alg, SigningKey};
        let dir = tempfile::tempdir().unwrap();
        let member = SigningKey::generate(Alg::Es256).unwrap();
        let mut config = Config::default();
        config.server.bind = "127.0.0.1:0".into();
        config.storage.data_dir = dir.path().join("data");
        config.ledger.retention_days = 0;
        config.governance.quorum = 1;
        config.governance.members = vec![config::MemberConfig {
            id: "chair".into(),
            name: None,
            jwk: member.public_jwk().clone(),
        }];
        let running = Server::new().spawn(config).await.unwrap();
        let sections = running.assessment().await.unwrap();
        let names: Vec<&str> = sections.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, Server::new().names());
        let measure = |id: &str| {
            sections
                .iter()
                .flat_map(|(_, s)| &s.measures)
                .find(|m| m.id == id)
                .unwrap_or_else(|| panic!("no measure {id}"))
                .clone()
        };
        // No CRL configured: revocation is not checked. Retention 0: contents kept.
        assert!(!measure("identity.revocation_checked").in_force);
        assert!(!measure("ledger.retention").in_force);
        assert!(
            measure("identity.attributes_sealed").in_force,
            "the keyring was created"
        );
        let flows = |sections: &[(&str, AssessmentSection)]| -> usize {
            sections.iter().map(|(_, s)| s.flows.len()).sum()
        };
        assert_eq!(flows(&sections), 0);

        // A provider and a consumer with one purpose, approved: one flow.
        let platform = &running.platform;
        let key = SigningKey::generate(Alg::Es256).unwrap();
        let jwks = serde_json::json!({"keys": [key.published_jwk().to_value()]});
        let member = &member;
        let apply = |app: serde_json::Value| async move {
            let app =
                tsunagu_platform::services::parse_application(app.to_string().as_bytes()).unwrap();
            let id = platform.services.apply(app).await.unwrap().service_id;
            let mut header = serde_json::Map::new();
            header.insert("kid".into(), "chair".into());
            let vote = serde_json::json!({"service_id": id, "decision": "approve", "comment": "",
                "issued_at": tsunagu_platform::now(), "nonce": id.to_string()});
            let vote = tsunagu_crypto::jws::sign_with_header(
                member,
                header,
                &tsunagu_crypto::jcs::to_vec(&vote).unwrap(),
            )
            .unwrap();
            platform.governance.vote(&id, &vote).await.unwrap();
            id
        };
        let school = apply(serde_json::json!({
            "name": "school", "organization": "city", "contact": "c@example.jp", "kind": "provider",
            "jwks": jwks.clone(), "endpoint": "http://127.0.0.1:9/redeem",
            "offers": [{"item": "allergy", "title_ja": "アレルギー", "data_class": "closed", "sensitive": true}],
            "security": {"iso27001": true, "incident_contact": "soc@example.jp"}
        }))
        .await;
        let daycare = apply(serde_json::json!({
            "name": "daycare", "organization": "org", "contact": "c@example.jp", "kind": "consumer",
            "jwks": jwks,
            "purposes": [{"id": "meals", "title_ja": "給食", "title_en": "Meals",
                "description_ja": "保育園の給食からアレルゲンを除くためにアレルギー情報を受け取ります。",
                "description_en": "The day-care kitchen removes allergens from meals using the allergy record.",
                "provider": school, "items": ["allergy"], "uses": {"allergy": "献立からアレルゲンを除くため"},
                "retention_days": 365, "legal_basis": "consent", "consent_mode": "opt_in"}],
            "security": {"iso27001": true, "incident_contact": "soc@example.jp"}
        }))
        .await;
        let sections = running.assessment().await.unwrap();
        let all: Vec<&tsunagu_capability::DataFlow> =
            sections.iter().flat_map(|(_, s)| &s.flows).collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].from, school.as_str());
        assert_eq!(all[0].to, daycare.as_str());
        assert_eq!(all[0].items, ["allergy"]);
        assert_eq!(all[0].basis, "consent");
        running.abort();
    }

    #[tokio::test]
    async fn a_capability_that_is_on_is_mounted_and_its_jobs_run() {
        let (running, runs, _dir) = spawn_with(true).await;
        let (status, body) = get(&running.url()).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            format!("mounted beside {}", Server::new().names().len() + 1)
        );
        for _ in 0..50 {
            if runs.load(std::sync::atomic::Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            runs.load(std::sync::atomic::Ordering::SeqCst) >= 2,
            "the job ran again"
        );
        running.abort();
    }

    #[tokio::test]
    async fn a_capability_that_is_off_is_neither_mounted_nor_scheduled() {
        let (running, runs, _dir) = spawn_with(false).await;
        let (status, body) = get(&running.url()).await;
        assert_eq!(status, 404);
        assert!(body.contains("not_found"), "{body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 0);
        running.abort();
    }
}
