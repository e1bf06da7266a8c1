//! The staff tables: rows, reads and the `StaffChange`s committed with their ledger leaves.

use crate::auth::{Role, Scope};
use tsunagu_core::AccountId;
use tsunagu_store::sql::{Conn, Row, expect_one};
use tsunagu_store::{Change, Result, StoreError, params};

/// A staff account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffRow {
    pub id: String,
    pub display_name: String,
    pub password_hash: String,
    /// Sealed with the keyring.
    pub totp_secret: Vec<u8>,
    pub totp_last_step: i64,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

/// A grant of a role (and an operator's scope) to a staff member.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GrantRow {
    pub grant_id: String,
    pub staff_id: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    pub reason: String,
    pub issued_by: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub reconfirmed_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn_reason: Option<String>,
}

impl GrantRow {
    /// In force at `t`: not withdrawn and not past its end.
    pub fn active_at(&self, t: i64) -> bool {
        self.withdrawn_at.is_none() && self.expires_at > t
    }
}

/// A staff session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub token_hash: String,
    pub staff_id: String,
    pub client_ip: String,
    pub csrf: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
}

/// One look at a resident's data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ViewRow {
    pub seq: i64,
    pub staff_id: String,
    pub account_id: AccountId,
    pub items: Vec<String>,
    pub reason: String,
    pub client_ip: String,
    pub at: i64,
}

/// How a failed login locks the account (from `[admin]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockRule {
    pub after: u32,
    pub base_seconds: u64,
    pub max_seconds: u64,
}

impl LockRule {
    pub fn seconds(&self, failures: u32) -> u64 {
        if failures < self.after.max(1) {
            return 0;
        }
        let doublings = (failures - self.after.max(1)).min(40);
        self.base_seconds
            .saturating_mul(1u64 << doublings)
            .min(self.max_seconds)
    }
}

/// A change to the staff tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaffChange {
    InsertStaff(StaffRow),
    InsertGrant(GrantRow),
    /// Withdraws a grant that is not withdrawn yet.
    WithdrawGrant {
        grant_id: String,
        at: i64,
        by: String,
        reason: String,
    },
    /// Reconfirms a grant still in force.
    ReconfirmGrant {
        grant_id: String,
        at: i64,
    },
    /// Counts a failed login atomically and locks the account per the rule.
    CountFailure {
        staff_id: String,
        at: i64,
        rule: LockRule,
    },
    /// A successful login: the TOTP step is taken if the last one used is still `expected`
    /// (a concurrent login with the same code conflicts) and the account is not locked at
    /// `at` (failures racing this login may have locked it meanwhile); failures are reset.
    AcceptLogin {
        staff_id: String,
        expected_step: i64,
        step: i64,
        at: i64,
    },
    InsertSession(SessionRow),
    DeleteSession {
        token_hash: String,
    },
    InsertView(ViewRow),
}

const STAFF_COLUMNS: &str = "id, display_name, password_hash, totp_secret, totp_last_step, failed_logins, locked_until, created_by, created_at, last_login_at";
pub(crate) const GRANT_COLUMNS: &str = "id, staff_id, role, scope, reason, issued_by, issued_at, expires_at, reconfirmed_at, withdrawn_at, withdrawn_by, withdrawn_reason";

impl Change for StaffChange {
    fn apply(&self, conn: &mut dyn Conn) -> Result<()> {
        match self {
            StaffChange::InsertStaff(s) => {
                let n = conn.execute(
                    &format!("INSERT INTO staff_accounts ({STAFF_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
                    &params![
                        s.id.as_str(),
                        s.display_name.as_str(),
                        s.password_hash.as_str(),
                        &s.totp_secret,
                        s.totp_last_step,
                        s.failed_logins,
                        s.locked_until,
                        s.created_by.as_str(),
                        s.created_at,
                        s.last_login_at,
                    ],
                )?;
                expect_one(n, "insert staff")
            }
            StaffChange::InsertGrant(g) => {
                let n = conn.execute(
                    &format!("INSERT INTO staff_grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"),
                    &params![
                        g.grant_id.as_str(),
                        g.staff_id.as_str(),
                        g.role.as_str(),
                        g.scope.map(Scope::as_str),
                        g.reason.as_str(),
                        g.issued_by.as_str(),
                        g.issued_at,
                        g.expires_at,
                        g.reconfirmed_at,
                        g.withdrawn_at,
                        &g.withdrawn_by,
                        &g.withdrawn_reason,
                    ],
                )?;
                expect_one(n, "insert grant")
            }
            StaffChange::WithdrawGrant {
                grant_id,
                at,
                by,
                reason,
            } => {
                let n = conn.execute(
                    "UPDATE staff_grants SET withdrawn_at = $1, withdrawn_by = $2, withdrawn_reason = $3 WHERE id = $4 AND withdrawn_at IS NULL",
                    &params![*at, by.as_str(), reason.as_str(), grant_id.as_str()],
                )?;
                expect_one(n, "withdraw grant")
            }
            StaffChange::ReconfirmGrant { grant_id, at } => {
                let n = conn.execute(
                    "UPDATE staff_grants SET reconfirmed_at = $1 WHERE id = $2 AND withdrawn_at IS NULL AND expires_at > $1",
                    &params![*at, grant_id.as_str()],
                )?;
                expect_one(n, "reconfirm grant")
            }
            StaffChange::CountFailure { staff_id, at, rule } => {
                let row = conn
                    .query_opt(
                        "UPDATE staff_accounts SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
                        &params![staff_id.as_str()],
                    )?
                    .ok_or_else(|| StoreError::Conflict("no such staff".into()))?;
                let failures = row.reader().int()?;
                let lock = rule.seconds(u32::try_from(failures).unwrap_or(u32::MAX));
                if lock > 0 {
                    conn.execute(
                        "UPDATE staff_accounts SET locked_until = $1 WHERE id = $2",
                        &params![at.saturating_add(lock as i64), staff_id.as_str()],
                    )?;
                }
                Ok(())
            }
            StaffChange::AcceptLogin {
                staff_id,
                expected_step,
                step,
                at,
            } => {
                let n = conn.execute(
                    "UPDATE staff_accounts SET totp_last_step = $1, failed_logins = 0, locked_until = NULL, last_login_at = $2 WHERE id = $3 AND totp_last_step = $4 AND (locked_until IS NULL OR locked_until <= $2)",
                    &params![*step, *at, staff_id.as_str(), *expected_step],
                )?;
                expect_one(n, "accept login")
            }
            StaffChange::InsertSession(s) => {
                let n = conn.execute(
                    "INSERT INTO staff_sessions (token_hash, staff_id, client_ip, csrf, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    &params![
                        s.token_hash.as_str(),
                        s.staff_id.as_str(),
                        s.client_ip.as_str(),
                        &s.csrf,
                        s.expires_at,
                        s.created_at,
                    ],
                )?;
                expect_one(n, "insert staff session")
            }
            StaffChange::DeleteSession { token_hash } => {
                conn.execute(
                    "DELETE FROM staff_sessions WHERE token_hash = $1",
                    &params![token_hash.as_str()],
                )?;
                Ok(())
            }
            StaffChange::InsertView(v) => {
                let items = tsunagu_store::sql::string_list(&v.items);
                let n = conn.execute(
                    "INSERT INTO staff_views (staff_id, account_id, items, reason, client_ip, at) VALUES ($1, $2, $3, $4, $5, $6)",
                    &params![
                        v.staff_id.as_str(),
                        &v.account_id,
                        items,
                        v.reason.as_str(),
                        v.client_ip.as_str(),
                        v.at,
                    ],
                )?;
                expect_one(n, "insert staff view")
            }
        }
    }
}

pub(crate) fn staff_row(row: Row) -> Result<StaffRow> {
    let mut r = row.reader();
    Ok(StaffRow {
        id: r.text()?,
        display_name: r.text()?,
        password_hash: r.text()?,
        totp_secret: r.bytes()?,
        totp_last_step: r.int()?,
        failed_logins: r.int()?,
        locked_until: r.opt_int()?,
        created_by: r.text()?,
        created_at: r.int()?,
        last_login_at: r.opt_int()?,
    })
}

pub(crate) fn grant_row(row: Row) -> Result<GrantRow> {
    let mut r = row.reader();
    Ok(GrantRow {
        grant_id: r.text()?,
        staff_id: r.text()?,
        role: r.parsed("staff role", Role::parse)?,
        scope: r
            .opt_text()?
            .map(|s| Scope::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("scope `{s}`"))))
            .transpose()?,
        reason: r.text()?,
        issued_by: r.text()?,
        issued_at: r.int()?,
        expires_at: r.int()?,
        reconfirmed_at: r.int()?,
        withdrawn_at: r.opt_int()?,
        withdrawn_by: r.opt_text()?,
        withdrawn_reason: r.opt_text()?,
    })
}

pub(crate) fn session_row(row: Row) -> Result<SessionRow> {
    let mut r = row.reader();
    Ok(SessionRow {
        token_hash: r.text()?,
        staff_id: r.text()?,
        client_ip: r.text()?,
        csrf: r.opt_text()?,
        expires_at: r.int()?,
        created_at: r.int()?,
    })
}

pub(crate) fn view_row(row: Row) -> Result<ViewRow> {
    let mut r = row.reader();
    Ok(ViewRow {
        seq: r.int()?,
        staff_id: r.text()?,
        account_id: r.id()?,
        items: r.string_list()?,
        reason: r.text()?,
        client_ip: r.text()?,
        at: r.int()?,
    })
}

/// Reads.
pub(crate) const SQL_STAFF: &str = "SELECT id, display_name, password_hash, totp_secret, totp_last_step, failed_logins, locked_until, created_by, created_at, last_login_at FROM staff_accounts WHERE id = $1";
pub(crate) const SQL_ALL_STAFF: &str = "SELECT id, display_name, password_hash, totp_secret, totp_last_step, failed_logins, locked_until, created_by, created_at, last_login_at FROM staff_accounts ORDER BY id";
pub(crate) const SQL_SESSION: &str = "SELECT token_hash, staff_id, client_ip, csrf, expires_at, created_at FROM staff_sessions WHERE token_hash = $1";
pub(crate) const SQL_VIEWS: &str = "SELECT seq, staff_id, account_id, items, reason, client_ip, at FROM staff_views WHERE at >= $1 AND at < $2 ORDER BY at, seq LIMIT 100000";
