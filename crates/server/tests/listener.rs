//! The listener end to end: TLS with a CA made here, certificate reload, the security
//! headers on every kind of response, the slow-header deadline, and forwarding headers
//! believed only from trusted proxies.

use axum::Router;
use axum::extract::Extension;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tsunagu_capability::{Capability, ClientAddr, Context, Mount};
use tsunagu_server::{Config, Running, Server};

/// A CA made for the test, and server certificates it signs for 127.0.0.1.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// Writes a new server certificate and key to `dir`/server.pem and server-key.pem;
    /// returns the certificate's DER.
    fn issue(&self, dir: &Path) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        // Written beside and renamed, as a certificate manager does.
        std::fs::write(dir.join("next.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("next-key.pem"), key.serialize_pem()).unwrap();
        std::fs::rename(dir.join("next-key.pem"), dir.join("server-key.pem")).unwrap();
        std::fs::rename(dir.join("next.pem"), dir.join("server.pem")).unwrap();
        cert.der().to_vec()
    }

    fn roots(&self) -> rustls::RootCertStore {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from_pem_slice(self.pem.as_bytes()).unwrap())
            .unwrap();
        roots
    }
}

/// A capability that answers `GET /whoami` with the client the listener saw.
struct WhoAmI;

impl Capability for WhoAmI {
    fn name(&self) -> &'static str {
        "whoami"
    }

    fn mount(&self, _ctx: &Context) -> anyhow::Result<Mount> {
        Ok(Mount::routes(Router::new().route(
            "/whoami",
            axum::routing::get(|Extension(c): Extension<ClientAddr>| async move {
                format!("{} {}", c.ip, if c.https { "https" } else { "http" })
            }),
        )))
    }
}

fn config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.server.bind = "127.0.0.1:0".into();
    config.storage.data_dir = dir.join("data");
    config
}

fn tls_config(dir: &Path) -> Config {
    let mut config = config(dir);
    config.server.tls_cert = Some(dir.join("server.pem"));
    config.server.tls_key = Some(dir.join("server-key.pem"));
    config
}

async fn spawn(config: Config) -> Running {
    Server::new().with(WhoAmI).spawn(config).await.unwrap()
}

fn client_trusting(ca: &TestCa) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_client_trusting_the_ca_gets_healthz_over_tls_with_hsts_and_nosniff() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    ca.issue(dir.path());
    let running = spawn(tls_config(dir.path())).await;
    assert!(running.url().starts_with("https://127.0.0.1:"));
    let answer = client_trusting(&ca)
        .get(format!("{}/healthz", running.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let h = answer.headers();
    assert_eq!(h["strict-transport-security"], "max-age=31536000");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    running.abort();
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    ca.issue(dir.path());
    let running = spawn(tls_config(dir.path())).await;
    let other = TestCa::new();
    let err = client_trusting(&other)
        .get(format!("{}/healthz", running.url()))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // Nor does plain HTTP get an answer from the TLS listener.
    let plain = reqwest::get(format!("http://{}/healthz", running.addr)).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    running.abort();
}

#[tokio::test]
async fn every_kind_of_response_carries_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    ca.issue(dir.path());
    let running = spawn(tls_config(dir.path())).await;
    let http = client_trusting(&ca);
    for (path, status) in [
        ("/healthz", 200),
        ("/.well-known/openid-configuration", 200),
        ("/v1/ledger/sth", 200),
        ("/no/such/page", 404),
        ("/v1/services/nope", 404),
        ("/", 200),
    ] {
        let answer = http
            .get(format!("{}{path}", running.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{path}");
        let h = answer.headers();
        for name in [
            "strict-transport-security",
            "x-content-type-options",
            "x-frame-options",
            "referrer-policy",
            "content-security-policy",
        ] {
            assert!(h.contains_key(name), "{path} lacks {name}");
        }
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
    running.abort();
}

#[tokio::test]
async fn plain_http_on_loopback_gets_the_headers_without_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let running = spawn(config(dir.path())).await;
    let answer = reqwest::get(format!("{}/no/such/page", running.url()))
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    assert_eq!(answer.headers()["x-content-type-options"], "nosniff");
    assert!(!answer.headers().contains_key("strict-transport-security"));
    running.abort();
}

/// A TLS connection to the server that keeps its connection open.
struct KeptAlive {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
}

impl KeptAlive {
    async fn open(addr: std::net::SocketAddr, ca: &TestCa) -> KeptAlive {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        KeptAlive {
            stream: connector.connect(name, tcp).await.unwrap(),
        }
    }

    fn peer_certificate(&self) -> Vec<u8> {
        self.stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    /// `GET /healthz` on this connection; its status.
    async fn healthz(&mut self) -> u16 {
        self.stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(self.stream.read(&mut byte).await.unwrap(), 1, "closed");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap();
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await.unwrap();
        head[9..12].parse().unwrap()
    }
}

async fn hangup() {
    let status = tokio::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

async fn served_certificate(addr: std::net::SocketAddr, ca: &TestCa) -> Vec<u8> {
    KeptAlive::open(addr, ca).await.peer_certificate()
}

#[tokio::test]
async fn a_new_certificate_is_served_after_sighup_and_open_connections_survive() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let first = ca.issue(dir.path());
    let running = spawn(tls_config(dir.path())).await;
    let mut open = KeptAlive::open(running.addr, &ca).await;
    assert_eq!(open.peer_certificate(), first);
    assert_eq!(open.healthz().await, 200);

    let second = ca.issue(dir.path());
    hangup().await;
    let mut served = Vec::new();
    for _ in 0..50 {
        served = served_certificate(running.addr, &ca).await;
        if served == second {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, second, "new connections get the new certificate");
    assert_eq!(open.healthz().await, 200, "the open connection still works");
    assert_eq!(open.peer_certificate(), first);
    running.abort();
}

#[tokio::test]
async fn a_changed_certificate_file_is_picked_up_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    ca.issue(dir.path());
    let running = spawn(tls_config(dir.path())).await;
    let second = ca.issue(dir.path());
    let mut served = Vec::new();
    for _ in 0..80 {
        served = served_certificate(running.addr, &ca).await;
        if served == second {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, second);
    running.abort();
}

#[tokio::test]
async fn a_bad_new_certificate_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let first = ca.issue(dir.path());
    let running = spawn(tls_config(dir.path())).await;
    std::fs::write(dir.path().join("server-key.pem"), "not a key").unwrap();
    hangup().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_certificate(running.addr, &ca).await, first);
    // A key that does not belong to the certificate is refused too.
    let other = TestCa::new();
    let elsewhere = tempfile::tempdir().unwrap();
    other.issue(elsewhere.path());
    std::fs::copy(
        elsewhere.path().join("server-key.pem"),
        dir.path().join("server-key.pem"),
    )
    .unwrap();
    hangup().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_certificate(running.addr, &ca).await, first);
    running.abort();
}

#[tokio::test]
async fn a_header_sent_too_slowly_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.server.header_timeout_seconds = 1;
    let running = spawn(config).await;
    let mut stream = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the server closed the connection");
    let rest = String::from_utf8_lossy(&rest);
    assert!(!rest.contains("200 OK"), "{rest}");
    running.abort();
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.server.idle_timeout_seconds = 1;
    let running = spawn(config).await;
    let mut stream = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut all)).await;
    assert!(
        closed.is_ok(),
        "the kept-alive connection was closed once idle"
    );
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    running.abort();
}

async fn whoami(url: &str, forwarded: &str) -> String {
    reqwest::Client::new()
        .get(format!("{url}/whoami"))
        .header("x-forwarded-for", forwarded)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let untrusting = spawn(config(dir.path())).await;
    assert_eq!(
        whoami(&untrusting.url(), "203.0.113.9").await,
        "127.0.0.1 http"
    );
    untrusting.abort();

    let dir = tempfile::tempdir().unwrap();
    let mut trusting = config(dir.path());
    trusting.server.trusted_proxies = vec!["127.0.0.0/8".into()];
    let trusting = spawn(trusting).await;
    assert_eq!(
        whoami(&trusting.url(), "203.0.113.9").await,
        "203.0.113.9 https"
    );
    // HSTS follows the proxy's word that the client used HTTPS.
    let answer = reqwest::Client::new()
        .get(format!("{}/healthz", trusting.url()))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(answer.headers().contains_key("strict-transport-security"));
    trusting.abort();
}

#[tokio::test]
async fn plain_http_on_every_address_needs_allow_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let mut refused = config(dir.path());
    refused.server.bind = "0.0.0.0:0".into();
    let err = match Server::new().spawn(refused.clone()).await {
        Ok(_) => panic!("started on 0.0.0.0 without TLS"),
        Err(e) => e.to_string(),
    };
    for key in ["tls_cert", "tls_key", "allow_plain_http"] {
        assert!(err.contains(key), "{err}");
    }
    refused.server.allow_plain_http = true;
    let running = spawn(refused).await;
    let port = running.addr.port();
    let answer = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    running.abort();
}

/// Where a relative path in the configuration file points.
#[test]
fn tls_paths_are_relative_to_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    ca.issue(dir.path());
    let file = dir.path().join("tsunagu.toml");
    std::fs::write(
        &file,
        "[server]\ntls_cert = \"server.pem\"\ntls_key = \"server-key.pem\"\n",
    )
    .unwrap();
    let config = Server::new().load_config(Some(&file)).unwrap();
    let (cert, key) = config.server.tls().unwrap();
    assert_eq!(cert, dir.path().join("server.pem"));
    assert_eq!(key, dir.path().join("server-key.pem"));
    assert!(config.public_url().starts_with("https://"));
}
