//! End to end, through the real binary over HTTP: a CA made here with openssl; enrollment
//! and every refusal code; login, lock-out and device revocation; history items proven
//! included in a signed tree head; the status check after a revocation; a restart that keeps
//! the log consistent. Runs on SQLite, and on PostgreSQL when `TSUNAGU_TEST_DATABASE_URL`
//! is set.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const NOW_START: &str = "20240101000000Z";
const FAR_END: &str = "20350101000000Z";

struct City {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    ca: OpenSslCa,
    good: Issued,
    revoked: Issued,
    expired: Issued,
    future: Issued,
    no_address: Issued,
    stranger: Issued,
}

fn city() -> City {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let mut ca = OpenSslCa::new(&root.join("ca"), "Test JPKI");
    let good = ca.issue(
        "good",
        &jpki_items("山田　太郎", "東京都千代田区霞が関一丁目1番1号"),
        NOW_START,
        FAR_END,
    );
    let revoked = ca.issue(
        "revoked",
        &jpki_items("鈴木　一郎", "大阪府大阪市北区中之島一丁目3番20号"),
        NOW_START,
        FAR_END,
    );
    let expired = ca.issue(
        "expired",
        &jpki_items("佐藤　花子", "北海道札幌市"),
        "20200101000000Z",
        "20210101000000Z",
    );
    let future = ca.issue(
        "future",
        &jpki_items("佐藤　次郎", "北海道札幌市"),
        "20400101000000Z",
        "20450101000000Z",
    );
    let no_address = ca.issue(
        "noaddr",
        &[("1", "田中　三郎"), ("3", "1"), ("4", "419800101")],
        NOW_START,
        FAR_END,
    );
    ca.revoke(&revoked);
    ca.publish_crl();
    let mut other = OpenSslCa::new(&root.join("other"), "Not JPKI");
    let stranger = other.issue(
        "stranger",
        &jpki_items("高橋　四郎", "福岡県福岡市"),
        NOW_START,
        FAR_END,
    );
    City {
        _dir: dir,
        root,
        ca,
        good,
        revoked,
        expired,
        future,
        no_address,
        stranger,
    }
}

async fn database_url(label: &str) -> Option<String> {
    let url = std::env::var("TSUNAGU_TEST_DATABASE_URL").ok()?;
    let schema = format!("e2e_{label}_{}", std::process::id());
    tsunagu_store::SqlStore::drop_schema(&url, &schema)
        .await
        .unwrap();
    tsunagu_store::open_postgres(&url, Some(&schema))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
}

fn config(port: u16, database_url: Option<&str>) -> String {
    let db = database_url
        .map(|u| format!("database_url = \"{u}\"\n"))
        .unwrap_or_default();
    format!(
        r#"[server]
bind = "127.0.0.1:{port}"
[storage]
data_dir = "./data"
{db}[identity]
jpki_trust_anchors = ["ca/ca.pem"]
jpki_crls = ["ca/ca.crl"]
[ledger]
sth_interval_seconds = 1
"#
    )
}

/// An enrollment body with a card proof by `card` (signature by `signer`'s key).
async fn proof_request(
    http: &Http,
    device: &Device,
    card: &Issued,
    signer: &Issued,
    nonce: Option<&str>,
) -> Value {
    let nonce = match nonce {
        Some(n) => n.to_owned(),
        None => http.nonce("/v1/enrollment/challenge").await,
    };
    let signed = proof_bytes(&device.thumbprint(), &nonce);
    let signature = card_sign(&signer.key, &signed);
    json!({
        "device_jwk": device.jwk(),
        "nonce": nonce,
        "proof": {
            "type": "jpki",
            "certificate_chain": [B64.encode(&card.der)],
            "signed_data": B64.encode(&signed),
            "signature": B64.encode(signature),
        }
    })
}

async fn refused(http: &Http, body: &Value, code: &str) {
    let (status, answer) = http.post("/v1/enrollment", body, None).await;
    assert_eq!(answer["code"], code, "{answer}");
    assert!(status == 400 || status == 403, "{status} {answer}");
    assert_eq!(answer["status"], status);
}

async fn login(http: &Http, credential: &str, device: &Device) -> (u16, Value) {
    let nonce = http.nonce("/v1/auth/challenge").await;
    let body = json!({"credential": credential, "nonce": nonce, "signature": device.sign(nonce.as_bytes())});
    http.post("/v1/auth/login", &body, None).await
}

fn hashes(v: &Value) -> Vec<Vec<u8>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| B64.decode(h.as_str().unwrap()).unwrap())
        .collect()
}

/// Checks a tree head's signature with the JWKS key named by its key_id, rebuilding the
/// signed JCS text by hand.
async fn verified_sth(http: &Http) -> Value {
    let (_, sth) = http.get("/v1/ledger/sth", None).await;
    let (_, jwks) = http.get("/.well-known/jwks.json", None).await;
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == sth["key_id"])
        .expect("the signing key is published");
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    let signed = format!(
        r#"{{"root_hash":"{}","timestamp":{},"tree_size":{}}}"#,
        sth["root_hash"].as_str().unwrap(),
        sth["timestamp"],
        sth["tree_size"]
    );
    let public = B64URL.decode(key["x"].as_str().unwrap()).unwrap();
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, public)
        .verify(
            signed.as_bytes(),
            &B64.decode(sth["signature"].as_str().unwrap()).unwrap(),
        )
        .expect("the tree head signature verifies");
    sth
}

async fn scenario(label: &str) {
    let city = city();
    let db = database_url(label).await;
    let port = free_port();
    let server = Server::start(&city.root, &config(port, db.as_deref()), port);
    let http = Http::new(&server.url);

    // ---- every enrollment refusal, each from a real situation
    let device = Device::new();
    let mut body = proof_request(&http, &device, &city.good, &city.good, None).await;
    body["nonce"] = json!("never-issued");
    refused(&http, &body, "nonce_invalid").await;
    let nonce = http.nonce("/v1/enrollment/challenge").await;
    let body = proof_request(&http, &device, &city.good, &city.good, Some(&nonce)).await;
    http.post(
        "/v1/enrollment",
        &json!({"device_jwk": device.jwk(), "nonce": nonce}),
        None,
    )
    .await;
    refused(&http, &body, "nonce_invalid").await; // the nonce was used by the line above
    let body = proof_request(&http, &Device::new(), &city.good, &city.revoked, None).await;
    refused(&http, &body, "signature_invalid").await;
    let body = proof_request(&http, &Device::new(), &city.stranger, &city.stranger, None).await;
    refused(&http, &body, "certificate_untrusted").await;
    let body = proof_request(&http, &Device::new(), &city.expired, &city.expired, None).await;
    refused(&http, &body, "certificate_expired").await;
    let body = proof_request(&http, &Device::new(), &city.revoked, &city.revoked, None).await;
    refused(&http, &body, "certificate_revoked").await;
    let body = proof_request(
        &http,
        &Device::new(),
        &city.no_address,
        &city.no_address,
        None,
    )
    .await;
    refused(&http, &body, "attributes_missing").await;
    let body = proof_request(&http, &Device::new(), &city.future, &city.future, None).await;
    refused(&http, &body, "certificate_not_yet_valid").await;
    let mut bad_key =
        json!({"device_jwk": {"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}, "nonce": "x"});
    let (status, answer) = http.post("/v1/enrollment", &bad_key, None).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_jwk")),
        "{answer}"
    );
    bad_key["device_jwk"]["d"] = json!("secret");
    let (_, answer) = http.post("/v1/enrollment", &bad_key, None).await;
    assert_eq!(answer["code"], "invalid_jwk");
    let (status, answer) = http
        .post("/v1/enrollment", &json!("not an object"), None)
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_json"))
    );

    // ---- a verified enrollment
    let phone = Device::new();
    let body = proof_request(&http, &phone, &city.good, &city.good, None).await;
    let (status, enrolled) = http.post("/v1/enrollment", &body, None).await;
    assert_eq!(status, 201, "{enrolled}");
    assert_eq!(enrolled["level"], "verified");
    let phone_credential = enrolled["credential"].as_str().unwrap().to_owned();
    let account = enrolled["account_id"].as_str().unwrap().to_owned();

    // ---- login, nonce reuse, wrong key
    let (status, logged_in) = login(&http, &phone_credential, &phone).await;
    assert_eq!(status, 200, "{logged_in}");
    let token = logged_in["access_token"].as_str().unwrap().to_owned();
    let nonce = http.nonce("/v1/auth/challenge").await;
    let once = json!({"credential": phone_credential, "nonce": nonce, "signature": phone.sign(nonce.as_bytes())});
    assert_eq!(http.post("/v1/auth/login", &once, None).await.0, 200);
    let (_, again) = http.post("/v1/auth/login", &once, None).await;
    assert_eq!(again["code"], "nonce_invalid", "a login nonce works once");

    let (status, me) = http.get("/v1/me", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(me["account_id"], account.as_str());
    assert_eq!(me["level"], "verified");
    assert_eq!(me["attributes"]["name"], "山田　太郎");
    assert_eq!(
        me["attributes"]["address"],
        "東京都千代田区霞が関一丁目1番1号"
    );
    assert_eq!(me["attributes"]["birthdate"], "1980-01-01");
    assert_eq!(me["attributes"]["sex"], "male");
    let text = me.to_string().to_lowercase();
    assert!(
        !text.contains("individual_number")
            && !text.contains("my_number")
            && !text.contains("kojin")
    );
    assert!(
        !text
            .chars()
            .collect::<Vec<_>>()
            .windows(12)
            .any(|w| w.iter().all(|c| c.is_ascii_digit())),
        "no 12-digit number in /v1/me: {me}"
    );
    assert_eq!(http.get("/v1/me", None).await.0, 401);
    assert_eq!(http.get("/v1/me", Some("made-up")).await.0, 401);

    // ---- a second device with the same card, then lock-out of the first
    let tablet = Device::new();
    let body = proof_request(&http, &tablet, &city.good, &city.good, None).await;
    let (status, tablet_enrolled) = http.post("/v1/enrollment", &body, None).await;
    assert_eq!(status, 201, "{tablet_enrolled}");
    assert_eq!(
        tablet_enrolled["account_id"],
        account.as_str(),
        "same card, same resident"
    );
    let tablet_credential = tablet_enrolled["credential"].as_str().unwrap().to_owned();
    let tablet_id = tablet_enrolled["device_id"].as_str().unwrap().to_owned();

    let thief = Device::new();
    for _ in 0..3 {
        let (status, answer) = login(&http, &tablet_credential, &thief).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (403, Some("signature_invalid")),
            "{answer}"
        );
    }
    let (status, answer) = login(&http, &tablet_credential, &tablet).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (423, Some("locked")),
        "{answer}"
    );
    assert_eq!(
        login(&http, &phone_credential, &phone).await.0,
        200,
        "the lock is per device"
    );

    // ---- device revocation
    let (status, revoked) = http
        .post(
            &format!("/v1/me/devices/{tablet_id}/revoke"),
            &json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    let (_, answer) = login(&http, &tablet_credential, &tablet).await;
    assert_eq!(answer["code"], "credential_revoked");
    let (status, _) = http
        .post("/v1/me/devices/unknown/revoke", &json!({}), Some(&token))
        .await;
    assert_eq!(status, 404);
    let (_, me) = http.get("/v1/me", Some(&token)).await;
    let devices = me["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    assert!(
        devices
            .iter()
            .any(|d| d["id"] == tablet_id.as_str() && d["status"] == "revoked")
    );

    // ---- history, every item proven included in a signed tree head
    let first_sth = verified_sth(&http).await;
    let (status, history) = http.get("/v1/me/history?limit=200", Some(&token)).await;
    assert_eq!(status, 200, "{history}");
    let items = history["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    for kind in [
        "identity.enrolled",
        "identity.device_added",
        "auth.login",
        "auth.login_refused",
        "identity.device_revoked",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let reasons: Vec<&str> = items.iter().filter_map(|i| i["reason"].as_str()).collect();
    for reason in [
        "signature_invalid",
        "locked",
        "credential_revoked",
        "nonce_invalid",
    ] {
        assert!(
            reasons.contains(&reason),
            "refusal {reason} missing from the history: {reasons:?}"
        );
    }
    let sth = verified_sth(&http).await;
    let size = sth["tree_size"].as_u64().unwrap();
    let root = B64.decode(sth["root_hash"].as_str().unwrap()).unwrap();
    for item in items {
        let index = item["leaf_index"].as_u64().unwrap();
        let input = B64.decode(item["leaf_input"].as_str().unwrap()).unwrap();
        let leaf: Value = serde_json::from_slice(&input).unwrap();
        assert_eq!(leaf["type"], item["type"]);
        let leaf_text = String::from_utf8(input.clone()).unwrap();
        assert!(
            !leaf_text.contains("山田") && !leaf_text.contains(&account),
            "no personal data in leaves: {leaf_text}"
        );
        let (status, proof) = http
            .get(
                &format!("/v1/ledger/proof/inclusion?leaf_index={index}&tree_size={size}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{proof}");
        let leaf_hash = tsunagu_ledger::leaf_hash(&input);
        assert_eq!(
            B64.decode(proof["leaf_hash"].as_str().unwrap()).unwrap(),
            leaf_hash
        );
        tsunagu_ledger::verify_inclusion(
            index,
            size,
            &leaf_hash,
            &hashes(&proof["audit_path"]),
            &root,
        )
        .unwrap_or_else(|e| panic!("leaf {index} not proven in tree {size}: {e}"));
    }
    let (status, answer) = http
        .get(
            &format!("/v1/ledger/proof/inclusion?leaf_index={size}&tree_size={size}"),
            None,
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_range"))
    );
    let (status, _) = http.get("/v1/ledger/entries?start=0&end=5", None).await;
    assert_eq!(status, 401, "entries are for auditors");

    // ---- the status check: a revoked card certificate requires re-proofing
    city.ca.revoke(&city.good);
    city.ca.publish_crl();
    let mut status_now = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, me) = http.get("/v1/me", Some(&token)).await;
        status_now = me["status"].as_str().unwrap().to_owned();
        if status_now == "reproof_required" {
            break;
        }
    }
    assert_eq!(status_now, "reproof_required");

    // ---- a restart rebuilds the tree from storage; the log stays consistent
    drop(server);
    let server = Server::start(&city.root, &config(port, db.as_deref()), port);
    let http = Http::new(&server.url);
    let after = verified_sth(&http).await;
    let (first, second) = (
        first_sth["tree_size"].as_u64().unwrap(),
        after["tree_size"].as_u64().unwrap(),
    );
    assert!(second > first);
    let (_, proof) = http
        .get(
            &format!("/v1/ledger/proof/consistency?first={first}&second={second}"),
            None,
        )
        .await;
    tsunagu_ledger::verify_consistency(
        first,
        second,
        &hashes(&proof["proof"]),
        &B64.decode(first_sth["root_hash"].as_str().unwrap())
            .unwrap(),
        &B64.decode(after["root_hash"].as_str().unwrap()).unwrap(),
    )
    .expect("the restarted log extends the earlier one");
    let (status, _) = http.get("/v1/me", Some(&token)).await;
    assert_eq!(
        status, 200,
        "sessions live in the database and survive a restart"
    );
    let (_, health) = http.get("/healthz", None).await;
    assert_eq!(health["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_end_to_end_on_sqlite() {
    scenario("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_end_to_end_on_postgres() {
    if std::env::var("TSUNAGU_TEST_DATABASE_URL").is_err() {
        println!(
            "NOTICE: TSUNAGU_TEST_DATABASE_URL not set: the PostgreSQL end-to-end run is skipped"
        );
        return;
    }
    scenario("postgres").await;
}
