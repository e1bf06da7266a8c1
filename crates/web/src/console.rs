//! The service console (`/console/…`): apply for a service, and — signed in with the
//! service's own key — see the review state and lint findings, manage keys, redirect URIs and
//! the client secret, and read the consent feed and exchange statistics.
//!
//! Sign-in: the operator picks the service's private key file in the browser; `console.js`
//! signs a client assertion (`iss` = `sub` = the service id, `aud` = `<public_url>/console`,
//! single-use `jti`, at most five minutes) and posts it. The platform checks it against the
//! service's registered JWKS and answers with the cookie `tsunagu_console`: a compact JWS the
//! platform signs (`typ` `console+jwt`, eight hours), checked on every request, so the
//! console keeps no session state. A client without JavaScript signs the assertion itself.
//!
//! Forms that change something carry a CSRF token derived from the cookie and must come from
//! this origin.

use super::pages::{LangQuery, page_lang, remember_lang};
use super::signed_session::{self, SessionKind, SignedIn, session_page};
use super::{App, AppState, Lang, Page, api_error_page, html, lang_of, same_origin, see_other};
use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use tsunagu_core::Code;
use tsunagu_core::lint::Finding;
use tsunagu_core::service::TOKEN_AUTH_CLIENT_SECRET_BASIC;
use tsunagu_platform::Refusal;
use tsunagu_platform::directory::ServiceEntry;
use tsunagu_platform::exchange::FeedEvent;
use tsunagu_platform::services::{RegistrationUpdate, parse_application, parse_jwks};
use tsunagu_platform::sessions;

/// The `typ` of the console's session token.
const CONSOLE_TYP: &str = "console+jwt";
/// The service console's session: cookie `tsunagu_console`, claim `service_id`.
const CONSOLE: SessionKind = SessionKind {
    token: sessions::SessionKind {
        typ: CONSOLE_TYP,
        claim: "service_id",
        purpose: "console-session",
    },
    cookie: "tsunagu_console",
    home: "/console",
    login: "/console/login",
};
/// Consent feed events shown on the console.
const FEED_SHOWN: usize = 50;
/// The feed is read in pages of this size, at most `FEED_PAGES` pages.
const FEED_PAGE: u32 = 1000;
const FEED_PAGES: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/apply", get(apply_page).post(apply))
        .route("/console/registration", post(update_registration))
        .route("/console/client_secret", post(rotate_secret))
}

// ---------------------------------------------------------------------------------------
// Shared with the committee console
// ---------------------------------------------------------------------------------------

/// The newest `keep` rows of an ascending, cursor-paged list, reading at most `pages`
/// pages; `false` when the pages ran out before the end.
pub(super) async fn newest<T, F, Fut>(
    keep: usize,
    pages: usize,
    page_size: u32,
    seq: impl Fn(&T) -> i64,
    mut fetch: F,
) -> Result<(Vec<T>, bool), Refusal>
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, Refusal>>,
{
    let mut kept: VecDeque<T> = VecDeque::with_capacity(keep + 1);
    let mut since = 0;
    for _ in 0..pages {
        let rows = fetch(since).await?;
        let full = rows.len() >= page_size as usize;
        for row in rows {
            since = seq(&row);
            kept.push_back(row);
            if kept.len() > keep {
                kept.pop_front();
            }
        }
        if !full {
            return Ok((kept.into_iter().rev().collect(), true));
        }
    }
    Ok((kept.into_iter().rev().collect(), false))
}

// ---------------------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------------------

/// The service signed in to the console (`party` = the service id), with the cookie's token.
type ConsoleSession = SignedIn;

async fn console_session(app: &App, headers: &HeaderMap) -> Option<ConsoleSession> {
    CONSOLE.session(app, headers).await
}

/// The audience of console sign-in assertions.
pub fn console_audience(app: &App) -> String {
    CONSOLE.audience(app)
}

fn console_page(
    app: &App,
    lang: Lang,
    title_key: &str,
    section: &'static str,
    session: Option<&ConsoleSession>,
) -> Page {
    session_page(app, lang, title_key, section, session)
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    page: Page,
    audience: String,
    service_id: String,
    error: Option<String>,
}

/// The sign-in page as `status`, with the service id filled in and why it was refused.
fn login_form(
    app: &App,
    lang: Lang,
    status: StatusCode,
    service_id: &str,
    error: Option<String>,
) -> Response {
    html(
        status,
        &LoginPage {
            page: console_page(app, lang, "console-login-title", "console-login", None),
            audience: console_audience(app),
            service_id: service_id.to_owned(),
            error,
        },
    )
}

#[derive(serde::Deserialize, Default)]
struct LoginQuery {
    service_id: Option<String>,
}

/// `GET /console/login`.
async fn login_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(lq): Query<LangQuery>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let lang = page_lang(&headers, &lq);
    let service_id = q.service_id.unwrap_or_default();
    let mut r = login_form(&app, lang, StatusCode::OK, &service_id, None);
    remember_lang(&app, &mut r, &lq);
    r
}

/// Checks a console sign-in: the assertion of a registered service, signed by a key of its
/// JWKS, for the console's audience; uses up its `jti`.
async fn check_login(app: &App, service_id: &str, assertion: &str) -> Result<String, Refusal> {
    app.exchange
        .sign_in(service_id, assertion, &console_audience(app))
        .await
        .map(|id| id.into_string())
}

/// `POST /console/login` (`service_id`, `assertion`).
async fn login(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&headers, None);
    let (service_id, assertion) = CONSOLE.login_fields(&form);
    let refused = |status: StatusCode, message: String| {
        login_form(&app, lang, status, &service_id, Some(message))
    };
    CONSOLE
        .login(&app, &headers, refused, || {
            check_login(&app, &service_id, assertion)
        })
        .await
}

/// `POST /console/logout` (`csrf`): ends the session and forgets the cookie.
async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    CONSOLE.logout(&app, &headers, &form).await
}

// ---------------------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------------------

/// The apply form's values (kept when the application is refused).
#[derive(Clone)]
struct ApplyForm {
    name: String,
    organization: String,
    contact: String,
    kind: String,
    endpoint: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    token_endpoint_auth_method: String,
    jwks: String,
    offers: String,
    purposes: String,
    iso27001: bool,
    incident_contact: String,
    subcontractors: String,
    /// The service's signed acceptance of the obligations (a compact JWS), if pasted.
    obligations_acceptance: String,
    /// The client certificate for mutual TLS (PEM or its x5t#S256), if pasted.
    tls_client_certificate: String,
}

const EXAMPLE_JWKS: &str = r#"{
  "keys": [
    { "kty": "EC", "crv": "P-256", "x": "…", "y": "…", "kid": "…", "alg": "ES256", "use": "sig" }
  ]
}"#;

const EXAMPLE_PURPOSES: &str = r#"[
  {
    "id": "login-with-address",
    "title_ja": "ログインと配送先の確認",
    "title_en": "Log-in and delivery address",
    "description_ja": "tsunagu でログインした方に、申し込んだ品物を自宅へ届けるため、氏名と住所を受け取ります。",
    "description_en": "When a resident logs in with tsunagu, we receive their name and address to deliver what they ordered to their home.",
    "provider": "tsunagu",
    "items": ["name", "address"],
    "uses": {
      "name": "配送伝票の宛名に使うため",
      "address": "申し込んだ品物を自宅へ届けるため"
    },
    "retention_days": 90,
    "legal_basis": "consent"
  }
]"#;

const EXAMPLE_OFFERS: &str = r#"[
  { "item": "allergy", "title_ja": "食物アレルギー", "title_en": "Food allergies", "data_class": "closed", "sensitive": true }
]"#;

impl Default for ApplyForm {
    fn default() -> Self {
        ApplyForm {
            name: String::new(),
            organization: String::new(),
            contact: String::new(),
            kind: "consumer".into(),
            endpoint: String::new(),
            redirect_uris: String::new(),
            post_logout_redirect_uris: String::new(),
            token_endpoint_auth_method: "private_key_jwt".into(),
            jwks: String::new(),
            offers: "[]".into(),
            purposes: EXAMPLE_PURPOSES.into(),
            iso27001: false,
            incident_contact: String::new(),
            subcontractors: String::new(),
            obligations_acceptance: String::new(),
            tls_client_certificate: String::new(),
        }
    }
}

impl ApplyForm {
    fn from_form(form: &HashMap<String, String>) -> ApplyForm {
        let f = |k: &str| form.get(k).cloned().unwrap_or_default();
        ApplyForm {
            name: f("name"),
            organization: f("organization"),
            contact: f("contact"),
            kind: f("kind"),
            endpoint: f("endpoint"),
            redirect_uris: f("redirect_uris"),
            post_logout_redirect_uris: f("post_logout_redirect_uris"),
            token_endpoint_auth_method: f("token_endpoint_auth_method"),
            jwks: f("jwks"),
            offers: f("offers"),
            purposes: f("purposes"),
            iso27001: form
                .get("iso27001")
                .is_some_and(|v| matches!(v.as_str(), "on" | "true" | "1" | "yes")),
            incident_contact: f("incident_contact"),
            subcontractors: f("subcontractors"),
            obligations_acceptance: f("obligations_acceptance"),
            tls_client_certificate: f("tls_client_certificate"),
        }
    }

    /// The application as `POST /v1/services` takes it.
    fn application(&self) -> Result<Value, String> {
        let json_field = |name: &str, text: &str, empty: Value| -> Result<Value, String> {
            if text.trim().is_empty() {
                return Ok(empty);
            }
            serde_json::from_str(text).map_err(|e| format!("{name}: not valid JSON ({e})"))
        };
        let endpoint = self.endpoint.trim();
        let method = self.token_endpoint_auth_method.trim();
        let acceptance = self.obligations_acceptance.trim();
        let mut app = json!({
            "name": self.name.trim(),
            "organization": self.organization.trim(),
            "contact": self.contact.trim(),
            "kind": self.kind.trim(),
            "jwks": json_field("jwks", &self.jwks, Value::Null)?,
            "endpoint": if endpoint.is_empty() { Value::Null } else { Value::String(endpoint.to_owned()) },
            "redirect_uris": lines(&self.redirect_uris),
            "post_logout_redirect_uris": lines(&self.post_logout_redirect_uris),
            "token_endpoint_auth_method": if method.is_empty() { Value::Null } else { Value::String(method.to_owned()) },
            "offers": json_field("offers", &self.offers, json!([]))?,
            "purposes": json_field("purposes", &self.purposes, json!([]))?,
            "security": {
                "iso27001": self.iso27001,
                "incident_contact": self.incident_contact.trim(),
                "subcontractors": lines(&self.subcontractors),
            },
        });
        if !acceptance.is_empty() {
            app["obligations_acceptance"] = Value::String(acceptance.to_owned());
        }
        let certificate = self.tls_client_certificate.trim();
        if !certificate.is_empty() {
            app["tls_client_certificate"] = Value::String(certificate.to_owned());
        }
        Ok(app)
    }
}

/// The non-empty, trimmed lines of a textarea.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Template)]
#[template(path = "console/apply.html")]
struct ApplyPage {
    page: Page,
    form: ApplyForm,
    error: Option<String>,
    example_jwks: &'static str,
    example_offers: &'static str,
    /// The contract obligations (code, Japanese, English) and the hash a service signs.
    obligations: &'static [(&'static str, &'static str, &'static str)],
    obligations_sha256: String,
}

/// One lint finding, for display.
pub(super) struct FindingView {
    pub(super) code: String,
    pub(super) severity: String,
    pub(super) message: String,
    pub(super) principle: String,
    pub(super) purpose_id: String,
    pub(super) item: String,
}

fn findings(lint: &[Finding]) -> Vec<FindingView> {
    lint.iter()
        .map(|f| FindingView {
            code: f.code.clone(),
            severity: f.severity.as_str().to_owned(),
            message: f.message.clone(),
            principle: f.principle.clone(),
            purpose_id: f.purpose_id.clone().unwrap_or_default(),
            item: f.item.clone().unwrap_or_default(),
        })
        .collect()
}

/// A registered service's lint findings.
pub(super) fn findings_of(entry: &ServiceEntry) -> Vec<FindingView> {
    findings(&entry.findings())
}

#[derive(Template)]
#[template(path = "console/applied.html")]
struct AppliedPage {
    page: Page,
    service_id: String,
    status: String,
    findings: Vec<FindingView>,
    client_secret: Option<String>,
}

/// The apply page as `status`, with the form's values and why they were refused.
fn apply_form(
    app: &App,
    lang: Lang,
    session: Option<&ConsoleSession>,
    status: StatusCode,
    form: ApplyForm,
    error: Option<String>,
) -> Response {
    html(
        status,
        &ApplyPage {
            page: console_page(app, lang, "console-apply-title", "console-apply", session),
            form,
            error,
            example_jwks: EXAMPLE_JWKS,
            example_offers: EXAMPLE_OFFERS,
            obligations: tsunagu_core::service::OBLIGATIONS,
            obligations_sha256: tsunagu_platform::services::obligations_sha256(),
        },
    )
}

/// `GET /console/apply`.
async fn apply_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = page_lang(&headers, &q);
    let session = console_session(&app, &headers).await;
    let mut r = apply_form(
        &app,
        lang,
        session.as_ref(),
        StatusCode::OK,
        ApplyForm::default(),
        None,
    );
    remember_lang(&app, &mut r, &q);
    r
}

/// `POST /console/apply`: anyone may apply (as with `POST /v1/services`).
async fn apply(
    State(app): State<AppState>,
    cert: Option<axum::Extension<tsunagu_capability::ClientCert>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&headers, None);
    let values = ApplyForm::from_form(&form);
    let session = console_session(&app, &headers).await;
    let refused = |status: StatusCode, message: String| {
        apply_form(
            &app,
            lang,
            session.as_ref(),
            status,
            values.clone(),
            Some(message),
        )
    };
    if !same_origin(&app, &headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "this form was sent from another site (forbidden)".into(),
        );
    }
    let application = match values.application() {
        Ok(a) => a,
        Err(message) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("{message} ({})", Code::ApplicationInvalid.as_str()),
            );
        }
    };
    let applied = match parse_application(application.to_string().as_bytes()) {
        // A client certificate is registered only over a connection made with it.
        Ok(application) => {
            let presented = cert.as_ref().map(|c| c.x5t_s256.as_str());
            app.services.apply_over(application, presented).await
        }
        Err(e) => Err(e),
    };
    match applied {
        Ok(answer) => html(
            StatusCode::CREATED,
            &AppliedPage {
                page: console_page(
                    &app,
                    lang,
                    "console-applied-title",
                    "console-apply",
                    session.as_ref(),
                ),
                service_id: answer.service_id.to_string(),
                status: answer.status.as_str().to_owned(),
                findings: findings(&answer.lint),
                client_secret: answer.client_secret,
            },
        ),
        Err(e) => refused(
            super::status_of(&e),
            format!("{} ({})", e.detail, e.code.as_str()),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// The signed-in console
// ---------------------------------------------------------------------------------------

/// A registered key, for display.
struct KeyView {
    kid: String,
    use_: String,
    alg: String,
    thumbprint: String,
}

/// One consent feed event, for display.
struct FeedView {
    cursor: i64,
    subject: String,
    purpose_id: String,
    consumer: String,
    provider: String,
    status: String,
    items: String,
    expires_at: i64,
    at: i64,
}

/// Ticket counts by state for one role.
struct StatRow {
    role: String,
    state: String,
    count: u64,
}

/// A vote of the current review round.
struct VoteView {
    member: String,
    decision: String,
    at: i64,
}

#[derive(Template)]
#[template(path = "console/home.html")]
struct HomePage {
    page: Page,
    notice: Option<String>,
    error: Option<String>,
    service_id: String,
    name: String,
    organization: String,
    contact: String,
    kind: String,
    status: String,
    round: i64,
    quorum: usize,
    votes: Vec<VoteView>,
    created_at: i64,
    updated_at: i64,
    auth_method: String,
    uses_secret: bool,
    endpoint: String,
    keys: Vec<KeyView>,
    jwks_json: String,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    redirect_text: String,
    post_logout_text: String,
    /// The registered client certificate as given (PEM or thumbprint), and its thumbprint.
    client_cert_text: String,
    client_cert_sha256: String,
    findings: Vec<FindingView>,
    feed: Vec<FeedView>,
    feed_complete: bool,
    stats: Vec<StatRow>,
    active_grants: u64,
}

#[derive(serde::Deserialize, Default)]
struct HomeQuery {
    done: Option<String>,
}

/// `GET /console`.
async fn home(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(lq): Query<LangQuery>,
    Query(q): Query<HomeQuery>,
) -> Response {
    let lang = page_lang(&headers, &lq);
    let Some(session) = console_session(&app, &headers).await else {
        return see_other("/console/login");
    };
    let notice = match q.done.as_deref() {
        Some("registration") => Some("console-updated"),
        Some("unchanged") => Some("console-unchanged"),
        _ => None,
    };
    let mut r = match render_home(&app, lang, &session, notice, None, StatusCode::OK).await {
        Ok(r) => r,
        Err(e) => api_error_page(&app, lang, &e),
    };
    remember_lang(&app, &mut r, &lq);
    r
}

async fn render_home(
    app: &App,
    lang: Lang,
    session: &ConsoleSession,
    notice: Option<&str>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, Refusal> {
    let service_id = tsunagu_core::ServiceId::from(session.party.as_str());
    let entry = app.services.get(&service_id).await?;
    let votes = app
        .governance
        .votes(&service_id, entry.row.round)
        .await?
        .into_iter()
        .map(|v| VoteView {
            member: v.member.into_string(),
            decision: v.decision.as_str().to_owned(),
            at: v.cast_at,
        })
        .collect();
    let (events, feed_complete) = newest(
        FEED_SHOWN,
        FEED_PAGES,
        FEED_PAGE,
        |e: &FeedEvent| e.cursor,
        |since| {
            let id = service_id.clone();
            async move { Ok(app.exchange.feed_of(&id, since, FEED_PAGE).await?.events) }
        },
    )
    .await?;
    let feed = events
        .into_iter()
        .map(|e| FeedView {
            cursor: e.cursor,
            subject: e.subject.into_string(),
            purpose_id: e.purpose_id.into_string(),
            consumer: e.consumer.into_string(),
            provider: e.provider.into_string(),
            status: e.status.to_owned(),
            items: e.items.join(", "),
            expires_at: e.expires_at,
            at: e.at,
        })
        .collect();
    let stats = app
        .exchange
        .ticket_counts(&service_id)
        .await?
        .into_iter()
        .map(|(side, state, count)| StatRow {
            role: match side {
                tsunagu_platform::exchange::ReceiptSide::Consumer => "consumer",
                tsunagu_platform::exchange::ReceiptSide::Provider => "provider",
            }
            .to_owned(),
            state: state.as_str().to_owned(),
            count,
        })
        .collect();
    let active_grants = app.oidc.active_grants(&service_id).await?;
    let application = &entry.application;
    let view = HomePage {
        page: console_page(app, lang, "console-title", "console", Some(session)),
        notice: notice.map(|k| super::i18n::t(lang, k).to_owned()),
        error,
        service_id: entry.row.id.to_string(),
        name: entry.row.name.clone(),
        organization: entry.row.organization.clone(),
        contact: entry.row.contact.clone(),
        kind: entry.row.kind.as_str().to_owned(),
        status: entry.row.status.as_str().to_owned(),
        round: entry.row.round,
        quorum: app.governance.quorum(),
        votes,
        created_at: entry.row.created_at,
        updated_at: entry.row.updated_at,
        auth_method: application.token_auth_method().to_owned(),
        uses_secret: application.token_auth_method() == TOKEN_AUTH_CLIENT_SECRET_BASIC,
        endpoint: application.endpoint.clone().unwrap_or_default(),
        keys: entry
            .jwks()
            .keys
            .iter()
            .map(|k| KeyView {
                kid: k.kid.clone().unwrap_or_else(|| k.thumbprint()),
                use_: k.use_.clone().unwrap_or_else(|| "sig".into()),
                alg: k.alg.clone().unwrap_or_else(|| k.jose_alg().to_owned()),
                thumbprint: k.thumbprint(),
            })
            .collect(),
        jwks_json: serde_json::to_string_pretty(&entry.jwks().to_value()).unwrap_or_default(),
        redirect_uris: application.redirect_uris.clone(),
        post_logout_redirect_uris: application.post_logout_redirect_uris.clone(),
        redirect_text: application.redirect_uris.join("\n"),
        post_logout_text: application.post_logout_redirect_uris.join("\n"),
        client_cert_text: application
            .tls_client_certificate
            .clone()
            .unwrap_or_default(),
        client_cert_sha256: entry.row.client_cert_sha256.clone().unwrap_or_default(),
        findings: findings_of(&entry),
        feed,
        feed_complete,
        stats,
        active_grants,
    };
    Ok(html(status, &view))
}

/// The console again, with why a form was refused.
async fn refused(
    app: &App,
    lang: Lang,
    session: &ConsoleSession,
    message: String,
    status: StatusCode,
) -> Response {
    render_home(app, lang, session, None, Some(message), status)
        .await
        .unwrap_or_else(|e| api_error_page(app, lang, &e))
}

/// The signed-in service of a POST and its checked form, or the response that refuses it.
async fn require_form(
    app: &App,
    lang: Lang,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<ConsoleSession, Box<Response>> {
    signed_session::require_form(
        app,
        lang,
        headers,
        form,
        console_session(app, headers).await,
    )
}

/// `POST /console/registration` (`jwks`, `redirect_uris`, `post_logout_redirect_uris`,
/// `endpoint`, `csrf`).
async fn update_registration(
    State(app): State<AppState>,
    cert: Option<axum::Extension<tsunagu_capability::ClientCert>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&headers, None);
    let session = match require_form(&app, lang, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let jwks = match form.get("jwks").map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some(text) => parse_jwks(text).map(Some),
    };
    let jwks = match jwks {
        Ok(jwks) => jwks,
        Err(e) => {
            let message = format!("{} ({})", e.detail, e.code.as_str());
            return refused(&app, lang, &session, message, super::status_of(&e)).await;
        }
    };
    let update = RegistrationUpdate {
        jwks,
        redirect_uris: form.get("redirect_uris").map(|t| lines(t)),
        post_logout_redirect_uris: form.get("post_logout_redirect_uris").map(|t| lines(t)),
        endpoint: form.get("endpoint").cloned(),
        tls_client_certificate: form.get("tls_client_certificate").cloned(),
        obligations_acceptance: form
            .get("obligations_acceptance")
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty()),
        presented_client_cert: cert.map(|c| c.0.x5t_s256),
    };
    match app
        .services
        .update_registration(&session.party.as_str().into(), &update)
        .await
    {
        Ok(answer) => {
            let changed = !answer.changed.is_empty();
            see_other(if changed {
                "/console?done=registration"
            } else {
                "/console?done=unchanged"
            })
        }
        Err(e) => {
            let message = format!("{} ({})", e.detail, e.code.as_str());
            refused(&app, lang, &session, message, super::status_of(&e)).await
        }
    }
}

#[derive(Template)]
#[template(path = "console/secret.html")]
struct SecretPage {
    page: Page,
    service_id: String,
    client_secret: String,
}

/// `POST /console/client_secret` (`csrf`): a new secret, shown once on this page.
async fn rotate_secret(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&headers, None);
    let session = match require_form(&app, lang, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match app
        .services
        .rotate_client_secret(&session.party.as_str().into())
        .await
    {
        Ok(answer) => html(
            StatusCode::OK,
            &SecretPage {
                page: console_page(
                    &app,
                    lang,
                    "console-secret-title",
                    "console",
                    Some(&session),
                ),
                service_id: session.party.clone(),
                client_secret: answer.client_secret,
            },
        ),
        Err(e) => api_error_page(&app, lang, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apply_form_becomes_an_application() {
        let mut form = HashMap::new();
        for (k, v) in [
            ("name", " 配送サービス "),
            ("organization", "株式会社つなぐ配送"),
            ("contact", "ops@example.jp"),
            ("kind", "consumer"),
            ("endpoint", ""),
            (
                "redirect_uris",
                "https://rp.example.jp/cb\r\n\r\n https://rp.example.jp/cb2 ",
            ),
            ("token_endpoint_auth_method", "client_secret_basic"),
            ("jwks", r#"{"keys":[]}"#),
            ("offers", ""),
            ("purposes", "[]"),
            ("iso27001", "on"),
            ("incident_contact", "soc@example.jp"),
            ("subcontractors", "A社\nB社"),
        ] {
            form.insert(k.to_owned(), v.to_owned());
        }
        let app = ApplyForm::from_form(&form).application().unwrap();
        assert_eq!(app["name"], "配送サービス");
        assert_eq!(
            app["redirect_uris"],
            json!(["https://rp.example.jp/cb", "https://rp.example.jp/cb2"])
        );
        assert_eq!(app["post_logout_redirect_uris"], json!([]));
        assert_eq!(app["endpoint"], Value::Null);
        assert_eq!(app["offers"], json!([]));
        assert_eq!(app["security"]["iso27001"], true);
        assert_eq!(app["security"]["subcontractors"], json!(["A社", "B社"]));
        let parsed: tsunagu_core::service::Application<serde_json::Value> =
            serde_json::from_value(app).expect("the JSON an application takes");
        assert_eq!(parsed.token_auth_method(), "client_secret_basic");

        form.insert("purposes".into(), "[{".into());
        let err = ApplyForm::from_form(&form).application().unwrap_err();
        assert!(err.starts_with("purposes: not valid JSON"), "{err}");
    }

    #[test]
    fn the_prefilled_purposes_are_a_valid_identity_purpose() {
        let purposes: Vec<tsunagu_core::service::Purpose> =
            serde_json::from_str(EXAMPLE_PURPOSES).unwrap();
        assert_eq!(purposes[0].provider, "tsunagu");
        let offers: Vec<tsunagu_core::service::Offer> =
            serde_json::from_str(EXAMPLE_OFFERS).unwrap();
        assert_eq!(offers[0].item, "allergy");
    }

    #[tokio::test]
    async fn newest_keeps_the_last_rows_newest_first() {
        let all: Vec<i64> = (1..=25).collect();
        let page = |since: i64| {
            let rows: Vec<i64> = all
                .iter()
                .copied()
                .filter(|s| *s > since)
                .take(10)
                .collect();
            async move { Ok::<_, Refusal>(rows) }
        };
        let (rows, complete) = newest(4, 10, 10, |s: &i64| *s, page).await.unwrap();
        assert_eq!(rows, vec![25, 24, 23, 22]);
        assert!(complete);
        let (rows, complete) = newest(4, 2, 10, |s: &i64| *s, page).await.unwrap();
        assert_eq!(rows, vec![20, 19, 18, 17]);
        assert!(!complete, "two pages of ten do not reach the end");
    }
}
