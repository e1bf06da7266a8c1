//! The configuration as the server assembles it: its own `[server]` section, the platform's
//! sections, and the sections of every capability, from one TOML file overridden by
//! `TSUNAGU_<SECTION>__<KEY>` environment variables. Unknown tables and keys are errors
//! that name them. Relative paths are resolved against the configuration file's directory.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
pub use tsunagu_platform::config::{
    AuditorConfig, ExchangeConfig, GovernanceConfig, IdentityConfig, KeysConfig, LedgerConfig,
    LockoutConfig, MemberConfig, OidcConfig, RetentionLimits, StorageConfig,
};
pub use tsunagu_platform::{ConfigError, ConfigSource, PlatformConfig, Section};

/// `[server]`: the listener and the composition root's own settings.
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
    /// How often the periodic sweeps run (expired consents, missing receipts, nonces,
    /// retention).
    #[serde(default = "default_sweep")]
    pub sweep_interval_seconds: u64,
    /// Challenges, and logins, each per minute per client address on the endpoints anyone
    /// may call (0: no limit).
    #[serde(default = "default_anonymous_rate")]
    pub anonymous_requests_per_minute: u32,
    /// Service applications per hour per client address (0: no limit).
    #[serde(default = "default_applications_rate")]
    pub service_applications_per_hour: u32,
    /// The listener's certificate chain (PEM, leaf first). With `tls_key`, the platform
    /// serves HTTPS and re-reads both files on SIGHUP or when they change.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) of services' client certificates (mutual TLS, RFC 8705). With
    /// it the TLS handshake asks for a client certificate; one that chains to these CAs and
    /// whose SHA-256 a service registered authenticates the requests on that connection as
    /// the service. Needs `tls_cert` and `tls_key`.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback: only behind a proxy that
    /// terminates TLS.
    #[serde(default)]
    pub allow_plain_http: bool,
    /// The proxies (CIDRs, or single addresses) whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are believed. Default: none.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// How long a client may take to send a request's header (and the TLS handshake).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_seconds: u64,
    /// How long a connection may stay open with nothing sent either way.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: default_bind(),
            public_url: None,
            body_limit_bytes: default_body_limit(),
            log_format: default_log_format(),
            sweep_interval_seconds: default_sweep(),
            anonymous_requests_per_minute: default_anonymous_rate(),
            service_applications_per_hour: default_applications_rate(),
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            allow_plain_http: false,
            trusted_proxies: Vec::new(),
            header_timeout_seconds: default_header_timeout(),
            idle_timeout_seconds: default_idle_timeout(),
        }
    }
}

impl ServerConfig {
    /// The certificate and key files, when the listener serves TLS.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    /// `trusted_proxies` parsed (checked by `validate`; a bad entry is skipped here).
    pub fn trusted_proxy_nets(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| parse_net(p).ok())
            .collect()
    }
}

/// A CIDR, or a single address as a /32 or /128.
fn parse_net(text: &str) -> Result<ipnet::IpNet, ()> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| ())
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
fn default_anonymous_rate() -> u32 {
    120
}
fn default_applications_rate() -> u32 {
    30
}
fn default_log_format() -> String {
    "text".into()
}
fn default_header_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    60
}

impl Section for ServerConfig {
    const NAME: &'static str = "server";

    fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.tls_cert, &mut self.tls_key, &mut self.client_ca]
            .into_iter()
            .flatten()
        {
            *p = tsunagu_platform::config::resolve(base, p);
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let Ok(bind) = self.bind.parse::<SocketAddr>() else {
            return Err(ConfigError::Invalid(format!(
                "server.bind `{}` is not an address such as 127.0.0.1:8080",
                self.bind
            )));
        };
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(ConfigError::Invalid(
                    "server.tls_cert is set but server.tls_key is not: give both".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "server.tls_key is set but server.tls_cert is not: give both".into(),
                ));
            }
            (Some(cert), Some(key)) => {
                for (name, path) in [("tls_cert", cert), ("tls_key", key)] {
                    if !path.is_file() {
                        return Err(ConfigError::File {
                            path: path.clone(),
                            reason: format!("server.{name}: no such file"),
                        });
                    }
                }
            }
            (None, None) => {
                if self.client_ca.is_some() {
                    return Err(ConfigError::Invalid(
                        "server.client_ca is set but the listener has no TLS: client \
                         certificates need [server] tls_cert and tls_key"
                            .into(),
                    ));
                }
                if !bind.ip().is_loopback() && !self.allow_plain_http {
                    return Err(ConfigError::Invalid(format!(
                        "server.bind `{}` is not a loopback address and the listener has no TLS: \
                         set [server] tls_cert and tls_key, or [server] allow_plain_http = true \
                         when a proxy in front terminates TLS",
                        self.bind
                    )));
                }
            }
        }
        if let Some(ca) = &self.client_ca
            && !ca.is_file()
        {
            return Err(ConfigError::File {
                path: ca.clone(),
                reason: "server.client_ca: no such file".into(),
            });
        }
        for p in &self.trusted_proxies {
            if parse_net(p).is_err() {
                return Err(ConfigError::Invalid(format!(
                    "server.trusted_proxies: `{p}` is not a CIDR such as 10.0.0.0/8 or an address"
                )));
            }
        }
        if self.header_timeout_seconds == 0 {
            return Err(ConfigError::Invalid(
                "server.header_timeout_seconds must be at least 1".into(),
            ));
        }
        if self.idle_timeout_seconds == 0 {
            return Err(ConfigError::Invalid(
                "server.idle_timeout_seconds must be at least 1".into(),
            ));
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(
                "server.log_format is `text` or `json`".into(),
            ));
        }
        Ok(())
    }
}

/// The whole configuration: the server's and the platform's sections as typed values (set
/// them in code for the demo and tests: `config.storage.data_dir = …` reaches the
/// platform's sections through `Deref`), and the source every capability reads its own
/// sections from.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub server: ServerConfig,
    pub platform: PlatformConfig,
    /// The file and environment as read; capabilities' own sections live here.
    pub source: ConfigSource,
}

impl std::ops::Deref for Config {
    type Target = PlatformConfig;

    fn deref(&self) -> &PlatformConfig {
        &self.platform
    }
}

impl std::ops::DerefMut for Config {
    fn deref_mut(&mut self) -> &mut PlatformConfig {
        &mut self.platform
    }
}

impl Config {
    /// The sections the server and the platform own.
    pub const SECTIONS: &'static [&'static str] = &[ServerConfig::NAME, "storage", "keys"];

    /// Loads `path` (if given) and the environment, knowing `sections` (every section in use:
    /// see [`crate::Server::sections`]).
    pub fn load(path: Option<&Path>, sections: &[&str]) -> Result<Config, ConfigError> {
        let source = ConfigSource::load(path, sections)?;
        Ok(Config {
            server: source.section()?,
            platform: PlatformConfig::from_source(&source)?,
            source,
        })
    }

    /// Sets a capability's section in code (the demo, tests).
    pub fn set<S: Section>(&mut self, section: &S) {
        self.source.set(section);
    }

    /// Checks every section (a configuration made in code).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.platform.validate()
    }

    /// The public URL without a trailing slash.
    pub fn public_url(&self) -> String {
        let scheme = if self.server.tls().is_some() {
            "https"
        } else {
            "http"
        };
        self.server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", self.server.bind))
            .trim_end_matches('/')
            .to_owned()
    }
}

#[cfg(test)]
#[expect(
    clippy::result_large_err,
    reason = "figment::Jail's closures must return figment's own (large) error type"
)]
mod tests {
    use super::*;

    /// The sections of the default server.
    fn sections() -> Vec<&'static str> {
        crate::Server::new().sections()
    }

    fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(path, &sections())
    }

    /// Runs `f` in a jail: its own directory and environment, serialized with the other
    /// configuration tests (they all read the process environment).
    fn jailed(f: impl FnOnce(&Path)) {
        figment::Jail::expect_with(|jail| {
            f(jail.directory());
            Ok(())
        });
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
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
            let err = load(Some(&p)).unwrap_err().to_string();
            assert!(err.contains("bnid"), "{err}");
            let p = write(dir, "d.toml", "[sevrer]\nbind = \"x\"\n");
            let err = load(Some(&p)).unwrap_err().to_string();
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
            let err = load(Some(&p)).unwrap_err().to_string();
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
            let c = load(Some(&p)).unwrap();
            assert_eq!(c.storage.data_dir, sub.join("./data"));
            assert_eq!(c.identity.jpki_trust_anchors[0], sub.join("ca.pem"));
            assert_eq!(c.identity.jpki_crls[1], "https://example.invalid/x.crl");
            assert_eq!(c.public_url(), "http://127.0.0.1:8080");
        });
    }

    #[test]
    fn a_section_written_back_resolves_to_the_same_paths() {
        jailed(|dir| {
            let sub = dir.join("etc");
            std::fs::create_dir_all(&sub).unwrap();
            write(&sub, "ca.pem", "x");
            write(
                &sub,
                "c.toml",
                "[storage]\ndata_dir = \"data\"\n[identity]\njpki_trust_anchors = [\"ca.pem\"]\njpki_crls = [\"https://example.invalid/x.crl\"]\n",
            );
            // A configuration file named relative to the working directory.
            let mut c = load(Some(Path::new("etc/c.toml"))).unwrap();
            assert!(c.identity.jpki_trust_anchors[0].is_absolute());
            c.platform.write_to(&mut c.source);
            let again: IdentityConfig = c.source.section().unwrap();
            assert_eq!(again.jpki_trust_anchors, c.identity.jpki_trust_anchors);
            let storage: StorageConfig = c.source.section().unwrap();
            assert_eq!(storage.data_dir, c.storage.data_dir);
        });
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        jailed(|_| {
            let err = load(Some(Path::new("/nonexistent/tsunagu.toml")))
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
            let c = load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.server.bind, "127.0.0.1:2000");
            assert_eq!(c.identity.nonce_ttl_seconds, 42);
            Ok(())
        });
    }

    #[test]
    fn plain_http_beyond_loopback_is_refused_naming_the_keys_unless_allowed() {
        jailed(|dir| {
            let p = write(dir, "c.toml", "[server]\nbind = \"0.0.0.0:8080\"\n");
            let err = load(Some(&p)).unwrap_err().to_string();
            for key in ["[server] tls_cert", "tls_key", "[server] allow_plain_http"] {
                assert!(err.contains(key), "{err}");
            }
            let p = write(
                dir,
                "d.toml",
                "[server]\nbind = \"0.0.0.0:8080\"\nallow_plain_http = true\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\"]\n",
            );
            let c = load(Some(&p)).unwrap();
            assert_eq!(c.server.trusted_proxy_nets().len(), 2);
            let p = write(dir, "e.toml", "[server]\nbind = \"[::1]:8080\"\n");
            assert!(load(Some(&p)).is_ok(), "loopback needs no TLS");
        });
    }

    #[test]
    fn tls_and_proxy_settings_are_checked_naming_the_key() {
        jailed(|dir| {
            write(dir, "cert.pem", "x");
            for (text, key) in [
                ("tls_cert = \"cert.pem\"", "server.tls_key"),
                ("tls_key = \"cert.pem\"", "server.tls_cert"),
                (
                    "tls_cert = \"cert.pem\"\ntls_key = \"nope.pem\"",
                    "server.tls_key",
                ),
                (
                    "trusted_proxies = [\"10.0.0.0/33\"]",
                    "server.trusted_proxies",
                ),
                ("client_ca = \"cert.pem\"", "server.client_ca"),
                (
                    "tls_cert = \"cert.pem\"\ntls_key = \"cert.pem\"\nclient_ca = \"nope.pem\"",
                    "server.client_ca",
                ),
                (
                    "header_timeout_seconds = 0",
                    "server.header_timeout_seconds",
                ),
                ("idle_timeout_seconds = 0", "server.idle_timeout_seconds"),
            ] {
                let p = write(dir, "c.toml", &format!("[server]\n{text}\n"));
                let err = load(Some(&p)).unwrap_err().to_string();
                assert!(err.contains(key), "{text}: {err}");
            }
        });
    }

    #[test]
    fn a_bad_bind_address_is_refused() {
        jailed(|dir| {
            let p = write(dir, "c.toml", "[server]\nbind = \"localhost\"\n");
            assert!(load(Some(&p)).is_err());
        });
    }
}
