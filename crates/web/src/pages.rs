//! The resident's pages: the landing page, login and logout, and the home page.

use super::AppState;
use super::oauth::LoginPage;
use super::{
    LANG_COOKIE, Lang, Page, SESSION_COOKIE, api_error_page, html, lang_of, same_origin, see_other,
    session, set_cookie,
};
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use std::collections::HashMap;
use tsunagu_core::identity::{Level, Sex};
use tsunagu_platform::identity::Session;
use tsunagu_platform::identity::webauthn::WireAssertion;

#[derive(Deserialize, Default)]
pub struct LangQuery {
    lang: Option<String>,
}

/// The language of a page request; a `?lang=` switch is remembered in a cookie.
pub fn page_lang(headers: &HeaderMap, q: &LangQuery) -> Lang {
    lang_of(headers, q.lang.as_deref())
}

/// Remembers a language switch.
pub fn remember_lang(app: &AppState, response: &mut Response, q: &LangQuery) {
    if let Some(l) = q.lang.as_deref().and_then(Lang::parse) {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(app, LANG_COOKIE, l.tag(), 365 * 86_400),
        );
    }
}

#[derive(Template)]
#[template(path = "landing.html")]
struct Landing {
    page: Page,
}

pub async fn landing(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = page_lang(&headers, &q);
    let mut page = Page::new(&app, lang, "landing-title", "");
    if let Some((_, t)) = session(&app, &headers).await {
        page = page.signed_in(&t);
    }
    let mut r = html(StatusCode::OK, &Landing { page });
    remember_lang(&app, &mut r, &q);
    r
}

/// `GET /login`: the web app's own login page.
pub async fn login_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = page_lang(&headers, &q);
    let mut r = match app.oidc.web_login_page().await {
        Ok(view) => html(
            StatusCode::OK,
            &LoginPage {
                page: Page::new(&app, lang, "login-title", "login"),
                view,
                error: None,
            },
        ),
        Err(e) => api_error_page(&app, lang, &e),
    };
    remember_lang(&app, &mut r, &q);
    r
}

/// `POST /login` (`credential`, `nonce`, `signature`): sets the session cookie and goes on
/// to the pending authorization request, or to the home page.
pub async fn login(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&headers, None);
    if !same_origin(&app, &headers) {
        // Login CSRF: another site must not log the browser into someone else's account.
        return super::error_page(
            &app,
            lang,
            StatusCode::FORBIDDEN,
            "csrf",
            "this form came from another site",
        );
    }
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let user_verification =
        user_verification_field(form.get("user_verification").map(String::as_str));
    match app
        .oidc
        .login(
            field("credential"),
            field("nonce"),
            field("signature"),
            user_verification.as_ref(),
        )
        .await
    {
        Ok((logged_in, next)) => {
            let mut r = see_other(next.as_deref().unwrap_or("/app"));
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    &app,
                    SESSION_COOKIE,
                    &logged_in.access_token,
                    logged_in.expires_in as i64,
                ),
            );
            r
        }
        Err((e, Some(view))) => html(
            super::status_of(&e),
            &LoginPage {
                page: Page::new(&app, lang, "login-title", "login"),
                view,
                // The resident's words where the code has them (a gated device without its
                // screen-lock confirmation…), the platform's detail otherwise.
                error: Some(format!(
                    "{} ({})",
                    super::i18n::text_or(
                        lang,
                        &super::i18n::key("res-err-", e.code.as_str()),
                        &e.detail
                    ),
                    e.code.as_str()
                )),
            },
        ),
        Err((e, None)) => api_error_page(&app, lang, &e),
    }
}

/// The `user_verification` form field: a gated device's WebAuthn assertion as JSON text.
/// Unreadable JSON is kept as an assertion that fails (`user_verification_invalid`), not
/// dropped, which would read as "missing".
pub fn user_verification_field(text: Option<&str>) -> Option<WireAssertion> {
    let text = text.map(str::trim).unwrap_or("");
    if text.is_empty() {
        return None;
    }
    Some(
        serde_json::from_str::<WireAssertion>(text).unwrap_or_else(|_| WireAssertion {
            kind: "unreadable".into(),
            credential_id: String::new(),
            client_data_json: String::new(),
            authenticator_data: String::new(),
            signature: String::new(),
        }),
    )
}

/// `POST /logout` from the web app.
pub async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&headers, None);
    let forbidden = |detail: &str| {
        super::error_page(
            &app,
            lang,
            StatusCode::FORBIDDEN,
            tsunagu_core::Code::Forbidden.as_str(),
            detail,
        )
    };
    if !same_origin(&app, &headers) {
        return forbidden("this form was sent from another site");
    }
    if let Some(token) = super::cookie(&headers, SESSION_COOKIE) {
        let sent = form.get("csrf").map(String::as_str).unwrap_or("");
        // A stale page of an expired session may still sign out; a live session needs
        // the page's token, so that another site cannot end it.
        if !super::csrf_ok(sent, token) && session(&app, &headers).await.is_some() {
            return forbidden(
                "the form's security token is missing or stale; reload the page and try again",
            );
        }
        if let Err(e) = app.identity.end_session(token).await {
            return api_error_page(&app, lang, &e);
        }
    }
    let mut r = see_other("/");
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&app, SESSION_COOKIE, "", 0));
    r
}

/// The signed-in resident of a page request, or the response that sends them to log in.
pub async fn require_session(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<(Session, String), Response> {
    session(app, headers)
        .await
        .ok_or_else(|| see_other("/login"))
}

/// The words for a recorded sex.
fn sex_text(lang: Lang, sex: Sex) -> String {
    let key = match sex {
        Sex::Male => "sex-male",
        Sex::Female => "sex-female",
        Sex::Other => "sex-other",
    };
    super::i18n::t(lang, key).to_owned()
}

/// One recorded attribute on the home page.
pub struct AttributeRow {
    pub label_key: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    page: Page,
    account_id: String,
    verified: bool,
    attributes: Vec<AttributeRow>,
}

/// `GET /app`: who the resident is to tsunagu.
pub async fn home(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = page_lang(&headers, &q);
    let (sess, token) = match require_session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let me = match app.identity.me(&sess).await {
        Ok(me) => me,
        Err(e) => return api_error_page(&app, lang, &e),
    };
    let verified = me.level == Level::Verified;
    let attributes = match (&me.attributes, verified) {
        (Some(a), true) => vec![
            AttributeRow {
                label_key: "attr-name",
                value: a.name.clone(),
            },
            AttributeRow {
                label_key: "attr-address",
                value: a.address.clone(),
            },
            AttributeRow {
                label_key: "attr-birthdate",
                value: a.birthdate.clone(),
            },
            AttributeRow {
                label_key: "attr-gender",
                value: sex_text(lang, a.sex),
            },
        ],
        _ => vec![],
    };
    let mut r = html(
        StatusCode::OK,
        &Home {
            page: Page::new(&app, lang, "app-home", "home").signed_in(&token),
            account_id: me.account_id.to_string(),
            verified,
            attributes,
        },
    );
    remember_lang(&app, &mut r, &q);
    r
}
