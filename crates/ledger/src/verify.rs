//! RFC 9162 §2.1.3.2 and §2.1.4.2: verification of inclusion and consistency proofs. These
//! run offline, on a resident's or auditor's machine, from hashes alone.

use crate::hash::{Hash, node_hash};

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("a hash is not 32 bytes")]
    BadHashLength,
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    #[error("the computed root does not match")]
    RootMismatch,
    #[error("first tree size {first} is larger than second {second}")]
    Shrunk { first: u64, second: u64 },
    #[error("a consistency proof from the empty tree proves nothing")]
    FromEmpty,
    #[error("equal tree sizes need an empty proof and equal roots")]
    EqualSizes,
}

fn as_hash(bytes: &[u8]) -> Result<Hash, ProofError> {
    bytes.try_into().map_err(|_| ProofError::BadHashLength)
}

/// Right-shifts `fn_` and `sn` until the low bit of `fn_` is set or `fn_` is zero.
fn shift_until_odd(fn_: &mut u64, sn: &mut u64) {
    while *fn_ & 1 == 0 && *fn_ != 0 {
        *fn_ >>= 1;
        *sn >>= 1;
    }
}

/// Checks that `leaf_hash` is leaf `index` of the tree of `size` leaves with root `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf_hash: &[u8],
    proof: &[impl AsRef<[u8]>],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut r = as_hash(leaf_hash)?;
    let (mut fn_, mut sn) = (index, size - 1);
    for p in proof {
        let p = as_hash(p.as_ref())?;
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(&p, &r);
            if fn_ & 1 == 0 {
                shift_until_odd(&mut fn_, &mut sn);
            }
        } else {
            r = node_hash(&r, &p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if r.as_slice() != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `second` leaves with root `second_root` extends the tree of
/// `first` leaves with root `first_root`.
pub fn verify_consistency(
    first: u64,
    second: u64,
    proof: &[impl AsRef<[u8]>],
    first_root: &[u8],
    second_root: &[u8],
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::Shrunk { first, second });
    }
    if first == 0 {
        return Err(ProofError::FromEmpty);
    }
    if first == second {
        return if proof.is_empty() && first_root == second_root {
            Ok(())
        } else {
            Err(ProofError::EqualSizes)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(as_hash(first_root)?);
    }
    for p in proof {
        path.push(as_hash(p.as_ref())?);
    }
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                shift_until_odd(&mut fn_, &mut sn);
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr.as_slice() != first_root || sr.as_slice() != second_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}
