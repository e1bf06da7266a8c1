//! The resident's web app beyond the home page: device enrollment (`/enroll`, with the
//! simulated My Number card in development), 情報提供の管理 (`/app/consents`: every offer,
//! a switch per purpose, a per-item choice, an expiry picker, revocation, receipts), the
//! history with its ledger marks (`/app/history`), and the devices (`/app/devices`).
//!
//! Every state-changing form is a cookie-authenticated POST that must come from this origin
//! and carry the session's CSRF token; the signed statements inside (consents, changes) are
//! made by the browser's device key (`static/js/pages.js`) or by any client that signs by
//! itself, and checked by the same service functions as the JSON API.

use super::pages::{LangQuery, page_lang, remember_lang, require_session};
use super::{
    Lang, Page, SESSION_COOKIE, csrf_token, format_time, html, lang_of, same_origin, see_other,
    session, set_cookie,
};
use crate::app::{App, now};
use crate::error::ApiError;
use crate::http::AppState;
use crate::identity::Session;
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use tsunagu_core::Code;
use tsunagu_core::consent::ChangeAction;
use tsunagu_core::service::PLATFORM_PROVIDER;
use tsunagu_crypto::{b64, random};
use tsunagu_jpki_sim::{IssueRequest, SimCa};

/// This module's routes (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/enroll"),
    ("POST", "/dev/simulated-card"),
    ("GET", "/app/consents"),
    ("POST", "/app/consents"),
    ("POST", "/app/consents/{id}/revoke"),
    ("POST", "/app/consents/{id}/expiry"),
    ("GET", "/app/consents/{id}/receipt.json"),
    ("GET", "/app/history"),
    ("GET", "/app/history.json"),
    ("GET", "/app/devices"),
    ("POST", "/app/devices/{id}/revoke"),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/enroll", get(enroll_page))
        .route("/dev/simulated-card", post(simulated_card))
        .route("/app/consents", get(consents_page).post(grant))
        .route("/app/consents/{id}/revoke", post(revoke))
        .route("/app/consents/{id}/expiry", post(expiry))
        .route("/app/consents/{id}/receipt.json", get(receipt))
        .route("/app/history", get(history_page))
        .route("/app/history.json", get(history_json))
        .route("/app/devices", get(devices_page))
        .route("/app/devices/{id}/revoke", post(revoke_device))
}

/// Entries shown per history page.
const HISTORY_PAGE: u32 = 50;

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// A text of this module's table, if it has `key`.
fn lookup(lang: Lang, key: &str) -> Option<&'static str> {
    TEXTS.iter().find(|(k, _, _)| *k == key).map(|(_, ja, en)| {
        if lang == Lang::Ja || en.is_empty() {
            *ja
        } else {
            *en
        }
    })
}

/// Compares two strings in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The fields of a form body (`application/x-www-form-urlencoded`).
struct FormFields(Vec<(String, String)>);

impl FormFields {
    fn parse(body: &[u8]) -> Result<FormFields, ApiError> {
        serde_urlencoded::from_bytes(body)
            .map(FormFields)
            .map_err(|e| ApiError::new(Code::InvalidRequest, format!("form: {e}")))
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
) -> Result<(), ApiError> {
    if !same_origin(app, headers) {
        return Err(ApiError::new(
            Code::Forbidden,
            "this form was sent from another site",
        ));
    }
    if !same_secret(form.get("csrf"), &csrf_token(token)) {
        return Err(ApiError::new(
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

fn problem(lang: Lang, e: &ApiError) -> Problem {
    let key = format!("res.err.{}", e.code.as_str());
    Problem {
        message: text_or(lang, &key, &e.detail),
        code: e.code.as_str().to_owned(),
    }
}

/// The success message of a `?done=` after a POST.
fn done_message(lang: Lang, done: Option<&str>) -> Option<&'static str> {
    let key = match done? {
        "granted" => "res.done.granted",
        "revoked" => "res.done.revoked",
        "expiry" => "res.done.expiry",
        "device_revoked" => "res.done.device_revoked",
        _ => return None,
    };
    lookup(lang, key)
}

/// A signed-in page of this module with a `?done=` message and a refusal to show.
#[derive(Clone, Copy)]
enum View {
    Consents,
    Devices,
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
        e: &ApiError,
    ) -> Response {
        self.render(
            app,
            lang,
            (sess, token),
            e.status,
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

/// A text of this module's table named `key`, else `fallback`.
fn text_or(lang: Lang, key: &str, fallback: &str) -> String {
    lookup(lang, key)
        .map(str::to_owned)
        .unwrap_or_else(|| fallback.to_owned())
}

/// A JSON answer that is not to be cached, or the refusal.
fn json_no_store(outcome: Result<Value, ApiError>) -> Response {
    match outcome {
        Ok(v) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or("").to_owned()
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
    text_or(lang, &format!("res.basis.{basis}"), basis)
}

/// The label of a consent status.
fn status_label(lang: Lang, status: &str) -> String {
    text_or(lang, &format!("res.cstatus.{status}"), status)
}

/// The title of an item: the platform's identity claims have texts here; a provider's
/// items their registered titles.
fn item_title(lang: Lang, provider: &str, item: &Value) -> String {
    let id = str_of(&item["item"]);
    if provider == PLATFORM_PROVIDER
        && let Some(t) = lookup(lang, &format!("res.claim.{id}"))
    {
        return t.to_owned();
    }
    let ja = item["title_ja"].as_str().unwrap_or(&id);
    match (lang, item["title_en"].as_str()) {
        (Lang::En, Some(en)) if !en.is_empty() => en.to_owned(),
        _ => ja.to_owned(),
    }
}

fn pick(lang: Lang, ja: &Value, en: &Value) -> String {
    match (lang, en.as_str()) {
        (Lang::En, Some(en)) if !en.is_empty() => en.to_owned(),
        _ => str_of(ja),
    }
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
}

/// `GET /enroll`.
async fn enroll_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = page_lang(&headers, &q);
    let mut page = Page::new(&app, lang, "enroll.title", "enroll");
    let mut level = None;
    if let Some((sess, token)) = session(&app, &headers).await {
        page = page.signed_in(&token);
        if let Ok(me) = crate::identity::me(&app, &sess).await {
            level = Some(str_of(&me["level"]));
        }
    }
    let mut r = html(StatusCode::OK, &EnrollPage { page, level });
    remember_lang(&app, &mut r, &q);
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatedCardRequest {
    name: String,
    address: String,
    birthdate: String,
    sex: String,
    /// Base64 of the bytes the card signs: JCS of `{device_jwk_thumbprint, nonce}`.
    signed_data: String,
}

/// The simulated CA, opened on first use and kept (its state file is rewritten on every
/// issue, so one holder at a time).
fn simulated_ca() -> Arc<tokio::sync::Mutex<Option<SimCa>>> {
    static CA: OnceLock<Arc<tokio::sync::Mutex<Option<SimCa>>>> = OnceLock::new();
    CA.get_or_init(|| Arc::new(tokio::sync::Mutex::new(None)))
        .clone()
}

/// Checks that `bytes` are exactly what a card signs at enrollment.
fn enrollment_signed_data(bytes: &[u8]) -> Result<(), ApiError> {
    let invalid = || {
        ApiError::new(
            Code::InvalidRequest,
            "signed_data must be the JCS of {device_jwk_thumbprint, nonce}: the simulated card signs enrollment bindings only",
        )
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|_| invalid())?;
    let obj = v.as_object().ok_or_else(invalid)?;
    let (Some(tp), Some(nonce)) = (
        obj.get("device_jwk_thumbprint").and_then(Value::as_str),
        obj.get("nonce").and_then(Value::as_str),
    ) else {
        return Err(invalid());
    };
    if obj.len() != 2 {
        return Err(invalid());
    }
    let canonical =
        tsunagu_crypto::jcs::to_vec(&json!({"device_jwk_thumbprint": tp, "nonce": nonce}))
            .map_err(|_| invalid())?;
    if canonical != bytes {
        return Err(invalid());
    }
    Ok(())
}

/// `POST /dev/simulated-card` (development only): issues a simulated My Number card for
/// the given basic items from the configured simulated CA and signs `signed_data` with
/// it, answering what an enrollment `proof` needs. Not found unless `[dev]
/// simulated_jpki` is set.
async fn simulated_card(State(app): State<AppState>, body: Bytes) -> Response {
    json_no_store(simulated_card_inner(&app, &body).await)
}

async fn simulated_card_inner(app: &App, body: &[u8]) -> Result<Value, ApiError> {
    let Some(dir) = app.config.dev.simulated_jpki.clone() else {
        return Err(ApiError::new(Code::NotFound, "no such resource"));
    };
    let req: SimulatedCardRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(Code::InvalidJson, format!("request body: {e}")))?;
    let name = req.name.trim().to_owned();
    let address = req.address.trim().to_owned();
    if name.is_empty() || address.is_empty() {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "name and address are required",
        ));
    }
    if name.chars().count() > 100 || address.chars().count() > 200 {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "name (100) or address (200 characters) too long",
        ));
    }
    let signed = b64::std_decode(&req.signed_data)
        .map_err(|_| ApiError::new(Code::InvalidRequest, "signed_data is base64"))?;
    enrollment_signed_data(&signed)?;
    let issue = IssueRequest {
        name,
        address,
        birthdate: req.birthdate.trim().to_owned(),
        sex: req.sex.trim().to_owned(),
        valid_days: None,
        not_before: None,
    };
    // A fresh card each time, sealed under a one-time signing password.
    let pin = hex::encode(random::bytes(8).map_err(|e| ApiError::internal("pin", e))?);
    let mut guard = simulated_ca().lock_owned().await;
    let outcome = tokio::task::spawn_blocking(move || {
        if guard
            .as_ref()
            .map(|ca| ca.dir() != dir.as_path())
            .unwrap_or(true)
        {
            *guard = Some(
                SimCa::open(&dir)
                    .map_err(|e| ApiError::internal("opening the simulated JPKI CA", e))?,
            );
        }
        let ca = guard
            .as_mut()
            .ok_or_else(|| ApiError::internal("simulated JPKI", "no CA"))?;
        let mut card = ca.issue(&issue, &pin).map_err(|e| match e {
            tsunagu_jpki_sim::SimCaError::Invalid(reason) => {
                ApiError::new(Code::InvalidRequest, reason)
            }
            other => ApiError::internal("issuing a simulated card", other),
        })?;
        let signature = card
            .sign(&pin, &signed)
            .map_err(|e| ApiError::internal("simulated card signature", e))?;
        Ok::<_, ApiError>((card, signature))
    })
    .await
    .map_err(|e| ApiError::internal("simulated card task", e))?;
    let (card, signature) = outcome?;
    let mut chain = vec![card.certificate.clone()];
    chain.extend(card.chain.iter().cloned());
    Ok(json!({
        "certificate_chain": chain,
        "signature": b64::std_encode(signature),
    }))
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
                page: Page::new(app, lang, "consents.title", "consents").signed_in(token),
                verified,
                offers,
                consents,
                max_expires: now() + app.config.exchange.max_consent_days * 86_400,
                done,
                error,
            },
        ),
        Err(e) => super::api_error_page(app, lang, &e),
    }
}

type ConsentsData = (bool, Vec<OfferView>, Vec<ConsentView>);

async fn consents_view(app: &App, lang: Lang, sess: &Session) -> Result<ConsentsData, ApiError> {
    let t = now();
    let me = crate::identity::me(app, sess).await?;
    let verified = me["level"] == "verified" && me["status"] == "active";
    let offers = crate::consents::offers(app, sess).await?;
    let list = crate::consents::list(app, sess).await?;
    let max_days = app.config.exchange.max_consent_days.max(1);
    let empty = vec![];
    let offers_arr = offers["offers"].as_array().unwrap_or(&empty);

    let mut offer_views = Vec::new();
    for o in offers_arr {
        let provider_id = str_of(&o["provider"]["service_id"]);
        let consent = &o["consent"];
        let consent_status = consent["status"].as_str().map(str::to_owned);
        let active = consent_status.as_deref() == Some("active");
        let consented: Vec<String> = if active {
            consent["items"]
                .as_array()
                .map(|a| a.iter().map(str_of).collect())
                .unwrap_or_default()
        } else {
            vec![]
        };
        let items = o["items"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|it| {
                let item = str_of(&it["item"]);
                ItemView {
                    title: item_title(lang, &provider_id, it),
                    use_: it["use"].as_str().map(str::to_owned),
                    sensitive: it["sensitive"].as_bool().unwrap_or(false),
                    chosen: !active || consented.contains(&item),
                    item,
                }
            })
            .collect();
        let retention_days = o["retention_days"].as_i64().unwrap_or(0);
        let default_days = retention_days.clamp(1, 365).min(max_days);
        let consent_expires = consent["expires_at"].as_i64();
        let current_expires_on = if active {
            consent_expires.map(date_input).unwrap_or_default()
        } else {
            String::new()
        };
        let basis = str_of(&o["legal_basis"]);
        let consumer_id = str_of(&o["consumer"]["service_id"]);
        let purpose_id = str_of(&o["purpose_id"]);
        offer_views.push(OfferView {
            dom: dom_id(&format!("{consumer_id}-{purpose_id}")),
            title: pick(lang, &o["title_ja"], &o["title_en"]),
            description: pick(lang, &o["description_ja"], &o["description_en"]),
            consumer_name: str_of(&o["consumer"]["name"]),
            consumer_org: str_of(&o["consumer"]["organization"]),
            provider_name: if provider_id == PLATFORM_PROVIDER {
                lookup(lang, "res.platform.source")
                    .unwrap_or("tsunagu")
                    .to_owned()
            } else {
                str_of(&o["provider"]["name"])
            },
            provider_org: str_of(&o["provider"]["organization"]),
            identity: provider_id == PLATFORM_PROVIDER,
            items,
            retention_days,
            basis_label: basis_label(lang, &basis),
            basis,
            citation: o["citation"].as_str().map(str::to_owned),
            read_only: o["read_only"].as_bool().unwrap_or(true),
            suspended: o["status"] == "suspended",
            terms_sha256: str_of(&o["terms_sha256"]),
            active_id: active.then(|| str_of(&consent["consent_id"])),
            consent_status: consent_status.as_deref().map(|s| status_label(lang, s)),
            consent_expires,
            current_items: serde_json::to_string(&consented).unwrap_or_else(|_| "[]".into()),
            expires_on: if current_expires_on.is_empty() {
                date_input(t + default_days * 86_400)
            } else {
                current_expires_on.clone()
            },
            current_expires_on,
            expires_min: date_input(t),
            expires_max: date_input(t + max_days * 86_400),
            consumer_id,
            purpose_id,
            provider_id,
        });
    }

    let mut consent_views = Vec::new();
    for c in list["consents"].as_array().unwrap_or(&empty) {
        let consumer_id = str_of(&c["consumer"]);
        let purpose_id = str_of(&c["purpose_id"]);
        let provider_id = str_of(&c["provider"]);
        let offer = offers_arr.iter().find(|o| {
            o["consumer"]["service_id"] == consumer_id.as_str()
                && o["purpose_id"] == purpose_id.as_str()
        });
        let receipt = &c["receipt"];
        let rp = &receipt["processing"]["purposes"][0];
        let items = c["items"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|i| {
                let id = str_of(i);
                let described = offer
                    .and_then(|o| o["items"].as_array())
                    .and_then(|a| a.iter().find(|it| it["item"] == id.as_str()))
                    .cloned()
                    .unwrap_or_else(|| json!({"item": id, "title_ja": id}));
                item_title(lang, &provider_id, &described)
            })
            .collect();
        let status = str_of(&c["status"]);
        consent_views.push(ConsentView {
            id: str_of(&c["consent_id"]),
            purpose_title: pick(lang, &rp["purpose"], &rp["purpose_en"]),
            consumer_name: str_of(&receipt["parties"]["recipient"]["name"]),
            provider_name: if provider_id == PLATFORM_PROVIDER {
                lookup(lang, "res.platform.source")
                    .unwrap_or("tsunagu")
                    .to_owned()
            } else {
                str_of(&receipt["parties"]["source"]["name"])
            },
            identity: provider_id == PLATFORM_PROVIDER,
            items,
            active: status == "active",
            status_label: status_label(lang, &status),
            status,
            expires_at: c["expires_at"].as_i64().unwrap_or(0),
            created_at: c["created_at"].as_i64().unwrap_or(0),
            consumer_id,
            purpose_id,
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
    let outcome = async {
        match &action {
            ConsentAction::Grant => {
                let jws = form.get("consent_jws").trim();
                if jws.is_empty() {
                    return Err(ApiError::new(
                        Code::InvalidRequest,
                        "consent_jws is missing: the consent must be signed with your device key",
                    ));
                }
                crate::consents::grant(app, &sess, jws).await?;
                Ok("granted")
            }
            ConsentAction::Change(id, change) => {
                let jws = form.get("change_jws").trim();
                if jws.is_empty() {
                    return Err(ApiError::new(
                        Code::InvalidRequest,
                        "change_jws is missing: the change must be signed with your device key",
                    ));
                }
                crate::consents::change(app, &sess, id, *change, jws).await?;
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
    let found = async {
        let list = crate::consents::list(&app, &sess).await?;
        list["consents"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["consent_id"] == id.as_str()))
            .map(|c| c["receipt"].clone())
            .ok_or_else(|| ApiError::new(Code::UnknownConsent, "no such consent of yours"))
    }
    .await;
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
    fn before(&self) -> Result<Option<u64>, ApiError> {
        self.before
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|_| ApiError::new(Code::InvalidRequest, "before is a leaf index"))
            })
            .transpose()
    }

    fn limit(&self) -> Result<u32, ApiError> {
        match self.limit.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(HISTORY_PAGE),
            Some(s) => s
                .parse()
                .map_err(|_| ApiError::new(Code::InvalidRequest, "limit is a number")),
        }
    }
}

fn service_name(lang: Lang, v: &Value) -> Option<String> {
    let name = v["name"].as_str()?;
    Some(match (v["organization"].as_str(), lang) {
        (Some(org), Lang::Ja) if !org.is_empty() => format!("{name}({org})"),
        (Some(org), Lang::En) if !org.is_empty() => format!("{name} ({org})"),
        _ => name.to_owned(),
    })
}

fn history_row(lang: Lang, item: &Value) -> HistoryRow {
    let kind = str_of(&item["type"]);
    let outcome = str_of(&item["outcome"]);
    let d = &item["details"];
    let purpose = &d["purpose"];
    let provider_id = d["provider"]["service_id"].as_str().unwrap_or("");
    let items = purpose["items"]
        .as_array()
        .map(|a| a.iter().map(|i| item_title(lang, provider_id, i)).collect())
        .unwrap_or_default();
    let basis = match d["basis"].as_str() {
        Some(b) if b.starts_with("consent:") => Some(basis_label(lang, "consent")),
        _ => purpose["legal_basis"]
            .as_str()
            .map(|b| basis_label(lang, b)),
    };
    let reason = match (&item["reason"], d["reason"].as_str()) {
        (Value::String(code), _) => Some(
            lookup(lang, &format!("res.err.{code}"))
                .map(|m| format!("{m} ({code})"))
                .unwrap_or_else(|| code.clone()),
        ),
        (_, Some(text)) => Some(text.to_owned()),
        _ => None,
    };
    HistoryRow {
        leaf_index: item["leaf_index"].as_u64().unwrap_or(0),
        at: item["at"].as_i64().unwrap_or(0),
        kind_label: lookup(lang, &format!("history.kind.{kind}"))
            .map(str::to_owned)
            .unwrap_or_else(|| {
                if kind.is_empty() {
                    lookup(lang, "history.kind.unknown")
                        .unwrap_or("—")
                        .to_owned()
                } else {
                    kind.clone()
                }
            }),
        kind,
        outcome_label: text_or(lang, &format!("history.outcome.{outcome}"), &outcome),
        outcome,
        consumer: service_name(lang, &d["consumer"]).or_else(|| service_name(lang, &d["service"])),
        provider: if provider_id == PLATFORM_PROVIDER {
            lookup(lang, "res.platform.source").map(str::to_owned)
        } else {
            service_name(lang, &d["provider"])
        },
        purpose: purpose["title_ja"]
            .as_str()
            .map(|_| pick(lang, &purpose["title_ja"], &purpose["title_en"])),
        items,
        basis,
        citation: purpose["citation"].as_str().map(str::to_owned),
        reason,
        requester: d["requester"].as_str().map(str::to_owned),
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
        let v = crate::history::history(&app, &sess, before, HISTORY_PAGE).await?;
        Ok::<_, ApiError>((before, v))
    }
    .await;
    let mut r = match outcome {
        Ok((before, v)) => {
            let rows = v["items"]
                .as_array()
                .map(|a| a.iter().map(|i| history_row(lang, i)).collect())
                .unwrap_or_default();
            html(
                StatusCode::OK,
                &HistoryPage {
                    page: Page::new(&app, lang, "history.title", "history").signed_in(&token),
                    rows,
                    tree_size: v["sth"]["tree_size"].as_u64().unwrap_or(0),
                    before,
                    older: v["next_before"].as_u64(),
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
            .ok_or_else(|| ApiError::new(Code::Unauthorized, "log in first"))?;
        let before = h.before()?;
        let limit = h.limit()?;
        crate::history::history(&app, &sess, before, limit).await
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
}

#[derive(Template)]
#[template(path = "resident/devices.html")]
struct DevicesPage {
    page: Page,
    devices: Vec<DeviceView>,
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
    let me = match crate::identity::me(app, sess).await {
        Ok(me) => me,
        Err(e) => return super::api_error_page(app, lang, &e),
    };
    let t = now();
    let devices = me["devices"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    let locked_until = d["locked_until"].as_i64().filter(|u| *u > t);
                    let status = str_of(&d["status"]);
                    let shown =
                        if status == "active" && d["expires_at"].as_i64().is_some_and(|e| e <= t) {
                            "expired".to_owned()
                        } else if status == "active" && locked_until.is_some() {
                            "locked".to_owned()
                        } else {
                            status.clone()
                        };
                    DeviceView {
                        id: str_of(&d["id"]),
                        status_label: text_or(lang, &format!("devices.status.{shown}"), &shown),
                        revoked: status == "revoked",
                        status: shown,
                        current: d["current"].as_bool().unwrap_or(false),
                        created_at: d["created_at"].as_i64().unwrap_or(0),
                        expires_at: d["expires_at"].as_i64().unwrap_or(0),
                        revoked_at: d["revoked_at"].as_i64(),
                        locked_until,
                        thumbprint: str_of(&d["key_thumbprint"]),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    html(
        status,
        &DevicesPage {
            page: Page::new(app, lang, "devices.title", "devices").signed_in(token),
            devices,
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
    match crate::identity::revoke_device(&app, &sess, &id).await {
        Ok(_) if id == sess.device_id => {
            let mut r = see_other("/");
            r.headers_mut()
                .append(header::SET_COOKIE, set_cookie(&app, SESSION_COOKIE, "", 0));
            r
        }
        Ok(_) => see_other("/app/devices?done=device_revoked"),
        Err(e) => View::Devices.refused(&app, lang, &sess, &token, &e).await,
    }
}

// ---------------------------------------------------------------------------------------
// Texts
// ---------------------------------------------------------------------------------------

/// This module's texts `(key, ja, en)`.
pub static TEXTS: &[(&str, &str, &str)] = &[
    // enrollment
    ("enroll.title", "端末の登録", "Register this device"),
    (
        "enroll.intro",
        "この端末(ブラウザ)の中で鍵を作り、tsunagu に登録します。秘密鍵はこの端末から取り出せない形で保存され、外に出ることはありません。",
        "This browser makes a key and registers it with tsunagu. The private key is stored so that it cannot be read out, and it never leaves this device.",
    ),
    (
        "enroll.provisional",
        "本人確認をしない場合は、仮登録(仮ID)になります。仮IDではログインできますが、情報の提供に同意することはできません。",
        "Without proofing you get a provisional ID: you can log in, but you cannot consent to sharing information.",
    ),
    (
        "enroll.button",
        "この端末を登録する",
        "Register this device",
    ),
    (
        "enroll.nojs",
        "端末の登録には JavaScript が必要です(鍵はブラウザの中で作られます)。JavaScript を使わない場合は API(POST /v1/enrollment)で登録してください。",
        "Registering needs JavaScript (the key is made inside the browser). Without it, register through the API (POST /v1/enrollment).",
    ),
    (
        "enroll.signed_in",
        "この端末はすでに登録され、ログインしています。",
        "This device is already registered and logged in.",
    ),
    (
        "enroll.upgrade",
        "仮IDを本人確認済みにするには、下のマイナンバーカードで本人確認してください。",
        "To turn your provisional ID into a verified one, proof it with the My Number card below.",
    ),
    (
        "enroll.sim.legend",
        "模擬マイナンバーカード(開発用)",
        "Simulated My Number card (development)",
    ),
    (
        "enroll.sim.note",
        "開発モードでは、入力した内容で模擬認証局がカードを発行し、その署名用電子証明書で本人確認します。本物のカードは使いません。",
        "In development mode a simulated CA issues a card with these details and its signing certificate proofs you. No real card is used.",
    ),
    (
        "enroll.sim.use",
        "模擬カードで本人確認する",
        "Proof me with the simulated card",
    ),
    ("enroll.sim.sex.male", "男性", "Male"),
    ("enroll.sim.sex.female", "女性", "Female"),
    ("enroll.sim.sex.other", "その他", "Other"),
    // shared texts of the resident pages
    ("res.status", "状態", "Status"),
    (
        "res.receipt",
        "同意の記録(JSON)をダウンロード",
        "Download the consent receipt (JSON)",
    ),
    ("res.basis", "提供の根拠", "Legal basis"),
    ("res.basis.consent", "本人の同意", "Your consent"),
    (
        "res.basis.vital_interest",
        "人の生命・身体・財産の保護",
        "Protection of life, body or property",
    ),
    (
        "res.basis.statutory",
        "法令にもとづく提供",
        "Required by law",
    ),
    ("res.cstatus.active", "同意中", "Consented"),
    ("res.cstatus.revoked", "取り消し済み", "Withdrawn"),
    (
        "res.cstatus.superseded",
        "新しい同意に置き換え済み",
        "Replaced by a newer consent",
    ),
    ("res.cstatus.expired", "期限切れ", "Expired"),
    ("res.claim.name", "氏名", "Name"),
    ("res.claim.address", "住所", "Address"),
    ("res.claim.birthdate", "生年月日", "Date of birth"),
    ("res.claim.gender", "性別", "Sex"),
    (
        "res.platform.source",
        "tsunagu(本人確認情報)",
        "tsunagu (your verified identity)",
    ),
    (
        "res.done.granted",
        "同意を記録しました。",
        "Your consent was recorded.",
    ),
    (
        "res.done.revoked",
        "同意を取り消しました。",
        "Your consent was withdrawn.",
    ),
    (
        "res.done.expiry",
        "同意の有効期限を変更しました。",
        "The consent's expiry was changed.",
    ),
    (
        "res.done.device_revoked",
        "端末を無効にしました。",
        "The device was revoked.",
    ),
    (
        "res.err.forbidden",
        "このフォームは受け付けられませんでした(別のサイトから送られたか、ページが古くなっています)。ページを読み込み直してください。",
        "This form was not accepted (it came from another site or the page is out of date). Reload the page.",
    ),
    (
        "res.err.provisional_id",
        "仮IDでは情報の提供に同意できません。先にマイナンバーカードで本人確認してください。",
        "A provisional ID cannot consent to sharing. Proof your ID with the My Number card first.",
    ),
    (
        "res.err.reproof_required",
        "本人確認に使った証明書が失効しました。もう一度本人確認してください。",
        "The certificate that proofed you was revoked. Proof your ID again.",
    ),
    (
        "res.err.stale_request",
        "署名の時刻がずれています。端末の時計を確認して、もう一度お試しください。",
        "The signature's time is off. Check this device's clock and try again.",
    ),
    (
        "res.err.items_not_covered",
        "提供する情報を一つ以上選んでください(この目的の項目の中から)。",
        "Choose at least one item (among this purpose's items).",
    ),
    (
        "res.err.expiry_invalid",
        "有効期限は、今日より後で、認められる最長の期間内にしてください。",
        "The expiry must be after today and within the longest period allowed.",
    ),
    (
        "res.err.nonce_invalid",
        "この署名はすでに使われています。もう一度操作してください。",
        "This signature was used before. Please try again.",
    ),
    (
        "res.err.signature_invalid",
        "署名を確認できませんでした(この端末の鍵ではありません)。",
        "The signature could not be verified (not this account's device key).",
    ),
    (
        "res.err.credential_revoked",
        "署名した端末は無効にされています。",
        "The signing device has been revoked.",
    ),
    (
        "res.err.not_consentable",
        "この提供は法令等にもとづくため、同意で切り替えることはできません。",
        "This flow rests on a legal basis: it cannot be switched by consent.",
    ),
    (
        "res.err.purpose_not_approved",
        "この目的は承認されていないか、サービスが停止されています。",
        "This purpose is not approved, or one of its services is suspended.",
    ),
    (
        "res.err.terms_mismatch",
        "目的の内容が変わりました。ページを読み込み直して確認してください。",
        "The purpose's terms changed. Reload the page and review them.",
    ),
    (
        "res.err.consent_revoked",
        "この同意はすでに取り消されています。",
        "This consent is already withdrawn.",
    ),
    (
        "res.err.consent_superseded",
        "この同意は新しい同意に置き換えられています。",
        "A newer consent replaced this one.",
    ),
    (
        "res.err.consent_expired",
        "この同意は期限が切れています。もう一度同意してください。",
        "This consent has expired. Consent again instead.",
    ),
    (
        "res.err.unknown_consent",
        "この同意は見つかりません。",
        "No such consent of yours.",
    ),
    (
        "res.err.no_consent",
        "同意がありません。",
        "There is no consent.",
    ),
    (
        "res.err.service_suspended",
        "サービスが停止されています。",
        "The service is suspended.",
    ),
    ("res.err.not_found", "見つかりません。", "Not found."),
    ("res.err.code", "エラーコード", "Error code"),
    // consents
    ("consents.title", "情報提供の管理", "Data sharing"),
    (
        "consents.intro",
        "どのサービスが、どこから、どの情報を、何のために受け取るかを確認し、目的ごとに提供を切り替えられます。同意はこの端末の鍵で署名され、台帳に記録されます。",
        "See which service receives which information from where and why, and switch each purpose on or off. Your device key signs every consent, and each is recorded in the ledger.",
    ),
    (
        "consents.provisional",
        "仮IDでは同意できません。マイナンバーカードで本人確認すると、提供を切り替えられるようになります。",
        "A provisional ID cannot consent. Proof your ID with the My Number card to switch sharing on.",
    ),
    ("consents.offers", "提供の一覧", "What may be shared"),
    (
        "consents.none",
        "いま提供の申し出はありません。",
        "There is nothing on offer right now.",
    ),
    ("consents.recipient", "提供先", "Recipient"),
    ("consents.source", "提供元", "Source"),
    ("consents.items", "提供される情報", "Information"),
    ("consents.purpose", "利用目的", "Purpose"),
    ("consents.retention", "保存期間", "Kept for"),
    ("consents.days", "日", "days"),
    ("consents.sensitive", "要配慮", "Sensitive"),
    ("consents.citation", "根拠規定", "Provision"),
    ("consents.current", "現在の同意", "Your consent"),
    ("consents.until", "まで", "until"),
    (
        "consents.read_only",
        "この提供は同意ではなく、下の根拠にもとづいて行われます。表示のみで、切り替えはできません。提供があれば利用履歴に記録されます。",
        "This flow rests on the legal basis below, not on consent. It is shown, not switched; any provision appears in your history.",
    ),
    (
        "consents.suspended",
        "運営委員会がこの提供に関わるサービスを停止しています。再開されるまで情報は提供されません。",
        "The governance committee suspended a service of this flow: nothing flows until it is reinstated.",
    ),
    (
        "consents.switch",
        "この目的での提供に同意する",
        "Share for this purpose",
    ),
    (
        "consents.choose",
        "提供する情報を選ぶ",
        "Choose what to share",
    ),
    ("consents.expires", "同意の有効期限", "Consent valid until"),
    ("consents.save", "保存する", "Save"),
    ("consents.revoke", "同意を取り消す", "Withdraw consent"),
    (
        "consents.nojs",
        "JavaScript を使わない場合は、同意(consent_jws)や変更(change_jws)の署名を自分で作って送ってください。",
        "Without JavaScript, sign the consent (consent_jws) or change (change_jws) yourself and send it.",
    ),
    ("consents.mine", "あなたの同意", "Your consents"),
    (
        "consents.mine.none",
        "まだ同意はありません。",
        "You have not consented to anything yet.",
    ),
    (
        "consents.identity",
        "ログイン時の本人確認情報の提供",
        "Identity shared at login",
    ),
    ("consents.granted_at", "同意した日時", "Consented on"),
    // history
    ("history.title", "利用履歴", "History"),
    (
        "history.intro",
        "あなたに関するすべての記録です。各記録が改ざんされずに台帳に含まれていることを、このブラウザが台帳の証明から確かめます。",
        "Everything recorded about you. This browser checks from the ledger's proofs that each entry is in the ledger, unaltered.",
    ),
    (
        "history.none",
        "まだ記録はありません。",
        "Nothing recorded yet.",
    ),
    (
        "history.checking",
        "台帳で確認しています…",
        "Checking against the ledger…",
    ),
    ("history.not_checked", "未確認", "not checked"),
    (
        "history.tree_size",
        "確認に使った台帳の大きさ",
        "Ledger size checked against",
    ),
    ("history.entries", "件", "entries"),
    ("history.older", "さらに古い記録", "Older entries"),
    ("history.newest", "最新の記録へ", "Newest entries"),
    ("history.service", "サービス", "Service"),
    ("history.source", "提供元", "Source"),
    ("history.purpose", "目的", "Purpose"),
    ("history.items", "情報", "Items"),
    ("history.basis", "根拠", "Basis"),
    ("history.reason", "理由", "Reason"),
    ("history.requester", "請求者", "Requested by"),
    ("history.outcome.recorded", "記録", "Recorded"),
    ("history.outcome.refused", "拒否", "Refused"),
    (
        "history.outcome.expired",
        "保存期間を過ぎた記録(内容は削除済み)",
        "Past retention (content deleted)",
    ),
    ("history.kind.unknown", "記録", "Entry"),
    (
        "history.kind.identity.enrolled",
        "端末を登録",
        "Device registered",
    ),
    (
        "history.kind.identity.device_added",
        "端末を追加",
        "Device added",
    ),
    (
        "history.kind.identity.upgraded",
        "本人確認済みに更新",
        "Identity verified",
    ),
    (
        "history.kind.identity.reproofed",
        "本人確認をやり直し",
        "Identity re-proofed",
    ),
    (
        "history.kind.identity.enrollment_refused",
        "端末の登録を拒否",
        "Registration refused",
    ),
    (
        "history.kind.identity.reproof_required",
        "再度の本人確認が必要",
        "Re-proofing required",
    ),
    (
        "history.kind.identity.device_revoked",
        "端末を無効化",
        "Device revoked",
    ),
    (
        "history.kind.identity.pairwise_shown",
        "サービス用の番号を表示",
        "Service id shown",
    ),
    ("history.kind.auth.login", "ログイン", "Logged in"),
    (
        "history.kind.auth.login_refused",
        "ログインを拒否",
        "Login refused",
    ),
    (
        "history.kind.consent.granted",
        "提供に同意",
        "Consent given",
    ),
    (
        "history.kind.consent.expiry_changed",
        "同意の期限を変更",
        "Consent expiry changed",
    ),
    (
        "history.kind.consent.revoked",
        "同意を取り消し",
        "Consent withdrawn",
    ),
    (
        "history.kind.consent.expired",
        "同意の期限切れ",
        "Consent expired",
    ),
    (
        "history.kind.consent.refused",
        "同意を受け付けず",
        "Consent refused",
    ),
    (
        "history.kind.ticket.issued",
        "情報の提供を許可",
        "Provision allowed",
    ),
    (
        "history.kind.ticket.refused",
        "情報の提供を拒否",
        "Provision refused",
    ),
    (
        "history.kind.exchange.receipt",
        "受け渡しの受領記録",
        "Exchange receipt",
    ),
    (
        "history.kind.exchange.completed",
        "受け渡し完了",
        "Exchange completed",
    ),
    (
        "history.kind.exchange.flagged",
        "受け渡しに不一致",
        "Exchange flagged",
    ),
    (
        "history.kind.oidc.authorized",
        "サービスへのログイン",
        "Logged in to a service",
    ),
    (
        "history.kind.oidc.refused",
        "サービスへのログインを拒否",
        "Service login refused",
    ),
    (
        "history.kind.oidc.grant_revoked",
        "サービスのログイン許可を取り消し",
        "Service login grant revoked",
    ),
    // devices
    ("devices.title", "端末", "Devices"),
    (
        "devices.intro",
        "あなたのアカウントに登録された端末です。なくした端末は、ここで無効にしてください。無効にした端末の鍵では、ログインも署名もできなくなります。",
        "The devices registered to your account. Revoke a lost device here: its key can no longer log in or sign.",
    ),
    ("devices.this", "この端末", "This device"),
    ("devices.created", "登録日時", "Registered"),
    ("devices.expires", "有効期限", "Valid until"),
    ("devices.revoked_at", "無効にした日時", "Revoked"),
    ("devices.locked_until", "ロック解除の予定", "Locked until"),
    ("devices.key", "鍵の指紋", "Key thumbprint"),
    (
        "devices.revoke",
        "この端末を無効にする",
        "Revoke this device",
    ),
    (
        "devices.revoke_this",
        "この端末を無効にしてログアウトする",
        "Revoke this device and log out",
    ),
    ("devices.status.active", "有効", "Active"),
    ("devices.status.revoked", "無効", "Revoked"),
    ("devices.status.expired", "期限切れ", "Expired"),
    ("devices.status.locked", "ロック中", "Locked"),
    // home
    ("res.home.manage", "できること", "What you can do"),
    (
        "res.home.consents",
        "どの情報を、どのサービスに提供するかを管理する",
        "Manage which information goes to which service",
    ),
    (
        "res.home.history",
        "あなたの情報の利用履歴を、台帳の証明つきで見る",
        "See how your information was used, with ledger proofs",
    ),
    (
        "res.home.devices",
        "登録した端末を確認し、なくした端末を無効にする",
        "See your devices and revoke a lost one",
    ),
    (
        "res.home.upgrade",
        "マイナンバーカードで本人確認する",
        "Proof your ID with the My Number card",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_card_signs_enrollment_bindings_only() {
        let good = br#"{"device_jwk_thumbprint":"tp","nonce":"n"}"#;
        assert!(enrollment_signed_data(good).is_ok());
        for bad in [
            &br#"{"nonce":"n","device_jwk_thumbprint":"tp"}"#[..],
            br#"{"device_jwk_thumbprint":"tp","nonce":"n","x":1}"#,
            br#"{"device_jwk_thumbprint":"tp"}"#,
            br#"["tp","n"]"#,
            b"plain text",
        ] {
            assert_eq!(
                enrollment_signed_data(bad).unwrap_err().code,
                Code::InvalidRequest
            );
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

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
                lookup(Lang::Ja, &format!("history.kind.{kind}")).is_some(),
                "{kind}"
            );
        }
        assert_eq!(basis_label(Lang::En, "statutory"), "Required by law");
        assert_eq!(status_label(Lang::Ja, "revoked"), "取り消し済み");
        let e = ApiError::new(Code::ProvisionalId, "detail");
        let p = problem(Lang::En, &e);
        assert_eq!(p.code, "provisional_id");
        assert!(p.message.contains("provisional ID"));
        let e = ApiError::new(Code::Locked, "locked until x");
        assert_eq!(problem(Lang::Ja, &e).message, "locked until x");
    }
}
