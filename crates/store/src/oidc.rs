//! OpenID Connect: pending authorization requests, grants, codes and tokens (codes and
//! tokens stored as hashes only).

use crate::commit::Change;
use crate::identity::{all, one};
use crate::sql::{Conn, RowReader, expect_one, string_list};
use crate::{OidcStore, Result, SqlStore, StoreError, params};
use async_trait::async_trait;
use tsunagu_core::{AccountId, ConsentId, DeviceId, GrantId, RequestId, ServiceId};

/// A pending OpenID Connect authorization request, between the authorization endpoint (or a
/// pushed authorization request) and the resident's login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzRequestRow {
    pub id: RequestId,
    pub client_id: ServiceId,
    /// The validated request parameters (JSON).
    pub params: String,
    /// Whether the client pushed the request (RFC 9126).
    pub pushed: bool,
    /// The nonce of the login that answers this request, once it has started.
    pub login_nonce: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
}

/// What a resident allowed an OpenID Connect client at one login. Its codes and tokens
/// live and die with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub id: GrantId,
    pub client_id: ServiceId,
    pub account_id: AccountId,
    /// The device the resident logged in with.
    pub device_id: DeviceId,
    pub scope: String,
    /// The items released to the client.
    pub items: Vec<String>,
    /// The consent behind the released items, if any.
    pub consent_id: Option<ConsentId>,
    /// When the resident authenticated.
    pub auth_time: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

/// An authorization code (stored as its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    /// SHA-256 of the code, hex.
    pub code_hash: String,
    pub grant_id: GrantId,
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// The client's nonce, for the ID token.
    pub nonce: Option<String>,
    /// Thumbprint of the DPoP key the code is bound to.
    pub dpop_jkt: Option<String>,
    pub expires_at: i64,
    /// Set by the one redemption.
    pub used_at: Option<i64>,
    pub created_at: i64,
}

/// The kind of an OAuth token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(TokenKind::Access),
            "refresh" => Some(TokenKind::Refresh),
            _ => None,
        }
    }
}

/// An access or refresh token (stored as its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthTokenRow {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    pub grant_id: GrantId,
    pub kind: TokenKind,
    pub scope: String,
    /// Thumbprint of the DPoP key the token is bound to.
    pub dpop_jkt: Option<String>,
    pub expires_at: i64,
    /// Refresh tokens: set by the one rotation.
    pub used_at: Option<i64>,
    pub created_at: i64,
}

/// A change to the OpenID Connect provider's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OidcChange {
    /// Records a pending authorization request.
    InsertAuthzRequest(AuthzRequestRow),
    /// Sets the login nonce of an authorization request (refused if the request is gone or
    /// the nonce is taken).
    SetAuthzLoginNonce {
        id: RequestId,
        login_nonce: String,
    },
    /// Deletes an authorization request; nothing happens if it is already gone.
    DeleteAuthzRequest {
        id: RequestId,
    },
    InsertGrant(GrantRow),
    /// Revokes a grant. Revoking a revoked grant succeeds and keeps the first time and
    /// reason; refused only if there is no such grant.
    RevokeGrant {
        id: GrantId,
        reason: String,
        at: i64,
    },
    InsertCode(CodeRow),
    /// Redeems a code if it has not been redeemed (refused when used or missing).
    UseCode {
        code_hash: String,
        at: i64,
    },
    InsertOauthToken(OauthTokenRow),
    /// Uses a refresh token if it has not been used (refused when used, missing or an access
    /// token).
    UseRefreshToken {
        token_hash: String,
        at: i64,
    },
}

macro_rules! authz_request_columns {
    () => {
        "id, client_id, params, pushed, login_nonce, expires_at, created_at"
    };
}

macro_rules! grant_columns {
    () => {
        "id, client_id, account_id, device_id, scope, items, consent_id, auth_time, created_at, revoked_at, revoked_reason"
    };
}

/// A grant's columns with the table alias `g`, after a code's or token's.
macro_rules! joined_grant_columns {
    () => {
        "g.id, g.client_id, g.account_id, g.device_id, g.scope, g.items, g.consent_id, g.auth_time, g.created_at, g.revoked_at, g.revoked_reason"
    };
}

macro_rules! code_columns {
    () => {
        "code_hash, grant_id, redirect_uri, code_challenge, nonce, dpop_jkt, expires_at, used_at, created_at"
    };
}

macro_rules! oauth_token_columns {
    () => {
        "token_hash, grant_id, kind, scope, dpop_jkt, expires_at, used_at, created_at"
    };
}

const SQL_INSERT_AUTHZ_REQUEST: &str = concat!(
    "INSERT INTO oauth_requests (",
    authz_request_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
);
const SQL_AUTHZ_REQUEST_BY_ID: &str = concat!(
    "SELECT ",
    authz_request_columns!(),
    " FROM oauth_requests WHERE id = $1"
);
const SQL_AUTHZ_REQUEST_BY_LOGIN_NONCE: &str = concat!(
    "SELECT ",
    authz_request_columns!(),
    " FROM oauth_requests WHERE login_nonce = $1"
);
const SQL_SET_AUTHZ_LOGIN_NONCE: &str = "UPDATE oauth_requests SET login_nonce = $1 WHERE id = $2";
const SQL_DELETE_AUTHZ_REQUEST: &str = "DELETE FROM oauth_requests WHERE id = $1";
const SQL_INSERT_GRANT: &str = concat!(
    "INSERT INTO oauth_grants (",
    grant_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);
const SQL_GRANT_BY_ID: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM oauth_grants WHERE id = $1"
);
const SQL_GRANTS_OF: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM oauth_grants WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
);
const SQL_LIVE_GRANTS_OF: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM oauth_grants g WHERE g.account_id = $1 AND g.revoked_at IS NULL AND (",
    "EXISTS (SELECT 1 FROM oauth_tokens t WHERE t.grant_id = g.id AND t.expires_at > $2 AND t.used_at IS NULL)",
    " OR EXISTS (SELECT 1 FROM oauth_codes c WHERE c.grant_id = g.id AND c.expires_at > $2 AND c.used_at IS NULL)",
    ") ORDER BY g.created_at DESC, g.id DESC"
);
const SQL_COUNT_ACTIVE_GRANTS: &str =
    "SELECT COUNT(*) FROM oauth_grants WHERE client_id = $1 AND revoked_at IS NULL";
/// Matches any existing grant, so that revoking twice is not a conflict; the first
/// revocation's time and reason stay (the right-hand sides read the row before the update).
const SQL_REVOKE_GRANT: &str = "UPDATE oauth_grants SET revoked_at = COALESCE(revoked_at, $1), revoked_reason = CASE WHEN revoked_at IS NULL THEN $2 ELSE revoked_reason END WHERE id = $3";
const SQL_INSERT_CODE: &str = concat!(
    "INSERT INTO oauth_codes (",
    code_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);
const SQL_CODE: &str = concat!(
    "SELECT c.code_hash, c.grant_id, c.redirect_uri, c.code_challenge, c.nonce, c.dpop_jkt, c.expires_at, c.used_at, c.created_at, ",
    joined_grant_columns!(),
    " FROM oauth_codes c JOIN oauth_grants g ON g.id = c.grant_id WHERE c.code_hash = $1"
);
const SQL_USE_CODE: &str =
    "UPDATE oauth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL";
const SQL_INSERT_OAUTH_TOKEN: &str = concat!(
    "INSERT INTO oauth_tokens (",
    oauth_token_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
);
const SQL_OAUTH_TOKEN: &str = concat!(
    "SELECT t.token_hash, t.grant_id, t.kind, t.scope, t.dpop_jkt, t.expires_at, t.used_at, t.created_at, ",
    joined_grant_columns!(),
    " FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id WHERE t.token_hash = $1"
);
const SQL_USE_REFRESH_TOKEN: &str = "UPDATE oauth_tokens SET used_at = $1 WHERE token_hash = $2 AND kind = 'refresh' AND used_at IS NULL";

/// Codes and tokens are kept for a day after they expire, so that a replay of a used one is
/// still recognised as a replay (and its grant revoked) rather than taken for an unknown one.
const OIDC_RETENTION_SECS: i64 = 86_400;
const SQL_PURGE_AUTHZ_REQUESTS: &str = "DELETE FROM oauth_requests WHERE expires_at < $1";
const SQL_PURGE_CODES: &str = "DELETE FROM oauth_codes WHERE expires_at < $1";
const SQL_PURGE_OAUTH_TOKENS: &str = "DELETE FROM oauth_tokens WHERE expires_at < $1";

fn authz_request_row(r: &mut RowReader) -> Result<AuthzRequestRow> {
    Ok(AuthzRequestRow {
        id: r.id()?,
        client_id: r.id()?,
        params: r.text()?,
        pushed: r.bool()?,
        login_nonce: r.opt_text()?,
        expires_at: r.int()?,
        created_at: r.int()?,
    })
}

fn grant_row(r: &mut RowReader) -> Result<GrantRow> {
    Ok(GrantRow {
        id: r.id()?,
        client_id: r.id()?,
        account_id: r.id()?,
        device_id: r.id()?,
        scope: r.text()?,
        items: r.string_list()?,
        consent_id: r.opt_id()?,
        auth_time: r.int()?,
        created_at: r.int()?,
        revoked_at: r.opt_int()?,
        revoked_reason: r.opt_text()?,
    })
}

fn code_row(r: &mut RowReader) -> Result<CodeRow> {
    Ok(CodeRow {
        code_hash: r.text()?,
        grant_id: r.id()?,
        redirect_uri: r.text()?,
        code_challenge: r.text()?,
        nonce: r.opt_text()?,
        dpop_jkt: r.opt_text()?,
        expires_at: r.int()?,
        used_at: r.opt_int()?,
        created_at: r.int()?,
    })
}

fn oauth_token_row(r: &mut RowReader) -> Result<OauthTokenRow> {
    Ok(OauthTokenRow {
        token_hash: r.text()?,
        grant_id: r.id()?,
        kind: r.parsed("token kind", TokenKind::parse)?,
        scope: r.text()?,
        dpop_jkt: r.opt_text()?,
        expires_at: r.int()?,
        used_at: r.opt_int()?,
        created_at: r.int()?,
    })
}

fn code_with_grant(r: &mut RowReader) -> Result<(CodeRow, GrantRow)> {
    Ok((code_row(r)?, grant_row(r)?))
}

fn token_with_grant(r: &mut RowReader) -> Result<(OauthTokenRow, GrantRow)> {
    Ok((oauth_token_row(r)?, grant_row(r)?))
}

impl Change for OidcChange {
    fn apply(&self, conn: &mut dyn Conn) -> Result<()> {
        match self {
            OidcChange::InsertAuthzRequest(r) => {
                let n = conn.execute(
                    SQL_INSERT_AUTHZ_REQUEST,
                    &params![
                        &r.id,
                        &r.client_id,
                        &r.params,
                        r.pushed,
                        &r.login_nonce,
                        r.expires_at,
                        r.created_at
                    ],
                )?;
                expect_one(n, "insert authorization request")
            }
            OidcChange::SetAuthzLoginNonce { id, login_nonce } => {
                let n = conn.execute(SQL_SET_AUTHZ_LOGIN_NONCE, &params![login_nonce, id])?;
                expect_one(n, "set authorization request login nonce")
            }
            OidcChange::DeleteAuthzRequest { id } => {
                conn.execute(SQL_DELETE_AUTHZ_REQUEST, &params![id])?;
                Ok(())
            }
            OidcChange::InsertGrant(g) => {
                let n = conn.execute(
                    SQL_INSERT_GRANT,
                    &params![
                        &g.id,
                        &g.client_id,
                        &g.account_id,
                        &g.device_id,
                        &g.scope,
                        string_list(&g.items),
                        g.consent_id.as_ref(),
                        g.auth_time,
                        g.created_at,
                        g.revoked_at,
                        &g.revoked_reason,
                    ],
                )?;
                expect_one(n, "insert grant")
            }
            OidcChange::RevokeGrant { id, reason, at } => {
                let n = conn.execute(SQL_REVOKE_GRANT, &params![*at, reason, id])?;
                expect_one(n, "revoke grant")
            }
            OidcChange::InsertCode(c) => {
                let n = conn.execute(
                    SQL_INSERT_CODE,
                    &params![
                        &c.code_hash,
                        &c.grant_id,
                        &c.redirect_uri,
                        &c.code_challenge,
                        &c.nonce,
                        &c.dpop_jkt,
                        c.expires_at,
                        c.used_at,
                        c.created_at,
                    ],
                )?;
                expect_one(n, "insert code")
            }
            OidcChange::UseCode { code_hash, at } => {
                let n = conn.execute(SQL_USE_CODE, &params![*at, code_hash])?;
                expect_one(n, "use code (used or unknown)")
            }
            OidcChange::InsertOauthToken(t) => {
                let n = conn.execute(
                    SQL_INSERT_OAUTH_TOKEN,
                    &params![
                        &t.token_hash,
                        &t.grant_id,
                        t.kind.as_str(),
                        &t.scope,
                        &t.dpop_jkt,
                        t.expires_at,
                        t.used_at,
                        t.created_at,
                    ],
                )?;
                expect_one(n, "insert oauth token")
            }
            OidcChange::UseRefreshToken { token_hash, at } => {
                let n = conn.execute(SQL_USE_REFRESH_TOKEN, &params![*at, token_hash])?;
                expect_one(n, "use refresh token (used or unknown)")
            }
        }
    }
}

#[async_trait]
impl OidcStore for SqlStore {
    async fn authz_request(&self, id: &RequestId) -> Result<Option<AuthzRequestRow>> {
        let id = id.clone();
        self.db
            .read(move |c| {
                one(
                    c.query_opt(SQL_AUTHZ_REQUEST_BY_ID, &params![&id])?,
                    authz_request_row,
                )
            })
            .await
    }

    async fn authz_request_by_login_nonce(&self, nonce: &str) -> Result<Option<AuthzRequestRow>> {
        let nonce = nonce.to_owned();
        self.db
            .read(move |c| {
                one(
                    c.query_opt(SQL_AUTHZ_REQUEST_BY_LOGIN_NONCE, &params![&nonce])?,
                    authz_request_row,
                )
            })
            .await
    }

    async fn grant(&self, id: &GrantId) -> Result<Option<GrantRow>> {
        let id = id.clone();
        self.db
            .read(move |c| one(c.query_opt(SQL_GRANT_BY_ID, &params![&id])?, grant_row))
            .await
    }

    async fn code(&self, code_hash: &str) -> Result<Option<(CodeRow, GrantRow)>> {
        let code_hash = code_hash.to_owned();
        self.db
            .read(move |c| {
                one(
                    c.query_opt(SQL_CODE, &params![&code_hash])?,
                    code_with_grant,
                )
            })
            .await
    }

    async fn oauth_token(&self, token_hash: &str) -> Result<Option<(OauthTokenRow, GrantRow)>> {
        let token_hash = token_hash.to_owned();
        self.db
            .read(move |c| {
                one(
                    c.query_opt(SQL_OAUTH_TOKEN, &params![&token_hash])?,
                    token_with_grant,
                )
            })
            .await
    }

    async fn grants_of(&self, account_id: &AccountId, limit: u32) -> Result<Vec<GrantRow>> {
        let account_id = account_id.clone();
        self.db
            .read(move |c| {
                all(
                    c.query(SQL_GRANTS_OF, &params![&account_id, limit])?,
                    grant_row,
                )
            })
            .await
    }

    async fn live_grants_of(&self, account_id: &AccountId, now: i64) -> Result<Vec<GrantRow>> {
        let account_id = account_id.clone();
        self.db
            .read(move |c| {
                all(
                    c.query(SQL_LIVE_GRANTS_OF, &params![&account_id, now])?,
                    grant_row,
                )
            })
            .await
    }

    async fn count_active_grants(&self, client_id: &ServiceId) -> Result<u64> {
        let client_id = client_id.clone();
        self.db
            .read(move |c| {
                let n = c.query_int(SQL_COUNT_ACTIVE_GRANTS, &params![&client_id])?;
                u64::try_from(n).map_err(|_| StoreError::Corrupt("negative count".into()))
            })
            .await
    }

    async fn purge_oidc(&self, now: i64) -> Result<u64> {
        self.db
            .write(move |c| {
                let retained = now.saturating_sub(OIDC_RETENTION_SECS);
                let mut deleted = 0;
                for (sql, before) in [
                    (SQL_PURGE_AUTHZ_REQUESTS, now),
                    (SQL_PURGE_CODES, retained),
                    (SQL_PURGE_OAUTH_TOKENS, retained),
                ] {
                    deleted += c.execute(sql, &params![before])?;
                }
                Ok(deleted)
            })
            .await
    }
}
