//! The signed-cookie session shared by the service console and the committee console.
//!
//! Signing in posts an assertion signed with the party's own key (checked by each console);
//! the platform answers with a cookie holding a compact JWS it signs itself (its own `typ`,
//! eight hours), checked on every request, so no session state is kept. Forms that change
//! something carry a CSRF token derived from the cookie and must come from this origin.

use super::App;
use super::{
    Lang, Page, api_error_page, cookie, csrf_ok, csrf_token, error_page, lang_of, same_origin,
    see_other, set_cookie,
};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::future::Future;
use tsunagu_core::Code;
use tsunagu_crypto::jwk::JwkSet;
use tsunagu_crypto::jws;
use tsunagu_platform::{Refusal, now};

/// How long a console session lasts.
pub(super) const SESSION_SECONDS: i64 = 8 * 3600;
/// Clock skew tolerated on a session token's `iat`.
const SKEW: i64 = 60;

/// What tells one console's sessions from another's.
pub(super) struct SessionKind {
    /// The `typ` of the session token.
    pub(super) typ: &'static str,
    /// The session cookie.
    pub(super) cookie: &'static str,
    /// The claim naming who is signed in.
    pub(super) claim: &'static str,
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
        (field(self.claim).to_owned(), field("assertion"))
    }

    /// The session of the request's cookie, if the platform signed it and it is current.
    pub(super) fn session(&self, app: &App, headers: &HeaderMap) -> Option<SignedIn> {
        let token = cookie(headers, self.cookie)?;
        let claims = verify_session(&app.keys.jwks, &app.public_url, self.typ, token, now())?;
        Some(SignedIn {
            party: claims.get(self.claim)?.as_str()?.to_owned(),
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
        let mut claims = Map::new();
        claims.insert(self.claim.into(), Value::String(party));
        let token = match sign_session(app, self.typ, claims, now()) {
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

    /// `POST <logout>`: forgets the cookie.
    pub(super) fn logout(&self, app: &App, headers: &HeaderMap) -> Response {
        if !same_origin(app, headers) {
            return error_page(
                app,
                lang_of(headers, None),
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

/// A session token: a compact JWS by the platform's signing key over `claims` plus `iss`,
/// `iat` and `exp`.
pub(super) fn sign_session(
    app: &App,
    typ: &str,
    mut claims: Map<String, Value>,
    t: i64,
) -> Result<String, Refusal> {
    claims.insert("iss".into(), Value::String(app.public_url.clone()));
    claims.insert("iat".into(), json!(t));
    claims.insert("exp".into(), json!(t + SESSION_SECONDS));
    jws::sign_json(&app.keys.signing, Some(typ), &Value::Object(claims))
        .map_err(|e| Refusal::internal("signing a console session", e))
}

/// The claims of a session token, if the platform signed it (a key of its JWKS), it has type
/// `typ`, names this platform as issuer and has not expired at `t`.
pub(super) fn verify_session(
    jwks: &JwkSet,
    issuer: &str,
    typ: &str,
    token: &str,
    t: i64,
) -> Option<Map<String, Value>> {
    let parsed = jws::parse(token).ok()?;
    if parsed.typ.as_deref() != Some(typ) {
        return None;
    }
    let key = jwks.find(parsed.kid.as_deref()?)?;
    parsed.verify(key).ok()?;
    let claims = parsed.json_payload().ok()?;
    let exp = claims.get("exp")?.as_i64()?;
    let iat = claims.get("iat")?.as_i64()?;
    let ok = claims.get("iss")?.as_str()? == issuer
        && exp > t
        && iat <= t + SKEW
        && exp - iat <= SESSION_SECONDS;
    ok.then_some(claims)
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
