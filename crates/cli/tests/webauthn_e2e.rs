//! WebAuthn user verification of the browser wallet's device key (issue 9, defect 6),
//! through the real binary on SQLite and PostgreSQL: a device enrolled with a platform
//! credential logs in only with an assertion in which the authenticator verified the user;
//! a missing assertion, an unverified user, a wrong challenge, another credential and a
//! counter that went back are refused with stable codes and recorded in the ledger; the
//! web form's login takes the same assertion; a platform on an IP address offers no
//! WebAuthn and refuses a registration with `user_verification_unavailable`.
//!
//! The authenticator is `tsunagu_crypto::webauthn::soft` (ES256, attestation "none"); the
//! browser test (web-tests/e2e/webauthn.test.mjs) does the same with Chromium's virtual
//! authenticator.

mod common;

use common::*;
use serde_json::{Value, json};
use tsunagu_crypto::webauthn::soft::SoftAuthenticator;
use tsunagu_crypto::webauthn::{FLAG_UP, FLAG_UV, RelyingParty};

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Enrolls `device` with a WebAuthn registration made by `auth` (its flags as set).
async fn enroll_with(http: &Http, device: &Device, auth: &mut SoftAuthenticator) -> (u16, Value) {
    let nonce = http.nonce("/v1/enrollment/challenge").await;
    let challenge = sha256(&proof_bytes(&device.thumbprint(), &nonce));
    let body = json!({
        "device_jwk": device.jwk(), "nonce": nonce,
        "user_verification": auth.register(&challenge).to_wire(),
    });
    http.post("/v1/enrollment", &body, None).await
}

/// How a test derives the assertion's challenge from the login nonce.
type ChallengeOf = fn(&str) -> Vec<u8>;

/// A login body: the device's signature over a fresh nonce and, when `auth` is given, its
/// assertion over SHA-256 of the nonce (or of `challenge_of(nonce)`).
async fn login_body(
    http: &Http,
    device: &Device,
    credential: &str,
    auth: Option<(&mut SoftAuthenticator, ChallengeOf)>,
) -> Value {
    let nonce = http.nonce("/v1/auth/challenge").await;
    let mut body = json!({"credential": credential, "nonce": nonce, "signature": device.sign(nonce.as_bytes())});
    if let Some((auth, challenge_of)) = auth {
        body["user_verification"] = auth.assert(&challenge_of(&nonce)).to_wire();
    }
    body
}

/// A problem+json refusal with `status` and `code`.
fn assert_refused(status: u16, refused: &Value, expected_status: u16, code: &str) {
    assert_eq!(
        (status, refused["code"].as_str()),
        (expected_status, Some(code)),
        "{refused}"
    );
}

fn right(nonce: &str) -> Vec<u8> {
    sha256(nonce.as_bytes())
}

fn wrong(nonce: &str) -> Vec<u8> {
    sha256(format!("{nonce}!").as_bytes())
}

async fn scenario(label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let db = postgres_url("e2e_uv", label).await;
    let port = free_port();
    // http on localhost is a secure context for browsers, so WebAuthn works without TLS.
    let public_url = format!("http://localhost:{port}");
    let config = format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\npublic_url = \"{public_url}\"\n[storage]\ndata_dir = \"./data\"\n{}[identity.lockout]\nthreshold = 4\nbase_seconds = 1\nmax_seconds = 1\n[ledger]\npublic_entries = true\n",
        db.as_ref()
            .map(|(u, _)| format!("database_url = \"{u}\"\n"))
            .unwrap_or_default(),
    );
    let server = Server::start(&root, &config, port);
    let http = Http::new(&server.url);
    let rp = RelyingParty::for_public_url(&public_url).unwrap();

    // ---- the challenge names the relying party ID the browser must use
    let (_, challenge) = http
        .post("/v1/enrollment/challenge", &json!({}), None)
        .await;
    assert_eq!(challenge["webauthn_rp_id"], "localhost", "{challenge}");

    // ---- registrations that do not verify are refused, with nothing enrolled
    let device = Device::new();
    let mut auth = SoftAuthenticator::new(rp.clone());
    auth.flags = FLAG_UP;
    let (status, refused) = enroll_with(&http, &device, &mut auth).await;
    assert_refused(status, &refused, 403, "user_verification_required");
    let mut elsewhere = SoftAuthenticator::new(RelyingParty {
        id: "localhost".into(),
        origin: "http://localhost:1".into(),
    });
    let (status, refused) = enroll_with(&http, &device, &mut elsewhere).await;
    assert_refused(status, &refused, 403, "user_verification_invalid");
    assert!(
        refused["detail"].as_str().unwrap().contains("origin"),
        "{refused}"
    );

    // ---- a registration made for another device key (its challenge binds the key) is refused
    let nonce = http.nonce("/v1/enrollment/challenge").await;
    let other_key = Device::new();
    let challenge = sha256(&proof_bytes(&other_key.thumbprint(), &nonce));
    let body = json!({"device_jwk": device.jwk(), "nonce": nonce,
        "user_verification": SoftAuthenticator::new(rp.clone()).register(&challenge).to_wire()});
    let (status, refused) = http.post("/v1/enrollment", &body, None).await;
    assert_refused(status, &refused, 403, "user_verification_invalid");

    // ---- a registration with the user verified enrolls the device, gated
    auth.flags = FLAG_UP | FLAG_UV;
    let (status, enrolled) = enroll_with(&http, &device, &mut auth).await;
    assert_eq!(status, 201, "{enrolled}");
    let credential = enrolled["credential"].as_str().unwrap().to_owned();

    // ---- no assertion: refused, not counted as a failure
    let body = login_body(&http, &device, &credential, None).await;
    let (status, refused) = http.post("/v1/auth/login", &body, None).await;
    assert_refused(status, &refused, 403, "user_verification_required");
    // ---- the authenticator did not verify the user (presence only)
    auth.flags = FLAG_UP;
    let body = login_body(&http, &device, &credential, Some((&mut auth, right))).await;
    let (status, refused) = http.post("/v1/auth/login", &body, None).await;
    assert_refused(status, &refused, 403, "user_verification_required");
    auth.flags = FLAG_UP | FLAG_UV;
    // ---- an assertion for another challenge
    let body = login_body(&http, &device, &credential, Some((&mut auth, wrong))).await;
    let (status, refused) = http.post("/v1/auth/login", &body, None).await;
    assert_refused(status, &refused, 403, "user_verification_invalid");
    // ---- another authenticator's credential
    let mut stranger = SoftAuthenticator::new(rp.clone());
    let body = login_body(&http, &device, &credential, Some((&mut stranger, right))).await;
    let (status, refused) = http.post("/v1/auth/login", &body, None).await;
    assert_refused(status, &refused, 403, "user_verification_invalid");
    // ---- a wrong device signature with a good assertion is still a wrong signature
    let mut body = login_body(&http, &device, &credential, Some((&mut auth, right))).await;
    body["signature"] = json!(Device::new().sign(b"x"));
    let (status, refused) = http.post("/v1/auth/login", &body, None).await;
    assert_refused(status, &refused, 403, "signature_invalid");
    // That was the fourth counted failure (the missing assertion did not count): locked,
    // however good the next attempt.
    let body = login_body(&http, &device, &credential, Some((&mut auth, right))).await;
    let (status, refused) = http.post("/v1/auth/login", &body, None).await;
    assert_refused(status, &refused, 423, "locked");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    // ---- the device key and a verified user: a session
    let body = login_body(&http, &device, &credential, Some((&mut auth, right))).await;
    let (status, session) = http.post("/v1/auth/login", &body, None).await;
    assert_eq!(status, 200, "{session}");
    let token = session["access_token"].as_str().unwrap().to_owned();
    let (_, me) = http.get("/v1/me", Some(&token)).await;
    assert_eq!(me["devices"][0]["user_verification"], "webauthn", "{me}");

    // ---- a cloned authenticator (its counter went back) is refused
    let counter = auth.counter;
    auth.counter = 0;
    let body = login_body(&http, &device, &credential, Some((&mut auth, right))).await;
    let (status, refused) = http.post("/v1/auth/login", &body, None).await;
    assert_refused(status, &refused, 403, "user_verification_invalid");
    assert!(
        refused["detail"].as_str().unwrap().contains("counter"),
        "{refused}"
    );
    auth.counter = counter;

    // ---- the web form takes the assertion as JSON in `user_verification`
    let nonce = http.nonce("/v1/auth/challenge").await;
    let assertion = auth.assert(&right(&nonce)).to_wire().to_string();
    let form = form_encode(&[
        ("credential", &credential),
        ("nonce", &nonce),
        ("signature", &device.sign(nonce.as_bytes())),
        ("user_verification", &assertion),
    ]);
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirect
        .post(format!("{}/login", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &public_url)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert!(resp.headers().get("set-cookie").is_some());
    // …and without it, the page says what is missing.
    let nonce = http.nonce("/v1/auth/challenge").await;
    let form = form_encode(&[
        ("credential", &credential),
        ("nonce", &nonce),
        ("signature", &device.sign(nonce.as_bytes())),
    ]);
    let resp = no_redirect
        .post(format!("{}/login", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &public_url)
        .header("accept-language", "en")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let page = resp.text().await.unwrap();
    assert!(page.contains("user_verification_required"), "{page}");

    // ---- a device enrolled without WebAuthn logs in as before
    let plain = Device::new();
    let enrolled = enroll_device(&http, &plain, None).await;
    let body = login_body(
        &http,
        &plain,
        enrolled["credential"].as_str().unwrap(),
        None,
    )
    .await;
    let (status, session) = http.post("/v1/auth/login", &body, None).await;
    assert_eq!(status, 200, "{session}");
    let (_, me) = http.get("/v1/me", session["access_token"].as_str()).await;
    assert_eq!(me["devices"][0]["user_verification"], "none", "{me}");

    // ---- every refusal is a ledger leaf with its code
    let events = ledger_events(&http).await;
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "auth.login_refused")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    for code in [
        "user_verification_required",
        "user_verification_invalid",
        "signature_invalid",
    ] {
        assert!(reasons.contains(&code), "{code} not in {reasons:?}");
    }
    let enrollment_refusals = events
        .iter()
        .filter(|e| e["type"] == "identity.enrollment_refused")
        .filter_map(|e| e["reason"].as_str())
        .collect::<Vec<_>>();
    assert!(
        enrollment_refusals.contains(&"user_verification_invalid"),
        "{enrollment_refusals:?}"
    );

    drop(server);
    if let (Some((_, schema)), Ok(url)) = (db, std::env::var("TSUNAGU_TEST_DATABASE_URL")) {
        tsunagu_store::SqlStore::drop_schema(&url, &schema)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_device_logs_in_only_with_a_verified_user_on_sqlite() {
    scenario("sqlite_only").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_device_logs_in_only_with_a_verified_user_on_postgres() {
    if std::env::var("TSUNAGU_TEST_DATABASE_URL").is_err() {
        eprintln!("skipped: TSUNAGU_TEST_DATABASE_URL is not set");
        return;
    }
    scenario("pg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_on_an_ip_address_offers_no_webauthn() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let port = free_port();
    let config =
        format!("[server]\nbind = \"127.0.0.1:{port}\"\n[storage]\ndata_dir = \"./data\"\n");
    let server = Server::start(&root, &config, port);
    let http = Http::new(&server.url);
    let (_, challenge) = http
        .post("/v1/enrollment/challenge", &json!({}), None)
        .await;
    assert!(challenge.get("webauthn_rp_id").is_none(), "{challenge}");
    let device = Device::new();
    let mut auth = SoftAuthenticator::new(RelyingParty {
        id: "127.0.0.1".into(),
        origin: server.url.clone(),
    });
    let (status, refused) = enroll_with(&http, &device, &mut auth).await;
    assert_refused(status, &refused, 400, "user_verification_unavailable");
    assert!(
        refused["detail"].as_str().unwrap().contains("IP address"),
        "{refused}"
    );
}
