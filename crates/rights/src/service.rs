//! The `Rights` service: files, lists and decides data-subject requests over the platform's
//! store, each state change committed together with its ledger leaf and, for the requests
//! that act at once, with the platform's own change (a restriction, an erasure).

use crate::model::{DsrConfig, Handling, RequestStatus, RequestType, transition};
use serde::Serialize;
use std::sync::Arc;
use tsunagu_core::event::LedgerEvent;
use tsunagu_core::{AccountId, Code};
use tsunagu_crypto::random;
use tsunagu_platform::identity::Session;
use tsunagu_platform::ledger::leaf;
use tsunagu_platform::{Outcome, Platform, Refusal, StoreError, now};
use tsunagu_store::sql::{Conn, Row, expect_one};
use tsunagu_store::{Change, Commit, params};

/// Who decides what completes without staff.
pub const PLATFORM: &str = "platform";

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    pub id: String,
    pub account_id: AccountId,
    pub request_type: RequestType,
    pub status: RequestStatus,
    /// Sealed with the keyring; `None` when none was given or after an erasure.
    pub detail: Option<Vec<u8>>,
    pub received_at: i64,
    pub deadline: i64,
    pub decided_at: Option<i64>,
    pub decision_reason: Option<String>,
    pub decided_by: Option<String>,
    pub version: i64,
}

/// A request as the resident and staff see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestView {
    pub request_id: String,
    #[serde(rename = "type")]
    pub request_type: RequestType,
    pub status: RequestStatus,
    pub received_at: i64,
    pub deadline: i64,
    /// Whether the deadline passed while the request was open.
    pub overdue: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `platform`, or `staff` when a person decided (their id is for staff only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// For staff: whose request it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
    /// What the resident should know about the request's effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

/// What a suspension or a stop of provision does not stop, told to the resident.
pub const RULES_STILL_APPLY: &str = "Standing legal-basis rules approved by the committee (vital interest, statute) still provide your data when their conditions are met; each such provision is in your history with who asked and why.";
/// What an erasure keeps.
pub const ERASURE_KEEPS: &str = "Your account can no longer log in. The ledger keeps the hashes of your history and this request's record, so that you can still appeal.";

/// The leaves of this capability. Each is in the resident's history.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum RightsEvent {
    /// A request was filed.
    #[serde(rename = "rights.request_received")]
    Received {
        subject: String,
        request: String,
        request_type: RequestType,
        status: RequestStatus,
        deadline: i64,
    },
    /// A request changed state (completed by the platform or decided by staff).
    #[serde(rename = "rights.request_status_changed")]
    StatusChanged {
        subject: String,
        request: String,
        request_type: RequestType,
        status: RequestStatus,
        /// `platform` or `staff`.
        role: String,
        /// The staff member's pseudonym (their id's keyed digest), when staff decided.
        #[serde(skip_serializing_if = "Option::is_none")]
        staff: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// The ledger event types of this capability.
pub const EVENTS: &[&str] = &["rights.request_received", "rights.request_status_changed"];

impl LedgerEvent for RightsEvent {
    fn kind(&self) -> &'static str {
        match self {
            RightsEvent::Received { .. } => EVENTS[0],
            RightsEvent::StatusChanged { .. } => EVENTS[1],
        }
    }
}

/// A change to `dsr_requests`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RightsChange {
    Insert(RequestRow),
    /// Sets the status if the request is still at `expected_version`.
    Decide {
        id: String,
        expected_version: i64,
        status: RequestStatus,
        at: i64,
        reason: Option<String>,
        by: String,
    },
    /// Forgets what the resident wrote in every request of an erased account.
    ForgetDetails {
        account_id: AccountId,
    },
}

const COLUMNS: &str = "id, account_id, type, status, detail, received_at, deadline, decided_at, decision_reason, decided_by, version";
const SQL_INSERT: &str = "INSERT INTO dsr_requests (id, account_id, type, status, detail, received_at, deadline, decided_at, decision_reason, decided_by, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
// `decided_at` only for a decision: a request in progress is still open.
const SQL_DECIDE: &str = "UPDATE dsr_requests SET status = $1, decided_at = CASE WHEN $1 IN ('completed', 'refused') THEN $2 ELSE decided_at END, decision_reason = $3, decided_by = $4, version = version + 1 WHERE id = $5 AND version = $6";
const SQL_FORGET: &str = "UPDATE dsr_requests SET detail = NULL WHERE account_id = $1";

impl Change for RightsChange {
    fn apply(&self, conn: &mut dyn Conn) -> tsunagu_store::Result<()> {
        match self {
            RightsChange::Insert(r) => {
                let n = conn.execute(
                    SQL_INSERT,
                    &params![
                        r.id.as_str(),
                        &r.account_id,
                        r.request_type.as_str(),
                        r.status.as_str(),
                        &r.detail,
                        r.received_at,
                        r.deadline,
                        r.decided_at,
                        &r.decision_reason,
                        &r.decided_by,
                        r.version,
                    ],
                )?;
                expect_one(n, "insert request")
            }
            RightsChange::Decide {
                id,
                expected_version,
                status,
                at,
                reason,
                by,
            } => {
                let n = conn.execute(
                    SQL_DECIDE,
                    &params![
                        status.as_str(),
                        *at,
                        reason,
                        by.as_str(),
                        id.as_str(),
                        *expected_version
                    ],
                )?;
                expect_one(n, "decide request")
            }
            RightsChange::ForgetDetails { account_id } => {
                conn.execute(SQL_FORGET, &params![account_id])?;
                Ok(())
            }
        }
    }
}

fn request_row(row: Row) -> tsunagu_store::Result<RequestRow> {
    let mut r = row.reader();
    Ok(RequestRow {
        id: r.text()?,
        account_id: r.id()?,
        request_type: r.parsed("request type", RequestType::parse)?,
        status: r.parsed("request status", RequestStatus::parse)?,
        detail: r.opt_bytes()?,
        received_at: r.int()?,
        deadline: r.int()?,
        decided_at: r.opt_int()?,
        decision_reason: r.opt_text()?,
        decided_by: r.opt_text()?,
        version: r.int()?,
    })
}

/// Most requests one answer lists.
pub const MAX_LIST: u32 = 500;

/// Residents' data-subject requests.
#[derive(Clone)]
pub struct Rights {
    platform: Arc<Platform>,
    config: Arc<DsrConfig>,
}

impl Rights {
    pub fn new(platform: Arc<Platform>, config: DsrConfig) -> Rights {
        Rights {
            platform,
            config: Arc::new(config),
        }
    }

    pub fn platform(&self) -> &Arc<Platform> {
        &self.platform
    }

    fn aad(id: &str) -> Vec<u8> {
        format!("dsr:{id}").into_bytes()
    }

    /// A stored request as seen by the resident (`for_staff` adds the account id and the
    /// deciding staff id).
    pub fn view(&self, row: &RequestRow, for_staff: bool, t: i64) -> Outcome<RequestView> {
        let detail = match &row.detail {
            Some(sealed) => {
                let plain = self
                    .platform
                    .keys
                    .open_sealed(&Self::aad(&row.id), sealed)
                    .map_err(|e| Refusal::internal("request detail", e))?;
                Some(String::from_utf8_lossy(&plain).into_owned())
            }
            None => None,
        };
        Ok(RequestView {
            request_id: row.id.clone(),
            request_type: row.request_type,
            status: row.status,
            received_at: row.received_at,
            deadline: row.deadline,
            overdue: row.status.is_open() && row.deadline < t,
            detail,
            decided_at: row.decided_at,
            reason: row.decision_reason.clone(),
            decided_by: row.decided_by.as_ref().map(|by| {
                if for_staff || by == PLATFORM {
                    by.clone()
                } else {
                    "staff".to_owned()
                }
            }),
            account_id: for_staff.then(|| row.account_id.clone()),
            note: match row.request_type {
                RequestType::Suspension | RequestType::StopProvision => Some(RULES_STILL_APPLY),
                RequestType::Erasure => Some(ERASURE_KEEPS),
                _ => None,
            },
        })
    }

    fn leaf_of(&self, event: &RightsEvent, account: &AccountId, t: i64) -> tsunagu_store::NewLeaf {
        leaf(event, &[account], t)
    }

    /// `POST /v1/me/requests`: files a request. Disclosure, suspension, stop of provision,
    /// resume and erasure complete at once (their effect is in the same commit as the
    /// request); a correction waits for staff.
    pub async fn file(
        &self,
        session: &Session,
        request_type: RequestType,
        detail: Option<&str>,
    ) -> Outcome<RequestView> {
        if detail.is_some_and(|d| d.len() > crate::MAX_DETAIL) {
            return Err(Refusal::new(
                Code::InvalidRequest,
                format!("detail: at most {} bytes", crate::MAX_DETAIL),
            ));
        }
        if request_type == RequestType::Correction && detail.is_none_or(|d| d.trim().is_empty()) {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "detail: say what should be corrected",
            ));
        }
        let t = now();
        let account_id = session.account_id.clone();
        let id = format!(
            "dsr_{}",
            random::token(16).map_err(|e| Refusal::internal("request id", e))?
        );
        let sealed = match detail.map(str::trim).filter(|d| !d.is_empty()) {
            Some(d) => Some(
                self.platform
                    .keys
                    .keyring()
                    .seal(&Self::aad(&id), d.as_bytes())
                    .map_err(|e| Refusal::internal("sealing the detail", e))?,
            ),
            None => None,
        };
        let deadline = self.config.deadline(request_type, t);
        let subject = self.platform.keys.ledger_subject(&account_id).into_string();
        let received = RightsEvent::Received {
            subject: subject.clone(),
            request: id.clone(),
            request_type,
            status: RequestStatus::Received,
            deadline,
        };
        let completed = RightsEvent::StatusChanged {
            subject,
            request: id.clone(),
            request_type,
            status: RequestStatus::Completed,
            role: PLATFORM.to_owned(),
            staff: None,
            reason: None,
        };
        let handling = request_type.handling();
        let mut commit = match handling {
            Handling::Erase => self.platform.erasure_commit(&account_id, t).await?,
            _ => Commit::new(),
        };
        let done = handling != Handling::Staff;
        let row = RequestRow {
            id: id.clone(),
            account_id: account_id.clone(),
            request_type,
            status: if done {
                RequestStatus::Completed
            } else {
                RequestStatus::Received
            },
            detail: sealed,
            received_at: t,
            deadline,
            decided_at: done.then_some(t),
            decision_reason: None,
            decided_by: done.then(|| PLATFORM.to_owned()),
            version: 0,
        };
        commit.push(RightsChange::Insert(row.clone()));
        if let Handling::Restrict(to) = handling
            && let Some(change) = self.platform.restriction_change(&account_id, to, t).await?
        {
            commit.push(change);
        }
        if handling == Handling::Erase {
            commit.push(RightsChange::ForgetDetails {
                account_id: account_id.clone(),
            });
        }
        commit = commit.leaf(self.leaf_of(&received, &account_id, t));
        if done {
            commit = commit.leaf(self.leaf_of(&completed, &account_id, t));
        }
        match self.platform.committer.commit(commit).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(Refusal::new(
                    Code::StaleRequest,
                    "the account changed while the request was filed; try again",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        if handling == Handling::Erase
            && let Err(e) = self.platform.database().flush_deleted().await
        {
            tracing::error!(error = %e, "flushing deleted rows after an erasure failed");
        }
        metrics::counter!("tsunagu_dsr_requests_total", "type" => request_type.as_str())
            .increment(1);
        let mut row = row;
        if handling == Handling::Erase {
            row.detail = None;
        }
        self.view(&row, false, t)
    }

    async fn row(&self, id: &str) -> Outcome<Option<RequestRow>> {
        let id = id.to_owned();
        let sql = format!("SELECT {COLUMNS} FROM dsr_requests WHERE id = $1");
        Ok(self
            .platform
            .database()
            .read(move |c| {
                c.query_opt(&sql, &params![id.as_str()])?
                    .map(request_row)
                    .transpose()
            })
            .await?)
    }

    /// A resident's requests, newest first.
    pub async fn rows_of(&self, account_id: &AccountId) -> Outcome<Vec<RequestRow>> {
        let account_id = account_id.clone();
        let sql = format!(
            "SELECT {COLUMNS} FROM dsr_requests WHERE account_id = $1 ORDER BY received_at DESC, id DESC LIMIT {MAX_LIST}"
        );
        Ok(self
            .platform
            .database()
            .read(move |c| {
                c.query(&sql, &params![&account_id])?
                    .into_iter()
                    .map(request_row)
                    .collect()
            })
            .await?)
    }

    /// `GET /v1/me/requests`.
    pub async fn list(&self, session: &Session) -> Outcome<Vec<RequestView>> {
        let t = now();
        self.rows_of(&session.account_id)
            .await?
            .iter()
            .map(|r| self.view(r, false, t))
            .collect()
    }

    /// `GET /v1/me/requests/{id}`: the resident's own request.
    pub async fn get(&self, session: &Session, id: &str) -> Outcome<RequestRow> {
        self.row(id)
            .await?
            .filter(|r| r.account_id == session.account_id)
            .ok_or_else(|| Refusal::new(Code::UnknownRequest, "no such request of yours"))
    }

    /// The staff queue: open requests, oldest deadline first (only overdue ones when asked).
    pub async fn queue(&self, overdue_only: bool) -> Outcome<Vec<RequestView>> {
        let t = now();
        let sql = format!(
            "SELECT {COLUMNS} FROM dsr_requests WHERE status IN ('received', 'in_progress') AND deadline < $1 ORDER BY deadline, id LIMIT {MAX_LIST}"
        );
        let before = if overdue_only { t } else { i64::MAX };
        let rows = self
            .platform
            .database()
            .read(move |c| {
                c.query(&sql, &params![before])?
                    .into_iter()
                    .map(request_row)
                    .collect::<tsunagu_store::Result<Vec<_>>>()
            })
            .await?;
        rows.iter().map(|r| self.view(r, true, t)).collect()
    }

    /// A staff decision on a request: `in_progress`, `completed` or `refused` (with a
    /// reason). `staff` is the deciding staff id, `staff_pseudonym` what the leaf names.
    pub async fn decide(
        &self,
        id: &str,
        to: RequestStatus,
        reason: Option<&str>,
        staff: &str,
        staff_pseudonym: &str,
    ) -> Outcome<RequestView> {
        let t = now();
        let row = self
            .row(id)
            .await?
            .ok_or_else(|| Refusal::new(Code::UnknownRequest, "no such request"))?;
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        transition(row.status, to, reason).map_err(|(code, detail)| Refusal::new(code, detail))?;
        let subject = self
            .platform
            .keys
            .ledger_subject(&row.account_id)
            .into_string();
        let event = RightsEvent::StatusChanged {
            subject,
            request: row.id.clone(),
            request_type: row.request_type,
            status: to,
            role: "staff".to_owned(),
            staff: Some(staff_pseudonym.to_owned()),
            reason: reason.map(str::to_owned),
        };
        let decided = to != RequestStatus::InProgress;
        let commit = Commit::new()
            .change(RightsChange::Decide {
                id: row.id.clone(),
                expected_version: row.version,
                status: to,
                at: t,
                reason: reason.map(str::to_owned),
                by: staff.to_owned(),
            })
            .leaf(self.leaf_of(&event, &row.account_id, t));
        match self.platform.committer.commit(commit).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(Refusal::new(
                    Code::StaleRequest,
                    "the request changed meanwhile; read it again",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let mut row = row;
        row.status = to;
        row.version += 1;
        if decided {
            row.decided_at = Some(t);
        }
        row.decision_reason = reason.map(str::to_owned);
        row.decided_by = Some(staff.to_owned());
        self.view(&row, true, t)
    }

    /// Whether the account had a request open at `at` (for staff's access report: a look
    /// at a resident's data with no open request is unusual).
    pub async fn open_at(&self, account_id: &AccountId, at: i64) -> Outcome<bool> {
        let account_id = account_id.clone();
        let n = self
            .platform
            .database()
            .read(move |c| {
                c.query_int(
                    "SELECT COUNT(*) FROM dsr_requests WHERE account_id = $1 AND received_at <= $2 AND (decided_at IS NULL OR decided_at >= $2 - 86400)",
                    &params![&account_id, at],
                )
            })
            .await?;
        Ok(n > 0)
    }
}
