//! The OpenID Connect endpoints and their pages.

use super::AppState;
use super::{
    AUTHZ_COOKIE, Lang, Page, SESSION_COOKIE, api_error_page, cookie, error_page, html, lang_of,
    same_origin, see_other, session, set_cookie,
};
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use tsunagu_api::OAuthResponse;
use tsunagu_api::extract::{client_auth, dpop};
use tsunagu_core::oidc::AuthorizeParams;
use tsunagu_platform::oidc::{
    self, AUTHORIZE_PATH, AuthorizeOutcome, ConsentView, LoginView, LogoutOutcome, OAuthError,
    Pushed, TokenSet, UserInfo, urlencode,
};

pub async fn configuration(State(app): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(app.oidc.discovery()),
    )
        .into_response()
}

/// The login page (for a service, or for the web app itself).
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub page: Page,
    pub view: LoginView,
    pub error: Option<String>,
}

/// The consent page for a service's identity claims.
#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    pub page: Page,
    pub view: ConsentView,
}

/// The logout pages: a confirmation, or "done".
#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage {
    pub page: Page,
    pub confirm: bool,
    /// The request's parameters, carried through the confirmation form.
    pub params: Vec<(String, String)>,
}

fn ui_lang(headers: &HeaderMap, params: &[(String, String)]) -> Lang {
    let query = params
        .iter()
        .find(|(k, _)| k == "lang" || k == "ui_locales")
        .and_then(|(_, v)| v.split_whitespace().find_map(Lang::parse));
    lang_of(headers, query.map(Lang::tag))
}

/// Renders what the authorization endpoint decided.
fn respond(app: &AppState, lang: Lang, outcome: AuthorizeOutcome, token: Option<&str>) -> Response {
    match outcome {
        AuthorizeOutcome::Redirect(to) => {
            let mut r = see_other(&to);
            r.headers_mut()
                .append(header::SET_COOKIE, set_cookie(app, AUTHZ_COOKIE, "", 0));
            r
        }
        AuthorizeOutcome::Login(view) => html(
            StatusCode::OK,
            &LoginPage {
                page: Page::new(app, lang, "login-title", "login").without_switch(),
                view,
                error: None,
            },
        ),
        AuthorizeOutcome::Consent(view) => {
            let mut page = Page::new(app, lang, "consent-title", "").without_switch();
            if let Some(t) = token {
                page = page.signed_in(t);
            }
            let id = view.request_id.clone();
            let mut r = html(StatusCode::OK, &ConsentPage { page, view });
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    app,
                    AUTHZ_COOKIE,
                    id.as_str(),
                    tsunagu_core::oidc::REQUEST_SECONDS,
                ),
            );
            r
        }
        AuthorizeOutcome::Show { error, description } => {
            error_page(app, lang, StatusCode::BAD_REQUEST, error, &description)
        }
    }
}

async fn authorize_with(
    app: AppState,
    headers: HeaderMap,
    pairs: Vec<(String, String)>,
) -> Response {
    let lang = ui_lang(&headers, &pairs);
    let signed_in = session(&app, &headers).await;
    let sess = signed_in.as_ref().map(|(s, _)| s);
    let token = signed_in.as_ref().map(|(_, t)| t.as_str());
    // A pending request continued after login.
    if let Some((_, id)) = pairs.iter().find(|(k, _)| k == "request_id") {
        return match app.oidc.resume(&id.as_str().into(), sess).await {
            Ok(outcome) => respond(&app, lang, outcome, token),
            Err(e) => api_error_page(&app, lang, &e),
        };
    }
    // Parameters must not repeat (RFC 6749 §3.1); `lang` is the page switch, not OAuth.
    let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k != "lang").collect();
    let params: AuthorizeParams =
        match oidc::client::form(pairs).and_then(|p| oidc::parse_params(&p)) {
            Ok(p) => p,
            Err(e) => {
                return error_page(&app, lang, StatusCode::BAD_REQUEST, e.error, &e.description);
            }
        };
    match app.oidc.authorize(params, sess).await {
        Ok(outcome) => respond(&app, lang, outcome, token),
        Err(e) => api_error_page(&app, lang, &e),
    }
}

pub async fn authorize_get(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    authorize_with(app, headers, pairs).await
}

pub async fn authorize_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    authorize_with(app, headers, pairs).await
}

/// `POST /oauth2/consent`: `decision` (`approve` with `consent_jws`, or `deny`), and the
/// pending request in `request` or the `tsunagu_authz` cookie.
pub async fn consent(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&headers, None);
    if !same_origin(&app, &headers) {
        return error_page(
            &app,
            lang,
            StatusCode::FORBIDDEN,
            "csrf",
            "this form came from another site",
        );
    }
    let Some((sess, token)) = session(&app, &headers).await else {
        // The session ended: log in again and come back to the same request.
        return match oidc::pending_for_consent(
            form.get("request").map(String::as_str),
            cookie(&headers, AUTHZ_COOKIE),
        ) {
            Some(id) => see_other(&format!(
                "{AUTHORIZE_PATH}?request_id={}",
                urlencode(id.as_str())
            )),
            None => error_page(
                &app,
                lang,
                StatusCode::UNAUTHORIZED,
                "login_required",
                "log in first",
            ),
        };
    };
    let Some(request_id) = oidc::pending_for_consent(
        form.get("request").map(String::as_str),
        cookie(&headers, AUTHZ_COOKIE),
    ) else {
        return error_page(
            &app,
            lang,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "no pending login request",
        );
    };
    let decision = form.get("decision").map(String::as_str).unwrap_or("");
    match app
        .oidc
        .consent_decision_verified(
            &sess,
            &request_id,
            decision,
            form.get("consent_jws").map(String::as_str),
            super::pages::user_verification_field(
                form.get("user_verification").map(String::as_str),
            )
            .as_ref(),
        )
        .await
    {
        Ok(outcome) => respond(&app, lang, outcome, Some(&token)),
        Err(e) => api_error_page(&app, lang, &e),
    }
}

fn token_response<T: serde::Serialize>(
    result: Result<T, OAuthError>,
    status: StatusCode,
) -> Response {
    match result {
        Ok(body) => (
            status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            axum::Json(body),
        )
            .into_response(),
        Err(e) => OAuthResponse(e).into_response(),
    }
}

fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| OAuthError::bad("invalid_request", format!("form body: {e}")))
}

/// `POST /oauth2/token`.
pub async fn token(
    State(app): State<AppState>,
    headers: HeaderMap,
    cert: Option<axum::Extension<tsunagu_capability::ClientCert>>,
    body: axum::body::Bytes,
) -> Response {
    let cert = cert.map(|axum::Extension(c)| c.x5t_s256);
    let result: Result<TokenSet, _> = match form_pairs(&body) {
        Ok(pairs) => {
            app.oidc
                .token_on(
                    &client_auth(&headers),
                    cert.as_deref(),
                    &dpop(&headers),
                    pairs,
                )
                .await
        }
        Err(e) => Err(e),
    };
    token_response(result, StatusCode::OK)
}

/// `POST /oauth2/par` (RFC 9126 §2.2: 201).
pub async fn par(
    State(app): State<AppState>,
    headers: HeaderMap,
    cert: Option<axum::Extension<tsunagu_capability::ClientCert>>,
    body: axum::body::Bytes,
) -> Response {
    let cert = cert.map(|axum::Extension(c)| c.x5t_s256);
    let result: Result<Pushed, _> = match form_pairs(&body) {
        Ok(pairs) => {
            app.oidc
                .push_on(&client_auth(&headers), cert.as_deref(), pairs)
                .await
        }
        Err(e) => Err(e),
    };
    token_response(result, StatusCode::CREATED)
}

async fn userinfo(app: &AppState, headers: &HeaderMap, method: &str) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let result: Result<UserInfo, _> = app
        .oidc
        .userinfo(authorization, &dpop(headers), method)
        .await;
    token_response(result, StatusCode::OK)
}

pub async fn userinfo_get(State(app): State<AppState>, headers: HeaderMap) -> Response {
    userinfo(&app, &headers, "GET").await
}

pub async fn userinfo_post(State(app): State<AppState>, headers: HeaderMap) -> Response {
    userinfo(&app, &headers, "POST").await
}

async fn logout_with(
    app: AppState,
    headers: HeaderMap,
    pairs: Vec<(String, String)>,
    post: bool,
) -> Response {
    let lang = ui_lang(&headers, &pairs);
    let signed_in = session(&app, &headers).await;
    // Confirming ends the resident's session: from this origin, with the page's CSRF token
    // (another site can show the confirmation, not answer it).
    let csrf_sent = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let confirmed = post
        && same_origin(&app, &headers)
        && pairs.iter().any(|(k, v)| k == "confirm" && v == "yes")
        && signed_in
            .as_ref()
            .is_none_or(|(_, t)| super::csrf_ok(csrf_sent, t));
    let params: HashMap<String, String> = pairs
        .iter()
        .filter(|(k, _)| k != "confirm" && k != "lang" && k != "csrf")
        .cloned()
        .collect();
    let outcome = app
        .oidc
        .logout(
            &params,
            signed_in.as_ref().map(|(s, t)| (s, t.as_str())),
            confirmed,
        )
        .await;
    match outcome {
        Ok(LogoutOutcome::Done { redirect }) => {
            let mut r = match redirect {
                Some(to) => see_other(&to),
                None => html(
                    StatusCode::OK,
                    &LogoutPage {
                        page: Page::new(&app, lang, "logout-title", ""),
                        confirm: false,
                        params: vec![],
                    },
                ),
            };
            r.headers_mut()
                .append(header::SET_COOKIE, set_cookie(&app, SESSION_COOKIE, "", 0));
            r
        }
        Ok(LogoutOutcome::Confirm) => {
            let mut page = Page::new(&app, lang, "logout-title", "");
            if let Some((_, t)) = &signed_in {
                page = page.signed_in(t);
            }
            let mut params: Vec<(String, String)> = params.into_iter().collect();
            params.sort();
            html(
                StatusCode::OK,
                &LogoutPage {
                    page,
                    confirm: true,
                    params,
                },
            )
        }
        Ok(LogoutOutcome::Show { description }) => error_page(
            &app,
            lang,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &description,
        ),
        Err(e) => error_page(
            &app,
            lang,
            StatusCode::from_u16(e.status.code()).unwrap_or(StatusCode::BAD_REQUEST),
            e.error,
            &e.description,
        ),
    }
}

pub async fn logout_get(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    logout_with(app, headers, pairs, false).await
}

pub async fn logout_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    logout_with(app, headers, pairs, true).await
}
