//! The token endpoint (authorization code and refresh token grants), the userinfo endpoint,
//! and RP-initiated logout.

use super::client::{Client, ClientAuthHeader, form};
use super::{DPOP_WINDOW, OAuthError, OAuthStatus, Oidc, TOKEN_PATH, USERINFO_PATH, token_hash};
use crate::identity::Session;
use crate::now;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use tsunagu_core::identity::{AccountStatus, Level};
use tsunagu_core::oidc::{
    ACR_PROVISIONAL, ACR_VERIFIED, IdentityClaims, RefreshDecision, RefreshFacts, claims,
    refresh_decision, released_items, verifier_well_formed,
};
use tsunagu_core::service::ServiceStatus;
use tsunagu_core::{PairwiseId, ServiceId};
use tsunagu_crypto::{b64, dpop, jws, random, sha256};
use tsunagu_store::{
    AnyChange, Commit, GrantRow, IdentityChange, OauthTokenRow, OidcChange, StoreError, TokenKind,
};

/// The request's `DPoP` header (RFC 9449).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpopHeader {
    Absent,
    One(String),
    /// More than one `DPoP` header.
    Many,
    /// A value that is not text.
    NotText,
}

/// Tokens issued at the token endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct TokenSet {
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a DPoP-bound access token.
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub id_token: String,
    pub scope: String,
}

/// The userinfo answer: `sub` and the claims the resident agrees to now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    pub sub: PairwiseId,
    #[serde(flatten)]
    pub claims: IdentityClaims,
}

/// What `/oauth2/logout` does.
#[derive(Debug, Clone)]
pub enum LogoutOutcome {
    /// Logged out; go to this URL (the client's registered post-logout URI) if any.
    Done { redirect: Option<String> },
    /// Ask the resident first (no valid `id_token_hint` for this session).
    Confirm,
    /// A request that must not be followed (an unregistered redirect URI).
    Show { description: String },
}

/// A DPoP proof that verified, and its replay key.
struct Proof {
    jkt: String,
    use_jti: IdentityChange,
}

fn dpop_proof(
    header: &DpopHeader,
    method: &str,
    url: &str,
    token: Option<&str>,
    t: i64,
) -> Result<Option<Proof>, String> {
    let proof = match header {
        DpopHeader::Absent => return Ok(None),
        DpopHeader::Many => return Err("exactly one DPoP header".into()),
        DpopHeader::NotText => return Err("the DPoP header is not text".into()),
        DpopHeader::One(proof) => proof,
    };
    let verified = dpop::verify(proof, method, url, token, t, DPOP_WINDOW)?;
    Ok(Some(Proof {
        use_jti: IdentityChange::UseJti {
            key: format!("dpop:{}:{}", verified.jkt, verified.jti),
            expires_at: t + 2 * DPOP_WINDOW,
        },
        jkt: verified.jkt,
    }))
}

fn invalid_dpop(description: impl Into<String>) -> OAuthError {
    OAuthError::bad("invalid_dpop_proof", description)
}

/// The `at_hash` of an access token (OpenID Connect Core §3.1.3.6, ES256: SHA-256, left
/// half).
fn at_hash(access_token: &str) -> String {
    b64::url_encode(&sha256(access_token.as_bytes())[..16])
}

/// Tokens issued for a grant, and the changes that record them.
struct Issued {
    body: TokenSet,
    changes: Vec<AnyChange>,
}

fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> Result<&'a str, OAuthError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::bad("invalid_request", format!("{name} is missing")))
}

impl Oidc {
    async fn issue_tokens(
        &self,
        grant: &GrantRow,
        scope: &str,
        nonce: Option<&str>,
        dpop_jkt: Option<&str>,
        t: i64,
    ) -> Result<Issued, OAuthError> {
        let cfg = &self.config;
        let access = random::token(32).map_err(|e| OAuthError::server("token", e))?;
        let refresh = random::token(32).map_err(|e| OAuthError::server("token", e))?;
        let account = self
            .store
            .account(&grant.account_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("the resident's account no longer exists"))?;
        if account.status == AccountStatus::ReproofRequired {
            return Err(reproof_required(OAuthError::invalid_grant));
        }
        if !self.device_active(grant).await? {
            return Err(OAuthError::invalid_grant(DEVICE_REVOKED));
        }
        let mut id_claims = json!({
            "iss": self.public_url,
            "sub": self.keys.pairwise_id(&grant.client_id, &grant.account_id),
            "aud": grant.client_id,
            "exp": t + cfg.id_token_seconds,
            "iat": t,
            "auth_time": grant.auth_time,
            "acr": if account.level == Level::Verified { ACR_VERIFIED } else { ACR_PROVISIONAL },
            // A signature by a key held in the device (RFC 8176 `hwk`) unlocked by the
            // resident.
            "amr": ["hwk", "user"],
            "at_hash": at_hash(&access),
        });
        if let Some(n) = nonce {
            id_claims["nonce"] = json!(n);
        }
        let id_token = jws::sign_json(&self.keys.signing(), Some("JWT"), &id_claims)
            .map_err(|e| OAuthError::server("signing an ID token", e))?;
        let changes = tsunagu_store::changes![
            OidcChange::InsertOauthToken(OauthTokenRow {
                token_hash: token_hash(&access),
                grant_id: grant.id.clone(),
                kind: TokenKind::Access,
                scope: scope.to_owned(),
                dpop_jkt: dpop_jkt.map(str::to_owned),
                expires_at: t + cfg.access_token_seconds,
                used_at: None,
                created_at: t,
            }),
            OidcChange::InsertOauthToken(OauthTokenRow {
                token_hash: token_hash(&refresh),
                grant_id: grant.id.clone(),
                kind: TokenKind::Refresh,
                scope: scope.to_owned(),
                // RFC 9449 §5: refresh tokens of confidential clients are not bound.
                dpop_jkt: None,
                expires_at: t + cfg.refresh_token_days * 86_400,
                used_at: None,
                created_at: t,
            }),
        ];
        Ok(Issued {
            body: TokenSet {
                access_token: access,
                token_type: if dpop_jkt.is_some() { "DPoP" } else { "Bearer" },
                expires_in: cfg.access_token_seconds,
                refresh_token: refresh,
                id_token,
                scope: scope.to_owned(),
            },
            changes,
        })
    }

    /// Whether the device the resident logged in with is still active: what a revoked
    /// device started ends with it (its grants are revoked with it; this also stops a grant
    /// made while the revocation was being committed).
    async fn device_active(&self, grant: &GrantRow) -> Result<bool, OAuthError> {
        Ok(self
            .store
            .device(&grant.device_id)
            .await?
            .is_some_and(|d| d.status != tsunagu_core::identity::DeviceStatus::Revoked))
    }

    /// Revokes a grant and records why.
    async fn revoke_grant(&self, grant: &GrantRow, reason: &str) -> Result<(), OAuthError> {
        let t = now();
        self.committer
            .commit(super::revoke_grant_in(
                Commit::new(),
                &self.keys,
                grant,
                reason,
                t,
            ))
            .await?;
        tracing::warn!(client = %grant.client_id, grant = %grant.id, %reason, "grant revoked");
        metrics::counter!("tsunagu_oidc_grants_revoked_total", "reason" => reason.to_owned())
            .increment(1);
        Ok(())
    }

    /// `POST /oauth2/token`.
    pub async fn token(
        &self,
        header: &ClientAuthHeader,
        dpop: &DpopHeader,
        pairs: Vec<(String, String)>,
    ) -> Result<TokenSet, OAuthError> {
        self.token_on(header, None, dpop, pairs).await
    }

    /// [`Oidc::token`] on a connection that presented a verified client certificate (its
    /// `x5t#S256`), for clients registered with `tls_client_auth` (RFC 8705 §2).
    pub async fn token_on(
        &self,
        header: &ClientAuthHeader,
        client_cert: Option<&str>,
        dpop: &DpopHeader,
        pairs: Vec<(String, String)>,
    ) -> Result<TokenSet, OAuthError> {
        let params = form(pairs)?;
        let client = self
            .authenticate_client(header, &params, client_cert)
            .await?;
        let t = now();
        let proof = dpop_proof(dpop, "POST", &self.endpoint(TOKEN_PATH), None, t)
            .map_err(|e| invalid_dpop(format!("DPoP proof: {e}")))?;
        let outcome = match params.get("grant_type").map(String::as_str) {
            Some("authorization_code") => self.code_grant(&client, &params, proof, t).await,
            Some("refresh_token") => self.refresh_grant(&client, &params, proof, t).await,
            Some(_) => Err(OAuthError::bad(
                "unsupported_grant_type",
                "grant_type is authorization_code or refresh_token",
            )),
            None => Err(OAuthError::bad("invalid_request", "grant_type is missing")),
        };
        metrics::counter!("tsunagu_oidc_token_requests_total", "outcome" => match &outcome {
            Ok(_) => "issued",
            Err(e) => e.error,
        })
        .increment(1);
        outcome
    }

    async fn commit_tokens(
        &self,
        mut changes: Vec<AnyChange>,
        client: &Client,
        proof: Option<Proof>,
    ) -> Result<(), StoreError> {
        changes.extend(client.jti.clone().map(AnyChange::from));
        changes.extend(proof.map(|p| AnyChange::from(p.use_jti)));
        self.committer
            .commit(Commit {
                changes,
                leaves: vec![],
            })
            .await
            .map(|_| ())
    }

    async fn code_grant(
        &self,
        client: &Client,
        params: &HashMap<String, String>,
        proof: Option<Proof>,
        t: i64,
    ) -> Result<TokenSet, OAuthError> {
        let code = required(params, "code")?;
        let redirect_uri = required(params, "redirect_uri")?;
        let verifier = required(params, "code_verifier")?;
        let Some((row, grant)) = self.store.code(&token_hash(code)).await? else {
            return Err(OAuthError::invalid_grant("unknown authorization code"));
        };
        if grant.client_id != client.id() {
            return Err(OAuthError::invalid_grant(
                "the code was issued to another client",
            ));
        }
        if row.used_at.is_some() {
            // RFC 6749 §4.1.2: a code used twice revokes what it produced.
            self.revoke_grant(&grant, "authorization code reused")
                .await?;
            return Err(OAuthError::invalid_grant("the code was already used"));
        }
        if grant.revoked_at.is_some() {
            return Err(OAuthError::invalid_grant("the grant was revoked"));
        }
        if row.expires_at <= t {
            return Err(OAuthError::invalid_grant("the code has expired"));
        }
        if row.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request",
            ));
        }
        if !verifier_well_formed(verifier)
            || b64::url_encode(sha256(verifier.as_bytes())) != row.code_challenge
        {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge (PKCE)",
            ));
        }
        let jkt = proof.as_ref().map(|p| p.jkt.clone());
        if let Some(bound) = &row.dpop_jkt
            && jkt.as_deref() != Some(bound.as_str())
        {
            return Err(invalid_dpop(
                "the authorization request named dpop_jkt: present a DPoP proof with that key",
            ));
        }
        let mut issued = self
            .issue_tokens(
                &grant,
                &grant.scope,
                row.nonce.as_deref(),
                jkt.as_deref(),
                t,
            )
            .await?;
        issued.changes.insert(
            0,
            AnyChange::from(OidcChange::UseCode {
                code_hash: row.code_hash.clone(),
                at: t,
            }),
        );
        match self.commit_tokens(issued.changes, client, proof).await {
            Ok(()) => Ok(issued.body),
            Err(StoreError::Conflict(_)) => {
                // The code was used concurrently, or the assertion or proof replayed.
                if let Some((row, grant)) = self.store.code(&row.code_hash).await?
                    && row.used_at.is_some()
                {
                    self.revoke_grant(&grant, "authorization code reused")
                        .await?;
                    return Err(OAuthError::invalid_grant("the code was already used"));
                }
                Err(OAuthError::invalid_client(
                    "the client assertion or DPoP proof was already used",
                    false,
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn refresh_grant(
        &self,
        client: &Client,
        params: &HashMap<String, String>,
        proof: Option<Proof>,
        t: i64,
    ) -> Result<TokenSet, OAuthError> {
        let presented = required(params, "refresh_token")?;
        let Some((row, grant)) = self
            .store
            .oauth_token(&token_hash(presented))
            .await?
            .filter(|(r, _)| r.kind == TokenKind::Refresh)
        else {
            return Err(OAuthError::invalid_grant("unknown refresh token"));
        };
        let facts = RefreshFacts {
            client_id: grant.client_id.as_str(),
            used: row.used_at.is_some(),
            expires_at: row.expires_at,
            grant_revoked: grant.revoked_at.is_some(),
        };
        match refresh_decision(&facts, client.id(), t) {
            RefreshDecision::Refuse => {
                return Err(OAuthError::invalid_grant(
                    "the refresh token is expired, revoked or another client's",
                ));
            }
            RefreshDecision::ReuseDetected => {
                self.revoke_grant(&grant, "refresh token reused").await?;
                return Err(OAuthError::invalid_grant(
                    "the refresh token was already used; every token of this grant is revoked",
                ));
            }
            RefreshDecision::Rotate => {}
        }
        // A narrower scope may be asked for (RFC 6749 §6), never a wider one.
        let scope = match params.get("scope") {
            Some(s) => {
                let asked: Vec<&str> = s.split_ascii_whitespace().collect();
                let held: Vec<&str> = row.scope.split_ascii_whitespace().collect();
                if !asked.contains(&"openid") || asked.iter().any(|a| !held.contains(a)) {
                    return Err(OAuthError::bad(
                        "invalid_scope",
                        "the scope must be within the original grant and include openid",
                    ));
                }
                tsunagu_core::oidc::normalize_scope(s)
            }
            None => row.scope.clone(),
        };
        let jkt = proof.as_ref().map(|p| p.jkt.clone());
        let mut issued = self
            .issue_tokens(&grant, &scope, None, jkt.as_deref(), t)
            .await?;
        issued.changes.insert(
            0,
            AnyChange::from(OidcChange::UseRefreshToken {
                token_hash: row.token_hash.clone(),
                at: t,
            }),
        );
        match self.commit_tokens(issued.changes, client, proof).await {
            Ok(()) => Ok(issued.body),
            Err(StoreError::Conflict(_)) => {
                if let Some((row, grant)) = self.store.oauth_token(&row.token_hash).await?
                    && row.used_at.is_some()
                {
                    self.revoke_grant(&grant, "refresh token reused").await?;
                    return Err(OAuthError::invalid_grant(
                        "the refresh token was already used; every token of this grant is revoked",
                    ));
                }
                Err(OAuthError::invalid_client(
                    "the client assertion or DPoP proof was already used",
                    false,
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `GET|POST /oauth2/userinfo` (OpenID Connect Core §5.3): `sub` and the claims the
    /// resident agrees to *now* (a revoked consent stops them at once). `authorization` is
    /// the `Authorization` header's text.
    pub async fn userinfo(
        &self,
        authorization: Option<&str>,
        dpop: &DpopHeader,
        method: &str,
    ) -> Result<UserInfo, OAuthError> {
        let header = authorization.unwrap_or("");
        let (scheme, token) = header.split_once(' ').unwrap_or(("", ""));
        let scheme = if scheme.eq_ignore_ascii_case("dpop") {
            "DPoP"
        } else if scheme.eq_ignore_ascii_case("bearer") {
            "Bearer"
        } else {
            let mut e = OAuthError::new(
                OAuthStatus::Unauthorized,
                "invalid_request",
                "an access token is required",
            );
            e.challenge = Some("Bearer, DPoP algs=\"ES256 EdDSA\"".into());
            return Err(e);
        };
        let token = token.trim();
        let t = now();
        let Some((row, grant)) = self
            .store
            .oauth_token(&token_hash(token))
            .await?
            .filter(|(r, _)| r.kind == TokenKind::Access)
        else {
            return Err(OAuthError::invalid_token("unknown access token", scheme));
        };
        if row.expires_at <= t || grant.revoked_at.is_some() {
            return Err(OAuthError::invalid_token(
                "the access token expired or was revoked",
                scheme,
            ));
        }
        match (&row.dpop_jkt, scheme) {
            (Some(bound), "DPoP") => {
                let proof = dpop_proof(dpop, method, &self.endpoint(USERINFO_PATH), Some(token), t)
                    .map_err(|e| OAuthError::invalid_token(format!("DPoP proof: {e}"), "DPoP"))?
                    .ok_or_else(|| OAuthError::invalid_token("a DPoP proof is required", "DPoP"))?;
                if &proof.jkt != bound {
                    return Err(OAuthError::invalid_token(
                        "the DPoP proof's key is not the token's",
                        "DPoP",
                    ));
                }
                self.committer
                    .commit(Commit::new().change(proof.use_jti))
                    .await
                    .map_err(|e| match e {
                        StoreError::Conflict(_) => {
                            OAuthError::invalid_token("the DPoP proof was already used", "DPoP")
                        }
                        other => other.into(),
                    })?;
            }
            (Some(_), _) => {
                return Err(OAuthError::invalid_token(
                    "this access token is DPoP-bound: use the DPoP scheme with a proof",
                    "DPoP",
                ));
            }
            (None, "DPoP") => {
                return Err(OAuthError::invalid_token(
                    "this access token is not DPoP-bound",
                    "Bearer",
                ));
            }
            (None, _) => {}
        }
        let client = self
            .directory
            .get(&grant.client_id)
            .await?
            .filter(|c| c.row.status == ServiceStatus::Approved)
            .ok_or_else(|| OAuthError::invalid_token("the service is not approved", scheme))?;
        let account = self
            .store
            .account(&grant.account_id)
            .await?
            .ok_or_else(|| {
                OAuthError::invalid_token("the resident's account no longer exists", scheme)
            })?;
        if account.status == AccountStatus::ReproofRequired {
            return Err(reproof_required(|d| OAuthError::invalid_token(d, scheme)));
        }
        if !self.device_active(&grant).await? {
            return Err(OAuthError::invalid_token(DEVICE_REVOKED, scheme));
        }
        let mut info = UserInfo {
            sub: self.keys.pairwise_id(&grant.client_id, &grant.account_id),
            claims: IdentityClaims::default(),
        };
        // A resident who asked the platform to stop using or providing their data (利用停止,
        // 第三者提供の停止) gets no identity claims released: the service learns the pairwise
        // `sub` only.
        if !grant.items.is_empty()
            && account.restriction.releases_claims()
            && let Some(consent_id) = &grant.consent_id
            && let Some(consent) = self.store.consent(consent_id).await?
            && tsunagu_core::consent::in_force(consent.status, consent.expires_at, t)
            && let Some(purpose) = client.purpose_by_id(&consent.purpose_id)
            && purpose.row.provider_id.is_platform()
            && let Some(attributes) = self
                .identity
                .open_attributes(&account)
                .map_err(OAuthError::from)?
        {
            let asked = tsunagu_core::oidc::items_for_scope(&row.scope);
            let items = released_items(&asked, &purpose.row.items, &consent.items);
            let granted: Vec<String> = items
                .into_iter()
                .filter(|i| grant.items.contains(i))
                .collect();
            info.claims = claims(&attributes, &granted);
        }
        Ok(info)
    }

    /// `GET|POST /oauth2/logout` (OpenID Connect RP-Initiated Logout 1.0). `session` is the
    /// resident's session and its token; `confirmed` is set when the resident pressed the
    /// button on the confirmation page.
    pub async fn logout(
        &self,
        params: &HashMap<String, String>,
        session: Option<(&Session, &str)>,
        confirmed: bool,
    ) -> Result<LogoutOutcome, OAuthError> {
        #[derive(Deserialize)]
        struct Hint {
            iss: Option<String>,
            sub: Option<String>,
            #[serde(default)]
            aud: Audience,
        }
        #[derive(Deserialize, Default)]
        #[serde(untagged)]
        enum Audience {
            One(String),
            Many(Vec<serde_json::Value>),
            #[default]
            None,
        }
        // The hint is verified but may have expired (§2).
        let hint = match params.get("id_token_hint") {
            Some(h) => {
                let parsed = jws::parse(h).ok().filter(|p| {
                    p.alg == tsunagu_crypto::keys::Alg::Es256
                        && p.kid
                            .as_deref()
                            .and_then(|kid| self.keys.signing_key(kid))
                            .is_some_and(|k| p.verify(&k).is_ok())
                });
                let claims = parsed
                    .and_then(|p| p.payload_as::<Hint>().ok())
                    .filter(|c| c.iss.as_deref() == Some(self.public_url.as_str()));
                match claims {
                    Some(c) => Some(c),
                    None => {
                        return Ok(LogoutOutcome::Show {
                            description: "id_token_hint is not an ID token this platform issued"
                                .into(),
                        });
                    }
                }
            }
            None => None,
        };
        let hinted_client = hint.as_ref().and_then(|c| match &c.aud {
            Audience::One(s) => Some(s.clone()),
            Audience::Many(v) => v.first().and_then(|a| a.as_str()).map(str::to_owned),
            Audience::None => None,
        });
        let client_id = params.get("client_id").cloned().or(hinted_client.clone());
        if let (Some(given), Some(hinted)) = (params.get("client_id"), &hinted_client)
            && given != hinted
        {
            return Ok(LogoutOutcome::Show {
                description: "client_id differs from the ID token's audience".into(),
            });
        }
        let redirect = match params.get("post_logout_redirect_uri") {
            Some(uri) => {
                let registered = match &client_id {
                    Some(id) => self.directory.find(id).await?.is_some_and(|c| {
                        c.application
                            .post_logout_redirect_uris
                            .iter()
                            .any(|u| u == uri)
                    }),
                    None => false,
                };
                if !registered {
                    return Ok(LogoutOutcome::Show {
                        description: "post_logout_redirect_uri is not registered for this client"
                            .into(),
                    });
                }
                let mut q: Vec<(&str, &str)> = vec![];
                if let Some(state) = params.get("state") {
                    q.push(("state", state));
                }
                Some(super::with_query(uri, &q))
            }
            None => None,
        };
        let Some((session, token)) = session else {
            return Ok(LogoutOutcome::Done { redirect });
        };
        // The hint must name this session's resident at that client, or the resident
        // confirms.
        let hint_matches = match (&hint, &client_id) {
            (Some(c), Some(client)) => {
                c.sub.as_deref()
                    == Some(
                        self.keys
                            .pairwise_id(&ServiceId::from(client.as_str()), &session.account_id)
                            .as_str(),
                    )
            }
            _ => false,
        };
        if !hint_matches && !confirmed {
            return Ok(LogoutOutcome::Confirm);
        }
        self.identity
            .end_session(token)
            .await
            .map_err(OAuthError::from)?;
        Ok(LogoutOutcome::Done { redirect })
    }
}

/// Why a grant made through a revoked device gives nothing.
const DEVICE_REVOKED: &str = "the device the resident logged in with was revoked";

/// The refusal for an account whose card certificate was revoked: its attributes may be stale
/// (a move, a new name), so no token and no claim is released until the resident proofs again.
fn reproof_required(make: impl FnOnce(String) -> OAuthError) -> OAuthError {
    make(
        "reproof_required: the resident's card certificate was revoked; the resident must \
         proof again with the new certificate"
            .to_owned(),
    )
    .with_code(tsunagu_core::Code::ReproofRequired)
}
