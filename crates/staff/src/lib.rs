//! # tsunagu-staff
//!
//! The `staff` capability (SPEC §8): operator staff under least privilege. Staff log in with
//! an Argon2id password and a TOTP code (each code once per account), from the networks in
//! `[admin] allowed_networks` only, and hold roles by grants that end, can be withdrawn at
//! once and are reviewed periodically. **Every look by an insider at a resident's data is a
//! ledger leaf the resident reads in their history** (`staff.viewed`, with the items and the
//! stated reason). Auditors read the access report (bulk, off-hours, and looks with no open
//! request). The residents' requests that need a person are decided here, through
//! `tsunagu-rights` (ADR 0022: staff depends on rights, never the other way).
//!
//! The API is under `/v1/admin/*` (bearer tokens); the console under `/admin` (cookie and
//! CSRF token, Japanese and English).

pub mod auth;
pub mod config;
pub mod console;
pub mod service;
pub mod store;

pub use auth::{Role, Scope};
pub use config::AdminConfig;
pub use service::{Staff, StaffEvent, StaffSession};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use std::net::IpAddr;
use tsunagu_api::ApiError;
use tsunagu_api::extract::{Json, Query, bearer, json_response};
use tsunagu_capability::{
    AssessmentSection, Capability, ClientAddr, Context, DataFile, DataItem, Job, Measure,
    Migration, Migrations, Mount, SectionFuture,
};
use tsunagu_core::{AccountId, Code};
use tsunagu_rights::{DsrConfig, RequestStatus, Rights};

/// The capability's name.
pub const NAME: &str = "staff";

const MIGRATIONS: Migrations = Migrations {
    capability: NAME,
    steps: &[Migration {
        version: 1,
        name: "staff",
        sqlite: include_str!("../migrations/sqlite/0001_staff.sql"),
        postgres: include_str!("../migrations/postgres/0001_staff.sql"),
    }],
};

/// `staff`: operator staff, their grants and the residents' request queue.
pub struct StaffCapability;

/// The service for a running platform (the binary's `admin staff create` uses it too).
pub fn service(ctx: &Context) -> anyhow::Result<Staff> {
    let rights = Rights::new(ctx.platform.clone(), ctx.section::<DsrConfig>()?);
    Ok(Staff::new(
        ctx.platform.clone(),
        ctx.section::<AdminConfig>()?,
        rights,
    ))
}

impl Capability for StaffCapability {
    fn name(&self) -> &'static str {
        NAME
    }

    fn config_sections(&self) -> &'static [&'static str] {
        &["admin"]
    }

    fn migrations(&self) -> Option<Migrations> {
        Some(MIGRATIONS)
    }

    fn ledger_events(&self) -> &'static [&'static str] {
        service::EVENTS
    }

    fn mount(&self, ctx: &Context) -> anyhow::Result<Mount> {
        let staff = service(ctx)?;
        let purge = {
            let staff = staff.clone();
            Job::new("staff.purge_sessions", ctx.sweep_every, move || {
                let staff = staff.clone();
                async move {
                    staff
                        .purge_sessions()
                        .await
                        .map_err(|r| anyhow::anyhow!("{}", r.detail))
                }
            })
        };
        Ok(Mount::routes(routes(staff)).job(purge))
    }

    fn assessment<'a>(&'a self, ctx: &'a Context) -> SectionFuture<'a> {
        Box::pin(async move {
            let staff = service(ctx)?;
            let config = staff.config.clone();
            let t = tsunagu_platform::now();
            let since = t - i64::from(config.review_period_days) * 86_400;
            let grants = staff
                .grants(None)
                .await
                .map_err(|r| anyhow::anyhow!("{}", r.detail))?;
            let due = grants
                .iter()
                .filter(|g| g.active_at(t) && g.reconfirmed_at < since)
                .count();
            let open_ended = grants
                .iter()
                .filter(|g| g.expires_at - g.issued_at > i64::from(config.grant_max_days) * 86_400)
                .count();
            let accounts = staff
                .count_staff()
                .await
                .map_err(|r| anyhow::anyhow!("{}", r.detail))?;
            let loopback_only = config.networks().iter().all(|n| n.addr().is_loopback());
            Ok(AssessmentSection {
                files: vec![
                    DataFile {
                        id: "staff.accounts".into(),
                        name: "operator staff accounts".into(),
                        items: vec![
                            DataItem::new("staff id and display name", false),
                            DataItem::new(
                                "password (Argon2id hash) and TOTP secret (sealed)",
                                true,
                            ),
                        ],
                        subjects: u64::try_from(accounts).ok(),
                        sources: vec!["the security officer".into()],
                        uses: vec!["authenticating operator staff".into()],
                        retention: "while the account exists".into(),
                    },
                    DataFile {
                        id: "staff.views".into(),
                        name: "looks by staff at residents' data".into(),
                        items: vec![DataItem::new(
                            "staff id, resident account id, items shown, reason, address, time",
                            false,
                        )],
                        subjects: None,
                        sources: vec!["the platform, at each look".into()],
                        uses: vec!["access-log audits; the resident's history".into()],
                        retention: "kept with the ledger".into(),
                    },
                ],
                flows: vec![],
                measures: vec![
                    Measure::new(
                        "staff.mfa",
                        "Staff log in with a password and a TOTP code",
                        true,
                        format!(
                            "{accounts} staff accounts, each with a TOTP secret (required column)"
                        ),
                    ),
                    Measure::new(
                        "staff.grants_end",
                        "Access rights have an end date and are reviewed",
                        due == 0 && open_ended == 0,
                        format!(
                            "{} grants; {due} without review for more than {} days",
                            grants.len(),
                            config.review_period_days
                        ),
                    ),
                    Measure::new(
                        "staff.networks",
                        "Staff endpoints answer only allowed networks",
                        !config.allowed_networks.is_empty(),
                        format!(
                            "admin.allowed_networks = {:?}{}",
                            config.allowed_networks,
                            if loopback_only {
                                " (loopback only)"
                            } else {
                                ""
                            }
                        ),
                    ),
                    Measure::new(
                        "staff.views_in_history",
                        "Every look at a resident's data is a ledger leaf in that resident's history",
                        true,
                        "staff.viewed leaves are committed before the data is answered",
                    ),
                ],
            })
        })
    }
}

/// The JSON API routes this capability serves (documented in the API's OpenAPI document; the
/// console's pages under `/admin` are not API).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/admin/login"),
    ("POST", "/v1/admin/logout"),
    ("POST", "/v1/admin/staff"),
    ("GET", "/v1/admin/staff"),
    ("POST", "/v1/admin/grants"),
    ("GET", "/v1/admin/grants"),
    ("DELETE", "/v1/admin/grants/{id}"),
    ("POST", "/v1/admin/grants/{id}/reconfirm"),
    ("GET", "/v1/admin/access-review"),
    ("GET", "/v1/admin/residents/{account_id}"),
    ("GET", "/v1/admin/reports/access"),
    ("GET", "/v1/admin/requests"),
    ("POST", "/v1/admin/requests/{id}/decision"),
];

/// The routes (API and console), behind the network check.
pub fn routes(staff: Staff) -> Router {
    let api = Router::new()
        .route("/v1/admin/login", post(login))
        .route("/v1/admin/logout", post(logout))
        .route("/v1/admin/staff", post(create_staff).get(list_staff))
        .route("/v1/admin/grants", post(issue_grant).get(list_grants))
        .route("/v1/admin/grants/{id}", delete(withdraw_grant))
        .route("/v1/admin/grants/{id}/reconfirm", post(reconfirm_grant))
        .route("/v1/admin/access-review", get(access_review))
        .route("/v1/admin/residents/{account_id}", get(view_resident))
        .route("/v1/admin/reports/access", get(access_report))
        .route("/v1/admin/requests", get(queue))
        .route("/v1/admin/requests/{id}/decision", post(decide));
    api.merge(console::routes())
        .layer(middleware::from_fn_with_state(staff.clone(), network_guard))
        .with_state(staff)
}

/// The client's address as the listener saw it (trusted proxies already applied).
pub fn client_ip(req_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    req_extensions.get::<ClientAddr>().map(|a| a.ip)
}

/// `network_not_allowed` before anything else is looked at.
async fn network_guard(State(staff): State<Staff>, req: Request, next: Next) -> Response {
    match client_ip(req.extensions()) {
        Some(ip) if staff.network_allowed(ip) => next.run(req).await,
        _ => ApiError::new(
            Code::NetworkNotAllowed,
            "staff endpoints answer only the networks in admin.allowed_networks",
        )
        .into_response(),
    }
}

fn ip_of(addr: Option<axum::Extension<ClientAddr>>) -> Result<IpAddr, ApiError> {
    addr.map(|a| a.0.ip)
        .ok_or_else(|| ApiError::new(Code::NetworkNotAllowed, "the client's address is unknown"))
}

async fn session(staff: &Staff, headers: &HeaderMap, ip: IpAddr) -> Result<StaffSession, ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        ApiError::new(
            Code::Unauthorized,
            "a staff bearer token is required: POST /v1/admin/login",
        )
    })?;
    Ok(staff.authenticate(token, ip).await?)
}

type Addr = Option<axum::Extension<ClientAddr>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    id: String,
    password: String,
    totp: String,
}

async fn login(State(staff): State<Staff>, addr: Addr, Json(b): Json<LoginBody>) -> Response {
    let ip = match ip_of(addr) {
        Ok(ip) => ip,
        Err(e) => return e.into_response(),
    };
    match staff.login(&b.id, &b.password, &b.totp, ip, false).await {
        Ok(done) => json_response(StatusCode::OK, &done),
        Err(r) if r.code == Code::Locked => {
            ApiError(r).into_response_with(StatusCode::TOO_MANY_REQUESTS)
        }
        Err(r) => ApiError(r).into_response(),
    }
}

async fn logout(
    State(staff): State<Staff>,
    addr: Addr,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = session(&staff, &headers, ip_of(addr)?).await?;
    staff.logout(&s).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    id: String,
    display_name: String,
}

async fn create_staff(
    State(staff): State<Staff>,
    addr: Addr,
    headers: HeaderMap,
    Json(b): Json<CreateBody>,
) -> Result<Response, ApiError> {
    let s = session(&staff, &headers, ip_of(addr)?).await?;
    let new = staff.create(&s, &b.id, &b.display_name).await?;
    Ok(json_response(StatusCode::CREATED, &new))
}

async fn list_staff(
    State(staff): State<Staff>,
    addr: Addr,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = session(&staff, &headers, ip_of(addr)?).await?;
    staff.require(&s, Role::SecurityOfficer, None).await?;
    let list: Vec<_> = staff
        .all_staff()
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "display_name": r.display_name,
                "created_at": r.created_at,
                "created_by": r.created_by,
                "last_login_at": r.last_login_at,
                "locked_until": r.locked_until,
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "staff": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    staff_id: String,
    role: String,
    #[serde(default)]
    scope: Option<String>,
    expires_at: i64,
    reason: String,
}

/// A role and scope from their wire names.
pub fn role_scope(role: &str, scope: Option<&str>) -> Result<(Role, Option<Scope>), ApiError> {
    let role = Role::parse(role).ok_or_else(|| {
        ApiError::new(
            Code::InvalidRequest,
            "role: security_officer, auditor or operator",
        )
    })?;
    let scope = scope
        .map(|s| {
            Scope::parse(s)
                .ok_or_else(|| ApiError::new(Code::InvalidRequest, "scope: view, update or delete"))
        })
        .transpose()?;
    Ok((role, scope))
}

async fn issue_grant(
    State(staff): State<Staff>,
    addr: Addr,
    headers: HeaderMap,
    Json(b): Json<GrantBody>,
) -> Result<Response, ApiError> {
    let s = session(&staff, &headers, ip_of(addr)?).await?;
    let (role, scope) = role_scope(&b.role, b.scope.as_deref())?;
    let grant = staff
        .issue_grant(&s, &b.staff_id, role, scope, b.expires_at, &b.reason)
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "grant_id": grant.grant_id, "grant": grant }),
    ))
}

async fn list_grants(
    State(staff): State<Staff>,
    addr: Addr,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = session(&staff, &headers, ip_of(addr)?).await?;
    staff.require(&s, Role::SecurityOfficer, None).await?;
    let grants = staff.grants(None).await?;
    Ok(json_response(StatusCode::OK, &json!({ "grants": grants })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

async fn withdraw_grant(
    State(staff): State<Staff>,
    addr: Addr,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<ReasonBody>,
) -> Result<Response, ApiError> {
    let s = session(&staff, &headers, ip_of(addr)?).await?;
    let grant = staff.withdraw_grant(&s, &id, &b.reason).await?;
    Ok(json_response(StatusCode::OK, &grant))
}

async fn reconfirm_grant(
    State(staff): State<Staff>,
    addr: Addr,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = session(&staff, &headers, ip_of(addr)?).await?;
    let grant = staff.reconfirm_grant(&s, &id).await?;
    Ok(json_response(StatusCode::OK, &grant))
}

async fn access_review(
    State(staff): State<Staff>,
    addr: Addr,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = session(&staff, &headers, ip_of(addr)?).await?;
    Ok(json_response(
        StatusCode::OK,
        &staff.access_review(&s).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonQuery {
    reason: Option<String>,
}

async fn view_resident(
    State(staff): State<Staff>,
    addr: Addr,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    Query(q): Query<ReasonQuery>,
) -> Result<Response, ApiError> {
    let ip = ip_of(addr)?;
    let s = session(&staff, &headers, ip).await?;
    let view = staff
        .view_resident(&s, &AccountId::from(account_id), q.reason.as_deref(), ip)
        .await?;
    let mut r = json_response(StatusCode::OK, &view);
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeQuery {
    from: Option<i64>,
    to: Option<i64>,
}

async fn access_report(
    State(staff): State<Staff>,
    addr: Addr,
    headers: HeaderMap,
    Query(q): Query<RangeQuery>,
) -> Result<Response, ApiError> {
    let s = session(&staff, &headers, ip_of(addr)?).await?;
    let to = q.to.unwrap_or_else(|| tsunagu_platform::now() + 1);
    let from = q.from.unwrap_or(to - 30 * 86_400);
    Ok(json_response(
        StatusCode::OK,
        &staff.access_report(&s, from, to).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueQuery {
    overdue: Option<bool>,
}

async fn queue(
    State(staff): State<Staff>,
    addr: Addr,
    headers: HeaderMap,
    Query(q): Query<QueueQuery>,
) -> Result<Response, ApiError> {
    let ip = ip_of(addr)?;
    let s = session(&staff, &headers, ip).await?;
    let requests = staff.queue(&s, q.overdue.unwrap_or(false), ip).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "requests": requests }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: String,
    #[serde(default)]
    reason: Option<String>,
}

/// A decision from its wire name.
pub fn decision(s: &str) -> Result<RequestStatus, ApiError> {
    match RequestStatus::parse(s) {
        Some(
            d @ (RequestStatus::InProgress | RequestStatus::Completed | RequestStatus::Refused),
        ) => Ok(d),
        _ => Err(ApiError::new(
            Code::InvalidRequest,
            "decision: in_progress, completed or refused",
        )),
    }
}

async fn decide(
    State(staff): State<Staff>,
    addr: Addr,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<DecisionBody>,
) -> Result<Response, ApiError> {
    let s = session(&staff, &headers, ip_of(addr)?).await?;
    staff
        .require(&s, Role::Operator, Some(Scope::Update))
        .await?;
    let to = decision(&b.decision)?;
    let view = staff
        .rights
        .decide(
            &id,
            to,
            b.reason.as_deref(),
            &s.staff_id,
            &staff.pseudonym(&s.staff_id),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &view))
}
