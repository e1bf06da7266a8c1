//! Pairwise subjects, tickets, receipts and alerts.

use crate::commit::Change;
use crate::consents::{ConsentRow, consent_row};
use crate::identity::{all, one};
use crate::sql::{BulkTable, ColumnType, Conn, Param, RowReader, expect_one, string_list};
use crate::{ExchangeStore, Result, SqlStore, StoreError, params};
use async_trait::async_trait;
use tsunagu_core::alert::AlertKind;
use tsunagu_core::identity::{AccountStatus, Level};
use tsunagu_core::service::ServiceStatus;
use tsunagu_core::ticket::{Basis, TicketState};
use tsunagu_core::{AccountId, PairwiseId, PurposeId, ServiceId, TicketId};

/// A ticket and the state of its exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRow {
    pub id: TicketId,
    pub consumer_id: ServiceId,
    pub provider_id: ServiceId,
    pub account_id: AccountId,
    pub purpose_id: PurposeId,
    pub items: Vec<String>,
    pub basis: Basis,
    pub requester: Option<String>,
    pub reason: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub consumer_receipt: Option<String>,
    pub provider_receipt: Option<String>,
    pub state: TicketState,
    pub updated_at: i64,
}

/// An alert for the committee and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    /// Assigned by the database; ignored on insert.
    pub seq: i64,
    pub kind: AlertKind,
    pub service_id: Option<ServiceId>,
    /// The exchange the alert is about, if any.
    pub ticket_id: Option<TicketId>,
    pub detail: String,
    pub created_at: i64,
}

/// What a ticket decision needs from storage, read in one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketContext {
    pub consumer_status: ServiceStatus,
    /// `None` when the provider is unknown.
    pub provider_status: Option<ServiceStatus>,
    /// `None` when the subject is not one the platform gave the consumer.
    pub resident: Option<ResidentRow>,
    /// The resident's latest consent to the consumer's purpose.
    pub consent: Option<ConsentRow>,
}

/// The resident behind a pairwise subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentRow {
    pub account_id: AccountId,
    pub level: Level,
    pub status: AccountStatus,
    pub restriction: tsunagu_core::identity::Restriction,
    pub erased: bool,
}

/// A side of an exchange: the consumer or the provider (who sends a receipt, whose counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptSide {
    Consumer,
    Provider,
}

/// A change to subjects, tickets or alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeChange {
    /// Records that `subject` in `sector` is this account (kept if already recorded).
    /// Written in bulk by the group commit.
    LinkSubject {
        sector: ServiceId,
        subject: PairwiseId,
        account_id: AccountId,
        created_at: i64,
    },
    /// Written in bulk by the group commit: a ticket's id is revealed only once its batch
    /// is durable, so nothing in the same batch can refer to it.
    InsertTicket(Box<TicketRow>),
    /// Records one side's receipt, if that side has not sent one yet.
    SetReceipt {
        ticket_id: TicketId,
        side: ReceiptSide,
        payload_sha256: String,
        updated_at: i64,
    },
    /// Moves an exchange from `open` to a final state.
    CloseTicket {
        ticket_id: TicketId,
        state: TicketState,
        updated_at: i64,
    },
    InsertAlert(AlertRow),
}

macro_rules! ticket_columns {
    () => {
        "id, consumer_id, provider_id, account_id, purpose_id, items, basis, requester, reason, issued_at, expires_at, consumer_receipt, provider_receipt, state, updated_at"
    };
}

const SQL_LINK_SUBJECT: &str = "INSERT INTO subjects (sector, subject, account_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
const SQL_ACCOUNT_FOR_SUBJECT: &str =
    "SELECT account_id FROM subjects WHERE sector = $1 AND subject = $2";
/// Everything a ticket decision reads, in one round trip: both services' statuses (so a
/// suspension counts from the next request, on every replica), the resident behind the
/// consumer's pairwise subject, and their latest consent to the purpose.
const SQL_TICKET_CONTEXT: &str = concat!(
    "SELECT cs.status, ps.status, a.id, a.level, a.status, a.restriction, a.erased_at, c.id, ",
    "c.id, c.account_id, c.consumer_id, c.provider_id, c.purpose_id, c.generation, c.items, c.expires_at, c.terms_sha256, c.status, c.jws, c.device_id, c.version, c.created_at, c.updated_at",
    " FROM services cs LEFT JOIN services ps ON ps.id = $4 LEFT JOIN subjects s ON s.sector = $1 AND s.subject = $3 LEFT JOIN accounts a ON a.id = s.account_id LEFT JOIN consents c ON c.id = (SELECT c2.id FROM consents c2 WHERE c2.account_id = s.account_id AND c2.consumer_id = $1 AND c2.purpose_id = $2 ORDER BY c2.generation DESC LIMIT 1) WHERE cs.id = $1"
);
const SQL_INSERT_TICKET: &str = concat!(
    "INSERT INTO tickets (",
    ticket_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
);
const SQL_TICKET_BY_ID: &str = concat!("SELECT ", ticket_columns!(), " FROM tickets WHERE id = $1");
const SQL_OVERDUE_TICKETS: &str = concat!(
    "SELECT ",
    ticket_columns!(),
    " FROM tickets WHERE state = 'open' AND expires_at < $1 ORDER BY expires_at LIMIT $2"
);
const SQL_TICKETS_OF: &str = concat!(
    "SELECT ",
    ticket_columns!(),
    " FROM tickets WHERE account_id = $1 ORDER BY issued_at DESC, id LIMIT $2"
);
const SQL_SET_CONSUMER_RECEIPT: &str = "UPDATE tickets SET consumer_receipt = $1, updated_at = $2 WHERE id = $3 AND consumer_receipt IS NULL";
const SQL_SET_PROVIDER_RECEIPT: &str = "UPDATE tickets SET provider_receipt = $1, updated_at = $2 WHERE id = $3 AND provider_receipt IS NULL";
const SQL_CLOSE_TICKET: &str =
    "UPDATE tickets SET state = $1, updated_at = $2 WHERE id = $3 AND state = 'open'";
const SQL_INSERT_ALERT: &str = "INSERT INTO alerts (kind, service_id, ticket_id, detail, created_at) VALUES ($1, $2, $3, $4, $5)";
const SQL_ALERTS: &str = "SELECT seq, kind, service_id, ticket_id, detail, created_at FROM alerts WHERE seq > $1 ORDER BY seq LIMIT $2";
const SQL_TICKET_COUNTS: &str = "SELECT 'consumer' AS role, state, COUNT(*) AS n FROM tickets WHERE consumer_id = $1 GROUP BY state UNION ALL SELECT 'provider' AS role, state, COUNT(*) AS n FROM tickets WHERE provider_id = $1 GROUP BY state ORDER BY role, state";

const SUBJECTS: BulkTable = BulkTable {
    table: "subjects",
    columns: &[
        ("sector", ColumnType::Text),
        ("subject", ColumnType::Text),
        ("account_id", ColumnType::Text),
        ("created_at", ColumnType::Int),
    ],
    tail: " ON CONFLICT DO NOTHING",
};

const TICKETS: BulkTable = BulkTable {
    table: "tickets",
    columns: &[
        ("id", ColumnType::Text),
        ("consumer_id", ColumnType::Text),
        ("provider_id", ColumnType::Text),
        ("account_id", ColumnType::Text),
        ("purpose_id", ColumnType::Text),
        ("items", ColumnType::Text),
        ("basis", ColumnType::Text),
        ("requester", ColumnType::Text),
        ("reason", ColumnType::Text),
        ("issued_at", ColumnType::Int),
        ("expires_at", ColumnType::Int),
        ("consumer_receipt", ColumnType::Text),
        ("provider_receipt", ColumnType::Text),
        ("state", ColumnType::Text),
        ("updated_at", ColumnType::Int),
    ],
    tail: "",
};

fn ticket_params(r: &TicketRow) -> Vec<Param<'_>> {
    params![
        &r.id,
        &r.consumer_id,
        &r.provider_id,
        &r.account_id,
        &r.purpose_id,
        string_list(&r.items),
        r.basis.claim(),
        &r.requester,
        &r.reason,
        r.issued_at,
        r.expires_at,
        &r.consumer_receipt,
        &r.provider_receipt,
        r.state.as_str(),
        r.updated_at,
    ]
    .to_vec()
}

fn ticket_row(r: &mut RowReader) -> Result<TicketRow> {
    Ok(TicketRow {
        id: r.id()?,
        consumer_id: r.id()?,
        provider_id: r.id()?,
        account_id: r.id()?,
        purpose_id: r.id()?,
        items: r.string_list()?,
        basis: r.parsed("ticket basis", Basis::parse)?,
        requester: r.opt_text()?,
        reason: r.opt_text()?,
        issued_at: r.int()?,
        expires_at: r.int()?,
        consumer_receipt: r.opt_text()?,
        provider_receipt: r.opt_text()?,
        state: r.parsed("ticket state", TicketState::parse)?,
        updated_at: r.int()?,
    })
}

fn alert_row(r: &mut RowReader) -> Result<AlertRow> {
    Ok(AlertRow {
        seq: r.int()?,
        kind: r.parsed("alert kind", AlertKind::parse)?,
        service_id: r.opt_id()?,
        ticket_id: r.opt_id()?,
        detail: r.text()?,
        created_at: r.int()?,
    })
}

fn ticket_context(r: &mut RowReader) -> Result<TicketContext> {
    let consumer_status = r.parsed("service status", ServiceStatus::parse)?;
    let provider_status = r
        .opt_text()?
        .map(|s| {
            ServiceStatus::parse(&s)
                .ok_or_else(|| StoreError::Corrupt(format!("service status `{s}`")))
        })
        .transpose()?;
    let account_id = r.opt_text()?;
    let level = r.opt_text()?;
    let status = r.opt_text()?;
    let restriction = r.opt_text()?;
    let erased_at = r.opt_int()?;
    let resident = match (account_id, level, status, restriction) {
        (Some(account_id), Some(level), Some(status), Some(restriction)) => Some(ResidentRow {
            account_id: account_id.into(),
            level: Level::parse(&level)
                .ok_or_else(|| StoreError::Corrupt(format!("account level `{level}`")))?,
            status: AccountStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("account status `{status}`")))?,
            restriction: tsunagu_core::identity::Restriction::parse(&restriction).ok_or_else(
                || StoreError::Corrupt(format!("account restriction `{restriction}`")),
            )?,
            erased: erased_at.is_some(),
        }),
        _ => None,
    };
    let consent = match r.opt_text()? {
        Some(_) => Some(consent_row(r)?),
        None => None,
    };
    Ok(TicketContext {
        consumer_status,
        provider_status,
        resident,
        consent,
    })
}

impl Change for ExchangeChange {
    fn apply(&self, conn: &mut dyn Conn) -> Result<()> {
        match self {
            ExchangeChange::LinkSubject {
                sector,
                subject,
                account_id,
                created_at,
            } => {
                conn.execute(
                    SQL_LINK_SUBJECT,
                    &params![sector, subject, account_id, *created_at],
                )?;
                Ok(())
            }
            ExchangeChange::InsertTicket(r) => {
                let n = conn.execute(SQL_INSERT_TICKET, &ticket_params(r))?;
                expect_one(n, "insert ticket")
            }
            ExchangeChange::SetReceipt {
                ticket_id,
                side,
                payload_sha256,
                updated_at,
            } => {
                let sql = match side {
                    ReceiptSide::Consumer => SQL_SET_CONSUMER_RECEIPT,
                    ReceiptSide::Provider => SQL_SET_PROVIDER_RECEIPT,
                };
                let n = conn.execute(sql, &params![payload_sha256, *updated_at, ticket_id])?;
                expect_one(n, "set receipt")
            }
            ExchangeChange::CloseTicket {
                ticket_id,
                state,
                updated_at,
            } => {
                let n = conn.execute(
                    SQL_CLOSE_TICKET,
                    &params![state.as_str(), *updated_at, ticket_id],
                )?;
                expect_one(n, "close ticket")
            }
            ExchangeChange::InsertAlert(r) => {
                let n = conn.execute(
                    SQL_INSERT_ALERT,
                    &params![
                        r.kind.as_str(),
                        r.service_id.as_ref(),
                        r.ticket_id.as_ref(),
                        &r.detail,
                        r.created_at
                    ],
                )?;
                expect_one(n, "insert alert")
            }
        }
    }

    fn bulk(&self) -> Option<(&'static BulkTable, Vec<Param<'_>>)> {
        match self {
            ExchangeChange::LinkSubject {
                sector,
                subject,
                account_id,
                created_at,
            } => Some((
                &SUBJECTS,
                params![sector, subject, account_id, *created_at].to_vec(),
            )),
            ExchangeChange::InsertTicket(r) => Some((&TICKETS, ticket_params(r))),
            _ => None,
        }
    }
}

#[async_trait]
impl ExchangeStore for SqlStore {
    async fn account_for_subject(
        &self,
        sector: &ServiceId,
        subject: &PairwiseId,
    ) -> Result<Option<AccountId>> {
        let (sector, subject) = (sector.clone(), subject.clone());
        self.db
            .read(move |c| {
                c.query_opt(SQL_ACCOUNT_FOR_SUBJECT, &params![&sector, &subject])?
                    .map(|row| row.reader().id())
                    .transpose()
            })
            .await
    }

    async fn ticket_context(
        &self,
        consumer_id: &ServiceId,
        provider_id: &ServiceId,
        purpose_id: &PurposeId,
        subject: &PairwiseId,
    ) -> Result<Option<TicketContext>> {
        let args = [
            consumer_id.as_str(),
            purpose_id.as_str(),
            subject.as_str(),
            provider_id.as_str(),
        ]
        .map(str::to_owned);
        self.db
            .read(move |c| {
                one(
                    c.query_opt(
                        SQL_TICKET_CONTEXT,
                        &params![&args[0], &args[1], &args[2], &args[3]],
                    )?,
                    ticket_context,
                )
            })
            .await
    }

    async fn ticket(&self, id: &TicketId) -> Result<Option<TicketRow>> {
        let id = id.clone();
        self.db
            .read(move |c| one(c.query_opt(SQL_TICKET_BY_ID, &params![&id])?, ticket_row))
            .await
    }

    async fn overdue_tickets(&self, before: i64, limit: u32) -> Result<Vec<TicketRow>> {
        self.db
            .read(move |c| {
                all(
                    c.query(SQL_OVERDUE_TICKETS, &params![before, limit])?,
                    ticket_row,
                )
            })
            .await
    }

    async fn tickets_of(&self, account_id: &AccountId, limit: u32) -> Result<Vec<TicketRow>> {
        let account_id = account_id.clone();
        self.db
            .read(move |c| {
                all(
                    c.query(SQL_TICKETS_OF, &params![&account_id, limit])?,
                    ticket_row,
                )
            })
            .await
    }

    async fn alerts(&self, since: i64, limit: u32) -> Result<Vec<AlertRow>> {
        self.db
            .read(move |c| all(c.query(SQL_ALERTS, &params![since, limit])?, alert_row))
            .await
    }

    async fn ticket_counts(
        &self,
        service_id: &ServiceId,
    ) -> Result<Vec<(ReceiptSide, TicketState, u64)>> {
        let service_id = service_id.clone();
        self.db
            .read(move |c| {
                c.query(SQL_TICKET_COUNTS, &params![&service_id])?
                    .into_iter()
                    .map(|row| {
                        let mut r = row.reader();
                        let side = r.parsed("side", |s| match s {
                            "consumer" => Some(ReceiptSide::Consumer),
                            "provider" => Some(ReceiptSide::Provider),
                            _ => None,
                        })?;
                        Ok((
                            side,
                            r.parsed("ticket state", TicketState::parse)?,
                            r.u64()?,
                        ))
                    })
                    .collect()
            })
            .await
    }
}
