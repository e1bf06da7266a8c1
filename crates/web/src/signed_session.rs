//! The signed-cookie session shared by the service console and the committee console.
//!
//! Signing in posts an assertion signed with the party's own key (checked by each console);
//! the platform answers with a cookie holding its session token
//! (`tsunagu_platform::sessions`), checked on every request. Forms that change something
//! carry a CSRF token derived from the cookie and must come from this origin.

use super::App;
use super::{
    Lang, Page, api_error_page, cookie, csrf_ok, csrf_token, error_page, lang_of, same_origin,
    see_other, set_cookie,
};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use std::collections::HashMap;
use std::future::Future;
use tsunagu_core::Code;
use tsunagu_platform::sessions::{self, SESSION_SECONDS};
use tsunagu_platform::{Refusal, now};

/// What tells one console's sessions from another's.
pub(super) struct SessionKind {
    /// The session token's type and the claim naming who is signed in.
    pub(super) token: sessions::SessionKind,
    /// The session cookie.
    pub(super) cookie: &'static str,
    /// The console's home path; also the audience's path (`<public_url><home>`).
    pub(super) home: &'static str,
    /// The sign-in page.
    pub(super) login: &'static str,
}

/// Who is signed in (the value of the kind's claim), with the cookie's token.
pub(super) struct SignedIn {
    pub(super) party: String,
    pub(super) token: String,
}

impl SessionKind {
    /// The audience of sign-in assertions.
    pub(super) fn audience(&self, app: &App) -> String {
        format!("{}{}", app.public_url.trim_end_matches('/'), self.home)
    }

    /// A sign-in form's party id (the field named as the claim) and assertion, trimmed.
    pub(super) fn login_fields<'f>(&self, form: &'f HashMap<String, String>) -> (String, &'f str) {
        let field = |k: &str| form.get(k).map(|s| s.trim()).unwrap_or("");
        (field(self.token.claim).to_owned(), field("assertion"))
    }

    /// The session of the request's cookie, if the platform signed it and it is current.
    pub(super) async fn session(&self, app: &App, headers: &HeaderMap) -> Option<SignedIn> {
        let token = cookie(headers, self.cookie)?;
        Some(SignedIn {
            party: app
                .console_sessions
                .verify(self.token, token, now())
                .await?,
            token: token.to_owned(),
        })
    }

    /// `POST <login>`: from this origin, `check` names the party whose assertion it checked;
    /// answers with the session cookie and a redirect home, or `refused`'s page.
    pub(super) async fn login<Fut>(
        &self,
        app: &App,
        headers: &HeaderMap,
        refused: impl Fn(StatusCode, String) -> Response,
        check: impl FnOnce() -> Fut,
    ) -> Response
    where
        Fut: Future<Output = Result<String, Refusal>>,
    {
        if !same_origin(app, headers) {
            return refused(
                StatusCode::FORBIDDEN,
                "this form was sent from another site (forbidden)".into(),
            );
        }
        let party = match check().await {
            Ok(party) => party,
            Err(e) => {
                return refused(
                    super::status_of(&e),
                    format!("{} ({})", e.detail, e.code.as_str()),
                );
            }
        };
        let token = match app.console_sessions.issue(self.token, &party, now()).await {
            Ok(t) => t,
            Err(e) => return api_error_page(app, lang_of(headers, None), &e),
        };
        let mut r = see_other(self.home);
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(app, self.cookie, &token, SESSION_SECONDS),
        );
        r
    }

    /// `POST <logout>` (`csrf`): from this origin, with the session's CSRF token, ends the
    /// session on the server (its token is refused from now on) and forgets the cookie. A
    /// request without a current session just forgets the cookie.
    pub(super) async fn logout(
        &self,
        app: &App,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Response {
        let lang = lang_of(headers, None);
        if let Some(token) = cookie(headers, self.cookie) {
            if let Err(refusal) = check_form(app, lang, headers, form, token) {
                if !same_origin(app, headers) || self.session(app, headers).await.is_some() {
                    return *refusal;
                }
            } else if let Err(e) = app.console_sessions.end(self.token, token, now()).await {
                return api_error_page(app, lang, &e);
            }
        } else if !same_origin(app, headers) {
            return error_page(
                app,
                lang,
                StatusCode::FORBIDDEN,
                Code::Forbidden.as_str(),
                "this form was sent from another site",
            );
        }
        let mut r = see_other(self.login);
        r.headers_mut()
            .append(header::SET_COOKIE, set_cookie(app, self.cookie, "", 0));
        r
    }
}

/// A console page, with the CSRF token of `session` if signed in.
pub(super) fn session_page(
    app: &App,
    lang: Lang,
    title_key: &str,
    section: &'static str,
    session: Option<&SignedIn>,
) -> Page {
    let mut page = Page::new(app, lang, title_key, section);
    if let Some(s) = session {
        page.csrf = csrf_token(&s.token);
    }
    page
}

/// Whether a cookie-authenticated form may proceed: from this origin, with the CSRF token
/// of the session `token`.
pub(super) fn check_form(
    app: &App,
    lang: Lang,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    token: &str,
) -> Result<(), Box<Response>> {
    if !same_origin(app, headers) {
        return Err(Box::new(error_page(
            app,
            lang,
            StatusCode::FORBIDDEN,
            Code::Forbidden.as_str(),
            "this form was sent from another site",
        )));
    }
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    if !csrf_ok(sent, token) {
        return Err(Box::new(error_page(
            app,
            lang,
            StatusCode::FORBIDDEN,
            Code::Forbidden.as_str(),
            "the form's csrf token is missing or wrong: reload the page and try again",
        )));
    }
    Ok(())
}

/// The page an expired or missing session leads to on a POST.
pub(super) fn signed_out(app: &App, lang: Lang) -> Response {
    error_page(
        app,
        lang,
        StatusCode::UNAUTHORIZED,
        Code::Unauthorized.as_str(),
        "not signed in, or the session has expired: sign in again",
    )
}

/// The signed-in party of a POST and its checked form, or the response that refuses it;
/// `session` reads the session (a console may refuse more than an expired cookie).
pub(super) fn require_form(
    app: &App,
    lang: Lang,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    session: Option<SignedIn>,
) -> Result<SignedIn, Box<Response>> {
    let session = session.ok_or_else(|| Box::new(signed_out(app, lang)))?;
    check_form(app, lang, headers, form, &session.token)?;
    Ok(session)
}
