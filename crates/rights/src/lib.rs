//! # tsunagu-rights
//!
//! The `rights` capability (SPEC §9): a resident uses every right online and sees each
//! request's deadline. `POST /v1/me/requests` files a disclosure, correction, suspension
//! (利用停止), erasure, stop of provision (第三者提供の停止) or resume; `GET /v1/me/requests`
//! and `/{id}` show them; `/{id}/export` is a disclosure's copy of everything the platform
//! holds about the resident (JSON, or `?format=html` to read). Requests that need a person
//! (a correction) wait in the staff queue that `tsunagu-staff` serves with [`Rights::queue`]
//! and [`Rights::decide`].
//!
//! Every state change is a ledger leaf in the resident's history (`rights.*`); a request
//! that acts at once commits its effect (the account's restriction, the erasure) together
//! with the request and its leaves.
//!
//! Invariant: the platform's rules stay in the platform (`Platform::restriction_change`,
//! `Platform::erasure_commit`, the ticket decision's `suspended_by_resident`); this crate
//! owns the requests, their deadlines and the export.

pub mod export;
pub mod model;
pub mod service;

pub use model::{DsrConfig, RequestStatus, RequestType};
pub use service::{RequestView, Rights, RightsEvent};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use tsunagu_api::ApiError;
use tsunagu_api::extract::{Json, Query, bearer, json_response};
use tsunagu_capability::{
    AssessmentSection, Capability, Context, DataFile, DataItem, Measure, Migration, Migrations,
    Mount, SectionFuture,
};
use tsunagu_core::Code;
use tsunagu_platform::identity::Session;

/// The capability's name.
pub const NAME: &str = "rights";

/// `rights`: residents' data-subject requests.
pub struct RightsCapability;

const MIGRATIONS: Migrations = Migrations {
    capability: NAME,
    steps: &[Migration {
        version: 1,
        name: "requests",
        sqlite: include_str!("../migrations/sqlite/0001_requests.sql"),
        postgres: include_str!("../migrations/postgres/0001_requests.sql"),
    }],
};

impl Capability for RightsCapability {
    fn name(&self) -> &'static str {
        NAME
    }

    fn config_sections(&self) -> &'static [&'static str] {
        &["dsr"]
    }

    fn migrations(&self) -> Option<Migrations> {
        Some(MIGRATIONS)
    }

    fn ledger_events(&self) -> &'static [&'static str] {
        service::EVENTS
    }

    fn mount(&self, ctx: &Context) -> anyhow::Result<Mount> {
        let rights = Rights::new(ctx.platform.clone(), ctx.section::<DsrConfig>()?);
        Ok(Mount::routes(routes(rights)))
    }

    fn assessment<'a>(&'a self, ctx: &'a Context) -> SectionFuture<'a> {
        Box::pin(async move {
            let config = ctx.section::<DsrConfig>()?;
            let open = ctx
                .platform
                .database()
                .read(|c| {
                    c.query_int(
                        "SELECT COUNT(*) FROM dsr_requests WHERE status IN ('received', 'in_progress')",
                        &[],
                    )
                })
                .await?;
            let overdue = ctx
                .platform
                .database()
                .read(|c| {
                    c.query_int(
                        "SELECT COUNT(*) FROM dsr_requests WHERE status IN ('received', 'in_progress') AND deadline < $1",
                        &tsunagu_store::params![tsunagu_platform::now()],
                    )
                })
                .await?;
            let subjects = ctx
                .platform
                .database()
                .read(|c| c.query_int("SELECT COUNT(DISTINCT account_id) FROM dsr_requests", &[]))
                .await?;
            Ok(AssessmentSection {
                files: vec![DataFile {
                    id: "rights.requests".into(),
                    name: "data-subject requests".into(),
                    items: vec![
                        DataItem::new("request type, status, deadline", false),
                        DataItem::new("the resident's own words (sealed)", true),
                    ],
                    subjects: u64::try_from(subjects).ok(),
                    sources: vec!["the resident".into()],
                    uses: vec!["answering the resident's requests (APPI Art. 33-35)".into()],
                    retention:
                        "kept; an erasure forgets the resident's words and keeps the minimal record"
                            .into(),
                }],
                flows: vec![],
                measures: vec![Measure::new(
                    "rights.deadlines_met",
                    "Every request has a deadline; none is open past it",
                    overdue == 0,
                    format!(
                        "deadlines {} days (erasure {}); {open} open, {overdue} overdue",
                        config.deadline_days.disclosure, config.deadline_days.erasure
                    ),
                )],
            })
        })
    }
}

/// The JSON API routes this capability serves (documented in the API's OpenAPI document).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/me/requests"),
    ("POST", "/v1/me/requests"),
    ("GET", "/v1/me/requests/{id}"),
    ("GET", "/v1/me/requests/{id}/export"),
];

/// The routes, with their state.
pub fn routes(rights: Rights) -> Router {
    Router::new()
        .route("/v1/me/requests", get(list).post(file))
        .route("/v1/me/requests/{id}", get(one))
        .route("/v1/me/requests/{id}/export", get(export_route))
        .with_state(rights)
}

async fn resident(rights: &Rights, headers: &HeaderMap) -> Result<Session, ApiError> {
    let token = bearer(headers)
        .ok_or_else(|| ApiError::new(Code::Unauthorized, "a bearer access token is required"))?;
    Ok(rights.platform().identity.authenticate(token).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    #[serde(rename = "type")]
    request_type: String,
    #[serde(default)]
    detail: Option<String>,
}

/// Longest detail a resident may write.
pub const MAX_DETAIL: usize = 4000;

async fn file(
    State(rights): State<Rights>,
    headers: HeaderMap,
    Json(body): Json<FileBody>,
) -> Result<Response, ApiError> {
    let session = resident(&rights, &headers).await?;
    let request_type = RequestType::parse(&body.request_type).ok_or_else(|| {
        ApiError::new(
            Code::InvalidRequest,
            "type: one of disclosure, correction, suspension, erasure, stop_provision, resume",
        )
    })?;
    let view = rights
        .file(&session, request_type, body.detail.as_deref())
        .await?;
    Ok(json_response(StatusCode::CREATED, &view))
}

async fn list(State(rights): State<Rights>, headers: HeaderMap) -> Result<Response, ApiError> {
    let session = resident(&rights, &headers).await?;
    let requests = rights.list(&session).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "requests": requests }),
    ))
}

async fn one(
    State(rights): State<Rights>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let session = resident(&rights, &headers).await?;
    let row = rights.get(&session, &id).await?;
    let view = rights.view(&row, false, tsunagu_platform::now())?;
    Ok(json_response(StatusCode::OK, &view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    format: Option<String>,
    lang: Option<String>,
}

async fn export_route(
    State(rights): State<Rights>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let session = resident(&rights, &headers).await?;
    let html = match q.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(_) => {
            return Err(ApiError::new(
                Code::InvalidRequest,
                "format: json (the default) or html",
            ));
        }
    };
    let row = rights.get(&session, &id).await?;
    if row.request_type != RequestType::Disclosure || row.status != RequestStatus::Completed {
        return Err(ApiError::new(
            Code::NotFound,
            "an export belongs to a completed disclosure request",
        ));
    }
    let export = export::build(&rights, &session, &row).await?;
    let mut response = if html {
        let en = q.lang.as_deref() == Some("en");
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            export::html(&export, en),
        )
            .into_response()
    } else {
        json_response(StatusCode::OK, &export)
    };
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    if html {
        // The page loads the app's stylesheet and nothing else.
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    Ok(response)
}
