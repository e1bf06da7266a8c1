//! The platform's configuration sections and how configuration is read.
//!
//! Configuration is a TOML file overridden by `TSUNAGU_<SECTION>__<KEY>` environment
//! variables (e.g. `TSUNAGU_IDENTITY__NONCE_TTL_SECONDS=60`). Each top-level table is a
//! *section* owned by one capability ([`Section`]); the composition root knows every
//! section in use, so an unknown table or key is an error that names it. Relative paths are
//! resolved against the configuration file's directory.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tsunagu_core::MemberId;
use tsunagu_core::identity::LockoutPolicy;
use tsunagu_crypto::jwk::PublicJwk;

/// A configuration problem, readable by an operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("configuration: {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// One top-level table of the configuration, owned by one capability.
pub trait Section: DeserializeOwned + Serialize + Default {
    /// The table's name (`[identity]`), also the `TSUNAGU_<NAME>__` prefix.
    const NAME: &'static str;

    /// Makes relative paths relative to `base` (the configuration file's directory).
    fn resolve_paths(&mut self, _base: &Path) {}

    /// Checks what the types cannot; the message names the key.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// The configuration as read from a file and the environment, before each capability takes
/// its section.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    figment: Figment,
    base: PathBuf,
}

fn figment_error(e: figment::Error) -> ConfigError {
    ConfigError::Invalid(
        e.into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "),
    )
}

impl ConfigSource {
    /// Reads `path` (if given) and the `TSUNAGU_<SECTION>__<KEY>` variables of the known
    /// `sections`, refusing a table that no section owns.
    pub fn load(path: Option<&Path>, sections: &[&str]) -> Result<ConfigSource, ConfigError> {
        let mut figment = Figment::new();
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
        let known: Vec<String> = sections.iter().map(|s| format!("{s}__")).collect();
        figment = figment.merge(
            Env::prefixed("TSUNAGU_")
                .filter(move |key| {
                    let key = key.as_str().to_ascii_lowercase();
                    known.iter().any(|s| key.starts_with(s.as_str()))
                })
                .split("__"),
        );
        let source = ConfigSource {
            figment,
            // Absolute, so that a section resolved once and written back (the server hands
            // capabilities the platform's resolved sections) resolves to the same paths.
            base: match path.and_then(Path::parent) {
                Some(dir) if !dir.as_os_str().is_empty() => {
                    std::path::absolute(dir).map_err(|e| ConfigError::File {
                        path: dir.to_owned(),
                        reason: e.to_string(),
                    })?
                }
                _ => PathBuf::new(),
            },
        };
        source.check_sections(sections)?;
        Ok(source)
    }

    /// Sets (replaces) one section, for a configuration made in code (the demo, tests).
    pub fn set<S: Section>(&mut self, section: &S) {
        self.figment =
            std::mem::take(&mut self.figment).merge(Serialized::default(S::NAME, section));
    }

    fn check_sections(&self, sections: &[&str]) -> Result<(), ConfigError> {
        let data = self.figment.data().map_err(figment_error)?;
        for dict in data.values() {
            for key in dict.keys() {
                if !sections.contains(&key.as_str()) {
                    return Err(ConfigError::Invalid(format!(
                        "unknown section `{key}` (known: {})",
                        sections.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// The configuration file's directory (relative paths are resolved against it).
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// A section: its table if present (an unknown key is an error that names it), else its
    /// defaults; paths resolved; checked.
    pub fn section<S: Section>(&self) -> Result<S, ConfigError> {
        let mut section: S = if self.figment.find_value(S::NAME).is_ok() {
            self.figment.extract_inner(S::NAME).map_err(figment_error)?
        } else {
            S::default()
        };
        section.resolve_paths(&self.base);
        section.validate()?;
        Ok(section)
    }
}

/// `p` resolved against `base` when it is relative (and there is a base).
pub fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_relative() && !base.as_os_str().is_empty() {
        base.join(p)
    } else {
        p.to_path_buf()
    }
}

/// Every section the platform itself reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlatformConfig {
    pub storage: StorageConfig,
    pub identity: IdentityConfig,
    pub ledger: LedgerConfig,
    pub keys: KeysConfig,
    pub governance: GovernanceConfig,
    pub exchange: ExchangeConfig,
    pub oidc: OidcConfig,
}

impl PlatformConfig {
    /// The names of the platform's sections.
    pub const SECTIONS: &'static [&'static str] = &[
        StorageConfig::NAME,
        IdentityConfig::NAME,
        LedgerConfig::NAME,
        KeysConfig::NAME,
        GovernanceConfig::NAME,
        ExchangeConfig::NAME,
        OidcConfig::NAME,
    ];

    /// Reads every platform section.
    pub fn from_source(source: &ConfigSource) -> Result<PlatformConfig, ConfigError> {
        Ok(PlatformConfig {
            storage: source.section()?,
            identity: source.section()?,
            ledger: source.section()?,
            keys: source.section()?,
            governance: source.section()?,
            exchange: source.section()?,
            oidc: source.section()?,
        })
    }

    /// Checks every section (a configuration made in code).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.storage.validate()?;
        self.identity.validate()?;
        self.ledger.validate()?;
        self.keys.validate()?;
        self.governance.validate()?;
        self.exchange.validate()?;
        self.oidc.validate()
    }

    /// Writes every section into `source` (a configuration made in code).
    pub fn write_to(&self, source: &mut ConfigSource) {
        source.set(&self.storage);
        source.set(&self.identity);
        source.set(&self.ledger);
        source.set(&self.keys);
        source.set(&self.governance);
        source.set(&self.exchange);
        source.set(&self.oidc);
    }

    /// Where the keyring file is.
    pub fn keyring_path(&self) -> PathBuf {
        self.keys
            .keyring_file
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("keyring.json"))
    }
}

impl Section for StorageConfig {
    const NAME: &'static str = "storage";

    fn resolve_paths(&mut self, base: &Path) {
        self.data_dir = resolve(base, &self.data_dir);
    }
}

impl Section for IdentityConfig {
    const NAME: &'static str = "identity";

    fn resolve_paths(&mut self, base: &Path) {
        self.jpki_trust_anchors = self
            .jpki_trust_anchors
            .iter()
            .map(|p| resolve(base, p))
            .collect();
        self.jpki_serial_links = self
            .jpki_serial_links
            .iter()
            .map(|p| resolve(base, p))
            .collect();
        self.jpki_crls = self
            .jpki_crls
            .iter()
            .map(|c| {
                if c.starts_with("http://") || c.starts_with("https://") {
                    c.clone()
                } else {
                    resolve(base, Path::new(c)).to_string_lossy().into_owned()
                }
            })
            .collect();
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for anchor in &self.jpki_trust_anchors {
            if !anchor.is_file() {
                return Err(ConfigError::File {
                    path: anchor.clone(),
                    reason: "identity.jpki_trust_anchors: no such file".into(),
                });
            }
        }
        for links in &self.jpki_serial_links {
            if !links.is_file() {
                return Err(ConfigError::File {
                    path: links.clone(),
                    reason: "identity.jpki_serial_links: no such file".into(),
                });
            }
        }
        for crl in &self.jpki_crls {
            let url = crl.starts_with("http://") || crl.starts_with("https://");
            if !url && !Path::new(crl).is_file() {
                return Err(ConfigError::File {
                    path: PathBuf::from(crl),
                    reason: "identity.jpki_crls: no such file".into(),
                });
            }
        }
        // Fail closed, at start: a proof whose revocation status cannot be established must
        // not pass, and a deployment with anchors but no CRL would fail every enrollment
        // (or, before, accept every certificate unchecked). Better that the operator sees it
        // when starting than that residents see it one by one.
        if !self.jpki_trust_anchors.is_empty()
            && self.jpki_crls.is_empty()
            && self.require_revocation_status
        {
            return Err(ConfigError::Invalid(
                "identity.jpki_trust_anchors is set but identity.jpki_crls is empty while \
                 identity.require_revocation_status = true: card certificates could not be \
                 checked for revocation. Configure the JPKI CRLs (files or URLs), or set \
                 require_revocation_status = false to accept certificates unchecked"
                    .into(),
            ));
        }
        if self.nonce_ttl_seconds == 0 || self.session_ttl_seconds == 0 {
            return Err(ConfigError::Invalid(
                "identity.nonce_ttl_seconds and session_ttl_seconds must be positive".into(),
            ));
        }
        if self.credential_max_days <= 0 {
            return Err(ConfigError::Invalid(
                "identity.credential_max_days must be positive".into(),
            ));
        }
        Ok(())
    }
}

impl Section for LedgerConfig {
    const NAME: &'static str = "ledger";
}

impl Section for KeysConfig {
    const NAME: &'static str = "keys";

    fn resolve_paths(&mut self, base: &Path) {
        if let Some(k) = &self.keyring_file {
            self.keyring_file = Some(resolve(base, k));
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.refresh_seconds == 0 {
            return Err(ConfigError::Invalid(
                "keys.refresh_seconds must be positive".into(),
            ));
        }
        if self.publish_ahead_seconds < self.refresh_seconds as i64 {
            return Err(ConfigError::Invalid(format!(
                "keys.publish_ahead_seconds must be at least keys.refresh_seconds ({}), so every replica holds a new key before it signs",
                self.refresh_seconds
            )));
        }
        if self.sealing_grace_seconds < self.refresh_seconds {
            return Err(ConfigError::Invalid(format!(
                "keys.sealing_grace_seconds must be at least keys.refresh_seconds ({})",
                self.refresh_seconds
            )));
        }
        // Bounds that keep `now + …` far from overflow and a rotation within reason.
        const DAY: u64 = 86_400;
        if self.publish_ahead_seconds > (30 * DAY) as i64 {
            return Err(ConfigError::Invalid(
                "keys.publish_ahead_seconds is at most 30 days (2592000)".into(),
            ));
        }
        if self.refresh_seconds > DAY || self.sealing_grace_seconds > DAY {
            return Err(ConfigError::Invalid(
                "keys.refresh_seconds and keys.sealing_grace_seconds are at most one day (86400)"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Section for GovernanceConfig {
    const NAME: &'static str = "governance";

    fn validate(&self) -> Result<(), ConfigError> {
        if self.quorum == 0 {
            return Err(ConfigError::Invalid(
                "governance.quorum must be at least 1".into(),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for m in &self.members {
            if !ids.insert(m.id.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "governance.members: `{}` is listed twice",
                    m.id
                )));
            }
            if m.jwk.jose_alg() != "ES256" {
                return Err(ConfigError::Invalid(format!(
                    "governance.members `{}`: votes are signed with ES256 (a P-256 key)",
                    m.id
                )));
            }
        }
        if !self.members.is_empty() && self.members.len() < self.quorum {
            return Err(ConfigError::Invalid(format!(
                "governance.quorum is {} but only {} members are configured",
                self.quorum,
                self.members.len()
            )));
        }
        Ok(())
    }
}

impl Section for ExchangeConfig {
    const NAME: &'static str = "exchange";

    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=tsunagu_core::ticket::MAX_TICKET_SECONDS).contains(&self.ticket_ttl_seconds) {
            return Err(ConfigError::Invalid(format!(
                "exchange.ticket_ttl_seconds must be 1 to {}",
                tsunagu_core::ticket::MAX_TICKET_SECONDS
            )));
        }
        if self.max_consent_days <= 0 {
            return Err(ConfigError::Invalid(
                "exchange.max_consent_days must be positive".into(),
            ));
        }
        Ok(())
    }
}

impl Section for OidcConfig {
    const NAME: &'static str = "oidc";

    fn validate(&self) -> Result<(), ConfigError> {
        if self.access_token_seconds <= 0
            || self.id_token_seconds <= 0
            || self.refresh_token_days <= 0
        {
            return Err(ConfigError::Invalid(
                "oidc.access_token_seconds, id_token_seconds and refresh_token_days must be positive"
                    .into(),
            ));
        }
        Ok(())
    }
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
    /// J-LIS's serial-number linkage (シリアル番号の紐付け) as JSON files
    /// (`{"links": [{"old_serial", "new_serial", "linked_at"}]}`, serials in hex): a new
    /// certificate linked to the one that proofed an account re-proofs that account, even
    /// after a change of name. Re-read when a file changes.
    #[serde(default)]
    pub jpki_serial_links: Vec<PathBuf>,
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
            jpki_serial_links: vec![],
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
    pub jwk: PublicJwk,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The keyring (AES-256-GCM keys for data at rest, JSON). Default:
    /// `<data_dir>/keyring.json`, created on first start. Replicas sharing a database must
    /// share this file.
    #[serde(default)]
    pub keyring_file: Option<PathBuf>,
    /// A new signing or ledger key is published this long before it signs (longer than
    /// anyone caches the JWKS, and than `refresh_seconds`). Default: 600.
    #[serde(default = "default_publish_ahead")]
    pub publish_ahead_seconds: i64,
    /// Every replica re-reads the keys and the keyring file this often. Default: 5.
    #[serde(default = "default_keys_refresh")]
    pub refresh_seconds: u64,
    /// After a new keyring key is written, the re-seal pass waits this long, so every replica
    /// has read it and seals with it, before moving rows and removing the old keys.
    /// Default: 60.
    #[serde(default = "default_sealing_grace")]
    pub sealing_grace_seconds: u64,
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig {
            keyring_file: None,
            publish_ahead_seconds: default_publish_ahead(),
            refresh_seconds: default_keys_refresh(),
            sealing_grace_seconds: default_sealing_grace(),
        }
    }
}

fn default_publish_ahead() -> i64 {
    600
}

fn default_keys_refresh() -> u64 {
    5
}

fn default_sealing_grace() -> u64 {
    60
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
    pub id: MemberId,
    #[serde(default)]
    pub name: Option<String>,
    pub jwk: PublicJwk,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_published_for_at_least_one_refresh_before_it_signs() {
        assert!(KeysConfig::default().validate().is_ok());
        let keys = |publish_ahead_seconds, refresh_seconds, sealing_grace_seconds| KeysConfig {
            keyring_file: None,
            publish_ahead_seconds,
            refresh_seconds,
            sealing_grace_seconds,
        };
        assert!(keys(2, 1, 2).validate().is_ok());
        let err = keys(1, 5, 60).validate().unwrap_err().to_string();
        assert!(err.contains("keys.publish_ahead_seconds"), "{err}");
        let err = keys(600, 5, 1).validate().unwrap_err().to_string();
        assert!(err.contains("keys.sealing_grace_seconds"), "{err}");
        let err = keys(600, 0, 60).validate().unwrap_err().to_string();
        assert!(err.contains("keys.refresh_seconds"), "{err}");
    }
}
