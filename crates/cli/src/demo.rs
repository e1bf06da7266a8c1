//! `tsunagu demo`: a whole city on the embedded default, narrated.

use anyhow::Context;
use serde_json::Value;
use std::time::Duration;
use tsunagu_client::verify::{history_item_included, monitor};
use tsunagu_client::{ApiClient, ClientError};
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_jpki_sim::{IssueRequest, SimCa};

struct Narrator {
    step: u32,
}

impl Narrator {
    fn step(&mut self, title: &str) {
        self.step += 1;
        println!("\n[{}] {title}", self.step);
    }

    fn say(&self, line: impl AsRef<str>) {
        println!("    {}", line.as_ref());
    }
}

fn expect_refusal(result: Result<Value, ClientError>, code: &str) -> anyhow::Result<String> {
    match result {
        Err(ClientError::Problem {
            code: got, detail, ..
        }) if got == code => Ok(detail),
        Err(e) => anyhow::bail!("expected refusal `{code}`, got: {e}"),
        Ok(v) => anyhow::bail!("expected refusal `{code}`, but it was accepted: {v}"),
    }
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or("?")
}

pub async fn run(keep_running: bool) -> anyhow::Result<()> {
    let mut n = Narrator { step: 0 };
    let work = tempfile::Builder::new().prefix("tsunagu-demo-").tempdir()?;
    let root = if keep_running {
        work.keep()
    } else {
        work.path().to_owned()
    };
    println!("tsunagu demo: a city on the embedded default (SQLite), everything on loopback");
    println!("working directory: {}", root.display());

    n.step("J-LIS (simulated) creates its certificate authority and issues a My Number card");
    let ca_dir = root.join("jpki");
    let mut ca = SimCa::init(&ca_dir)?;
    let hanako = IssueRequest {
        name: "前橋　花子".into(),
        address: "群馬県前橋市大手町二丁目12番1号".into(),
        birthdate: "1988-04-01".into(),
        sex: "2".into(),
        valid_days: None,
        not_before: None,
    };
    let mut card = ca.issue(&hanako, "hanako2024")?;
    n.say(format!(
        "CA certificate: {}",
        ca.certificate_path().display()
    ));
    n.say(
        "card for 前橋 花子: RSA-2048 signing certificate with name, address, birth date and sex",
    );
    n.say("in its subjectAltName (JPKI otherNames); no individual number on it");

    n.step("The platform starts");
    let mut config = tsunagu_server::Config::default();
    config.server.bind = "127.0.0.1:0".into();
    config.storage.data_dir = root.join("data");
    config.identity.jpki_trust_anchors = vec![ca.certificate_path()];
    config.identity.jpki_crls = vec![ca.crl_path().to_string_lossy().into_owned()];
    config.identity.required_certificate_policy =
        Some(tsunagu_crypto::jpki::POLICY_SIGNING.to_owned());
    let running = tsunagu_server::spawn(config).await?;
    let url = running.url();
    let client = ApiClient::new(&url);
    n.say(format!(
        "listening on {url}, storage {}",
        running.app.store.backend()
    ));

    n.step("Hanako installs the app: her phone makes a device key and enrolls without the card");
    let phone = SigningKey::generate(Alg::Es256)?;
    let enrolled = client.enroll(phone.public_jwk(), None).await?;
    let phone_credential = field(&enrolled, "credential").to_owned();
    n.say(format!(
        "→ {} ID (仮ID), account {}, device {}",
        field(&enrolled, "level"),
        field(&enrolled, "account_id"),
        field(&enrolled, "device_id")
    ));
    n.say("a provisional ID may log in but may not consent to data linkage");

    n.step("She proofs the ID with her card");
    let proofed = client
        .enroll(phone.public_jwk(), Some((&mut card, "hanako2024")))
        .await?;
    let phone_credential = proofed["credential"]
        .as_str()
        .unwrap_or(&phone_credential)
        .to_owned();
    n.say("the card signed JCS({device_jwk_thumbprint, nonce}) with its signing key;");
    n.say("the platform checked the chain, validity, key usage, the JPKI policy, the CRL and the signature");
    n.say(format!("→ level {}", field(&proofed, "level")));

    n.step("She logs in: the phone signs a fresh nonce with its key (PIN + device = two factors)");
    let login = client.login(&phone_credential, &phone).await?;
    let token = ApiClient::token(&login)?;
    let me = client.get("/v1/me", Some(&token)).await?;
    n.say(format!(
        "→ {} ({}), born {}, {}",
        me["attributes"]["name"].as_str().unwrap_or("?"),
        me["attributes"]["sex"].as_str().unwrap_or("?"),
        me["attributes"]["birthdate"].as_str().unwrap_or("?"),
        me["attributes"]["address"].as_str().unwrap_or("?"),
    ));
    n.say("these four items are stored encrypted (AES-256-GCM); /v1/me never shows an individual number");
    let monitor_state = root.join("auditor-sth.json");
    let first = monitor(&url, Some(&monitor_state)).await?;
    n.say(format!(
        "an auditor saves the signed tree head of size {} to check the log later",
        first.sth.tree_size
    ));

    n.step("She adds her tablet with the same card");
    let tablet = SigningKey::generate(Alg::Es256)?;
    let tablet_enrolled = client
        .enroll(tablet.public_jwk(), Some((&mut card, "hanako2024")))
        .await?;
    let tablet_id = field(&tablet_enrolled, "device_id").to_owned();
    let tablet_credential = field(&tablet_enrolled, "credential").to_owned();
    n.say(format!(
        "→ same account {}, second device {}",
        field(&tablet_enrolled, "account_id"),
        tablet_id
    ));

    n.step("Someone copies the tablet's credential but not its key, and tries to log in");
    let thief = SigningKey::generate(Alg::Es256)?;
    for attempt in 1..=3 {
        let detail = expect_refusal(
            client.login(&tablet_credential, &thief).await,
            "signature_invalid",
        )?;
        n.say(format!(
            "attempt {attempt}: refused, signature_invalid ({detail})"
        ));
    }
    let detail = expect_refusal(client.login(&tablet_credential, &tablet).await, "locked")?;
    n.say(format!(
        "even the right key is now refused for a while: locked ({detail})"
    ));

    n.step("From her phone she revokes the tablet");
    client
        .post(
            &format!("/v1/me/devices/{tablet_id}/revoke"),
            &serde_json::json!({}),
            Some(&token),
        )
        .await?;
    let detail = expect_refusal(
        client.login(&tablet_credential, &tablet).await,
        "credential_revoked",
    )?;
    n.say(format!(
        "the tablet can sign nothing more: credential_revoked ({detail})"
    ));

    n.step("She moves house: J-LIS revokes the old certificate (affiliationChanged)");
    let serial = ca
        .issued()
        .first()
        .map(|c| c.serial.clone())
        .context("no certificate issued")?;
    ca.revoke(&serial, "affiliationChanged")?;
    n.say(format!("CRL republished with serial {serial}"));
    let mut status = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let me = client.get("/v1/me", Some(&token)).await?;
        status = field(&me, "status").to_owned();
        if status == "reproof_required" {
            break;
        }
    }
    anyhow::ensure!(
        status == "reproof_required",
        "the status check did not run (status {status})"
    );
    n.say(
        "the platform re-read the CRL and checked its accounts (現況確認): status reproof_required",
    );
    let moved = IssueRequest {
        address: "群馬県前橋市千代田町二丁目1番1号".into(),
        ..hanako
    };
    let mut new_card = ca.issue(&moved, "hanako2024")?;
    let reproofed = client
        .enroll(phone.public_jwk(), Some((&mut new_card, "hanako2024")))
        .await?;
    let me = client.get("/v1/me", Some(&token)).await?;
    n.say(format!(
        "with the new card she proofs again: level {}, status {}, address {}",
        field(&reproofed, "level"),
        field(&me, "status"),
        me["attributes"]["address"].as_str().unwrap_or("?")
    ));

    n.step("She reads her history and checks every entry against the signed tree head");
    let history = client.get("/v1/me/history?limit=200", Some(&token)).await?;
    let sth: tsunagu_ledger::SignedTreeHead = serde_json::from_value(history["sth"].clone())?;
    let key = client.ledger_key(&sth.key_id).await?;
    sth.verify(&key)?;
    let items = history["items"].as_array().cloned().unwrap_or_default();
    for item in items.iter().rev() {
        history_item_included(&client, item, &sth).await?;
        n.say(format!(
            "#{:<3} {:<29} {:<18} ✓ included",
            item["leaf_index"],
            item["type"].as_str().unwrap_or("?"),
            item["reason"]
                .as_str()
                .unwrap_or(match item["outcome"].as_str() {
                    Some("recorded") => "",
                    other => other.unwrap_or(""),
                })
        ));
    }
    if let Some(example) = items.first().and_then(|i| i["event"].as_object()) {
        n.say(format!(
            "a leaf holds pseudonyms and codes only, e.g. {}",
            serde_json::to_string(example)?
        ));
    }

    n.step("The auditor checks the log again");
    let report = monitor(&url, Some(&monitor_state)).await?;
    n.say(format!(
        "tree head of size {} (root {}) verifies with the ledger key {}",
        report.sth.tree_size, report.sth.root_hash, report.sth.key_id
    ));
    n.say(format!(
        "and is consistent with the head of size {} saved earlier: nothing was rewritten",
        report.previous.unwrap_or(0)
    ));

    if keep_running {
        println!("\nThe platform keeps running at {url}");
        println!(
            "  {url}/healthz   {url}/v1/ledger/sth   {url}/.well-known/jwks.json   {url}/openapi.json"
        );
        println!(
            "  files in {} (CA in jpki/, database in data/)",
            root.display()
        );
        println!("Press Ctrl-C to stop.");
        tokio::signal::ctrl_c().await?;
    } else {
        println!("\ndemo finished: every step behaved as expected");
    }
    running.abort();
    Ok(())
}
