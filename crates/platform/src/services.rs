//! Services: applications and the policy lint, registration updates, client secrets, and
//! what a service or resident may see of them.

use crate::config::RetentionLimits;
use crate::directory::{Directory, ServiceEntry, may_sign};
use crate::ledger::{Committer, leaf};
use crate::{Outcome, Refusal, now};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use tsunagu_core::event::Event;
use tsunagu_core::lint::{self, Finding, LintPolicy, ProviderView, Severity};
use tsunagu_core::service::{
    Application, PLATFORM_PROVIDER, ServiceKind, ServiceStatus, TOKEN_AUTH_CLIENT_SECRET_BASIC,
    Terms,
};
use tsunagu_core::{Code, ServiceId};
use tsunagu_crypto::jwk::JwkSet;
use tsunagu_crypto::{jcs, jws, random, sha256};
use tsunagu_store::{Commit, PurposeRow, ServiceChange, ServiceRow, Store, StoreError};

/// An application as the platform reads it: its JWKS parsed into public keys.
pub type ServiceApplication = Application<JwkSet>;

/// The SHA-256 (hex) of the terms of a purpose: what a resident's consent refers to.
pub fn terms_sha256(terms: &Terms) -> String {
    hex::encode(sha256(
        &jcs::to_vec(terms).expect("terms serialize to JSON"),
    ))
}

fn invalid(detail: impl Into<String>) -> Refusal {
    Refusal::new(Code::ApplicationInvalid, detail)
}

/// An accepted application.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub service_id: ServiceId,
    pub status: ServiceStatus,
    pub lint: Vec<Finding>,
    /// For a service that registered `client_secret_basic`: its secret, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl Applied {
    /// Lint findings of severity `error` (the committee should not approve over them).
    pub fn errors(&self) -> usize {
        self.lint
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }
}

/// What a service may change about itself without a new review. Absent fields stay as they
/// are; an empty `endpoint` removes it.
#[derive(Debug, Clone, Default)]
pub struct RegistrationUpdate {
    /// The new JWKS.
    pub jwks: Option<JwkSet>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub endpoint: Option<String>,
    /// The client certificate for mutual TLS (PEM, or its `x5t#S256`); empty removes it.
    pub tls_client_certificate: Option<String>,
    /// A new acceptance of the contract obligations (see
    /// [`ServiceApplication::obligations_acceptance`]), by a key of the (new) JWKS.
    pub obligations_acceptance: Option<String>,
    /// The `x5t#S256` of the client certificate the update's connection presented: a new
    /// `tls_client_certificate` must be this one.
    pub presented_client_cert: Option<String>,
}

/// A registration after an update.
#[derive(Debug, Clone, Serialize)]
pub struct Registration {
    pub service_id: ServiceId,
    /// The fields that changed (none: nothing was committed).
    pub changed: Vec<String>,
    pub kids: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub endpoint: Option<String>,
    /// The `x5t#S256` of the registered client certificate (mutual TLS).
    pub tls_client_certificate_sha256: Option<String>,
    /// Whether the service has accepted the contract obligations.
    pub obligations_accepted: bool,
    pub updated_at: i64,
}

/// A new client secret, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct ClientSecret {
    pub service_id: ServiceId,
    pub client_secret: String,
    pub rotated_at: i64,
}

impl ServiceEntry {
    /// The lint findings recorded with the application.
    pub fn findings(&self) -> Vec<Finding> {
        serde_json::from_str(&self.row.lint).unwrap_or_default()
    }

    /// Lint findings of severity `error`.
    pub fn lint_errors(&self) -> usize {
        self.findings()
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    /// The kind check for exchange calls: a consumer asks for tickets, a provider answers.
    pub fn require_kind(&self, consumer: bool) -> Outcome<()> {
        let kind: ServiceKind = self.row.kind;
        let ok = if consumer {
            kind.consumes()
        } else {
            kind.provides()
        };
        if ok {
            Ok(())
        } else {
            Err(Refusal::new(
                Code::Forbidden,
                format!(
                    "service `{}` is a {} and may not do this",
                    self.row.id,
                    kind.as_str()
                ),
            ))
        }
    }
}

/// The SHA-256 (hex) of the JCS of a JWKS, as the ledger records it.
fn jwks_sha256(jwks: &JwkSet) -> Outcome<String> {
    Ok(hex::encode(sha256(
        &jcs::to_vec(&jwks.to_value()).map_err(|e| Refusal::internal("jwks", e))?,
    )))
}

/// The `x5t#S256` of a client certificate a service registers (PEM, or the thumbprint
/// itself in canonical base64url).
fn client_cert_sha256(given: Option<&str>) -> Outcome<Option<String>> {
    let Some(given) = given.map(str::trim).filter(|g| !g.is_empty()) else {
        return Ok(None);
    };
    let thumbprint = if tsunagu_core::service::is_x5t_s256(given) {
        let canonical = tsunagu_crypto::b64::url_decode(given)
            .ok()
            .filter(|d| d.len() == 32)
            .is_some_and(|d| tsunagu_crypto::b64::url_encode(d) == given);
        if !canonical {
            return Err(invalid(
                "tls_client_certificate: not the base64url (no padding) of a SHA-256",
            ));
        }
        given.to_owned()
    } else {
        tsunagu_crypto::x509::x5t_s256_of_pem(given)
            .map_err(|e| invalid(format!("tls_client_certificate: {e}")))?
    };
    Ok(Some(thumbprint))
}

/// Refuses to register `thumbprint` unless the request's connection presented it: a
/// thumbprint is no secret (every provider sees it in tickets), so registering one takes
/// proof of holding its key, or anyone could claim another service's certificate.
fn require_possession(thumbprint: Option<&str>, presented: Option<&str>) -> Outcome<()> {
    match thumbprint {
        Some(t) if presented != Some(t) => Err(invalid(
            "tls_client_certificate: register a client certificate over a TLS connection made \
             with it (proof of possession of its key); this request's connection presented \
             another certificate or none",
        )),
        _ => Ok(()),
    }
}

fn cert_taken() -> Refusal {
    invalid(
        "tls_client_certificate: another service registered this certificate; each service \
         connects with a certificate of its own",
    )
}

/// Reads an application (`POST /v1/services`'s body, or the console's form made into one);
/// the message names the field.
pub fn parse_application(json: &[u8]) -> Outcome<ServiceApplication> {
    serde_json::from_slice(json).map_err(|e| invalid(format!("application: {e}")))
}

/// Reads a JWKS given as JSON text (a registration update).
pub fn parse_jwks(json: &str) -> Outcome<JwkSet> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| invalid(format!("jwks: not valid JSON ({e})")))?;
    JwkSet::from_value(&value).map_err(|e| invalid(format!("jwks: {e}")))
}

/// A JWKS is usable when a key of it may sign the service's assertions and payloads.
fn require_signing_key(jwks: &JwkSet, what: &str) -> Outcome<()> {
    if jwks.keys.iter().any(may_sign) {
        Ok(())
    } else {
        Err(invalid(format!(
            "jwks must {what} at least one P-256 signing key (ES256, not `use: enc`): it signs the service's client assertions and payloads"
        )))
    }
}

/// Applications, registrations and the directory's answers.
#[derive(Clone)]
pub struct Services {
    store: Arc<dyn Store>,
    committer: Committer,
    directory: Arc<Directory>,
    limits: RetentionLimits,
}

/// The hex SHA-256 of the contract obligations' text
/// ([`tsunagu_core::service::obligations_text`]): what a service signs to accept them.
pub fn obligations_sha256() -> String {
    hex::encode(sha256(tsunagu_core::service::obligations_text().as_bytes()))
}

/// Checks a service's acceptance of the obligations: a compact JWS by a key of `jwks`
/// (named by `kid`) over `{"obligations_sha256": <the current hash>}`. The error says why not.
pub fn verify_obligations_acceptance(jwks: &JwkSet, acceptance: &str) -> Result<(), String> {
    let token = jws::parse(acceptance).map_err(|e| format!("not a compact JWS: {e}"))?;
    let kid = token
        .kid
        .as_deref()
        .ok_or("the header needs `kid`, a key of the application's JWKS")?;
    let key = jwks
        .find(kid)
        .ok_or_else(|| format!("`{kid}` is not a key of the application's JWKS"))?;
    token
        .verify(key)
        .map_err(|_| "the signature does not verify with that key".to_owned())?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Acceptance {
        obligations_sha256: String,
    }
    let payload: Acceptance = token
        .payload_as()
        .map_err(|e| format!("the payload must be {{\"obligations_sha256\": …}}: {e}"))?;
    let current = obligations_sha256();
    if payload.obligations_sha256 != current {
        return Err(format!(
            "it accepts obligations with hash {}, not the current ones ({current}): \
             read GET /v1/governance/obligations and sign again",
            payload.obligations_sha256
        ));
    }
    Ok(())
}

impl Services {
    pub fn new(
        store: Arc<dyn Store>,
        committer: Committer,
        directory: Arc<Directory>,
        limits: RetentionLimits,
    ) -> Services {
        Services {
            store,
            committer,
            directory,
            limits,
        }
    }

    fn lint_policy(&self) -> LintPolicy {
        LintPolicy {
            max_retention_open: self.limits.open,
            max_retention_limited: self.limits.limited,
            max_retention_closed: self.limits.closed,
        }
    }

    /// `POST /v1/services`: validates, lints and records an application.
    pub async fn apply(&self, application: ServiceApplication) -> Outcome<Applied> {
        self.apply_over(application, None).await
    }

    /// [`Services::apply`] for a request whose connection presented the client certificate
    /// `presented` (its `x5t#S256`): the only one the application may register.
    pub async fn apply_over(
        &self,
        application: ServiceApplication,
        presented: Option<&str>,
    ) -> Outcome<Applied> {
        application.validate().map_err(invalid)?;
        require_signing_key(&application.jwks, "hold")?;
        let service_id = ServiceId::from(format!(
            "svc_{}",
            random::token(9).map_err(|e| Refusal::internal("id", e))?
        ));
        // A service that authenticates at the token endpoint with `client_secret_basic`
        // gets a secret now, shown once in the answer; only its SHA-256 is stored.
        let client_secret = if application.token_auth_method() == TOKEN_AUTH_CLIENT_SECRET_BASIC {
            Some(random::token(32).map_err(|e| Refusal::internal("client secret", e))?)
        } else {
            None
        };

        // What the lint needs to know about the providers the purposes name.
        let mut providers: HashMap<String, (ProviderView, String)> = HashMap::new();
        for purpose in &application.purposes {
            if purpose.provider == PLATFORM_PROVIDER || providers.contains_key(&purpose.provider) {
                continue;
            }
            if let Some(entry) = self.directory.find(&purpose.provider).await? {
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
            if id == service_id.as_str() && application.kind.provides() {
                return Some(own.clone());
            }
            providers.get(id).map(|(view, _)| view.clone())
        };
        let mut findings: Vec<Finding> = lint::lint(&application, &self.lint_policy(), &lookup);
        match application.obligations_acceptance.as_deref() {
            None => findings.push(lint::obligations_not_accepted()),
            Some(acceptance) => verify_obligations_acceptance(&application.jwks, acceptance)
                .map_err(|e| invalid(format!("obligations_acceptance: {e}")))?,
        }
        let errors = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count() as u32;

        let client_cert = client_cert_sha256(application.tls_client_certificate.as_deref())?;
        require_possession(client_cert.as_deref(), presented)?;
        self.require_cert_free(client_cert.as_deref(), None).await?;

        let t = now();
        let application_json =
            jcs::to_vec(&application).map_err(|e| Refusal::internal("application", e))?;
        let mut commit = Commit::new().change(ServiceChange::InsertService(ServiceRow {
            id: service_id.clone(),
            name: application.name.clone(),
            organization: application.organization.clone(),
            contact: application.contact.clone(),
            kind: application.kind,
            status: ServiceStatus::PendingReview,
            application: String::from_utf8(application_json.clone())
                .map_err(|e| Refusal::internal("application", e))?,
            jwks: application.jwks.to_value().to_string(),
            endpoint: application.endpoint.clone(),
            lint: serde_json::to_string(&findings).map_err(|e| Refusal::internal("lint", e))?,
            round: 0,
            created_at: t,
            updated_at: t,
            client_secret_hash: client_secret
                .as_ref()
                .map(|secret| hex::encode(sha256(secret.as_bytes()))),
            client_cert_sha256: client_cert,
        }));
        for purpose in &application.purposes {
            let provider_name = if purpose.provider == PLATFORM_PROVIDER {
                "tsunagu".to_owned()
            } else if purpose.provider == service_id.as_str() {
                application.name.clone()
            } else {
                providers
                    .get(&purpose.provider)
                    .map(|(_, name)| name.clone())
                    .unwrap_or_default()
            };
            let terms = Terms {
                consumer: service_id.to_string(),
                consumer_name: application.name.clone(),
                provider: purpose.provider.clone(),
                provider_name,
                purpose: purpose.clone(),
            };
            commit.push(ServiceChange::InsertPurpose(PurposeRow {
                consumer_id: service_id.clone(),
                purpose_id: purpose.id.as_str().into(),
                provider_id: purpose.provider.as_str().into(),
                legal_basis: purpose.legal_basis,
                items: purpose.items.clone(),
                definition: serde_json::to_string(purpose)
                    .map_err(|e| Refusal::internal("purpose", e))?,
                terms_sha256: terms_sha256(&terms),
            }));
        }
        let commit = commit.leaf(leaf(
            &Event::ServiceApplied {
                service: service_id.to_string(),
                kind: application.kind,
                application_sha256: hex::encode(sha256(&application_json)),
                lint_errors: errors,
            },
            &[],
            t,
        ));
        match self.committer.commit(commit).await {
            Ok(_) => {}
            // The service id is fresh: only the certificate's uniqueness can conflict (another
            // application registered it between the check and the commit).
            Err(StoreError::Conflict(_)) => return Err(cert_taken()),
            Err(e) => return Err(e.into()),
        }
        metrics::counter!("tsunagu_service_applications_total").increment(1);
        Ok(Applied {
            service_id,
            status: ServiceStatus::PendingReview,
            lint: findings,
            client_secret,
        })
    }

    /// A registered service (`GET /v1/services/{id}`).
    pub async fn get(&self, id: &ServiceId) -> Outcome<Arc<ServiceEntry>> {
        self.directory
            .get(id)
            .await?
            .ok_or_else(|| Refusal::new(Code::UnknownService, format!("no service `{id}`")))
    }

    /// A service as it is stored now (its status and round never from the cache).
    pub async fn current(&self, id: &ServiceId) -> Outcome<ServiceRow> {
        self.store
            .service(id)
            .await?
            .ok_or_else(|| Refusal::new(Code::UnknownService, format!("no service `{id}`")))
    }

    /// Every service, or those in one status; newest first.
    pub async fn list(&self, status: Option<ServiceStatus>) -> Outcome<Vec<ServiceRow>> {
        Ok(self.store.services(status).await?)
    }

    /// Replaces a service's keys, redirect URIs or endpoint. Validated as an application is
    /// (URI rules, a provider's endpoint, a JWKS of public keys); the new JWKS must keep a
    /// P-256 signing key, or the service could no longer authenticate. Purposes, offers and
    /// the review state are not touched: those change only by a new application. The change
    /// and its ledger leaf are committed together; nothing is committed when nothing
    /// changes.
    pub async fn update_registration(
        &self,
        service_id: &ServiceId,
        update: &RegistrationUpdate,
    ) -> Outcome<Registration> {
        let entry = self.get(service_id).await?;
        let mut application = entry.application.clone();
        let mut fields: Vec<String> = Vec::new();
        if let Some(set) = &update.jwks {
            require_signing_key(set, "keep")?;
            if set.to_value() != entry.jwks().to_value() {
                application.jwks = set.clone();
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
        let mut client_cert = entry.row.client_cert_sha256.clone();
        if let Some(cert) = &update.tls_client_certificate {
            let cert = Some(cert.trim().to_owned()).filter(|c| !c.is_empty());
            let sha256 = client_cert_sha256(cert.as_deref())?;
            if sha256 != client_cert {
                require_possession(sha256.as_deref(), update.presented_client_cert.as_deref())?;
                self.require_cert_free(sha256.as_deref(), Some(service_id))
                    .await?;
                application.tls_client_certificate = cert;
                client_cert = sha256;
                fields.push("tls_client_certificate".into());
            }
        }
        if let Some(acceptance) = &update.obligations_acceptance {
            verify_obligations_acceptance(&application.jwks, acceptance)
                .map_err(|e| invalid(format!("obligations_acceptance: {e}")))?;
            if application.obligations_acceptance.as_deref() != Some(acceptance.as_str()) {
                application.obligations_acceptance = Some(acceptance.clone());
                fields.push("obligations_acceptance".into());
            }
        } else if fields.iter().any(|f| f == "jwks")
            && let Some(acceptance) = &application.obligations_acceptance
            && verify_obligations_acceptance(&application.jwks, acceptance).is_err()
        {
            return Err(invalid(
                "obligations_acceptance: the new JWKS no longer holds the key that signed the \
                 service's acceptance of the obligations; sign it again with a key of the new \
                 JWKS and send it with the update",
            ));
        }
        application.validate().map_err(invalid)?;

        let t = now();
        if !fields.is_empty() {
            let application_json =
                jcs::to_vec(&application).map_err(|e| Refusal::internal("application", e))?;
            let commit = Commit::new()
                .change(ServiceChange::UpdateServiceRegistration {
                    id: service_id.clone(),
                    application: String::from_utf8(application_json)
                        .map_err(|e| Refusal::internal("application", e))?,
                    jwks: application.jwks.to_value().to_string(),
                    endpoint: application.endpoint.clone(),
                    client_cert_sha256: client_cert.clone(),
                    updated_at: t,
                })
                .leaf(leaf(
                    &Event::ServiceRegistrationChanged {
                        service: service_id.to_string(),
                        fields: fields.clone(),
                        jwks_sha256: jwks_sha256(&application.jwks)?,
                    },
                    &[],
                    t,
                ));
            self.commit_change(service_id, commit).await?;
            metrics::counter!("tsunagu_service_registration_changes_total").increment(1);
        }
        Ok(Registration {
            service_id: service_id.clone(),
            kids: application
                .jwks
                .keys
                .iter()
                .map(|k| k.kid.clone().unwrap_or_else(|| k.thumbprint()))
                .collect(),
            redirect_uris: application.redirect_uris,
            post_logout_redirect_uris: application.post_logout_redirect_uris,
            endpoint: application.endpoint,
            tls_client_certificate_sha256: client_cert,
            obligations_accepted: application.obligations_acceptance.is_some(),
            updated_at: if fields.is_empty() {
                entry.row.updated_at
            } else {
                t
            },
            changed: fields,
        })
    }

    /// Refuses a client certificate another service registered (`me`: the service that
    /// registers it).
    async fn require_cert_free(
        &self,
        x5t_s256: Option<&str>,
        me: Option<&ServiceId>,
    ) -> Outcome<()> {
        let Some(x5t_s256) = x5t_s256 else {
            return Ok(());
        };
        match self.store.service_by_client_cert(x5t_s256).await? {
            Some(owner) if Some(&owner) != me => Err(cert_taken()),
            _ => Ok(()),
        }
    }

    /// Commits a change to a registered service and forgets its cached definition; a
    /// conflict means the service is gone.
    async fn commit_change(&self, service_id: &ServiceId, commit: Commit) -> Outcome<()> {
        let committed = self.committer.commit(commit).await;
        self.directory.invalidate(service_id);
        match committed {
            Ok(_) => Ok(()),
            // The service is gone, or (a registration update) another service registered the
            // same client certificate meanwhile.
            Err(StoreError::Conflict(_)) => match self.store.service(service_id).await? {
                Some(_) => Err(cert_taken()),
                None => Err(Refusal::new(
                    Code::UnknownService,
                    format!("no service `{service_id}`"),
                )),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// A new client secret for a service that registered `client_secret_basic`. The secret
    /// is returned once; only its SHA-256 (hex) is stored, and the old secret stops working
    /// at once.
    pub async fn rotate_client_secret(&self, service_id: &ServiceId) -> Outcome<ClientSecret> {
        let entry = self.get(service_id).await?;
        if entry.application.token_auth_method() != TOKEN_AUTH_CLIENT_SECRET_BASIC {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "this service authenticates with private_key_jwt and has no client secret",
            ));
        }
        let secret = random::token(32).map_err(|e| Refusal::internal("client secret", e))?;
        let t = now();
        let commit = Commit::new()
            .change(ServiceChange::SetClientSecret {
                service_id: service_id.clone(),
                secret_hash: Some(hex::encode(sha256(secret.as_bytes()))),
                updated_at: t,
            })
            .leaf(leaf(
                &Event::ServiceRegistrationChanged {
                    service: service_id.to_string(),
                    fields: vec!["client_secret".into()],
                    jwks_sha256: jwks_sha256(&entry.application.jwks)?,
                },
                &[],
                t,
            ));
        self.commit_change(service_id, commit).await?;
        metrics::counter!("tsunagu_client_secret_rotations_total").increment(1);
        Ok(ClientSecret {
            service_id: service_id.clone(),
            client_secret: secret,
            rotated_at: t,
        })
    }
}
