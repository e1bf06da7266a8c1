//! A simulated My Number card's signing function: the certificate, and its private key
//! sealed under the signing password, with the card's retry counter.

use crate::ca::write_private;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tsunagu_crypto::b64;
use tsunagu_crypto::pinbox::{PinBox, PinError};

/// Wrong signing passwords before the card locks (the real card: 5).
pub const SIGNING_PIN_ATTEMPTS: u32 = 5;

/// Errors of a card.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("wrong signing password ({remaining} attempts left before the card locks)")]
    WrongPin { remaining: u32 },
    #[error(
        "the card's signing function is locked after {SIGNING_PIN_ATTEMPTS} wrong passwords; the municipality must reset it"
    )]
    Locked,
    #[error("the signing password must be 6 to 16 letters and digits")]
    BadPinFormat,
    #[error("card file {0}")]
    File(String),
    #[error("signing failed")]
    Sign,
}

/// Checks the JPKI signing password format: 6 to 16 ASCII letters and digits.
pub fn check_signing_pin(pin: &str) -> Result<(), CardError> {
    if (6..=16).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(CardError::BadPinFormat)
    }
}

/// A card file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Card {
    pub version: u32,
    /// The signing certificate, base64 DER.
    pub certificate: String,
    /// Issuer certificates, base64 DER.
    pub chain: Vec<String>,
    /// The private key (PKCS#8), sealed under the signing password.
    pub key: PinBox,
    /// Consecutive wrong passwords.
    pub failures: u32,
}

impl Card {
    pub(crate) fn create(
        cert_der: Vec<u8>,
        chain: Vec<Vec<u8>>,
        pkcs8: &[u8],
        pin: &str,
    ) -> Result<Card, CardError> {
        check_signing_pin(pin)?;
        Ok(Card {
            version: 1,
            certificate: b64::std_encode(cert_der),
            chain: chain.iter().map(b64::std_encode).collect(),
            key: PinBox::seal(pin, pkcs8).map_err(|e| CardError::File(e.to_string()))?,
            failures: 0,
        })
    }

    pub fn load(path: &Path) -> Result<Card, CardError> {
        let text =
            std::fs::read(path).map_err(|e| CardError::File(format!("{}: {e}", path.display())))?;
        serde_json::from_slice(&text)
            .map_err(|e| CardError::File(format!("{}: {e}", path.display())))
    }

    pub fn save(&self, path: &Path) -> Result<(), CardError> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| CardError::File(e.to_string()))?;
        write_private(path, &text).map_err(|e| CardError::File(e.to_string()))
    }

    /// The signing certificate (DER).
    pub fn certificate_der(&self) -> Result<Vec<u8>, CardError> {
        b64::std_decode(&self.certificate).map_err(|e| CardError::File(e.to_string()))
    }

    /// Whether the signing function is locked.
    pub fn is_locked(&self) -> bool {
        self.failures >= SIGNING_PIN_ATTEMPTS
    }

    /// Signs `data` (RSASSA-PKCS1-v1_5 SHA-256) after checking the password. A wrong password
    /// counts against the card; the caller must save the card afterwards either way, as the
    /// chip would remember.
    pub fn sign(&mut self, pin: &str, data: &[u8]) -> Result<Vec<u8>, CardError> {
        if self.is_locked() {
            return Err(CardError::Locked);
        }
        let pkcs8 = match self.key.open(pin) {
            Ok(k) => k,
            Err(PinError::WrongPin) => {
                self.failures += 1;
                if self.is_locked() {
                    return Err(CardError::Locked);
                }
                return Err(CardError::WrongPin {
                    remaining: SIGNING_PIN_ATTEMPTS - self.failures,
                });
            }
            Err(e) => return Err(CardError::File(e.to_string())),
        };
        self.failures = 0;
        let pair = RsaKeyPair::from_pkcs8(&pkcs8).map_err(|_| CardError::Sign)?;
        let mut sig = vec![0u8; pair.public_modulus_len()];
        pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), data, &mut sig)
            .map_err(|_| CardError::Sign)?;
        Ok(sig)
    }
}
