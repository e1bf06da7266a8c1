//! A secret sealed under a PIN: Argon2id derives an AES-256-GCM key from the PIN and a
//! random salt. Used for the CLI wallet's device key and the simulated cards' keys.
//!
//! A file on disk cannot enforce a retry counter the way a card's chip does: whoever copies
//! the file can guess offline, slowed only by Argon2id. The counters kept beside a box are
//! a usability guard, documented as such.

use crate::{CryptoError, b64, random};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Argon2id parameters (OWASP's minimum: 19 MiB, 2 passes, 1 lane).
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

/// The sealed form, stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinBox {
    pub kdf: String,
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub salt: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// The PIN did not open the box.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("wrong PIN")]
    WrongPin,
    #[error("{0}")]
    Crypto(#[from] CryptoError),
}

fn derive(pin: &str, salt: &[u8], m: u32, t: u32, p: u32) -> Result<LessSafeKey, CryptoError> {
    let params = argon2::Params::new(m, t, p, Some(32))
        .map_err(|e| CryptoError::Malformed(format!("argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(pin.as_bytes(), salt, &mut *key)
        .map_err(|e| CryptoError::Malformed(format!("argon2: {e}")))?;
    let unbound = UnboundKey::new(&AES_256_GCM, &*key).map_err(|_| CryptoError::Internal)?;
    Ok(LessSafeKey::new(unbound))
}

impl PinBox {
    /// Seals `secret` under `pin`.
    pub fn seal(pin: &str, secret: &[u8]) -> Result<PinBox, CryptoError> {
        let salt = random::bytes(16)?;
        let nonce: [u8; 12] = random::bytes(12)?
            .try_into()
            .map_err(|_| CryptoError::Internal)?;
        let key = derive(pin, &salt, M_COST_KIB, T_COST, P_COST)?;
        let mut data = secret.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(b"tsunagu-pinbox-v1"),
            &mut data,
        )
        .map_err(|_| CryptoError::Internal)?;
        Ok(PinBox {
            kdf: "argon2id".into(),
            m_cost_kib: M_COST_KIB,
            t_cost: T_COST,
            p_cost: P_COST,
            salt: b64::std_encode(salt),
            nonce: b64::std_encode(nonce),
            ciphertext: b64::std_encode(data),
        })
    }

    /// Opens the box with `pin`.
    pub fn open(&self, pin: &str) -> Result<Zeroizing<Vec<u8>>, PinError> {
        if self.kdf != "argon2id" {
            return Err(CryptoError::Unsupported(format!("kdf {}", self.kdf)).into());
        }
        let salt = b64::std_decode(&self.salt)?;
        let nonce: [u8; 12] = b64::std_decode(&self.nonce)?
            .try_into()
            .map_err(|_| CryptoError::Malformed("nonce length".into()))?;
        let key = derive(pin, &salt, self.m_cost_kib, self.t_cost, self.p_cost)?;
        let mut data = Zeroizing::new(b64::std_decode(&self.ciphertext)?);
        let len = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(b"tsunagu-pinbox-v1"),
                &mut data,
            )
            .map_err(|_| PinError::WrongPin)?
            .len();
        data.truncate(len);
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_pin_opens_and_a_wrong_one_does_not() {
        let sealed = PinBox::seal("1234", b"device key").unwrap();
        assert_eq!(&*sealed.open("1234").unwrap(), b"device key");
        assert_eq!(sealed.open("1235"), Err(PinError::WrongPin));
        let json = serde_json::to_string(&sealed).unwrap();
        let back: PinBox = serde_json::from_str(&json).unwrap();
        assert_eq!(&*back.open("1234").unwrap(), b"device key");
    }
}
