//! Trust in JPKI: the configured trust anchors and CRLs, kept fresh.
//!
//! CRLs come from files (re-read as soon as they change) or URLs (fetched every
//! `crl_refresh_seconds`, cached in the data directory so a restart during an outage still
//! has the last good copy). After every load the accounts proofed with a now-revoked
//! certificate are put into `reproof_required` (JPKI's 現況確認, status confirmation).

use crate::config::IdentityConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use tsunagu_crypto::x509::{
    CrlSet, LeafUsage, RevocationMode, TrustAnchors, ValidationPolicy,
    certificates_from_pem_or_der, crl_from_pem_or_der,
};

/// What one proof verification trusts.
pub struct TrustState {
    pub anchors: TrustAnchors,
    pub crls: CrlSet,
    pub policy: ValidationPolicy,
    /// Where each CRL came from and when it was loaded.
    pub sources: Vec<CrlSource>,
    /// J-LIS's serial-number linkage: a certificate's serial (bytes) to the serial of the
    /// same person's certificate it succeeds.
    pub links: HashMap<Vec<u8>, Vec<u8>>,
}

impl TrustState {
    /// The serials of the earlier certificates `serial` succeeds, newest first (a renewal
    /// after a reissue: every step of the chain), at most 16.
    pub fn predecessors(&self, serial: &[u8]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut at = serial.to_vec();
        while let Some(old) = self.links.get(&at) {
            if out.contains(old) || out.len() >= 16 {
                break;
            }
            out.push(old.clone());
            at = old.clone();
        }
        out
    }
}

/// The linkage file as J-LIS's simulated service writes it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkFile {
    links: Vec<LinkEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkEntry {
    old_serial: String,
    new_serial: String,
    #[allow(dead_code)]
    linked_at: i64,
}

fn hex_serial(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || s.len() > 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Reads linkage files: new serial → old serial. An unreadable file, or an entry that is
/// not hex, is an error naming the file and the entry.
pub fn load_links(paths: &[PathBuf]) -> anyhow::Result<HashMap<Vec<u8>, Vec<u8>>> {
    let mut links = HashMap::new();
    for path in paths {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("serial linkage {}: {e}", path.display()))?;
        let file: LinkFile = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("serial linkage {}: {e}", path.display()))?;
        for (i, entry) in file.links.iter().enumerate() {
            let (Some(old), Some(new)) =
                (hex_serial(&entry.old_serial), hex_serial(&entry.new_serial))
            else {
                anyhow::bail!(
                    "serial linkage {}: links[{i}]: serials are hex (up to 32 bytes)",
                    path.display()
                );
            };
            links.insert(new, old);
        }
    }
    Ok(links)
}

/// The provenance of a loaded CRL, for `/healthz` and the logs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CrlSource {
    pub location: String,
    pub loaded: bool,
    pub error: Option<String>,
    pub this_update: Option<i64>,
    pub next_update: Option<i64>,
    pub revoked: usize,
}

/// The current trust state, swapped atomically on refresh.
pub struct Trust {
    config: IdentityConfig,
    cache_dir: PathBuf,
    current: RwLock<Arc<TrustState>>,
    file_stamps: RwLock<HashMap<String, SystemTime>>,
    http: ureq::Agent,
}

/// The largest CRL fetched (JPKI's full CRL runs to tens of megabytes).
const MAX_CRL_BYTES: u64 = 256 * 1024 * 1024;

/// An HTTP client for CRL distribution points: rustls on aws-lc-rs with the web PKI roots,
/// 30 s for a whole fetch. Blocking: fetches run on the blocking pool, a few times a day.
fn http_agent() -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .build();
    ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .http_status_as_error(false)
        .tls_config(tls)
        .build()
        .into()
}

fn anchors(config: &IdentityConfig) -> anyhow::Result<TrustAnchors> {
    let mut ders = Vec::new();
    for path in &config.jpki_trust_anchors {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("trust anchor {}: {e}", path.display()))?;
        let certs = certificates_from_pem_or_der(&bytes)
            .map_err(|e| anyhow::anyhow!("trust anchor {}: {e}", path.display()))?;
        ders.extend(certs);
    }
    TrustAnchors::from_ders(ders).map_err(|e| anyhow::anyhow!("trust anchors: {e}"))
}

fn is_url(location: &str) -> bool {
    location.starts_with("http://") || location.starts_with("https://")
}

impl Trust {
    /// Loads anchors (an error if any is unreadable) and CRLs (a file that cannot be read is
    /// an error; an unreachable URL falls back to its cached copy, or is reported).
    pub async fn load(config: &IdentityConfig, data_dir: &Path) -> anyhow::Result<Trust> {
        let trust = Trust {
            config: config.clone(),
            cache_dir: data_dir.join("crl-cache"),
            current: RwLock::new(Arc::new(TrustState {
                anchors: anchors(config)?,
                crls: CrlSet::default(),
                policy: ValidationPolicy::default(),
                sources: vec![],
                links: load_links(&config.jpki_serial_links)?,
            })),
            file_stamps: RwLock::new(HashMap::new()),
            http: http_agent(),
        };
        for location in &config.jpki_crls {
            if !is_url(location) {
                let bytes =
                    std::fs::read(location).map_err(|e| anyhow::anyhow!("CRL {location}: {e}"))?;
                let der = crl_from_pem_or_der(&bytes)
                    .map_err(|e| anyhow::anyhow!("CRL {location}: {e}"))?;
                CrlSet::from_ders(&[der]).map_err(|e| anyhow::anyhow!("CRL {location}: {e}"))?;
            }
        }
        trust.refresh().await?;
        if config.jpki_crls.is_empty() && !config.jpki_trust_anchors.is_empty() {
            tracing::warn!(
                "no CRL is configured: card certificates are NOT checked for revocation"
            );
        }
        Ok(trust)
    }

    /// The state to verify with now.
    pub fn current(&self) -> Arc<TrustState> {
        self.current.read().expect("trust lock").clone()
    }

    /// Whether any CRL file changed since it was last read.
    pub fn files_changed(&self) -> bool {
        let stamps = self.file_stamps.read().expect("trust lock");
        let links = self
            .config
            .jpki_serial_links
            .iter()
            .map(|p| p.to_string_lossy().into_owned());
        self.config
            .jpki_crls
            .iter()
            .filter(|l| !is_url(l))
            .cloned()
            .chain(links)
            .any(|l| {
                let now = std::fs::metadata(&l).and_then(|m| m.modified()).ok();
                now != stamps.get(&l).copied()
            })
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let (agent, url) = (self.http.clone(), url.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut response = agent.get(&url).call().map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            response
                .body_mut()
                .with_config()
                .limit(MAX_CRL_BYTES)
                .read_to_vec()
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    fn cache_path(&self, url: &str) -> PathBuf {
        let name = tsunagu_crypto::b64::url_encode(tsunagu_crypto::sha256(url.as_bytes()));
        self.cache_dir.join(format!("{name}.crl"))
    }

    /// Loads every CRL again and swaps the state in.
    pub async fn refresh(&self) -> anyhow::Result<Arc<TrustState>> {
        let mut ders = Vec::new();
        let mut sources = Vec::new();
        let mut stamps = HashMap::new();
        for location in &self.config.jpki_crls {
            // A fetch that failed although a cached copy stood in: reported, not fatal.
            let mut fetch_failed = None;
            let loaded: Result<Vec<u8>, String> = if is_url(location) {
                match self.fetch(location).await {
                    Ok(bytes) => {
                        let _ = std::fs::create_dir_all(&self.cache_dir);
                        if let Err(e) = std::fs::write(self.cache_path(location), &bytes) {
                            tracing::warn!(%location, error = %e, "could not cache the CRL");
                        }
                        Ok(bytes)
                    }
                    Err(e) => {
                        tracing::error!(%location, error = %e, "CRL fetch failed; using the cached copy if any");
                        fetch_failed = Some(format!("fetch failed ({e}); the cached copy is used"));
                        std::fs::read(self.cache_path(location))
                            .map_err(|_| format!("fetch failed ({e}) and no cached copy"))
                    }
                }
            } else {
                if let Ok(modified) = std::fs::metadata(location).and_then(|m| m.modified()) {
                    stamps.insert(location.clone(), modified);
                }
                std::fs::read(location).map_err(|e| e.to_string())
            };
            let parsed = loaded.and_then(|bytes| {
                let der = crl_from_pem_or_der(&bytes).map_err(|e| e.to_string())?;
                CrlSet::from_ders(std::slice::from_ref(&der)).map_err(|e| e.to_string())?;
                Ok(der)
            });
            match parsed {
                Ok(der) => {
                    ders.push(der);
                    sources.push(CrlSource {
                        location: location.clone(),
                        loaded: true,
                        error: fetch_failed,
                        this_update: None,
                        next_update: None,
                        revoked: 0,
                    });
                }
                Err(e) => {
                    tracing::error!(%location, error = %e, "CRL not loaded");
                    sources.push(CrlSource {
                        location: location.clone(),
                        loaded: false,
                        error: Some(e),
                        this_update: None,
                        next_update: None,
                        revoked: 0,
                    });
                }
            }
        }
        let crls = CrlSet::from_ders(&ders).map_err(|e| anyhow::anyhow!("CRLs: {e}"))?;
        for (source, info) in sources.iter_mut().filter(|s| s.loaded).zip(crls.infos()) {
            source.this_update = Some(info.this_update);
            source.next_update = info.next_update;
            source.revoked = info.revoked.len();
        }
        let policy = ValidationPolicy {
            revocation: if self.config.jpki_crls.is_empty() {
                RevocationMode::Off
            } else {
                RevocationMode::Chain
            },
            require_status: self.config.require_revocation_status,
            enforce_crl_expiry: true,
            leaf_usage: LeafUsage::Signing,
            required_policy: self.config.required_certificate_policy.clone(),
        };
        let links = match load_links(&self.config.jpki_serial_links) {
            Ok(links) => links,
            Err(e) => {
                // The previous linkage stays in force; the run is reported as failed.
                tracing::error!(error = %e, "serial linkage not loaded");
                sources.push(CrlSource {
                    location: "identity.jpki_serial_links".into(),
                    loaded: false,
                    error: Some(e.to_string()),
                    this_update: None,
                    next_update: None,
                    revoked: 0,
                });
                self.current().links.clone()
            }
        };
        for path in &self.config.jpki_serial_links {
            if let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) {
                stamps.insert(path.to_string_lossy().into_owned(), modified);
            }
        }
        let state = Arc::new(TrustState {
            anchors: self.current().anchors.clone(),
            crls,
            policy,
            sources,
            links,
        });
        *self.current.write().expect("trust lock") = state.clone();
        *self.file_stamps.write().expect("trust lock") = stamps;
        Ok(state)
    }
}
