//! Key rotation on a running deployment (ADR 0019), started by `tsunagu admin keys rotate`
//! and finished by every replica's `keys.refresh` job.
//!
//! - **signing** (ES256: credentials, tickets, ID tokens, console sessions): a new key is
//!   inserted published but not yet signing (`activate_at` = now + `publish_ahead_seconds`);
//!   the keys it replaces get `retire_at` = `activate_at` + the longest lifetime of anything
//!   they signed, and leave the JWKS (their rows deleted, a `keys.retired` leaf) then.
//! - **ledger** (Ed25519 tree heads): a `ledger.key_rotated` leaf names the new key; the tree
//!   head that first includes it is signed by the previous key (the handover head, recorded
//!   as the key's announcement); from `activate_at` heads are signed by the new key. An
//!   auditor's monitor follows the change through [`LedgerKeyRotation`]s.
//! - **sealing** (the keyring): a new key is added to the keyring file and made active;
//!   after `sealing_grace_seconds` (every replica has re-read the file) every sealed row is
//!   sealed again under it, each with a compare-and-set; when a scan finds no row sealed by
//!   another key, those keys are removed from the file.
//!
//! Each start and each retirement is a ledger leaf committed through the committer.

use crate::keys::{self, LEDGER, PlatformKeys, SIGNING};
use crate::ledger::{Committer, LedgerService, leaf};
use crate::{Platform, PlatformConfig, now};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tsunagu_core::AccountId;
use tsunagu_core::event::Event;
use tsunagu_crypto::aead::Keyring;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_ledger::SignedTreeHead;
use tsunagu_store::{Commit, KeyChange, KeyRow, Store, StoreError};

/// Which key to rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Sealing,
    Signing,
    Ledger,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Sealing => "sealing",
            KeyKind::Signing => "signing",
            KeyKind::Ledger => "ledger",
        }
    }
}

impl std::str::FromStr for KeyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<KeyKind, String> {
        match s {
            "sealing" => Ok(KeyKind::Sealing),
            "signing" => Ok(KeyKind::Signing),
            "ledger" => Ok(KeyKind::Ledger),
            other => Err(format!(
                "--what must be sealing, signing or ledger, not `{other}`"
            )),
        }
    }
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct Rotated {
    pub what: &'static str,
    /// The new key: a `kid`, or a keyring key's id.
    pub key: String,
    pub previous: Vec<String>,
    /// When the new key signs (a keyring key seals at once).
    pub activate_at: i64,
    /// When the previous signing keys leave the JWKS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retire_previous_at: Option<i64>,
    /// The `keys.rotation_started` or `ledger.key_rotated` leaf.
    pub leaf_index: u64,
    /// Rows sealed again (sealing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resealed: Option<u64>,
}

/// A ledger key's announcement, as recorded with the key: the leaf that names it and the
/// first tree head including that leaf, signed by the previous key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announcement {
    pub leaf_index: u64,
    pub sth: SignedTreeHead,
}

/// The ledger leaves that announce tree-head key changes (kept through retention).
pub(crate) fn announced_leaves(rows: &[tsunagu_store::KeyRow]) -> Vec<u64> {
    rows.iter()
        .filter_map(|r| Some((r, r.announcement.as_deref()?)))
        .filter_map(|(r, text)| match serde_json::from_str::<Announcement>(text) {
            Ok(a) => Some(a.leaf_index),
            Err(e) => {
                // Its leaf may lose its content to retention: say so loudly.
                tracing::error!(key = %r.name, error = %e, "a ledger key's announcement does not parse; its leaf is not kept through retention");
                None
            }
        })
        .collect()
}

/// What an auditor needs to follow a tree-head key change offline: the announcing leaf, the
/// handover head signed by the previous key and the leaf's inclusion proof in it.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerKeyRotation {
    pub leaf_index: u64,
    /// The leaf's content (`None` once retention deleted it).
    pub leaf_input: Option<Vec<u8>>,
    pub sth: SignedTreeHead,
    pub audit_path: Vec<[u8; 32]>,
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, not signing yet (before `activate_at`, or a ledger key not announced).
    Pending,
    /// Signs now.
    Current,
    /// No longer signs; still verifies (old ledger keys, for old tree heads).
    Previous,
    /// No longer signs; verifies until `retire_at`, when it leaves the JWKS.
    Retiring,
    /// The keyring key that seals.
    Active,
    /// A keyring key that only opens rows not yet sealed again.
    Old,
}

/// One key and its state, for `tsunagu admin keys status`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    pub what: &'static str,
    pub name: String,
    pub kid: String,
    pub state: KeyState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activate_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<i64>,
}

/// The longest time anything signed by the platform's signing key stays valid: device
/// credentials (`identity.credential_max_days`), tickets, ID tokens, console sessions.
pub fn longest_signed_lifetime(config: &PlatformConfig) -> i64 {
    [
        config.identity.credential_max_days.saturating_mul(86_400),
        config.exchange.ticket_ttl_seconds,
        config.oidc.id_token_seconds,
        crate::sessions::SESSION_SECONDS,
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
}

/// Accounts whose attributes are read per query in a re-seal pass.
const PAGE: u32 = 500;
/// Re-seal passes before giving up (rows keep being written with an old key).
const MAX_PASSES: usize = 5;

/// The key administration: rotations, their completion and the keys' status.
pub struct KeyAdmin {
    config: Arc<PlatformConfig>,
    store: Arc<dyn Store>,
    keys: Arc<PlatformKeys>,
    ledger: Arc<LedgerService>,
    committer: Committer,
}

/// The lease row a sealing rotation holds while it runs, and its purpose (no key reads it).
const SEALING_LEASE: &str = "sealing-rotation";
const LEASE_PURPOSE: &str = "lease";

fn next_name(prefix: &str, rows: &[KeyRow]) -> String {
    let n = rows
        .iter()
        .filter_map(|r| {
            r.name
                .strip_prefix(prefix)?
                .strip_prefix('-')?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    format!("{prefix}-{}", n + 1)
}

fn under_way(rows: &[KeyRow], now: i64) -> Option<&KeyRow> {
    rows.iter().find(|r| r.activate_at > now)
}

impl KeyAdmin {
    /// The key administration of a running platform (its jobs).
    pub fn of(platform: &Platform) -> KeyAdmin {
        KeyAdmin {
            config: platform.config.clone(),
            store: platform.store.clone(),
            keys: platform.keys.clone(),
            ledger: platform.ledger.clone(),
            committer: platform.committer.clone(),
        }
    }

    /// Opens the database and the keyring of a deployment that has run (its keys exist), as
    /// one more replica, for `tsunagu admin keys`.
    pub async fn open(config: PlatformConfig) -> anyhow::Result<KeyAdmin> {
        let config = Arc::new(config);
        let path = config.keyring_path();
        if !path.exists() {
            anyhow::bail!(
                "keyring {} does not exist (is this the configuration of a server that has run?)",
                path.display()
            );
        }
        if config.storage.database_url.is_none() && !config.storage.data_dir.exists() {
            anyhow::bail!(
                "storage.data_dir {} does not exist (is this the configuration of a server that has run?)",
                config.storage.data_dir.display()
            );
        }
        let store = tsunagu_store::open(
            config.storage.database_url.as_deref(),
            &config.storage.data_dir,
        )
        .await?;
        if store.keys(SIGNING).await?.is_empty() {
            anyhow::bail!("the database has no platform keys yet: start the server once first");
        }
        let keys = Arc::new(PlatformKeys::load_from_file(store.as_ref(), &path, now()).await?);
        let ledger = Arc::new(LedgerService::load(store.clone(), keys.clone()).await?);
        let committer = Committer::start(store.clone(), ledger.clone());
        Ok(KeyAdmin {
            config,
            store,
            keys,
            ledger,
            committer,
        })
    }

    /// Starts a rotation (sealing runs to its end: the re-seal and the old keys' removal).
    pub async fn rotate(
        &self,
        what: KeyKind,
        progress: &(dyn Fn(String) + Sync),
    ) -> anyhow::Result<Rotated> {
        match what {
            KeyKind::Signing => self.rotate_signing(now()).await,
            KeyKind::Ledger => self.rotate_ledger(now()).await,
            KeyKind::Sealing => self.rotate_sealing(progress).await,
        }
    }

    /// A new signing key, published now and signing after `publish_ahead_seconds`.
    pub async fn rotate_signing(&self, now: i64) -> anyhow::Result<Rotated> {
        let rows = self.store.keys(SIGNING).await?;
        if let Some(r) = under_way(&rows, now) {
            anyhow::bail!(
                "a signing key rotation is under way: {} signs from {}",
                r.kid,
                crate::iso8601(r.activate_at)
            );
        }
        let key = SigningKey::generate(Alg::Es256)?;
        let activate_at = now + self.config.keys.publish_ahead_seconds;
        let retire_at = activate_at + longest_signed_lifetime(&self.config);
        let name = next_name("platform-es256", &rows);
        let keyring = self.keys.keyring();
        let row = keys::new_key_row(&keyring, &name, SIGNING, &key, now, activate_at)?;
        let previous: Vec<&KeyRow> = rows.iter().filter(|r| r.retire_at.is_none()).collect();
        let mut commit = Commit::new().change(KeyChange::Insert(row));
        for p in &previous {
            commit.push(KeyChange::SetRetireAt {
                name: p.name.clone(),
                retire_at,
            });
        }
        let event = Event::KeyRotationStarted {
            what: KeyKind::Signing.as_str().into(),
            key: key.kid().into(),
            previous: previous.iter().map(|r| r.kid.clone()).collect(),
            activate_at,
            retire_previous_at: Some(retire_at),
        };
        let committed = self
            .committer
            .commit(commit.leaf(leaf(&event, &[], now)))
            .await?;
        self.keys.refresh(self.store.as_ref()).await?;
        Ok(Rotated {
            what: KeyKind::Signing.as_str(),
            key: key.kid().into(),
            previous: previous.iter().map(|r| r.kid.clone()).collect(),
            activate_at,
            retire_previous_at: Some(retire_at),
            leaf_index: committed.first_leaf,
            resealed: None,
        })
    }

    /// A new tree-head key, announced by a leaf in a head signed by the current key.
    pub async fn rotate_ledger(&self, now: i64) -> anyhow::Result<Rotated> {
        let rows = self.store.keys(LEDGER).await?;
        if let Some(r) = under_way(&rows, now) {
            anyhow::bail!(
                "a ledger key rotation is under way: {} signs from {}",
                r.kid,
                crate::iso8601(r.activate_at)
            );
        }
        if let Some(r) = rows.iter().skip(1).find(|r| r.announcement.is_none()) {
            anyhow::bail!(
                "ledger key {} was never announced (an interrupted rotation); it will never sign, rotate again after removing its row `{}`",
                r.kid,
                r.name
            );
        }
        let previous = self.keys.ledger_at(now);
        let key = SigningKey::generate(Alg::EdDsa)?;
        let activate_at = now + self.config.keys.publish_ahead_seconds;
        let name = next_name("ledger-ed25519", &rows);
        let keyring = self.keys.keyring();
        let row = keys::new_key_row(&keyring, &name, LEDGER, &key, now, activate_at)?;
        let event = Event::LedgerKeyRotated {
            kid: key.kid().into(),
            jwk: key.public_jwk().to_value(),
            previous_kid: previous.kid().into(),
            activate_at,
        };
        let committed = self
            .committer
            .commit(
                Commit::new()
                    .change(KeyChange::Insert(row))
                    .leaf(leaf(&event, &[], now)),
            )
            .await?;
        // The handover head: the first head that includes the leaf, signed by the previous
        // key (the new one has no announcement yet, so it cannot sign).
        let sth = self.ledger.sth(now).await?;
        if sth.key_id != previous.kid() || sth.tree_size <= committed.first_leaf {
            anyhow::bail!(
                "the handover tree head (size {}, key {}) does not cover the announcement",
                sth.tree_size,
                sth.key_id
            );
        }
        let announcement = serde_json::to_string(&Announcement {
            leaf_index: committed.first_leaf,
            sth,
        })?;
        self.store
            .set_key_announcement(&name, &announcement)
            .await?;
        self.keys.refresh(self.store.as_ref()).await?;
        Ok(Rotated {
            what: KeyKind::Ledger.as_str(),
            key: key.kid().into(),
            previous: vec![previous.kid().into()],
            activate_at,
            retire_previous_at: None,
            leaf_index: committed.first_leaf,
            resealed: None,
        })
    }

    /// A new keyring key: written to the keyring file, every sealed row moved to it, the old
    /// keys removed. One at a time across the deployment: a lease row (`platform_keys`
    /// `sealing-rotation`) is taken first and released when the command ends; two rotations
    /// at once would each write a key with the same id and different bytes, and rows sealed
    /// under the losing one could never be opened again.
    pub async fn rotate_sealing(
        &self,
        progress: &(dyn Fn(String) + Sync),
    ) -> anyhow::Result<Rotated> {
        let started = now();
        let lease = KeyRow {
            name: SEALING_LEASE.into(),
            purpose: LEASE_PURPOSE.into(),
            kid: format!("started {}", crate::iso8601(started)),
            alg: "none".into(),
            // Holds nothing: the row is only a lock (and is not sealed again).
            secret: Vec::new(),
            active: false,
            created_at: started,
            activate_at: started,
            retire_at: Some(started),
            announcement: None,
        };
        if !self.store.insert_key_if_absent(&lease).await? {
            let holder = self
                .store
                .keys(LEASE_PURPOSE)
                .await?
                .into_iter()
                .find(|r| r.name == SEALING_LEASE)
                .map(|r| r.kid)
                .unwrap_or_default();
            anyhow::bail!(
                "a sealing rotation is under way ({holder}); wait for it to end. If its command \
                 was interrupted, check that its keyring file is the one every replica reads, \
                 then delete the row `{SEALING_LEASE}` from platform_keys and rotate again"
            );
        }
        let outcome = self.rotate_sealing_leased(started, progress).await;
        let release = Commit::new().change(KeyChange::DeleteRetired {
            name: SEALING_LEASE.into(),
            now: now(),
        });
        if let Err(e) = self.committer.commit(release).await {
            tracing::error!(error = %e, "the sealing rotation lease was not released");
        }
        outcome
    }

    async fn rotate_sealing_leased(
        &self,
        started: i64,
        progress: &(dyn Fn(String) + Sync),
    ) -> anyhow::Result<Rotated> {
        let path = self.config.keyring_path();
        let (mut ring, _) = keys::read_keyring(&path)?;
        let previous = ring.key_ids();
        let new_id = ring.rotate()?;
        keys::write_keyring(&path, &ring)?;
        let (_, written) = keys::read_keyring(&path)?;
        let event = Event::KeyRotationStarted {
            what: KeyKind::Sealing.as_str().into(),
            key: new_id.to_string(),
            previous: previous.iter().map(u32::to_string).collect(),
            activate_at: started,
            retire_previous_at: None,
        };
        let committed = self
            .committer
            .commit(Commit::new().leaf(leaf(&event, &[], started)))
            .await?;
        self.keys.refresh(self.store.as_ref()).await?;
        let grace = self.config.keys.sealing_grace_seconds;
        progress(format!(
            "keyring key {new_id} written to {}; waiting {grace} s for every replica to read it",
            path.display()
        ));
        tokio::time::sleep(Duration::from_secs(grace)).await;
        let resealed = self.reseal_all(&ring, progress).await?;
        // Nobody else may have changed the file meanwhile: its keys are about to go.
        let (_, now_there) = keys::read_keyring(&path)?;
        if *now_there != *written {
            anyhow::bail!(
                "keyring {} changed while the rows were sealed again; the old keys stay in it — \
                 compare it with the file every replica reads before rotating again",
                path.display()
            );
        }
        for id in &previous {
            ring.remove(*id)?;
        }
        keys::write_keyring(&path, &ring)?;
        let retired = previous
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let event = Event::KeyRetired {
            what: KeyKind::Sealing.as_str().into(),
            key: retired,
            resealed: Some(resealed),
        };
        let at = now();
        self.committer
            .commit(Commit::new().leaf(leaf(&event, &[], at)))
            .await?;
        self.keys.refresh(self.store.as_ref()).await?;
        progress(format!(
            "{resealed} rows sealed again; keyring keys {previous:?} removed"
        ));
        Ok(Rotated {
            what: KeyKind::Sealing.as_str(),
            key: new_id.to_string(),
            previous: previous.iter().map(u32::to_string).collect(),
            activate_at: started,
            retire_previous_at: None,
            leaf_index: committed.first_leaf,
            resealed: Some(resealed),
        })
    }

    /// Seals every sealed row under `ring`'s active key, pass after pass, until a pass finds
    /// no row sealed by another key. Returns the rows moved.
    async fn reseal_all(
        &self,
        ring: &Keyring,
        progress: &(dyn Fn(String) + Sync),
    ) -> anyhow::Result<u64> {
        let mut total = 0;
        for pass in 1..=MAX_PASSES {
            let (moved, left) = self.reseal_pass(ring).await?;
            total += moved;
            progress(format!("pass {pass}: {moved} rows sealed again"));
            if left == 0 && moved == 0 {
                return Ok(total);
            }
        }
        anyhow::bail!(
            "rows are still being sealed with an old key after {MAX_PASSES} passes (a replica that does not read the keyring file?); the old keys stay in the file"
        )
    }

    /// One pass: returns rows moved and rows found under an old key but changed meanwhile.
    async fn reseal_pass(&self, ring: &Keyring) -> anyhow::Result<(u64, u64)> {
        let active = ring.active_key_id();
        let stale = |blob: &[u8]| Keyring::key_id_of(blob) != Some(active);
        let (mut moved, mut left) = (0, 0);
        let mut after: Option<AccountId> = None;
        loop {
            let page = self.store.sealed_attributes(after.as_ref(), PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (id, sealed) in page.iter().filter(|(_, s)| stale(s)) {
                let aad = format!("account:{id}");
                let plain = ring.open(aad.as_bytes(), sealed).map_err(|_| {
                    anyhow::anyhow!(
                        "the attributes of account {id} cannot be opened with the keyring"
                    )
                })?;
                let again = ring.seal(aad.as_bytes(), &plain)?;
                if self.store.reseal_attributes(id, sealed, &again).await? {
                    moved += 1;
                } else {
                    left += 1;
                }
            }
        }
        for row in self.store.all_keys().await? {
            if row.purpose == LEASE_PURPOSE || !stale(&row.secret) {
                continue;
            }
            let plain = ring.open(row.name.as_bytes(), &row.secret).map_err(|_| {
                anyhow::anyhow!(
                    "platform key `{}` cannot be opened with the keyring",
                    row.name
                )
            })?;
            let again = ring.seal(row.name.as_bytes(), &plain)?;
            if self
                .store
                .reseal_key(&row.name, &row.secret, &again)
                .await?
            {
                moved += 1;
            } else {
                left += 1;
            }
        }
        Ok((moved, left))
    }

    /// Deletes the signing keys whose `retire_at` has passed, each with a `keys.retired`
    /// leaf (one replica wins; the others' commits are refused and ignored). Returns how many.
    pub async fn retire_due(&self, now: i64) -> anyhow::Result<u64> {
        let mut retired = 0;
        for row in self.store.keys(SIGNING).await? {
            if row.retire_at.is_none_or(|t| t > now) {
                continue;
            }
            let event = Event::KeyRetired {
                what: KeyKind::Signing.as_str().into(),
                key: row.kid.clone(),
                resealed: None,
            };
            let commit = Commit::new()
                .change(KeyChange::DeleteRetired {
                    name: row.name.clone(),
                    now,
                })
                .leaf(leaf(&event, &[], now));
            match self.committer.commit(commit).await {
                Ok(_) => retired += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if retired > 0 {
            self.keys.refresh(self.store.as_ref()).await?;
        }
        Ok(retired)
    }

    /// Every key and its state at `now`.
    pub async fn status(&self, now: i64) -> anyhow::Result<Vec<KeyStatus>> {
        self.keys.refresh(self.store.as_ref()).await?;
        let mut out = Vec::new();
        for (what, purpose) in [("signing", SIGNING), ("ledger", LEDGER)] {
            let current = if purpose == SIGNING {
                self.keys.signing_at(now)
            } else {
                self.keys.ledger_at(now)
            };
            for (name, kid, activate_at, retire_at, announced) in self.keys.timed(purpose) {
                let state = if kid == current.kid() {
                    KeyState::Current
                } else if activate_at > now || !announced {
                    KeyState::Pending
                } else if retire_at.is_some() {
                    KeyState::Retiring
                } else {
                    KeyState::Previous
                };
                out.push(KeyStatus {
                    what,
                    name,
                    kid,
                    state,
                    activate_at: Some(activate_at),
                    retire_at,
                });
            }
        }
        let ring = self.keys.keyring();
        for id in ring.key_ids() {
            out.push(KeyStatus {
                what: "sealing",
                name: format!("keyring-{id}"),
                kid: id.to_string(),
                state: if id == ring.active_key_id() {
                    KeyState::Active
                } else {
                    KeyState::Old
                },
                activate_at: None,
                retire_at: None,
            });
        }
        Ok(out)
    }
}

impl Platform {
    /// Re-reads the keys and the keyring file, and retires the signing keys whose time has
    /// come (the `keys.refresh` job). Returns the keys retired.
    pub async fn refresh_keys(&self) -> anyhow::Result<u64> {
        self.keys.refresh(self.store.as_ref()).await?;
        KeyAdmin::of(self).retire_due(now()).await
    }

    /// The tree-head key changes, oldest first, each with its proof (`GET
    /// /v1/ledger/key-rotations`).
    pub async fn ledger_key_rotations(&self) -> crate::Outcome<Vec<LedgerKeyRotation>> {
        let mut out = Vec::new();
        for row in self.store.keys(LEDGER).await? {
            let Some(text) = &row.announcement else {
                continue;
            };
            let a: Announcement = serde_json::from_str(text)
                .map_err(|e| crate::Refusal::internal("a ledger key's announcement", e))?;
            let leaf_input = self
                .store
                .leaves(a.leaf_index, a.leaf_index + 1)
                .await?
                .into_iter()
                .next()
                .and_then(|l| l.input);
            let (_, audit_path) = self.ledger.inclusion(a.leaf_index, a.sth.tree_size).await?;
            out.push(LedgerKeyRotation {
                leaf_index: a.leaf_index,
                leaf_input,
                sth: a.sth,
                audit_path,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_to_rotate_is_named_or_refused_readably() {
        assert_eq!("ledger".parse::<KeyKind>(), Ok(KeyKind::Ledger));
        assert_eq!(
            "keys".parse::<KeyKind>().unwrap_err(),
            "--what must be sealing, signing or ledger, not `keys`"
        );
    }

    #[test]
    fn key_names_count_on_from_the_highest() {
        let row = |name: &str| KeyRow {
            name: name.into(),
            purpose: "platform".into(),
            kid: "k".into(),
            alg: "ES256".into(),
            secret: vec![],
            active: true,
            created_at: 0,
            activate_at: 0,
            retire_at: None,
            announcement: None,
        };
        assert_eq!(next_name("platform-es256", &[]), "platform-es256-1");
        assert_eq!(
            next_name(
                "platform-es256",
                &[
                    row("platform-es256-1"),
                    row("platform-es256-7"),
                    row("other-9")
                ]
            ),
            "platform-es256-8"
        );
    }

    #[test]
    fn the_old_signing_key_outlives_everything_it_signed() {
        let config = PlatformConfig::default();
        assert_eq!(
            longest_signed_lifetime(&config),
            config.identity.credential_max_days * 86_400,
            "device credentials live longest by default"
        );
    }
}
