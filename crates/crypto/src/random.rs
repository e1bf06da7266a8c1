//! Randomness for identifiers, nonces and keys, from the operating system through aws-lc-rs.

use crate::{CryptoError, b64};

/// `n` random bytes.
pub fn bytes(n: usize) -> Result<Vec<u8>, CryptoError> {
    let mut out = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| CryptoError::Internal)?;
    Ok(out)
}

/// A random token of `n` bytes, base64url: nonces, identifiers, access tokens.
pub fn token(n: usize) -> Result<String, CryptoError> {
    Ok(b64::url_encode(bytes(n)?))
}
