//! `tsunagu dev seed` and `tsunagu dev load`: the ticket-throughput benchmark.
//!
//! `seed` fills a stopped platform's storage (the configuration's data directory or database)
//! with approved services and verified residents who consented (real signed consents, ledger
//! leaves, pairwise subjects), and writes what the load generator needs. `load` then drives
//! `POST /v1/exchange/tickets` against a running `tsunagu serve` with client assertions signed
//! beforehand (so the generator spends its CPU on HTTP, not on ECDSA), and reports throughput
//! and latency percentiles. `scripts/bench-tickets.sh` runs both for SQLite and PostgreSQL.

use anyhow::Context;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tsunagu_connector::ServiceIdentity;
use tsunagu_core::consent::ConsentStatus;
use tsunagu_core::event::Event;
use tsunagu_core::identity::{AccountStatus, DeviceStatus, Level};
use tsunagu_core::service::{
    Application, ConsentMode, DataClass, LegalBasis, Offer, Purpose, Security, ServiceKind,
    ServiceStatus, Terms,
};
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::{jws, random};
use tsunagu_store::{
    AccountRow, Commit, ConsentChange, ConsentEventRow, ConsentRow, DeviceRow, ExchangeChange,
    IdentityChange, PurposeRow, ServiceChange, ServiceRow,
};

const PURPOSE: &str = "allergy-to-daycare";

fn application(
    name: &str,
    kind: ServiceKind,
    key: &SigningKey,
    provider: Option<&str>,
) -> Application {
    Application {
        name: name.into(),
        organization: "benchmark".into(),
        contact: "bench@example.jp".into(),
        kind,
        jwks: json!({"keys": [key.published_jwk().to_value()]}),
        endpoint: provider.is_none().then(|| "http://127.0.0.1:9/tsunagu/redeem".to_owned()),
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        token_endpoint_auth_method: None,
        offers: if provider.is_none() {
            vec![Offer { item: "allergy".into(), title_ja: "食物アレルギー".into(), title_en: None, data_class: DataClass::Closed, sensitive: true }]
        } else {
            vec![]
        },
        purposes: match provider {
            Some(provider) => vec![Purpose {
                id: PURPOSE.into(),
                title_ja: "給食のアレルギー対応".into(),
                title_en: "Allergy-safe meals".into(),
                description_ja: "保育園の調理室が献立からアレルゲンを除くため、食物アレルギー情報を受け取ります。".into(),
                description_en: "The day-care kitchen removes allergens from meals using the food allergy record.".into(),
                provider: provider.into(),
                items: vec!["allergy".into()],
                uses: [("allergy".to_owned(), "献立からアレルゲンを除くため".to_owned())].into(),
                retention_days: 365,
                legal_basis: LegalBasis::Consent,
                citation: None,
                consent_mode: ConsentMode::OptIn,
            }],
            None => vec![],
        },
        security: Security { iso27001: true, incident_contact: "soc@example.jp".into(), subcontractors: vec![] },
    }
}

fn service_row(id: &str, app: &Application, t: i64) -> anyhow::Result<ServiceRow> {
    Ok(ServiceRow {
        id: id.into(),
        name: app.name.clone(),
        organization: app.organization.clone(),
        contact: app.contact.clone(),
        kind: app.kind,
        status: ServiceStatus::Approved,
        application: serde_json::to_string(app)?,
        jwks: app.jwks.to_string(),
        endpoint: app.endpoint.clone(),
        lint: "[]".into(),
        round: 1,
        created_at: t,
        updated_at: t,
        client_secret_hash: None,
    })
}

/// Fills storage: two approved services and `residents` verified residents with an active
/// consent each, in batches through the same group commit the server uses.
pub async fn seed(config_path: &Path, residents: u64, out: &Path) -> anyhow::Result<()> {
    let config = tsunagu_server::Config::load(Some(config_path))?;
    let app = tsunagu_server::App::start(config).await?;
    std::fs::create_dir_all(out)?;
    let t = tsunagu_connector::now();
    let provider_key = SigningKey::generate(Alg::Es256)?;
    let consumer_key = SigningKey::generate(Alg::Es256)?;
    let provider_id = format!("svc_bench_school_{}", random::token(4)?);
    let consumer_id = format!("svc_bench_daycare_{}", random::token(4)?);
    let provider_app = application("bench school", ServiceKind::Provider, &provider_key, None);
    let consumer_app = application(
        "bench day care",
        ServiceKind::Consumer,
        &consumer_key,
        Some(&provider_id),
    );
    let purpose = consumer_app.purposes[0].clone();
    let terms = tsunagu_server::services::terms_sha256(&Terms {
        consumer: consumer_id.clone(),
        consumer_name: consumer_app.name.clone(),
        provider: provider_id.clone(),
        provider_name: provider_app.name.clone(),
        purpose: purpose.clone(),
    });
    app.committer
        .commit(Commit {
            changes: tsunagu_store::changes![
                ServiceChange::InsertService(service_row(&provider_id, &provider_app, t)?),
                ServiceChange::InsertService(service_row(&consumer_id, &consumer_app, t)?),
                ServiceChange::InsertPurpose(PurposeRow {
                    consumer_id: consumer_id.clone(),
                    purpose_id: PURPOSE.into(),
                    provider_id: provider_id.clone(),
                    legal_basis: LegalBasis::Consent,
                    items: purpose.items.clone(),
                    definition: serde_json::to_string(&purpose)?,
                    terms_sha256: terms.clone(),
                }),
            ],
            leaves: vec![],
        })
        .await?;
    std::fs::write(
        out.join("consumer.pem"),
        consumer_key.to_pkcs8_pem().as_bytes(),
    )?;

    let started = Instant::now();
    let mut subjects = String::new();
    let batch = 500u64;
    let mut done = 0u64;
    while done < residents {
        let n = batch.min(residents - done);
        let mut jobs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let account = random::token(16)?;
            let device = SigningKey::generate(Alg::Es256)?;
            let device_id = random::token(16)?;
            let consent_id = random::token(16)?;
            let expires_at = t + 365 * 86_400;
            let payload = json!({"v": 1, "purpose_id": PURPOSE, "consumer": consumer_id, "provider": provider_id,
                "items": ["allergy"], "expires_at": expires_at, "terms_sha256": terms, "issued_at": t, "nonce": random::token(12)?});
            let consent_jws = jws::sign_json(&device, None, &payload)?;
            let consumer_subject = app.keys.pairwise.subject(&consumer_id, &account);
            subjects.push_str(&consumer_subject);
            subjects.push('\n');
            let consent = ConsentRow {
                id: consent_id.clone(),
                account_id: account.clone(),
                consumer_id: consumer_id.clone(),
                provider_id: provider_id.clone(),
                purpose_id: PURPOSE.into(),
                generation: 1,
                items: vec!["allergy".into()],
                expires_at,
                terms_sha256: terms.clone(),
                status: ConsentStatus::Active,
                jws: consent_jws.clone(),
                device_id: device_id.clone(),
                version: 0,
                created_at: t,
                updated_at: t,
            };
            let changes = tsunagu_store::changes![
                IdentityChange::InsertAccount(AccountRow {
                    id: account.clone(),
                    level: Level::Verified,
                    status: AccountStatus::Active,
                    attributes: None,
                    card: None,
                    version: 0,
                    created_at: t,
                    updated_at: t,
                }),
                IdentityChange::InsertDevice(DeviceRow {
                    id: device_id.clone(),
                    account_id: account.clone(),
                    jkt: device.kid().to_owned(),
                    jwk: device.public_jwk().to_value().to_string(),
                    status: DeviceStatus::Active,
                    failed_logins: 0,
                    locked_until: None,
                    expires_at,
                    created_at: t,
                    revoked_at: None,
                }),
                ConsentChange::InsertConsentEvent(ConsentEventRow {
                    seq: 0,
                    consent_id: consent_id.clone(),
                    account_id: account.clone(),
                    consumer_id: consumer_id.clone(),
                    provider_id: provider_id.clone(),
                    purpose_id: PURPOSE.into(),
                    status: "granted".into(),
                    items: vec!["allergy".into()],
                    expires_at,
                    created_at: t,
                }),
                ConsentChange::InsertConsent(consent),
                ExchangeChange::LinkSubject {
                    sector: consumer_id.clone(),
                    subject: consumer_subject,
                    account_id: account.clone(),
                    created_at: t,
                },
            ];
            let leaf = tsunagu_server::ledger::leaf(
                Event::ConsentGranted {
                    subject: tsunagu_server::identity::ledger_subject(&app, &account),
                    consent: consent_id,
                    consumer: consumer_id.clone(),
                    provider: provider_id.clone(),
                    purpose: PURPOSE.into(),
                    items: vec!["allergy".into()],
                    expires_at,
                    consent_sha256: hex_sha256(consent_jws.as_bytes()),
                },
                &[&account],
                t,
            );
            let committer = app.committer.clone();
            jobs.push(tokio::spawn(async move {
                committer
                    .commit(Commit {
                        changes,
                        leaves: vec![leaf],
                    })
                    .await
            }));
        }
        for job in jobs {
            job.await??;
        }
        done += n;
        if done.is_multiple_of(10_000) || done == residents {
            eprintln!(
                "seeded {done} residents ({:.0}/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    std::fs::write(out.join("subjects.txt"), subjects)?;
    std::fs::write(
        out.join("seed.json"),
        serde_json::to_vec_pretty(
            &json!({"consumer": consumer_id, "provider": provider_id, "purpose": PURPOSE, "items": ["allergy"], "residents": residents}),
        )?,
    )?;
    println!(
        "seeded {residents} residents with consents; consumer {consumer_id}; files in {}",
        out.display()
    );
    Ok(())
}

fn hex_sha256(data: &[u8]) -> String {
    tsunagu_crypto::sha256(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Drives ticket requests for `duration` seconds over `connections` connections.
pub async fn load(
    url: &str,
    seed: &Path,
    duration: u64,
    connections: usize,
    presign: usize,
) -> anyhow::Result<()> {
    let meta: Value =
        serde_json::from_slice(&std::fs::read(seed.join("seed.json")).context("seed.json")?)?;
    let consumer = meta["consumer"].as_str().context("consumer")?.to_owned();
    let subjects: Vec<String> = std::fs::read_to_string(seed.join("subjects.txt"))?
        .lines()
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!subjects.is_empty(), "no subjects in the seed");
    let identity = ServiceIdentity::load(&consumer, &seed.join("consumer.pem"))?;

    eprintln!("signing {presign} client assertions ahead of the run…");
    let assertions: Vec<String> = (0..presign)
        .map(|_| identity.assertion(url))
        .collect::<Result<_, _>>()?;
    let bodies: Vec<Vec<u8>> = subjects
        .iter()
        .map(|s| {
            serde_json::to_vec(
                &json!({"subject": s, "purpose_id": meta["purpose"], "items": meta["items"]}),
            )
        })
        .collect::<Result<_, _>>()?;
    let assertions = Arc::new(assertions);
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let endpoint = format!("{}/v1/exchange/tickets", url.trim_end_matches('/'));
    eprintln!("running {duration} s over {connections} connections against {endpoint}…");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(duration);
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let (client, endpoint, assertions, bodies, next) = (
            client.clone(),
            endpoint.clone(),
            assertions.clone(),
            bodies.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(100_000);
            let mut statuses: std::collections::BTreeMap<String, u64> = Default::default();
            let mut i = worker;
            while Instant::now() < deadline {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(assertion) = assertions.get(k) else {
                    break;
                };
                let body = bodies[i % bodies.len()].clone();
                i += connections;
                let sent = Instant::now();
                let response = client
                    .post(&endpoint)
                    .header("authorization", format!("Bearer {assertion}"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let key = match response {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let text = r.bytes().await.unwrap_or_default();
                        if status == 201 {
                            "201".to_owned()
                        } else {
                            let v: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
                            format!("{status} {}", v["code"].as_str().unwrap_or("?"))
                        }
                    }
                    Err(e) => format!("error {e}"),
                };
                latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                *statuses.entry(key).or_default() += 1;
            }
            (latencies, statuses)
        }));
    }
    let mut latencies = Vec::new();
    let mut statuses: std::collections::BTreeMap<String, u64> = Default::default();
    for task in tasks {
        let (l, s) = task.await?;
        latencies.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1000.0
    };
    let ok = statuses.get("201").copied().unwrap_or(0);
    println!(
        "requests: {} in {elapsed:.1} s; issued tickets: {ok} ({:.0}/s)",
        latencies.len(),
        ok as f64 / elapsed
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
    for (k, v) in &statuses {
        println!("  {k}: {v}");
    }
    if next.load(Ordering::Relaxed) >= assertions.len() {
        println!(
            "note: the run used every pre-signed assertion and stopped early; pass a larger --presign"
        );
    }
    Ok(())
}
