//! The authorization endpoint and what the resident sees of it: the login page, the consent
//! page, the decision, and pushed authorization requests.
//!
//! A request that cannot be answered at once (the resident must log in, or consent) is kept
//! as a pending request; the login page's nonce and the consent form point back to it, so a
//! client that signs with the device key can finish the flow without JavaScript.

use super::client::{ClientAuthHeader, form, parse_params};
use super::{AUTHORIZE_PATH, OAuthError, Oidc, REQUEST_URI_PREFIX, token_hash, with_query};
use crate::directory::{PurposeEntry, ServiceEntry};
use crate::identity::{LoggedIn, NoncePurpose, Session};
use crate::ledger::leaf;
use crate::{Outcome, Refusal, now};
use serde::Serialize;
use std::sync::Arc;
use tsunagu_core::consent::ConsentPayload;
use tsunagu_core::event::Event;
use tsunagu_core::identity::Level;
use tsunagu_core::oidc::{
    self, Authorization, AuthorizeError, AuthorizeParams, CODE_SECONDS, ClientFacts, PAR_SECONDS,
    REQUEST_SECONDS, login_needed, released_items,
};
use tsunagu_core::service::{PLATFORM_PROVIDER, ServiceStatus};
use tsunagu_core::{Code, GrantId, RequestId, ServiceId};
use tsunagu_crypto::random;
use tsunagu_store::{
    AuthzRequestRow, CodeRow, Commit, ExchangeChange, GrantRow, OidcChange, StoreError,
};

/// What the login page shows and carries.
#[derive(Debug, Clone, Serialize)]
pub struct LoginView {
    /// The pending authorization request, when the login is for a service.
    pub request_id: Option<RequestId>,
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
    pub request_id: RequestId,
    pub client_id: ServiceId,
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

/// The answer to a pushed authorization request (RFC 9126 §2.2).
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    pub request_uri: String,
    pub expires_in: i64,
}

fn show(error: &'static str, description: impl Into<String>) -> AuthorizeOutcome {
    AuthorizeOutcome::Show {
        error,
        description: description.into(),
    }
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

/// The client's identity-claims purpose (provider `tsunagu`) that covers most of `asked`.
fn identity_purpose<'a>(client: &'a ServiceEntry, asked: &[String]) -> Option<&'a PurposeEntry> {
    client
        .purposes
        .iter()
        .filter(|p| p.row.provider_id.is_platform())
        .max_by_key(|p| asked.iter().filter(|i| p.row.items.contains(i)).count())
}

/// The pending request a consent form answers: the form's `request`, else the one the
/// browser was last shown (a cookie).
pub fn pending_for_consent(form: Option<&str>, cookie: Option<&str>) -> Option<RequestId> {
    form.or(cookie)
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .map(RequestId::from)
}

impl Oidc {
    /// The redirect of an error to the client (RFC 6749 §4.1.2.1, RFC 9207 `iss`).
    fn error_redirect(
        &self,
        a: &Authorization,
        error: &str,
        description: &str,
    ) -> AuthorizeOutcome {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(state) = &a.state {
            params.push(("state", state));
        }
        params.push(("iss", &self.public_url));
        AuthorizeOutcome::Redirect(with_query(&a.redirect_uri, &params))
    }

    async fn client_entry(&self, id: &str) -> Outcome<Option<Arc<ServiceEntry>>> {
        Ok(self.directory.find(id).await?)
    }

    /// `GET|POST /oauth2/authorize`.
    pub async fn authorize(
        &self,
        params: AuthorizeParams,
        session: Option<&Session>,
    ) -> Outcome<AuthorizeOutcome> {
        let t = now();
        if let Some(uri) = &params.request_uri {
            let Some(id) = uri.strip_prefix(REQUEST_URI_PREFIX) else {
                return Ok(show(
                    "invalid_request_uri",
                    "request_uri is not one this platform issued",
                ));
            };
            let Some(row) = self
                .store
                .authz_request(&RequestId::from(id))
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
                .map_err(|e| Refusal::internal("pending request", e))?;
            return self.proceed(a, session, Some(row), t).await;
        }
        let client = match params.client_id.as_deref() {
            Some(id) if !id.is_empty() && id.len() <= 128 => self.client_entry(id).await?,
            _ => None,
        };
        let facts = client.as_ref().map(|c| ClientFacts {
            id: c.row.id.as_str(),
            status: c.row.status,
            redirect_uris: &c.application.redirect_uris,
        });
        match oidc::validate(&params, facts.as_ref()) {
            Ok(a) => self.proceed(a, session, None, t).await,
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
                p.push(("iss", &self.public_url));
                Ok(AuthorizeOutcome::Redirect(with_query(&redirect_uri, &p)))
            }
        }
    }

    /// `GET /oauth2/authorize?request_id=…`: continues a pending request after login.
    pub async fn resume(
        &self,
        request_id: &RequestId,
        session: Option<&Session>,
    ) -> Outcome<AuthorizeOutcome> {
        let t = now();
        let Some((row, a)) = self.pending(request_id, t).await? else {
            return Ok(show(
                "invalid_request",
                "this login request has expired; start again from the service",
            ));
        };
        self.proceed(a, session, Some(row), t).await
    }

    /// A pending authorization request that has not expired at `t`, with its parameters.
    async fn pending(
        &self,
        request_id: &RequestId,
        t: i64,
    ) -> Outcome<Option<(AuthzRequestRow, Authorization)>> {
        let Some(row) = self
            .store
            .authz_request(request_id)
            .await?
            .filter(|r| r.expires_at > t)
        else {
            return Ok(None);
        };
        let a: Authorization = serde_json::from_str(&row.params)
            .map_err(|e| Refusal::internal("pending request", e))?;
        Ok(Some((row, a)))
    }

    async fn proceed(
        &self,
        a: Authorization,
        session: Option<&Session>,
        pending: Option<AuthzRequestRow>,
        t: i64,
    ) -> Outcome<AuthorizeOutcome> {
        // A login made for this very request satisfies prompt=login and max_age.
        let fresh =
            matches!((session, &pending), (Some(s), Some(p)) if s.auth_time >= p.created_at);
        let Some(session) = session.filter(|s| fresh || !login_needed(&a, Some(s.auth_time), t))
        else {
            if a.prompt.none {
                return Ok(self.error_redirect(
                    &a,
                    "login_required",
                    "the resident is not logged in",
                ));
            }
            return self
                .login_page(&a, pending)
                .await
                .map(AuthorizeOutcome::Login);
        };
        let Some(client) = self.client_entry(&a.client_id).await? else {
            return Ok(show("invalid_client", "no such client"));
        };
        if client.row.status != ServiceStatus::Approved {
            return Ok(self.error_redirect(
                &a,
                "unauthorized_client",
                "this service is not approved by the governance committee",
            ));
        }
        let Some(account) = self.store.account(&session.account_id).await? else {
            return Ok(show("login_required", "the account no longer exists"));
        };
        let purpose = identity_purpose(&client, &a.items);
        let wanted = match (account.level, purpose) {
            (Level::Verified, Some(p)) => released_items(&a.items, &p.row.items, &p.row.items),
            // A provisional ID can log in but gets no identity claims.
            _ => vec![],
        };
        let Some(purpose) = purpose.filter(|_| !wanted.is_empty()) else {
            return self
                .issue_code(session, &a, vec![], None, pending.as_ref(), t)
                .await;
        };
        let latest = self
            .store
            .latest_consent(&session.account_id, &client.row.id, &purpose.row.purpose_id)
            .await?
            .filter(|c| tsunagu_core::consent::in_force(c.status, c.expires_at, t));
        if let Some(c) = &latest
            && !a.prompt.consent
            && wanted.iter().all(|i| c.items.contains(i))
        {
            let items = released_items(&a.items, &purpose.row.items, &c.items);
            return self
                .issue_code(
                    session,
                    &a,
                    items,
                    Some(c.id.to_string()),
                    pending.as_ref(),
                    t,
                )
                .await;
        }
        if a.prompt.none {
            return Ok(self.error_redirect(
                &a,
                "consent_required",
                "the resident has not agreed to release these items",
            ));
        }
        self.consent_page(&a, &client, purpose, wanted, pending, t)
            .await
            .map(AuthorizeOutcome::Consent)
    }

    async fn keep_pending(
        &self,
        a: &Authorization,
        pending: Option<AuthzRequestRow>,
        login_nonce: Option<String>,
        t: i64,
    ) -> Outcome<RequestId> {
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
                let id = RequestId::from(
                    random::token(16).map_err(|e| Refusal::internal("request id", e))?,
                );
                let row = AuthzRequestRow {
                    id: id.clone(),
                    client_id: a.client_id.as_str().into(),
                    params: serde_json::to_string(a)
                        .map_err(|e| Refusal::internal("request", e))?,
                    pushed: false,
                    login_nonce,
                    expires_at: t + REQUEST_SECONDS,
                    created_at: t,
                };
                (id, Some(OidcChange::InsertAuthzRequest(row)))
            }
        };
        if let Some(change) = change {
            self.committer.commit(Commit::new().change(change)).await?;
        }
        Ok(id)
    }

    /// A login page for `a` (a fresh nonce, bound to the pending request).
    async fn login_page(
        &self,
        a: &Authorization,
        pending: Option<AuthzRequestRow>,
    ) -> Outcome<LoginView> {
        let challenge = self.identity.challenge(NoncePurpose::Login).await?;
        let id = self
            .keep_pending(a, pending, Some(challenge.nonce.clone()), now())
            .await?;
        let client = self.client_entry(&a.client_id).await?;
        Ok(LoginView {
            request_id: Some(id),
            nonce: challenge.nonce,
            client_name: client.as_ref().map(|c| c.row.name.clone()),
            client_organization: client.as_ref().map(|c| c.row.organization.clone()),
        })
    }

    /// A login page for the web app itself (no service involved).
    pub async fn web_login_page(&self) -> Outcome<LoginView> {
        let challenge = self.identity.challenge(NoncePurpose::Login).await?;
        Ok(LoginView {
            request_id: None,
            nonce: challenge.nonce,
            client_name: None,
            client_organization: None,
        })
    }

    async fn consent_page(
        &self,
        a: &Authorization,
        client: &ServiceEntry,
        purpose: &PurposeEntry,
        items: Vec<String>,
        pending: Option<AuthzRequestRow>,
        t: i64,
    ) -> Outcome<ConsentView> {
        let id = self.keep_pending(a, pending, None, t).await?;
        let expires_at = tsunagu_core::consent::default_expiry(
            purpose.purpose.retention_days,
            self.max_consent_days,
            t,
        );
        let payload = ConsentPayload {
            v: 1,
            purpose_id: purpose.row.purpose_id.to_string(),
            consumer: client.row.id.to_string(),
            provider: PLATFORM_PROVIDER.to_owned(),
            items: items.clone(),
            expires_at,
            terms_sha256: purpose.row.terms_sha256.clone(),
            issued_at: t,
            nonce: random::token(16).map_err(|e| Refusal::internal("nonce", e))?,
        };
        let p = &purpose.purpose;
        Ok(ConsentView {
            request_id: id,
            client_id: client.row.id.clone(),
            client_name: client.row.name.clone(),
            client_organization: client.row.organization.clone(),
            purpose_id: purpose.row.purpose_id.to_string(),
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
            // Members in JCS order, as the page shows and the device signs them.
            payload: serde_json::to_value(&payload)
                .map_err(|e| Refusal::internal("consent payload", e))?
                .to_string(),
        })
    }

    async fn issue_code(
        &self,
        session: &Session,
        a: &Authorization,
        items: Vec<String>,
        consent_id: Option<String>,
        pending: Option<&AuthzRequestRow>,
        t: i64,
    ) -> Outcome<AuthorizeOutcome> {
        let grant_id =
            GrantId::from(random::token(16).map_err(|e| Refusal::internal("grant id", e))?);
        let code = random::token(32).map_err(|e| Refusal::internal("code", e))?;
        let client_id = ServiceId::from(a.client_id.as_str());
        let mut commit = Commit::new()
            .change(OidcChange::InsertGrant(GrantRow {
                id: grant_id.clone(),
                client_id: client_id.clone(),
                account_id: session.account_id.clone(),
                device_id: session.device_id.clone(),
                scope: a.scope.clone(),
                items: items.clone(),
                consent_id: consent_id.as_deref().map(Into::into),
                auth_time: session.auth_time,
                created_at: t,
                revoked_at: None,
                revoked_reason: None,
            }))
            .change(OidcChange::InsertCode(CodeRow {
                code_hash: token_hash(&code),
                grant_id: grant_id.clone(),
                redirect_uri: a.redirect_uri.clone(),
                code_challenge: a.code_challenge.clone(),
                nonce: a.nonce.clone(),
                dpop_jkt: a.dpop_jkt.clone(),
                expires_at: t + CODE_SECONDS,
                used_at: None,
                created_at: t,
            }))
            .change(ExchangeChange::LinkSubject {
                sector: client_id.clone(),
                subject: self.keys.pairwise_id(&client_id, &session.account_id),
                account_id: session.account_id.clone(),
                created_at: t,
            });
        if let Some(p) = pending {
            commit.push(OidcChange::DeleteAuthzRequest { id: p.id.clone() });
        }
        self.committer
            .commit(commit.leaf(leaf(
                &Event::OidcAuthorized {
                    subject: self.keys.ledger_subject(&session.account_id).into_string(),
                    client: a.client_id.clone(),
                    grant: grant_id.to_string(),
                    scope: a.scope.clone(),
                    items,
                    basis: consent_id.map(|c| format!("consent:{c}")),
                },
                &[&session.account_id],
                t,
            )))
            .await?;
        metrics::counter!("tsunagu_oidc_authorizations_total", "outcome" => "code").increment(1);
        let mut params = vec![("code", code.as_str())];
        if let Some(state) = &a.state {
            params.push(("state", state));
        }
        params.push(("iss", &self.public_url));
        Ok(AuthorizeOutcome::Redirect(with_query(
            &a.redirect_uri,
            &params,
        )))
    }

    /// `POST /login` (form: `credential`, `nonce`, `signature`, and for a device gated by
    /// WebAuthn `user_verification`, the assertion as JSON): logs the device in. When
    /// the nonce belongs to a login page shown for a service, the answer says where to
    /// continue. A refused login comes with a fresh login page (the old nonce is spent).
    pub async fn login(
        &self,
        credential: &str,
        nonce: &str,
        signature: &str,
        user_verification: Option<&crate::identity::webauthn::WireAssertion>,
    ) -> Result<(LoggedIn, Option<String>), (Refusal, Option<LoginView>)> {
        let pending = self
            .store
            .authz_request_by_login_nonce(nonce)
            .await
            .map_err(|e| (Refusal::from(e), None))?;
        match self
            .identity
            .login_verified(credential, nonce, signature, user_verification)
            .await
        {
            Ok(logged_in) => {
                let next = pending.map(|p| format!("{AUTHORIZE_PATH}?request_id={}", p.id));
                Ok((logged_in, next))
            }
            Err(e) => {
                let page = match pending.filter(|p| p.expires_at > now()) {
                    Some(p) => match serde_json::from_str::<Authorization>(&p.params) {
                        Ok(a) => self.login_page(&a, Some(p)).await.ok(),
                        Err(_) => None,
                    },
                    None => self.web_login_page().await.ok(),
                };
                Err((e, page))
            }
        }
    }

    /// `POST /oauth2/consent`: `approve` with the signed consent, or deny.
    pub async fn consent_decision(
        &self,
        session: &Session,
        request_id: &RequestId,
        decision: &str,
        consent_jws: Option<&str>,
    ) -> Outcome<AuthorizeOutcome> {
        self.consent_decision_verified(session, request_id, decision, consent_jws, None)
            .await
    }

    /// [`Oidc::consent_decision`] with, for a device gated by WebAuthn, the assertion over
    /// SHA-256 of the consent JWS.
    pub async fn consent_decision_verified(
        &self,
        session: &Session,
        request_id: &RequestId,
        decision: &str,
        consent_jws: Option<&str>,
        user_verification: Option<&crate::identity::webauthn::WireAssertion>,
    ) -> Outcome<AuthorizeOutcome> {
        let t = now();
        let Some((row, a)) = self.pending(request_id, t).await? else {
            return Ok(show(
                "invalid_request",
                "this login request has expired; start again from the service",
            ));
        };
        match decision {
            "deny" => {
                self.committer
                    .commit(
                        Commit::new()
                            .change(OidcChange::DeleteAuthzRequest { id: row.id.clone() })
                            .leaf(leaf(
                                &Event::OidcRefused {
                                    subject: self
                                        .keys
                                        .ledger_subject(&session.account_id)
                                        .into_string(),
                                    client: a.client_id.clone(),
                                    error: "access_denied".into(),
                                },
                                &[&session.account_id],
                                t,
                            )),
                    )
                    .await?;
                metrics::counter!("tsunagu_oidc_authorizations_total", "outcome" => "denied")
                    .increment(1);
                Ok(self.error_redirect(&a, "access_denied", "the resident did not agree"))
            }
            "approve" => {
                let jws = consent_jws.filter(|j| !j.is_empty()).ok_or_else(|| {
                    Refusal::new(
                        Code::InvalidRequest,
                        "approving needs consent_jws: the consent payload signed with the device key",
                    )
                })?;
                // Only a consent to this service's identity claims answers this request:
                // look before recording anything (the signature is checked by the grant).
                #[derive(serde::Deserialize)]
                struct Names {
                    consumer: Option<String>,
                    provider: Option<String>,
                }
                let names_this_request = tsunagu_crypto::jws::parse(jws)
                    .ok()
                    .and_then(|t| t.payload_as::<Names>().ok())
                    .is_some_and(|p| {
                        p.consumer.as_deref() == Some(a.client_id.as_str())
                            && p.provider.as_deref() == Some(PLATFORM_PROVIDER)
                    });
                if !names_this_request {
                    return Err(Refusal::new(
                        Code::InvalidRequest,
                        "the signed consent is not for this service's identity claims",
                    ));
                }
                let granted = self
                    .consents
                    .grant_verified(session, jws, user_verification)
                    .await?;
                if granted.consumer != a.client_id.as_str() || !granted.provider.is_platform() {
                    return Err(Refusal::new(
                        Code::InvalidRequest,
                        "the signed consent is not for this service's identity claims",
                    ));
                }
                let Some(client) = self.client_entry(&a.client_id).await? else {
                    return Ok(show("invalid_client", "no such client"));
                };
                let Some(purpose) = client.purpose_by_id(&granted.purpose_id) else {
                    return Ok(show("invalid_request", "no such purpose"));
                };
                let items = released_items(&a.items, &purpose.row.items, &granted.items);
                self.issue_code(
                    session,
                    &a,
                    items,
                    Some(granted.consent_id.to_string()),
                    Some(&row),
                    t,
                )
                .await
            }
            _ => Err(Refusal::new(
                Code::InvalidRequest,
                "decision is approve or deny",
            )),
        }
    }

    /// `POST /oauth2/par` (RFC 9126).
    pub async fn push(
        &self,
        header: &ClientAuthHeader,
        pairs: Vec<(String, String)>,
    ) -> Result<Pushed, OAuthError> {
        self.push_on(header, None, pairs).await
    }

    /// [`Oidc::push`] on a connection that presented a verified client certificate.
    pub async fn push_on(
        &self,
        header: &ClientAuthHeader,
        client_cert: Option<&str>,
        pairs: Vec<(String, String)>,
    ) -> Result<Pushed, OAuthError> {
        let params = form(pairs)?;
        let client = self
            .authenticate_client(header, &params, client_cert)
            .await?;
        if params.contains_key("request_uri") {
            return Err(OAuthError::bad(
                "invalid_request",
                "request_uri cannot be pushed",
            ));
        }
        let mut p: AuthorizeParams = parse_params(&params)?;
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
        let mut commit = Commit::new().change(OidcChange::InsertAuthzRequest(AuthzRequestRow {
            id: id.as_str().into(),
            client_id: a.client_id.as_str().into(),
            params: serde_json::to_string(&a).map_err(|e| OAuthError::server("request", e))?,
            pushed: true,
            login_nonce: None,
            expires_at: t + PAR_SECONDS,
            created_at: t,
        }));
        if let Some(jti) = client.jti {
            commit.push(jti);
        }
        self.committer.commit(commit).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                OAuthError::invalid_client("client assertion: jti was already used", false)
            }
            other => other.into(),
        })?;
        Ok(Pushed {
            request_uri: format!("{REQUEST_URI_PREFIX}{id}"),
            expires_in: PAR_SECONDS,
        })
    }
}
