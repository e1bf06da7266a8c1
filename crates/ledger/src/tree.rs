//! An append-only Merkle tree that keeps the hash of every complete, aligned subtree.
//!
//! `levels[k][i]` is the hash of the 2^k leaves starting at `i * 2^k`. Every subtree that
//! RFC 9162's algorithms ask for (`MTH(D[start:start+len])`, with `start` a multiple of the
//! largest power of two not above `len`) is then either one stored hash or a fold of at most
//! log2(n) stored hashes along the right edge, so roots and proofs cost O(log n) hash reads
//! and at most O(log n) hash computations, whatever the tree size. Memory: about two hashes
//! (64 bytes) per leaf.

use crate::hash::{EMPTY_ROOT, Hash, node_hash};

/// Why a proof or root cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("tree size {size} is beyond the log's {current} leaves")]
    SizeBeyondLog { size: u64, current: u64 },
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("consistency needs 0 < first <= second (got {first}, {second})")]
    BadRange { first: u64, second: u64 },
}

#[derive(Debug, Clone, Default)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
}

/// The largest power of two strictly below `n` (n >= 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

impl MerkleTree {
    pub fn new() -> MerkleTree {
        MerkleTree {
            levels: vec![Vec::new()],
        }
    }

    /// A tree over these leaf hashes.
    pub fn from_leaf_hashes(hashes: impl IntoIterator<Item = Hash>) -> MerkleTree {
        let mut tree = MerkleTree::new();
        for h in hashes {
            tree.push(h);
        }
        tree
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// Appends a leaf hash; returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        let index = self.size();
        self.levels[0].push(leaf);
        let mut level = 0;
        while self.levels[level].len().is_multiple_of(2) {
            let n = self.levels[level].len();
            let parent = node_hash(&self.levels[level][n - 2], &self.levels[level][n - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
        index
    }

    /// The hash of leaf `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels[0].get(usize::try_from(index).ok()?).copied()
    }

    /// `MTH(D[start:start+len])` for the ranges RFC 9162 uses.
    fn subtree(&self, start: u64, len: u64) -> Hash {
        debug_assert!(len >= 1);
        if len.is_power_of_two() && start.is_multiple_of(len) {
            let level = len.trailing_zeros() as usize;
            return self.levels[level][(start / len) as usize];
        }
        let k = split_point(len);
        node_hash(&self.subtree(start, k), &self.subtree(start + k, len - k))
    }

    fn check_size(&self, size: u64) -> Result<(), TreeError> {
        if size > self.size() {
            return Err(TreeError::SizeBeyondLog {
                size,
                current: self.size(),
            });
        }
        Ok(())
    }

    /// The Merkle tree hash of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, TreeError> {
        self.check_size(size)?;
        Ok(if size == 0 {
            EMPTY_ROOT
        } else {
            self.subtree(0, size)
        })
    }

    /// RFC 9162 §2.1.3.1: the audit path of leaf `index` in the tree of `size` leaves,
    /// bottom first.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
        self.check_size(size)?;
        if index >= size {
            return Err(TreeError::IndexOutOfRange { index, size });
        }
        let mut path = Vec::with_capacity(64);
        // Walk down from the root, collecting siblings, then reverse (bottom first).
        let (mut start, mut n, mut m) = (0u64, size, index);
        while n > 1 {
            let k = split_point(n);
            if m < k {
                path.push(self.subtree(start + k, n - k));
                n = k;
            } else {
                path.push(self.subtree(start, k));
                start += k;
                m -= k;
                n -= k;
            }
        }
        path.reverse();
        Ok(path)
    }

    /// RFC 9162 §2.1.4.1: the consistency proof between the trees of `first` and `second`
    /// leaves (0 < first <= second; empty when they are equal).
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, TreeError> {
        self.check_size(second)?;
        if first == 0 || first > second {
            return Err(TreeError::BadRange { first, second });
        }
        let mut proof = Vec::with_capacity(64);
        // SUBPROOF(m, D[start:start+n], b), unrolled: the hashes found on the way down come
        // out top first, so they are collected and reversed.
        let (mut start, mut n, mut m, mut b) = (0u64, second, first, true);
        while m != n {
            let k = split_point(n);
            if m <= k {
                proof.push(self.subtree(start + k, n - k));
                n = k;
            } else {
                proof.push(self.subtree(start, k));
                start += k;
                m -= k;
                n -= k;
                b = false;
            }
        }
        if !b {
            proof.push(self.subtree(start, n));
        }
        proof.reverse();
        Ok(proof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    /// The recursive definition of RFC 9162 §2.1.1, as a reference.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_ROOT,
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn roots_match_the_recursive_definition_at_every_size() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
        for size in 0..=70 {
            assert_eq!(
                tree.root(size).unwrap(),
                reference_root(&leaves[..size as usize])
            );
        }
    }

    #[test]
    fn the_split_point_is_the_largest_power_of_two_below() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(8), 4);
        assert_eq!(split_point(9), 8);
        assert_eq!(split_point(1 << 40), 1 << 39);
    }

    #[test]
    fn out_of_range_requests_are_errors() {
        let tree = MerkleTree::from_leaf_hashes([leaf_hash(b"a"), leaf_hash(b"b")]);
        assert!(tree.root(3).is_err());
        assert!(tree.inclusion_proof(2, 2).is_err());
        assert!(tree.inclusion_proof(0, 3).is_err());
        assert!(tree.consistency_proof(0, 2).is_err());
        assert!(tree.consistency_proof(2, 1).is_err());
        assert_eq!(tree.consistency_proof(2, 2).unwrap(), Vec::<Hash>::new());
    }
}
