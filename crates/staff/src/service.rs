//! The `Staff` service: accounts, logins, sessions bound to the client, grants, the access
//! review, looks at residents' records (each a ledger leaf in the resident's history) and
//! the auditors' access report.

use crate::auth::{self, Role, Scope};
use crate::config::AdminConfig;
use crate::store::{
    GRANT_COLUMNS, GrantRow, SQL_ALL_STAFF, SQL_SESSION, SQL_STAFF, SQL_VIEWS, SessionRow,
    StaffChange, StaffRow, ViewRow, grant_row, session_row, staff_row, view_row,
};
use ipnet::IpNet;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use tsunagu_core::event::LedgerEvent;
use tsunagu_core::{AccountId, Code, ServiceId};
use tsunagu_crypto::{random, sha256};
use tsunagu_platform::ledger::leaf;
use tsunagu_platform::{Outcome, Platform, Refusal, StoreError, now};
use tsunagu_rights::Rights;
use tsunagu_store::{Commit, params};

/// Who issued a bootstrap grant (`tsunagu admin staff create`).
pub const BOOTSTRAP: &str = "bootstrap";

/// The leaves of this capability.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum StaffEvent {
    #[serde(rename = "staff.created")]
    Created { staff: String, by: String },
    #[serde(rename = "staff.login")]
    Login { staff: String },
    #[serde(rename = "staff.login_refused")]
    LoginRefused {
        #[serde(skip_serializing_if = "Option::is_none")]
        staff: Option<String>,
        reason: Code,
    },
    #[serde(rename = "staff.grant_issued")]
    GrantIssued {
        grant: String,
        staff: String,
        role: Role,
        #[serde(skip_serializing_if = "Option::is_none")]
        scope: Option<Scope>,
        expires_at: i64,
        by: String,
    },
    #[serde(rename = "staff.grant_withdrawn")]
    GrantWithdrawn {
        grant: String,
        staff: String,
        by: String,
        reason: String,
    },
    #[serde(rename = "staff.grant_reconfirmed")]
    GrantReconfirmed {
        grant: String,
        staff: String,
        by: String,
    },
    #[serde(rename = "staff.access_reviewed")]
    AccessReviewed {
        by: String,
        grants_due: u64,
        accounts_unused: u64,
    },
    /// A look at a resident's data: in that resident's history.
    #[serde(rename = "staff.viewed")]
    Viewed {
        staff: String,
        subject: String,
        role: Role,
        items: Vec<String>,
        reason: String,
    },
    /// A look refused (no grant): in that resident's history too.
    #[serde(rename = "staff.view_refused")]
    ViewRefused {
        staff: String,
        subject: String,
        role: Role,
        reason: Code,
        status: &'static str,
    },
}

/// The ledger event types of this capability.
pub const EVENTS: &[&str] = &[
    "staff.created",
    "staff.login",
    "staff.login_refused",
    "staff.grant_issued",
    "staff.grant_withdrawn",
    "staff.grant_reconfirmed",
    "staff.access_reviewed",
    "staff.viewed",
    "staff.view_refused",
];

impl LedgerEvent for StaffEvent {
    fn kind(&self) -> &'static str {
        match self {
            StaffEvent::Created { .. } => EVENTS[0],
            StaffEvent::Login { .. } => EVENTS[1],
            StaffEvent::LoginRefused { .. } => EVENTS[2],
            StaffEvent::GrantIssued { .. } => EVENTS[3],
            StaffEvent::GrantWithdrawn { .. } => EVENTS[4],
            StaffEvent::GrantReconfirmed { .. } => EVENTS[5],
            StaffEvent::AccessReviewed { .. } => EVENTS[6],
            StaffEvent::Viewed { .. } => EVENTS[7],
            StaffEvent::ViewRefused { .. } => EVENTS[8],
        }
    }
}

/// A new staff member's credentials, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct NewStaff {
    pub id: String,
    pub password: String,
    /// Base32, as authenticator apps take it.
    pub totp_secret: String,
    pub otpauth_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
}

/// A logged-in staff member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffSession {
    pub staff_id: String,
    pub token_hash: String,
    pub csrf: Option<String>,
    pub expires_at: i64,
}

/// A login's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedIn {
    pub token: String,
    pub expires_in: u64,
    #[serde(skip)]
    pub csrf: Option<String>,
}

/// What a look at a resident's record shows.
#[derive(Debug, Clone, Serialize)]
pub struct ResidentView {
    pub account_id: AccountId,
    pub level: tsunagu_core::identity::Level,
    pub status: tsunagu_core::identity::AccountStatus,
    pub restriction: tsunagu_core::identity::Restriction,
    pub erased: bool,
    pub created_at: i64,
    pub basic_items: Option<tsunagu_core::identity::BasicAttributes>,
    /// The items this look showed (recorded in the resident's history).
    pub items_shown: Vec<String>,
}

/// The access review.
#[derive(Debug, Clone, Serialize)]
pub struct AccessReview {
    pub review_period_days: u32,
    /// Grants in force not reconfirmed within the period.
    pub grants_due: Vec<GrantRow>,
    /// Staff accounts not used within the period (never, or last login before it).
    pub accounts_unused: Vec<UnusedAccount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnusedAccount {
    pub staff_id: String,
    pub last_login_at: Option<i64>,
    pub created_at: i64,
}

/// Something unusual in the access report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Unusual {
    /// More residents than `[admin] bulk_threshold` within one hour.
    Bulk {
        staff_id: String,
        hour_start: i64,
        residents: u64,
    },
    /// Outside `[admin] office_hours`.
    OffHours {
        staff_id: String,
        account_id: AccountId,
        at: i64,
    },
    /// The resident had no request open (nor decided within a day before).
    NoOpenRequest {
        staff_id: String,
        account_id: AccountId,
        at: i64,
    },
}

/// The auditors' access report.
#[derive(Debug, Clone, Serialize)]
pub struct AccessReport {
    pub from: i64,
    pub to: i64,
    pub views: Vec<ViewRow>,
    pub unusual: Vec<Unusual>,
}

/// Operator staff.
#[derive(Clone)]
pub struct Staff {
    platform: Arc<Platform>,
    pub config: Arc<AdminConfig>,
    networks: Arc<[IpNet]>,
    pub rights: Rights,
}

fn valid_staff_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

fn token_hash(token: &str) -> String {
    hex::encode(sha256(token.as_bytes()))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl Staff {
    pub fn new(platform: Arc<Platform>, config: AdminConfig, rights: Rights) -> Staff {
        let networks = config.networks().into();
        Staff {
            platform,
            config: Arc::new(config),
            networks,
            rights,
        }
    }

    pub fn platform(&self) -> &Arc<Platform> {
        &self.platform
    }

    /// Whether the client's address is in `[admin] allowed_networks`.
    pub fn network_allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// A staff member's pseudonym in leaves (keyed, stable).
    pub fn pseudonym(&self, staff_id: &str) -> String {
        self.platform
            .keys
            .pairwise_id(
                &ServiceId::from("tsunagu-staff"),
                &AccountId::from(format!("staff:{staff_id}")),
            )
            .into_string()
    }

    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        self.platform.committer.commit(commit).await.map(|_| ())
    }

    /// Records a leaf alone (a refusal), logging a failure rather than hiding the refusal.
    async fn record(&self, event: &StaffEvent, subjects: &[&AccountId]) {
        let commit = Commit::new().leaf(leaf(event, subjects, now()));
        if let Err(e) = self.commit(commit).await {
            tracing::error!(error = %e, kind = event.kind(), "recording a staff leaf failed");
        }
    }

    pub async fn staff(&self, id: &str) -> Outcome<Option<StaffRow>> {
        let id = id.to_owned();
        Ok(self
            .platform
            .database()
            .read(move |c| {
                c.query_opt(SQL_STAFF, &params![id.as_str()])?
                    .map(staff_row)
                    .transpose()
            })
            .await?)
    }

    pub async fn all_staff(&self) -> Outcome<Vec<StaffRow>> {
        Ok(self
            .platform
            .database()
            .read(|c| {
                c.query(SQL_ALL_STAFF, &[])?
                    .into_iter()
                    .map(staff_row)
                    .collect()
            })
            .await?)
    }

    /// Every grant of a staff member (or of everyone), newest first.
    pub async fn grants(&self, staff_id: Option<&str>) -> Outcome<Vec<GrantRow>> {
        let staff_id = staff_id.map(str::to_owned);
        Ok(self
            .platform
            .database()
            .read(move |c| {
                let rows = match &staff_id {
                    Some(id) => c.query(
                        &format!("SELECT {GRANT_COLUMNS} FROM staff_grants WHERE staff_id = $1 ORDER BY issued_at DESC, id"),
                        &params![id.as_str()],
                    )?,
                    None => c.query(
                        &format!("SELECT {GRANT_COLUMNS} FROM staff_grants ORDER BY issued_at DESC, id"),
                        &[],
                    )?,
                };
                rows.into_iter().map(grant_row).collect()
            })
            .await?)
    }

    async fn grant(&self, id: &str) -> Outcome<Option<GrantRow>> {
        let id = id.to_owned();
        Ok(self
            .platform
            .database()
            .read(move |c| {
                c.query_opt(
                    &format!("SELECT {GRANT_COLUMNS} FROM staff_grants WHERE id = $1"),
                    &params![id.as_str()],
                )?
                .map(grant_row)
                .transpose()
            })
            .await?)
    }

    fn new_account(
        &self,
        id: &str,
        display_name: &str,
        by: &str,
        t: i64,
    ) -> Outcome<(StaffRow, NewStaff)> {
        if !valid_staff_id(id) {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "id: 1 to 64 characters of a-z, 0-9, '.', '_' and '-'",
            ));
        }
        let display_name = display_name.trim();
        if display_name.is_empty() || display_name.chars().count() > 100 {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "display_name: 1 to 100 characters",
            ));
        }
        let password = auth::new_password().map_err(|e| Refusal::internal("password", e))?;
        let password_hash =
            auth::hash_password(&password).map_err(|e| Refusal::internal("argon2", e))?;
        let secret = auth::new_totp_secret().map_err(|e| Refusal::internal("totp", e))?;
        let sealed = self
            .platform
            .keys
            .keyring()
            .seal(format!("staff-totp:{id}").as_bytes(), &secret)
            .map_err(|e| Refusal::internal("sealing the TOTP secret", e))?;
        Ok((
            StaffRow {
                id: id.to_owned(),
                display_name: display_name.to_owned(),
                password_hash,
                totp_secret: sealed,
                totp_last_step: -1,
                failed_logins: 0,
                locked_until: None,
                created_by: by.to_owned(),
                created_at: t,
                last_login_at: None,
            },
            NewStaff {
                id: id.to_owned(),
                password,
                totp_secret: auth::base32(&secret),
                otpauth_uri: auth::otpauth_uri(&self.config.totp_issuer, id, &secret),
                grant_id: None,
            },
        ))
    }

    fn exists(e: StoreError) -> Refusal {
        match e {
            StoreError::Conflict(_) => Refusal::new(
                Code::InvalidRequest,
                "id: a staff account with this id exists",
            ),
            other => other.into(),
        }
    }

    /// `POST /v1/admin/staff` (a security officer): a new account with no grant.
    pub async fn create(
        &self,
        officer: &StaffSession,
        id: &str,
        display_name: &str,
    ) -> Outcome<NewStaff> {
        self.require(officer, Role::SecurityOfficer, None).await?;
        let t = now();
        let (row, new) = self.new_account(id, display_name, &officer.staff_id, t)?;
        let commit = Commit::new()
            .change(StaffChange::InsertStaff(row))
            .leaf(leaf(
                &StaffEvent::Created {
                    staff: self.pseudonym(id),
                    by: self.pseudonym(&officer.staff_id),
                },
                &[],
                t,
            ));
        self.commit(commit).await.map_err(Self::exists)?;
        Ok(new)
    }

    /// `tsunagu admin staff create`: the first security officer (or anyone) with one grant,
    /// from the command line, on the operator's own machine.
    pub async fn bootstrap(
        &self,
        id: &str,
        role: Role,
        scope: Option<Scope>,
        days: u32,
    ) -> Outcome<NewStaff> {
        auth::valid_grant(role, scope).map_err(|m| Refusal::new(Code::InvalidRequest, m))?;
        if days == 0 || days > self.config.grant_max_days {
            return Err(Refusal::new(
                Code::InvalidRequest,
                format!(
                    "days: between 1 and admin.grant_max_days ({})",
                    self.config.grant_max_days
                ),
            ));
        }
        let t = now();
        let (row, mut new) = self.new_account(id, id, BOOTSTRAP, t)?;
        let grant = GrantRow {
            grant_id: format!(
                "grant_{}",
                random::token(12).map_err(|e| Refusal::internal("id", e))?
            ),
            staff_id: id.to_owned(),
            role,
            scope,
            reason: "bootstrap from the command line".into(),
            issued_by: BOOTSTRAP.into(),
            issued_at: t,
            expires_at: t + i64::from(days) * 86_400,
            reconfirmed_at: t,
            withdrawn_at: None,
            withdrawn_by: None,
            withdrawn_reason: None,
        };
        let staff = self.pseudonym(id);
        let commit = Commit::new()
            .change(StaffChange::InsertStaff(row))
            .change(StaffChange::InsertGrant(grant.clone()))
            .leaf(leaf(
                &StaffEvent::Created {
                    staff: staff.clone(),
                    by: BOOTSTRAP.into(),
                },
                &[],
                t,
            ))
            .leaf(leaf(
                &StaffEvent::GrantIssued {
                    grant: grant.grant_id.clone(),
                    staff,
                    role,
                    scope,
                    expires_at: grant.expires_at,
                    by: BOOTSTRAP.into(),
                },
                &[],
                t,
            ));
        self.commit(commit).await.map_err(Self::exists)?;
        new.grant_id = Some(grant.grant_id);
        Ok(new)
    }

    /// `POST /v1/admin/login`. `console` also makes a CSRF token for the cookie session.
    pub async fn login(
        &self,
        id: &str,
        password: &str,
        totp: &str,
        ip: IpAddr,
        console: bool,
    ) -> Outcome<LoggedIn> {
        let t = now();
        let Some(row) = self.staff(id).await? else {
            // Same work as a wrong password: the answer does not tell which was wrong.
            let password = password.to_owned();
            let _ = tokio::task::spawn_blocking(move || {
                auth::verify_password(&password, auth::decoy_hash())
            })
            .await;
            self.record(
                &StaffEvent::LoginRefused {
                    staff: None,
                    reason: Code::InvalidCredentials,
                },
                &[],
            )
            .await;
            return Err(Refusal::new(
                Code::InvalidCredentials,
                "wrong staff id or password",
            ));
        };
        let pseudonym = self.pseudonym(&row.id);
        let refuse = |code| StaffEvent::LoginRefused {
            staff: Some(pseudonym.clone()),
            reason: code,
        };
        if let Some(until) = row.locked_until
            && until > t
        {
            self.record(&refuse(Code::Locked), &[]).await;
            return Err(Refusal::new(
                Code::Locked,
                format!(
                    "too many failed logins: locked until {}",
                    tsunagu_platform::iso8601(until)
                ),
            ));
        }
        // Argon2id takes tens of milliseconds of CPU: off the async workers.
        let verified = {
            let (password, phc) = (password.to_owned(), row.password_hash.clone());
            tokio::task::spawn_blocking(move || auth::verify_password(&password, &phc))
                .await
                .map_err(|e| Refusal::internal("argon2", e))?
        };
        if !verified {
            return Err(self
                .fail_login(
                    &row.id,
                    &pseudonym,
                    Code::InvalidCredentials,
                    "wrong staff id or password",
                    t,
                )
                .await);
        }
        let secret = self
            .platform
            .keys
            .open_sealed(
                format!("staff-totp:{}", row.id).as_bytes(),
                &row.totp_secret,
            )
            .map_err(|e| Refusal::internal("TOTP secret", e))?;
        let Some(step) = auth::matching_step(&secret, totp.trim(), t) else {
            return Err(self
                .fail_login(
                    &row.id,
                    &pseudonym,
                    Code::TotpInvalid,
                    "the one-time code is wrong or too old",
                    t,
                )
                .await);
        };
        if step <= row.totp_last_step {
            return Err(self
                .fail_login(
                    &row.id,
                    &pseudonym,
                    Code::TotpReplayed,
                    "this one-time code (or a later one) was already used: wait for the next code",
                    t,
                )
                .await);
        }
        let token = random::token(32).map_err(|e| Refusal::internal("token", e))?;
        let csrf = if console {
            Some(random::token(24).map_err(|e| Refusal::internal("token", e))?)
        } else {
            None
        };
        let ttl = self.config.session_ttl_seconds;
        let commit = Commit::new()
            .change(StaffChange::AcceptLogin {
                staff_id: row.id.clone(),
                expected_step: row.totp_last_step,
                step,
                at: t,
            })
            .change(StaffChange::InsertSession(SessionRow {
                token_hash: token_hash(&token),
                staff_id: row.id.clone(),
                client_ip: canonical(ip).to_string(),
                csrf: csrf.clone(),
                expires_at: t + ttl as i64,
                created_at: t,
            }))
            .leaf(leaf(
                &StaffEvent::Login {
                    staff: pseudonym.clone(),
                },
                &[],
                t,
            ));
        match self.commit(commit).await {
            Ok(()) => {}
            // Failures racing this login locked the account meanwhile.
            Err(StoreError::Conflict(_))
                if self
                    .staff(&row.id)
                    .await?
                    .and_then(|r| r.locked_until)
                    .is_some_and(|until| until > t) =>
            {
                self.record(&refuse(Code::Locked), &[]).await;
                return Err(Refusal::new(
                    Code::Locked,
                    "too many failed logins: the account is locked",
                ));
            }
            // Another login took this step (or a later one) meanwhile.
            Err(StoreError::Conflict(_)) => {
                return Err(self
                    .fail_login(
                        &row.id,
                        &pseudonym,
                        Code::TotpReplayed,
                        "this one-time code was used by another login at the same time",
                        t,
                    )
                    .await);
            }
            Err(e) => return Err(e.into()),
        }
        metrics::counter!("tsunagu_staff_logins_total", "outcome" => "accepted").increment(1);
        Ok(LoggedIn {
            token,
            expires_in: ttl,
            csrf,
        })
    }

    /// Counts a failed login (the lock grows with each), records the refusal, and answers it.
    async fn fail_login(
        &self,
        staff_id: &str,
        pseudonym: &str,
        code: Code,
        detail: &str,
        t: i64,
    ) -> Refusal {
        let commit = Commit::new()
            .change(StaffChange::CountFailure {
                staff_id: staff_id.to_owned(),
                at: t,
                rule: self.config.lock_rule(),
            })
            .leaf(leaf(
                &StaffEvent::LoginRefused {
                    staff: Some(pseudonym.to_owned()),
                    reason: code,
                },
                &[],
                t,
            ));
        if let Err(e) = self.commit(commit).await {
            return Refusal::from(e);
        }
        metrics::counter!("tsunagu_staff_logins_total", "outcome" => code.as_str()).increment(1);
        Refusal::new(code, detail)
    }

    /// The session of a bearer token or console cookie, from this client only.
    pub async fn authenticate(&self, token: &str, ip: IpAddr) -> Outcome<StaffSession> {
        let hash = token_hash(token);
        let t = now();
        let row = {
            let hash = hash.clone();
            self.platform
                .database()
                .read(move |c| {
                    c.query_opt(SQL_SESSION, &params![hash.as_str()])?
                        .map(session_row)
                        .transpose()
                })
                .await?
        };
        let unauthorized = || Refusal::new(Code::Unauthorized, "log in as staff first");
        let row = row.filter(|r| r.expires_at > t).ok_or_else(unauthorized)?;
        if row.client_ip != canonical(ip).to_string() {
            return Err(Refusal::new(
                Code::Unauthorized,
                "this session belongs to another client address: log in again",
            ));
        }
        Ok(StaffSession {
            staff_id: row.staff_id,
            token_hash: row.token_hash,
            csrf: row.csrf,
            expires_at: row.expires_at,
        })
    }

    pub async fn logout(&self, session: &StaffSession) -> Outcome<()> {
        self.commit(Commit::new().change(StaffChange::DeleteSession {
            token_hash: session.token_hash.clone(),
        }))
        .await?;
        Ok(())
    }

    /// Deletes expired sessions.
    pub async fn purge_sessions(&self) -> Outcome<u64> {
        let t = now();
        Ok(self
            .platform
            .database()
            .write(move |c| {
                c.execute(
                    "DELETE FROM staff_sessions WHERE expires_at <= $1",
                    &params![t],
                )
            })
            .await?)
    }

    /// The grant in force that allows `role` (and `scope`), or `no_grant`.
    pub async fn require(
        &self,
        session: &StaffSession,
        role: Role,
        scope: Option<Scope>,
    ) -> Outcome<GrantRow> {
        let t = now();
        self.grants(Some(&session.staff_id))
            .await?
            .into_iter()
            .find(|g| {
                g.active_at(t)
                    && g.role == role
                    && match (scope, g.scope) {
                        (None, _) => true,
                        (Some(needed), Some(held)) => held.allows(needed),
                        (Some(_), None) => false,
                    }
            })
            .ok_or_else(|| {
                Refusal::new(
                    Code::NoGrant,
                    match scope {
                        Some(s) => format!(
                            "this needs an {} grant with scope {} in force",
                            role.as_str(),
                            s.as_str()
                        ),
                        None => format!("this needs a {} grant in force", role.as_str()),
                    },
                )
            })
    }

    /// The roles this staff member holds now (for the console's menu).
    pub async fn roles(&self, session: &StaffSession) -> Outcome<Vec<(Role, Option<Scope>)>> {
        let t = now();
        Ok(self
            .grants(Some(&session.staff_id))
            .await?
            .into_iter()
            .filter(|g| g.active_at(t))
            .map(|g| (g.role, g.scope))
            .collect())
    }

    /// `POST /v1/admin/grants`.
    pub async fn issue_grant(
        &self,
        officer: &StaffSession,
        staff_id: &str,
        role: Role,
        scope: Option<Scope>,
        expires_at: i64,
        reason: &str,
    ) -> Outcome<GrantRow> {
        self.require(officer, Role::SecurityOfficer, None).await?;
        auth::valid_grant(role, scope).map_err(|m| Refusal::new(Code::InvalidRequest, m))?;
        let t = now();
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Refusal::new(
                Code::ReasonRequired,
                "reason: why this grant is issued",
            ));
        }
        if staff_id == officer.staff_id {
            return Err(Refusal::new(
                Code::Forbidden,
                "a security officer does not issue grants to themselves: another officer does",
            ));
        }
        let max = t + i64::from(self.config.grant_max_days) * 86_400;
        if expires_at <= t || expires_at > max {
            return Err(Refusal::new(
                Code::InvalidRequest,
                format!(
                    "expires_at: after now and at most admin.grant_max_days ({}) ahead",
                    self.config.grant_max_days
                ),
            ));
        }
        let target = self
            .staff(staff_id)
            .await?
            .ok_or_else(|| Refusal::new(Code::UnknownStaff, "staff_id: no such staff account"))?;
        // The officer who created an account saw its password and TOTP secret: another
        // officer grants it anything (two people, or one could act under a puppet account).
        if target.created_by == officer.staff_id {
            return Err(Refusal::new(
                Code::Forbidden,
                "you created this account and saw its credentials: another security officer issues its grants",
            ));
        }
        let grant = GrantRow {
            grant_id: format!(
                "grant_{}",
                random::token(12).map_err(|e| Refusal::internal("id", e))?
            ),
            staff_id: staff_id.to_owned(),
            role,
            scope,
            reason: reason.to_owned(),
            issued_by: officer.staff_id.clone(),
            issued_at: t,
            expires_at,
            reconfirmed_at: t,
            withdrawn_at: None,
            withdrawn_by: None,
            withdrawn_reason: None,
        };
        let commit = Commit::new()
            .change(StaffChange::InsertGrant(grant.clone()))
            .leaf(leaf(
                &StaffEvent::GrantIssued {
                    grant: grant.grant_id.clone(),
                    staff: self.pseudonym(staff_id),
                    role,
                    scope,
                    expires_at,
                    by: self.pseudonym(&officer.staff_id),
                },
                &[],
                t,
            ));
        self.commit(commit).await?;
        Ok(grant)
    }

    /// `DELETE /v1/admin/grants/{id}`: withdrawn at once (transfer, leave).
    pub async fn withdraw_grant(
        &self,
        officer: &StaffSession,
        grant_id: &str,
        reason: &str,
    ) -> Outcome<GrantRow> {
        self.require(officer, Role::SecurityOfficer, None).await?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Refusal::new(
                Code::ReasonRequired,
                "reason: why the grant is withdrawn",
            ));
        }
        let mut grant = self
            .grant(grant_id)
            .await?
            .ok_or_else(|| Refusal::new(Code::UnknownStaff, "no such grant"))?;
        if grant.withdrawn_at.is_some() {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "the grant was already withdrawn",
            ));
        }
        let t = now();
        let commit = Commit::new()
            .change(StaffChange::WithdrawGrant {
                grant_id: grant_id.to_owned(),
                at: t,
                by: officer.staff_id.clone(),
                reason: reason.to_owned(),
            })
            .leaf(leaf(
                &StaffEvent::GrantWithdrawn {
                    grant: grant_id.to_owned(),
                    staff: self.pseudonym(&grant.staff_id),
                    by: self.pseudonym(&officer.staff_id),
                    reason: reason.to_owned(),
                },
                &[],
                t,
            ));
        self.commit(commit).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                Refusal::new(Code::InvalidRequest, "the grant was already withdrawn")
            }
            other => other.into(),
        })?;
        grant.withdrawn_at = Some(t);
        grant.withdrawn_by = Some(officer.staff_id.clone());
        grant.withdrawn_reason = Some(reason.to_owned());
        Ok(grant)
    }

    /// `POST /v1/admin/grants/{id}/reconfirm`: still needed (the periodic review).
    pub async fn reconfirm_grant(
        &self,
        officer: &StaffSession,
        grant_id: &str,
    ) -> Outcome<GrantRow> {
        self.require(officer, Role::SecurityOfficer, None).await?;
        let mut grant = self
            .grant(grant_id)
            .await?
            .ok_or_else(|| Refusal::new(Code::UnknownStaff, "no such grant"))?;
        if grant.staff_id == officer.staff_id {
            return Err(Refusal::new(
                Code::Forbidden,
                "a security officer does not review their own grant: another officer does",
            ));
        }
        let t = now();
        if !grant.active_at(t) {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "the grant is withdrawn or past its end: issue a new one",
            ));
        }
        let commit = Commit::new()
            .change(StaffChange::ReconfirmGrant {
                grant_id: grant_id.to_owned(),
                at: t,
            })
            .leaf(leaf(
                &StaffEvent::GrantReconfirmed {
                    grant: grant_id.to_owned(),
                    staff: self.pseudonym(&grant.staff_id),
                    by: self.pseudonym(&officer.staff_id),
                },
                &[],
                t,
            ));
        self.commit(commit).await?;
        grant.reconfirmed_at = t;
        Ok(grant)
    }

    /// `GET /v1/admin/access-review`: the review, recorded as a `staff.access_reviewed` leaf.
    pub async fn access_review(&self, officer: &StaffSession) -> Outcome<AccessReview> {
        self.review(officer, true).await
    }

    /// What the access review lists; a leaf only when `record` (the officer runs the review,
    /// not a page that shows where it stands).
    pub async fn review(&self, officer: &StaffSession, record: bool) -> Outcome<AccessReview> {
        self.require(officer, Role::SecurityOfficer, None).await?;
        let t = now();
        let since = t - i64::from(self.config.review_period_days) * 86_400;
        let grants_due: Vec<GrantRow> = self
            .grants(None)
            .await?
            .into_iter()
            .filter(|g| g.active_at(t) && g.reconfirmed_at < since)
            .collect();
        let accounts_unused: Vec<UnusedAccount> = self
            .all_staff()
            .await?
            .into_iter()
            .filter(|s| s.last_login_at.unwrap_or(s.created_at) < since)
            .map(|s| UnusedAccount {
                staff_id: s.id,
                last_login_at: s.last_login_at,
                created_at: s.created_at,
            })
            .collect();
        if record {
            self.commit(Commit::new().leaf(leaf(
                &StaffEvent::AccessReviewed {
                    by: self.pseudonym(&officer.staff_id),
                    grants_due: grants_due.len() as u64,
                    accounts_unused: accounts_unused.len() as u64,
                },
                &[],
                t,
            )))
            .await?;
        }
        Ok(AccessReview {
            review_period_days: self.config.review_period_days,
            grants_due,
            accounts_unused,
        })
    }

    /// `GET /v1/admin/residents/{account_id}?reason=…`: an operator with `view` looks at a
    /// resident's account and four basic items. The look is a leaf in the resident's
    /// history, committed before anything is shown.
    pub async fn view_resident(
        &self,
        session: &StaffSession,
        account_id: &AccountId,
        reason: Option<&str>,
        ip: IpAddr,
    ) -> Outcome<ResidentView> {
        let reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                Refusal::new(
                    Code::ReasonRequired,
                    "reason: say why you look at this resident's data (the resident will read it)",
                )
            })?;
        if reason.chars().count() > 500 {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "reason: at most 500 characters",
            ));
        }
        let t = now();
        let subject = self.platform.keys.ledger_subject(account_id).into_string();
        // The grant first: without one, nothing about the account is read (not even whether
        // it exists); the attempt is a leaf in the history of the account, if there is one.
        if let Err(refusal) = self
            .require(session, Role::Operator, Some(Scope::View))
            .await
        {
            if self.platform.account_by_id(account_id).await?.is_some() {
                self.record(
                    &StaffEvent::ViewRefused {
                        staff: self.pseudonym(&session.staff_id),
                        subject,
                        role: Role::Operator,
                        reason: refusal.code,
                        status: "refused",
                    },
                    &[account_id],
                )
                .await;
            }
            return Err(refusal);
        }
        let (account, attributes) = self.platform.basic_items(account_id).await?;
        let items: Vec<String> = if attributes.is_some() {
            ["name", "address", "birthdate", "gender"]
                .map(str::to_owned)
                .to_vec()
        } else {
            vec![]
        };
        let commit = Commit::new()
            .change(StaffChange::InsertView(ViewRow {
                seq: 0,
                staff_id: session.staff_id.clone(),
                account_id: account_id.clone(),
                items: items.clone(),
                reason: reason.to_owned(),
                client_ip: canonical(ip).to_string(),
                at: t,
            }))
            .leaf(leaf(
                &StaffEvent::Viewed {
                    staff: self.pseudonym(&session.staff_id),
                    subject,
                    role: Role::Operator,
                    items: items.clone(),
                    reason: reason.to_owned(),
                },
                &[account_id],
                t,
            ));
        self.commit(commit).await?;
        metrics::counter!("tsunagu_staff_views_total").increment(1);
        Ok(ResidentView {
            account_id: account.id,
            level: account.level,
            status: account.status,
            restriction: account.restriction,
            erased: account.erased_at.is_some(),
            created_at: account.created_at,
            basic_items: attributes,
            items_shown: items,
        })
    }

    /// The residents' open requests (an operator with `view`), oldest deadline first. What a
    /// resident wrote in a request is their data: each resident whose words the queue shows
    /// gets a `staff.viewed` leaf (item `request_detail`) in their history, as any look.
    pub async fn queue(
        &self,
        session: &StaffSession,
        overdue_only: bool,
        ip: IpAddr,
    ) -> Outcome<Vec<tsunagu_rights::RequestView>> {
        self.require(session, Role::Operator, Some(Scope::View))
            .await?;
        let queue = self.rights.queue(overdue_only).await?;
        let t = now();
        let reason = "handling your request (the staff request queue)";
        let mut seen = BTreeSet::new();
        let mut commit = Commit::new();
        for r in &queue {
            let Some(account) = r.account_id.as_ref().filter(|_| r.detail.is_some()) else {
                continue;
            };
            if !seen.insert(account.clone()) {
                continue;
            }
            commit.push(StaffChange::InsertView(ViewRow {
                seq: 0,
                staff_id: session.staff_id.clone(),
                account_id: account.clone(),
                items: vec!["request_detail".into()],
                reason: reason.into(),
                client_ip: canonical(ip).to_string(),
                at: t,
            }));
            commit = commit.leaf(leaf(
                &StaffEvent::Viewed {
                    staff: self.pseudonym(&session.staff_id),
                    subject: self.platform.keys.ledger_subject(account).into_string(),
                    role: Role::Operator,
                    items: vec!["request_detail".into()],
                    reason: reason.into(),
                },
                &[account],
                t,
            ));
        }
        if !seen.is_empty() {
            self.commit(commit).await?;
        }
        Ok(queue)
    }

    /// The looks in `[from, to)`.
    pub async fn views(&self, from: i64, to: i64) -> Outcome<Vec<ViewRow>> {
        Ok(self
            .platform
            .database()
            .read(move |c| {
                c.query(SQL_VIEWS, &params![from, to])?
                    .into_iter()
                    .map(view_row)
                    .collect()
            })
            .await?)
    }

    /// `GET /v1/admin/reports/access?from=&to=` (an auditor): who looked at what and when,
    /// and what was unusual.
    pub async fn access_report(
        &self,
        auditor: &StaffSession,
        from: i64,
        to: i64,
    ) -> Outcome<AccessReport> {
        self.require(auditor, Role::Auditor, None).await?;
        if to <= from {
            return Err(Refusal::new(Code::InvalidRange, "to must be after from"));
        }
        let views = self.views(from, to).await?;
        let unusual = self.unusual(&views).await?;
        Ok(AccessReport {
            from,
            to,
            views,
            unusual,
        })
    }

    async fn unusual(&self, views: &[ViewRow]) -> Outcome<Vec<Unusual>> {
        let mut out = Vec::new();
        let mut per_hour: BTreeMap<(String, i64), BTreeSet<AccountId>> = BTreeMap::new();
        for v in views {
            per_hour
                .entry((v.staff_id.clone(), v.at.div_euclid(3600) * 3600))
                .or_default()
                .insert(v.account_id.clone());
        }
        for ((staff_id, hour_start), residents) in per_hour {
            if residents.len() as u64 > u64::from(self.config.bulk_threshold) {
                out.push(Unusual::Bulk {
                    staff_id,
                    hour_start,
                    residents: residents.len() as u64,
                });
            }
        }
        let hours = self.config.hours();
        for v in views {
            if !hours.contains(v.at) {
                out.push(Unusual::OffHours {
                    staff_id: v.staff_id.clone(),
                    account_id: v.account_id.clone(),
                    at: v.at,
                });
            }
            if !self.rights.open_at(&v.account_id, v.at).await? {
                out.push(Unusual::NoOpenRequest {
                    staff_id: v.staff_id.clone(),
                    account_id: v.account_id.clone(),
                    at: v.at,
                });
            }
        }
        Ok(out)
    }

    /// How many staff accounts exist (each has a TOTP secret: the column is required).
    pub async fn count_staff(&self) -> Outcome<i64> {
        Ok(self
            .platform
            .database()
            .read(|c| c.query_int("SELECT COUNT(*) FROM staff_accounts", &[]))
            .await?)
    }
}
