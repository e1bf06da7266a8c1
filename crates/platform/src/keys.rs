//! The platform's keys: an ES256 key that signs device credentials, tickets, ID tokens and
//! console sessions, an Ed25519 key that signs ledger tree heads, and the secret behind
//! pairwise identifiers. They live in the database, sealed with the keyring, so every replica
//! uses the same keys; the keyring itself is a file only operators hold.
//!
//! Keys rotate (ADR 0019): the rows of `platform_keys` say when each key starts signing
//! (`activate_at`, the newest activated key wins) and when a signing key leaves the JWKS
//! (`retire_at`). Every replica re-reads them and the keyring file ([`PlatformKeys::refresh`])
//! and swaps what it holds; the hot paths take an `Arc` of the current set under a read lock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tsunagu_core::{AccountId, PairwiseId, ServiceId};
use tsunagu_crypto::CryptoError;
use tsunagu_crypto::aead::Keyring;
use tsunagu_crypto::jwk::JwkSet;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::pairwise::LEDGER_SECTOR;
use tsunagu_crypto::pairwise::PairwiseKey;
use tsunagu_crypto::random;
use tsunagu_store::{KeyRow, Store};
use zeroize::Zeroizing;

/// `platform_keys.purpose` of the key that signs credentials, tickets and ID tokens.
pub const SIGNING: &str = "platform";
/// `platform_keys.purpose` of the key that signs tree heads.
pub const LEDGER: &str = "ledger";
/// `platform_keys.purpose` of the pairwise secret.
pub const PAIRWISE: &str = "pairwise";

/// A signing key and when it serves.
pub struct TimedKey {
    pub name: String,
    pub key: Arc<SigningKey>,
    pub activate_at: i64,
    pub retire_at: Option<i64>,
    /// A ledger key other than the first signs only once its announcement is recorded.
    pub announced: bool,
}

/// What a replica holds at one time.
struct KeyState {
    keyring: Arc<Keyring>,
    /// The keyring file's text as last read (to notice a change).
    keyring_text: Zeroizing<String>,
    /// Ordered by `activate_at`, then creation.
    signing: Vec<TimedKey>,
    ledger: Vec<TimedKey>,
    jwks: Arc<JwkSet>,
    /// What the rows said when this state was built (to notice a change).
    fingerprint: Vec<(String, i64, Option<i64>, bool)>,
}

/// Loaded platform keys.
pub struct PlatformKeys {
    pub pairwise: PairwiseKey,
    /// The keyring file, re-read on refresh (none for a keyring given in code).
    keyring_file: Option<PathBuf>,
    state: RwLock<Arc<KeyState>>,
}

impl std::fmt::Debug for PlatformKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformKeys")
            .field("signing", &self.signing().kid())
            .field("ledger", &self.ledger_at(crate::now()).kid())
            .finish_non_exhaustive()
    }
}

/// Reads the keyring file, or creates it (owner-only permissions) when absent.
pub fn load_or_create_keyring(path: &Path) -> anyhow::Result<Keyring> {
    if path.exists() {
        return read_keyring(path).map(|(ring, _)| ring);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let ring = Keyring::generate()?;
    write_private(path, ring.to_json().as_bytes())?;
    tracing::info!(path = %path.display(), "created a new keyring");
    Ok(ring)
}

/// Reads the keyring file and its text.
pub fn read_keyring(path: &Path) -> anyhow::Result<(Keyring, Zeroizing<String>)> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("keyring {}: {e}", path.display()))?,
    );
    let ring = Keyring::from_json(&text)
        .map_err(|e| anyhow::anyhow!("keyring {}: {e}", path.display()))?;
    Ok((ring, text))
}

/// Replaces the keyring file in one step (a new file, owner-only, renamed over the old one),
/// so a replica reading it sees the old ring or the new one, never a part.
pub fn write_keyring(path: &Path, ring: &Keyring) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, ring.to_json().as_bytes())
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| anyhow::anyhow!("keyring {}: {e}", path.display()))
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(data)
}

/// A new key's row: active, signing from `activate_at`.
pub(crate) fn new_key_row(
    keyring: &Keyring,
    name: &str,
    purpose: &str,
    key: &SigningKey,
    now: i64,
    activate_at: i64,
) -> anyhow::Result<KeyRow> {
    Ok(KeyRow {
        name: name.into(),
        purpose: purpose.into(),
        kid: key.kid().into(),
        alg: key.alg().as_str().into(),
        secret: keyring.seal(name.as_bytes(), key.pkcs8())?,
        active: true,
        created_at: now,
        activate_at,
        retire_at: None,
        announcement: None,
    })
}

async fn create_if_absent(
    store: &dyn Store,
    keyring: &Keyring,
    name: &str,
    purpose: &str,
    alg: Alg,
    now: i64,
) -> anyhow::Result<()> {
    if store.keys(purpose).await?.is_empty() {
        let key = SigningKey::generate(alg)?;
        // Another replica may win the race to create the key; its key is read back.
        store
            .insert_key_if_absent(&new_key_row(keyring, name, purpose, &key, now, now)?)
            .await?;
    }
    Ok(())
}

fn open_key(keyring: &Keyring, row: &KeyRow) -> anyhow::Result<SigningKey> {
    let pkcs8 = keyring
        .open(row.name.as_bytes(), &row.secret)
        .map_err(|_| {
            anyhow::anyhow!(
                "platform key `{}` cannot be opened with this keyring (wrong keyring file?)",
                row.name
            )
        })?;
    let alg = Alg::parse(&row.alg)
        .ok_or_else(|| anyhow::anyhow!("platform key `{}`: algorithm {}", row.name, row.alg))?;
    Ok(SigningKey::from_pkcs8(alg, &pkcs8)?)
}

fn fingerprint(rows: &[KeyRow]) -> Vec<(String, i64, Option<i64>, bool)> {
    rows.iter()
        .filter(|r| r.purpose != PAIRWISE)
        .map(|r| {
            (
                r.name.clone(),
                r.activate_at,
                r.retire_at,
                r.announcement.is_some(),
            )
        })
        .collect()
}

/// The key that signs at `t`: the newest activated one (eligible, for ledger keys), or the
/// first when none is activated yet.
fn current(keys: &[TimedKey], t: i64) -> &Arc<SigningKey> {
    keys.iter()
        .rev()
        .find(|k| k.announced && k.activate_at <= t)
        .map_or(&keys[0].key, |k| &k.key)
}

fn build_state(
    rows: &[KeyRow],
    keyring: Arc<Keyring>,
    keyring_text: Zeroizing<String>,
) -> anyhow::Result<KeyState> {
    let mut signing = Vec::new();
    let mut ledger = Vec::new();
    for row in rows {
        let list = match row.purpose.as_str() {
            SIGNING => &mut signing,
            LEDGER => &mut ledger,
            _ => continue,
        };
        let first = list.is_empty();
        list.push(TimedKey {
            name: row.name.clone(),
            key: Arc::new(open_key(&keyring, row)?),
            activate_at: row.activate_at,
            retire_at: row.retire_at,
            // Signing keys need no announcement; the first ledger key is pinned by
            // auditors on first use; later ones are announced in the ledger.
            announced: row.purpose == SIGNING || first || row.announcement.is_some(),
        });
    }
    for (list, purpose) in [(&mut signing, SIGNING), (&mut ledger, LEDGER)] {
        if list.is_empty() {
            anyhow::bail!("no `{purpose}` key in platform_keys");
        }
        list.sort_by_key(|k| k.activate_at);
    }
    let jwks = JwkSet {
        keys: signing
            .iter()
            .chain(ledger.iter())
            .map(|k| k.key.published_jwk())
            .collect(),
    };
    Ok(KeyState {
        keyring,
        keyring_text,
        fingerprint: fingerprint(rows),
        signing,
        ledger,
        jwks: Arc::new(jwks),
    })
}

impl PlatformKeys {
    /// Loads the keys from the store, creating them on first start.
    pub async fn load(
        store: &dyn Store,
        keyring: Keyring,
        now: i64,
    ) -> anyhow::Result<PlatformKeys> {
        let text = keyring.to_json();
        PlatformKeys::load_with(store, keyring, text, None, now).await
    }

    /// Loads the keys with the keyring read from `path` (created when absent), which later
    /// refreshes re-read.
    pub async fn load_from_file(
        store: &dyn Store,
        path: &Path,
        now: i64,
    ) -> anyhow::Result<PlatformKeys> {
        load_or_create_keyring(path)?;
        let (keyring, text) = read_keyring(path)?;
        PlatformKeys::load_with(store, keyring, text, Some(path.to_owned()), now).await
    }

    async fn load_with(
        store: &dyn Store,
        keyring: Keyring,
        keyring_text: Zeroizing<String>,
        keyring_file: Option<PathBuf>,
        now: i64,
    ) -> anyhow::Result<PlatformKeys> {
        create_if_absent(
            store,
            &keyring,
            "platform-es256-1",
            SIGNING,
            Alg::Es256,
            now,
        )
        .await?;
        create_if_absent(store, &keyring, "ledger-ed25519-1", LEDGER, Alg::EdDsa, now).await?;
        if store.keys(PAIRWISE).await?.is_empty() {
            let secret = random::bytes(32)?;
            store
                .insert_key_if_absent(&KeyRow {
                    name: "pairwise-1".into(),
                    purpose: PAIRWISE.into(),
                    kid: "pairwise-1".into(),
                    alg: "HS256".into(),
                    secret: keyring.seal(b"pairwise-1", &secret)?,
                    active: true,
                    created_at: now,
                    activate_at: now,
                    retire_at: None,
                    announcement: None,
                })
                .await?;
        }
        // Pairwise identifiers must never change, so the first pairwise secret is kept.
        let row = store
            .keys(PAIRWISE)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no pairwise key"))?;
        let secret = keyring
            .open(row.name.as_bytes(), &row.secret)
            .map_err(|_| anyhow::anyhow!("the pairwise key cannot be opened with this keyring"))?;
        let rows = store.all_keys().await?;
        let state = build_state(&rows, Arc::new(keyring), keyring_text)?;
        Ok(PlatformKeys {
            pairwise: PairwiseKey::new(&secret),
            keyring_file,
            state: RwLock::new(Arc::new(state)),
        })
    }

    fn state(&self) -> Arc<KeyState> {
        self.state.read().expect("keys lock").clone()
    }

    /// The key that signs credentials, tickets, ID tokens and sessions now.
    pub fn signing(&self) -> Arc<SigningKey> {
        self.signing_at(crate::now())
    }

    /// The key that signs credentials at `t`.
    pub fn signing_at(&self, t: i64) -> Arc<SigningKey> {
        current(&self.state().signing, t).clone()
    }

    /// The key that signs tree heads at `t`.
    pub fn ledger_at(&self, t: i64) -> Arc<SigningKey> {
        current(&self.state().ledger, t).clone()
    }

    /// Every platform public key, as published at `/.well-known/jwks.json`: the signing keys
    /// not yet retired (a new one before it signs, old ones until what they signed has
    /// expired) and every ledger key.
    pub fn jwks(&self) -> Arc<JwkSet> {
        self.state().jwks.clone()
    }

    /// The public key of the platform's signing key `kid` (ES256: credentials, tickets, ID
    /// tokens, console sessions), not yet retired. The platform verifies its own tokens only
    /// with these — never with a ledger key, which signs tree heads and nothing else.
    pub fn signing_key(&self, kid: &str) -> Option<tsunagu_crypto::jwk::PublicJwk> {
        self.state()
            .signing
            .iter()
            .find(|k| k.key.kid() == kid)
            .map(|k| k.key.public_jwk().clone())
    }

    /// The public keys of [`PlatformKeys::signing_key`], as a set.
    pub fn signing_jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .state()
                .signing
                .iter()
                .map(|k| k.key.public_jwk().clone())
                .collect(),
        }
    }

    /// The keyring as last read.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.state().keyring.clone()
    }

    /// The signing keys (`SIGNING`) or ledger keys (`LEDGER`) held now, with their times.
    pub fn timed(&self, purpose: &str) -> Vec<(String, String, i64, Option<i64>, bool)> {
        let state = self.state();
        let list = if purpose == LEDGER {
            &state.ledger
        } else {
            &state.signing
        };
        list.iter()
            .map(|k| {
                (
                    k.name.clone(),
                    k.key.kid().to_owned(),
                    k.activate_at,
                    k.retire_at,
                    k.announced,
                )
            })
            .collect()
    }

    /// Opens a blob sealed with the keyring. A blob sealed by a key this replica does not
    /// know yet (the keyring was rotated elsewhere) makes it re-read the keyring file once.
    pub fn open_sealed(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let keyring = self.keyring();
        match keyring.open(aad, blob) {
            Err(CryptoError::Decrypt)
                if Keyring::key_id_of(blob).is_some_and(|id| !keyring.key_ids().contains(&id)) =>
            {
                if let Err(e) = self.reload_keyring() {
                    tracing::warn!(error = %e, "re-reading the keyring for an unknown key id");
                }
                self.keyring().open(aad, blob)
            }
            other => other,
        }
    }

    /// Re-reads the keyring file if it changed. Returns whether it did.
    fn reload_keyring(&self) -> anyhow::Result<bool> {
        let Some(path) = &self.keyring_file else {
            return Ok(false);
        };
        let (ring, text) = read_keyring(path)?;
        let mut guard = self.state.write().expect("keys lock");
        if *guard.keyring_text == *text {
            return Ok(false);
        }
        let old = guard.clone();
        *guard = Arc::new(KeyState {
            keyring: Arc::new(ring),
            keyring_text: text,
            signing: old.signing.iter().map(TimedKey::share).collect(),
            ledger: old.ledger.iter().map(TimedKey::share).collect(),
            jwks: old.jwks.clone(),
            fingerprint: old.fingerprint.clone(),
        });
        tracing::info!(path = %path.display(), "keyring re-read");
        Ok(true)
    }

    /// Re-reads the keyring file and the key rows, and swaps in what changed (a key added,
    /// announced, retired or deleted). Every replica runs this often (the `keys.refresh`
    /// job), so a rotation started anywhere reaches every replica before its keys sign.
    /// Returns whether anything changed.
    pub async fn refresh(&self, store: &dyn Store) -> anyhow::Result<bool> {
        let ring_changed = self.reload_keyring()?;
        let rows = store.all_keys().await?;
        let state = self.state();
        if fingerprint(&rows) == state.fingerprint {
            return Ok(ring_changed);
        }
        let next = build_state(&rows, state.keyring.clone(), state.keyring_text.clone())?;
        let mut guard = self.state.write().expect("keys lock");
        // Keep a keyring re-read meanwhile.
        let next = KeyState {
            keyring: guard.keyring.clone(),
            keyring_text: guard.keyring_text.clone(),
            ..next
        };
        *guard = Arc::new(next);
        tracing::info!("platform keys re-read");
        Ok(true)
    }
}

impl TimedKey {
    fn share(&self) -> TimedKey {
        TimedKey {
            name: self.name.clone(),
            key: self.key.clone(),
            activate_at: self.activate_at,
            retire_at: self.retire_at,
            announced: self.announced,
        }
    }
}

impl PlatformKeys {
    /// The resident's pseudonym in ledger leaves.
    pub fn ledger_subject(&self, account: &AccountId) -> PairwiseId {
        self.pairwise
            .subject(LEDGER_SECTOR, account.as_str())
            .into()
    }

    /// The pairwise id of an account at a service (its sector is the service id).
    pub fn pairwise_id(&self, service: &ServiceId, account: &AccountId) -> PairwiseId {
        self.pairwise
            .subject(service.as_str(), account.as_str())
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(activate_at: i64, announced: bool) -> TimedKey {
        TimedKey {
            name: format!("k{activate_at}"),
            key: Arc::new(SigningKey::generate(Alg::EdDsa).unwrap()),
            activate_at,
            retire_at: None,
            announced,
        }
    }

    #[test]
    fn the_newest_activated_eligible_key_signs() {
        let keys = vec![timed(10, true), timed(20, true), timed(30, false)];
        assert_eq!(
            current(&keys, 5).kid(),
            keys[0].key.kid(),
            "none yet: the first"
        );
        assert_eq!(current(&keys, 10).kid(), keys[0].key.kid());
        assert_eq!(current(&keys, 19).kid(), keys[0].key.kid());
        assert_eq!(current(&keys, 20).kid(), keys[1].key.kid());
        assert_eq!(
            current(&keys, 40).kid(),
            keys[1].key.kid(),
            "an unannounced ledger key never signs"
        );
    }

    #[test]
    fn the_keyring_file_is_replaced_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let mut ring = load_or_create_keyring(&path).unwrap();
        ring.rotate().unwrap();
        write_keyring(&path, &ring).unwrap();
        let (read, _) = read_keyring(&path).unwrap();
        assert_eq!(read.key_ids(), vec![1, 2]);
        assert_eq!(read.active_key_id(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "{").unwrap();
        let err = read_keyring(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("keyring {}:", path.display())),
            "{err}"
        );
    }
}
