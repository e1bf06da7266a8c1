//! Ledger benchmarks: appending leaf hashes to the tree, and inclusion and consistency
//! proofs at 10^6 and 10^7 leaves. Results: docs/PERFORMANCE.md.
//!
//! `cargo bench -p tsunagu-ledger` (set TSUNAGU_BENCH_SKIP_1E7=1 to skip the 10^7 tree,
//! which needs ~1 GB of memory and about a minute to build).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tsunagu_ledger::{MerkleTree, leaf_hash, verify_inclusion};

fn leaves(n: u64) -> Vec<[u8; 32]> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn append(c: &mut Criterion) {
    let hashes = leaves(1_000_000);
    let mut group = c.benchmark_group("append");
    group.sample_size(10);
    group.throughput(Throughput::Elements(hashes.len() as u64));
    group.bench_function("push 10^6 leaf hashes", |b| {
        b.iter(|| {
            let mut tree = MerkleTree::new();
            for h in &hashes {
                tree.push(*h);
            }
            black_box(tree.size())
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("leaf hash of a 200-byte leaf", |b| {
        let data = [7u8; 200];
        b.iter(|| black_box(leaf_hash(black_box(&data))))
    });
    group.finish();
}

fn proofs_at(c: &mut Criterion, n: u64, label: &str) {
    let tree = MerkleTree::from_leaf_hashes(leaves(n));
    let root = tree.root(n).unwrap();
    let mut group = c.benchmark_group(format!("proofs at {label} leaves"));
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    group.bench_function("inclusion proof", |b| {
        b.iter_batched(
            || next() % n,
            |i| black_box(tree.inclusion_proof(i, n).unwrap()),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("consistency proof", |b| {
        b.iter_batched(
            || 1 + next() % (n - 1),
            |m| black_box(tree.consistency_proof(m, n).unwrap()),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("root of the whole tree", |b| {
        b.iter(|| black_box(tree.root(n).unwrap()))
    });
    let index = n / 3;
    let proof = tree.inclusion_proof(index, n).unwrap();
    let leaf = tree.leaf(index).unwrap();
    group.bench_function("verify inclusion", |b| {
        b.iter(|| verify_inclusion(index, n, &leaf, black_box(&proof), &root).unwrap())
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    proofs_at(c, 1_000_000, "10^6");
    if std::env::var("TSUNAGU_BENCH_SKIP_1E7").is_err() {
        proofs_at(c, 10_000_000, "10^7");
    }
}

criterion_group!(benches, append, proofs);
criterion_main!(benches);
