//! The CLI wallet: a file holding the device key sealed under the resident's PIN.
//!
//! Like a card, the wallet refuses to unlock after three wrong PINs in a row. A file cannot
//! enforce that against someone who copies it (they can guess offline, slowed by Argon2id);
//! on a phone the key lives in the secure element, which can.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::pinbox::{PinBox, PinError};

/// Wrong PINs before the wallet locks.
pub const PIN_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("wrong PIN ({remaining} attempts left before the wallet locks)")]
    WrongPin { remaining: u32 },
    #[error(
        "the wallet is locked after {PIN_ATTEMPTS} wrong PINs; enroll a new device (and revoke this one from another device)"
    )]
    Locked,
    #[error("the PIN must be 4 to 32 characters")]
    BadPin,
    #[error("wallet {0}")]
    File(String),
    #[error("{0} already exists; choose another wallet file")]
    Exists(PathBuf),
}

/// The wallet file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Wallet {
    pub version: u32,
    /// The platform this wallet is enrolled with.
    pub server: String,
    /// The device key (PKCS#8), sealed under the PIN.
    pub key: PinBox,
    /// The device's public key.
    pub public_jwk: serde_json::Value,
    pub account_id: Option<String>,
    pub device_id: Option<String>,
    pub level: Option<String>,
    pub credential: Option<String>,
    pub credential_expires_at: Option<i64>,
    /// Consecutive wrong PINs.
    pub failures: u32,
    #[serde(skip)]
    path: PathBuf,
}

fn check_pin(pin: &str) -> Result<(), WalletError> {
    if (4..=32).contains(&pin.chars().count()) {
        Ok(())
    } else {
        Err(WalletError::BadPin)
    }
}

impl Wallet {
    /// Creates a wallet with a fresh device key at `path` (which must not exist).
    pub fn create(path: &Path, pin: &str, server: &str) -> Result<Wallet, WalletError> {
        check_pin(pin)?;
        if path.exists() {
            return Err(WalletError::Exists(path.to_owned()));
        }
        let key = SigningKey::generate(Alg::Es256).map_err(|e| WalletError::File(e.to_string()))?;
        let wallet = Wallet {
            version: 1,
            server: server.trim_end_matches('/').to_owned(),
            key: PinBox::seal(pin, key.pkcs8()).map_err(|e| WalletError::File(e.to_string()))?,
            public_jwk: key.public_jwk().to_value(),
            account_id: None,
            device_id: None,
            level: None,
            credential: None,
            credential_expires_at: None,
            failures: 0,
            path: path.to_owned(),
        };
        wallet.save()?;
        Ok(wallet)
    }

    pub fn load(path: &Path) -> Result<Wallet, WalletError> {
        let text = std::fs::read(path)
            .map_err(|e| WalletError::File(format!("{}: {e}", path.display())))?;
        let mut wallet: Wallet = serde_json::from_slice(&text)
            .map_err(|e| WalletError::File(format!("{}: {e}", path.display())))?;
        wallet.path = path.to_owned();
        Ok(wallet)
    }

    /// Writes the wallet (owner-only permissions), atomically.
    pub fn save(&self) -> Result<(), WalletError> {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let text = serde_json::to_vec_pretty(self).map_err(|e| WalletError::File(e.to_string()))?;
        let tmp = self.path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        let write = || -> std::io::Result<()> {
            options.open(&tmp)?.write_all(&text)?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| WalletError::File(format!("{}: {e}", self.path.display())))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device's public key.
    pub fn device_jwk(&self) -> Result<PublicJwk, WalletError> {
        PublicJwk::from_value(&self.public_jwk).map_err(|e| WalletError::File(e.to_string()))
    }

    /// Unlocks the device key. A wrong PIN is counted and saved; the third locks the wallet.
    pub fn unlock(&mut self, pin: &str) -> Result<SigningKey, WalletError> {
        if self.failures >= PIN_ATTEMPTS {
            return Err(WalletError::Locked);
        }
        match self.key.open(pin) {
            Ok(pkcs8) => {
                if self.failures != 0 {
                    self.failures = 0;
                    self.save()?;
                }
                SigningKey::from_pkcs8(Alg::Es256, &pkcs8)
                    .map_err(|e| WalletError::File(e.to_string()))
            }
            Err(PinError::WrongPin) => {
                self.failures += 1;
                self.save()?;
                if self.failures >= PIN_ATTEMPTS {
                    Err(WalletError::Locked)
                } else {
                    Err(WalletError::WrongPin {
                        remaining: PIN_ATTEMPTS - self.failures,
                    })
                }
            }
            Err(e) => Err(WalletError::File(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_wrong_pins_lock_the_wallet_even_after_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        let mut w = Wallet::create(&path, "2468", "http://x").unwrap();
        assert!(w.unlock("2468").is_ok());
        assert!(matches!(
            w.unlock("0000"),
            Err(WalletError::WrongPin { remaining: 2 })
        ));
        let mut w = Wallet::load(&path).unwrap();
        assert!(matches!(
            w.unlock("0000"),
            Err(WalletError::WrongPin { remaining: 1 })
        ));
        assert!(matches!(w.unlock("0000"), Err(WalletError::Locked)));
        let mut w = Wallet::load(&path).unwrap();
        assert!(matches!(w.unlock("2468"), Err(WalletError::Locked)));
    }

    #[test]
    fn a_right_pin_resets_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        let mut w = Wallet::create(&path, "2468", "http://x").unwrap();
        let _ = w.unlock("0000");
        let _ = w.unlock("0000");
        assert!(w.unlock("2468").is_ok());
        assert!(matches!(
            w.unlock("0000"),
            Err(WalletError::WrongPin { remaining: 2 })
        ));
        assert!(
            Wallet::create(&path, "2468", "http://x").is_err(),
            "never overwrites"
        );
    }
}
