//! Services: applications, the policy lint, the directory of registered services and their
//! purposes, and what a service or resident may see of them.

use crate::app::{App, now};
use crate::error::ApiError;
use crate::ledger::leaf;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tsunagu_core::Code;
use tsunagu_core::event::Event;
use tsunagu_core::lint::{self, Finding, LintPolicy, ProviderView, Severity};
use tsunagu_core::service::{
    Application, PLATFORM_PROVIDER, Purpose, ServiceKind, ServiceStatus,
    TOKEN_AUTH_CLIENT_SECRET_BASIC, Terms,
};
use tsunagu_crypto::jwk::{JwkSet, KeyMaterial};
use tsunagu_crypto::{jcs, random, sha256};
use tsunagu_store::{Commit, PurposeRow, ServiceChange, ServiceRow, Store, StoreError};

/// How long a cached service definition is trusted before it is read again. Statuses that
/// decide tickets are never taken from this cache.
const CACHE_TTL: Duration = Duration::from_secs(2);

/// A registered service as the platform uses it.
#[derive(Debug)]
pub struct ServiceEntry {
    pub row: ServiceRow,
    pub application: Application,
    pub jwks: JwkSet,
    pub purposes: Vec<PurposeEntry>,
    fetched: Instant,
}

/// One of a consumer's purposes.
#[derive(Debug, Clone)]
pub struct PurposeEntry {
    pub row: PurposeRow,
    pub purpose: Purpose,
}

impl ServiceEntry {
    pub fn purpose(&self, id: &str) -> Option<&PurposeEntry> {
        self.purposes.iter().find(|p| p.row.purpose_id == id)
    }

    /// The offered item's Japanese title, or the item name.
    pub fn item_title(&self, item: &str) -> String {
        self.application
            .offers
            .iter()
            .find(|o| o.item == item)
            .map(|o| o.title_ja.clone())
            .unwrap_or_else(|| item.to_owned())
    }
}

/// A cache of service definitions (applications, keys, purposes).
#[derive(Default)]
pub struct Directory {
    entries: RwLock<HashMap<String, Arc<ServiceEntry>>>,
}

impl Directory {
    /// The service, from the cache or the store.
    pub async fn get(
        &self,
        store: &dyn Store,
        id: &str,
    ) -> Result<Option<Arc<ServiceEntry>>, StoreError> {
        if let Some(entry) = self.entries.read().expect("directory lock").get(id)
            && entry.fetched.elapsed() < CACHE_TTL
        {
            return Ok(Some(entry.clone()));
        }
        let Some(row) = store.service(id).await? else {
            return Ok(None);
        };
        let application: Application = serde_json::from_str(&row.application)
            .map_err(|e| StoreError::Corrupt(format!("service {id} application: {e}")))?;
        let jwks_value: Value = serde_json::from_str(&row.jwks)
            .map_err(|e| StoreError::Corrupt(format!("service {id} jwks: {e}")))?;
        let jwks = JwkSet::from_value(&jwks_value)
            .map_err(|e| StoreError::Corrupt(format!("service {id} jwks: {e}")))?;
        let purposes = store
            .purposes_of(id)
            .await?
            .into_iter()
            .map(|row| {
                let purpose: Purpose = serde_json::from_str(&row.definition)
                    .map_err(|e| StoreError::Corrupt(format!("purpose {}: {e}", row.purpose_id)))?;
                Ok(PurposeEntry { row, purpose })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let entry = Arc::new(ServiceEntry {
            row,
            application,
            jwks,
            purposes,
            fetched: Instant::now(),
        });
        self.entries
            .write()
            .expect("directory lock")
            .insert(id.to_owned(), entry.clone());
        Ok(Some(entry))
    }

    /// Forgets a service (after this process changed it).
    pub fn invalidate(&self, id: &str) {
        self.entries.write().expect("directory lock").remove(id);
    }
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(Code::ApplicationInvalid, detail)
}

/// The SHA-256 (hex) of the terms of a purpose: what a resident's consent refers to.
pub fn terms_sha256(terms: &Terms) -> String {
    hex::encode(sha256(
        &jcs::to_vec(terms).expect("terms serialize to JSON"),
    ))
}

fn lint_policy(app: &App) -> LintPolicy {
    let limits = &app.config.governance.max_retention_days;
    LintPolicy {
        max_retention_open: limits.open,
        max_retention_limited: limits.limited,
        max_retention_closed: limits.closed,
    }
}

/// `POST /v1/services`: validates, lints and records an application.
pub async fn apply(app: &App, body: &[u8]) -> Result<Value, ApiError> {
    let application: Application =
        serde_json::from_slice(body).map_err(|e| invalid(format!("application: {e}")))?;
    application.validate().map_err(invalid)?;
    let jwks = JwkSet::from_value(&application.jwks).map_err(|e| invalid(format!("jwks: {e}")))?;
    if !jwks
        .keys
        .iter()
        .any(|k| matches!(k.material, KeyMaterial::P256 { .. }))
    {
        return Err(invalid(
            "jwks must hold at least one P-256 key (ES256): it signs the service's client assertions and payloads",
        ));
    }
    let service_id = format!(
        "svc_{}",
        random::token(9).map_err(|e| ApiError::internal("id", e))?
    );
    // A service that authenticates at the token endpoint with `client_secret_basic` gets a
    // secret now, shown once in the answer; only its SHA-256 is stored (crate::oidc::client).
    let client_secret = if application.token_auth_method() == TOKEN_AUTH_CLIENT_SECRET_BASIC {
        Some(random::token(32).map_err(|e| ApiError::internal("client secret", e))?)
    } else {
        None
    };

    // What the lint needs to know about the providers the purposes name.
    let mut providers: HashMap<String, (ProviderView, String)> = HashMap::new();
    for purpose in &application.purposes {
        if purpose.provider == PLATFORM_PROVIDER || providers.contains_key(&purpose.provider) {
            continue;
        }
        if let Some(entry) = app
            .directory
            .get(app.store.as_ref(), &purpose.provider)
            .await?
        {
            providers.insert(
                purpose.provider.clone(),
                (
                    ProviderView {
                        status: entry.row.status,
                        offers: entry.application.offers.clone(),
                    },
                    entry.row.name.clone(),
                ),
            );
        }
    }
    let own = ProviderView {
        status: ServiceStatus::PendingReview,
        offers: application.offers.clone(),
    };
    let lookup = |id: &str| -> Option<ProviderView> {
        if id == service_id && application.kind.provides() {
            return Some(own.clone());
        }
        providers.get(id).map(|(view, _)| view.clone())
    };
    let findings: Vec<Finding> = lint::lint(&application, &lint_policy(app), &lookup);
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count() as u32;

    let t = now();
    let application_json =
        jcs::to_vec(&application).map_err(|e| ApiError::internal("application", e))?;
    let mut changes = tsunagu_store::changes![ServiceChange::InsertService(ServiceRow {
        id: service_id.clone(),
        name: application.name.clone(),
        organization: application.organization.clone(),
        contact: application.contact.clone(),
        kind: application.kind,
        status: ServiceStatus::PendingReview,
        application: String::from_utf8(application_json.clone())
            .map_err(|e| ApiError::internal("application", e))?,
        jwks: application.jwks.to_string(),
        endpoint: application.endpoint.clone(),
        lint: serde_json::to_string(&findings).map_err(|e| ApiError::internal("lint", e))?,
        round: 0,
        created_at: t,
        updated_at: t,
        client_secret_hash: client_secret
            .as_ref()
            .map(|secret| hex::encode(sha256(secret.as_bytes()))),
    })];
    for purpose in &application.purposes {
        let provider_name = if purpose.provider == PLATFORM_PROVIDER {
            "tsunagu".to_owned()
        } else if purpose.provider == service_id {
            application.name.clone()
        } else {
            providers
                .get(&purpose.provider)
                .map(|(_, name)| name.clone())
                .unwrap_or_default()
        };
        let terms = Terms {
            consumer: service_id.clone(),
            consumer_name: application.name.clone(),
            provider: purpose.provider.clone(),
            provider_name,
            purpose: purpose.clone(),
        };
        changes.push(tsunagu_store::AnyChange::from(
            ServiceChange::InsertPurpose(PurposeRow {
                consumer_id: service_id.clone(),
                purpose_id: purpose.id.clone(),
                provider_id: purpose.provider.clone(),
                legal_basis: purpose.legal_basis,
                items: purpose.items.clone(),
                definition: serde_json::to_string(purpose)
                    .map_err(|e| ApiError::internal("purpose", e))?,
                terms_sha256: terms_sha256(&terms),
            }),
        ));
    }
    let commit = Commit {
        changes,
        leaves: vec![leaf(
            Event::ServiceApplied {
                service: service_id.clone(),
                kind: application.kind,
                application_sha256: hex::encode(sha256(&application_json)),
                lint_errors: errors,
            },
            &[],
            t,
        )],
    };
    app.committer.commit(commit).await?;
    metrics::counter!("tsunagu_service_applications_total").increment(1);
    let mut answer = json!({
        "service_id": service_id,
        "status": ServiceStatus::PendingReview,
        "lint": findings,
    });
    if let Some(secret) = client_secret {
        answer["client_secret"] = Value::String(secret);
    }
    Ok(answer)
}

/// What anyone may read about a service.
pub fn public_view(entry: &ServiceEntry) -> Value {
    let lint: Value = serde_json::from_str(&entry.row.lint).unwrap_or(Value::Array(vec![]));
    json!({
        "service_id": entry.row.id,
        "name": entry.row.name,
        "organization": entry.row.organization,
        "contact": entry.row.contact,
        "kind": entry.row.kind,
        "status": entry.row.status,
        "round": entry.row.round,
        "lint": lint,
        "endpoint": entry.row.endpoint,
        "jwks": entry.jwks.to_value(),
        "redirect_uris": entry.application.redirect_uris,
        "offers": entry.application.offers,
        "purposes": entry.purposes.iter().map(|p| {
            let mut v = serde_json::to_value(&p.purpose).unwrap_or(Value::Null);
            v["terms_sha256"] = Value::String(p.row.terms_sha256.clone());
            v
        }).collect::<Vec<_>>(),
        "security": entry.application.security,
        "created_at": entry.row.created_at,
        "updated_at": entry.row.updated_at,
    })
}

/// `GET /v1/services/{id}`.
pub async fn get(app: &App, id: &str) -> Result<Value, ApiError> {
    let entry = app
        .directory
        .get(app.store.as_ref(), id)
        .await?
        .ok_or_else(|| ApiError::new(Code::UnknownService, format!("no service `{id}`")))?;
    Ok(public_view(&entry))
}

/// `GET /v1/services?status=`.
pub async fn list(app: &App, status: Option<&str>) -> Result<Value, ApiError> {
    let status = match status {
        None => None,
        Some(s) => Some(
            ServiceStatus::parse(s)
                .ok_or_else(|| ApiError::new(Code::InvalidRequest, format!("status `{s}`")))?,
        ),
    };
    let rows = app.store.services(status).await?;
    Ok(json!({
        "services": rows.iter().map(|r| json!({
            "service_id": r.id,
            "name": r.name,
            "organization": r.organization,
            "kind": r.kind,
            "status": r.status,
            "created_at": r.created_at,
        })).collect::<Vec<_>>(),
    }))
}

/// The kind check for exchange calls.
pub fn require_kind(entry: &ServiceEntry, consumer: bool) -> Result<(), ApiError> {
    let kind: ServiceKind = entry.row.kind;
    let ok = if consumer {
        kind.consumes()
    } else {
        kind.provides()
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::Forbidden,
            format!(
                "service `{}` is a {} and may not do this",
                entry.row.id,
                kind.as_str()
            ),
        ))
    }
}

/// `PUT /v1/services/{id}/registration` and the service console: what a service may change
/// about itself without a new review. Absent fields stay as they are; an empty `endpoint`
/// removes it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationUpdate {
    #[serde(default)]
    pub jwks: Option<Value>,
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// The SHA-256 (hex) of the JCS of a JWKS, as the ledger records it.
fn jwks_sha256(jwks: &Value) -> Result<String, ApiError> {
    Ok(hex::encode(sha256(
        &jcs::to_vec(jwks).map_err(|e| ApiError::internal("jwks", e))?,
    )))
}

/// Replaces a service's keys, redirect URIs or endpoint. Validated as an application is
/// (URI rules, a provider's endpoint, a JWKS of public keys); the new JWKS must keep a P-256
/// signing key, or the service could no longer authenticate. Purposes, offers and the
/// review state are not touched: those change only by a new application. The change and its
/// ledger leaf are committed together; nothing is committed when nothing changes.
pub async fn update_registration(
    app: &App,
    service_id: &str,
    update: &RegistrationUpdate,
) -> Result<Value, ApiError> {
    let entry = app
        .directory
        .get(app.store.as_ref(), service_id)
        .await?
        .ok_or_else(|| ApiError::new(Code::UnknownService, format!("no service `{service_id}`")))?;
    let mut application = entry.application.clone();
    let mut fields: Vec<String> = Vec::new();
    if let Some(jwks) = &update.jwks {
        let set = JwkSet::from_value(jwks).map_err(|e| invalid(format!("jwks: {e}")))?;
        if !set.keys.iter().any(|k| {
            matches!(k.material, KeyMaterial::P256 { .. }) && k.use_.as_deref() != Some("enc")
        }) {
            return Err(invalid(
                "jwks must keep at least one P-256 signing key (ES256): it authenticates the service",
            ));
        }
        if set.to_value() != entry.jwks.to_value() {
            application.jwks = set.to_value();
            fields.push("jwks".into());
        }
    }
    let lines = |uris: &[String]| -> Vec<String> {
        uris.iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect()
    };
    if let Some(uris) = &update.redirect_uris {
        let uris = lines(uris);
        if uris != application.redirect_uris {
            application.redirect_uris = uris;
            fields.push("redirect_uris".into());
        }
    }
    if let Some(uris) = &update.post_logout_redirect_uris {
        let uris = lines(uris);
        if uris != application.post_logout_redirect_uris {
            application.post_logout_redirect_uris = uris;
            fields.push("post_logout_redirect_uris".into());
        }
    }
    if let Some(endpoint) = &update.endpoint {
        let endpoint = Some(endpoint.trim().to_owned()).filter(|e| !e.is_empty());
        if endpoint != application.endpoint {
            application.endpoint = endpoint;
            fields.push("endpoint".into());
        }
    }
    application.validate().map_err(invalid)?;

    let t = now();
    if !fields.is_empty() {
        let application_json =
            jcs::to_vec(&application).map_err(|e| ApiError::internal("application", e))?;
        let commit = Commit {
            changes: tsunagu_store::changes![ServiceChange::UpdateServiceRegistration {
                id: service_id.to_owned(),
                application: String::from_utf8(application_json)
                    .map_err(|e| ApiError::internal("application", e))?,
                jwks: application.jwks.to_string(),
                endpoint: application.endpoint.clone(),
                updated_at: t,
            }],
            leaves: vec![leaf(
                Event::ServiceRegistrationChanged {
                    service: service_id.to_owned(),
                    fields: fields.clone(),
                    jwks_sha256: jwks_sha256(&application.jwks)?,
                },
                &[],
                t,
            )],
        };
        let committed = app.committer.commit(commit).await;
        app.directory.invalidate(service_id);
        match committed {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ApiError::new(
                    Code::UnknownService,
                    format!("no service `{service_id}`"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        metrics::counter!("tsunagu_service_registration_changes_total").increment(1);
    }
    let jwks = JwkSet::from_value(&application.jwks).map_err(|e| invalid(format!("jwks: {e}")))?;
    Ok(json!({
        "service_id": service_id,
        "changed": fields,
        "kids": jwks.keys.iter().map(|k| k.kid.clone().unwrap_or_else(|| k.thumbprint())).collect::<Vec<_>>(),
        "redirect_uris": application.redirect_uris,
        "post_logout_redirect_uris": application.post_logout_redirect_uris,
        "endpoint": application.endpoint,
        "updated_at": if fields.is_empty() { entry.row.updated_at } else { t },
    }))
}

/// `POST /v1/services/{id}/client_secret` and the service console: a new client secret for
/// a service that registered `client_secret_basic`. The secret is returned once; only its
/// SHA-256 (hex) is stored, and the old secret stops working at once.
pub async fn rotate_client_secret(app: &App, service_id: &str) -> Result<Value, ApiError> {
    let entry = app
        .directory
        .get(app.store.as_ref(), service_id)
        .await?
        .ok_or_else(|| ApiError::new(Code::UnknownService, format!("no service `{service_id}`")))?;
    if entry.application.token_auth_method() != TOKEN_AUTH_CLIENT_SECRET_BASIC {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "this service authenticates with private_key_jwt and has no client secret",
        ));
    }
    let secret = random::token(32).map_err(|e| ApiError::internal("client secret", e))?;
    let t = now();
    let commit = Commit {
        changes: tsunagu_store::changes![ServiceChange::SetClientSecret {
            service_id: service_id.to_owned(),
            secret_hash: Some(hex::encode(sha256(secret.as_bytes()))),
            updated_at: t,
        }],
        leaves: vec![leaf(
            Event::ServiceRegistrationChanged {
                service: service_id.to_owned(),
                fields: vec!["client_secret".into()],
                jwks_sha256: jwks_sha256(&entry.application.jwks)?,
            },
            &[],
            t,
        )],
    };
    let committed = app.committer.commit(commit).await;
    app.directory.invalidate(service_id);
    match committed {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                Code::UnknownService,
                format!("no service `{service_id}`"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    metrics::counter!("tsunagu_client_secret_rotations_total").increment(1);
    Ok(json!({
        "service_id": service_id,
        "client_secret": secret,
        "rotated_at": t,
    }))
}
