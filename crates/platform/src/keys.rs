//! The platform's keys: an ES256 key that signs device credentials (and later tickets and ID
//! tokens), an Ed25519 key that signs ledger tree heads, and the secret behind pairwise
//! identifiers. They live in the database, sealed with the keyring, so every replica uses
//! the same keys; the keyring itself is a file only operators hold.

use std::path::Path;
use std::sync::Arc;
use tsunagu_core::{AccountId, PairwiseId, ServiceId};
use tsunagu_crypto::aead::Keyring;
use tsunagu_crypto::jwk::JwkSet;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::pairwise::LEDGER_SECTOR;
use tsunagu_crypto::pairwise::PairwiseKey;
use tsunagu_crypto::random;
use tsunagu_store::{KeyRow, Store};

/// Loaded platform keys.
pub struct PlatformKeys {
    pub keyring: Arc<Keyring>,
    /// Signs credentials.
    pub signing: SigningKey,
    /// Signs tree heads.
    pub ledger: SigningKey,
    pub pairwise: PairwiseKey,
    /// Every platform public key, as published at `/.well-known/jwks.json`.
    pub jwks: JwkSet,
}

impl std::fmt::Debug for PlatformKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformKeys")
            .field("signing", &self.signing.kid())
            .field("ledger", &self.ledger.kid())
            .finish_non_exhaustive()
    }
}

/// Reads the keyring file, or creates it (owner-only permissions) when absent.
pub fn load_or_create_keyring(path: &Path) -> anyhow::Result<Keyring> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("keyring {}: {e}", path.display()))?;
        return Keyring::from_json(&text)
            .map_err(|e| anyhow::anyhow!("keyring {}: {e}", path.display()));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let ring = Keyring::generate()?;
    write_private(path, ring.to_json().as_bytes())?;
    tracing::info!(path = %path.display(), "created a new keyring");
    Ok(ring)
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

async fn signing_key(
    store: &dyn Store,
    keyring: &Keyring,
    name: &str,
    purpose: &str,
    alg: Alg,
    now: i64,
) -> anyhow::Result<(SigningKey, Vec<SigningKey>)> {
    if store.keys(purpose).await?.is_empty() {
        let key = SigningKey::generate(alg)?;
        let sealed = keyring.seal(name.as_bytes(), key.pkcs8())?;
        store
            .insert_key_if_absent(&KeyRow {
                name: name.into(),
                purpose: purpose.into(),
                kid: key.kid().into(),
                alg: alg.as_str().into(),
                secret: sealed,
                active: true,
                created_at: now,
            })
            .await?;
    }
    // Read back: another replica may have won the race to create the key.
    let mut active = None;
    let mut all = Vec::new();
    for row in store.keys(purpose).await? {
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
        let key = SigningKey::from_pkcs8(alg, &pkcs8)?;
        if row.active {
            active = Some(SigningKey::from_pkcs8(alg, &pkcs8)?);
        }
        all.push(key);
    }
    let active = active.ok_or_else(|| anyhow::anyhow!("no active `{purpose}` key"))?;
    Ok((active, all))
}

impl PlatformKeys {
    /// Loads the keys from the store, creating them on first start.
    pub async fn load(
        store: &dyn Store,
        keyring: Keyring,
        now: i64,
    ) -> anyhow::Result<PlatformKeys> {
        let (signing, signing_all) = signing_key(
            store,
            &keyring,
            "platform-es256-1",
            "platform",
            Alg::Es256,
            now,
        )
        .await?;
        let (ledger, ledger_all) = signing_key(
            store,
            &keyring,
            "ledger-ed25519-1",
            "ledger",
            Alg::EdDsa,
            now,
        )
        .await?;
        if store.keys("pairwise").await?.is_empty() {
            let secret = random::bytes(32)?;
            store
                .insert_key_if_absent(&KeyRow {
                    name: "pairwise-1".into(),
                    purpose: "pairwise".into(),
                    kid: "pairwise-1".into(),
                    alg: "HS256".into(),
                    secret: keyring.seal(b"pairwise-1", &secret)?,
                    active: true,
                    created_at: now,
                })
                .await?;
        }
        // Pairwise identifiers must never change, so the first pairwise secret is kept.
        let row = store
            .keys("pairwise")
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no pairwise key"))?;
        let secret = keyring
            .open(row.name.as_bytes(), &row.secret)
            .map_err(|_| anyhow::anyhow!("the pairwise key cannot be opened with this keyring"))?;
        let jwks = JwkSet {
            keys: signing_all
                .iter()
                .chain(ledger_all.iter())
                .map(SigningKey::published_jwk)
                .collect(),
        };
        Ok(PlatformKeys {
            keyring: Arc::new(keyring),
            signing,
            ledger,
            pairwise: PairwiseKey::new(&secret),
            jwks,
        })
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
