//! Rows and changes.

use tsunagu_core::identity::{AccountStatus, DeviceStatus, Level};

/// An account row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: String,
    pub level: Level,
    pub status: AccountStatus,
    /// Sealed basic items.
    pub attributes: Option<Vec<u8>>,
    pub card: Option<CardRef>,
    /// Incremented by every update.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The certificate that proofed an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRef {
    /// Keyed digest of the certificate (see `accounts.card_binding`).
    pub binding: String,
    pub issuer: Vec<u8>,
    pub serial: Vec<u8>,
    pub not_after: i64,
}

/// A device credential row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub id: String,
    pub account_id: String,
    pub jkt: String,
    pub jwk: String,
    pub status: DeviceStatus,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub expires_at: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A bearer session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub token_hash: String,
    pub account_id: String,
    pub device_id: String,
    pub expires_at: i64,
    pub created_at: i64,
}

/// A stored ledger leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRow {
    pub index: u64,
    pub hash: [u8; 32],
    /// None after retention.
    pub input: Option<Vec<u8>>,
    pub created_at: i64,
}

/// A stored signed tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SthRow {
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    pub timestamp: i64,
    pub key_id: String,
    pub signature: Vec<u8>,
}

/// A platform key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub name: String,
    pub purpose: String,
    pub kid: String,
    pub alg: String,
    pub secret: Vec<u8>,
    pub active: bool,
    pub created_at: i64,
}

/// A leaf to append, with the accounts whose history it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLeaf {
    pub input: Vec<u8>,
    /// RFC 9162 leaf hash of `input`, computed by the caller.
    pub hash: [u8; 32],
    pub subjects: Vec<String>,
    pub created_at: i64,
}

/// One mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    InsertAccount(AccountRow),
    /// Records a (re)proof: level, status, sealed attributes and the card, if the account is
    /// still at `expected_version`.
    UpdateAccountProof {
        id: String,
        expected_version: i64,
        level: Level,
        status: AccountStatus,
        attributes: Vec<u8>,
        card: CardRef,
        updated_at: i64,
    },
    /// Sets the status if it is still `from`.
    SetAccountStatus {
        id: String,
        from: AccountStatus,
        to: AccountStatus,
        updated_at: i64,
    },
    InsertDevice(DeviceRow),
    /// Revokes a device that is still active.
    RevokeDevice {
        id: String,
        at: i64,
    },
    /// Sets the failed-login counter and lock, if the counter is still `expected_failures`.
    SetLoginState {
        device_id: String,
        expected_failures: i64,
        failures: i64,
        locked_until: Option<i64>,
    },
    InsertSession(SessionRow),
    DeleteDeviceSessions {
        device_id: String,
    },
}

/// Changes and leaves applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    pub changes: Vec<Change>,
    pub leaves: Vec<NewLeaf>,
}

/// Where a commit's leaves landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Index of the commit's first leaf (equal to the next index when it has none).
    pub first_leaf: u64,
    pub leaf_count: u64,
}

/// The result of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The ledger size before the batch (leaves below it may come from other replicas).
    pub size_before: u64,
    /// The ledger size after the batch.
    pub size_after: u64,
    pub results: Vec<Result<Committed, crate::StoreError>>,
}
