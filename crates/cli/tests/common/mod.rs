//! Test fixtures shared by the end-to-end tests: a certificate authority made with the
//! `openssl` command line (independent of tsunagu's own certificate code), the real
//! `tsunagu` binary started on a free port, and a small HTTP client.

#![allow(dead_code)]

use base64::Engine;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
pub const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("openssl runs");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority run with `openssl ca`.
pub struct OpenSslCa {
    pub dir: PathBuf,
}

/// A certificate the CA issued, with its private key.
pub struct Issued {
    pub cert_pem: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
}

impl OpenSslCa {
    /// A self-signed RSA-2048 CA in `dir`.
    pub fn new(dir: &Path, name: &str) -> OpenSslCa {
        std::fs::create_dir_all(dir.join("newcerts")).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
        std::fs::write(dir.join("serial"), "1001\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            format!(
                r#"[ca]
default_ca = test_ca
[test_ca]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
crlnumber = $dir/crlnumber
serial = $dir/serial
default_md = sha256
default_crl_days = 1
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
[req]
distinguished_name = dn
[dn]
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"#,
                dir = dir.display()
            ),
        )
        .unwrap();
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
            ])
            .arg("-keyout")
            .arg(dir.join("ca.key"))
            .arg("-out")
            .arg(dir.join("ca.pem"))
            .arg("-subj")
            .arg(format!("/C=JP/O={name}/CN={name} Root"))
            .arg("-config")
            .arg(dir.join("ca.cnf"))
            .args(["-extensions", "ca_ext"]));
        OpenSslCa {
            dir: dir.to_owned(),
        }
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn crl_path(&self) -> PathBuf {
        self.dir.join("ca.crl")
    }

    /// Issues a signing certificate carrying the given JPKI otherNames (OID suffix, value),
    /// valid from `start` to `end` (`YYYYMMDDHHMMSSZ`).
    pub fn issue(&mut self, label: &str, items: &[(&str, &str)], start: &str, end: &str) -> Issued {
        let key = self.dir.join(format!("{label}.key"));
        let csr = self.dir.join(format!("{label}.csr"));
        let cert_pem = self.dir.join(format!("{label}.pem"));
        let ext = self.dir.join(format!("{label}.ext"));
        let mut san = String::from(
            "[ext]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,nonRepudiation\n",
        );
        if !items.is_empty() {
            san.push_str("subjectAltName = @san\n[san]\n");
            for (i, (oid, value)) in items.iter().enumerate() {
                san.push_str(&format!(
                    "otherName.{i} = 1.2.392.200149.8.5.5.{oid};FORMAT:UTF8,UTF8:{value}\n"
                ));
            }
        }
        std::fs::write(&ext, san).unwrap();
        run(Command::new("openssl")
            .args(["req", "-new", "-newkey", "rsa:2048", "-nodes"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .arg("-subj")
            .arg(format!("/C=JP/CN={label}")));
        run(Command::new("openssl")
            .args(["ca", "-batch", "-notext"])
            .arg("-config")
            .arg(self.dir.join("ca.cnf"))
            .arg("-in")
            .arg(&csr)
            .arg("-out")
            .arg(&cert_pem)
            .args(["-startdate", start, "-enddate", end])
            .arg("-extfile")
            .arg(&ext)
            .args(["-extensions", "ext"]));
        let der_path = self.dir.join(format!("{label}.der"));
        run(Command::new("openssl")
            .args(["x509", "-outform", "DER"])
            .arg("-in")
            .arg(&cert_pem)
            .arg("-out")
            .arg(&der_path));
        Issued {
            der: std::fs::read(der_path).unwrap(),
            cert_pem,
            key,
        }
    }

    pub fn revoke(&self, cert: &Issued) {
        run(Command::new("openssl")
            .args(["ca", "-batch"])
            .arg("-config")
            .arg(self.dir.join("ca.cnf"))
            .arg("-revoke")
            .arg(&cert.cert_pem)
            .args(["-crl_reason", "affiliationChanged"]));
    }

    /// Writes a fresh CRL (PEM).
    pub fn publish_crl(&self) {
        let tmp = self.dir.join("ca.crl.tmp");
        run(Command::new("openssl")
            .args(["ca", "-gencrl"])
            .arg("-config")
            .arg(self.dir.join("ca.cnf"))
            .arg("-out")
            .arg(&tmp));
        std::fs::rename(tmp, self.crl_path()).unwrap();
    }
}

/// The four basic items as JPKI puts them (name, sex, birth date with era digit, address).
pub fn jpki_items<'a>(name: &'a str, address: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![("1", name), ("3", "1"), ("4", "419800101"), ("5", address)]
}

/// Signs `data` with a card key: RSASSA-PKCS1-v1_5 SHA-256, by `openssl dgst`.
pub fn card_sign(key: &Path, data: &[u8]) -> Vec<u8> {
    let dir = key.parent().unwrap();
    let input = dir.join("to-sign.bin");
    let output = dir.join("signature.bin");
    std::fs::write(&input, data).unwrap();
    run(Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg("-out")
        .arg(&output)
        .arg(&input));
    std::fs::read(output).unwrap()
}

/// A device key (P-256), signing with aws-lc-rs directly.
pub struct Device {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
}

impl Device {
    pub fn new() -> Device {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        Device {
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
        }
    }

    pub fn jwk(&self) -> Value {
        use aws_lc_rs::signature::KeyPair;
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65])})
    }

    /// RFC 7638 thumbprint, computed here from the JSON text the RFC prescribes.
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let text = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        B64URL.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            text.as_bytes(),
        ))
    }

    /// A compact JWS (ES256) of `payload` with `header` (`alg` is set here). The JSON is
    /// serialized as serde_json writes it, not JCS: the platform must accept any JSON.
    pub fn jws(&self, header: Value, payload: &Value) -> String {
        let mut header = header;
        header["alg"] = json!("ES256");
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(payload.to_string())
        );
        format!("{input}.{}", self.sign(input.as_bytes()))
    }

    /// A JWS signed by the device key, `kid` = its thumbprint (as residents sign).
    pub fn resident_jws(&self, payload: &Value) -> String {
        self.jws(json!({"kid": self.thumbprint()}), payload)
    }

    /// A device from a PKCS#8 PEM file (keys made by `tsunagu connector keygen`).
    pub fn from_pem(path: &Path) -> Device {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let text = std::fs::read_to_string(path).unwrap();
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = B64.decode(body).unwrap();
        Device {
            pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap(),
        }
    }

    /// A client assertion for `audience` with `iss` = `sub` = `service_id`.
    pub fn assertion(&self, service_id: &str, audience: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let jti = B64URL.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{now}{:?}", std::time::Instant::now()).as_bytes(),
        ));
        self.jws(
            json!({"typ": "JWT"}),
            &json!({"iss": service_id, "sub": service_id, "aud": audience, "jti": jti, "iat": now, "exp": now + 60}),
        )
    }

    /// ES256 r||s, base64url.
    pub fn sign(&self, data: &[u8]) -> String {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        B64URL.encode(self.pair.sign(&rng, data).unwrap())
    }
}

/// The bytes a card signs for enrollment, written out literally (JCS of two ASCII strings).
pub fn proof_bytes(thumbprint: &str, nonce: &str) -> Vec<u8> {
    format!(r#"{{"device_jwk_thumbprint":"{thumbprint}","nonce":"{nonce}"}}"#).into_bytes()
}

/// Any `tsunagu` process (a connector sidecar…), killed when dropped.
pub struct Process {
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `tsunagu args…` in `dir` (stderr to `log`) and waits, at most 60 s, until
    /// `ready()` holds.
    fn start_until(dir: &Path, args: &[&str], log: &str, ready: impl Fn() -> bool) -> Process {
        let log = std::fs::File::create(dir.join(log)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tsunagu"))
            .current_dir(dir)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the tsunagu binary starts");
        let process = Process { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready() {
            assert!(
                Instant::now() < deadline,
                "{args:?} did not come up; see {}",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        process
    }

    /// Starts `tsunagu args…` in `dir` and waits until its port accepts connections (for a
    /// process that serves TLS, whose `/healthz` the plain check cannot read).
    pub fn start_listening(dir: &Path, args: &[&str], port: u16, log: &str) -> Process {
        Process::start_until(dir, args, log, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
    }

    /// Starts `tsunagu args…` in `dir` and waits until `GET http://127.0.0.1:{port}/healthz`
    /// answers 200.
    pub fn start(dir: &Path, args: &[&str], port: u16, log: &str) -> Process {
        Process::start_until(dir, args, log, || healthy(port))
    }
}

/// Waits (at most 60 s) until `check` holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every ledger leaf, decoded (the ledger's entries must be public in the test's
/// configuration, and none expired).
pub async fn ledger_events(http: &Http) -> Vec<Value> {
    let (_, sth) = http.get("/v1/ledger/sth", None).await;
    let size = sth["tree_size"].as_u64().unwrap();
    let (status, entries) = http
        .get(&format!("/v1/ledger/entries?start=0&end={size}"), None)
        .await;
    assert_eq!(status, 200, "{entries}");
    entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::from_slice(&B64.decode(e["leaf_input"].as_str().unwrap()).unwrap()).unwrap()
        })
        .collect()
}

/// Runs `tsunagu args…` to completion and returns its standard output.
pub fn tsunagu(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tsunagu"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the binary in `dir` with `args` and extra environment, keeping its output.
pub fn run_tsunagu(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tsunagu"));
    cmd.current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

/// The standard output of a run that succeeded.
pub fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The error of a run that failed with one readable line and no panic.
pub fn fails(out: std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: "),
        "errors are one readable line: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A reqwest client trusting the CA in `ca` (PEM), with a client certificate when given.
pub fn https_client(ca: &Path, identity: Option<(&Path, &Path)>) -> ::reqwest::Client {
    let mut builder = ::reqwest::Client::builder().tls_certs_merge(
        ::reqwest::Certificate::from_pem_bundle(&std::fs::read(ca).unwrap()).unwrap(),
    );
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(key).unwrap());
        builder = builder.identity(::reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

/// The `tsunagu serve` process.
pub struct Server {
    child: Child,
    pub url: String,
    pub config: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts the binary with `config_text` written to `dir/tsunagu.toml`.
    pub fn start(dir: &Path, config_text: &str, port: u16) -> Server {
        let config = dir.join("tsunagu.toml");
        std::fs::write(&config, config_text).unwrap();
        let log = std::fs::File::create(dir.join(format!("server-{port}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tsunagu"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the tsunagu binary starts");
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            config,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if healthy(port) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not come up; see {}",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether `GET /healthz` answers 200 (a raw request, so no async runtime is needed).
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    if write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer).is_ok() && answer.starts_with("HTTP/1.1 200")
}

/// A JSON-over-HTTP client that keeps status codes.
pub struct Http {
    client: ::reqwest::Client,
    base: String,
}

impl Http {
    pub fn new(base: &str) -> Http {
        Http {
            client: ::reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    /// A client of `base` over HTTPS trusting the CA in `ca` (PEM), presenting the client
    /// certificate and key (PEM files) when given.
    pub fn tls(base: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> Http {
        Http {
            client: https_client(ca, identity),
            base: base.to_owned(),
        }
    }

    /// A client of `base` with a client of one's own (a source address, say).
    pub fn with_client(base: &str, client: ::reqwest::Client) -> Http {
        Http {
            client,
            base: base.to_owned(),
        }
    }

    pub fn client(&self) -> &::reqwest::Client {
        &self.client
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut r = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut r = self.client.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            assert_eq!(
                content_type.as_deref(),
                Some("application/problem+json"),
                "{body}"
            );
        }
        (status, body)
    }

    pub async fn post_with(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, String)],
    ) -> (u16, Value) {
        let mut r = self.client.post(format!("{}{path}", self.base)).json(body);
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn nonce(&self, path: &str) -> String {
        let (status, v) = self.post(path, &json!({}), None).await;
        assert_eq!(status, 200, "{v}");
        v["nonce"].as_str().unwrap().to_owned()
    }
}

// ---------------------------------------------------------------------------------------
// Shared by the scenario tests (web app, consoles, OpenID Connect, exchange)
// ---------------------------------------------------------------------------------------

/// The current Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fresh random nonce (22 base64url characters).
pub fn nonce() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    B64URL.encode(bytes)
}

/// A public EC key as an inline TOML table of the configuration.
pub fn jwk_toml(jwk: &Value) -> String {
    format!(
        "{{ kty = \"EC\", crv = \"P-256\", x = \"{}\", y = \"{}\" }}",
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    )
}

/// The `[governance] members` entries of committee members `(id, key)`.
pub fn members_toml<S: AsRef<str>>(members: &[(S, Device)]) -> String {
    members
        .iter()
        .map(|(id, k)| {
            format!(
                "{{ id = \"{}\", jwk = {} }}",
                id.as_ref(),
                jwk_toml(&k.jwk())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A temporary directory for a scenario (kept, and named, when `TSUNAGU_TEST_KEEP` is set)
/// with a test JPKI CA that has issued Hanako's card and published its CRL.
pub struct Scenario {
    pub root: PathBuf,
    pub ca: OpenSslCa,
    pub card: Issued,
    /// Removes the directory when dropped (`None` when kept).
    pub dir: Option<tempfile::TempDir>,
}

impl Scenario {
    pub fn new() -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let dir = if std::env::var("TSUNAGU_TEST_KEEP").is_ok() {
            println!("keeping {}", dir.keep().display());
            None
        } else {
            Some(dir)
        };
        let mut ca = OpenSslCa::new(&root.join("ca"), "Test JPKI");
        let card = ca.issue(
            "hanako",
            &jpki_items("前橋　花子", "群馬県前橋市大手町二丁目12番1号"),
            "20240101000000Z",
            "20350101000000Z",
        );
        ca.publish_crl();
        Scenario {
            root,
            ca,
            card,
            dir,
        }
    }
}

/// A PostgreSQL database URL whose search path is a fresh schema `<prefix>_<label>_<pid>`,
/// and the schema; `None` unless `TSUNAGU_TEST_DATABASE_URL` is set.
pub async fn postgres_url(prefix: &str, label: &str) -> Option<(String, String)> {
    let url = std::env::var("TSUNAGU_TEST_DATABASE_URL").ok()?;
    let schema = format!("{prefix}_{label}_{}", std::process::id());
    tsunagu_store::SqlStore::drop_schema(&url, &schema)
        .await
        .unwrap();
    tsunagu_store::open_postgres(&url, Some(&schema))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    Some((
        format!("{url}{sep}options=-c%20search_path%3D{schema}"),
        schema,
    ))
}

/// A committee member's vote on a service, signed with the member's key (`kid` = the id).
pub fn vote_jws(key: &Device, member: &str, service: &str, decision: &str) -> String {
    key.jws(
        json!({"kid": member}),
        &json!({"service_id": service, "decision": decision, "comment": "e2e", "issued_at": now(), "nonce": nonce()}),
    )
}

/// The review committee of a scenario: members with their keys.
pub struct Committee {
    pub members: Vec<(String, Device)>,
}

impl Committee {
    /// Members with these ids and fresh keys.
    pub fn new(ids: &[&str]) -> Committee {
        Committee {
            members: ids
                .iter()
                .map(|id| (id.to_string(), Device::new()))
                .collect(),
        }
    }

    /// The `[governance] members` entries.
    pub fn members_toml(&self) -> String {
        members_toml(&self.members)
    }

    /// The first `voters` members vote `decision` through the API; the last answer.
    pub async fn vote(&self, http: &Http, service: &str, decision: &str, voters: usize) -> Value {
        let mut last = Value::Null;
        for (id, key) in self.members.iter().take(voters) {
            let (status, answer) = http
                .post(
                    &format!("/v1/governance/services/{service}/votes"),
                    &json!({"vote_jws": vote_jws(key, id, service, decision)}),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{answer}");
            last = answer;
        }
        last
    }

    /// A service applies through the API and every member approves it; its id.
    pub async fn admit(&self, http: &Http, application: &Value) -> String {
        let (service, _) = apply(http, application).await;
        self.approve(http, &service).await;
        service
    }

    /// Every member approves; the service is then approved.
    pub async fn approve(&self, http: &Http, service: &str) {
        let last = self
            .vote(http, service, "approve", self.members.len())
            .await;
        assert_eq!(last["status"], "approved", "{last}");
    }
}

/// Applies for a service through the API: its id, and the answer.
pub async fn apply(http: &Http, application: &Value) -> (String, Value) {
    let (status, answer) = http.post("/v1/services", application, None).await;
    assert_eq!(status, 201, "{answer}");
    (answer["service_id"].as_str().unwrap().to_owned(), answer)
}

/// Enrolls `device` over the API (with a card proof when given); the enrollment's answer.
pub async fn enroll_device(http: &Http, device: &Device, card: Option<&Issued>) -> Value {
    let nonce = http.nonce("/v1/enrollment/challenge").await;
    let mut body = json!({"device_jwk": device.jwk(), "nonce": nonce});
    if let Some(card) = card {
        let signed = proof_bytes(&device.thumbprint(), &nonce);
        body["proof"] = json!({"type": "jpki", "certificate_chain": [B64.encode(&card.der)],
            "signed_data": B64.encode(&signed), "signature": B64.encode(card_sign(&card.key, &signed))});
    }
    let (status, enrolled) = http.post("/v1/enrollment", &body, None).await;
    assert_eq!(status, 201, "{enrolled}");
    enrolled
}

// ---------------------------------------------------------------------------------------
// Pages, read and posted as a browser without JavaScript would
// ---------------------------------------------------------------------------------------

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// An attribute value as askama escapes it, unescaped.
pub fn unescape_html(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of attribute `attr` on the first element after `anchor` that has it.
pub fn attr_after(html: &str, anchor: &str, attr: &str) -> String {
    let start = html
        .find(anchor)
        .unwrap_or_else(|| panic!("{anchor} not in the page:\n{html}"));
    let rest = &html[start..];
    let key = format!("{attr}=\"");
    let at = rest
        .find(&key)
        .unwrap_or_else(|| panic!("no {attr} after {anchor}"));
    let value = &rest[at + key.len()..];
    unescape_html(&value[..value.find('"').unwrap()])
}

/// The value of the (first) input named `name`.
pub fn hidden(html: &str, name: &str) -> String {
    attr_after(html, &format!("name=\"{name}\""), "value")
}

/// A client that follows no redirect, as a test of redirects needs.
pub fn no_redirect_client() -> ::reqwest::Client {
    ::reqwest::Client::builder()
        .redirect(::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// What a page request answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: String,
    pub headers: ::reqwest::header::HeaderMap,
    pub body: String,
}

/// A browser without JavaScript: keeps its cookies in a jar, follows no redirect by itself,
/// and posts forms from its own origin.
pub struct Browser {
    pub client: ::reqwest::Client,
    pub base: String,
    pub cookies: std::collections::BTreeMap<String, String>,
    /// The `Accept-Language` it sends.
    pub accept_language: &'static str,
}

impl Browser {
    pub fn new(base: &str, accept_language: &'static str) -> Browser {
        Browser {
            client: no_redirect_client(),
            base: base.to_owned(),
            cookies: std::collections::BTreeMap::new(),
            accept_language,
        }
    }

    /// The resident session cookie, if it has one.
    pub fn session(&self) -> Option<String> {
        self.cookies.get("tsunagu_session").cloned()
    }

    /// `url`, made absolute on this origin when it is a path.
    pub fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        }
    }

    pub async fn send(&mut self, req: ::reqwest::RequestBuilder) -> Answer {
        let mut req = req.header("accept-language", self.accept_language);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        let resp = req.send().await.unwrap();
        for value in resp.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        Answer {
            status: resp.status().as_u16(),
            location: header("location"),
            content_type: header("content-type").unwrap_or_default(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Answer {
        let req = self.client.get(self.absolute(url));
        self.send(req).await
    }

    /// A form POST from this origin (as a browser sends it).
    pub async fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> Answer {
        let origin = self.base.clone();
        self.post_from(path, pairs, Some(&origin)).await
    }

    /// A form POST with `origin` as its `Origin` (none: no such header).
    pub async fn post_from(
        &mut self,
        path: &str,
        pairs: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Answer {
        let mut req = self
            .client
            .post(self.absolute(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(pairs));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        self.send(req).await
    }
}
