//! The HTTP edge as an attacker meets it, through the real binary: framework rejections
//! (a path parameter that is not UTF-8, a body over the limit) answer problem+json; JSON
//! endpoints read only JSON; error details never name the platform's Rust types; `/healthz`
//! shows no server path; the anonymous endpoints are limited per source address; a service
//! name with a direction override or an invisible character is refused.

mod common;

use common::*;
use serde_json::{Value, json};

const NOW_START: &str = "20240101000000Z";
const FAR_END: &str = "20350101000000Z";

struct Raw {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: Value,
}

async fn raw(req: reqwest::RequestBuilder) -> Raw {
    let resp = req.send().await.unwrap();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    Raw {
        status,
        content_type,
        retry_after,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

fn assert_problem(r: &Raw, status: u16, code: &str) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert_eq!(r.content_type, "application/problem+json", "{:?}", r.body);
    assert_eq!(r.body["code"], code, "{:?}", r.body);
}

fn application(name: &str, key: &Device) -> Value {
    json!({
        "name": name, "organization": "前橋市", "contact": "rp@example.jp", "kind": "consumer",
        "jwks": {"keys": [key.jwk()]},
        "redirect_uris": ["https://rp.example.jp/cb"],
        "security": {"iso27001": true, "incident_contact": "soc@example.jp", "subcontractors": []}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_refuses_what_it_cannot_read_and_bounds_anonymous_volume() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let mut ca = OpenSslCa::new(&root.join("ca"), "Test JPKI");
    ca.issue(
        "good",
        &jpki_items("山田　太郎", "東京都千代田区霞が関一丁目1番1号"),
        NOW_START,
        FAR_END,
    );
    ca.publish_crl();
    let port = free_port();
    // Absolute paths, so that /healthz has one to leak.
    let config = format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\nanonymous_requests_per_minute = 5\nservice_applications_per_hour = 2\n[identity]\njpki_trust_anchors = [\"{}\"]\njpki_crls = [\"{}\"]\n",
        ca.cert_path().display(),
        ca.crl_path().display(),
    );
    let server = Server::start(&root, &config, port);
    let base = server.url.clone();
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{base}{p}");

    // ---- /healthz names the CRL's file, not where the server keeps it
    let health = raw(client.get(url("/healthz"))).await;
    assert_eq!(health.status, 200);
    let crl = &health.body["jpki"]["crls"][0];
    let crl_name = ca
        .crl_path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(crl["location"], crl_name.as_str(), "{}", health.body);
    assert!(
        !health
            .body
            .to_string()
            .contains(&root.display().to_string()),
        "{}",
        health.body
    );
    assert_eq!(crl["loaded"], true);

    // ---- a path parameter that is not UTF-8: problem+json, not text/plain
    let r = raw(client.get(url("/v1/services/%FF%FE"))).await;
    assert_problem(&r, 400, "invalid_request");

    // ---- JSON endpoints read JSON only, and never quote Rust type names
    let r = raw(client
        .post(url("/v1/auth/login"))
        .header("content-type", "text/plain")
        .body("{}"))
    .await;
    assert_problem(&r, 415, "unsupported_media_type");
    let r = raw(client.post(url("/v1/auth/login")).body("{}")).await;
    assert_problem(&r, 415, "unsupported_media_type");
    let r = raw(client
        .post(url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body("[1, 2]"))
    .await;
    assert_problem(&r, 400, "invalid_json");
    let detail = r.body["detail"].as_str().unwrap();
    assert!(!detail.contains("struct"), "{detail}");
    assert!(!detail.contains("LoginRequest"), "{detail}");

    // ---- an oversized form body: problem+json (the fifth login-class call)
    let r = raw(client
        .post(url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &base)
        .body(vec![b'a'; 300 * 1024]))
    .await;
    assert_problem(&r, 413, "payload_too_large");

    // ---- anonymous volume: five challenges a minute from this address, then 429
    for _ in 0..5 {
        let r = raw(client.post(url("/v1/auth/challenge")).json(&json!({}))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let r = raw(client.post(url("/v1/auth/challenge")).json(&json!({}))).await;
    assert_problem(&r, 429, "rate_limited");
    assert_eq!(
        r.retry_after.as_deref(),
        Some("12"),
        "5 a minute: one every 12 s"
    );
    let r = raw(client
        .post(url("/v1/enrollment/challenge"))
        .json(&json!({})))
    .await;
    assert_problem(&r, 429, "rate_limited");
    // Logins have their own bucket: one left of five.
    let r = raw(client.post(url("/v1/auth/login")).json(&json!({}))).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let r = raw(client.post(url("/v1/auth/login")).json(&json!({}))).await;
    assert_problem(&r, 429, "rate_limited");
    // Authenticated and public reads are not limited.
    for _ in 0..20 {
        assert_eq!(raw(client.get(url("/v1/ledger/sth"))).await.status, 200);
    }

    // ---- names a resident reads show what they say; applications are limited too
    let key = Device::new();
    let r = raw(client
        .post(url("/v1/services"))
        .json(&application("すくすく\u{202E}育保", &key)))
    .await;
    assert_problem(&r, 400, "application_invalid");
    assert!(
        r.body["detail"].as_str().unwrap().contains("U+202E"),
        "{:?}",
        r.body
    );
    let r = raw(client
        .post(url("/v1/services"))
        .json(&application("すくすく\u{200B}保育", &key)))
    .await;
    assert_problem(&r, 400, "application_invalid");
    let r = raw(client
        .post(url("/v1/services"))
        .json(&application("すくすく保育", &key)))
    .await;
    assert_problem(&r, 429, "rate_limited");
    assert_eq!(r.retry_after.as_deref(), Some("1800"));
    drop(server);
}
