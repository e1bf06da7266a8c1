//! Key rotation as an operator runs it on a running server (ADR 0019), on SQLite and, when
//! `TSUNAGU_TEST_DATABASE_URL` is set, on PostgreSQL: `tsunagu admin keys rotate` for the
//! signing key (published before it signs; a credential signed before still logs in; new
//! credentials carry the new key), the tree-head key (the auditor's `ledger verify` follows
//! the announced change, and refuses a key nobody announced) and the keyring (attributes
//! still open, the old key is gone from the file). Each rotation is a ledger leaf.

mod common;

use common::{
    Http, Server, eventually, fails, free_port, ledger_events, now, ok, run_tsunagu as tsunagu,
};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tsunagu_crypto::b64;

fn kid_of(jws: &str) -> String {
    let header = jws.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&b64::url_decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn credential(wallet: &Path) -> String {
    let w: Value = serde_json::from_slice(&std::fs::read(wallet).unwrap()).unwrap();
    w["credential"].as_str().unwrap().to_owned()
}

async fn jwks_kids(http: &Http) -> Vec<String> {
    let (status, jwks) = http.get("/.well-known/jwks.json", None).await;
    assert_eq!(status, 200);
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn scenario(database: Option<(String, String)>) {
    let root_dir = tempfile::tempdir().unwrap();
    let root = root_dir.path();
    ok(tsunagu(root, &["dev", "jpki", "init", "--dir", "ca"], &[]));
    let card_pin = [("TSUNAGU_CARD_PIN", "abc123")];
    ok(tsunagu(
        root,
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
    let port = free_port();
    let storage = match &database {
        Some((url, _)) => format!("[storage]\ndatabase_url = \"{url}\"\n"),
        None => String::new(),
    };
    let site = root.join("site");
    std::fs::create_dir_all(&site).unwrap();
    let config_text = format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\n{storage}[identity]\njpki_trust_anchors = [\"../ca/ca.pem\"]\njpki_crls = [\"../ca/ca.crl\"]\n[ledger]\npublic_entries = true\n[keys]\npublish_ahead_seconds = 8\nrefresh_seconds = 1\nsealing_grace_seconds = 2\n"
    );
    let server = Server::start(&site, &config_text, port);
    let config = "site/tsunagu.toml";
    let http = Http::new(&server.url);
    let pins = [
        ("TSUNAGU_WALLET_PIN", "2468"),
        ("TSUNAGU_CARD_PIN", "abc123"),
    ];
    let enrolled = ok(tsunagu(
        root,
        &[
            "wallet",
            "enroll",
            "--wallet",
            "phone.json",
            "--url",
            &server.url,
            "--card",
            "card.json",
        ],
        &pins,
    ));
    assert!(enrolled.contains("level verified"), "{enrolled}");
    let old_credential = credential(&root.join("phone.json"));
    let old_kid = kid_of(&old_credential);
    assert!(jwks_kids(&http).await.contains(&old_kid));
    ok(tsunagu(
        root,
        &[
            "ledger",
            "verify",
            "--url",
            &server.url,
            "--state",
            "auditor.json",
        ],
        &[],
    ));
    std::fs::copy(root.join("auditor.json"), root.join("forged.json")).unwrap();

    // ---- bad input: one readable line each
    let err = fails(tsunagu(
        root,
        &[
            "admin", "keys", "rotate", "--config", config, "--what", "keys",
        ],
        &[],
    ));
    assert!(
        err.contains("--what must be sealing, signing or ledger"),
        "{err}"
    );
    let err = fails(tsunagu(
        root,
        &[
            "admin",
            "keys",
            "rotate",
            "--config",
            "nowhere.toml",
            "--what",
            "signing",
        ],
        &[],
    ));
    assert!(err.contains("nowhere.toml does not exist"), "{err}");

    // ---- signing: published first, signing after publish_ahead_seconds
    let rotated: Value = serde_json::from_str(&ok(tsunagu(
        root,
        &[
            "admin", "keys", "rotate", "--config", config, "--what", "signing",
        ],
        &[],
    )))
    .unwrap();
    let new_kid = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(rotated["previous"][0], old_kid.as_str());
    let activate_at = rotated["activate_at"].as_i64().unwrap();
    // Refused while the new key is not yet signing (publish_ahead_seconds is 8 here, so that
    // a loaded machine still runs this command before activation).
    let err = fails(tsunagu(
        root,
        &[
            "admin", "keys", "rotate", "--config", config, "--what", "signing",
        ],
        &[],
    ));
    assert!(err.contains("under way"), "{err}");
    eventually("the new signing key is in the JWKS", || async {
        jwks_kids(&http).await.contains(&new_kid)
    })
    .await;
    // After activation (and a refresh), new credentials carry the new key ...
    while now() <= activate_at + 1 {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut n = 0;
    eventually("a new credential is signed by the new key", || {
        n += 1;
        let wallet = format!("tablet-{n}.json");
        let root = root.to_owned();
        let url = server.url.clone();
        let new_kid = new_kid.clone();
        async move {
            ok(tsunagu(
                &root,
                &["wallet", "enroll", "--wallet", &wallet, "--url", &url],
                &[("TSUNAGU_WALLET_PIN", "1357")],
            ));
            kid_of(&credential(&root.join(&wallet))) == new_kid
        }
    })
    .await;
    // ... and the credential signed before still logs in: the old key stays published.
    ok(tsunagu(
        root,
        &["wallet", "login", "--wallet", "phone.json"],
        &pins,
    ));
    let kids = jwks_kids(&http).await;
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );

    // ---- ledger: the auditor follows the announced change
    let rotated: Value = serde_json::from_str(&ok(tsunagu(
        root,
        &[
            "admin", "keys", "rotate", "--config", config, "--what", "ledger",
        ],
        &[],
    )))
    .unwrap();
    let ledger_kid = rotated["key"].as_str().unwrap().to_owned();
    let (_, rotations) = http.get("/v1/ledger/key-rotations", None).await;
    assert_eq!(rotations["rotations"].as_array().unwrap().len(), 1);
    eventually("tree heads are signed by the new ledger key", || async {
        let (_, sth) = http.get("/v1/ledger/sth", None).await;
        sth["key_id"] == ledger_kid.as_str()
    })
    .await;
    let verified = ok(tsunagu(
        root,
        &[
            "ledger",
            "verify",
            "--url",
            &server.url,
            "--state",
            "auditor.json",
        ],
        &[],
    ));
    assert!(
        verified.contains("the ledger key changed") && verified.contains(&ledger_kid),
        "{verified}"
    );
    let verified = ok(tsunagu(
        root,
        &[
            "ledger",
            "verify",
            "--url",
            &server.url,
            "--state",
            "auditor.json",
        ],
        &[],
    ));
    assert!(
        !verified.contains("changed"),
        "the new key is pinned now: {verified}"
    );
    // An auditor who trusts another key (nobody announced a change from it) is refused.
    let mut forged: Value =
        serde_json::from_slice(&std::fs::read(root.join("forged.json")).unwrap()).unwrap();
    let other =
        tsunagu_crypto::keys::SigningKey::generate(tsunagu_crypto::keys::Alg::EdDsa).unwrap();
    forged["key"] = other.public_jwk().to_value();
    std::fs::write(root.join("forged.json"), forged.to_string()).unwrap();
    let err = fails(tsunagu(
        root,
        &[
            "ledger",
            "verify",
            "--url",
            &server.url,
            "--state",
            "forged.json",
        ],
        &[],
    ));
    assert!(err.contains("no key change was announced"), "{err}");

    // ---- sealing: every row sealed again, the old key removed from the file
    let rotated: Value = serde_json::from_str(&ok(tsunagu(
        root,
        &[
            "admin", "keys", "rotate", "--config", config, "--what", "sealing",
        ],
        &[],
    )))
    .unwrap();
    assert_eq!(rotated["key"], "2");
    assert!(rotated["resealed"].as_u64().unwrap() >= 4, "{rotated}");
    let keyring: Value =
        serde_json::from_slice(&std::fs::read(site.join("data/keyring.json")).unwrap()).unwrap();
    assert_eq!(keyring["active"], 2);
    assert_eq!(
        keyring["keys"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["2"]
    );
    let status = ok(tsunagu(
        root,
        &["wallet", "status", "--wallet", "phone.json"],
        &pins,
    ));
    assert!(status.contains("前橋　花子"), "{status}");
    let keys: Value = serde_json::from_str(&ok(tsunagu(
        root,
        &["admin", "keys", "status", "--config", config],
        &[],
    )))
    .unwrap();
    let state_of = |kid: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .map(|k| k["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state_of(&new_kid).as_deref(), Some("current"));
    assert_eq!(state_of(&old_kid).as_deref(), Some("retiring"));
    assert_eq!(state_of(&ledger_kid).as_deref(), Some("current"));
    assert_eq!(state_of("2").as_deref(), Some("active"));

    // ---- each rotation is a ledger leaf
    let leaves = ledger_events(&http).await;
    let has = |kind: &str, what: Option<&str>| {
        leaves
            .iter()
            .any(|l| l["type"] == kind && what.is_none_or(|w| l["what"] == w))
    };
    assert!(has("keys.rotation_started", Some("signing")));
    assert!(has("ledger.key_rotated", None));
    assert!(has("keys.rotation_started", Some("sealing")));
    assert!(has("keys.retired", Some("sealing")));

    drop(server);
    if let Some((_, schema)) = database {
        let url = std::env::var("TSUNAGU_TEST_DATABASE_URL").unwrap();
        tsunagu_store::SqlStore::drop_schema(&url, &schema)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_on_a_running_server_on_sqlite() {
    scenario(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_on_a_running_server_on_postgres() {
    let Some(database) = common::postgres_url("rot", "e2e").await else {
        eprintln!("TSUNAGU_TEST_DATABASE_URL is not set; skipping");
        return;
    };
    scenario(Some(database)).await;
}
