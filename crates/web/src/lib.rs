//! # tsunagu-web
//!
//! The web face, as two capabilities: `web` (server-rendered pages for residents — `/`,
//! `/login`, `/app/…` —, the service console `/console/…` and the committee console
//! `/committee/…`) and `oidc` (the OpenID Connect endpoints and their pages, `/oauth2/…`).
//! Pages call the platform's services and render their typed results; texts are Fluent
//! files (`i18n/`).
//!
//! Pages are askama templates over plain view structs; the only JavaScript is small ES
//! modules under `/static/js` that sign with keys held by the browser (WebCrypto,
//! non-extractable, in IndexedDB) and fill hidden form fields, so every form can also be
//! completed by a client that signs by itself.
//!
//! Cookies: `tsunagu_session` (a resident session token, HttpOnly, SameSite=Lax),
//! `tsunagu_authz` (the pending authorization request on the consent page),
//! `tsunagu_lang` (the language switch). State-changing forms of the web app carry a CSRF
//! token derived from the session token; every cookie-authenticated POST must also come
//! from this origin when the browser says where it comes from (`Origin`).

mod committee;
mod console;
pub mod i18n;
mod oauth;
mod pages;
mod resident;
mod signed_session;

use askama::Template;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use i18n::Lang;
use std::sync::Arc;
use tsunagu_api::ApiError;
use tsunagu_capability::{
    AssessmentSection, Capability, Context, DataFile, DataItem, Job, Mount, SectionFuture,
};
use tsunagu_core::Code;
use tsunagu_crypto::{constant_time_eq, sha256};
use tsunagu_platform::identity::Session;
use tsunagu_platform::oidc::{
    AUTHORIZE_PATH, CONSENT_PATH, LOGOUT_PATH, PAR_PATH, TOKEN_PATH, USERINFO_PATH,
};
use tsunagu_platform::{Platform, Refusal};

/// What the pages are served with: the platform, and whether a development capability
/// offers the simulated My Number card.
pub struct Web {
    pub platform: Arc<Platform>,
    /// The `dev-card` capability is part of this server (`/dev/simulated-card`).
    pub simulated_card: bool,
    /// The residents' data-subject requests (`/app/requests`).
    pub rights: tsunagu_rights::Rights,
}

impl std::ops::Deref for Web {
    type Target = Platform;

    fn deref(&self) -> &Platform {
        &self.platform
    }
}

/// The state every page handler gets.
pub type AppState = Arc<Web>;
/// What a page function is given.
pub type App = Web;

/// The resident session cookie.
pub const SESSION_COOKIE: &str = "tsunagu_session";
/// The pending authorization request shown on the consent page.
pub const AUTHZ_COOKIE: &str = "tsunagu_authz";
/// The language switch.
pub const LANG_COOKIE: &str = "tsunagu_lang";

/// The pages' router.
pub fn router(state: AppState) -> axum::Router {
    Router::new()
        .route("/", get(pages::landing))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/app", get(pages::home))
        .route("/static/{*file}", get(static_file))
        .merge(resident::routes())
        .merge(console::routes())
        .merge(committee::routes())
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The OpenID Connect endpoints and their pages.
pub fn oidc_router(state: AppState) -> axum::Router {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(oauth::configuration),
        )
        .route(
            AUTHORIZE_PATH,
            get(oauth::authorize_get).post(oauth::authorize_post),
        )
        .route(CONSENT_PATH, post(oauth::consent))
        .route(TOKEN_PATH, post(oauth::token))
        .route(
            USERINFO_PATH,
            get(oauth::userinfo_get).post(oauth::userinfo_post),
        )
        .route(PAR_PATH, post(oauth::par))
        .route(LOGOUT_PATH, get(oauth::logout_get).post(oauth::logout_post))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The name of the development capability that serves the simulated My Number card.
pub const SIMULATED_CARD: &str = "dev-card";

fn state(ctx: &Context) -> anyhow::Result<AppState> {
    Ok(Arc::new(Web {
        platform: ctx.platform.clone(),
        simulated_card: ctx.has(SIMULATED_CARD),
        rights: tsunagu_rights::Rights::new(
            ctx.platform.clone(),
            ctx.section::<tsunagu_rights::DsrConfig>()?,
        ),
    }))
}

/// `web`: the resident app, the service console and the committee console.
pub struct WebApp;

impl Capability for WebApp {
    fn name(&self) -> &'static str {
        "web"
    }

    fn mount(&self, ctx: &Context) -> anyhow::Result<Mount> {
        Ok(Mount::routes(router(state(ctx)?)))
    }
}

/// `oidc`: "log in with tsunagu" (OpenID Connect); purges expired requests, codes and
/// tokens.
pub struct OidcProvider;

impl Capability for OidcProvider {
    fn name(&self) -> &'static str {
        "oidc"
    }

    fn config_sections(&self) -> &'static [&'static str] {
        &["oidc"]
    }

    fn ledger_events(&self) -> &'static [&'static str] {
        &["oidc.authorized", "oidc.refused", "oidc.grant_revoked"]
    }

    fn mount(&self, ctx: &Context) -> anyhow::Result<Mount> {
        let platform = ctx.platform.clone();
        let purge = Job::new("oidc.purge", ctx.sweep_every, move || {
            let platform = platform.clone();
            async move { Ok(platform.oidc.purge().await?) }
        });
        Ok(Mount::routes(oidc_router(state(ctx)?)).job(purge))
    }

    fn assessment<'a>(&'a self, ctx: &'a Context) -> SectionFuture<'a> {
        let oidc = &ctx.platform.config.oidc;
        let refresh_days = oidc.refresh_token_days;
        Box::pin(async move {
            Ok(AssessmentSection {
                files: vec![DataFile {
                    id: "oidc.grants".into(),
                    name: "Logins to services (grants, codes, tokens)".into(),
                    items: vec![
                        DataItem::new("pairwise subject per service", false),
                        DataItem::new("codes and tokens (SHA-256 only)", false),
                    ],
                    subjects: None,
                    sources: vec!["the resident's login and signed consent".into()],
                    uses: vec!["\"log in with tsunagu\" for approved services".into()],
                    retention: format!("refresh tokens {refresh_days} days; codes 60 s"),
                }],
                flows: vec![],
                measures: vec![],
            })
        })
    }
}

/// The pages' Content-Security-Policy: scripts and styles from this origin only, no
/// framing. The headers every response carries (nosniff, `X-Frame-Options`,
/// `Referrer-Policy`, HSTS under HTTPS) are added by the server's edge layer for every
/// capability alike.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

/// The static assets, compiled into the binary.
const STATIC: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../static/app.css"),
    ),
    (
        "js/jose.js",
        "text/javascript; charset=utf-8",
        include_str!("../static/js/jose.js"),
    ),
    (
        "js/wallet.js",
        "text/javascript; charset=utf-8",
        include_str!("../static/js/wallet.js"),
    ),
    (
        "js/ledger.js",
        "text/javascript; charset=utf-8",
        include_str!("../static/js/ledger.js"),
    ),
    (
        "js/pages.js",
        "text/javascript; charset=utf-8",
        include_str!("../static/js/pages.js"),
    ),
    (
        "js/console.js",
        "text/javascript; charset=utf-8",
        include_str!("../static/js/console.js"),
    ),
];

async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match STATIC.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, path `/`, `Secure` when the platform is
/// served over https. `max_age` 0 deletes the cookie.
pub fn set_cookie(app: &App, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if app.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The language of a request: `?lang=`, else the switch's cookie, else `Accept-Language`,
/// else Japanese.
pub fn lang_of(headers: &HeaderMap, query_lang: Option<&str>) -> Lang {
    if let Some(l) = query_lang.and_then(Lang::parse) {
        return l;
    }
    if let Some(l) = cookie(headers, LANG_COOKIE).and_then(Lang::parse) {
        return l;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(Lang::from_accept_language)
        .unwrap_or(Lang::Ja)
}

/// The CSRF token of a session: bound to the session token, so it needs no storage.
pub fn csrf_token(session_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(format!("csrf:{session_token}").as_bytes()))
}

/// Whether a form's `csrf` field is the session's token (compared in constant time). The
/// one CSRF check of every cookie-authenticated form.
pub fn csrf_ok(sent: &str, session_token: &str) -> bool {
    !sent.is_empty() && constant_time_eq(sent.as_bytes(), csrf_token(session_token).as_bytes())
}

/// Whether a cookie-authenticated POST comes from this origin (when the browser says).
pub fn same_origin(app: &App, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => app.public_url.trim_end_matches('/') == origin.trim_end_matches('/'),
    }
}

/// The resident signed in with the session cookie, with the cookie's token.
pub async fn session(app: &App, headers: &HeaderMap) -> Option<(Session, String)> {
    let token = cookie(headers, SESSION_COOKIE)?;
    app.identity
        .authenticate(token)
        .await
        .ok()
        .map(|s| (s, token.to_owned()))
}

/// What every page's layout needs.
#[derive(Debug, Clone)]
pub struct Page {
    pub lang: Lang,
    pub title: String,
    /// The CSRF token for the signed-in resident's forms (empty when signed out).
    pub csrf: String,
    pub signed_in: bool,
    /// The section highlighted in the navigation.
    pub section: &'static str,
    /// Whether the development conveniences (the simulated card) are on.
    pub dev: bool,
    /// Whether the language switch is offered (not on pages whose URL carries a request).
    pub lang_switch: bool,
}

impl Page {
    pub fn new(app: &App, lang: Lang, title_key: &str, section: &'static str) -> Page {
        Page {
            lang,
            title: i18n::t(lang, title_key).to_owned(),
            csrf: String::new(),
            signed_in: false,
            section,
            dev: app.simulated_card,
            lang_switch: true,
        }
    }

    pub fn without_switch(mut self) -> Page {
        self.lang_switch = false;
        self
    }

    pub fn signed_in(mut self, session_token: &str) -> Page {
        self.signed_in = true;
        self.csrf = csrf_token(session_token);
        self
    }

    /// The text of `key` in this page's language.
    pub fn t(&self, key: &str) -> &'static str {
        i18n::t(self.lang, key)
    }

    pub fn ja(&self) -> bool {
        self.lang == Lang::Ja
    }

    /// The BCP 47 tag for `<html lang>`.
    pub fn html_lang(&self) -> &'static str {
        self.lang.tag()
    }

    /// Chooses between a Japanese and an English text.
    pub fn pick<'a>(&self, ja: &'a str, en: &'a str) -> &'a str {
        if self.ja() || en.is_empty() { ja } else { en }
    }

    /// A Unix time as a calendar date and time in Japan.
    pub fn datetime(&self, t: &i64) -> String {
        format_time(*t, true)
    }

    /// A Unix time as a calendar date in Japan.
    pub fn date(&self, t: &i64) -> String {
        format_time(*t, false)
    }
}

/// Formats Unix seconds in JST (UTC+9, no daylight saving).
pub fn format_time(t: i64, with_time: bool) -> String {
    let offset = time::UtcOffset::from_hms(9, 0, 0).unwrap_or(time::UtcOffset::UTC);
    match time::OffsetDateTime::from_unix_timestamp(t) {
        Ok(dt) => {
            let dt = dt.to_offset(offset);
            if with_time {
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}",
                    dt.year(),
                    dt.month() as u8,
                    dt.day(),
                    dt.hour(),
                    dt.minute()
                )
            } else {
                format!("{:04}-{:02}-{:02}", dt.year(), dt.month() as u8, dt.day())
            }
        }
        Err(_) => "—".into(),
    }
}

/// Renders a template as an HTML response with `status`; pages are never cached.
pub fn html(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => ApiError(Refusal::internal("template", e)).into_response(),
    }
}

/// A 303 to `to` (after a POST, the browser follows with GET).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The error page: what went wrong, in words, and the stable code.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub page: Page,
    /// The refusal code's title in the page's language, for a refusal of the platform.
    pub title: Option<String>,
    pub code: String,
    pub description: String,
}

/// An error page response.
pub fn error_page(
    app: &App,
    lang: Lang,
    status: StatusCode,
    code: &str,
    description: &str,
) -> Response {
    html(
        status,
        &ErrorPage {
            page: Page::new(app, lang, "error-title", ""),
            title: Code::parse(code).map(|c| code_title(lang, c).to_owned()),
            code: code.to_owned(),
            description: description.to_owned(),
        },
    )
}

/// A refusal code's title in `lang` (every code has one in both languages).
pub fn code_title(lang: Lang, code: Code) -> &'static str {
    i18n::lookup(lang, &i18n::key("code-", code.as_str())).unwrap_or_else(|| code.title())
}

/// A refusal as an error page.
pub fn api_error_page(app: &App, lang: Lang, e: &Refusal) -> Response {
    error_page(
        app,
        lang,
        status_of(e),
        e.code.as_str(),
        &tsunagu_core::code::public_detail(&e.detail),
    )
}

/// The HTTP status of a refusal.
pub fn status_of(e: &Refusal) -> StatusCode {
    tsunagu_api::error::status_of(e.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_code_has_a_title_in_both_languages() {
        for code in Code::ALL {
            let key = i18n::key("code-", code.as_str());
            let ja = i18n::lookup(Lang::Ja, &key);
            let en = i18n::lookup(Lang::En, &key);
            assert!(ja.is_some() && en.is_some(), "{key}");
            assert_eq!(
                en,
                Some(code.title()),
                "{key}: the English title is the API's"
            );
            assert_ne!(ja, en, "{key} is not translated");
        }
        assert_eq!(code_title(Lang::Ja, Code::ProvisionalId), "仮IDです");
    }

    #[test]
    fn the_csrf_token_is_compared_whole() {
        let token = csrf_token("session-1");
        assert!(csrf_ok(&token, "session-1"));
        assert!(!csrf_ok(&token, "session-2"), "another session's token");
        assert!(!csrf_ok(&token[..token.len() - 1], "session-1"), "a prefix");
        assert!(
            !csrf_ok(&format!("{token}x"), "session-1"),
            "a longer token"
        );
        assert!(!csrf_ok("", "session-1"));
        assert!(!csrf_ok("", ""), "no token never passes");
    }
}
