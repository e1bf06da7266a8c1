//! Configuration: a TOML file, overridden by `TSUNAGU_<SECTION>__<KEY>` environment
//! variables (e.g. `TSUNAGU_SERVER__BIND=0.0.0.0:8080`). Unknown keys are errors naming the
//! key. Relative paths are resolved against the configuration file's directory.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tsunagu_core::identity::LockoutPolicy;

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub ledger: LedgerConfig,
    #[serde(default)]
    pub keys: KeysConfig,
    #[serde(default)]
    pub governance: GovernanceConfig,
    #[serde(default)]
    pub exchange: ExchangeConfig,
    #[serde(default)]
    pub oidc: OidcConfig,
    #[serde(default)]
    pub dev: DevConfig,
}

/// OpenID Connect ("log in with tsunagu").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Lifetime of access tokens.
    #[serde(default = "default_access_token")]
    pub access_token_seconds: i64,
    /// Lifetime of ID tokens.
    #[serde(default = "default_access_token")]
    pub id_token_seconds: i64,
    /// Lifetime of refresh tokens (each use rotates them).
    #[serde(default = "default_refresh_days")]
    pub refresh_token_days: i64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            access_token_seconds: default_access_token(),
            id_token_seconds: default_access_token(),
            refresh_token_days: default_refresh_days(),
        }
    }
}

fn default_access_token() -> i64 {
    600
}
fn default_refresh_days() -> i64 {
    30
}

/// Development-only features: never set in production.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevConfig {
    /// A directory made by `tsunagu dev jpki init`. When set, the web app offers a
    /// "simulated My Number card" that issues a certificate from this CA and signs the
    /// enrollment proof with it, so a browser can be proofed without a card reader. The CA
    /// must also be a trust anchor.
    #[serde(default)]
    pub simulated_jpki: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// The platform's public URL (issuer of credentials, audience of client assertions).
    /// Default: `http://` + `bind`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// Log format: `text` or `json`.
    #[serde(default = "default_log_format")]
    pub log_format: String,
    /// How often expired consents, missing receipts, nonces and retention are swept.
    #[serde(default = "default_sweep")]
    pub sweep_interval_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: default_bind(),
            public_url: None,
            body_limit_bytes: default_body_limit(),
            log_format: default_log_format(),
            sweep_interval_seconds: default_sweep(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Where the SQLite file, the keyring and cached CRLs live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of SQLite.
    #[serde(default)]
    pub database_url: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: default_data_dir(),
            database_url: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// PEM (or DER) files of the JPKI certificate authorities trusted for proofing.
    #[serde(default)]
    pub jpki_trust_anchors: Vec<PathBuf>,
    /// CRLs: DER or PEM files, or http(s) URLs (fetched, cached in the data directory).
    #[serde(default)]
    pub jpki_crls: Vec<String>,
    /// How often CRLs are fetched again and accounts checked against them (現況確認).
    /// Files are also re-read as soon as they change.
    #[serde(default = "default_crl_refresh")]
    pub crl_refresh_seconds: u64,
    /// Refuse a proof whose revocation status is unknown (no current CRL for its issuer).
    /// With no CRL configured at all, revocation is not checked and the server says so at
    /// start.
    #[serde(default = "yes")]
    pub require_revocation_status: bool,
    /// A certificate policy the card certificate must carry (JPKI signing:
    /// `1.2.392.200149.8.5.1.1.20`). Off by default so that test CAs work.
    #[serde(default)]
    pub required_certificate_policy: Option<String>,
    /// Lifetime of enrollment and login nonces.
    #[serde(default = "default_nonce_ttl")]
    pub nonce_ttl_seconds: u64,
    /// Lifetime of an access token.
    #[serde(default = "default_session_ttl")]
    pub session_ttl_seconds: u64,
    /// Longest life of a device credential (it also ends with the card certificate).
    #[serde(default = "default_credential_days")]
    pub credential_max_days: i64,
    #[serde(default)]
    pub lockout: LockoutConfig,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            jpki_trust_anchors: vec![],
            jpki_crls: vec![],
            crl_refresh_seconds: default_crl_refresh(),
            require_revocation_status: true,
            required_certificate_policy: None,
            nonce_ttl_seconds: default_nonce_ttl(),
            session_ttl_seconds: default_session_ttl(),
            credential_max_days: default_credential_days(),
            lockout: LockoutConfig::default(),
        }
    }
}

/// The growing lock after failed logins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutConfig {
    #[serde(default = "default_lock_threshold")]
    pub threshold: u32,
    #[serde(default = "default_lock_base")]
    pub base_seconds: u64,
    #[serde(default = "default_lock_max")]
    pub max_seconds: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        let p = LockoutPolicy::default();
        LockoutConfig {
            threshold: p.threshold,
            base_seconds: p.base_seconds,
            max_seconds: p.max_seconds,
        }
    }
}

impl LockoutConfig {
    pub fn policy(&self) -> LockoutPolicy {
        LockoutPolicy {
            threshold: self.threshold,
            base_seconds: self.base_seconds,
            max_seconds: self.max_seconds,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// Leaf contents are deleted after this many days (hashes stay). Default: 7 years.
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// A new tree head is signed at least this often when the log has grown.
    #[serde(default = "default_sth_interval")]
    pub sth_interval_seconds: u64,
    /// Serve `/v1/ledger/entries` to anyone. Otherwise only auditors may read entries.
    #[serde(default)]
    pub public_entries: bool,
    /// Auditors allowed to read all entries, each with the public key (JWK, ES256) that
    /// signs their bearer assertions.
    #[serde(default)]
    pub auditors: Vec<AuditorConfig>,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            retention_days: default_retention(),
            sth_interval_seconds: default_sth_interval(),
            public_entries: false,
            auditors: vec![],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditorConfig {
    pub id: String,
    pub jwk: serde_json::Value,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The keyring (AES-256-GCM keys for data at rest, JSON). Default:
    /// `<data_dir>/keyring.json`, created on first start. Replicas sharing a database must
    /// share this file.
    #[serde(default)]
    pub keyring_file: Option<PathBuf>,
}

/// The data governance committee.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceConfig {
    /// Votes of distinct members needed for a decision.
    #[serde(default = "default_quorum")]
    pub quorum: usize,
    /// Members and the public keys (JWK, ES256) their votes are signed with.
    #[serde(default)]
    pub members: Vec<MemberConfig>,
    /// Longest retention (days) the lint accepts, by the most restricted data class of a
    /// purpose's items.
    #[serde(default)]
    pub max_retention_days: RetentionLimits,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        GovernanceConfig {
            quorum: default_quorum(),
            members: vec![],
            max_retention_days: RetentionLimits::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub jwk: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionLimits {
    #[serde(default = "default_retention_open")]
    pub open: u32,
    #[serde(default = "default_retention_limited")]
    pub limited: u32,
    #[serde(default = "default_retention_closed")]
    pub closed: u32,
}

impl Default for RetentionLimits {
    fn default() -> Self {
        RetentionLimits {
            open: default_retention_open(),
            limited: default_retention_limited(),
            closed: default_retention_closed(),
        }
    }
}

/// Data exchange between services.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeConfig {
    /// Ticket lifetime (at most 120).
    #[serde(default = "default_ticket_ttl")]
    pub ticket_ttl_seconds: i64,
    /// Longest consent, in days.
    #[serde(default = "default_max_consent_days")]
    pub max_consent_days: i64,
    /// After a ticket expires, how long both receipts may take before the exchange is
    /// flagged.
    #[serde(default = "default_receipt_grace")]
    pub receipt_grace_seconds: i64,
    /// Ticket requests per second a consumer may make (per server process), and the burst.
    #[serde(default = "default_consumer_rate")]
    pub consumer_rate_per_second: u32,
    #[serde(default = "default_consumer_burst")]
    pub consumer_burst: u32,
    /// Ticket requests per minute about one resident (per server process).
    #[serde(default = "default_resident_rate")]
    pub resident_rate_per_minute: u32,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            ticket_ttl_seconds: default_ticket_ttl(),
            max_consent_days: default_max_consent_days(),
            receipt_grace_seconds: default_receipt_grace(),
            consumer_rate_per_second: default_consumer_rate(),
            consumer_burst: default_consumer_burst(),
            resident_rate_per_minute: default_resident_rate(),
        }
    }
}

fn default_quorum() -> usize {
    2
}
fn default_retention_open() -> u32 {
    3650
}
fn default_retention_limited() -> u32 {
    1825
}
fn default_retention_closed() -> u32 {
    365
}
fn default_ticket_ttl() -> i64 {
    60
}
fn default_max_consent_days() -> i64 {
    3 * 366
}
fn default_receipt_grace() -> i64 {
    600
}
fn default_consumer_rate() -> u32 {
    2000
}
fn default_consumer_burst() -> u32 {
    4000
}
fn default_resident_rate() -> u32 {
    120
}

fn yes() -> bool {
    true
}
fn default_bind() -> String {
    "127.0.0.1:8080".into()
}
fn default_body_limit() -> usize {
    256 * 1024
}
fn default_sweep() -> u64 {
    60
}
fn default_log_format() -> String {
    "text".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}
fn default_crl_refresh() -> u64 {
    3600
}
fn default_nonce_ttl() -> u64 {
    300
}
fn default_session_ttl() -> u64 {
    900
}
fn default_credential_days() -> i64 {
    5 * 366
}
fn default_lock_threshold() -> u32 {
    LockoutPolicy::default().threshold
}
fn default_lock_base() -> u64 {
    LockoutPolicy::default().base_seconds
}
fn default_lock_max() -> u64 {
    LockoutPolicy::default().max_seconds
}
fn default_retention() -> u32 {
    7 * 365 + 2
}
fn default_sth_interval() -> u64 {
    5
}

/// The sections an environment variable may set.
const SECTIONS: &[&str] = &[
    "server",
    "storage",
    "identity",
    "ledger",
    "keys",
    "governance",
    "exchange",
    "oidc",
    "dev",
];

/// A configuration problem, readable by an operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("configuration: {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

impl Config {
    /// Loads `path` (if given) and the environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError::File {
                    path: path.to_owned(),
                    reason: "no such file".into(),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only keys of a known section: other TSUNAGU_* variables (the test suite's
        // database URL, wallet PINs) are not settings.
        figment = figment.merge(
            Env::prefixed("TSUNAGU_")
                .filter(|key| {
                    let key = key.as_str().to_ascii_lowercase();
                    SECTIONS.iter().any(|s| key.starts_with(&format!("{s}__")))
                })
                .split("__"),
        );
        let mut config: Config = figment.extract().map_err(|e| {
            ConfigError::Invalid(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let base = path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        config.resolve_paths(&base);
        config.validate()?;
        Ok(config)
    }

    /// Makes relative paths relative to `base` (the configuration file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &PathBuf| {
            if p.is_relative() && !base.as_os_str().is_empty() {
                base.join(p)
            } else {
                p.clone()
            }
        };
        self.storage.data_dir = resolve(&self.storage.data_dir);
        self.identity.jpki_trust_anchors = self
            .identity
            .jpki_trust_anchors
            .iter()
            .map(resolve)
            .collect();
        self.identity.jpki_crls = self
            .identity
            .jpki_crls
            .iter()
            .map(|c| {
                if c.starts_with("http://") || c.starts_with("https://") {
                    c.clone()
                } else {
                    resolve(&PathBuf::from(c)).to_string_lossy().into_owned()
                }
            })
            .collect();
        if let Some(k) = &self.keys.keyring_file {
            self.keys.keyring_file = Some(resolve(k));
        }
        if let Some(d) = &self.dev.simulated_jpki {
            self.dev.simulated_jpki = Some(resolve(d));
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.server.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "server.bind `{}` is not an address such as 127.0.0.1:8080",
                self.server.bind
            )));
        }
        if !matches!(self.server.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(
                "server.log_format is `text` or `json`".into(),
            ));
        }
        for anchor in &self.identity.jpki_trust_anchors {
            if !anchor.is_file() {
                return Err(ConfigError::File {
                    path: anchor.clone(),
                    reason: "identity.jpki_trust_anchors: no such file".into(),
                });
            }
        }
        for crl in &self.identity.jpki_crls {
            let url = crl.starts_with("http://") || crl.starts_with("https://");
            if !url && !Path::new(crl).is_file() {
                return Err(ConfigError::File {
                    path: PathBuf::from(crl),
                    reason: "identity.jpki_crls: no such file".into(),
                });
            }
        }
        if self.identity.nonce_ttl_seconds == 0 || self.identity.session_ttl_seconds == 0 {
            return Err(ConfigError::Invalid(
                "identity.nonce_ttl_seconds and session_ttl_seconds must be positive".into(),
            ));
        }
        if !(1..=tsunagu_core::ticket::MAX_TICKET_SECONDS)
            .contains(&self.exchange.ticket_ttl_seconds)
        {
            return Err(ConfigError::Invalid(format!(
                "exchange.ticket_ttl_seconds must be 1 to {}",
                tsunagu_core::ticket::MAX_TICKET_SECONDS
            )));
        }
        if self.governance.quorum == 0 {
            return Err(ConfigError::Invalid(
                "governance.quorum must be at least 1".into(),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for m in &self.governance.members {
            if !ids.insert(m.id.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "governance.members: `{}` is listed twice",
                    m.id
                )));
            }
            let jwk = tsunagu_crypto::jwk::PublicJwk::from_value(&m.jwk)
                .map_err(|e| ConfigError::Invalid(format!("governance.members `{}`: {e}", m.id)))?;
            if jwk.jose_alg() != "ES256" {
                return Err(ConfigError::Invalid(format!(
                    "governance.members `{}`: votes are signed with ES256 (a P-256 key)",
                    m.id
                )));
            }
        }
        if !self.governance.members.is_empty()
            && self.governance.members.len() < self.governance.quorum
        {
            return Err(ConfigError::Invalid(format!(
                "governance.quorum is {} but only {} members are configured",
                self.governance.quorum,
                self.governance.members.len()
            )));
        }
        for a in &self.ledger.auditors {
            tsunagu_crypto::jwk::PublicJwk::from_value(&a.jwk)
                .map_err(|e| ConfigError::Invalid(format!("ledger.auditors `{}`: {e}", a.id)))?;
        }
        let o = &self.oidc;
        if o.access_token_seconds <= 0 || o.id_token_seconds <= 0 || o.refresh_token_days <= 0 {
            return Err(ConfigError::Invalid(
                "oidc.access_token_seconds, id_token_seconds and refresh_token_days must be positive"
                    .into(),
            ));
        }
        if let Some(dir) = &self.dev.simulated_jpki
            && !dir.join("ca.pem").is_file()
        {
            return Err(ConfigError::File {
                path: dir.clone(),
                reason: "dev.simulated_jpki: not a directory made by `tsunagu dev jpki init`"
                    .into(),
            });
        }
        if self.identity.credential_max_days <= 0 {
            return Err(ConfigError::Invalid(
                "identity.credential_max_days must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The public URL without a trailing slash.
    pub fn public_url(&self) -> String {
        self.server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.server.bind))
            .trim_end_matches('/')
            .to_owned()
    }

    pub fn keyring_path(&self) -> PathBuf {
        self.keys
            .keyring_file
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("keyring.json"))
    }
}

#[cfg(test)]
#[expect(
    clippy::result_large_err,
    reason = "figment::Jail's closures must return figment's own (large) error type"
)]
mod tests {
    use super::*;

    /// Runs `f` in a jail: its own directory and environment, serialized with the other
    /// configuration tests (they all read the process environment).
    fn jailed(f: impl FnOnce(&Path)) {
        figment::Jail::expect_with(|jail| {
            f(jail.directory());
            Ok(())
        });
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn unknown_keys_are_named_in_the_error() {
        jailed(|dir| {
            let p = write(
                dir,
                "c.toml",
                "[server]\nbind = \"127.0.0.1:1\"\nbnid = 1\n",
            );
            let err = Config::load(Some(&p)).unwrap_err().to_string();
            assert!(err.contains("bnid"), "{err}");
            let p = write(dir, "d.toml", "[sevrer]\nbind = \"x\"\n");
            let err = Config::load(Some(&p)).unwrap_err().to_string();
            assert!(err.contains("sevrer"), "{err}");
        });
    }

    #[test]
    fn missing_trust_anchor_files_are_named() {
        jailed(|dir| {
            let p = write(
                dir,
                "c.toml",
                "[identity]\njpki_trust_anchors = [\"ca.pem\"]\n",
            );
            let err = Config::load(Some(&p)).unwrap_err().to_string();
            assert!(
                err.contains("ca.pem") && err.contains("no such file"),
                "{err}"
            );
        });
    }

    #[test]
    fn paths_resolve_against_the_config_directory() {
        jailed(|dir| {
            let sub = dir.join("etc");
            std::fs::create_dir_all(&sub).unwrap();
            write(&sub, "ca.pem", "x");
            write(&sub, "ca.crl", "x");
            let p = write(
                &sub,
                "c.toml",
                "[storage]\ndata_dir = \"./data\"\n[identity]\njpki_trust_anchors = [\"ca.pem\"]\njpki_crls = [\"ca.crl\", \"https://example.invalid/x.crl\"]\n",
            );
            let c = Config::load(Some(&p)).unwrap();
            assert_eq!(c.storage.data_dir, sub.join("./data"));
            assert_eq!(c.identity.jpki_trust_anchors[0], sub.join("ca.pem"));
            assert_eq!(c.identity.jpki_crls[1], "https://example.invalid/x.crl");
            assert_eq!(c.public_url(), "http://127.0.0.1:8080");
        });
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        jailed(|_| {
            let err = Config::load(Some(Path::new("/nonexistent/tsunagu.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("no such file"), "{err}");
        });
    }

    #[test]
    fn environment_variables_override_the_file_and_others_are_ignored() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[server]\nbind = \"127.0.0.1:1000\"\n")?;
            jail.set_env("TSUNAGU_SERVER__BIND", "127.0.0.1:2000");
            jail.set_env("TSUNAGU_IDENTITY__NONCE_TTL_SECONDS", "42");
            // Not a setting: the test suite's own variable must not be an unknown key.
            jail.set_env("TSUNAGU_TEST_DATABASE_URL", "postgres://x");
            let c = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.server.bind, "127.0.0.1:2000");
            assert_eq!(c.identity.nonce_ttl_seconds, 42);
            Ok(())
        });
    }

    #[test]
    fn a_bad_bind_address_is_refused() {
        jailed(|dir| {
            let p = write(dir, "c.toml", "[server]\nbind = \"localhost\"\n");
            assert!(Config::load(Some(&p)).is_err());
        });
    }
}
