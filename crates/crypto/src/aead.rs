//! Encryption at rest: a keyring of AES-256-GCM keys.
//!
//! Each ciphertext names the key that sealed it, so keys rotate without downtime: a new key
//! becomes active for new writes, old keys still open old rows, and a re-encryption pass
//! moves rows forward before an old key is retired. The associated data binds a ciphertext
//! to its row (for example the account id), so ciphertexts cannot be swapped between rows.
//!
//! Layout: `0x01 || key_id (u32, big-endian) || nonce (12) || ciphertext || tag (16)`.

use crate::{CryptoError, b64, random};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

struct Entry {
    key: LessSafeKey,
    raw: Zeroizing<Vec<u8>>,
}

/// A set of data-encryption keys, one of them active.
pub struct Keyring {
    keys: BTreeMap<u32, Entry>,
    active: u32,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct KeyringFile {
    active: u32,
    keys: BTreeMap<String, String>,
}

fn entry(raw: Vec<u8>) -> Result<Entry, CryptoError> {
    let raw = Zeroizing::new(raw);
    let unbound = UnboundKey::new(&AES_256_GCM, &raw)
        .map_err(|_| CryptoError::InvalidKey("AES-256-GCM keys are 32 bytes".into()))?;
    Ok(Entry {
        key: LessSafeKey::new(unbound),
        raw,
    })
}

impl Keyring {
    /// A keyring with one fresh key (id 1).
    pub fn generate() -> Result<Keyring, CryptoError> {
        let mut keys = BTreeMap::new();
        keys.insert(1, entry(random::bytes(32)?)?);
        Ok(Keyring { keys, active: 1 })
    }

    /// Reads the keyring file format: `{"active": N, "keys": {"N": "<base64 32 bytes>"}}`.
    pub fn from_json(text: &str) -> Result<Keyring, CryptoError> {
        let file: KeyringFile = serde_json::from_str(text)
            .map_err(|e| CryptoError::Malformed(format!("keyring: {e}")))?;
        let mut keys = BTreeMap::new();
        for (id, key) in file.keys {
            let id: u32 = id
                .parse()
                .map_err(|_| CryptoError::Malformed(format!("keyring: key id `{id}`")))?;
            keys.insert(id, entry(b64::std_decode(&key)?)?);
        }
        if !keys.contains_key(&file.active) {
            return Err(CryptoError::Malformed(format!(
                "keyring: active key {} is not in the ring",
                file.active
            )));
        }
        Ok(Keyring {
            keys,
            active: file.active,
        })
    }

    /// The keyring file text.
    pub fn to_json(&self) -> Zeroizing<String> {
        let file = KeyringFile {
            active: self.active,
            keys: self
                .keys
                .iter()
                .map(|(id, e)| (id.to_string(), b64::std_encode(&*e.raw)))
                .collect(),
        };
        Zeroizing::new(serde_json::to_string_pretty(&file).expect("keyring serializes"))
    }

    /// Adds a fresh key and makes it the active one. Returns its id.
    pub fn rotate(&mut self) -> Result<u32, CryptoError> {
        let id = self
            .keys
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| CryptoError::InvalidKey("keyring: no key id left".into()))?;
        self.keys.insert(id, entry(random::bytes(32)?)?);
        self.active = id;
        Ok(id)
    }

    pub fn active_key_id(&self) -> u32 {
        self.active
    }

    /// The ids of every key in the ring, ascending.
    pub fn key_ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Removes a key that no longer seals anything. The active key cannot be removed.
    pub fn remove(&mut self, id: u32) -> Result<(), CryptoError> {
        if id == self.active {
            return Err(CryptoError::InvalidKey(format!(
                "key {id} is the active key and cannot be removed"
            )));
        }
        self.keys
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| CryptoError::InvalidKey(format!("no key {id} in the ring")))
    }

    /// Encrypts with the active key.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let entry = self.keys.get(&self.active).ok_or(CryptoError::Internal)?;
        let nonce_bytes: [u8; NONCE_LEN] = random::bytes(NONCE_LEN)?
            .try_into()
            .map_err(|_| CryptoError::Internal)?;
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        out.push(VERSION);
        out.extend_from_slice(&self.active.to_be_bytes());
        out.extend_from_slice(&nonce_bytes);
        let mut in_out = plaintext.to_vec();
        entry
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| CryptoError::Internal)?;
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// The id of the key that sealed `blob`.
    pub fn key_id_of(blob: &[u8]) -> Option<u32> {
        if blob.len() < HEADER_LEN || blob[0] != VERSION {
            return None;
        }
        Some(u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]))
    }

    /// Decrypts a blob sealed by any key in the ring with the same associated data.
    pub fn open(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let id = Keyring::key_id_of(blob).ok_or(CryptoError::Decrypt)?;
        let entry = self.keys.get(&id).ok_or(CryptoError::Decrypt)?;
        let nonce: [u8; NONCE_LEN] = blob[5..HEADER_LEN]
            .try_into()
            .map_err(|_| CryptoError::Decrypt)?;
        let mut in_out = Zeroizing::new(blob[HEADER_LEN..].to_vec());
        let len = entry
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| CryptoError::Decrypt)?
            .len();
        in_out.truncate(len);
        Ok(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_with_the_same_aad_only() {
        let ring = Keyring::generate().unwrap();
        let blob = ring.seal(b"acct-1", b"secret").unwrap();
        assert_eq!(&*ring.open(b"acct-1", &blob).unwrap(), b"secret");
        assert_eq!(ring.open(b"acct-2", &blob), Err(CryptoError::Decrypt));
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(ring.open(b"acct-1", &tampered), Err(CryptoError::Decrypt));
        assert_eq!(ring.open(b"acct-1", &blob[..10]), Err(CryptoError::Decrypt));
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable() {
        let mut ring = Keyring::generate().unwrap();
        let old = ring.seal(b"", b"before").unwrap();
        let id = ring.rotate().unwrap();
        assert_eq!(id, 2);
        let new = ring.seal(b"", b"after").unwrap();
        assert_eq!(Keyring::key_id_of(&old), Some(1));
        assert_eq!(Keyring::key_id_of(&new), Some(2));
        let reloaded = Keyring::from_json(&ring.to_json()).unwrap();
        assert_eq!(&*reloaded.open(b"", &old).unwrap(), b"before");
        assert_eq!(&*reloaded.open(b"", &new).unwrap(), b"after");
    }

    #[test]
    fn only_a_key_that_is_not_active_can_be_removed() {
        let mut ring = Keyring::generate().unwrap();
        let old = ring.seal(b"", b"before").unwrap();
        ring.rotate().unwrap();
        assert_eq!(ring.key_ids(), vec![1, 2]);
        assert!(ring.remove(2).is_err(), "the active key stays");
        assert!(ring.remove(3).is_err());
        ring.remove(1).unwrap();
        assert_eq!(ring.key_ids(), vec![2]);
        assert_eq!(ring.open(b"", &old), Err(CryptoError::Decrypt));
        let reloaded = Keyring::from_json(&ring.to_json()).unwrap();
        assert_eq!(reloaded.key_ids(), vec![2]);
    }

    #[test]
    fn a_keyring_file_must_name_an_existing_active_key() {
        assert!(Keyring::from_json(r#"{"active":2,"keys":{}}"#).is_err());
        assert!(Keyring::from_json(r#"{"active":1,"keys":{"1":"AAAA"}}"#).is_err());
        assert!(Keyring::from_json("nonsense").is_err());
    }
}
