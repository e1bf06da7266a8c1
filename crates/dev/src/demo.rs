//! `tsunagu demo`: a whole city on the embedded default, narrated.
//!
//! Everything is real and on loopback: the simulated JPKI issues card certificates; the
//! platform runs on SQLite; the governance committee signs votes; two providers (a school's
//! allergy records, the city's benefit records) and two consumers (a child-care app, the fire
//! brigade) each run a `tsunagu connector` in front of or beside their own systems; residents
//! hold device keys and sign their consents. The demo checks every step and exits non-zero if
//! anything behaves otherwise.

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tsunagu_client::committee::Member;
use tsunagu_client::verify::{history_item_included, monitor};
use tsunagu_client::{ApiClient, ClientError};
use tsunagu_connector::consumer::Consumer;
use tsunagu_connector::platform::{PlatformClient, TicketRequest};
use tsunagu_connector::sidecar::{self, ConsumerSection, ProviderSection, Role, SidecarConfig};
use tsunagu_connector::{ConnectorError, ServiceIdentity};
use tsunagu_crypto::jwe::EncryptionKey;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::{jws, random};
use tsunagu_jpki_sim::{IssueRequest, SimCa};

struct Narrator {
    step: u32,
}

impl Narrator {
    fn chapter(&self, title: &str) {
        println!("\n━━ {title} ━━");
    }

    fn step(&mut self, title: &str) {
        self.step += 1;
        println!("\n[{}] {title}", self.step);
    }

    fn say(&self, line: impl AsRef<str>) {
        println!("    {}", line.as_ref());
    }
}

fn now() -> i64 {
    tsunagu_connector::now()
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or("?")
}

fn expect_refusal(result: Result<Value, ClientError>, code: &str) -> anyhow::Result<String> {
    match result {
        Err(ClientError::Problem {
            code: got, detail, ..
        }) if got == code => Ok(detail),
        Err(e) => bail!("expected refusal `{code}`, got: {e}"),
        Ok(v) => bail!("expected refusal `{code}`, but it was accepted: {v}"),
    }
}

fn expect_ticket_refusal<T>(
    result: Result<T, ConnectorError>,
    code: &str,
) -> anyhow::Result<String> {
    match result {
        Err(e) if e.code() == Some(code) => Ok(e.to_string()),
        Err(e) => bail!("expected refusal `{code}`, got: {e}"),
        Ok(_) => bail!("expected refusal `{code}`, but it was accepted"),
    }
}

/// A committee member's vote, sent as `tsunagu admin vote` would.
async fn vote(
    member: &Member,
    client: &ApiClient,
    service: &str,
    decision: &str,
    comment: &str,
) -> anyhow::Result<Value> {
    let vote = member
        .sign_vote(service, decision, comment, &[])
        .map_err(anyhow::Error::msg)?;
    Ok(client
        .post(
            &format!("/v1/governance/services/{service}/votes"),
            &json!({"vote_jws": vote}),
            None,
        )
        .await?)
}

async fn decide(
    members: &[Member],
    client: &ApiClient,
    service: &str,
    decision: &str,
    comment: &str,
) -> anyhow::Result<String> {
    let mut status = String::new();
    for m in members {
        status = field(
            &vote(m, client, service, decision, comment).await?,
            "status",
        )
        .to_owned();
    }
    Ok(status)
}

/// A service of the demo city: its keys on disk, its id once registered.
struct Service {
    name: &'static str,
    id: String,
    key_file: PathBuf,
    jwks: Value,
}

fn make_keys(
    dir: &Path,
    label: &str,
    encryption: bool,
) -> anyhow::Result<(PathBuf, Option<PathBuf>, Value)> {
    let key_file = dir.join(format!("{label}.pem"));
    let enc_file = encryption.then(|| dir.join(format!("{label}-enc.pem")));
    let jwks = sidecar::keygen(&key_file, enc_file.as_deref())?;
    Ok((key_file, enc_file, jwks))
}

async fn apply(client: &ApiClient, application: Value) -> anyhow::Result<Value> {
    Ok(client.post("/v1/services", &application, None).await?)
}

/// The existing system of a provider: records keyed by the provider's own pairwise id.
async fn upstream(
    records: Arc<std::sync::Mutex<std::collections::HashMap<String, Value>>>,
) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/items",
        axum::routing::post(move |axum::Json(req): axum::Json<Value>| {
            let records = records.clone();
            async move {
                let subject = req["subject"].as_str().unwrap_or_default().to_owned();
                let data = records
                    .lock()
                    .map(|r| r.get(&subject).cloned())
                    .ok()
                    .flatten();
                axum::Json(json!({ "data": data.unwrap_or_else(|| json!({})) }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/items", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn signed_consent(
    device: &SigningKey,
    offer: &Value,
    items: &[&str],
    lasts: i64,
) -> anyhow::Result<String> {
    let payload = json!({
        "v": 1, "purpose_id": offer["purpose_id"], "consumer": offer["consumer"]["service_id"],
        "provider": offer["provider"]["service_id"], "items": items, "expires_at": now() + lasts,
        "terms_sha256": offer["terms_sha256"], "issued_at": now(), "nonce": random::token(12)?,
    });
    Ok(jws::sign_json(device, None, &payload)?)
}

fn signed_change(device: &SigningKey, consent_id: &str, action: &str) -> anyhow::Result<String> {
    let payload = json!({"consent_id": consent_id, "action": action, "issued_at": now(), "nonce": random::token(12)?});
    Ok(jws::sign_json(device, None, &payload)?)
}

pub async fn run(keep_running: bool) -> anyhow::Result<()> {
    let mut n = Narrator { step: 0 };
    let work = tempfile::Builder::new().prefix("tsunagu-demo-").tempdir()?;
    let root = if keep_running {
        work.keep()
    } else {
        work.path().to_owned()
    };
    println!(
        "tsunagu demo: a city on the embedded default (SQLite), everything on loopback, the platform over HTTPS"
    );
    println!("working directory: {}", root.display());

    // ───────────────────────────── the city's institutions
    n.chapter("第1部 つなぐ ID — the resident's digital ID");
    n.step("J-LIS (simulated) creates its certificate authority and issues My Number cards");
    let mut ca = SimCa::init(&root.join("jpki"))?;
    let hanako_card_request = IssueRequest {
        name: "前橋　花子".into(),
        address: "群馬県前橋市大手町二丁目12番1号".into(),
        birthdate: "1988-04-01".into(),
        sex: "2".into(),
        valid_days: None,
        not_before: None,
    };
    let mut card = ca.issue(&hanako_card_request, "hanako2024")?;
    n.say("card for 前橋 花子: RSA-2048 signing certificate; name, address, birth date and sex");
    n.say("in its subjectAltName (JPKI otherNames); no individual number on it");

    n.step("The platform starts, with a data governance committee of two (quorum 2)");
    let members = [
        Member {
            id: "chair".into(),
            key: SigningKey::generate(Alg::Es256)?,
        },
        Member {
            id: "member-2".into(),
            key: SigningKey::generate(Alg::Es256)?,
        },
    ];
    let server = tsunagu_server::Server::new().with(crate::SimulatedCard);
    let mut config = tsunagu_server::Config::default();
    config.server.bind = "127.0.0.1:0".into();
    // HTTPS with a certificate authority made for this run; every client is given its CA.
    let tls = crate::tls::make(&root.join("tls"), &[])?;
    config.server.tls_cert = Some(tls.cert.clone());
    config.server.tls_key = Some(tls.key.clone());
    config.server.sweep_interval_seconds = 1;
    config.storage.data_dir = root.join("data");
    config.identity.jpki_trust_anchors = vec![ca.certificate_path()];
    config.identity.jpki_crls = vec![ca.crl_path().to_string_lossy().into_owned()];
    config.identity.required_certificate_policy =
        Some(tsunagu_crypto::jpki::POLICY_SIGNING.to_owned());
    config.ledger.sth_interval_seconds = 1;
    if keep_running {
        // Left running for a person to explore: the web app's simulated card is on, and the
        // committee's keys are files the committee console can open.
        config.set(&crate::DevConfig {
            simulated_jpki: Some(root.join("jpki")),
        });
        let dir = root.join("committee");
        std::fs::create_dir_all(&dir)?;
        for m in &members {
            std::fs::write(
                dir.join(format!("{}.pem", m.id)),
                m.key.to_pkcs8_pem().as_bytes(),
            )?;
        }
    }
    config.governance.quorum = 2;
    config.governance.members = members
        .iter()
        .map(|m| tsunagu_server::config::MemberConfig {
            id: m.id.as_str().into(),
            name: None,
            jwk: m.key.public_jwk().clone(),
        })
        .collect();
    let running = server.spawn(config).await?;
    let url = running.url();
    let client = ApiClient::with_ca_file(&url, Some(&tls.ca))?;
    n.say(format!(
        "listening on {url}, storage {}",
        running.platform.backend()
    ));

    n.step("Hanako installs the app: her phone makes a key and enrolls; then she proofs it with her card");
    let phone = SigningKey::generate(Alg::Es256)?;
    let provisional = client.enroll(phone.public_jwk(), None).await?;
    n.say(format!(
        "without the card: {} ID (仮ID) — may log in, may not consent to data linkage",
        field(&provisional, "level")
    ));
    let proofed = client
        .enroll(phone.public_jwk(), Some((&mut card, "hanako2024")))
        .await?;
    n.say(format!(
        "with the card: {} — the card signed JCS({{device_jwk_thumbprint, nonce}}); chain, validity,",
        field(&proofed, "level")
    ));
    n.say("key usage, the JPKI policy, the CRL and the signature were checked");
    let credential = field(&proofed, "credential").to_owned();
    let token = ApiClient::token(&client.login(&credential, &phone).await?)?;
    let me = client.get("/v1/me", Some(&token)).await?;
    n.say(format!(
        "she logs in by signing a fresh nonce: {} ({}), born {}, {}",
        me["attributes"]["name"].as_str().unwrap_or("?"),
        me["attributes"]["sex"].as_str().unwrap_or("?"),
        me["attributes"]["birthdate"].as_str().unwrap_or("?"),
        me["attributes"]["address"].as_str().unwrap_or("?")
    ));
    n.say("the four items are stored encrypted (AES-256-GCM); no individual number anywhere");
    let auditor_state = root.join("auditor-sth.json");
    let first_head = monitor(&client, Some(&auditor_state)).await?;
    n.say(format!(
        "an auditor saves the signed tree head (size {}) to check the log later",
        first_head.sth.tree_size
    ));

    n.step("A stolen credential is useless without the device, and a lost device can be revoked");
    let tablet = SigningKey::generate(Alg::Es256)?;
    let tablet_enrolled = client
        .enroll(tablet.public_jwk(), Some((&mut card, "hanako2024")))
        .await?;
    let tablet_credential = field(&tablet_enrolled, "credential").to_owned();
    let thief = SigningKey::generate(Alg::Es256)?;
    for _ in 0..3 {
        expect_refusal(
            client.login(&tablet_credential, &thief).await,
            "signature_invalid",
        )?;
    }
    expect_refusal(client.login(&tablet_credential, &tablet).await, "locked")?;
    n.say("her tablet's credential with another key: signature_invalid ×3, then locked");
    let tablet_id = field(&tablet_enrolled, "device_id").to_owned();
    client
        .post(
            &format!("/v1/me/devices/{tablet_id}/revoke"),
            &json!({}),
            Some(&token),
        )
        .await?;
    expect_refusal(
        client.login(&tablet_credential, &tablet).await,
        "credential_revoked",
    )?;
    n.say("from her phone she revokes the tablet: credential_revoked from then on");

    // ───────────────────────────── services and governance
    n.chapter("第2部 データ連携 — consent-driven data linkage");
    n.step("Four services apply, each with its own keys; the policy lint reads every application");
    let keys_dir = root.join("services");
    std::fs::create_dir_all(&keys_dir)?;
    let school_port = free_port()?;
    let city_port = free_port()?;
    let security = json!({"iso27001": true, "incident_contact": "csirt@city.maebashi.example", "subcontractors": []});
    let (key, _, jwks) = make_keys(&keys_dir, "school", false)?;
    let school_answer = apply(&client, json!({
        "name": "前橋市立中央小学校", "organization": "前橋市教育委員会", "contact": "school@city.maebashi.example",
        "kind": "provider", "jwks": jwks, "endpoint": format!("http://127.0.0.1:{school_port}/tsunagu/redeem"),
        "offers": [
            {"item": "allergy", "title_ja": "食物アレルギー", "title_en": "Food allergy", "data_class": "closed", "sensitive": true},
            {"item": "class", "title_ja": "学級", "title_en": "Class", "data_class": "limited", "sensitive": false}
        ],
        "security": security,
    })).await?;
    let school = Service {
        name: "前橋市立中央小学校",
        id: field(&school_answer, "service_id").into(),
        key_file: key,
        jwks: Value::Null,
    };
    let (key, _, jwks) = make_keys(&keys_dir, "city", false)?;
    let city_answer = apply(&client, json!({
        "name": "前橋市 こども支援課", "organization": "前橋市", "contact": "kodomo@city.maebashi.example",
        "kind": "provider", "jwks": jwks, "endpoint": format!("http://127.0.0.1:{city_port}/tsunagu/redeem"),
        "offers": [{"item": "childcare_subsidy", "title_ja": "保育料の軽減区分", "title_en": "Childcare fee subsidy tier", "data_class": "closed", "sensitive": false}],
        "security": security,
    })).await?;
    let city = Service {
        name: "前橋市 こども支援課",
        id: field(&city_answer, "service_id").into(),
        key_file: key,
        jwks: Value::Null,
    };
    let (key, enc, jwks) = make_keys(&keys_dir, "daycare", true)?;
    let daycare_answer = apply(&client, json!({
        "name": "すくすく保育アプリ", "organization": "社会福祉法人すくすく会", "contact": "app@sukusuku.example",
        "kind": "consumer", "jwks": jwks.clone(),
        "purposes": [
            {"id": "allergy-to-daycare", "title_ja": "給食のアレルギー対応", "title_en": "Allergy-safe meals",
             "description_ja": "保育園の調理室が献立からアレルゲンを除くため、学校に登録された食物アレルギー情報と学級を受け取ります。",
             "description_en": "The day-care kitchen removes allergens from meals using the food allergy record and class kept by the school.",
             "provider": school.id, "items": ["allergy", "class"],
             "uses": {"allergy": "献立からアレルゲンを除くため", "class": "兄弟の学級と送迎時間を合わせるため"},
             "retention_days": 365, "legal_basis": "consent"},
            {"id": "fee-tier", "title_ja": "保育料の算定", "title_en": "Fee calculation",
             "description_ja": "保育料を正しく算定するため、市が決定した保育料の軽減区分を受け取ります。所得そのものは受け取りません。",
             "description_en": "The app computes the monthly fee from the subsidy tier the city decided, without receiving any income figures.",
             "provider": city.id, "items": ["childcare_subsidy"],
             "uses": {"childcare_subsidy": "月額保育料の算定"}, "retention_days": 365, "legal_basis": "consent"}
        ],
        "security": security,
    })).await?;
    let daycare = Service {
        name: "すくすく保育アプリ",
        id: field(&daycare_answer, "service_id").into(),
        key_file: key,
        jwks,
    };
    let (key, _, jwks) = make_keys(&keys_dir, "fire", false)?;
    let fire_answer = apply(&client, json!({
        "name": "前橋市消防局", "organization": "前橋市", "contact": "119@city.maebashi.example", "kind": "consumer",
        "jwks": jwks,
        "purposes": [{"id": "emergency-allergy", "title_ja": "救急搬送時のアレルギー確認", "title_en": "Allergy check in an emergency",
            "description_ja": "救急隊が傷病者の救命処置と搬送先での投薬判断のため、学校に登録された食物アレルギー情報を照会します。",
            "description_en": "Ambulance crews check a patient's registered food allergies to choose life-saving treatment and tell the hospital.",
            "provider": school.id, "items": ["allergy"], "uses": {"allergy": "アナフィラキシーの判断と投薬の選択"},
            "retention_days": 30, "legal_basis": "vital_interest",
            "citation": "個人の生命・身体の保護のための提供（個人情報保護法の例外規定）に基づく市の救急連携規程 — demo"}],
        "security": security,
    })).await?;
    let fire = Service {
        name: "前橋市消防局",
        id: field(&fire_answer, "service_id").into(),
        key_file: key,
        jwks: Value::Null,
    };
    for (service, answer) in [
        (&school, &school_answer),
        (&city, &city_answer),
        (&daycare, &daycare_answer),
        (&fire, &fire_answer),
    ] {
        let mut findings: Vec<String> = answer["lint"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| format!("{} ({})", field(f, "code"), field(f, "severity")))
            .collect();
        findings.dedup();
        n.say(format!(
            "{}: {}",
            service.name,
            if findings.is_empty() {
                "no findings".into()
            } else {
                findings.join(", ")
            }
        ));
    }
    let (_, _, jwks) = make_keys(&keys_dir, "shop", false)?;
    let shop = apply(&client, json!({
        "name": "まえばしショッピング", "organization": "株式会社まえばし商事", "contact": "info@shop.example", "kind": "consumer",
        "jwks": jwks,
        "purposes": [{"id": "marketing", "title_ja": "サービス向上", "title_en": "Service improvement",
            "description_ja": "サービス向上のための各種検討に活用します。", "description_en": "To improve our services.",
            "provider": school.id, "items": ["allergy", "class"], "uses": {}, "retention_days": 3650,
            "legal_basis": "consent", "consent_mode": "opt_out"}],
        "security": {"iso27001": false, "incident_contact": "", "subcontractors": ["広告代理店A"]},
    })).await?;
    let shop_codes: Vec<&str> = shop["lint"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["severity"] == "error")
        .map(|f| field(f, "code"))
        .collect();
    n.say(format!("まえばしショッピング (a shop asking for allergy data \"to improve services\", opt-out): errors {}", shop_codes.join(", ")));
    ensure!(
        shop_codes.contains(&"vague_purpose") && shop_codes.contains(&"opt_out_design"),
        "the lint missed the shop's problems"
    );

    n.step("The committee votes: each vote is a signed JWS and a ledger leaf");
    for service in [&school, &city, &daycare, &fire] {
        let status = decide(
            &members,
            &client,
            &service.id,
            "approve",
            "目的・項目・保存期間を確認",
        )
        .await?;
        ensure!(status == "approved", "{} was not approved", service.name);
        n.say(format!("{}: approved by 2 of 2 votes", service.name));
    }
    let rejected = decide(
        &members,
        &client,
        field(&shop, "service_id"),
        "reject",
        "目的が不特定、オプトアウト設計",
    )
    .await?;
    ensure!(rejected == "rejected");
    n.say("まえばしショッピング: rejected (vague purpose, opt-out design, no incident contact)");

    n.step("Each service starts its tsunagu connector: providers in front of their own systems");
    let school_records = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let city_records = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let mut sidecars = Vec::new();
    for (service, port, records) in [
        (&school, school_port, &school_records),
        (&city, city_port, &city_records),
    ] {
        let upstream_url = upstream(records.clone()).await?;
        let config = SidecarConfig {
            role: Role::Provider,
            service_id: service.id.clone(),
            platform_url: url.clone(),
            ca_file: Some(tls.ca.clone()),
            key_file: service.key_file.clone(),
            bind: format!("127.0.0.1:{port}"),
            tls_client_cert: None,
            tls_client_key: None,
            provider: Some(ProviderSection {
                endpoint: format!("http://127.0.0.1:{port}/tsunagu/redeem"),
                upstream: upstream_url.clone(),
                encrypt: true,
                tls_cert: None,
                tls_key: None,
                client_ca: None,
            }),
            consumer: None,
        };
        sidecars.push(sidecar::start(&config).await?);
        n.say(format!(
            "{}: connector on 127.0.0.1:{port}, upstream {upstream_url}",
            service.name
        ));
    }
    let daycare_config = SidecarConfig {
        role: Role::Consumer,
        service_id: daycare.id.clone(),
        platform_url: url.clone(),
        ca_file: Some(tls.ca.clone()),
        key_file: daycare.key_file.clone(),
        bind: "127.0.0.1:0".into(),
        tls_client_cert: None,
        tls_client_key: None,
        provider: None,
        consumer: Some(ConsumerSection {
            encryption_key_file: enc.clone(),
        }),
    };
    let daycare_sidecar = sidecar::start(&daycare_config).await?;
    n.say(format!(
        "すくすく保育アプリ: consumer connector on {} (receives payloads encrypted to its key)",
        daycare_sidecar.addr
    ));
    sidecars.push(daycare_sidecar);
    let daycare_encryption = match &enc {
        Some(path) => Some(EncryptionKey::from_pkcs8(
            &tsunagu_crypto::keys::pkcs8_from_pem(&std::fs::read_to_string(path)?)?,
        )?),
        None => None,
    };
    let daycare_app = Consumer::new(
        Arc::new(PlatformClient::with_ca_file(
            &url,
            ServiceIdentity::load(&daycare.id, &daycare.key_file)?,
            Some(&tls.ca),
        )?),
        daycare_encryption,
    );
    let fire_app = Consumer::new(
        Arc::new(PlatformClient::with_ca_file(
            &url,
            ServiceIdentity::load(&fire.id, &fire.key_file)?,
            Some(&tls.ca),
        )?),
        None,
    );
    ensure!(
        daycare.jwks["keys"]
            .as_array()
            .is_some_and(|k| k.len() == 2),
        "the day care registered a signing and an encryption key"
    );

    // The providers' own records about Hanako, under their own pairwise ids for her.
    let school_subject = client
        .get(&format!("/v1/me/pairwise/{}", school.id), Some(&token))
        .await?["subject"]
        .as_str()
        .context("subject")?
        .to_owned();
    school_records
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .insert(
            school_subject,
            json!({"allergy": "卵・えび（アナフィラキシー歴あり）", "class": "2年1組"}),
        );
    let city_subject = client
        .get(&format!("/v1/me/pairwise/{}", city.id), Some(&token))
        .await?["subject"]
        .as_str()
        .context("subject")?
        .to_owned();
    city_records
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .insert(
            city_subject,
            json!({"childcare_subsidy": "第3階層（軽減あり）"}),
        );

    n.step("Hanako opens 情報提供の管理: what may flow, from whom, to whom, for what");
    let offers = client.get("/v1/me/offers", Some(&token)).await?;
    for offer in offers["offers"].as_array().into_iter().flatten() {
        let items: Vec<&str> = offer["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| field(i, "title_ja"))
            .collect();
        n.say(format!(
            "{} → {}: {} [{}] — {}{}",
            offer["provider"]["name"].as_str().unwrap_or("?"),
            offer["consumer"]["name"].as_str().unwrap_or("?"),
            field(offer, "title_ja"),
            items.join("、"),
            field(offer, "legal_basis"),
            if offer["read_only"] == true {
                " (read-only: a standing legal-basis rule)"
            } else {
                ""
            },
        ));
    }
    let allergy_offer = offers["offers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["purpose_id"] == "allergy-to-daycare")
        .cloned()
        .context("offer")?;

    n.step(
        "She consents to the allergy record only (not the class), for a year, signed on her phone",
    );
    let consent = client
        .post("/v1/me/consents", &json!({"consent_jws": signed_consent(&phone, &allergy_offer, &["allergy"], 365 * 86_400)?}), Some(&token))
        .await?;
    let consent_id = field(&consent, "consent_id").to_owned();
    n.say(format!(
        "consent {consent_id}: {}; receipt (ISO/IEC TS 27560 shape) with {} event",
        field(&consent, "status"),
        consent["receipt"]["events"]
            .as_array()
            .map(|e| e.len())
            .unwrap_or(0)
    ));
    let feed = daycare_app.platform().consent_feed(0).await?;
    let daycare_subject = feed["events"][0]["subject"]
        .as_str()
        .context("feed subject")?
        .to_owned();
    n.say(format!(
        "the app learns it from its consent feed, under its own pairwise id for her ({}…)",
        &daycare_subject[..10]
    ));

    n.step("Data flows directly from the school to the app: ticket, proof of possession, signed payload");
    let fetched = daycare_app
        .fetch(&TicketRequest {
            subject: daycare_subject.clone(),
            purpose_id: "allergy-to-daycare".into(),
            items: vec!["allergy".into()],
            requester: None,
            reason: None,
        })
        .await?;
    n.say(format!(
        "the app received {}, signed by the school (payload SHA-256 {}…)",
        serde_json::to_string(&fetched.data)?,
        &fetched.payload_sha256[..16]
    ));
    n.say(
        "the ticket named the school's pairwise id for her, the payload carries neither side's id,",
    );
    n.say("and the payload travelled encrypted to the app's key; the platform saw only its hash");
    let fee_offer = offers["offers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["purpose_id"] == "fee-tier")
        .cloned()
        .context("offer")?;
    client
        .post("/v1/me/consents", &json!({"consent_jws": signed_consent(&phone, &fee_offer, &["childcare_subsidy"], 365 * 86_400)?}), Some(&token))
        .await?;
    let fee = daycare_app
        .fetch(&TicketRequest {
            subject: daycare_subject.clone(),
            purpose_id: "fee-tier".into(),
            items: vec!["childcare_subsidy".into()],
            requester: None,
            reason: None,
        })
        .await?;
    n.say(format!(
        "she also lets the city tell the app her fee tier: {} (from the city's own system)",
        serde_json::to_string(&fee.data)?
    ));
    let wider = daycare_app
        .fetch(&TicketRequest {
            subject: daycare_subject.clone(),
            purpose_id: "allergy-to-daycare".into(),
            items: vec!["allergy".into(), "class".into()],
            requester: None,
            reason: None,
        })
        .await;
    n.say(format!(
        "asking for the class too: refused, {}",
        expect_ticket_refusal(wider, "items_not_covered")?
    ));

    n.step("Hanako revokes her consent: the very next request is refused");
    client
        .post(
            &format!("/v1/me/consents/{consent_id}/revoke"),
            &json!({"change_jws": signed_change(&phone, &consent_id, "revoke")?}),
            Some(&token),
        )
        .await?;
    let after = daycare_app
        .fetch(&TicketRequest {
            subject: daycare_subject.clone(),
            purpose_id: "allergy-to-daycare".into(),
            items: vec!["allergy".into()],
            requester: None,
            reason: None,
        })
        .await;
    n.say(format!(
        "the app asks again: {}",
        expect_ticket_refusal(after, "consent_revoked")?
    ));

    n.step("An emergency: the fire brigade checks her allergies under the standing rule");
    let fire_subject = client
        .get(&format!("/v1/me/pairwise/{}", fire.id), Some(&token))
        .await?["subject"]
        .as_str()
        .context("subject")?
        .to_owned();
    n.say("at the scene her phone shows her ID for the fire brigade as a QR code (a pairwise id)");
    let without_reason = fire_app
        .fetch(&TicketRequest {
            subject: fire_subject.clone(),
            purpose_id: "emergency-allergy".into(),
            items: vec!["allergy".into()],
            requester: None,
            reason: None,
        })
        .await;
    n.say(format!(
        "without saying who and why: {}",
        expect_ticket_refusal(without_reason, "requester_required")?
    ));
    let emergency = fire_app
        .fetch(&TicketRequest {
            subject: fire_subject,
            purpose_id: "emergency-allergy".into(),
            items: vec!["allergy".into()],
            requester: Some("前橋市消防局 中央消防署 救急隊長".into()),
            reason: Some("意識レベル低下、アナフィラキシーの疑い（救急搬送中）".into()),
        })
        .await?;
    n.say(format!(
        "with requester and reason: {} on basis {}",
        serde_json::to_string(&emergency.data)?,
        emergency.basis
    ));
    n.say("the use is a ledger leaf and raises an alert for the committee");

    n.step("A resident with a provisional ID is refused data linkage");
    let jiro_phone = SigningKey::generate(Alg::Es256)?;
    let jiro = client.enroll(jiro_phone.public_jwk(), None).await?;
    let jiro_token = ApiClient::token(
        &client
            .login(field(&jiro, "credential"), &jiro_phone)
            .await?,
    )?;
    let jiro_consent = client
        .post("/v1/me/consents", &json!({"consent_jws": signed_consent(&jiro_phone, &allergy_offer, &["allergy"], 86_400)?}), Some(&jiro_token))
        .await;
    n.say(format!(
        "前橋 次郎 (仮ID) tries to consent: {}",
        expect_refusal(jiro_consent, "provisional_id")?
    ));
    let jiro_subject = client
        .get(
            &format!("/v1/me/pairwise/{}", daycare.id),
            Some(&jiro_token),
        )
        .await?["subject"]
        .as_str()
        .context("subject")?
        .to_owned();
    let jiro_ticket = daycare_app
        .fetch(&TicketRequest {
            subject: jiro_subject,
            purpose_id: "allergy-to-daycare".into(),
            items: vec!["allergy".into()],
            requester: None,
            reason: None,
        })
        .await;
    n.say(format!(
        "the app asks about him anyway: {}",
        expect_ticket_refusal(jiro_ticket, "provisional_id")?
    ));

    n.step("The committee suspends the app: refused from the next request, and residents see why");
    client
        .post("/v1/me/consents", &json!({"consent_jws": signed_consent(&phone, &allergy_offer, &["allergy"], 30 * 86_400)?}), Some(&token))
        .await?;
    let again = daycare_app
        .fetch(&TicketRequest {
            subject: daycare_subject.clone(),
            purpose_id: "allergy-to-daycare".into(),
            items: vec!["allergy".into()],
            requester: None,
            reason: None,
        })
        .await?;
    n.say(format!(
        "Hanako consents again for 30 days; the app receives {}",
        serde_json::to_string(&again.data)?
    ));
    ensure!(
        decide(
            &members,
            &client,
            &daycare.id,
            "suspend",
            "委託先での不適切な取扱いの報告"
        )
        .await?
            == "suspended"
    );
    let suspended = daycare_app
        .fetch(&TicketRequest {
            subject: daycare_subject.clone(),
            purpose_id: "allergy-to-daycare".into(),
            items: vec!["allergy".into()],
            requester: None,
            reason: None,
        })
        .await;
    n.say(format!(
        "2 of 2 votes to suspend; the app asks: {}",
        expect_ticket_refusal(suspended, "service_suspended")?
    ));
    let offers = client.get("/v1/me/offers", Some(&token)).await?;
    let shown = offers["offers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["purpose_id"] == "allergy-to-daycare")
        .context("offer")?;
    n.say(format!(
        "Hanako's screen says: {}",
        field(shown, "status_reason")
    ));

    // ───────────────────────────── staff and residents' rights
    n.chapter("第3部 職員と住民の権利 — insiders under least privilege, rights online");
    n.step("The city's security officer is created on the server's own machine (tsunagu admin staff create)");
    let staff = tsunagu_staff::Staff::new(
        running.platform.clone(),
        tsunagu_staff::AdminConfig::default(),
        tsunagu_rights::Rights::new(
            running.platform.clone(),
            tsunagu_rights::DsrConfig::default(),
        ),
    );
    let officer = staff
        .bootstrap("officer-1", tsunagu_staff::Role::SecurityOfficer, None, 90)
        .await
        .map_err(|r| anyhow::anyhow!("{}: {}", r.code, r.detail))?;
    let totp = |secret: &str, steps: i64| -> anyhow::Result<String> {
        let bytes = tsunagu_staff::auth::from_base32(secret).context("TOTP secret")?;
        tsunagu_staff::auth::code_at(&bytes, now() + steps * 30).context("TOTP code")
    };
    let login = client
        .post(
            "/v1/admin/login",
            &json!({"id": "officer-1", "password": officer.password, "totp": totp(&officer.totp_secret, 0)?}),
            None,
        )
        .await?;
    let officer_token = field(&login, "token").to_owned();
    n.say("she logs in from the city hall's network with her password and the 6-digit code of her authenticator app (TOTP)");
    let replay = client
        .post(
            "/v1/admin/login",
            &json!({"id": "officer-1", "password": officer.password, "totp": totp(&officer.totp_secret, 0)?}),
            None,
        )
        .await;
    n.say(format!(
        "the same code again: {}",
        expect_refusal(replay, "totp_replayed")?
    ));
    let operator = client
        .post(
            "/v1/admin/staff",
            &json!({"id": "madoguchi-1", "display_name": "市民課 窓口"}),
            Some(&officer_token),
        )
        .await?;
    // The officer who created the account saw its credentials: a second officer grants it.
    let second = staff
        .bootstrap("officer-2", tsunagu_staff::Role::SecurityOfficer, None, 90)
        .await
        .map_err(|r| anyhow::anyhow!("{}: {}", r.code, r.detail))?;
    let second_login = client
        .post(
            "/v1/admin/login",
            &json!({"id": "officer-2", "password": second.password, "totp": totp(&second.totp_secret, 0)?}),
            None,
        )
        .await?;
    let second_token = field(&second_login, "token").to_owned();
    let own = client
        .post(
            "/v1/admin/grants",
            &json!({"staff_id": "madoguchi-1", "role": "operator", "scope": "view",
                    "expires_at": now() + 30 * 86_400, "reason": "市民課窓口への配属(4月期)"}),
            Some(&officer_token),
        )
        .await;
    n.say(format!(
        "she may not grant the account she created (she saw its password): {}",
        expect_refusal(own, "forbidden")?
    ));
    let grant = client
        .post(
            "/v1/admin/grants",
            &json!({"staff_id": "madoguchi-1", "role": "operator", "scope": "view",
                    "expires_at": now() + 30 * 86_400, "reason": "市民課窓口への配属(4月期)"}),
            Some(&second_token),
        )
        .await?;
    n.say(format!(
        "a second officer grants the counter clerk `operator (view)` for 30 days: {}",
        field(&grant, "grant_id")
    ));

    n.step("A counter clerk looks at Hanako's record: only with a reason, and she will read it");
    let clerk = client
        .post(
            "/v1/admin/login",
            &json!({"id": "madoguchi-1", "password": field(&operator, "password"),
                    "totp": totp(field(&operator, "totp_secret"), 0)?}),
            None,
        )
        .await?;
    let clerk_token = field(&clerk, "token").to_owned();
    let me = client.get("/v1/me", Some(&token)).await?;
    let hanako_id = field(&me, "account_id").to_owned();
    let no_reason = client
        .get(
            &format!("/v1/admin/residents/{hanako_id}"),
            Some(&clerk_token),
        )
        .await;
    n.say(format!(
        "without a reason: {}",
        expect_refusal(no_reason, "reason_required")?
    ));
    let reason = "転入届の受付で本人確認のため";
    let record = client
        .get(
            &format!(
                "/v1/admin/residents/{hanako_id}?reason={}",
                reason
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect::<String>()
            ),
            Some(&clerk_token),
        )
        .await?;
    ensure!(
        record["basic_items"]["name"] == "前橋　花子",
        "the clerk sees the record"
    );
    n.say(format!(
        "with the reason 「{reason}」: he sees {} — and a staff.viewed leaf is in Hanako's history first",
        record["items_shown"]
    ));

    n.step("Hanako asks for everything the platform holds about her (開示請求), online");
    let request = client
        .post(
            "/v1/me/requests",
            &json!({"type": "disclosure"}),
            Some(&token),
        )
        .await?;
    let request_id = field(&request, "request_id").to_owned();
    n.say(format!(
        "request {request_id}: {} at once; deadline {}",
        field(&request, "status"),
        tsunagu_platform::iso8601(request["deadline"].as_i64().unwrap_or(0))
    ));
    let export = client
        .get(
            &format!("/v1/me/requests/{request_id}/export"),
            Some(&token),
        )
        .await?;
    let count = |k: &str| export[k].as_array().map(Vec::len).unwrap_or(0);
    let views = export["staff_views"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        views.iter().any(|v| v["reason"] == reason),
        "the staff look with its reason is in the export"
    );
    n.say(format!(
        "the export: her four items, {} device(s), {} consent(s) as she signed them, {} provision record(s) (issued and refused), {} look(s) by staff with their reasons, {} history entries each with an inclusion proof",
        count("devices"),
        count("consents"),
        count("provisions"),
        views.len(),
        count("history")
    ));
    n.say(format!(
        "also as a page: {url}/v1/me/requests/{request_id}/export?format=html"
    ));

    // ───────────────────────────── transparency
    n.chapter("第4部 透明性 — the ledger");
    n.step("Hanako reads her history, each entry proven included in the signed tree head");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let history = client.get("/v1/me/history?limit=200", Some(&token)).await?;
    let sth: tsunagu_ledger::SignedTreeHead = serde_json::from_value(history["sth"].clone())?;
    sth.verify(&client.ledger_key(&sth.key_id).await?)?;
    let items = history["items"].as_array().cloned().unwrap_or_default();
    for item in items.iter().rev() {
        history_item_included(&client, item, &sth).await?;
        let d = &item["details"];
        let who = d["consumer"]["name"]
            .as_str()
            .or(d["service"]["name"].as_str())
            .unwrap_or("");
        let ev = &item["event"];
        let what = match (
            d["purpose"]["title_ja"].as_str(),
            ev["request_type"].as_str(),
        ) {
            (Some(title), _) => title.to_owned(),
            (None, Some(kind)) => format!("{kind} {}", ev["status"].as_str().unwrap_or("")),
            (None, None) => ev["items"]
                .as_array()
                .map(|items| {
                    let names: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                    format!("{} {}", ev["role"].as_str().unwrap_or(""), names.join(", "))
                })
                .unwrap_or_default(),
        };
        let extra = match (
            item["reason"].as_str(),
            d["basis"].as_str(),
            d["requester"].as_str(),
        ) {
            (Some(reason), _, _) if item["outcome"] == "refused" => format!("refused: {reason}"),
            (Some(reason), _, _) => format!("reason: {reason}"),
            (None, Some(basis), Some(requester)) => format!("{basis}, by {requester}"),
            (None, Some(basis), None) => basis.to_owned(),
            _ => String::new(),
        };
        n.say(format!(
            "#{:<3} ✓ {:<27} {who} {what} {extra}",
            item["leaf_index"],
            item["type"].as_str().unwrap_or("?")
        ));
    }
    let rule_use = items
        .iter()
        .find(|i| i["details"]["requester"].is_string())
        .context("the emergency use is in the history")?;
    ensure!(
        rule_use["details"]["request_matches_ledger"] == true,
        "the requester and reason match what the leaf committed to"
    );

    n.step("What the platform never held");
    let database: Vec<u8> = ["tsunagu.db", "tsunagu.db-wal"]
        .iter()
        .flat_map(|f| std::fs::read(root.join("data").join(f)).unwrap_or_default())
        .collect();
    for value in ["卵・えび", "2年1組", "第3階層"] {
        ensure!(
            !database.windows(value.len()).any(|w| w == value.as_bytes()),
            "the platform's database contains `{value}`"
        );
    }
    n.say(format!("the platform's database ({} KB) contains none of the exchanged values: only hashes and receipts", database.len() / 1024));

    n.step("The auditor checks the log again");
    let report = monitor(&client, Some(&auditor_state)).await?;
    n.say(format!(
        "signed tree head: size {}, root {}",
        report.sth.tree_size, report.sth.root_hash
    ));
    n.say(format!(
        "signature ✓ (Ed25519 key {}); consistent with the head of size {} saved earlier ✓",
        report.sth.key_id,
        report.previous.unwrap_or(0)
    ));

    if keep_running {
        println!("\nThe city keeps running at {url}");
        println!("  residents:  {url}/   (enroll this browser with the simulated My Number card)");
        println!("  services:   {url}/console   (log in with a key from services/)");
        println!(
            "  committee:  {url}/committee   (log in with committee/chair.pem or committee/member-2.pem)"
        );
        println!("  OpenID:     {url}/.well-known/openid-configuration");
        println!("  API:        {url}/v1/ledger/sth   {url}/v1/services   {url}/openapi.json");
        println!(
            "  files in {} (CA in jpki/, database in data/, service keys in services/)",
            root.display()
        );
        println!(
            "  TLS: a CA made for this run, {}; trust it in the browser, or curl --cacert it",
            tls.ca.display()
        );
        println!("Press Ctrl-C to stop.");
        tokio::signal::ctrl_c().await?;
    } else {
        println!("\ndemo finished: every step behaved as expected");
    }
    for s in &sidecars {
        s.abort();
    }
    running.abort();
    Ok(())
}
