//! Accounts, device credentials, bearer sessions and single-use nonces.

use crate::commit::Change;
use crate::sql::{BulkTable, ColumnType, Conn, Param, Row, RowReader, expect_one};
use crate::{IdentityStore, NonceStore, Result, SessionStore, SqlStore, StoreError, params};
use async_trait::async_trait;
use tsunagu_core::identity::{AccountStatus, DeviceStatus, Level, Restriction};
use tsunagu_core::{AccountId, DeviceId};

/// An account row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: AccountId,
    pub level: Level,
    pub status: AccountStatus,
    /// Sealed basic items.
    pub attributes: Option<Vec<u8>>,
    pub card: Option<CardRef>,
    /// Incremented by every update.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// What the resident asked the platform to stop.
    pub restriction: Restriction,
    /// When the account was erased at the resident's request.
    pub erased_at: Option<i64>,
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
    pub id: DeviceId,
    pub account_id: AccountId,
    pub jkt: String,
    pub jwk: String,
    pub status: DeviceStatus,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub expires_at: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// The WebAuthn credential that gates this device's key (issue 9, defect 6): with one,
    /// every login needs an assertion in which the authenticator verified the user.
    pub uv: Option<UvCredential>,
}

/// A device's WebAuthn platform credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UvCredential {
    /// The credential ID, base64url.
    pub credential_id: String,
    /// The credential's ES256 public key as a JWK (JSON text).
    pub public_key: String,
    /// The last signature counter seen (0 for authenticators that keep none).
    pub sign_count: i64,
}

/// A bearer session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub token_hash: String,
    pub account_id: AccountId,
    pub device_id: DeviceId,
    pub expires_at: i64,
    pub created_at: i64,
}

/// A change to accounts, devices, sessions or nonces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityChange {
    InsertAccount(AccountRow),
    /// Records a (re)proof: level, status, sealed attributes and the card, if the account is
    /// still at `expected_version`.
    UpdateAccountProof {
        id: AccountId,
        expected_version: i64,
        level: Level,
        status: AccountStatus,
        attributes: Vec<u8>,
        card: CardRef,
        updated_at: i64,
    },
    /// Sets the status if it is still `from`.
    SetAccountStatus {
        id: AccountId,
        from: AccountStatus,
        to: AccountStatus,
        updated_at: i64,
    },
    /// Sets what the resident asked the platform to stop, if it is still `from` and the
    /// account is not erased.
    SetRestriction {
        id: AccountId,
        from: Restriction,
        to: Restriction,
        updated_at: i64,
    },
    /// Erases an account at the resident's request (SPEC §9): its sealed attributes and card
    /// reference, its devices' keys and WebAuthn credentials (the devices are revoked), its
    /// sessions, and its OpenID Connect grants with their codes and tokens. The account row
    /// stays, marked erased, so that its ledger leaves and requests keep an owner. Refused
    /// (a conflict) when it is already erased.
    EraseAccount {
        id: AccountId,
        at: i64,
    },
    InsertDevice(DeviceRow),
    /// Revokes a device that is still active.
    RevokeDevice {
        id: DeviceId,
        at: i64,
    },
    /// Locks the device until `locked_until`, unless it is already locked longer.
    ExtendLock {
        device_id: DeviceId,
        locked_until: i64,
    },
    /// Sets the failed-login counter and lock, if the counter is still `expected_failures`.
    SetLoginState {
        device_id: DeviceId,
        expected_failures: i64,
        failures: i64,
        locked_until: Option<i64>,
    },
    /// Records a WebAuthn assertion's signature counter, if it is still `expected`.
    SetUvSignCount {
        device_id: DeviceId,
        expected: i64,
        count: i64,
    },
    InsertSession(SessionRow),
    DeleteDeviceSessions {
        device_id: DeviceId,
    },
    /// Deletes one session (a logout); nothing happens if it is already gone.
    DeleteSession {
        token_hash: String,
    },
    /// Uses a client assertion's (or DPoP proof's) `jti` once: refused as a conflict on
    /// replay. Written in bulk by the group commit.
    UseJti {
        key: String,
        expires_at: i64,
    },
}

macro_rules! account_columns {
    () => {
        "id, level, status, attributes, card_binding, card_issuer, card_serial, card_not_after, version, created_at, updated_at, restriction, erased_at"
    };
}

macro_rules! device_columns {
    () => {
        "id, account_id, jkt, jwk, status, failed_logins, locked_until, expires_at, created_at, revoked_at, uv_credential_id, uv_public_key, uv_sign_count"
    };
}

const SQL_ACCOUNT_BY_ID: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE id = $1"
);
const SQL_ACCOUNT_BY_CARD: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE card_binding = $1"
);
const SQL_ACCOUNTS_WITH_CARD: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE card_serial = $1 AND card_issuer = $2"
);
const SQL_DEVICE_BY_ID: &str = concat!("SELECT ", device_columns!(), " FROM devices WHERE id = $1");
const SQL_DEVICE_BY_JKT: &str =
    concat!("SELECT ", device_columns!(), " FROM devices WHERE jkt = $1");
const SQL_DEVICES_OF: &str = concat!(
    "SELECT ",
    device_columns!(),
    " FROM devices WHERE account_id = $1 ORDER BY created_at, id"
);
const SQL_INSERT_ACCOUNT: &str = concat!(
    "INSERT INTO accounts (",
    account_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
);
const SQL_UPDATE_ACCOUNT_PROOF: &str = "UPDATE accounts SET level = $1, status = $2, attributes = $3, card_binding = $4, card_issuer = $5, card_serial = $6, card_not_after = $7, version = version + 1, updated_at = $8 WHERE id = $9 AND version = $10";
const SQL_SET_RESTRICTION: &str = "UPDATE accounts SET restriction = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND restriction = $4 AND erased_at IS NULL";
const SQL_ERASE_ACCOUNT: &str = "UPDATE accounts SET attributes = NULL, card_binding = NULL, card_issuer = NULL, card_serial = NULL, card_not_after = NULL, restriction = 'none', erased_at = $1, version = version + 1, updated_at = $1 WHERE id = $2 AND erased_at IS NULL";
// The key's thumbprint goes too (it identifies the device's key for good); the unique
// column takes a value that names only the row.
const SQL_ERASE_DEVICES: &str = "UPDATE devices SET status = 'revoked', revoked_at = COALESCE(revoked_at, $1), jkt = 'erased:' || id, jwk = '{}', uv_credential_id = NULL, uv_public_key = NULL WHERE account_id = $2";
const SQL_ERASE_SESSIONS: &str = "DELETE FROM sessions WHERE account_id = $1";
const SQL_ERASE_OAUTH_TOKENS: &str = "DELETE FROM oauth_tokens WHERE grant_id IN (SELECT id FROM oauth_grants WHERE account_id = $1)";
const SQL_ERASE_OAUTH_CODES: &str =
    "DELETE FROM oauth_codes WHERE grant_id IN (SELECT id FROM oauth_grants WHERE account_id = $1)";
const SQL_ERASE_OAUTH_GRANTS: &str = "DELETE FROM oauth_grants WHERE account_id = $1";
const SQL_SET_ACCOUNT_STATUS: &str = "UPDATE accounts SET status = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND status = $4";
const SQL_INSERT_DEVICE: &str = concat!(
    "INSERT INTO devices (",
    device_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
);
const SQL_SET_UV_SIGN_COUNT: &str =
    "UPDATE devices SET uv_sign_count = $1 WHERE id = $2 AND uv_sign_count = $3";
const SQL_REVOKE_DEVICE: &str =
    "UPDATE devices SET status = 'revoked', revoked_at = $1 WHERE id = $2 AND status = 'active'";
const SQL_SET_LOGIN_STATE: &str =
    "UPDATE devices SET failed_logins = $1, locked_until = $2 WHERE id = $3 AND failed_logins = $4";
const SQL_COUNT_LOGIN_FAILURE: &str =
    "UPDATE devices SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins";
const SQL_EXTEND_LOCK: &str = "UPDATE devices SET locked_until = $1 WHERE id = $2 AND (locked_until IS NULL OR locked_until < $1)";
const SQL_INSERT_SESSION: &str = "INSERT INTO sessions (token_hash, account_id, device_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)";
const SQL_DELETE_DEVICE_SESSIONS: &str = "DELETE FROM sessions WHERE device_id = $1";
const SQL_DELETE_SESSION: &str = "DELETE FROM sessions WHERE token_hash = $1";
const SQL_SESSION: &str = "SELECT token_hash, account_id, device_id, expires_at, created_at FROM sessions WHERE token_hash = $1";
const SQL_PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at <= $1";
const SQL_PUT_NONCE: &str = "INSERT INTO nonces (nonce, purpose, expires_at) VALUES ($1, $2, $3)";
const SQL_TAKE_NONCE: &str =
    "DELETE FROM nonces WHERE nonce = $1 AND purpose = $2 RETURNING expires_at";
const SQL_NONCE_EXPIRY: &str = "SELECT expires_at FROM nonces WHERE nonce = $1 AND purpose = $2";
const SQL_PURGE_NONCES: &str = "DELETE FROM nonces WHERE expires_at <= $1";

/// Used client-assertion `jti`s live among the nonces, with purpose `jti`.
pub(crate) const JTI_TABLE: BulkTable = BulkTable {
    table: "nonces",
    columns: &[
        ("nonce", ColumnType::Text),
        ("purpose", ColumnType::Text),
        ("expires_at", ColumnType::Int),
    ],
    tail: "",
};

fn account_row(r: &mut RowReader) -> Result<AccountRow> {
    let id = r.id()?;
    let level = r.parsed("account level", Level::parse)?;
    let status = r.parsed("account status", AccountStatus::parse)?;
    let attributes = r.opt_bytes()?;
    let binding = r.opt_text()?;
    let issuer = r.opt_bytes()?;
    let serial = r.opt_bytes()?;
    let not_after = r.opt_int()?;
    let card = match binding {
        Some(binding) => Some(CardRef {
            binding,
            issuer: issuer.ok_or_else(|| StoreError::Corrupt("card_issuer".into()))?,
            serial: serial.ok_or_else(|| StoreError::Corrupt("card_serial".into()))?,
            not_after: not_after.ok_or_else(|| StoreError::Corrupt("card_not_after".into()))?,
        }),
        None => None,
    };
    Ok(AccountRow {
        id,
        level,
        status,
        attributes,
        card,
        version: r.int()?,
        created_at: r.int()?,
        updated_at: r.int()?,
        restriction: r.parsed("account restriction", Restriction::parse)?,
        erased_at: r.opt_int()?,
    })
}

fn device_row(r: &mut RowReader) -> Result<DeviceRow> {
    Ok(DeviceRow {
        id: r.id()?,
        account_id: r.id()?,
        jkt: r.text()?,
        jwk: r.text()?,
        status: r.parsed("device status", DeviceStatus::parse)?,
        failed_logins: r.int()?,
        locked_until: r.opt_int()?,
        expires_at: r.int()?,
        created_at: r.int()?,
        revoked_at: r.opt_int()?,
        uv: {
            let id = r.opt_text()?;
            let key = r.opt_text()?;
            let count = r.int()?;
            match (id, key) {
                (Some(credential_id), Some(public_key)) => Some(UvCredential {
                    credential_id,
                    public_key,
                    sign_count: count,
                }),
                (None, None) => None,
                _ => {
                    return Err(StoreError::Corrupt(
                        "uv_credential_id / uv_public_key".into(),
                    ));
                }
            }
        },
    })
}

fn session_row(r: &mut RowReader) -> Result<SessionRow> {
    Ok(SessionRow {
        token_hash: r.text()?,
        account_id: r.id()?,
        device_id: r.id()?,
        expires_at: r.int()?,
        created_at: r.int()?,
    })
}

/// Maps every row with `f`.
pub(crate) fn all<T>(rows: Vec<Row>, f: fn(&mut RowReader) -> Result<T>) -> Result<Vec<T>> {
    rows.into_iter().map(|row| f(&mut row.reader())).collect()
}

/// Maps the row, if any, with `f`.
pub(crate) fn one<T>(row: Option<Row>, f: fn(&mut RowReader) -> Result<T>) -> Result<Option<T>> {
    row.map(|row| f(&mut row.reader())).transpose()
}

impl Change for IdentityChange {
    fn apply(&self, conn: &mut dyn Conn) -> Result<()> {
        match self {
            IdentityChange::InsertAccount(a) => {
                let card = a.card.as_ref();
                let n = conn.execute(
                    SQL_INSERT_ACCOUNT,
                    &params![
                        &a.id,
                        a.level.as_str(),
                        a.status.as_str(),
                        &a.attributes,
                        card.map(|c| c.binding.as_str()),
                        card.map(|c| c.issuer.as_slice()),
                        card.map(|c| c.serial.as_slice()),
                        card.map(|c| c.not_after),
                        a.version,
                        a.created_at,
                        a.updated_at,
                        a.restriction.as_str(),
                        a.erased_at,
                    ],
                )?;
                expect_one(n, "insert account")
            }
            IdentityChange::UpdateAccountProof {
                id,
                expected_version,
                level,
                status,
                attributes,
                card,
                updated_at,
            } => {
                let n = conn.execute(
                    SQL_UPDATE_ACCOUNT_PROOF,
                    &params![
                        level.as_str(),
                        status.as_str(),
                        attributes,
                        &card.binding,
                        &card.issuer,
                        &card.serial,
                        card.not_after,
                        *updated_at,
                        id,
                        *expected_version,
                    ],
                )?;
                expect_one(n, "update account proof")
            }
            IdentityChange::SetAccountStatus {
                id,
                from,
                to,
                updated_at,
            } => {
                let n = conn.execute(
                    SQL_SET_ACCOUNT_STATUS,
                    &params![to.as_str(), *updated_at, id, from.as_str()],
                )?;
                expect_one(n, "set account status")
            }
            IdentityChange::SetRestriction {
                id,
                from,
                to,
                updated_at,
            } => {
                let n = conn.execute(
                    SQL_SET_RESTRICTION,
                    &params![to.as_str(), *updated_at, id, from.as_str()],
                )?;
                expect_one(n, "set restriction")
            }
            IdentityChange::EraseAccount { id, at } => {
                let n = conn.execute(SQL_ERASE_ACCOUNT, &params![*at, id])?;
                expect_one(n, "erase account")?;
                conn.execute(SQL_ERASE_DEVICES, &params![*at, id])?;
                conn.execute(SQL_ERASE_SESSIONS, &params![id])?;
                conn.execute(SQL_ERASE_OAUTH_TOKENS, &params![id])?;
                conn.execute(SQL_ERASE_OAUTH_CODES, &params![id])?;
                conn.execute(SQL_ERASE_OAUTH_GRANTS, &params![id])?;
                Ok(())
            }
            IdentityChange::InsertDevice(d) => {
                let n = conn.execute(
                    SQL_INSERT_DEVICE,
                    &params![
                        &d.id,
                        &d.account_id,
                        &d.jkt,
                        &d.jwk,
                        d.status.as_str(),
                        d.failed_logins,
                        d.locked_until,
                        d.expires_at,
                        d.created_at,
                        d.revoked_at,
                        d.uv.as_ref().map(|u| u.credential_id.as_str()),
                        d.uv.as_ref().map(|u| u.public_key.as_str()),
                        d.uv.as_ref().map_or(0, |u| u.sign_count),
                    ],
                )?;
                expect_one(n, "insert device")
            }
            IdentityChange::SetUvSignCount {
                device_id,
                expected,
                count,
            } => {
                let n = conn.execute(
                    SQL_SET_UV_SIGN_COUNT,
                    &params![*count, device_id, *expected],
                )?;
                expect_one(n, "set the WebAuthn signature counter")
            }
            IdentityChange::RevokeDevice { id, at } => {
                let n = conn.execute(SQL_REVOKE_DEVICE, &params![*at, id])?;
                expect_one(n, "revoke device")
            }
            IdentityChange::ExtendLock {
                device_id,
                locked_until,
            } => {
                // No row changed means a longer lock is already in place: nothing to do.
                conn.execute(SQL_EXTEND_LOCK, &params![*locked_until, device_id])?;
                Ok(())
            }
            IdentityChange::SetLoginState {
                device_id,
                expected_failures,
                failures,
                locked_until,
            } => {
                let n = conn.execute(
                    SQL_SET_LOGIN_STATE,
                    &params![*failures, *locked_until, device_id, *expected_failures],
                )?;
                expect_one(n, "set login state")
            }
            IdentityChange::InsertSession(s) => {
                let n = conn.execute(
                    SQL_INSERT_SESSION,
                    &params![
                        &s.token_hash,
                        &s.account_id,
                        &s.device_id,
                        s.expires_at,
                        s.created_at
                    ],
                )?;
                expect_one(n, "insert session")
            }
            IdentityChange::DeleteDeviceSessions { device_id } => {
                conn.execute(SQL_DELETE_DEVICE_SESSIONS, &params![device_id])?;
                Ok(())
            }
            IdentityChange::DeleteSession { token_hash } => {
                conn.execute(SQL_DELETE_SESSION, &params![token_hash])?;
                Ok(())
            }
            IdentityChange::UseJti { key, expires_at } => {
                let n = conn.execute(SQL_PUT_NONCE, &params![key, "jti", *expires_at])?;
                expect_one(n, "use jti (replayed assertion)")
            }
        }
    }

    fn bulk(&self) -> Option<(&'static BulkTable, Vec<Param<'_>>)> {
        match self {
            IdentityChange::UseJti { key, expires_at } => {
                Some((&JTI_TABLE, params![key, "jti", *expires_at].to_vec()))
            }
            _ => None,
        }
    }
}

#[async_trait]
impl IdentityStore for SqlStore {
    async fn account(&self, id: &AccountId) -> Result<Option<AccountRow>> {
        let id = id.clone();
        self.db
            .read(move |c| one(c.query_opt(SQL_ACCOUNT_BY_ID, &params![&id])?, account_row))
            .await
    }

    async fn account_by_card(&self, binding: &str) -> Result<Option<AccountRow>> {
        let binding = binding.to_owned();
        self.db
            .read(move |c| {
                one(
                    c.query_opt(SQL_ACCOUNT_BY_CARD, &params![&binding])?,
                    account_row,
                )
            })
            .await
    }

    async fn accounts_with_card(&self, issuer: &[u8], serial: &[u8]) -> Result<Vec<AccountRow>> {
        let (issuer, serial) = (issuer.to_vec(), serial.to_vec());
        self.db
            .read(move |c| {
                all(
                    c.query(SQL_ACCOUNTS_WITH_CARD, &params![&serial, &issuer])?,
                    account_row,
                )
            })
            .await
    }

    async fn device(&self, id: &DeviceId) -> Result<Option<DeviceRow>> {
        let id = id.clone();
        self.db
            .read(move |c| one(c.query_opt(SQL_DEVICE_BY_ID, &params![&id])?, device_row))
            .await
    }

    async fn device_by_jkt(&self, jkt: &str) -> Result<Option<DeviceRow>> {
        let jkt = jkt.to_owned();
        self.db
            .read(move |c| one(c.query_opt(SQL_DEVICE_BY_JKT, &params![&jkt])?, device_row))
            .await
    }

    async fn devices_of(&self, account_id: &AccountId) -> Result<Vec<DeviceRow>> {
        let account_id = account_id.clone();
        self.db
            .read(move |c| all(c.query(SQL_DEVICES_OF, &params![&account_id])?, device_row))
            .await
    }

    async fn count_accounts(&self) -> Result<u64> {
        self.db
            .read(|c| {
                let n = c.query_int("SELECT COUNT(*) FROM accounts", &[])?;
                u64::try_from(n).map_err(|_| StoreError::Corrupt("negative count".into()))
            })
            .await
    }
}

#[async_trait]
impl NonceStore for SqlStore {
    async fn put_nonce(&self, nonce: &str, purpose: &str, expires_at: i64) -> Result<()> {
        let (nonce, purpose) = (nonce.to_owned(), purpose.to_owned());
        self.db
            .write(move |c| {
                c.execute(SQL_PUT_NONCE, &params![&nonce, &purpose, expires_at])?;
                Ok(())
            })
            .await
    }

    async fn take_nonce(&self, nonce: &str, purpose: &str, now: i64) -> Result<bool> {
        let (nonce, purpose) = (nonce.to_owned(), purpose.to_owned());
        // Deleting is the consumption: of concurrent takers, one deletes the row.
        self.db
            .write(
                move |c| match c.query_opt(SQL_TAKE_NONCE, &params![&nonce, &purpose])? {
                    Some(row) => Ok(row.reader().int()? > now),
                    None => Ok(false),
                },
            )
            .await
    }

    async fn nonce_live(&self, nonce: &str, purpose: &str, now: i64) -> Result<bool> {
        let (nonce, purpose) = (nonce.to_owned(), purpose.to_owned());
        self.db
            .read(
                move |c| match c.query_opt(SQL_NONCE_EXPIRY, &params![&nonce, &purpose])? {
                    Some(row) => Ok(row.reader().int()? > now),
                    None => Ok(false),
                },
            )
            .await
    }

    async fn count_login_failure(&self, device_id: &DeviceId) -> Result<Option<i64>> {
        let id = device_id.clone();
        self.db
            .write(
                move |c| match c.query_opt(SQL_COUNT_LOGIN_FAILURE, &params![&id])? {
                    Some(row) => Ok(Some(row.reader().int()?)),
                    None => Ok(None),
                },
            )
            .await
    }

    async fn purge_nonces(&self, now: i64) -> Result<u64> {
        self.db
            .write(move |c| c.execute(SQL_PURGE_NONCES, &params![now]))
            .await
    }
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>> {
        let token_hash = token_hash.to_owned();
        self.db
            .read(move |c| {
                one(
                    c.query_opt(SQL_SESSION, &params![&token_hash])?,
                    session_row,
                )
            })
            .await
    }

    async fn purge_sessions(&self, now: i64) -> Result<u64> {
        self.db
            .write(move |c| c.execute(SQL_PURGE_SESSIONS, &params![now]))
            .await
    }
}
