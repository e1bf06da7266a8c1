//! # tsunagu-ledger
//!
//! The transparency log of RFC 9162 (Certificate Transparency 2.0), §2.1:
//! leaf hash `SHA-256(0x00 || data)`, node hash `SHA-256(0x01 || left || right)`, Merkle tree
//! hash over any number of leaves, inclusion and consistency proofs, and their verification;
//! plus Ed25519-signed tree heads over the JCS of `{root_hash, timestamp, tree_size}`.
//!
//! Invariant: this crate does not know what entries mean and does no I/O. The server feeds it
//! leaf hashes (from storage) and serves what it computes; auditors and residents run the
//! verifiers offline.

pub mod hash;
pub mod rotation;
pub mod sth;
pub mod tree;
pub mod verify;

pub use hash::{EMPTY_ROOT, Hash, leaf_hash, node_hash};
pub use sth::{SignedTreeHead, SthError};
pub use tree::MerkleTree;
pub use verify::{ProofError, verify_consistency, verify_inclusion};
