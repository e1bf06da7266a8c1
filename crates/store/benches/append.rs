//! Durable ledger appends through `Store::commit_batch`: batches of single-leaf commits (as
//! group commit produces them) until the log holds a million leaves, on SQLite
//! (`synchronous = FULL`) and, when `TSUNAGU_TEST_DATABASE_URL` is set, on PostgreSQL.
//! Prints leaves per second per 100,000 leaves, to show the cost stays flat as the log
//! grows. Results: docs/PERFORMANCE.md.
//!
//! `cargo bench -p tsunagu-store --bench append` (TSUNAGU_BENCH_LEAVES overrides 1,000,000).

use std::sync::Arc;
use std::time::Instant;
use tsunagu_store::{Commit, NewLeaf, Store};

fn leaf(i: u64) -> NewLeaf {
    // A leaf the size of a typical identity event (~180 bytes of JCS).
    let input = format!(
        r#"{{"at":1790000000,"device":"{:022}","subject":"{:043}","type":"auth.login","v":1}}"#,
        i, i
    )
    .into_bytes();
    let mut hash = [0u8; 32];
    hash.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input).as_ref());
    NewLeaf {
        input,
        hash,
        subjects: vec![format!("acct-{}", i % 10_000).into()],
        created_at: 1_790_000_000,
    }
}

async fn run(label: &str, store: Arc<dyn Store>, total: u64, batch: u64) {
    println!("\n{label}: batches of {batch} single-leaf commits, {total} leaves");
    println!("  leaves so far   leaves/s (this 100k)");
    let start = Instant::now();
    let mut window = Instant::now();
    let mut next = 0u64;
    while next < total {
        let commits: Vec<Commit> = (next..(next + batch).min(total))
            .map(|i| Commit {
                changes: vec![],
                leaves: vec![leaf(i)],
            })
            .collect();
        let n = commits.len() as u64;
        let outcome = store.commit_batch(commits).await.expect("batch commits");
        assert_eq!(outcome.size_after, next + n);
        next += n;
        if next.is_multiple_of(100_000) {
            println!(
                "  {next:>12}   {:>10.0}",
                100_000.0 / window.elapsed().as_secs_f64()
            );
            window = Instant::now();
        }
    }
    println!(
        "  overall: {:.0} leaves/s ({:.1} s)",
        total as f64 / start.elapsed().as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let total: u64 = std::env::var("TSUNAGU_BENCH_LEAVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sqlite = tsunagu_store::open_sqlite(&dir.path().join("bench.db"))
        .await
        .unwrap();
    run(
        "SQLite (WAL, synchronous=FULL)",
        Arc::new(sqlite),
        total,
        1000,
    )
    .await;
    match std::env::var("TSUNAGU_TEST_DATABASE_URL") {
        Ok(url) => {
            let schema = format!("bench_append_{}", std::process::id());
            let pg = tsunagu_store::open_postgres(&url, Some(&schema))
                .await
                .unwrap();
            run("PostgreSQL", Arc::new(pg), total, 1000).await;
            tsunagu_store::SqlStore::drop_schema(&url, &schema)
                .await
                .unwrap();
        }
        Err(_) => println!("\nNOTICE: TSUNAGU_TEST_DATABASE_URL not set: PostgreSQL skipped"),
    }
}
