//! # tsunagu-api
//!
//! The HTTP JSON API over the platform's services, as capabilities: `identity` (enrollment,
//! login, the resident's account, history and devices), `ledger` (tree heads, proofs,
//! entries), `governance` (applications, the directory, votes, alerts), `exchange` (offers,
//! consents, tickets, receipts, the consent feed) and `meta` (health, metrics, OpenAPI, the
//! platform's keys). Also the HTTP edge the pages share: problem+json errors ([`ApiError`]),
//! extractors, and what OAuth endpoints read from headers.
//!
//! Invariant: handlers decode, call one platform service, encode. No business rules here,
//! and JSON exists only here and in the web crate's few JSON endpoints.

pub mod edge;
pub mod error;
pub mod exchange;
pub mod extract;
pub mod governance;
pub mod identity;
pub mod ledger;
pub mod meta;

pub use error::{ApiError, OAuthResponse};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tsunagu_capability::{
    AssessmentSection, Capability, Context, DataFile, DataFlow, DataItem, Job, Measure, Mount,
    SectionFuture,
};
use tsunagu_platform::Platform;

/// `identity`: enrollment, login, the resident's own account; CRL refresh with the status
/// check (現況確認), and the purge of expired nonces and sessions.
pub struct IdentityApi;

impl Capability for IdentityApi {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn config_sections(&self) -> &'static [&'static str] {
        &["identity"]
    }

    fn ledger_events(&self) -> &'static [&'static str] {
        &[
            "identity.enrolled",
            "identity.device_added",
            "identity.upgraded",
            "identity.reproofed",
            "identity.enrollment_refused",
            "identity.reproof_required",
            "identity.device_revoked",
            "auth.login",
            "auth.login_refused",
        ]
    }

    fn mount(&self, ctx: &Context) -> anyhow::Result<Mount> {
        let p = ctx.platform.clone();
        let full = Duration::from_secs(p.identity.crl_refresh_seconds().max(1));
        let last_full = Arc::new(Mutex::new(Instant::now()));
        let refresh = {
            let p = p.clone();
            Job::new("identity.crl_refresh", Duration::from_secs(2), move || {
                let p = p.clone();
                let last_full = last_full.clone();
                async move {
                    let due = {
                        let mut last = last_full.lock().expect("job lock");
                        let due = last.elapsed() >= full;
                        if due {
                            *last = Instant::now();
                        }
                        due
                    };
                    p.identity.refresh_trust(due).await
                }
            })
        };
        let purge = {
            let p = p.clone();
            Job::new("identity.purge", ctx.sweep_every, move || {
                let p = p.clone();
                async move { Ok(p.identity.purge().await?) }
            })
        };
        Ok(Mount::routes(identity::router(p)).job(refresh).job(purge))
    }

    fn assessment<'a>(&'a self, ctx: &'a Context) -> SectionFuture<'a> {
        let config = &ctx.platform.config;
        let identity = &config.identity;
        let keyring = config.keyring_path();
        Box::pin(async move {
            Ok(AssessmentSection {
                files: vec![DataFile {
                    id: "identity.accounts".into(),
                    name: "Residents' accounts and devices".into(),
                    items: vec![
                        DataItem::new("name", true),
                        DataItem::new("address", true),
                        DataItem::new("birthdate", true),
                        DataItem::new("sex", true),
                        DataItem::new("card certificate issuer and serial", false),
                        DataItem::new("device public keys", false),
                    ],
                    subjects: None,
                    sources: vec![
                        "the My Number card's signing certificate (JPKI), read at enrollment"
                            .into(),
                        "the resident's device".into(),
                    ],
                    uses: vec![
                        "log in".into(),
                        "proof of identity before data linkage".into(),
                        "status check against J-LIS's CRL (現況確認)".into(),
                    ],
                    retention: format!(
                        "while the account exists; sessions {} s; device credentials at most {} days",
                        identity.session_ttl_seconds, identity.credential_max_days
                    ),
                }],
                flows: vec![],
                measures: vec![
                    Measure::new(
                        "identity.attributes_sealed",
                        "The four basic items are stored sealed (AES-256-GCM) with keys kept apart from the database",
                        keyring.is_file(),
                        format!(
                            "keyring {} {}",
                            keyring.display(),
                            if keyring.is_file() {
                                "present"
                            } else {
                                "missing"
                            }
                        ),
                    ),
                    Measure::new(
                        "identity.revocation_checked",
                        "Card certificates are checked against J-LIS's CRL at enrollment and accounts are re-checked when it changes",
                        !identity.jpki_crls.is_empty() && identity.require_revocation_status,
                        format!(
                            "{} CRL source(s); require_revocation_status = {}",
                            identity.jpki_crls.len(),
                            identity.require_revocation_status
                        ),
                    ),
                    Measure::new(
                        "identity.lockout",
                        "Repeated failed logins lock the device, for longer each time",
                        identity.lockout.threshold > 0,
                        format!(
                            "lockout after {} failures, {}–{} s",
                            identity.lockout.threshold,
                            identity.lockout.base_seconds,
                            identity.lockout.max_seconds
                        ),
                    ),
                ],
            })
        })
    }
}

/// `ledger`: tree heads and proofs; signing tree heads and deleting contents past
/// retention.
pub struct LedgerApi;

impl Capability for LedgerApi {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn config_sections(&self) -> &'static [&'static str] {
        &["ledger"]
    }

    fn ledger_events(&self) -> &'static [&'static str] {
        &["ledger.key_rotated"]
    }

    fn mount(&self, ctx: &Context) -> anyhow::Result<Mount> {
        let p = ctx.platform.clone();
        let sign = {
            let p = p.clone();
            let every = Duration::from_secs(p.config.ledger.sth_interval_seconds.max(1));
            Job::new("ledger.sign_tree_head", every, move || {
                let p = p.clone();
                async move {
                    p.ledger.sth(tsunagu_platform::now()).await?;
                    Ok(0)
                }
            })
        };
        let retention = {
            let p = p.clone();
            Job::new("ledger.retention", ctx.sweep_every, move || {
                let p = p.clone();
                async move { Ok(p.history.apply_retention(tsunagu_platform::now()).await?) }
            })
        };
        Ok(Mount::routes(ledger::router(p)).job(sign).job(retention))
    }

    fn assessment<'a>(&'a self, ctx: &'a Context) -> SectionFuture<'a> {
        let days = ctx.platform.config.ledger.retention_days;
        Box::pin(async move {
            Ok(AssessmentSection {
                files: vec![DataFile {
                    id: "ledger.leaves".into(),
                    name: "The transparency ledger and its history index".into(),
                    items: vec![
                        DataItem::new("events with pseudonyms and codes", false),
                        DataItem::new("account to entry index (outside the log)", false),
                    ],
                    subjects: None,
                    sources: vec!["every service of the platform".into()],
                    uses: vec![
                        "the resident's history".into(),
                        "audit (signed tree heads, proofs)".into(),
                    ],
                    retention: format!("contents {days} days; hashes and proofs for good"),
                }],
                flows: vec![],
                measures: vec![Measure::new(
                    "ledger.retention",
                    "Ledger entry contents are deleted after the retention period (their hashes stay)",
                    days > 0,
                    format!("ledger.retention_days = {days}"),
                )],
            })
        })
    }
}

/// `governance`: applications and the policy lint, registrations, the committee's votes,
/// alerts.
pub struct GovernanceApi;

impl Capability for GovernanceApi {
    fn name(&self) -> &'static str {
        "governance"
    }

    fn config_sections(&self) -> &'static [&'static str] {
        &["governance"]
    }

    fn ledger_events(&self) -> &'static [&'static str] {
        &[
            "service.applied",
            "governance.vote",
            "service.status_changed",
            "service.registration_changed",
        ]
    }

    fn mount(&self, ctx: &Context) -> anyhow::Result<Mount> {
        Ok(Mount::routes(governance::router(ctx.platform.clone())))
    }

    /// The flows the committee approved: each purpose of an approved consumer, from its
    /// provider, with its items and legal basis.
    fn assessment<'a>(&'a self, ctx: &'a Context) -> SectionFuture<'a> {
        let p = ctx.platform.clone();
        Box::pin(async move {
            let mut flows = Vec::new();
            for row in p
                .services
                .list(Some(tsunagu_core::service::ServiceStatus::Approved))
                .await?
            {
                let entry = p.services.get(&row.id).await?;
                for purpose in &entry.purposes {
                    flows.push(DataFlow {
                        from: purpose.row.provider_id.to_string(),
                        to: row.id.to_string(),
                        items: purpose.row.items.clone(),
                        purpose: purpose.row.purpose_id.to_string(),
                        basis: purpose.row.legal_basis.as_str().into(),
                        provisions: None,
                    });
                }
            }
            Ok(AssessmentSection {
                flows,
                ..AssessmentSection::default()
            })
        })
    }
}

/// `exchange`: consents and the exchange; expiring consents, flagging missing receipts,
/// purging residents' used nonces.
pub struct ExchangeApi;

impl Capability for ExchangeApi {
    fn name(&self) -> &'static str {
        "exchange"
    }

    fn config_sections(&self) -> &'static [&'static str] {
        &["exchange"]
    }

    fn ledger_events(&self) -> &'static [&'static str] {
        &[
            "identity.pairwise_shown",
            "consent.granted",
            "consent.expiry_changed",
            "consent.revoked",
            "consent.expired",
            "consent.refused",
            "ticket.issued",
            "ticket.refused",
            "exchange.receipt",
            "exchange.completed",
            "exchange.flagged",
        ]
    }

    fn mount(&self, ctx: &Context) -> anyhow::Result<Mount> {
        let p: Arc<Platform> = ctx.platform.clone();
        let every = ctx.sweep_every;
        let expire = {
            let p = p.clone();
            Job::new("consents.expire", every, move || {
                let p = p.clone();
                async move { Ok(p.consents.sweep_expirations().await?) }
            })
        };
        let nonces = {
            let p = p.clone();
            Job::new("consents.purge_nonces", every, move || {
                let p = p.clone();
                async move { Ok(p.consents.purge_nonces().await?) }
            })
        };
        let receipts = {
            let p = p.clone();
            Job::new("exchange.missing_receipts", every, move || {
                let p = p.clone();
                async move { Ok(p.exchange.sweep_missing_receipts().await?) }
            })
        };
        Ok(Mount::routes(exchange::router(p))
            .job(expire)
            .job(nonces)
            .job(receipts))
    }

    fn assessment<'a>(&'a self, ctx: &'a Context) -> SectionFuture<'a> {
        let exchange = &ctx.platform.config.exchange;
        let max_days = exchange.max_consent_days;
        Box::pin(async move {
            Ok(AssessmentSection {
                files: vec![DataFile {
                    id: "exchange.consents".into(),
                    name: "Residents' consents, tickets and receipts".into(),
                    items: vec![
                        DataItem::new("signed consents and their changes", false),
                        DataItem::new("tickets (who asked, for which items)", false),
                        DataItem::new("receipts (payload hashes only)", false),
                    ],
                    subjects: None,
                    sources: vec!["residents' devices".into(), "services' connectors".into()],
                    uses: vec![
                        "deciding each exchange".into(),
                        "the resident's receipts and history".into(),
                    ],
                    retention: format!("consents expire at most {max_days} days after signing"),
                }],
                flows: vec![],
                measures: vec![Measure::new(
                    "exchange.consent_expiry",
                    "Every consent expires; none lasts longer than the platform's maximum",
                    max_days > 0,
                    format!("exchange.max_consent_days = {max_days}"),
                )],
            })
        })
    }
}

/// `meta`: `/healthz`, `/metrics`, `/openapi.json`, the platform's public keys.
pub struct MetaApi;

impl Capability for MetaApi {
    fn name(&self) -> &'static str {
        "meta"
    }

    /// The platform keys' rotations (the JWKS is served here and `keys.refresh` runs here).
    fn ledger_events(&self) -> &'static [&'static str] {
        &["keys.rotation_started", "keys.retired"]
    }

    fn mount(&self, ctx: &Context) -> anyhow::Result<Mount> {
        metrics_handle();
        // Every replica re-reads the platform keys and the keyring file, so a rotation
        // started anywhere reaches it before the new key signs (ADR 0019), and retires the
        // signing keys whose time has come.
        let refresh = {
            let p = ctx.platform.clone();
            let every = Duration::from_secs(p.config.keys.refresh_seconds);
            Job::new("keys.refresh", every, move || {
                let p = p.clone();
                async move { p.refresh_keys().await }
            })
        };
        Ok(Mount::routes(meta::router(ctx.platform.clone())).job(refresh))
    }
}

pub use meta::metrics_handle;

/// Every route of the JSON API (method, path): what `openapi.json` documents.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    [
        meta::ROUTES,
        identity::ROUTES,
        ledger::ROUTES,
        governance::ROUTES,
        exchange::ROUTES,
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::meta::OPENAPI;

    #[test]
    fn the_openapi_document_covers_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let routes = super::routes();
        for (method, path) in &routes {
            let operation = &doc["paths"][path][method.to_lowercase()];
            assert!(operation.is_object(), "{method} {path} is not documented");
            assert!(
                operation["responses"].is_object(),
                "{method} {path} has no responses"
            );
        }
        // That it lists nothing else is checked where every capability is known
        // (`tsunagu-server`: the API's routes, the rights' and the staff's).
    }
}
