//! The `tsunagu connector` sidecar: a provider in front of an existing API, or a consumer's
//! local gateway.
//!
//! ```toml
//! role = "provider"                       # or "consumer"
//! service_id = "svc_…"                    # as the platform assigned it
//! platform_url = "https://id.city.example" # the platform's public URL
//! ca_file = "city-ca.pem"                 # optional: also trust this CA (PEM) for TLS
//! key_file = "signing-key.pem"            # ES256 PKCS#8, its public key in the service's JWKS
//! bind = "127.0.0.1:9101"
//! # optional, mutual TLS (RFC 8705): connect to the platform and to providers with this
//! # client certificate (registered as the service's `tls_client_certificate`) instead of
//! # signing client assertions; tickets are then bound to the certificate
//! tls_client_cert = "client.pem"
//! tls_client_key = "client-key.pem"
//!
//! [provider]
//! endpoint = "https://school.example/tsunagu/redeem"  # as registered (proofs name it)
//! upstream = "http://127.0.0.1:7001/items"            # the existing API
//! encrypt = true                                      # to consumers with an `enc` key
//! # optional: serve the endpoint over TLS (re-read on change), and ask consumers for client
//! # certificates chaining to client_ca (needed to redeem certificate-bound tickets)
//! tls_cert = "provider.pem"
//! tls_key = "provider-key.pem"
//! client_ca = "services-ca.pem"
//!
//! [consumer]
//! encryption_key_file = "encryption-key.pem"          # optional: receive encrypted payloads
//! ```
//!
//! A consumer sidecar serves its own application on `bind` (keep it on loopback):
//! `POST /fetch` with `{subject, purpose_id, items, requester?, reason?}` answers the verified
//! data; `GET /consents?since=` passes the consent feed through.

use crate::consumer::Consumer;
use crate::platform::{ClientTls, PlatformClient, TicketRequest};
use crate::provider::{HttpUpstream, Provider, problem, router};
use crate::{ConnectorError, ServiceIdentity};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tsunagu_crypto::jwe::EncryptionKey;
use tsunagu_crypto::jwk::JwkSet;
use tsunagu_crypto::keys::{Alg, SigningKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Provider,
    Consumer,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarConfig {
    pub role: Role,
    pub service_id: String,
    pub platform_url: String,
    /// CA certificates (PEM) to trust beside the usual roots, for a platform or a provider
    /// whose certificate a private CA issued.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    pub key_file: PathBuf,
    pub bind: String,
    /// The client certificate (PEM) for mutual TLS to the platform and providers.
    #[serde(default)]
    pub tls_client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub tls_client_key: Option<PathBuf>,
    #[serde(default)]
    pub provider: Option<ProviderSection>,
    #[serde(default)]
    pub consumer: Option<ConsumerSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    pub endpoint: String,
    pub upstream: String,
    #[serde(default = "yes")]
    pub encrypt: bool,
    /// The endpoint's certificate chain (PEM): with `tls_key`, the endpoint is served over
    /// TLS.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) of consumers' client certificates.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSection {
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

impl SidecarConfig {
    /// Reads the file; relative paths are relative to its directory.
    pub fn load(path: &Path) -> Result<SidecarConfig, ConnectorError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConnectorError::Config(format!("{}: {e}", path.display())))?;
        let mut config: SidecarConfig = toml::from_str(&text)
            .map_err(|e| ConnectorError::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &PathBuf| {
            if p.is_relative() {
                base.join(p)
            } else {
                p.clone()
            }
        };
        config.key_file = resolve(&config.key_file);
        config.ca_file = config.ca_file.as_ref().map(resolve);
        config.tls_client_cert = config.tls_client_cert.as_ref().map(resolve);
        config.tls_client_key = config.tls_client_key.as_ref().map(resolve);
        if let Some(p) = config.provider.as_mut() {
            p.tls_cert = p.tls_cert.as_ref().map(resolve);
            p.tls_key = p.tls_key.as_ref().map(resolve);
            p.client_ca = p.client_ca.as_ref().map(resolve);
            match (&p.tls_cert, &p.tls_key, &p.client_ca) {
                (Some(_), None, _) | (None, Some(_), _) => {
                    return Err(ConnectorError::Config(
                        "provider.tls_cert and provider.tls_key go together: give both".into(),
                    ));
                }
                (None, None, Some(_)) => {
                    return Err(ConnectorError::Config(
                        "provider.client_ca needs provider.tls_cert and provider.tls_key: \
                         client certificates come with TLS"
                            .into(),
                    ));
                }
                _ => {}
            }
        }
        if config.tls_client_cert.is_some() != config.tls_client_key.is_some() {
            return Err(ConnectorError::Config(
                "tls_client_cert and tls_client_key go together: give both".into(),
            ));
        }
        if let Some(c) = config.consumer.as_mut()
            && let Some(k) = &c.encryption_key_file
        {
            c.encryption_key_file = Some(resolve(k));
        }
        match (config.role, &config.provider) {
            (Role::Provider, None) => {
                return Err(ConnectorError::Config(
                    "role = \"provider\" needs a [provider] section".into(),
                ));
            }
            (Role::Provider, Some(p)) if endpoint_path(&p.endpoint).is_none() => {
                return Err(ConnectorError::Config(format!(
                    "provider.endpoint `{}` is not an http(s) URL",
                    p.endpoint
                )));
            }
            _ => {}
        }
        Ok(config)
    }
}

/// The path part of an http(s) URL.
fn endpoint_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
    Some(path.split(['?', '#']).next().unwrap_or("/").to_owned())
}

/// A running sidecar.
pub struct Running {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await??;
        Ok(())
    }

    pub fn abort(&self) {
        self.task.abort();
    }
}

#[derive(Deserialize)]
struct SinceQuery {
    since: Option<i64>,
}

/// Starts the sidecar described by `config`.
pub async fn start(config: &SidecarConfig) -> Result<Running, ConnectorError> {
    let identity = ServiceIdentity::load(&config.service_id, &config.key_file)?;
    let platform = Arc::new(PlatformClient::with_tls(
        &config.platform_url,
        identity,
        &ClientTls {
            ca_file: config.ca_file.as_deref(),
            client_cert: config
                .tls_client_cert
                .as_deref()
                .zip(config.tls_client_key.as_deref()),
        },
    )?);
    let mut tls = None;
    let app = match config.role {
        Role::Provider => {
            let section = config
                .provider
                .as_ref()
                .ok_or_else(|| ConnectorError::Config("[provider] missing".into()))?;
            let path = endpoint_path(&section.endpoint)
                .ok_or_else(|| ConnectorError::Config("provider.endpoint is not a URL".into()))?;
            let config_error = |e: anyhow::Error| ConnectorError::Config(format!("{e:#}"));
            if let (Some(cert), Some(key)) = (&section.tls_cert, &section.tls_key) {
                tls = Some(tsunagu_tls::Tls {
                    cert: Arc::new(
                        tsunagu_tls::ReloadingCert::load("provider", cert, key)
                            .map_err(config_error)?,
                    ),
                    hangup: None,
                    clients: match &section.client_ca {
                        Some(ca) => Some(
                            tsunagu_tls::client_verifier("provider", ca).map_err(config_error)?,
                        ),
                        None => None,
                    },
                });
            }
            let provider = Arc::new(Provider::new(
                platform,
                Arc::new(HttpUpstream::new(&section.upstream)),
                &section.endpoint,
                section.encrypt,
            ));
            router(provider, &path)
        }
        Role::Consumer => {
            let encryption = match config
                .consumer
                .as_ref()
                .and_then(|c| c.encryption_key_file.as_ref())
            {
                Some(path) => Some(load_encryption_key(path)?),
                None => None,
            };
            let consumer = Arc::new(Consumer::new(platform, encryption));
            axum::Router::new()
                .route(
                    "/fetch",
                    axum::routing::post(
                        |State(consumer): State<Arc<Consumer>>, axum::Json(req): axum::Json<TicketRequest>| async move {
                            match consumer.fetch(&req).await {
                                Ok(fetched) => (StatusCode::OK, axum::Json(fetched)).into_response(),
                                Err(e) => problem(&e),
                            }
                        },
                    ),
                )
                .route(
                    "/consents",
                    axum::routing::get(
                        |State(consumer): State<Arc<Consumer>>, Query(q): Query<SinceQuery>| async move {
                            match consumer.platform().consent_feed(q.since.unwrap_or(0)).await {
                                Ok(feed) => (StatusCode::OK, axum::Json(feed)).into_response(),
                                Err(e) => problem(&e),
                            }
                        },
                    ),
                )
                .with_state(consumer)
        }
    };
    let app = app.route(
        "/healthz",
        axum::routing::get(|| async { axum::Json(json!({"status": "ok"})) }),
    );
    let listener = tokio::net::TcpListener::bind(&config.bind)
        .await
        .map_err(|e| ConnectorError::Config(format!("cannot listen on {}: {e}", config.bind)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ConnectorError::Config(e.to_string()))?;
    let task = match tls {
        Some(tls) => tokio::spawn(tsunagu_tls::serve(
            listener,
            Some(tls),
            tsunagu_tls::Limits {
                header_timeout: std::time::Duration::from_secs(10),
                idle_timeout: std::time::Duration::from_secs(60),
            },
            Arc::new(|_: &tsunagu_tls::Peer, _: &mut _| {}),
            app,
        )),
        None => tokio::spawn(async move { axum::serve(listener, app).await }),
    };
    Ok(Running { addr, task })
}

fn load_encryption_key(path: &Path) -> Result<EncryptionKey, ConnectorError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| ConnectorError::Config(format!("{}: {e}", path.display())))?;
    tsunagu_crypto::keys::pkcs8_from_pem(&pem)
        .and_then(|der| EncryptionKey::from_pkcs8(&der))
        .map_err(|e| ConnectorError::Config(format!("{}: {e}", path.display())))
}

/// Generates a signing key (and optionally an encryption key), writes them as PKCS#8 PEM
/// (owner-only), and returns the JWKS to put in the service's application.
pub fn keygen(
    signing_out: &Path,
    encryption_out: Option<&Path>,
) -> Result<serde_json::Value, ConnectorError> {
    let signing =
        SigningKey::generate(Alg::Es256).map_err(|e| ConnectorError::Config(e.to_string()))?;
    write_private(signing_out, signing.to_pkcs8_pem().as_bytes())?;
    let mut set = JwkSet {
        keys: vec![signing.published_jwk()],
    };
    if let Some(path) = encryption_out {
        let enc = EncryptionKey::generate().map_err(|e| ConnectorError::Config(e.to_string()))?;
        write_private(
            path,
            tsunagu_crypto::keys::pem_encode("PRIVATE KEY", enc.pkcs8()).as_bytes(),
        )?;
        set.keys.push(enc.published_jwk());
    }
    Ok(set.to_value())
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), ConnectorError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| ConnectorError::Config(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_go_in_pairs_and_client_ca_needs_tls() {
        let dir = tempfile::tempdir().unwrap();
        let base = "role = \"provider\"\nservice_id = \"svc\"\nplatform_url = \"https://p\"\nkey_file = \"k.pem\"\nbind = \"127.0.0.1:0\"\n";
        for (extra, expected) in [
            (
                "tls_client_cert = \"c.pem\"\n[provider]\nendpoint = \"https://x/r\"\nupstream = \"http://u\"\n",
                "tls_client_key",
            ),
            (
                "[provider]\nendpoint = \"https://x/r\"\nupstream = \"http://u\"\ntls_cert = \"c.pem\"\n",
                "provider.tls_key",
            ),
            (
                "[provider]\nendpoint = \"https://x/r\"\nupstream = \"http://u\"\nclient_ca = \"ca.pem\"\n",
                "provider.client_ca",
            ),
        ] {
            let path = dir.path().join("s.toml");
            std::fs::write(&path, format!("{base}{extra}")).unwrap();
            let err = SidecarConfig::load(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn endpoint_paths_are_read_from_urls() {
        assert_eq!(
            endpoint_path("https://a.example/tsunagu/redeem?x=1").as_deref(),
            Some("/tsunagu/redeem")
        );
        assert_eq!(endpoint_path("http://127.0.0.1:9000").as_deref(), Some("/"));
        assert_eq!(endpoint_path("ftp://x/y"), None);
    }

    #[test]
    fn keys_made_by_keygen_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = keygen(&dir.path().join("s.pem"), Some(&dir.path().join("e.pem"))).unwrap();
        let set = JwkSet::from_value(&jwks).unwrap();
        assert_eq!(set.keys.len(), 2);
        assert_eq!(set.keys[1].use_.as_deref(), Some("enc"));
        let identity = ServiceIdentity::load("svc", &dir.path().join("s.pem")).unwrap();
        assert_eq!(identity.key.kid(), set.keys[0].kid.as_deref().unwrap());
        load_encryption_key(&dir.path().join("e.pem")).unwrap();
        assert!(
            keygen(&dir.path().join("s.pem"), None).is_err(),
            "never overwrites a key"
        );
    }
}
