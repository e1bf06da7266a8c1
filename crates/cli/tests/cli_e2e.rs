//! The command line as an operator and a resident use it: `dev jpki` makes a CA and a card,
//! `serve` runs the platform, `wallet` enrolls, logs in and shows status, `ledger verify`
//! pins the ledger key and checks consistency between runs; and errors are readable.

mod common;

use common::{Server, fails, free_port, ok, run_tsunagu as tsunagu};
use std::process::Command;

#[test]
fn an_operator_and_a_resident_use_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(tsunagu(d, &["dev", "jpki", "init", "--dir", "ca"], &[]));
    let card_pin = [("TSUNAGU_CARD_PIN", "abc123")];
    let issued = ok(tsunagu(
        d,
        &[
            "dev",
            "jpki",
            "issue",
            "--dir",
            "ca",
            "--name",
            "前橋　花子",
            "--address",
            "群馬県前橋市大手町二丁目12番1号",
            "--birthdate",
            "1988-04-01",
            "--sex",
            "2",
            "--out",
            "card.json",
        ],
        &card_pin,
    ));
    assert!(issued.contains("card written to card.json"), "{issued}");
    let err = fails(tsunagu(
        d,
        &[
            "dev",
            "jpki",
            "issue",
            "--dir",
            "ca",
            "--name",
            "x",
            "--address",
            "y",
            "--birthdate",
            "1988-02-30",
            "--sex",
            "2",
            "--out",
            "other.json",
        ],
        &card_pin,
    ));
    assert!(err.contains("1988-02-30"), "{err}");

    let port = free_port();
    let server = Server::start(
        d,
        &format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\n[identity]\njpki_trust_anchors = [\"ca/ca.pem\"]\njpki_crls = [\"ca/ca.crl\"]\n"
        ),
        port,
    );
    let url = server.url.clone();

    let pins = [
        ("TSUNAGU_WALLET_PIN", "2468"),
        ("TSUNAGU_CARD_PIN", "abc123"),
    ];
    let enrolled = ok(tsunagu(
        d,
        &[
            "wallet",
            "enroll",
            "--wallet",
            "phone.json",
            "--url",
            &url,
            "--card",
            "card.json",
        ],
        &pins,
    ));
    assert!(enrolled.contains("level verified"), "{enrolled}");
    let token = ok(tsunagu(
        d,
        &["wallet", "login", "--wallet", "phone.json"],
        &pins,
    ));
    assert!(token.trim().len() >= 40, "an access token: {token}");
    let status = ok(tsunagu(
        d,
        &["wallet", "status", "--wallet", "phone.json"],
        &pins,
    ));
    assert!(
        status.contains("前橋　花子") && status.contains("auth.login"),
        "{status}"
    );

    let first = ok(tsunagu(
        d,
        &["ledger", "verify", "--url", &url, "--state", "auditor.json"],
        &[],
    ));
    assert!(first.contains("ledger key is now pinned"), "{first}");
    ok(tsunagu(
        d,
        &["wallet", "login", "--wallet", "phone.json"],
        &pins,
    ));
    let second = ok(tsunagu(
        d,
        &["ledger", "verify", "--url", &url, "--state", "auditor.json"],
        &[],
    ));
    assert!(
        second.contains("consistent with the saved head"),
        "{second}"
    );

    // Three wrong PINs lock the wallet, even for the right one afterwards.
    let wrong = [("TSUNAGU_WALLET_PIN", "0000")];
    assert!(
        fails(tsunagu(
            d,
            &["wallet", "login", "--wallet", "phone.json"],
            &wrong
        ))
        .contains("wrong PIN")
    );
    assert!(
        fails(tsunagu(
            d,
            &["wallet", "login", "--wallet", "phone.json"],
            &wrong
        ))
        .contains("wrong PIN")
    );
    assert!(
        fails(tsunagu(
            d,
            &["wallet", "login", "--wallet", "phone.json"],
            &wrong
        ))
        .contains("locked")
    );
    assert!(
        fails(tsunagu(
            d,
            &["wallet", "login", "--wallet", "phone.json"],
            &pins
        ))
        .contains("locked")
    );

    // A platform refusal reaches the user with its code.
    let err = fails(tsunagu(
        d,
        &[
            "wallet",
            "enroll",
            "--wallet",
            "tablet.json",
            "--url",
            &url,
            "--card",
            "card.json",
        ],
        &[
            ("TSUNAGU_WALLET_PIN", "1357"),
            ("TSUNAGU_CARD_PIN", "wrong1"),
        ],
    ));
    assert!(err.contains("wrong signing password"), "{err}");
    drop(server);
}

#[test]
fn configuration_errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bad.toml"),
        "[server]\nbind = \"127.0.0.1:0\"\nport = 1\n",
    )
    .unwrap();
    let err = fails(tsunagu(d, &["serve", "--config", "bad.toml"], &[]));
    assert!(err.contains("port"), "{err}");
    std::fs::write(
        d.join("missing.toml"),
        "[identity]\njpki_trust_anchors = [\"nowhere.pem\"]\n",
    )
    .unwrap();
    let err = fails(tsunagu(d, &["serve", "--config", "missing.toml"], &[]));
    assert!(err.contains("nowhere.pem"), "{err}");
    let err = fails(tsunagu(d, &["serve", "--config", "absent.toml"], &[]));
    assert!(err.contains("absent.toml"), "{err}");
    // Revocation checking fails closed: trust anchors without any CRL while the status is
    // required is refused at start, naming the keys (it used to accept certificates unchecked).
    std::fs::write(d.join("anchor.pem"), "not read before validation").unwrap();
    std::fs::write(
        d.join("no-crl.toml"),
        "[server]\nbind = \"127.0.0.1:0\"\n[identity]\njpki_trust_anchors = [\"anchor.pem\"]\n",
    )
    .unwrap();
    let err = fails(tsunagu(d, &["serve", "--config", "no-crl.toml"], &[]));
    assert!(
        err.contains("identity.jpki_crls") && err.contains("require_revocation_status"),
        "{err}"
    );
}

/// `tsunagu serve` killed when dropped.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_operator_serves_https_with_a_certificate_and_renews_it_with_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = ok(tsunagu(d, &["dev", "tls", "--out", "tls"], &[]));
    assert!(
        made.contains("server.pem") && made.contains("SPKI"),
        "{made}"
    );
    let port = free_port();
    std::fs::write(
        d.join("tsunagu.toml"),
        format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\ntls_cert = \"tls/server.pem\"\ntls_key = \"tls/server-key.pem\"\n[storage]\ndata_dir = \"data\"\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(d.join("serve.log")).unwrap();
    let server = Serving(
        Command::new(env!("CARGO_BIN_EXE_tsunagu"))
            .current_dir(d)
            .args(["serve", "--config", "tsunagu.toml"])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let url = format!("https://127.0.0.1:{port}");
    let verify = |env: &[(&str, &str)]| tsunagu(d, &["ledger", "verify", "--url", &url], env);
    let with_ca = [("TSUNAGU_CA_FILE", "tls/ca.pem")];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !verify(&with_ca).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "no HTTPS: {}",
            std::fs::read_to_string(d.join("serve.log")).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The same command with the CA given as a flag; without it the certificate is refused.
    ok(tsunagu(
        d,
        &["ledger", "verify", "--url", &url, "--ca-file", "tls/ca.pem"],
        &[],
    ));
    let err = fails(verify(&[]));
    assert!(
        err.contains("cannot reach the platform") && err.contains("certificate"),
        "the error says the certificate was refused: {err}"
    );

    // A new CA and certificate, then SIGHUP: clients trusting only the new CA get through.
    ok(tsunagu(d, &["dev", "tls", "--out", "tls"], &[]));
    let hup = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !verify(&with_ca).status.success() {
        assert!(std::time::Instant::now() < deadline, "not reloaded");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(d.join("serve.log")).unwrap();
    assert!(log.contains("TLS certificate reloaded"), "{log}");
    drop(server);
}

#[test]
fn serve_refuses_plain_http_beyond_loopback_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("open.toml"),
        "[server]\nbind = \"0.0.0.0:0\"\n[storage]\ndata_dir = \"data\"\n",
    )
    .unwrap();
    let err = fails(tsunagu(d, &["serve", "--config", "open.toml"], &[]));
    for key in ["[server] tls_cert", "tls_key", "[server] allow_plain_http"] {
        assert!(err.contains(key), "{err}");
    }
    let port = free_port();
    let server = Server::start(
        d,
        &format!(
            "[server]\nbind = \"0.0.0.0:{port}\"\nallow_plain_http = true\ntrusted_proxies = [\"127.0.0.1\"]\n[storage]\ndata_dir = \"data\"\n"
        ),
        port,
    );
    drop(server);
}

#[test]
fn the_ticket_benchmark_tools_seed_and_load_a_real_platform() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(tsunagu(d, &["dev", "jpki", "init", "--dir", "ca"], &[]));
    // The seeder goes through the platform's services: the committee approves the services,
    // residents enroll with cards of the simulated JPKI.
    let jwk: serde_json::Value = serde_json::from_str(&ok(tsunagu(
        d,
        &["admin", "keygen", "--out", "chair.pem"],
        &[],
    )))
    .unwrap();
    let port = free_port();
    let config = format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\n[identity]\njpki_trust_anchors = [\"ca/ca.pem\"]\njpki_crls = [\"ca/ca.crl\"]\n[governance]\nquorum = 1\nmembers = [{{ id = \"chair\", jwk = {{ kty = \"EC\", crv = \"P-256\", x = \"{}\", y = \"{}\" }} }}]\n",
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    std::fs::write(d.join("tsunagu.toml"), &config).unwrap();
    let seeded = ok(tsunagu(
        d,
        &[
            "dev",
            "seed",
            "--config",
            "tsunagu.toml",
            "--residents",
            "30",
            "--out",
            "seed",
            "--member",
            "chair=chair.pem",
            "--jpki",
            "ca",
        ],
        &[],
    ));
    assert!(seeded.contains("seeded 30 residents"), "{seeded}");
    assert_eq!(
        std::fs::read_to_string(d.join("seed/subjects.txt"))
            .unwrap()
            .lines()
            .count(),
        30
    );

    let server = Server::start(d, &config, port);
    let report = ok(tsunagu(
        d,
        &[
            "dev",
            "load",
            "--url",
            &server.url,
            "--seed",
            "seed",
            "--duration",
            "2",
            "--connections",
            "2",
            "--presign",
            "40",
        ],
        &[],
    ));
    // 40 requests about 30 residents who all consented: every one is a ticket, and the run
    // stops when the pre-signed assertions are used up.
    assert!(report.contains("requests: 40 "), "{report}");
    assert!(report.contains("issued tickets: 40 "), "{report}");
    assert!(report.contains("201: 40"), "{report}");
    assert!(report.contains("p99"), "{report}");
    assert!(
        report.contains("used every pre-signed assertion"),
        "{report}"
    );
}

#[tokio::test]
async fn the_oidc_benchmark_seed_writes_setups_that_work() {
    use base64::Engine;
    use common::{B64URL, Device};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(tsunagu(d, &["dev", "jpki", "init", "--dir", "ca"], &[]));
    let jwk: serde_json::Value = serde_json::from_str(&ok(tsunagu(
        d,
        &["admin", "keygen", "--out", "chair.pem"],
        &[],
    )))
    .unwrap();
    let port = free_port();
    let config = format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\n[identity]\njpki_trust_anchors = [\"ca/ca.pem\"]\njpki_crls = [\"ca/ca.crl\"]\nsession_ttl_seconds = 7200\n[governance]\nquorum = 1\nmembers = [{{ id = \"chair\", jwk = {{ kty = \"EC\", crv = \"P-256\", x = \"{}\", y = \"{}\" }} }}]\n[dev]\nsimulated_jpki = \"ca\"\n",
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    let server = Server::start(d, &config, port);
    // Too few committee members for the quorum is a readable error.
    let err = fails(tsunagu(
        d,
        &[
            "dev",
            "oidc-seed",
            "--url",
            &server.url,
            "--config",
            "tsunagu.toml",
            "--out",
            "bench",
            "--member",
            "stranger=chair.pem",
        ],
        &[],
    ));
    assert!(
        err.contains("`stranger` is not a committee member"),
        "{err}"
    );
    let written = ok(tsunagu(
        d,
        &[
            "dev",
            "oidc-seed",
            "--url",
            &server.url,
            "--config",
            "tsunagu.toml",
            "--out",
            "bench",
            "--member",
            "chair=chair.pem",
        ],
        &[],
    ));
    assert_eq!(written.lines().count(), 2, "{written}");
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("bench").join(name)).unwrap()).unwrap()
    };
    let jwt = read("setup-tsunagu-jwt.json");
    let basic = read("setup-tsunagu-basic.json");
    for (setup, auth) in [(&jwt, "private_key_jwt"), (&basic, "client_secret_basic")] {
        assert_eq!(setup["auth"], auth);
        assert_eq!(setup["issuer"], server.url.as_str());
        assert_eq!(setup["scope"], "openid profile");
        assert_eq!(setup["redirect_uri"], "http://127.0.0.1:9/cb");
        assert!(setup["name"].as_str().unwrap().starts_with("tsunagu "));
        assert!(setup["client_id"].as_str().unwrap().starts_with("svc_"));
        assert_eq!(setup["cookies"], basic["cookies"], "one resident session");
    }
    assert_ne!(jwt["client_id"], basic["client_id"]);
    let pem = std::path::PathBuf::from(jwt["client_key_pem"].as_str().unwrap());
    assert!(pem.is_absolute(), "{pem:?}");
    let key = Device::from_pem(&pem);
    assert_eq!(jwt["client_key_kid"].as_str().unwrap(), key.thumbprint());
    let secret = basic["client_secret"].as_str().unwrap();
    assert!(secret.len() >= 32, "{basic}");

    // The setup works as written: with its cookie an authorization answers with a code at
    // once, and the code buys tokens with the client secret.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let session = basic["cookies"]["tsunagu_session"].as_str().unwrap();
    let verifier = "v".repeat(43);
    let challenge = B64URL.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let client_id = basic["client_id"].as_str().unwrap();
    let answer = http
        .get(format!(
            "{}/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid%20profile&state=s1&nonce=n1&code_challenge={challenge}&code_challenge_method=S256",
            server.url
        ))
        .header("cookie", format!("tsunagu_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    let to = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("http://127.0.0.1:9/cb?code="), "{to}");
    let code = to
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .unwrap();
    let tokens = http
        .post(format!("{}/oauth2/token", server.url))
        .basic_auth(client_id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&code_verifier={verifier}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status(), 200);
    let tokens: serde_json::Value = tokens.json().await.unwrap();
    assert!(tokens["id_token"].as_str().unwrap().split('.').count() == 3);
}
