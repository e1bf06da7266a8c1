//! The listener's certificate: read from a section's `tls_cert` and `tls_key` (`[server]`,
//! or a connector's `[provider]`), served by a resolver that hands each new handshake the
//! current pair, and re-read on SIGHUP or when either file changes. Connections already open
//! keep the session they have; a new pair that does not load (unreadable, not PEM, key not
//! matching) leaves the old one in place and is logged as an error.
//!
//! With a client CA ([`client_verifier`]) the handshake asks for a client certificate
//! (RFC 8705): one that chains to the CA is accepted and its SHA-256 reaches each request
//! ([`crate::ClientCert`]); a client without one still connects (browsers, services that
//! authenticate by assertion), and one whose certificate does not chain is refused.

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How often the files are compared with what was loaded.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The certificate and key files and the pair loaded from them.
#[derive(Debug)]
pub struct ReloadingCert {
    /// The configuration section the files are named in (`server`, `provider`).
    section: &'static str,
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' bytes at the last attempt, so that a bad pair is reported once.
    seen: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl ReloadingCert {
    /// Loads the pair; an error names the file and what is wrong with it.
    pub fn load(section: &'static str, cert: &Path, key: &Path) -> anyhow::Result<ReloadingCert> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let (cert_pem, key_pem) = read_pair(section, cert, key)?;
        let pair = certified_key(section, &provider, cert, &cert_pem, key, &key_pem)?;
        Ok(ReloadingCert {
            section,
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new(Arc::new(pair)),
            seen: Mutex::new((cert_pem, key_pem)),
        })
    }

    /// Re-reads the files: when they changed (or always, with `force`), the new pair
    /// replaces the old one if it loads. `Ok(true)` when it was replaced.
    pub fn reload(&self, force: bool) -> anyhow::Result<bool> {
        let (cert_pem, key_pem) = read_pair(self.section, &self.cert, &self.key)?;
        {
            let mut seen = self.seen.lock().expect("certificate lock");
            if !force && seen.0 == cert_pem && seen.1 == key_pem {
                return Ok(false);
            }
            *seen = (cert_pem.clone(), key_pem.clone());
        }
        let pair = certified_key(
            self.section,
            &self.provider,
            &self.cert,
            &cert_pem,
            &self.key,
            &key_pem,
        )?;
        *self.current.write().expect("certificate lock") = Arc::new(pair);
        Ok(true)
    }

    /// A TLS configuration that serves the current pair (HTTP/2 and HTTP/1.1 by ALPN), and
    /// asks for client certificates when `clients` is given.
    pub fn server_config(
        self: &Arc<Self>,
        clients: Option<Arc<dyn ClientCertVerifier>>,
    ) -> anyhow::Result<rustls::ServerConfig> {
        let builder = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match clients {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Reloads on every SIGHUP and whenever the files change, for as long as it runs.
    pub async fn watch(self: Arc<Self>, mut hangup: Option<Hangup>) {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let force = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = recv(&mut hangup) => true,
            };
            let this = self.clone();
            let outcome = tokio::task::spawn_blocking(move || this.reload(force)).await;
            match outcome {
                Ok(Ok(true)) => {
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded")
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::error!(
                    error = format!("{e:#}"),
                    "the new TLS certificate was not loaded; the previous one is still served"
                ),
                Err(e) => tracing::error!(error = %e, "TLS certificate reload failed"),
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock").clone())
    }
}

/// SIGHUP, where there is such a thing.
#[cfg(unix)]
pub type Hangup = tokio::signal::unix::Signal;
#[cfg(not(unix))]
pub type Hangup = std::convert::Infallible;

/// Listens for SIGHUP (from now on: the default action, ending the process, is replaced).
pub fn hangup() -> Option<Hangup> {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; certificate files are still watched");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

async fn recv(hangup: &mut Option<Hangup>) -> Option<()> {
    match hangup {
        #[cfg(unix)]
        Some(s) => s.recv().await,
        #[cfg(not(unix))]
        Some(never) => match *never {},
        None => std::future::pending().await,
    }
}

/// A verifier of client certificates chaining to the CA certificates (PEM) in `ca_file`,
/// named `<section>.client_ca` in errors. Clients without a certificate are let through (the
/// request then authenticates some other way); a certificate that does not chain ends the
/// handshake.
pub fn client_verifier(
    section: &str,
    ca_file: &Path,
) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let bad = |e: String| anyhow::anyhow!("{section}.client_ca {}: {e}", ca_file.display());
    let pem = std::fs::read(ca_file).map_err(|e| bad(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| bad(e.to_string()))
}

fn read_pair(section: &str, cert: &Path, key: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let read = |name: &str, p: &Path| {
        std::fs::read(p).map_err(|e| anyhow::anyhow!("{section}.{name} {}: {e}", p.display()))
    };
    Ok((read("tls_cert", cert)?, read("tls_key", key)?))
}

fn certified_key(
    section: &str,
    provider: &CryptoProvider,
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{section}.tls_cert {}: {e}", cert_path.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "{section}.tls_cert {}: no PEM certificate in the file",
            cert_path.display()
        );
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| anyhow::anyhow!("{section}.tls_key {}: {e}", key_path.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| anyhow::anyhow!("{section}.tls_key {}: {e}", key_path.display()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|e| {
        anyhow::anyhow!(
            "{section}.tls_key {} does not belong to {section}.tls_cert {}: {e}",
            key_path.display(),
            cert_path.display()
        )
    })?;
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a self-signed pair for 127.0.0.1; returns the certificate's DER.
    fn write_pair(dir: &Path) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        cert.der().to_vec()
    }

    fn served(c: &ReloadingCert) -> Vec<u8> {
        c.current.read().unwrap().cert[0].to_vec()
    }

    #[test]
    fn the_files_are_read_again_only_when_they_change_and_a_bad_pair_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let first = write_pair(dir.path());
        let c = ReloadingCert::load("server", &cert, &key).unwrap();
        assert!(!c.reload(false).unwrap(), "unchanged");
        let second = write_pair(dir.path());
        assert!(c.reload(false).unwrap(), "changed");
        assert_eq!(served(&c), second);
        assert_ne!(first, second);

        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nbm90\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = c.reload(false).unwrap_err().to_string();
        assert!(err.contains("server.tls_"), "{err}");
        assert_eq!(served(&c), second, "the old pair stays");
        assert!(!c.reload(false).unwrap(), "a bad pair is reported once");
    }

    #[test]
    fn a_key_that_does_not_belong_to_the_certificate_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path());
        std::fs::rename(dir.path().join("key.pem"), dir.path().join("old-key.pem")).unwrap();
        write_pair(dir.path());
        let err = ReloadingCert::load(
            "server",
            &dir.path().join("cert.pem"),
            &dir.path().join("old-key.pem"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("does not belong"), "{err}");
    }
}
