//! データ連携 (SPEC §6): tickets, receipts and the consent feed for services.
//!
//! A consumer asks for a ticket with its own pairwise id for the resident; the platform reads
//! everything it decides on in one query, lets `tsunagu_core::ticket::decide` decide, and
//! either refuses with a code or signs a ticket (ES256, ≤ 120 s) for the provider, carrying
//! the provider's pairwise id for the resident and `cnf.jkt` bound to the key that signed the
//! consumer's assertion. The payload itself never passes through the platform: each side
//! sends only its SHA-256 as a receipt.

use crate::app::{App, now};
use crate::assertion::{self, Verified};
use crate::consents::pairwise;
use crate::error::ApiError;
use crate::identity::ledger_subject;
use crate::ledger::leaf;
use crate::services::{ServiceEntry, require_kind};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tsunagu_core::Code;
use tsunagu_core::consent::ResidentFacts;
use tsunagu_core::event::Event;
use tsunagu_core::service::PLATFORM_PROVIDER;
use tsunagu_core::ticket::{self, Basis, ConsentFacts, TicketFacts, TicketPurpose};
use tsunagu_crypto::jwk::{KeyMaterial, PublicJwk};
use tsunagu_crypto::{jcs, jws, random, sha256};
use tsunagu_store::{
    AlertRow, AnyChange, Commit, ExchangeChange, IdentityChange, ReceiptSide, StoreError, TicketRow,
};

const TICKET_TYP: &str = "tsunagu-ticket+jwt";

/// An authenticated service.
pub struct ServiceAuth {
    pub service: Arc<ServiceEntry>,
    pub assertion: Verified,
}

/// Authenticates a service from `Authorization: Bearer <assertion>`.
pub async fn authenticate(app: &App, headers: &HeaderMap) -> Result<ServiceAuth, ApiError> {
    let token = crate::http::bearer(headers).ok_or_else(|| {
        ApiError::new(
            Code::Unauthorized,
            "services authenticate with `Authorization: Bearer <client assertion>`",
        )
    })?;
    // The party is only known after parsing; read its keys first.
    let claimed = jws::parse(token)
        .ok()
        .and_then(|t| t.json_payload().ok())
        .and_then(|p| p.get("iss").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| {
            ApiError::new(Code::Unauthorized, "client assertion: not a JWT with `iss`")
        })?;
    let service = app
        .directory
        .get(app.store.as_ref(), &claimed)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                Code::Unauthorized,
                "client assertion: unknown client or key",
            )
        })?;
    let verified = assertion::check(app, token, |iss, kid| {
        if iss != service.row.id {
            return None;
        }
        // Keys registered for encryption (`use: enc`) never authenticate the service.
        let signing = |k: &&PublicJwk| {
            matches!(k.material, KeyMaterial::P256 { .. }) && k.use_.as_deref() != Some("enc")
        };
        match kid {
            Some(kid) => service.jwks.find(kid).filter(signing).cloned(),
            None => {
                let mut candidates = service.jwks.keys.iter().filter(signing);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }
        }
    })?;
    Ok(ServiceAuth {
        service,
        assertion: verified,
    })
}

fn jti_change(auth: &ServiceAuth) -> AnyChange {
    IdentityChange::UseJti {
        key: auth.assertion.jti_key.clone(),
        expires_at: auth.assertion.exp,
    }
    .into()
}

fn replayed() -> ApiError {
    ApiError::new(Code::Unauthorized, "client assertion: jti was already used")
}

/// Token buckets per key, per process.
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl RateLimiter {
    /// Takes one token from `key`'s bucket (refilled at `per_second`, holding `burst`).
    pub fn allow(&self, key: &str, per_second: f64, burst: f64) -> bool {
        let mut buckets = self.buckets.lock().expect("rate lock");
        if buckets.len() > 100_000 {
            buckets.retain(|_, (tokens, at)| *tokens < burst || at.elapsed().as_secs() < 60);
        }
        let now = Instant::now();
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `POST /v1/exchange/tickets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    pub subject: String,
    pub purpose_id: String,
    pub items: Vec<String>,
    #[serde(default)]
    pub requester: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

fn refusal_detail(code: Code) -> &'static str {
    match code {
        Code::NoConsent => "the resident has not consented to this purpose",
        Code::ConsentExpired => "the resident's consent has expired",
        Code::ConsentRevoked => "the resident revoked their consent",
        Code::ItemsNotCovered => {
            "the items are not all covered by the purpose and the resident's consent"
        }
        Code::ProvisionalId => "the resident's ID is provisional (仮ID): no data linkage",
        Code::ServiceSuspended => {
            "the consumer or the provider is suspended by the governance committee"
        }
        Code::PurposeNotApproved => {
            "no such approved purpose for this consumer, or a service of it is not approved"
        }
        Code::UnknownSubject => "the subject is not a pairwise id this platform gave this service",
        Code::RequesterRequired => {
            "a legal-basis request must say who asks (requester) and why (reason)"
        }
        Code::RateLimited => "too many ticket requests; slow down",
        Code::InvalidRequest => "items must name at least one item",
        _ => "refused",
    }
}

/// Decides a ticket request; returns the ticket or a refusal, both recorded.
pub async fn ticket(app: &App, auth: &ServiceAuth, req: TicketRequest) -> Result<Value, ApiError> {
    require_kind(&auth.service, true)?;
    let consumer_id = auth.service.row.id.clone();
    if req.subject.is_empty() || req.subject.len() > 128 || req.items.len() > 100 {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "subject (1-128 characters) and at most 100 items",
        ));
    }
    let t = now();
    let purpose = auth
        .service
        .purpose(&req.purpose_id)
        .filter(|p| p.row.provider_id != PLATFORM_PROVIDER);
    let provider_id = purpose
        .map(|p| p.row.provider_id.clone())
        .unwrap_or_default();
    let rates = &app.config.exchange;
    let rate_ok = app.rates.allow(
        &format!("consumer:{consumer_id}"),
        f64::from(rates.consumer_rate_per_second),
        f64::from(rates.consumer_burst),
    );
    let context = if rate_ok {
        app.store
            .ticket_context(&consumer_id, &provider_id, &req.purpose_id, &req.subject)
            .await?
    } else {
        None
    };
    let ticket_purpose = purpose.map(|p| TicketPurpose {
        id: p.row.purpose_id.clone(),
        legal_basis: p.row.legal_basis,
        items: p.row.items.clone(),
    });
    let consent = context
        .as_ref()
        .and_then(|c| c.consent.as_ref())
        .map(|c| ConsentFacts {
            id: c.id.clone(),
            status: c.status,
            items: c.items.clone(),
            expires_at: c.expires_at,
        });
    let resident = context.as_ref().and_then(|c| c.resident.clone());
    let decision = if !rate_ok {
        Err(Code::RateLimited)
    } else if let Some(ctx) = &context {
        let resident_ok = resident.as_ref().is_none_or(|r| {
            app.rates.allow(
                &format!("resident:{}", r.account_id),
                f64::from(rates.resident_rate_per_minute) / 60.0,
                f64::from(rates.resident_rate_per_minute),
            )
        });
        if !resident_ok {
            Err(Code::RateLimited)
        } else {
            ticket::decide(&TicketFacts {
                consumer: ctx.consumer_status,
                purpose: ticket_purpose.as_ref(),
                provider: ctx.provider_status,
                items: &req.items,
                resident: resident.as_ref().map(|r| ResidentFacts {
                    level: r.level,
                    status: r.status,
                }),
                consent: consent.as_ref(),
                requester: req.requester.as_deref(),
                reason: req.reason.as_deref(),
                now: t,
            })
        }
    } else {
        Err(Code::PurposeNotApproved)
    };
    let account = resident.as_ref().map(|r| r.account_id.clone());

    let basis = match decision {
        Ok(basis) => basis,
        Err(code) => {
            let commit = Commit {
                changes: tsunagu_store::changes![jti_change(auth)],
                leaves: vec![leaf(
                    Event::TicketRefused {
                        subject: account.as_deref().map(|a| ledger_subject(app, a)),
                        consumer: consumer_id.clone(),
                        purpose: req.purpose_id.clone(),
                        items: req.items.clone(),
                        reason: code,
                    },
                    &account.iter().map(String::as_str).collect::<Vec<_>>(),
                    t,
                )],
            };
            match app.committer.commit(commit).await {
                Ok(_) => {}
                Err(StoreError::Conflict(_)) => return Err(replayed()),
                Err(e) => return Err(e.into()),
            }
            metrics::counter!("tsunagu_tickets_total", "outcome" => code.as_str()).increment(1);
            return Err(ApiError::new(code, refusal_detail(code)));
        }
    };
    let account =
        account.ok_or_else(|| ApiError::internal("ticket", "decided without a resident"))?;
    let purpose =
        purpose.ok_or_else(|| ApiError::internal("ticket", "decided without a purpose"))?;
    let provider = app
        .directory
        .get(app.store.as_ref(), &provider_id)
        .await?
        .ok_or_else(|| ApiError::internal("ticket", "provider vanished"))?;
    let endpoint = provider
        .row
        .endpoint
        .clone()
        .ok_or_else(|| ApiError::internal("ticket", "provider without endpoint"))?;

    let ticket_id = random::token(16).map_err(|e| ApiError::internal("ticket id", e))?;
    let exp = t + app.config.exchange.ticket_ttl_seconds;
    let provider_subject = pairwise(app, &provider_id, &account);
    let claims = json!({
        "iss": app.public_url,
        "aud": provider_id,
        "sub": provider_subject,
        "cns": consumer_id,
        "purpose": req.purpose_id,
        "items": req.items,
        "basis": basis.claim(),
        "jti": ticket_id,
        "iat": t,
        "exp": exp,
        "cnf": { "jkt": auth.assertion.key.thumbprint() },
    });
    let signed = jws::sign_json(&app.keys.signing, Some(TICKET_TYP), &claims)
        .map_err(|e| ApiError::internal("signing a ticket", e))?;

    let (requester, reason, request_sha256) = match &basis {
        Basis::Rule(_) => {
            let digest = hex::encode(sha256(
                &jcs::to_vec(&json!({"requester": req.requester, "reason": req.reason}))
                    .map_err(|e| ApiError::internal("request digest", e))?,
            ));
            (req.requester.clone(), req.reason.clone(), Some(digest))
        }
        Basis::Consent(_) => (None, None, None),
    };
    let mut changes = tsunagu_store::changes![
        jti_change(auth),
        ExchangeChange::InsertTicket(Box::new(TicketRow {
            id: ticket_id.clone(),
            consumer_id: consumer_id.clone(),
            provider_id: provider_id.clone(),
            account_id: account.clone(),
            purpose_id: req.purpose_id.clone(),
            items: req.items.clone(),
            basis: basis.claim(),
            requester,
            reason,
            issued_at: t,
            expires_at: exp,
            consumer_receipt: None,
            provider_receipt: None,
            state: "open".into(),
            updated_at: t,
        })),
        ExchangeChange::LinkSubject {
            sector: provider_id.clone(),
            subject: provider_subject,
            account_id: account.clone(),
            created_at: t,
        },
    ];
    if let Basis::Rule(rule) = &basis {
        changes.push(tsunagu_store::AnyChange::from(ExchangeChange::InsertAlert(
            AlertRow {
                seq: 0,
                kind: "legal_basis_use".into(),
                service_id: Some(consumer_id.clone()),
                // `ticket <id>: …` as the other exchange alerts say, so that the committee's
                // console can show who asked and why (kept with the ticket).
                detail: format!(
                    "ticket {ticket_id}: {} used the standing rule `{rule}` ({}) for items {}",
                    auth.service.row.name,
                    purpose.purpose.title_ja,
                    req.items.join(", ")
                ),
                created_at: t,
            },
        )));
        tracing::warn!(consumer = %consumer_id, rule = %rule, "a legal-basis rule was used");
    }
    let commit = Commit {
        changes,
        leaves: vec![leaf(
            Event::TicketIssued {
                subject: ledger_subject(app, &account),
                ticket: ticket_id.clone(),
                consumer: consumer_id.clone(),
                provider: provider_id.clone(),
                purpose: req.purpose_id.clone(),
                items: req.items.clone(),
                basis: basis.claim(),
                request_sha256,
            },
            &[&account],
            t,
        )],
    };
    match app.committer.commit(commit).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => return Err(replayed()),
        Err(e) => return Err(e.into()),
    }
    metrics::counter!("tsunagu_tickets_total", "outcome" => "issued").increment(1);
    Ok(json!({
        "ticket": signed,
        "ticket_id": ticket_id,
        "provider_endpoint": endpoint,
        "provider": provider_id,
        "expires_at": exp,
        "basis": basis.claim(),
    }))
}

/// `POST /v1/exchange/receipts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    pub ticket_id: String,
    pub payload_sha256: String,
}

pub async fn receipt(
    app: &App,
    auth: &ServiceAuth,
    req: ReceiptRequest,
) -> Result<Value, ApiError> {
    let hash = req.payload_sha256.to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "payload_sha256 is 64 hex digits",
        ));
    }
    let service_id = auth.service.row.id.as_str();
    let ticket = app
        .store
        .ticket(&req.ticket_id)
        .await?
        .filter(|t| t.consumer_id == service_id || t.provider_id == service_id)
        .ok_or_else(|| ApiError::new(Code::UnknownTicket, "no such ticket for this service"))?;
    let side = if ticket.consumer_id == service_id {
        ReceiptSide::Consumer
    } else {
        ReceiptSide::Provider
    };
    let already = match side {
        ReceiptSide::Consumer => ticket.consumer_receipt.is_some(),
        ReceiptSide::Provider => ticket.provider_receipt.is_some(),
    };
    if already {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "this side already sent its receipt for the ticket",
        ));
    }
    let t = now();
    let commit = Commit {
        changes: tsunagu_store::changes![
            jti_change(auth),
            ExchangeChange::SetReceipt {
                ticket_id: ticket.id.clone(),
                side,
                payload_sha256: hash.clone(),
                updated_at: t,
            },
        ],
        leaves: vec![leaf(
            Event::ExchangeReceipt {
                ticket: ticket.id.clone(),
                service: service_id.to_owned(),
                payload_sha256: hash.clone(),
            },
            &[&ticket.account_id],
            t,
        )],
    };
    match app.committer.commit(commit).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                Code::Unauthorized,
                "client assertion replayed, or the receipt was already sent",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let ticket = app
        .store
        .ticket(&ticket.id)
        .await?
        .ok_or_else(|| ApiError::internal("receipt", "ticket vanished"))?;
    let state = match (&ticket.consumer_receipt, &ticket.provider_receipt) {
        (Some(c), Some(p)) if ticket.state == "open" => {
            let (state, event, alert) = if c == p {
                (
                    "completed",
                    Event::ExchangeCompleted {
                        ticket: ticket.id.clone(),
                        payload_sha256: c.clone(),
                    },
                    None,
                )
            } else {
                (
                    "mismatch",
                    Event::ExchangeFlagged {
                        ticket: ticket.id.clone(),
                        reason: Code::ReceiptMismatch,
                    },
                    Some(AlertRow {
                        seq: 0,
                        kind: "receipt_mismatch".into(),
                        service_id: Some(ticket.provider_id.clone()),
                        detail: format!(
                            "ticket {}: the consumer and the provider report different payloads",
                            ticket.id
                        ),
                        created_at: t,
                    }),
                )
            };
            let mut changes = tsunagu_store::changes![ExchangeChange::CloseTicket {
                ticket_id: ticket.id.clone(),
                state: state.into(),
                updated_at: t,
            }];
            changes.extend(alert.map(|a| AnyChange::from(ExchangeChange::InsertAlert(a))));
            match app
                .committer
                .commit(Commit {
                    changes,
                    leaves: vec![leaf(event, &[&ticket.account_id], t)],
                })
                .await
            {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            metrics::counter!("tsunagu_exchanges_total", "state" => state).increment(1);
            state.to_owned()
        }
        _ => ticket.state.clone(),
    };
    Ok(json!({
        "ticket_id": ticket.id,
        "side": match side { ReceiptSide::Consumer => "consumer", ReceiptSide::Provider => "provider" },
        "state": state,
    }))
}

/// `GET /v1/exchange/consents?since=`: the caller's consent feed, with its own pairwise ids.
pub async fn feed(
    app: &App,
    auth: &ServiceAuth,
    since: i64,
    limit: u32,
) -> Result<Value, ApiError> {
    assertion::consume(app, &auth.assertion).await?;
    let service_id = &auth.service.row.id;
    let rows = app
        .store
        .consent_events(service_id, since.max(0), limit.clamp(1, 1000))
        .await?;
    let next = rows.last().map(|r| r.seq).unwrap_or(since.max(0));
    Ok(json!({
        "events": rows.iter().map(|e| json!({
            "cursor": e.seq,
            "subject": pairwise(app, service_id, &e.account_id),
            "purpose_id": e.purpose_id,
            "consumer": e.consumer_id,
            "provider": e.provider_id,
            "status": match e.status.as_str() { "expiry_changed" => "changed", other => other },
            "items": e.items,
            "expires_at": e.expires_at,
            "at": e.created_at,
        })).collect::<Vec<_>>(),
        "next": next,
    }))
}

/// Flags exchanges whose receipts did not both arrive within the grace period.
pub async fn sweep_missing_receipts(app: &App) -> Result<usize, StoreError> {
    let t = now();
    let overdue = app
        .store
        .overdue_tickets(t - app.config.exchange.receipt_grace_seconds, 500)
        .await?;
    let mut flagged = 0;
    for ticket in overdue {
        let commit = Commit {
            changes: tsunagu_store::changes![
                ExchangeChange::CloseTicket {
                    ticket_id: ticket.id.clone(),
                    state: "missing".into(),
                    updated_at: t,
                },
                ExchangeChange::InsertAlert(AlertRow {
                    seq: 0,
                    kind: "receipt_missing".into(),
                    service_id: Some(if ticket.consumer_receipt.is_none() {
                        ticket.consumer_id.clone()
                    } else {
                        ticket.provider_id.clone()
                    }),
                    detail: format!(
                        "ticket {}: {} receipt missing",
                        ticket.id,
                        match (&ticket.consumer_receipt, &ticket.provider_receipt) {
                            (None, None) => "both",
                            (None, Some(_)) => "the consumer's",
                            _ => "the provider's",
                        }
                    ),
                    created_at: t,
                }),
            ],
            leaves: vec![leaf(
                Event::ExchangeFlagged {
                    ticket: ticket.id.clone(),
                    reason: Code::ReceiptMissing,
                },
                &[&ticket.account_id],
                t,
            )],
        };
        match app.committer.commit(commit).await {
            Ok(_) => flagged += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(flagged)
}

/// `GET /v1/governance/alerts`: for committee members and auditors.
pub async fn alerts(app: &App, headers: &HeaderMap, since: i64) -> Result<Value, ApiError> {
    let token = crate::http::bearer(headers).ok_or_else(|| {
        ApiError::new(
            Code::Unauthorized,
            "alerts are for committee members and auditors",
        )
    })?;
    assertion::verify(app, token, |id, _| {
        crate::governance::member_key(app, id).or_else(|| {
            app.config
                .ledger
                .auditors
                .iter()
                .find(|a| a.id == id)
                .and_then(|a| PublicJwk::from_value(&a.jwk).ok())
        })
    })
    .await?;
    let rows = app.store.alerts(since.max(0), 500).await?;
    Ok(json!({
        "alerts": rows.iter().map(|a| json!({
            "cursor": a.seq, "kind": a.kind, "service_id": a.service_id, "detail": a.detail, "at": a.created_at,
        })).collect::<Vec<_>>(),
        "next": rows.last().map(|a| a.seq).unwrap_or(since.max(0)),
    }))
}
