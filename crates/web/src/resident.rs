//! The resident's web app beyond the home page: device enrollment (`/enroll`, with the
//! simulated My Number card in development), 情報提供の管理 (`/app/consents`: every offer,
//! a switch per purpose, a per-item choice, an expiry picker, revocation, receipts), the
//! history with its ledger marks (`/app/history`), and the devices (`/app/devices`).
//!
//! Every state-changing form is a cookie-authenticated POST that must come from this origin
//! and carry the session's CSRF token; the signed statements inside (consents, changes) are
//! made by the browser's device key (`static/js/pages.js`) or by any client that signs by
//! itself, and checked by the same service functions as the JSON API.

use super::i18n::{key, lookup, text_or};
use super::pages::{LangQuery, page_lang, remember_lang, require_session};
use super::{
    App, AppState, Lang, Page, SESSION_COOKIE, csrf_ok, format_time, html, lang_of, same_origin,
    see_other, session, set_cookie, status_of,
};
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tsunagu_core::consent::{ChangeAction, ConsentStatus};
use tsunagu_core::{Code, ServiceId};
use tsunagu_platform::consents::{OfferItem, OfferStatus};
use tsunagu_platform::history::{HistoryItem, ServiceRef};
use tsunagu_platform::identity::Session;
use tsunagu_platform::{Refusal, now};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/enroll", get(enroll_page))
        .route("/app/consents", get(consents_page).post(grant))
        .route("/app/consents/{id}/revoke", post(revoke))
        .route("/app/consents/{id}/expiry", post(expiry))
        .route("/app/consents/{id}/receipt.json", get(receipt))
        .route("/app/history", get(history_page))
        .route("/app/history.json", get(history_json))
        .route("/app/devices", get(devices_page))
        .route("/app/devices/{id}/revoke", post(revoke_device))
        .route("/app/logins/{id}/revoke", post(end_login))
        .route("/app/requests", get(requests_page).post(file_request))
        .route("/app/requests/{id}/export", get(export_page))
        .route("/app/requests/{id}/export.json", get(export_json))
}

/// Entries shown per history page.
const HISTORY_PAGE: u32 = 50;

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// The fields of a form body (`application/x-www-form-urlencoded`).
struct FormFields(Vec<(String, String)>);

impl FormFields {
    fn parse(body: &[u8]) -> Result<FormFields, Refusal> {
        serde_urlencoded::from_bytes(body)
            .map(FormFields)
            .map_err(|e| Refusal::new(Code::InvalidRequest, format!("form: {e}")))
    }

    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// The checks every cookie-authenticated POST of this module passes: from this origin, and
/// carrying the session's CSRF token.
fn check_form(
    app: &App,
    headers: &HeaderMap,
    token: &str,
    form: &FormFields,
) -> Result<(), Refusal> {
    if !same_origin(app, headers) {
        return Err(Refusal::new(
            Code::Forbidden,
            "this form was sent from another site",
        ));
    }
    if !csrf_ok(form.get("csrf"), token) {
        return Err(Refusal::new(
            Code::Forbidden,
            "the form's security token is missing or stale; reload the page and try again",
        ));
    }
    Ok(())
}

/// A refusal as the resident reads it: a localized sentence when there is one, else the
/// service's own explanation; and the stable code.
pub struct Problem {
    pub message: String,
    pub code: String,
}

fn problem(lang: Lang, e: &Refusal) -> Problem {
    Problem {
        message: text_or(
            lang,
            &key("res-err-", e.code.as_str()),
            &tsunagu_core::code::public_detail(&e.detail),
        ),
        code: e.code.as_str().to_owned(),
    }
}

/// The success message of a `?done=` after a POST.
fn done_message(lang: Lang, done: Option<&str>) -> Option<&'static str> {
    let key = match done? {
        "granted" => "res-done-granted",
        "revoked" => "res-done-revoked",
        "expiry" => "res-done-expiry",
        "device_revoked" => "res-done-device_revoked",
        "login_ended" => "res-done-login_ended",
        "request_filed" => "res-done-request_filed",
        _ => return None,
    };
    lookup(lang, key)
}

/// A signed-in page of this module with a `?done=` message and a refusal to show.
#[derive(Clone, Copy)]
enum View {
    Consents,
    Devices,
    Requests,
}

impl View {
    /// The page as `status`, for the signed-in `(session, token)`.
    async fn render(
        self,
        app: &App,
        lang: Lang,
        (sess, token): (&Session, &str),
        status: StatusCode,
        done: Option<&'static str>,
        error: Option<Problem>,
    ) -> Response {
        match self {
            View::Consents => render_consents(app, lang, sess, token, status, done, error).await,
            View::Devices => render_devices(app, lang, sess, token, status, done, error).await,
            View::Requests => render_requests(app, lang, sess, token, status, done, error).await,
        }
    }

    /// `GET`: the page with the message of `?done=`.
    async fn get(
        self,
        app: &AppState,
        headers: &HeaderMap,
        q: &LangQuery,
        d: &DoneQuery,
    ) -> Response {
        let lang = page_lang(headers, q);
        let (sess, token) = match require_session(app, headers).await {
            Ok(s) => s,
            Err(r) => return r,
        };
        let done = done_message(lang, d.done.as_deref());
        let mut r = self
            .render(app, lang, (&sess, &token), StatusCode::OK, done, None)
            .await;
        remember_lang(app, &mut r, q);
        r
    }

    /// The page again, with why a form was refused.
    async fn refused(
        self,
        app: &App,
        lang: Lang,
        sess: &Session,
        token: &str,
        e: &Refusal,
    ) -> Response {
        self.render(
            app,
            lang,
            (sess, token),
            status_of(e),
            None,
            Some(problem(lang, e)),
        )
        .await
    }

    /// A cookie-authenticated form POST to this page once it passes its checks (signed in,
    /// a form, from this origin, the session's CSRF token), or the response that refuses it.
    async fn checked_form(
        self,
        app: &AppState,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(Lang, Session, String, FormFields), Response> {
        let lang = lang_of(headers, None);
        let (sess, token) = require_session(app, headers).await?;
        let checked = FormFields::parse(body).and_then(|form| {
            check_form(app, headers, &token, &form)?;
            Ok(form)
        });
        match checked {
            Ok(form) => Ok((lang, sess, token, form)),
            Err(e) => Err(self.refused(app, lang, &sess, &token, &e).await),
        }
    }
}

/// A JSON answer that is not to be cached, or the refusal as problem+json.
fn json_no_store(outcome: Result<serde_json::Value, Refusal>) -> Response {
    match outcome {
        Ok(v) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(v)).into_response(),
        Err(e) => tsunagu_api::ApiError(e).into_response(),
    }
}

/// A JST calendar date (`YYYY-MM-DD`) of a Unix time, as a date input wants it.
fn date_input(t: i64) -> String {
    format_time(t, false)
}

/// A DOM-id-safe form of `s`.
fn dom_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The label of a legal basis.
fn basis_label(lang: Lang, basis: &str) -> String {
    text_or(lang, &key("res-basis-", basis), basis)
}

/// The label of a consent status.
fn status_label(lang: Lang, status: &str) -> String {
    text_or(lang, &key("res-cstatus-", status), status)
}

/// The title of an item: the platform's identity claims have texts here; a provider's
/// items their registered titles.
fn item_title(
    lang: Lang,
    provider: &ServiceId,
    item: &str,
    title_ja: &str,
    title_en: Option<&str>,
) -> String {
    if provider.is_platform()
        && let Some(t) = lookup(lang, &key("res-claim-", item))
    {
        return t.to_owned();
    }
    match (lang, title_en) {
        (Lang::En, Some(en)) if !en.is_empty() => en.to_owned(),
        _ => title_ja.to_owned(),
    }
}

fn offer_item_title(lang: Lang, provider: &ServiceId, it: &OfferItem) -> String {
    item_title(
        lang,
        provider,
        &it.item,
        &it.title_ja,
        it.title_en.as_deref(),
    )
}

/// The Japanese text, or the English one on an English page when there is one.
fn pick(lang: Lang, ja: &str, en: Option<&str>) -> String {
    match (lang, en) {
        (Lang::En, Some(en)) if !en.is_empty() => en.to_owned(),
        _ => ja.to_owned(),
    }
}

/// The name of the platform as a source, in the page's language.
fn platform_source(lang: Lang) -> String {
    lookup(lang, "res-platform-source")
        .unwrap_or("tsunagu")
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// Enrollment
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "resident/enroll.html")]
struct EnrollPage {
    page: Page,
    /// The signed-in resident's level, when there is one (the page then upgrades).
    level: Option<String>,
    /// The WebAuthn relying party ID, empty when this platform's address allows none.
    webauthn_rp: String,
}

/// `GET /enroll`.
async fn enroll_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = page_lang(&headers, &q);
    let mut page = Page::new(&app, lang, "enroll-title", "enroll");
    let mut level = None;
    if let Some((sess, token)) = session(&app, &headers).await {
        page = page.signed_in(&token);
        if let Ok(me) = app.identity.me(&sess).await {
            level = Some(me.level.as_str().to_owned());
        }
    }
    let webauthn_rp = app
        .identity
        .webauthn_rp()
        .map(|rp| rp.id.clone())
        .unwrap_or_default();
    let mut r = html(
        StatusCode::OK,
        &EnrollPage {
            page,
            level,
            webauthn_rp,
        },
    );
    remember_lang(&app, &mut r, &q);
    r
}

// ---------------------------------------------------------------------------------------
// 情報提供の管理
// ---------------------------------------------------------------------------------------

/// One item of an offer.
pub struct ItemView {
    pub item: String,
    pub title: String,
    pub use_: Option<String>,
    pub sensitive: bool,
    /// Pre-checked in the per-item choice.
    pub chosen: bool,
}

/// One offer (a consumer's purpose), with the resident's current consent to it.
pub struct OfferView {
    pub dom: String,
    pub purpose_id: String,
    pub title: String,
    pub description: String,
    pub consumer_id: String,
    pub consumer_name: String,
    pub consumer_org: String,
    pub provider_id: String,
    pub provider_name: String,
    pub provider_org: String,
    pub identity: bool,
    pub items: Vec<ItemView>,
    pub retention_days: i64,
    pub basis: String,
    pub basis_label: String,
    pub citation: Option<String>,
    pub read_only: bool,
    pub suspended: bool,
    /// The lint error findings the committee approved the consumer over (`code: message`).
    pub approved_over: Vec<String>,
    pub terms_sha256: String,
    /// The active consent's id (the switch is on).
    pub active_id: Option<String>,
    /// The latest consent's status label, when there is a consent at all.
    pub consent_status: Option<String>,
    pub consent_expires: Option<i64>,
    /// The active consent's items as JSON (for the page script to see what changed).
    pub current_items: String,
    pub current_expires_on: String,
    pub expires_on: String,
    pub expires_min: String,
    pub expires_max: String,
}

/// One of the resident's consents.
pub struct ConsentView {
    pub id: String,
    pub purpose_id: String,
    pub purpose_title: String,
    pub consumer_id: String,
    pub consumer_name: String,
    pub provider_name: String,
    pub items: Vec<String>,
    pub status: String,
    pub status_label: String,
    pub active: bool,
    pub identity: bool,
    pub expires_at: i64,
    pub created_at: i64,
}

#[derive(Template)]
#[template(path = "resident/consents.html")]
struct ConsentsPage {
    page: Page,
    verified: bool,
    offers: Vec<OfferView>,
    consents: Vec<ConsentView>,
    /// The latest expiry a consent may have (Unix seconds), for the page script.
    max_expires: i64,
    done: Option<&'static str>,
    error: Option<Problem>,
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    done: Option<String>,
}

async fn consents_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
    Query(d): Query<DoneQuery>,
) -> Response {
    View::Consents.get(&app, &headers, &q, &d).await
}

async fn render_consents(
    app: &App,
    lang: Lang,
    sess: &Session,
    token: &str,
    status: StatusCode,
    done: Option<&'static str>,
    error: Option<Problem>,
) -> Response {
    match consents_view(app, lang, sess).await {
        Ok((verified, offers, consents)) => html(
            status,
            &ConsentsPage {
                page: Page::new(app, lang, "consents-title", "consents").signed_in(token),
                verified,
                offers,
                consents,
                max_expires: app.consents.latest_expiry(now()),
                done,
                error,
            },
        ),
        Err(e) => super::api_error_page(app, lang, &e),
    }
}

type ConsentsData = (bool, Vec<OfferView>, Vec<ConsentView>);

async fn consents_view(app: &App, lang: Lang, sess: &Session) -> Result<ConsentsData, Refusal> {
    let t = now();
    let me = app.identity.me(sess).await?;
    let verified = me.may_link_data();
    let offers = app.consents.offers(sess).await?;
    let list = app.consents.list(sess).await?;
    let max_days = app.consents.max_consent_days();

    let mut offer_views = Vec::new();
    for o in &offers {
        let provider_id = &o.provider.service_id;
        let consent = o.consent.as_ref();
        let active = o.consent_in_force();
        let consented: Vec<String> = match consent {
            Some(c) if active => c.items.clone(),
            _ => vec![],
        };
        let items = o
            .items
            .iter()
            .map(|it| ItemView {
                title: offer_item_title(lang, provider_id, it),
                use_: it.use_.clone(),
                sensitive: it.sensitive,
                chosen: !active || consented.contains(&it.item),
                item: it.item.clone(),
            })
            .collect();
        let consent_expires = consent.map(|c| c.expires_at);
        let current_expires_on = if active {
            consent_expires.map(date_input).unwrap_or_default()
        } else {
            String::new()
        };
        let basis = o.legal_basis.as_str().to_owned();
        let consumer_id = o.consumer.service_id.to_string();
        let purpose_id = o.purpose_id.to_string();
        offer_views.push(OfferView {
            dom: dom_id(&format!("{consumer_id}-{purpose_id}")),
            title: pick(lang, &o.title_ja, Some(&o.title_en)),
            description: pick(lang, &o.description_ja, Some(&o.description_en)),
            consumer_name: o.consumer.name.clone(),
            consumer_org: o.consumer.organization.clone().unwrap_or_default(),
            provider_name: if provider_id.is_platform() {
                platform_source(lang)
            } else {
                o.provider.name.clone()
            },
            provider_org: o.provider.organization.clone().unwrap_or_default(),
            identity: provider_id.is_platform(),
            items,
            retention_days: i64::from(o.retention_days),
            basis_label: basis_label(lang, &basis),
            basis,
            citation: o.citation.clone(),
            read_only: o.read_only,
            suspended: o.status == OfferStatus::Suspended,
            approved_over: o
                .approved_over
                .iter()
                .map(|f| format!("{}: {}", f.code, f.message))
                .collect(),
            terms_sha256: o.terms_sha256.clone(),
            active_id: consent.filter(|_| active).map(|c| c.consent_id.to_string()),
            consent_status: consent.map(|c| status_label(lang, c.status.as_str())),
            consent_expires,
            current_items: serde_json::to_string(&consented).unwrap_or_else(|_| "[]".into()),
            expires_on: if current_expires_on.is_empty() {
                date_input(o.default_expiry(max_days, t))
            } else {
                current_expires_on.clone()
            },
            current_expires_on,
            expires_min: date_input(t),
            expires_max: date_input(app.consents.latest_expiry(t)),
            consumer_id,
            purpose_id,
            provider_id: provider_id.to_string(),
        });
    }

    let mut consent_views = Vec::new();
    for c in &list {
        let offer = offers
            .iter()
            .find(|o| o.consumer.service_id == c.consumer && o.purpose_id == c.purpose_id);
        let receipt = &c.receipt;
        let items = c
            .items
            .iter()
            .map(
                |id| match offer.and_then(|o| o.items.iter().find(|it| &it.item == id)) {
                    Some(it) => offer_item_title(lang, &c.provider, it),
                    None => item_title(lang, &c.provider, id, id, None),
                },
            )
            .collect();
        let (purpose, purpose_en) = receipt
            .processing
            .purposes
            .first()
            .map(|p| (p.purpose.as_str(), p.purpose_en.as_str()))
            .unwrap_or(("", ""));
        let status = c.status.as_str().to_owned();
        consent_views.push(ConsentView {
            id: c.consent_id.to_string(),
            purpose_title: pick(lang, purpose, Some(purpose_en)),
            consumer_name: receipt.parties.recipient.name.clone(),
            provider_name: if c.provider.is_platform() {
                platform_source(lang)
            } else {
                receipt.parties.source.name.clone()
            },
            identity: c.provider.is_platform(),
            items,
            active: c.status == ConsentStatus::Active,
            status_label: status_label(lang, &status),
            status,
            expires_at: c.expires_at,
            created_at: c.created_at,
            consumer_id: c.consumer.to_string(),
            purpose_id: c.purpose_id.to_string(),
        });
    }
    // Newest first.
    consent_views.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    Ok((verified, offer_views, consent_views))
}

/// What a consent form POST does once its checks pass.
enum ConsentAction {
    Grant,
    Change(String, ChangeAction),
}

async fn consent_post(
    app: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    action: ConsentAction,
) -> Response {
    let (lang, sess, token, form) = match View::Consents.checked_form(app, headers, body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let uv = super::pages::user_verification_field(Some(form.get("user_verification")));
    let outcome = async {
        match &action {
            ConsentAction::Grant => {
                let jws = form.get("consent_jws").trim();
                if jws.is_empty() {
                    return Err(Refusal::new(
                        Code::InvalidRequest,
                        "consent_jws is missing: the consent must be signed with your device key",
                    ));
                }
                app.consents.grant_verified(&sess, jws, uv.as_ref()).await?;
                Ok("granted")
            }
            ConsentAction::Change(id, change) => {
                let jws = form.get("change_jws").trim();
                if jws.is_empty() {
                    return Err(Refusal::new(
                        Code::InvalidRequest,
                        "change_jws is missing: the change must be signed with your device key",
                    ));
                }
                app.consents
                    .change_verified(&sess, &id.as_str().into(), *change, jws, uv.as_ref())
                    .await?;
                Ok(match change {
                    ChangeAction::Revoke => "revoked",
                    ChangeAction::Expiry => "expiry",
                })
            }
        }
    }
    .await;
    match outcome {
        Ok(done) => see_other(&format!("/app/consents?done={done}")),
        Err(e) => View::Consents.refused(app, lang, &sess, &token, &e).await,
    }
}

/// `POST /app/consents` (`csrf`, `consent_jws`).
async fn grant(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    consent_post(&app, &headers, &body, ConsentAction::Grant).await
}

/// `POST /app/consents/{id}/revoke` (`csrf`, `change_jws`).
async fn revoke(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    consent_post(
        &app,
        &headers,
        &body,
        ConsentAction::Change(id, ChangeAction::Revoke),
    )
    .await
}

/// `POST /app/consents/{id}/expiry` (`csrf`, `change_jws`).
async fn expiry(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    consent_post(
        &app,
        &headers,
        &body,
        ConsentAction::Change(id, ChangeAction::Expiry),
    )
    .await
}

/// `GET /app/consents/{id}/receipt.json`: the consent receipt as a download.
async fn receipt(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = lang_of(&headers, None);
    let (sess, _) = match require_session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let found = app.consents.list(&sess).await.and_then(|list| {
        list.into_iter()
            .find(|c| c.consent_id == id.as_str())
            .map(|c| c.receipt)
            .ok_or_else(|| Refusal::new(Code::UnknownConsent, "no such consent of yours"))
    });
    match found {
        Ok(receipt) => {
            let body = serde_json::to_string_pretty(&receipt).unwrap_or_default();
            let filename = format!("consent-receipt-{}.json", dom_id(&id));
            let disposition =
                HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => super::api_error_page(&app, lang, &e),
    }
}

// ---------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------

/// One history entry as shown.
pub struct HistoryRow {
    pub leaf_index: u64,
    pub at: i64,
    pub kind: String,
    pub kind_label: String,
    /// `recorded`, `refused` or `expired` (the leaf's payload is gone).
    pub outcome: String,
    pub outcome_label: String,
    pub consumer: Option<String>,
    pub provider: Option<String>,
    pub purpose: Option<String>,
    pub items: Vec<String>,
    pub basis: Option<String>,
    pub citation: Option<String>,
    pub reason: Option<String>,
    pub requester: Option<String>,
}

#[derive(Template)]
#[template(path = "resident/history.html")]
struct HistoryPage {
    page: Page,
    rows: Vec<HistoryRow>,
    tree_size: u64,
    before: Option<u64>,
    older: Option<u64>,
}

#[derive(Deserialize, Default)]
struct HistoryQuery {
    before: Option<String>,
    limit: Option<String>,
}

impl HistoryQuery {
    fn before(&self) -> Result<Option<u64>, Refusal> {
        self.before
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|_| Refusal::new(Code::InvalidRequest, "before is a leaf index"))
            })
            .transpose()
    }

    fn limit(&self) -> Result<u32, Refusal> {
        match self.limit.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(HISTORY_PAGE),
            Some(s) => s
                .parse()
                .map_err(|_| Refusal::new(Code::InvalidRequest, "limit is a number")),
        }
    }
}

fn service_name(lang: Lang, v: Option<&ServiceRef>) -> Option<String> {
    let v = v?;
    Some(match (v.organization.as_deref(), lang) {
        (Some(org), Lang::Ja) if !org.is_empty() => format!("{}({org})", v.name),
        (Some(org), Lang::En) if !org.is_empty() => format!("{} ({org})", v.name),
        _ => v.name.clone(),
    })
}

fn history_row(lang: Lang, item: &HistoryItem) -> HistoryRow {
    let kind = item.kind().unwrap_or("").to_owned();
    let outcome = item.outcome.as_str().to_owned();
    let d = item.details.as_ref();
    let purpose = d.and_then(|d| d.purpose.as_ref());
    let provider_id = d
        .and_then(|d| d.provider.as_ref())
        .map(|p| p.service_id.clone())
        .unwrap_or_default();
    let mut items: Vec<String> = purpose
        .map(|p| {
            p.items
                .iter()
                .map(|i| item_title(lang, &provider_id, &i.item, &i.title_ja, None))
                .collect()
        })
        .unwrap_or_default();
    // A capability's entry names its items itself (a staff look: the four basic items).
    if let Some(other) = &item.other {
        items.extend(
            other
                .items
                .iter()
                .map(|i| item_title(lang, &ServiceId::platform(), i, i, None)),
        );
    }
    let basis = match d.and_then(|d| d.basis.as_deref()) {
        Some(b) if b.starts_with("consent:") => Some(basis_label(lang, "consent")),
        _ => purpose
            .and_then(|p| p.legal_basis)
            .map(|b| basis_label(lang, b.as_str())),
    };
    let kept_reason = d.and_then(|d| d.reason.clone()).flatten();
    let reason = match (item.reason(), kept_reason) {
        (Some(code), _) => Some(
            lookup(lang, &key("res-err-", &code))
                .map(|m| format!("{m} ({code})"))
                .unwrap_or(code),
        ),
        (None, Some(text)) => Some(text),
        _ => None,
    };
    HistoryRow {
        leaf_index: item.leaf.index,
        at: item.leaf.created_at,
        kind_label: lookup(lang, &key("history-kind-", &kind))
            .map(str::to_owned)
            .unwrap_or_else(|| {
                if kind.is_empty() {
                    lookup(lang, "history-kind-unknown")
                        .unwrap_or("—")
                        .to_owned()
                } else {
                    kind.clone()
                }
            }),
        kind,
        outcome_label: text_or(lang, &key("history-outcome-", &outcome), &outcome),
        outcome,
        consumer: service_name(lang, d.and_then(|d| d.consumer.as_ref()))
            .or_else(|| service_name(lang, d.and_then(|d| d.service.as_ref()))),
        provider: if provider_id.is_platform() {
            Some(platform_source(lang))
        } else {
            service_name(lang, d.and_then(|d| d.provider.as_ref()))
        },
        purpose: purpose
            .and_then(|p| {
                p.title_ja
                    .as_deref()
                    .map(|ja| pick(lang, ja, p.title_en.as_deref()))
            })
            .or_else(|| {
                // A data-subject request: its type and where it stands.
                let other = item.other.as_ref()?;
                let kind = other.request_type.as_deref()?;
                let kind = text_or(lang, &key("rights-type-", kind), kind);
                Some(match other.status.as_deref() {
                    Some(st) => {
                        format!("{kind} — {}", text_or(lang, &key("rights-status-", st), st))
                    }
                    None => kind,
                })
            }),
        items,
        basis,
        citation: purpose.and_then(|p| p.citation.clone()),
        reason,
        requester: d.and_then(|d| d.requester.clone()).flatten(),
    }
}

async fn history_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
    Query(h): Query<HistoryQuery>,
) -> Response {
    let lang = page_lang(&headers, &q);
    let (sess, token) = match require_session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let outcome = async {
        let before = h.before()?;
        let v = app.history.page(&sess, before, HISTORY_PAGE).await?;
        Ok::<_, Refusal>((before, v))
    }
    .await;
    let mut r = match outcome {
        Ok((before, v)) => {
            let rows = v.items.iter().map(|i| history_row(lang, i)).collect();
            html(
                StatusCode::OK,
                &HistoryPage {
                    page: Page::new(&app, lang, "history-title", "history").signed_in(&token),
                    rows,
                    tree_size: v.sth.tree_size,
                    before,
                    older: v.next_before,
                },
            )
        }
        Err(e) => super::api_error_page(&app, lang, &e),
    };
    remember_lang(&app, &mut r, &q);
    r
}

/// `GET /app/history.json`: what `GET /v1/me/history` answers, for the session's resident
/// (the page script verifies each entry against the ledger with it).
async fn history_json(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(h): Query<HistoryQuery>,
) -> Response {
    let outcome = async {
        let (sess, _) = session(&app, &headers)
            .await
            .ok_or_else(|| Refusal::new(Code::Unauthorized, "log in first"))?;
        let before = h.before()?;
        let limit = h.limit()?;
        let page = app.history.page(&sess, before, limit).await?;
        Ok(tsunagu_api::identity::history_json(&page))
    }
    .await;
    json_no_store(outcome)
}

// ---------------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------------

pub struct DeviceView {
    pub id: String,
    pub status: String,
    pub status_label: String,
    pub current: bool,
    pub revoked: bool,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub locked_until: Option<i64>,
    pub thumbprint: String,
    /// The device key is gated by WebAuthn user verification.
    pub uv: bool,
    /// The services whose logins through this device end when it is revoked.
    pub ends: Vec<String>,
}

/// A service the resident is logged in to.
pub struct LoginRow {
    pub grant_id: String,
    pub service_name: String,
    pub client_id: String,
    pub items: String,
    /// The device it was made through: "this device" or the device id.
    pub device: String,
    pub created_at: i64,
}

#[derive(Template)]
#[template(path = "resident/devices.html")]
struct DevicesPage {
    page: Page,
    devices: Vec<DeviceView>,
    logins: Vec<LoginRow>,
    done: Option<&'static str>,
    error: Option<Problem>,
}

async fn devices_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
    Query(d): Query<DoneQuery>,
) -> Response {
    View::Devices.get(&app, &headers, &q, &d).await
}

async fn render_devices(
    app: &App,
    lang: Lang,
    sess: &Session,
    token: &str,
    status: StatusCode,
    done: Option<&'static str>,
    error: Option<Problem>,
) -> Response {
    let me = match app.identity.me(sess).await {
        Ok(me) => me,
        Err(e) => return super::api_error_page(app, lang, &e),
    };
    let logins = match app.oidc.logins(sess).await {
        Ok(l) => l,
        Err(e) => return super::api_error_page(app, lang, &e),
    };
    let t = now();
    let devices = me
        .devices
        .iter()
        .map(|d| {
            let shown = d.state_at(t).as_str();
            let mut ends: Vec<String> = logins
                .iter()
                .filter(|l| l.device_id == d.id)
                .map(|l| l.service_name.clone())
                .collect();
            ends.sort();
            ends.dedup();
            DeviceView {
                ends,
                id: d.id.to_string(),
                status_label: text_or(lang, &key("devices-status-", shown), shown),
                revoked: d.status == tsunagu_core::identity::DeviceStatus::Revoked,
                status: shown.to_owned(),
                current: d.current,
                created_at: d.created_at,
                expires_at: d.expires_at,
                revoked_at: d.revoked_at,
                locked_until: d.locked_until.filter(|u| *u > t),
                thumbprint: d.key_thumbprint.clone(),
                uv: d.user_verification,
            }
        })
        .collect();
    let this_device = super::i18n::t(lang, "devices-this");
    let logins = logins
        .into_iter()
        .map(|l| LoginRow {
            grant_id: l.grant_id.to_string(),
            device: if l.device_id == sess.device_id {
                this_device.to_owned()
            } else {
                l.device_id.to_string()
            },
            service_name: l.service_name,
            client_id: l.client_id.to_string(),
            items: l.items.join(", "),
            created_at: l.created_at,
        })
        .collect();
    html(
        status,
        &DevicesPage {
            page: Page::new(app, lang, "devices-title", "devices").signed_in(token),
            devices,
            logins,
            done,
            error,
        },
    )
}

/// `POST /app/devices/{id}/revoke` (`csrf`). Revoking this browser's own device ends the
/// session.
async fn revoke_device(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (lang, sess, token, _) = match View::Devices.checked_form(&app, &headers, &body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match app.identity.revoke_device(&sess, &id.as_str().into()).await {
        Ok(_) if id == sess.device_id.as_str() => {
            let mut r = see_other("/");
            r.headers_mut()
                .append(header::SET_COOKIE, set_cookie(&app, SESSION_COOKIE, "", 0));
            r
        }
        Ok(_) => see_other("/app/devices?done=device_revoked"),
        Err(e) => View::Devices.refused(&app, lang, &sess, &token, &e).await,
    }
}

/// `POST /app/logins/{id}/revoke` (`csrf`): ends one service's login grant.
async fn end_login(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (lang, sess, token, _) = match View::Devices.checked_form(&app, &headers, &body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match app.oidc.end_login(&sess, &id.as_str().into()).await {
        Ok(_) => see_other("/app/devices?done=login_ended"),
        Err(e) => View::Devices.refused(&app, lang, &sess, &token, &e).await,
    }
}

// ---------------------------------------------------------------------------------------
// Requests (the resident's rights, SPEC §9)
// ---------------------------------------------------------------------------------------

pub struct RequestTypeView {
    pub value: &'static str,
    pub label: String,
    pub help: String,
}

pub struct RequestRowView {
    pub id: String,
    pub kind: String,
    pub kind_label: String,
    pub status: String,
    pub status_label: String,
    pub received_at: i64,
    pub deadline: i64,
    pub overdue: bool,
    pub detail: Option<String>,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub export: bool,
}

#[derive(Template)]
#[template(path = "resident/requests.html")]
struct RequestsPage {
    page: Page,
    types: Vec<RequestTypeView>,
    requests: Vec<RequestRowView>,
    done: Option<&'static str>,
    error: Option<Problem>,
}

async fn requests_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
    Query(d): Query<DoneQuery>,
) -> Response {
    View::Requests.get(&app, &headers, &q, &d).await
}

async fn render_requests(
    app: &App,
    lang: Lang,
    sess: &Session,
    token: &str,
    status: StatusCode,
    done: Option<&'static str>,
    error: Option<Problem>,
) -> Response {
    use tsunagu_rights::{RequestStatus, RequestType};
    let list = match app.rights.list(sess).await {
        Ok(l) => l,
        Err(e) => return super::api_error_page(app, lang, &e),
    };
    let types = RequestType::ALL
        .iter()
        .map(|t| RequestTypeView {
            value: t.as_str(),
            label: text_or(lang, &key("rights-type-", t.as_str()), t.as_str()),
            help: text_or(lang, &key("requests-help-", t.as_str()), ""),
        })
        .collect();
    let requests = list
        .into_iter()
        .map(|r| RequestRowView {
            kind_label: text_or(
                lang,
                &key("rights-type-", r.request_type.as_str()),
                r.request_type.as_str(),
            ),
            status_label: text_or(
                lang,
                &key("rights-status-", r.status.as_str()),
                r.status.as_str(),
            ),
            kind: r.request_type.as_str().to_owned(),
            status: r.status.as_str().to_owned(),
            export: r.request_type == RequestType::Disclosure
                && r.status == RequestStatus::Completed,
            id: r.request_id,
            received_at: r.received_at,
            deadline: r.deadline,
            overdue: r.overdue,
            detail: r.detail,
            reason: r.reason,
            note: r
                .note
                .map(|_| text_or(lang, &key("requests-note-", r.request_type.as_str()), "")),
        })
        .collect();
    html(
        status,
        &RequestsPage {
            page: Page::new(app, lang, "requests-title", "requests").signed_in(token),
            types,
            requests,
            done,
            error,
        },
    )
}

/// `POST /app/requests` (`type`, `detail`, `csrf`; an erasure also `confirm_erasure=yes`).
async fn file_request(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    use tsunagu_rights::RequestType;
    let (lang, sess, token, form) = match View::Requests.checked_form(&app, &headers, &body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let outcome = async {
        let kind = RequestType::parse(form.get("type"))
            .ok_or_else(|| Refusal::new(Code::InvalidRequest, "type: choose a request"))?;
        let detail = Some(form.get("detail")).filter(|d| !d.trim().is_empty());
        // Erasure cannot be undone: the box that names what is lost must be ticked.
        if kind == RequestType::Erasure && form.get("confirm_erasure") != "yes" {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "confirm_erasure: tick the box that says what an erasure deletes",
            ));
        }
        app.rights
            .file(&sess, kind, detail)
            .await
            .map(|v| (kind, v))
    }
    .await;
    match outcome {
        Ok((RequestType::Erasure, _)) => {
            let mut r = see_other("/?erased=1");
            r.headers_mut()
                .append(header::SET_COOKIE, set_cookie(&app, SESSION_COOKIE, "", 0));
            r
        }
        Ok(_) => see_other("/app/requests?done=request_filed"),
        Err(e) => View::Requests.refused(&app, lang, &sess, &token, &e).await,
    }
}

/// The export of one of the resident's completed disclosures.
async fn export_of(app: &App, headers: &HeaderMap, id: &str) -> Result<serde_json::Value, Refusal> {
    let (sess, _) = session(app, headers)
        .await
        .ok_or_else(|| Refusal::new(Code::Unauthorized, "log in first"))?;
    let row = app.rights.get(&sess, id).await?;
    if row.request_type != tsunagu_rights::RequestType::Disclosure
        || row.status != tsunagu_rights::RequestStatus::Completed
    {
        return Err(Refusal::new(
            Code::NotFound,
            "an export belongs to a completed disclosure request",
        ));
    }
    tsunagu_rights::export::build(&app.rights, &sess, &row)
        .await
        .map_err(|e| e.0)
}

/// `GET /app/requests/{id}/export`: the disclosure as a page.
async fn export_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = page_lang(&headers, &q);
    match export_of(&app, &headers, &id).await {
        Ok(v) => {
            let mut r = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                tsunagu_rights::export::html(&v, lang == Lang::En),
            )
                .into_response();
            r.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static(
                    "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
            );
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            r
        }
        Err(e) if e.code == Code::Unauthorized => see_other("/login"),
        Err(e) => super::api_error_page(&app, lang, &e),
    }
}

/// `GET /app/requests/{id}/export.json`: the disclosure as JSON (a download).
async fn export_json(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    json_no_store(export_of(&app, &headers, &id).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_and_dom_ids() {
        let f = FormFields::parse(b"csrf=a%2Bb&item=x&item=y&consent_jws=").unwrap();
        assert_eq!(f.get("csrf"), "a+b");
        assert_eq!(f.get("item"), "x");
        assert_eq!(f.get("consent_jws"), "");
        assert_eq!(f.get("missing"), "");
        assert_eq!(dom_id("svc-1_a.b c"), "svc-1_a_b_c");
    }

    #[test]
    fn every_event_kind_has_a_label_and_every_refusal_a_message() {
        for kind in [
            "identity.enrolled",
            "auth.login",
            "consent.granted",
            "consent.revoked",
            "ticket.issued",
            "ticket.refused",
            "oidc.authorized",
        ] {
            assert!(
                lookup(Lang::Ja, &key("history-kind-", kind)).is_some(),
                "{kind}"
            );
        }
        assert_eq!(basis_label(Lang::En, "statutory"), "Required by law");
        assert_eq!(status_label(Lang::Ja, "revoked"), "取り消し済み");
        let e = Refusal::new(Code::ProvisionalId, "detail");
        let p = problem(Lang::En, &e);
        assert_eq!(p.code, "provisional_id");
        assert!(p.message.contains("provisional ID"));
        let e = Refusal::new(Code::Locked, "locked until x");
        assert_eq!(problem(Lang::Ja, &e).message, "locked until x");
    }

    #[test]
    fn every_history_kind_of_the_platform_has_a_label() {
        // Events about services, the committee and the platform's keys have no resident
        // subject: they are never in a resident's history.
        let residents = tsunagu_core::event::Event::KINDS.iter().filter(|k| {
            !["service.", "governance.", "keys.", "ledger."]
                .iter()
                .any(|p| k.starts_with(p))
        });
        for kind in residents {
            assert!(
                lookup(Lang::Ja, &key("history-kind-", kind)).is_some()
                    && lookup(Lang::En, &key("history-kind-", kind)).is_some(),
                "{kind}"
            );
        }
    }
}
