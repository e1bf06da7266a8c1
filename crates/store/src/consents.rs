//! Consents, their signed changes, the feed services read, and the residents' used nonces.

use crate::commit::Change;
use crate::identity::{all, one};
use crate::sql::{Conn, RowReader, expect_one, string_list};
use crate::{ConsentStore, Result, SqlStore, params};
use async_trait::async_trait;
use tsunagu_core::consent::{ConsentEventKind, ConsentStatus};
use tsunagu_core::{AccountId, ConsentId, DeviceId, PurposeId, ServiceId};

/// A consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    pub id: ConsentId,
    pub account_id: AccountId,
    pub consumer_id: ServiceId,
    pub provider_id: ServiceId,
    pub purpose_id: PurposeId,
    /// 1, 2, … per resident, consumer and purpose: the newest decides.
    pub generation: i64,
    pub items: Vec<String>,
    pub expires_at: i64,
    pub terms_sha256: String,
    pub status: ConsentStatus,
    pub jws: String,
    pub device_id: DeviceId,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An entry of the consent feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEventRow {
    /// Assigned by the database; ignored on insert.
    pub seq: i64,
    pub consent_id: ConsentId,
    pub account_id: AccountId,
    pub consumer_id: ServiceId,
    pub provider_id: ServiceId,
    pub purpose_id: PurposeId,
    /// `granted`, `expiry_changed`, `revoked`, `expired`.
    pub status: ConsentEventKind,
    pub items: Vec<String>,
    pub expires_at: i64,
    pub created_at: i64,
    /// Why, when the resident did not sign the change (`erasure`).
    pub reason: Option<String>,
}

/// A change to consents, their history or the residents' nonces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentChange {
    /// Refused (conflict) if the resident already has an active consent to this purpose, or
    /// one of this generation.
    InsertConsent(ConsentRow),
    /// Sets a consent's status if it is still `from`.
    SetConsentStatus {
        id: ConsentId,
        from: ConsentStatus,
        to: ConsentStatus,
        updated_at: i64,
    },
    /// Sets a consent's expiry if it is still at `expected_version`.
    SetConsentExpiry {
        id: ConsentId,
        expected_version: i64,
        expires_at: i64,
        updated_at: i64,
    },
    InsertConsentChange {
        consent_id: ConsentId,
        action: ConsentEventKind,
        expires_at: Option<i64>,
        jws: String,
        created_at: i64,
    },
    InsertConsentEvent(ConsentEventRow),
    /// Refused (conflict) when the resident already used this nonce.
    UseResidentNonce {
        account_id: AccountId,
        nonce: String,
        expires_at: i64,
    },
}

macro_rules! consent_columns {
    () => {
        "id, account_id, consumer_id, provider_id, purpose_id, generation, items, expires_at, terms_sha256, status, jws, device_id, version, created_at, updated_at"
    };
}

macro_rules! consent_event_columns {
    () => {
        "seq, consent_id, account_id, consumer_id, provider_id, purpose_id, status, items, expires_at, created_at, reason"
    };
}

const SQL_INSERT_CONSENT: &str = concat!(
    "INSERT INTO consents (",
    consent_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
);
const SQL_CONSENT_BY_ID: &str = concat!(
    "SELECT ",
    consent_columns!(),
    " FROM consents WHERE id = $1"
);
const SQL_CONSENTS_OF: &str = concat!(
    "SELECT ",
    consent_columns!(),
    " FROM consents WHERE account_id = $1 ORDER BY created_at DESC, id DESC"
);
const SQL_LATEST_CONSENT: &str = concat!(
    "SELECT ",
    consent_columns!(),
    " FROM consents WHERE account_id = $1 AND consumer_id = $2 AND purpose_id = $3 ORDER BY generation DESC LIMIT 1"
);
const SQL_DUE_EXPIRATIONS: &str = concat!(
    "SELECT ",
    consent_columns!(),
    " FROM consents WHERE status = 'active' AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
);
const SQL_SET_CONSENT_STATUS: &str = "UPDATE consents SET status = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND status = $4";
const SQL_SET_CONSENT_EXPIRY: &str = "UPDATE consents SET expires_at = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND version = $4 AND status = 'active'";
const SQL_INSERT_CONSENT_CHANGE: &str = "INSERT INTO consent_changes (consent_id, action, expires_at, jws, created_at) VALUES ($1, $2, $3, $4, $5)";
const SQL_INSERT_CONSENT_EVENT: &str = "INSERT INTO consent_events (consent_id, account_id, consumer_id, provider_id, purpose_id, status, items, expires_at, created_at, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const SQL_CONSENT_EVENTS: &str = concat!(
    "SELECT ",
    consent_event_columns!(),
    " FROM consent_events WHERE (consumer_id = $1 OR provider_id = $1) AND seq > $2 ORDER BY seq LIMIT $3"
);
const SQL_CONSENT_HISTORY: &str = concat!(
    "SELECT ",
    consent_event_columns!(),
    " FROM consent_events WHERE consent_id = $1 ORDER BY seq"
);
const SQL_USE_RESIDENT_NONCE: &str =
    "INSERT INTO resident_nonces (account_id, nonce, expires_at) VALUES ($1, $2, $3)";
const SQL_PURGE_RESIDENT_NONCES: &str = "DELETE FROM resident_nonces WHERE expires_at <= $1";

pub(crate) fn consent_row(r: &mut RowReader) -> Result<ConsentRow> {
    Ok(ConsentRow {
        id: r.id()?,
        account_id: r.id()?,
        consumer_id: r.id()?,
        provider_id: r.id()?,
        purpose_id: r.id()?,
        generation: r.int()?,
        items: r.string_list()?,
        expires_at: r.int()?,
        terms_sha256: r.text()?,
        status: r.parsed("consent status", ConsentStatus::parse)?,
        jws: r.text()?,
        device_id: r.id()?,
        version: r.int()?,
        created_at: r.int()?,
        updated_at: r.int()?,
    })
}

fn consent_event_row(r: &mut RowReader) -> Result<ConsentEventRow> {
    Ok(ConsentEventRow {
        seq: r.int()?,
        consent_id: r.id()?,
        account_id: r.id()?,
        consumer_id: r.id()?,
        provider_id: r.id()?,
        purpose_id: r.id()?,
        status: r.parsed("consent event", ConsentEventKind::parse)?,
        items: r.string_list()?,
        expires_at: r.int()?,
        created_at: r.int()?,
        reason: r.opt_text()?,
    })
}

impl Change for ConsentChange {
    fn apply(&self, conn: &mut dyn Conn) -> Result<()> {
        match self {
            ConsentChange::InsertConsent(r) => {
                let n = conn.execute(
                    SQL_INSERT_CONSENT,
                    &params![
                        &r.id,
                        &r.account_id,
                        &r.consumer_id,
                        &r.provider_id,
                        &r.purpose_id,
                        r.generation,
                        string_list(&r.items),
                        r.expires_at,
                        &r.terms_sha256,
                        r.status.as_str(),
                        &r.jws,
                        &r.device_id,
                        r.version,
                        r.created_at,
                        r.updated_at,
                    ],
                )?;
                expect_one(n, "insert consent")
            }
            ConsentChange::SetConsentStatus {
                id,
                from,
                to,
                updated_at,
            } => {
                let n = conn.execute(
                    SQL_SET_CONSENT_STATUS,
                    &params![to.as_str(), *updated_at, id, from.as_str()],
                )?;
                expect_one(n, "set consent status")
            }
            ConsentChange::SetConsentExpiry {
                id,
                expected_version,
                expires_at,
                updated_at,
            } => {
                let n = conn.execute(
                    SQL_SET_CONSENT_EXPIRY,
                    &params![*expires_at, *updated_at, id, *expected_version],
                )?;
                expect_one(n, "set consent expiry")
            }
            ConsentChange::InsertConsentChange {
                consent_id,
                action,
                expires_at,
                jws,
                created_at,
            } => {
                let n = conn.execute(
                    SQL_INSERT_CONSENT_CHANGE,
                    &params![consent_id, action.as_str(), *expires_at, jws, *created_at],
                )?;
                expect_one(n, "insert consent change")
            }
            ConsentChange::InsertConsentEvent(r) => {
                let n = conn.execute(
                    SQL_INSERT_CONSENT_EVENT,
                    &params![
                        &r.consent_id,
                        &r.account_id,
                        &r.consumer_id,
                        &r.provider_id,
                        &r.purpose_id,
                        r.status.as_str(),
                        string_list(&r.items),
                        r.expires_at,
                        r.created_at,
                        &r.reason,
                    ],
                )?;
                expect_one(n, "insert consent event")
            }
            ConsentChange::UseResidentNonce {
                account_id,
                nonce,
                expires_at,
            } => {
                let n = conn.execute(
                    SQL_USE_RESIDENT_NONCE,
                    &params![account_id, nonce, *expires_at],
                )?;
                expect_one(n, "use resident nonce")
            }
        }
    }
}

#[async_trait]
impl ConsentStore for SqlStore {
    async fn consent(&self, id: &ConsentId) -> Result<Option<ConsentRow>> {
        let id = id.clone();
        self.db
            .read(move |c| one(c.query_opt(SQL_CONSENT_BY_ID, &params![&id])?, consent_row))
            .await
    }

    async fn consents_of(&self, account_id: &AccountId) -> Result<Vec<ConsentRow>> {
        let account_id = account_id.clone();
        self.db
            .read(move |c| {
                all(
                    c.query(SQL_CONSENTS_OF, &params![&account_id])?,
                    consent_row,
                )
            })
            .await
    }

    async fn latest_consent(
        &self,
        account_id: &AccountId,
        consumer_id: &ServiceId,
        purpose_id: &PurposeId,
    ) -> Result<Option<ConsentRow>> {
        let (a, c_, p) = (account_id.clone(), consumer_id.clone(), purpose_id.clone());
        self.db
            .read(move |c| {
                one(
                    c.query_opt(SQL_LATEST_CONSENT, &params![&a, &c_, &p])?,
                    consent_row,
                )
            })
            .await
    }

    async fn consent_events(
        &self,
        service_id: &ServiceId,
        since: i64,
        limit: u32,
    ) -> Result<Vec<ConsentEventRow>> {
        let service_id = service_id.clone();
        self.db
            .read(move |c| {
                all(
                    c.query(SQL_CONSENT_EVENTS, &params![&service_id, since, limit])?,
                    consent_event_row,
                )
            })
            .await
    }

    async fn consent_history(&self, consent_id: &ConsentId) -> Result<Vec<ConsentEventRow>> {
        let consent_id = consent_id.clone();
        self.db
            .read(move |c| {
                all(
                    c.query(SQL_CONSENT_HISTORY, &params![&consent_id])?,
                    consent_event_row,
                )
            })
            .await
    }

    async fn due_expirations(&self, now: i64, limit: u32) -> Result<Vec<ConsentRow>> {
        self.db
            .read(move |c| {
                all(
                    c.query(SQL_DUE_EXPIRATIONS, &params![now, limit])?,
                    consent_row,
                )
            })
            .await
    }

    async fn purge_resident_nonces(&self, now: i64) -> Result<u64> {
        self.db
            .write(move |c| c.execute(SQL_PURGE_RESIDENT_NONCES, &params![now]))
            .await
    }
}
