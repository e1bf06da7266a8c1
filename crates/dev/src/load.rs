//! `tsunagu dev load`: drives `POST /v1/exchange/tickets` against a running `tsunagu serve`
//! for the residents `tsunagu dev seed` wrote ([`crate::seed`]), with client assertions signed
//! beforehand (so the generator spends its CPU on HTTP, not on ECDSA), and reports throughput
//! and latency percentiles. `scripts/bench-tickets.sh` runs both for SQLite and PostgreSQL.

use anyhow::Context;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tsunagu_connector::ServiceIdentity;

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
