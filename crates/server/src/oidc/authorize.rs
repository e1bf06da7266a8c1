//! The authorization endpoint and what the resident sees of it: the login page, the consent
//! page, the decision, and pushed authorization requests.
//!
//! A request that cannot be answered at once (the resident must log in, or consent) is kept
//! as a pending request; the login page's nonce and the consent form point back to it, so a
//! client that signs with the device key can finish the flow without JavaScript.

use super::client::{self, form};
use super::{OAuthError, REQUEST_URI_PREFIX, with_query};
use crate::app::{App, now};
use crate::consents::pairwise;
use crate::error::ApiError;
use crate::identity::{LoggedIn, NONCE_LOGIN, Session, ledger_subject};
use crate::ledger::leaf;
use crate::services::{PurposeEntry, ServiceEntry};
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tsunagu_core::Code;
use tsunagu_core::consent::ConsentStatus;
use tsunagu_core::event::Event;
use tsunagu_core::identity::Level;
use tsunagu_core::oidc::{
    self, Authorization, AuthorizeError, AuthorizeParams, CODE_SECONDS, ClientFacts, PAR_SECONDS,
    REQUEST_SECONDS, login_needed, released_items,
};
use tsunagu_core::service::PLATFORM_PROVIDER;
use tsunagu_crypto::random;
use tsunagu_store::{
    AnyChange, AuthzRequestRow, CodeRow, Commit, ExchangeChange, GrantRow, OidcChange,
};

/// What the login page shows and carries.
#[derive(Debug, Clone, Serialize)]
pub struct LoginView {
    /// The pending authorization request, when the login is for a service.
    pub request_id: Option<String>,
    /// The challenge the device signs (a hidden input named `nonce`).
    pub nonce: String,
    pub client_name: Option<String>,
    pub client_organization: Option<String>,
}

/// One item on the consent page.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentItem {
    pub item: String,
    pub title_ja: String,
    pub title_en: String,
    pub use_: Option<String>,
}

/// What the consent page shows and carries.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentView {
    pub request_id: String,
    pub client_id: String,
    pub client_name: String,
    pub client_organization: String,
    pub purpose_id: String,
    pub title_ja: String,
    pub title_en: String,
    pub description_ja: String,
    pub description_en: String,
    pub items: Vec<ConsentItem>,
    pub retention_days: u32,
    pub expires_at: i64,
    /// The exact JSON to sign (a hidden input named `consent_payload`).
    pub payload: String,
}

/// What the authorization endpoint answers.
#[derive(Debug, Clone)]
pub enum AuthorizeOutcome {
    /// 303 to this URL: the client's redirect URI with a code or an error.
    Redirect(String),
    Login(LoginView),
    Consent(ConsentView),
    /// An error shown to the user and never redirected.
    Show {
        error: &'static str,
        description: String,
    },
}

fn show(error: &'static str, description: impl Into<String>) -> AuthorizeOutcome {
    AuthorizeOutcome::Show {
        error,
        description: description.into(),
    }
}

/// The redirect of an error to the client (RFC 6749 §4.1.2.1, RFC 9207 `iss`).
fn error_redirect(
    app: &App,
    a: &Authorization,
    error: &str,
    description: &str,
) -> AuthorizeOutcome {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = &a.state {
        params.push(("state", state));
    }
    params.push(("iss", &app.public_url));
    AuthorizeOutcome::Redirect(with_query(&a.redirect_uri, &params))
}

async fn client_entry(app: &App, id: &str) -> Result<Option<Arc<ServiceEntry>>, ApiError> {
    Ok(app.directory.get(app.store.as_ref(), id).await?)
}

/// `GET|POST /oauth2/authorize`.
pub async fn authorize(
    app: &App,
    params: AuthorizeParams,
    session: Option<&Session>,
) -> Result<AuthorizeOutcome, ApiError> {
    let t = now();
    if let Some(uri) = &params.request_uri {
        let Some(id) = uri.strip_prefix(REQUEST_URI_PREFIX) else {
            return Ok(show(
                "invalid_request_uri",
                "request_uri is not one this platform issued",
            ));
        };
        let Some(row) = app
            .store
            .authz_request(id)
            .await?
            .filter(|r| r.pushed && r.expires_at > t)
        else {
            return Ok(show(
                "invalid_request_uri",
                "the pushed authorization request is unknown or has expired",
            ));
        };
        if params.client_id.as_deref() != Some(row.client_id.as_str()) {
            return Ok(show(
                "invalid_request",
                "client_id must be the client that pushed the request",
            ));
        }
        let a: Authorization = serde_json::from_str(&row.params)
            .map_err(|e| ApiError::internal("pending request", e))?;
        return proceed(app, a, session, Some(row), t).await;
    }
    let client = match params.client_id.as_deref() {
        Some(id) if !id.is_empty() && id.len() <= 128 => client_entry(app, id).await?,
        _ => None,
    };
    let facts = client.as_ref().map(|c| ClientFacts {
        id: &c.row.id,
        status: c.row.status,
        redirect_uris: &c.application.redirect_uris,
    });
    match oidc::validate(&params, facts.as_ref()) {
        Ok(a) => proceed(app, a, session, None, t).await,
        Err(AuthorizeError::Show { error, description }) => Ok(show(error, description)),
        Err(AuthorizeError::Redirect {
            redirect_uri,
            error,
            description,
            state,
        }) => {
            let mut p = vec![
                ("error", error),
                ("error_description", description.as_str()),
            ];
            if let Some(s) = &state {
                p.push(("state", s));
            }
            p.push(("iss", &app.public_url));
            Ok(AuthorizeOutcome::Redirect(with_query(&redirect_uri, &p)))
        }
    }
}

/// `GET /oauth2/authorize?request_id=…`: continues a pending request after login.
pub async fn resume(
    app: &App,
    request_id: &str,
    session: Option<&Session>,
) -> Result<AuthorizeOutcome, ApiError> {
    let t = now();
    let Some(row) = app
        .store
        .authz_request(request_id)
        .await?
        .filter(|r| r.expires_at > t)
    else {
        return Ok(show(
            "invalid_request",
            "this login request has expired; start again from the service",
        ));
    };
    let a: Authorization =
        serde_json::from_str(&row.params).map_err(|e| ApiError::internal("pending request", e))?;
    proceed(app, a, session, Some(row), t).await
}

async fn proceed(
    app: &App,
    a: Authorization,
    session: Option<&Session>,
    pending: Option<AuthzRequestRow>,
    t: i64,
) -> Result<AuthorizeOutcome, ApiError> {
    // A login made for this very request satisfies prompt=login and max_age.
    let fresh = matches!((session, &pending), (Some(s), Some(p)) if s.auth_time >= p.created_at);
    let Some(session) = session.filter(|s| fresh || !login_needed(&a, Some(s.auth_time), t)) else {
        if a.prompt.none {
            return Ok(error_redirect(
                app,
                &a,
                "login_required",
                "the resident is not logged in",
            ));
        }
        return login_page(app, &a, pending)
            .await
            .map(AuthorizeOutcome::Login);
    };
    let Some(client) = client_entry(app, &a.client_id).await? else {
        return Ok(show("invalid_client", "no such client"));
    };
    if client.row.status != tsunagu_core::service::ServiceStatus::Approved {
        return Ok(error_redirect(
            app,
            &a,
            "unauthorized_client",
            "this service is not approved by the governance committee",
        ));
    }
    let Some(account) = app.store.account(&session.account_id).await? else {
        return Ok(show("login_required", "the account no longer exists"));
    };
    let purpose = identity_purpose(&client, &a.items);
    let wanted = match (account.level, purpose) {
        (Level::Verified, Some(p)) => released_items(&a.items, &p.row.items, &p.row.items),
        // A provisional ID can log in but gets no identity claims.
        _ => vec![],
    };
    let Some(purpose) = purpose.filter(|_| !wanted.is_empty()) else {
        return issue_code(app, session, &a, vec![], None, pending.as_ref(), t).await;
    };
    let latest = app
        .store
        .latest_consent(&session.account_id, &a.client_id, &purpose.row.purpose_id)
        .await?
        .filter(|c| c.status == ConsentStatus::Active && c.expires_at > t);
    if let Some(c) = &latest
        && !a.prompt.consent
        && wanted.iter().all(|i| c.items.contains(i))
    {
        let items = released_items(&a.items, &purpose.row.items, &c.items);
        return issue_code(
            app,
            session,
            &a,
            items,
            Some(c.id.clone()),
            pending.as_ref(),
            t,
        )
        .await;
    }
    if a.prompt.none {
        return Ok(error_redirect(
            app,
            &a,
            "consent_required",
            "the resident has not agreed to release these items",
        ));
    }
    consent_page(app, &a, &client, purpose, wanted, pending, t)
        .await
        .map(AuthorizeOutcome::Consent)
}

/// The client's identity-claims purpose (provider `tsunagu`) that covers most of `asked`.
fn identity_purpose<'a>(client: &'a ServiceEntry, asked: &[String]) -> Option<&'a PurposeEntry> {
    client
        .purposes
        .iter()
        .filter(|p| p.row.provider_id == PLATFORM_PROVIDER)
        .max_by_key(|p| asked.iter().filter(|i| p.row.items.contains(i)).count())
}

async fn keep_pending(
    app: &App,
    a: &Authorization,
    pending: Option<AuthzRequestRow>,
    login_nonce: Option<String>,
    t: i64,
) -> Result<String, ApiError> {
    let (id, change) = match pending {
        Some(row) => match login_nonce {
            Some(nonce) => (
                row.id.clone(),
                Some(OidcChange::SetAuthzLoginNonce {
                    id: row.id,
                    login_nonce: nonce,
                }),
            ),
            None => (row.id, None),
        },
        None => {
            let id = random::token(16).map_err(|e| ApiError::internal("request id", e))?;
            let row = AuthzRequestRow {
                id: id.clone(),
                client_id: a.client_id.clone(),
                params: serde_json::to_string(a).map_err(|e| ApiError::internal("request", e))?,
                pushed: false,
                login_nonce,
                expires_at: t + REQUEST_SECONDS,
                created_at: t,
            };
            (id, Some(OidcChange::InsertAuthzRequest(row)))
        }
    };
    if let Some(change) = change {
        app.committer
            .commit(Commit {
                changes: tsunagu_store::changes![change],
                leaves: vec![],
            })
            .await?;
    }
    Ok(id)
}

/// A login page for `a` (a fresh nonce, bound to the pending request).
async fn login_page(
    app: &App,
    a: &Authorization,
    pending: Option<AuthzRequestRow>,
) -> Result<LoginView, ApiError> {
    let t = now();
    let nonce = random::token(32).map_err(|e| ApiError::internal("nonce", e))?;
    app.store
        .put_nonce(
            &nonce,
            NONCE_LOGIN,
            t + app.config.identity.nonce_ttl_seconds as i64,
        )
        .await?;
    let id = keep_pending(app, a, pending, Some(nonce.clone()), t).await?;
    let client = client_entry(app, &a.client_id).await?;
    Ok(LoginView {
        request_id: Some(id),
        nonce,
        client_name: client.as_ref().map(|c| c.row.name.clone()),
        client_organization: client.as_ref().map(|c| c.row.organization.clone()),
    })
}

/// A login page for the web app itself (no service involved).
pub async fn web_login_page(app: &App) -> Result<LoginView, ApiError> {
    let challenge = crate::identity::challenge(app, NONCE_LOGIN).await?;
    Ok(LoginView {
        request_id: None,
        nonce: challenge["nonce"].as_str().unwrap_or_default().to_owned(),
        client_name: None,
        client_organization: None,
    })
}

async fn consent_page(
    app: &App,
    a: &Authorization,
    client: &ServiceEntry,
    purpose: &PurposeEntry,
    items: Vec<String>,
    pending: Option<AuthzRequestRow>,
    t: i64,
) -> Result<ConsentView, ApiError> {
    let id = keep_pending(app, a, pending, None, t).await?;
    let days = i64::from(purpose.purpose.retention_days.min(365))
        .min(app.config.exchange.max_consent_days)
        .max(1);
    let expires_at = t + days * 86_400;
    let payload = json!({
        "v": 1,
        "purpose_id": purpose.row.purpose_id,
        "consumer": client.row.id,
        "provider": PLATFORM_PROVIDER,
        "items": items,
        "expires_at": expires_at,
        "terms_sha256": purpose.row.terms_sha256,
        "issued_at": t,
        "nonce": random::token(16).map_err(|e| ApiError::internal("nonce", e))?,
    });
    let p = &purpose.purpose;
    Ok(ConsentView {
        request_id: id,
        client_id: client.row.id.clone(),
        client_name: client.row.name.clone(),
        client_organization: client.row.organization.clone(),
        purpose_id: purpose.row.purpose_id.clone(),
        title_ja: p.title_ja.clone(),
        title_en: p.title_en.clone(),
        description_ja: p.description_ja.clone(),
        description_en: p.description_en.clone(),
        items: items
            .iter()
            .map(|i| ConsentItem {
                item: i.clone(),
                title_ja: identity_item_title(i, true).to_owned(),
                title_en: identity_item_title(i, false).to_owned(),
                use_: p.uses.get(i).cloned(),
            })
            .collect(),
        retention_days: p.retention_days,
        expires_at,
        payload: payload.to_string(),
    })
}

/// The name of an identity item, for people.
pub fn identity_item_title(item: &str, ja: bool) -> &'static str {
    match (item, ja) {
        ("name", true) => "氏名",
        ("name", false) => "Name",
        ("address", true) => "住所",
        ("address", false) => "Address",
        ("birthdate", true) => "生年月日",
        ("birthdate", false) => "Date of birth",
        ("gender", true) => "性別",
        ("gender", false) => "Gender",
        (_, true) => "その他",
        (_, false) => "Other",
    }
}

async fn issue_code(
    app: &App,
    session: &Session,
    a: &Authorization,
    items: Vec<String>,
    consent_id: Option<String>,
    pending: Option<&AuthzRequestRow>,
    t: i64,
) -> Result<AuthorizeOutcome, ApiError> {
    let grant_id = random::token(16).map_err(|e| ApiError::internal("grant id", e))?;
    let code = random::token(32).map_err(|e| ApiError::internal("code", e))?;
    let mut changes = tsunagu_store::changes![
        OidcChange::InsertGrant(GrantRow {
            id: grant_id.clone(),
            client_id: a.client_id.clone(),
            account_id: session.account_id.clone(),
            device_id: session.device_id.clone(),
            scope: a.scope.clone(),
            items: items.clone(),
            consent_id: consent_id.clone(),
            auth_time: session.auth_time,
            created_at: t,
            revoked_at: None,
            revoked_reason: None,
        }),
        OidcChange::InsertCode(CodeRow {
            code_hash: super::token_hash(&code),
            grant_id: grant_id.clone(),
            redirect_uri: a.redirect_uri.clone(),
            code_challenge: a.code_challenge.clone(),
            nonce: a.nonce.clone(),
            dpop_jkt: a.dpop_jkt.clone(),
            expires_at: t + CODE_SECONDS,
            used_at: None,
            created_at: t,
        }),
        ExchangeChange::LinkSubject {
            sector: a.client_id.clone(),
            subject: pairwise(app, &a.client_id, &session.account_id),
            account_id: session.account_id.clone(),
            created_at: t,
        },
    ];
    if let Some(p) = pending {
        changes.push(tsunagu_store::AnyChange::from(
            OidcChange::DeleteAuthzRequest { id: p.id.clone() },
        ));
    }
    app.committer
        .commit(Commit {
            changes,
            leaves: vec![leaf(
                Event::OidcAuthorized {
                    subject: ledger_subject(app, &session.account_id),
                    client: a.client_id.clone(),
                    grant: grant_id,
                    scope: a.scope.clone(),
                    items,
                    basis: consent_id.map(|c| format!("consent:{c}")),
                },
                &[&session.account_id],
                t,
            )],
        })
        .await?;
    metrics::counter!("tsunagu_oidc_authorizations_total", "outcome" => "code").increment(1);
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = &a.state {
        params.push(("state", state));
    }
    params.push(("iss", &app.public_url));
    Ok(AuthorizeOutcome::Redirect(with_query(
        &a.redirect_uri,
        &params,
    )))
}

/// `POST /login` (form: `credential`, `nonce`, `signature`): logs the device in. When the
/// nonce belongs to a login page shown for a service, the answer says where to continue.
pub async fn login(
    app: &App,
    credential: &str,
    nonce: &str,
    signature: &str,
) -> Result<(LoggedIn, Option<String>), (ApiError, Option<LoginView>)> {
    let pending = app
        .store
        .authz_request_by_login_nonce(nonce)
        .await
        .map_err(|e| (e.into(), None))?;
    match crate::identity::login(app, credential, nonce, signature).await {
        Ok(logged_in) => {
            let next = pending.map(|p| format!("{}?request_id={}", super::AUTHORIZE_PATH, p.id));
            Ok((logged_in, next))
        }
        Err(e) => {
            // Show the login page again with a fresh nonce (the old one is spent).
            let page = match pending.filter(|p| p.expires_at > now()) {
                Some(p) => match serde_json::from_str::<Authorization>(&p.params) {
                    Ok(a) => login_page(app, &a, Some(p)).await.ok(),
                    Err(_) => None,
                },
                None => web_login_page(app).await.ok(),
            };
            Err((e, page))
        }
    }
}

/// The pending request a consent form answers: the form's `request`, else the one the
/// browser was last shown (a cookie).
pub fn pending_for_consent(form: Option<&str>, cookie: Option<&str>) -> Option<String> {
    form.or(cookie)
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .map(str::to_owned)
}

/// `POST /oauth2/consent`: `decision=approve` with `consent_jws`, or `decision=deny`.
pub async fn consent_decision(
    app: &App,
    session: &Session,
    request_id: &str,
    decision: &str,
    consent_jws: Option<&str>,
) -> Result<AuthorizeOutcome, ApiError> {
    let t = now();
    let Some(row) = app
        .store
        .authz_request(request_id)
        .await?
        .filter(|r| r.expires_at > t)
    else {
        return Ok(show(
            "invalid_request",
            "this login request has expired; start again from the service",
        ));
    };
    let a: Authorization =
        serde_json::from_str(&row.params).map_err(|e| ApiError::internal("pending request", e))?;
    match decision {
        "deny" => {
            app.committer
                .commit(Commit {
                    changes: tsunagu_store::changes![OidcChange::DeleteAuthzRequest {
                        id: row.id.clone()
                    }],
                    leaves: vec![leaf(
                        Event::OidcRefused {
                            subject: ledger_subject(app, &session.account_id),
                            client: a.client_id.clone(),
                            error: "access_denied".into(),
                        },
                        &[&session.account_id],
                        t,
                    )],
                })
                .await?;
            metrics::counter!("tsunagu_oidc_authorizations_total", "outcome" => "denied")
                .increment(1);
            Ok(error_redirect(
                app,
                &a,
                "access_denied",
                "the resident did not agree",
            ))
        }
        "approve" => {
            let jws = consent_jws.filter(|j| !j.is_empty()).ok_or_else(|| {
                ApiError::new(
                    Code::InvalidRequest,
                    "approving needs consent_jws: the consent payload signed with the device key",
                )
            })?;
            // Only a consent to this service's identity claims answers this request: look
            // before recording anything (the signature is checked by the grant itself).
            let names_this_request = tsunagu_crypto::jws::parse(jws)
                .ok()
                .and_then(|t| t.json_payload().ok())
                .is_some_and(|p| {
                    p["consumer"].as_str() == Some(a.client_id.as_str())
                        && p["provider"].as_str() == Some(PLATFORM_PROVIDER)
                });
            if !names_this_request {
                return Err(ApiError::new(
                    Code::InvalidRequest,
                    "the signed consent is not for this service's identity claims",
                ));
            }
            let granted = crate::consents::grant(app, session, jws).await?;
            let field = |k: &str| granted[k].as_str().unwrap_or_default().to_owned();
            if field("consumer") != a.client_id || field("provider") != PLATFORM_PROVIDER {
                return Err(ApiError::new(
                    Code::InvalidRequest,
                    "the signed consent is not for this service's identity claims",
                ));
            }
            let Some(client) = client_entry(app, &a.client_id).await? else {
                return Ok(show("invalid_client", "no such client"));
            };
            let Some(purpose) = client.purpose(&field("purpose_id")) else {
                return Ok(show("invalid_request", "no such purpose"));
            };
            let agreed: Vec<String> = serde_json::from_value(granted["items"].clone())
                .map_err(|e| ApiError::internal("consent items", e))?;
            let items = released_items(&a.items, &purpose.row.items, &agreed);
            issue_code(
                app,
                session,
                &a,
                items,
                Some(field("consent_id")),
                Some(&row),
                t,
            )
            .await
        }
        _ => Err(ApiError::new(
            Code::InvalidRequest,
            "decision is approve or deny",
        )),
    }
}

/// `POST /oauth2/par` (RFC 9126).
pub async fn push(
    app: &App,
    headers: &HeaderMap,
    pairs: Vec<(String, String)>,
) -> Result<Value, OAuthError> {
    let params = form(pairs)?;
    let client = client::authenticate(app, headers, &params).await?;
    if params.contains_key("request_uri") {
        return Err(OAuthError::bad(
            "invalid_request",
            "request_uri cannot be pushed",
        ));
    }
    let mut p: AuthorizeParams = serde_json::to_value(&params)
        .and_then(serde_json::from_value)
        .map_err(|e| OAuthError::bad("invalid_request", e.to_string()))?;
    p.client_id = Some(client.id().to_owned());
    let facts = ClientFacts {
        id: client.id(),
        status: client.entry.row.status,
        redirect_uris: &client.entry.application.redirect_uris,
    };
    let a = oidc::validate(&p, Some(&facts)).map_err(|e| match e {
        AuthorizeError::Show { error, description }
        | AuthorizeError::Redirect {
            error, description, ..
        } => OAuthError::bad(error, description),
    })?;
    let t = now();
    let id = random::token(24).map_err(|e| OAuthError::server("request id", e))?;
    let mut changes = tsunagu_store::changes![OidcChange::InsertAuthzRequest(AuthzRequestRow {
        id: id.clone(),
        client_id: a.client_id.clone(),
        params: serde_json::to_string(&a).map_err(|e| OAuthError::server("request", e))?,
        pushed: true,
        login_nonce: None,
        expires_at: t + PAR_SECONDS,
        created_at: t,
    })];
    changes.extend(client.jti.map(AnyChange::from));
    app.committer
        .commit(Commit {
            changes,
            leaves: vec![],
        })
        .await
        .map_err(|e| match e {
            tsunagu_store::StoreError::Conflict(_) => {
                OAuthError::invalid_client("client assertion: jti was already used", false)
            }
            other => other.into(),
        })?;
    Ok(json!({"request_uri": format!("{REQUEST_URI_PREFIX}{id}"), "expires_in": PAR_SECONDS}))
}
