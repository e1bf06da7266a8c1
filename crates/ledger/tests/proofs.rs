//! Proof generation and verification: the RFC 6962/9162 vectors of transparency-dev/merkle,
//! and properties over every tree size.

use proptest::prelude::*;
use std::path::PathBuf;
use tsunagu_crypto::b64;
use tsunagu_ledger::{MerkleTree, leaf_hash, verify_consistency, verify_inclusion};

fn vectors_dir() -> Option<PathBuf> {
    let dir = std::env::var("TSUNAGU_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("vectors/rfc9162");
    dir.exists().then_some(dir)
}

fn json_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(json_files(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn bytes(v: &serde_json::Value) -> Vec<u8> {
    match v.as_str() {
        Some(s) => b64::std_decode(s).unwrap(),
        None => Vec::new(),
    }
}

fn proof(v: &serde_json::Value) -> Vec<Vec<u8>> {
    v.as_array()
        .map(|a| a.iter().map(bytes).collect())
        .unwrap_or_default()
}

#[test]
fn every_rfc9162_vector_gives_the_expected_answer() {
    let Some(dir) = vectors_dir() else {
        println!(
            "NOTICE: ../shared/vectors/rfc9162 not found (set TSUNAGU_SHARED_DIR); test skipped"
        );
        return;
    };
    let mut ran = 0;
    for path in json_files(&dir.join("inclusion")) {
        let case: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let result = verify_inclusion(
            case["leafIdx"].as_u64().unwrap(),
            case["treeSize"].as_u64().unwrap(),
            &bytes(&case["leafHash"]),
            &proof(&case["proof"]),
            &bytes(&case["root"]),
        );
        let want_err = case["wantErr"].as_bool().unwrap();
        assert_eq!(
            result.is_err(),
            want_err,
            "{}: {:?}",
            path.display(),
            result
        );
        ran += 1;
    }
    for path in json_files(&dir.join("consistency")) {
        let case: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let result = verify_consistency(
            case["size1"].as_u64().unwrap(),
            case["size2"].as_u64().unwrap(),
            &proof(&case["proof"]),
            &bytes(&case["root1"]),
            &bytes(&case["root2"]),
        );
        let want_err = case["wantErr"].as_bool().unwrap();
        assert_eq!(
            result.is_err(),
            want_err,
            "{}: {:?}",
            path.display(),
            result
        );
        ran += 1;
    }
    assert_eq!(ran, 196, "the vector set has 196 cases");
}

fn tree(n: u64) -> MerkleTree {
    MerkleTree::from_leaf_hashes((0..n).map(|i| leaf_hash(format!("leaf {i}").as_bytes())))
}

#[test]
fn every_inclusion_proof_of_every_small_tree_verifies() {
    let t = tree(130);
    for size in 1..=130 {
        let root = t.root(size).unwrap();
        for index in 0..size {
            let p = t.inclusion_proof(index, size).unwrap();
            verify_inclusion(index, size, &t.leaf(index).unwrap(), &p, &root)
                .unwrap_or_else(|e| panic!("index {index} size {size}: {e}"));
        }
    }
}

#[test]
fn every_consistency_proof_of_every_small_tree_verifies() {
    let t = tree(130);
    for second in 1..=130 {
        let root2 = t.root(second).unwrap();
        for first in 1..=second {
            let p = t.consistency_proof(first, second).unwrap();
            verify_consistency(first, second, &p, &t.root(first).unwrap(), &root2)
                .unwrap_or_else(|e| panic!("{first}..{second}: {e}"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn an_altered_inclusion_proof_fails(
        size in 2u64..3000, index_seed in any::<u64>(), which in any::<usize>(), bit in 0u8..8
    ) {
        let t = tree(size);
        let index = index_seed % size;
        let root = t.root(size).unwrap();
        let mut p = t.inclusion_proof(index, size).unwrap();
        prop_assume!(!p.is_empty());
        let at = which % p.len();
        p[at][(which / 7) % 32] ^= 1 << bit;
        prop_assert!(verify_inclusion(index, size, &t.leaf(index).unwrap(), &p, &root).is_err());
        // Dropping or adding a hash fails too, as does another index.
        let good = t.inclusion_proof(index, size).unwrap();
        prop_assert!(verify_inclusion(index, size, &t.leaf(index).unwrap(), &good[1..], &root).is_err());
        let mut longer = good.clone();
        longer.push([0u8; 32]);
        prop_assert!(verify_inclusion(index, size, &t.leaf(index).unwrap(), &longer, &root).is_err());
        let other = (index + 1) % size;
        prop_assert!(verify_inclusion(other, size, &t.leaf(index).unwrap(), &good, &root).is_err()
            || t.leaf(other) == t.leaf(index));
    }

    #[test]
    fn an_altered_consistency_proof_fails(
        second in 2u64..3000, first_seed in any::<u64>(), which in any::<usize>(), bit in 0u8..8
    ) {
        let t = tree(second);
        let first = 1 + first_seed % (second - 1);
        let root1 = t.root(first).unwrap();
        let root2 = t.root(second).unwrap();
        let mut p = t.consistency_proof(first, second).unwrap();
        let at = which % p.len();
        p[at][(which / 7) % 32] ^= 1 << bit;
        prop_assert!(verify_consistency(first, second, &p, &root1, &root2).is_err());
        let good = t.consistency_proof(first, second).unwrap();
        verify_consistency(first, second, &good, &root1, &root2).unwrap();
        let mut wrong_root = root2;
        wrong_root[0] ^= 1;
        prop_assert!(verify_consistency(first, second, &good, &root1, &wrong_root).is_err());
    }

    #[test]
    fn proofs_from_random_sizes_verify(second in 1u64..5000, a in any::<u64>(), b in any::<u64>()) {
        let t = tree(second);
        let first = 1 + a % second;
        let index = b % second;
        let root = t.root(second).unwrap();
        let p = t.inclusion_proof(index, second).unwrap();
        prop_assert!(verify_inclusion(index, second, &t.leaf(index).unwrap(), &p, &root).is_ok());
        let c = t.consistency_proof(first, second).unwrap();
        prop_assert!(verify_consistency(first, second, &c, &t.root(first).unwrap(), &root).is_ok());
    }
}
