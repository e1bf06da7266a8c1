//! The resident's view of the services they are logged in to: each live login grant (an
//! OpenID Connect grant a client can still use), and ending one on its own. Ending a grant
//! stops its refresh and access tokens at once and is a ledger leaf.

use super::Oidc;
use crate::identity::Session;
use crate::{Outcome, Refusal, now};
use serde::Serialize;
use tsunagu_core::{Code, DeviceId, GrantId, ServiceId};
use tsunagu_store::{Commit, GrantRow};

/// Why a grant the resident ended ended (its `revoked_reason`).
pub const RESIDENT_ENDED_REASON: &str = "ended by the resident";

/// A service the resident is logged in to.
#[derive(Debug, Clone, Serialize)]
pub struct LoginView {
    pub grant_id: GrantId,
    pub client_id: ServiceId,
    /// The service's name, as the directory has it (its id when it is gone).
    pub service_name: String,
    pub scope: String,
    /// The items (claims) the service may read.
    pub items: Vec<String>,
    /// The device the resident logged in with.
    pub device_id: DeviceId,
    pub auth_time: i64,
    pub created_at: i64,
}

/// A login grant after the resident ended it.
#[derive(Debug, Clone, Serialize)]
pub struct EndedGrant {
    pub grant_id: GrantId,
    pub client_id: ServiceId,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

impl Oidc {
    /// `GET /v1/me/logins`: the services the resident is logged in to, newest first.
    pub async fn logins(&self, session: &Session) -> Outcome<Vec<LoginView>> {
        let grants = self
            .store
            .live_grants_of(&session.account_id, now())
            .await?;
        let mut out = Vec::with_capacity(grants.len());
        for g in grants {
            out.push(self.view(g).await?);
        }
        Ok(out)
    }

    async fn view(&self, g: GrantRow) -> Outcome<LoginView> {
        let service_name = self
            .directory
            .get(&g.client_id)
            .await?
            .map(|e| e.row.name.clone())
            .unwrap_or_else(|| g.client_id.to_string());
        Ok(LoginView {
            grant_id: g.id,
            client_id: g.client_id,
            service_name,
            scope: g.scope,
            items: g.items,
            device_id: g.device_id,
            auth_time: g.auth_time,
            created_at: g.created_at,
        })
    }

    /// `POST /v1/me/logins/{id}/revoke`: ends one login grant of the resident's. Ending an
    /// ended grant answers as the first time did; another resident's grant is `not_found`.
    pub async fn end_login(&self, session: &Session, id: &GrantId) -> Outcome<EndedGrant> {
        let grant = self
            .store
            .grant(id)
            .await?
            .filter(|g| g.account_id == session.account_id)
            .ok_or_else(|| Refusal::new(Code::NotFound, "no such login on this account"))?;
        if grant.revoked_at.is_none() {
            self.committer
                .commit(super::revoke_grant_in(
                    Commit::new(),
                    &self.keys,
                    &grant,
                    RESIDENT_ENDED_REASON,
                    now(),
                ))
                .await?;
            metrics::counter!("tsunagu_oidc_grants_revoked_total", "reason" => RESIDENT_ENDED_REASON)
                .increment(1);
        }
        let grant = self
            .store
            .grant(id)
            .await?
            .ok_or_else(|| Refusal::new(Code::NotFound, "no such login"))?;
        Ok(EndedGrant {
            grant_id: grant.id,
            client_id: grant.client_id,
            revoked_at: grant.revoked_at,
            revoked_reason: grant.revoked_reason,
        })
    }
}
