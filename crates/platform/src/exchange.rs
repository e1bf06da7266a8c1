//! データ連携 (SPEC §6): tickets, receipts and the consent feed for services.
//!
//! A consumer asks for a ticket with its own pairwise id for the resident; the platform reads
//! everything it decides on in one query, lets `tsunagu_core::ticket::decide` decide, and
//! either refuses with a code or signs a ticket (ES256, ≤ 120 s) for the provider, carrying
//! the provider's pairwise id for the resident and bound to the consumer: `cnf.jkt`, the key
//! that signed the consumer's assertion, or `cnf.x5t#S256`, the client certificate of the
//! connection when the consumer authenticated by mutual TLS (RFC 8705). The payload itself
//! never passes through the platform: each side sends only its SHA-256 as a receipt.

use crate::assertion::{self, Assertions, Verified};
use crate::config::ExchangeConfig;
use crate::directory::{Directory, ServiceEntry};
use crate::keys::PlatformKeys;
use crate::ledger::{Committer, leaf};
use crate::rates::RateLimiter;
use crate::{Outcome, Refusal, now};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use tsunagu_core::alert::AlertKind;
use tsunagu_core::consent::ResidentFacts;
use tsunagu_core::event::Event;
use tsunagu_core::ticket::{self, Basis, ConsentFacts, TicketFacts, TicketPurpose, TicketState};
use tsunagu_core::{Code, PairwiseId, PurposeId, ServiceId, TicketId};
use tsunagu_crypto::{jcs, jws, random, sha256};
pub use tsunagu_store::{AlertRow, ReceiptSide, TicketRow};
use tsunagu_store::{Commit, ExchangeChange, Store, StoreError};

const TICKET_TYP: &str = "tsunagu-ticket+jwt";

/// An authenticated service.
pub struct ServiceAuth {
    pub service: Arc<ServiceEntry>,
    pub credential: Credential,
}

/// How a service authenticated a request.
pub enum Credential {
    /// A client assertion (its `jti` not used up yet).
    Assertion(Verified),
    /// The client certificate of the connection (mutual TLS), as its `x5t#S256`.
    Certificate { x5t_s256: String },
}

impl Credential {
    /// The change that uses the assertion's `jti` up, for the caller's commit (none for a
    /// certificate: the connection itself authenticates).
    pub fn use_jti(&self) -> Option<tsunagu_store::IdentityChange> {
        match self {
            Credential::Assertion(verified) => Some(verified.use_jti()),
            Credential::Certificate { .. } => None,
        }
    }

    /// A ticket's `cnf`: what the consumer must show the provider.
    pub(crate) fn confirmation(&self) -> serde_json::Value {
        match self {
            Credential::Assertion(verified) => json!({ "jkt": verified.key.thumbprint() }),
            Credential::Certificate { x5t_s256 } => json!({ "x5t#S256": x5t_s256 }),
        }
    }
}

/// A commit that starts with the credential's `jti` use, if any.
fn commit_using(credential: &Credential) -> Commit {
    match credential.use_jti() {
        Some(change) => Commit::new().change(change),
        None => Commit::new(),
    }
}

/// `POST /v1/exchange/tickets`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    pub subject: PairwiseId,
    pub purpose_id: PurposeId,
    pub items: Vec<String>,
    #[serde(default)]
    pub requester: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// An issued ticket.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedTicket {
    /// The compact JWS the consumer presents to the provider.
    pub ticket: String,
    pub ticket_id: TicketId,
    pub provider_endpoint: String,
    pub provider: ServiceId,
    pub expires_at: i64,
    /// `consent:<id>` or `rule:<purpose_id>`.
    pub basis: String,
}

/// `POST /v1/exchange/receipts`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    pub ticket_id: TicketId,
    pub payload_sha256: String,
}

/// An exchange after a receipt.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptRecorded {
    pub ticket_id: TicketId,
    pub side: ReceiptSide,
    pub state: TicketState,
}

/// An entry of a service's consent feed, with the service's own pairwise id.
#[derive(Debug, Clone, Serialize)]
pub struct FeedEvent {
    pub cursor: i64,
    pub subject: PairwiseId,
    pub purpose_id: PurposeId,
    pub consumer: ServiceId,
    pub provider: ServiceId,
    /// `granted`, `changed`, `revoked`, `expired`.
    pub status: &'static str,
    pub items: Vec<String>,
    pub expires_at: i64,
    pub at: i64,
    /// Why, when the resident did not sign the change: `erasure` (their account was erased).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A page of the consent feed.
#[derive(Debug, Clone, Serialize)]
pub struct Feed {
    pub events: Vec<FeedEvent>,
    /// The cursor to ask from next.
    pub next: i64,
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
        Code::ReproofRequired => {
            "the resident's card certificate was revoked (a move or a new name): nothing flows \
             until the resident proofs again with the new certificate"
        }
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

fn replayed() -> Refusal {
    Refusal::new(Code::Unauthorized, "client assertion: jti was already used")
}

/// Tickets, receipts, the consent feed and the exchange's alerts.
#[derive(Clone)]
pub struct Exchange {
    store: Arc<dyn Store>,
    committer: Committer,
    directory: Arc<Directory>,
    keys: Arc<PlatformKeys>,
    assertions: Assertions,
    rates: Arc<RateLimiter>,
    config: ExchangeConfig,
    public_url: String,
}

impl Exchange {
    pub fn new(
        store: Arc<dyn Store>,
        committer: Committer,
        directory: Arc<Directory>,
        keys: Arc<PlatformKeys>,
        assertions: Assertions,
        config: ExchangeConfig,
        public_url: String,
    ) -> Exchange {
        Exchange {
            store,
            committer,
            directory,
            keys,
            assertions,
            rates: Arc::new(RateLimiter::default()),
            config,
            public_url,
        }
    }

    /// Authenticates a service from its bearer client assertion (`jti` not yet used up), or
    /// without one from the client certificate of the connection (`client_cert`, its
    /// `x5t#S256`) when a service registered that certificate.
    pub async fn authenticate(
        &self,
        bearer: Option<&str>,
        client_cert: Option<&str>,
    ) -> Outcome<ServiceAuth> {
        let Some(token) = bearer else {
            if let Some(x5t_s256) = client_cert {
                let service = self
                    .directory
                    .by_client_cert(x5t_s256)
                    .await?
                    .ok_or_else(|| {
                        Refusal::new(
                            Code::Unauthorized,
                            "the client certificate of this connection is not registered by any \
                         service (register its x5t#S256 as `tls_client_certificate`), and \
                         there is no client assertion",
                        )
                    })?;
                return Ok(ServiceAuth {
                    service,
                    credential: Credential::Certificate {
                        x5t_s256: x5t_s256.to_owned(),
                    },
                });
            }
            return Err(Refusal::new(
                Code::Unauthorized,
                "services authenticate with `Authorization: Bearer <client assertion>`, or \
                 with a registered client certificate (mutual TLS)",
            ));
        };
        // The party is only known after parsing; read its keys first.
        let claimed = assertion::claimed_issuer(token).ok_or_else(|| {
            Refusal::new(Code::Unauthorized, "client assertion: not a JWT with `iss`")
        })?;
        let service = self.directory.find(&claimed).await?.ok_or_else(|| {
            Refusal::new(
                Code::Unauthorized,
                "client assertion: unknown client or key",
            )
        })?;
        let verified = self
            .assertions
            .check(token, |iss, kid| service.signing_key(iss, kid))?;
        Ok(ServiceAuth {
            service,
            credential: Credential::Assertion(verified),
        })
    }

    /// Authenticates a service acting on itself only (its registration, its secret) by a
    /// client assertion, whose `jti` is used up. Not by a client certificate: a browser that
    /// holds one presents it to any site's cross-site request, and a change of a service's
    /// credentials deserves a signature made for it.
    pub async fn authenticate_self(
        &self,
        bearer: Option<&str>,
        id: &ServiceId,
    ) -> Outcome<ServiceAuth> {
        if bearer.is_none() {
            return Err(Refusal::new(
                Code::Unauthorized,
                "a service changes its registration or secret with `Authorization: Bearer \
                 <client assertion>` (a client certificate alone does not do)",
            ));
        }
        let auth = self.authenticate(bearer, None).await?;
        if auth.service.row.id != *id {
            return Err(Refusal::new(
                Code::Forbidden,
                "a service may change only its own registration",
            ));
        }
        self.consume(&auth.credential).await?;
        Ok(auth)
    }

    /// Uses up an assertion's `jti` now (a certificate has none).
    async fn consume(&self, credential: &Credential) -> Outcome<()> {
        match credential {
            Credential::Assertion(verified) => self.assertions.consume(verified).await,
            Credential::Certificate { .. } => Ok(()),
        }
    }

    /// Decides a ticket request; returns the ticket or a refusal, both recorded.
    pub async fn ticket(&self, auth: &ServiceAuth, req: TicketRequest) -> Outcome<IssuedTicket> {
        auth.service.require_kind(true)?;
        let consumer_id = auth.service.row.id.clone();
        if req.subject.as_str().is_empty()
            || req.subject.as_str().len() > 128
            || req.items.len() > 100
        {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "subject (1-128 characters) and at most 100 items",
            ));
        }
        let t = now();
        let purpose = auth
            .service
            .purpose_by_id(&req.purpose_id)
            .filter(|p| !p.row.provider_id.is_platform());
        let provider_id = purpose
            .map(|p| p.row.provider_id.clone())
            .unwrap_or_default();
        let rates = &self.config;
        let rate_ok = self.rates.allow(
            &format!("consumer:{consumer_id}"),
            f64::from(rates.consumer_rate_per_second),
            f64::from(rates.consumer_burst),
        );
        let context = if rate_ok {
            self.store
                .ticket_context(&consumer_id, &provider_id, &req.purpose_id, &req.subject)
                .await?
        } else {
            None
        };
        let ticket_purpose = purpose.map(|p| TicketPurpose {
            id: p.row.purpose_id.to_string(),
            legal_basis: p.row.legal_basis,
            items: p.row.items.clone(),
        });
        let consent = context
            .as_ref()
            .and_then(|c| c.consent.as_ref())
            .map(|c| ConsentFacts {
                id: c.id.to_string(),
                status: c.status,
                items: c.items.clone(),
                expires_at: c.expires_at,
            });
        let resident = context.as_ref().and_then(|c| c.resident.clone());
        let decision = if !rate_ok {
            Err(Code::RateLimited)
        } else if let Some(ctx) = &context {
            let resident_ok = resident.as_ref().is_none_or(|r| {
                self.rates.allow(
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
                        restriction: r.restriction,
                        erased: r.erased,
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
                let commit = commit_using(&auth.credential).leaf(leaf(
                    &Event::TicketRefused {
                        subject: account
                            .as_ref()
                            .map(|a| self.keys.ledger_subject(a).into_string()),
                        consumer: consumer_id.to_string(),
                        purpose: req.purpose_id.to_string(),
                        items: req.items.clone(),
                        reason: code,
                    },
                    &account.iter().collect::<Vec<_>>(),
                    t,
                ));
                match self.committer.commit(commit).await {
                    Ok(_) => {}
                    Err(StoreError::Conflict(_)) => return Err(replayed()),
                    Err(e) => return Err(e.into()),
                }
                metrics::counter!("tsunagu_tickets_total", "outcome" => code.as_str()).increment(1);
                return Err(Refusal::new(code, refusal_detail(code)));
            }
        };
        let account =
            account.ok_or_else(|| Refusal::internal("ticket", "decided without a resident"))?;
        let purpose =
            purpose.ok_or_else(|| Refusal::internal("ticket", "decided without a purpose"))?;
        let provider = self
            .directory
            .get(&provider_id)
            .await?
            .ok_or_else(|| Refusal::internal("ticket", "provider vanished"))?;
        let endpoint = provider
            .row
            .endpoint
            .clone()
            .ok_or_else(|| Refusal::internal("ticket", "provider without endpoint"))?;

        let ticket_id =
            TicketId::from(random::token(16).map_err(|e| Refusal::internal("ticket id", e))?);
        let exp = t + self.config.ticket_ttl_seconds;
        let provider_subject = self.keys.pairwise_id(&provider_id, &account);
        let claims = json!({
            "iss": self.public_url,
            "aud": provider_id,
            "sub": provider_subject,
            "cns": consumer_id,
            "purpose": req.purpose_id,
            "items": req.items,
            "basis": basis.claim(),
            "jti": ticket_id,
            "iat": t,
            "exp": exp,
            "cnf": auth.credential.confirmation(),
        });
        let signed = jws::sign_json(&self.keys.signing(), Some(TICKET_TYP), &claims)
            .map_err(|e| Refusal::internal("signing a ticket", e))?;

        let (requester, reason, request_sha256) = match &basis {
            Basis::Rule(_) => {
                let digest = hex::encode(sha256(
                    &jcs::to_vec(&json!({"requester": req.requester, "reason": req.reason}))
                        .map_err(|e| Refusal::internal("request digest", e))?,
                ));
                (req.requester.clone(), req.reason.clone(), Some(digest))
            }
            Basis::Consent(_) => (None, None, None),
        };
        let mut commit = commit_using(&auth.credential)
            .change(ExchangeChange::InsertTicket(Box::new(TicketRow {
                id: ticket_id.clone(),
                consumer_id: consumer_id.clone(),
                provider_id: provider_id.clone(),
                account_id: account.clone(),
                purpose_id: req.purpose_id.clone(),
                items: req.items.clone(),
                basis: basis.clone(),
                requester,
                reason,
                issued_at: t,
                expires_at: exp,
                consumer_receipt: None,
                provider_receipt: None,
                state: TicketState::Open,
                updated_at: t,
            })))
            .change(ExchangeChange::LinkSubject {
                sector: provider_id.clone(),
                subject: provider_subject,
                account_id: account.clone(),
                created_at: t,
            });
        if let Basis::Rule(rule) = &basis {
            commit.push(ExchangeChange::InsertAlert(AlertRow {
                seq: 0,
                kind: AlertKind::LegalBasisUse,
                service_id: Some(consumer_id.clone()),
                ticket_id: Some(ticket_id.clone()),
                detail: format!(
                    "ticket {ticket_id}: {} used the standing rule `{rule}` ({}) for items {}",
                    auth.service.row.name,
                    purpose.purpose.title_ja,
                    req.items.join(", ")
                ),
                created_at: t,
            }));
            tracing::warn!(consumer = %consumer_id, rule = %rule, "a legal-basis rule was used");
        }
        let commit = commit.leaf(leaf(
            &Event::TicketIssued {
                subject: self.keys.ledger_subject(&account).into_string(),
                ticket: ticket_id.to_string(),
                consumer: consumer_id.to_string(),
                provider: provider_id.to_string(),
                purpose: req.purpose_id.to_string(),
                items: req.items.clone(),
                basis: basis.claim(),
                request_sha256,
            },
            &[&account],
            t,
        ));
        match self.committer.commit(commit).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => return Err(replayed()),
            Err(e) => return Err(e.into()),
        }
        metrics::counter!("tsunagu_tickets_total", "outcome" => "issued").increment(1);
        Ok(IssuedTicket {
            ticket: signed,
            ticket_id,
            provider_endpoint: endpoint,
            provider: provider_id,
            expires_at: exp,
            basis: basis.claim(),
        })
    }

    /// A receipt: the SHA-256 of the payload one side sent or received. When both are in,
    /// the exchange closes (completed, or flagged as a mismatch).
    pub async fn receipt(
        &self,
        auth: &ServiceAuth,
        req: ReceiptRequest,
    ) -> Outcome<ReceiptRecorded> {
        let hash = req.payload_sha256.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "payload_sha256 is 64 hex digits",
            ));
        }
        let service_id = &auth.service.row.id;
        let ticket = self
            .store
            .ticket(&req.ticket_id)
            .await?
            .filter(|t| t.consumer_id == *service_id || t.provider_id == *service_id)
            .ok_or_else(|| Refusal::new(Code::UnknownTicket, "no such ticket for this service"))?;
        let side = if ticket.consumer_id == *service_id {
            ReceiptSide::Consumer
        } else {
            ReceiptSide::Provider
        };
        let already = match side {
            ReceiptSide::Consumer => ticket.consumer_receipt.is_some(),
            ReceiptSide::Provider => ticket.provider_receipt.is_some(),
        };
        if already {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "this side already sent its receipt for the ticket",
            ));
        }
        let t = now();
        let commit = commit_using(&auth.credential)
            .change(ExchangeChange::SetReceipt {
                ticket_id: ticket.id.clone(),
                side,
                payload_sha256: hash.clone(),
                updated_at: t,
            })
            .leaf(leaf(
                &Event::ExchangeReceipt {
                    ticket: ticket.id.to_string(),
                    service: service_id.to_string(),
                    payload_sha256: hash.clone(),
                },
                &[&ticket.account_id],
                t,
            ));
        match self.committer.commit(commit).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(Refusal::new(
                    Code::Unauthorized,
                    "client assertion replayed, or the receipt was already sent",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let ticket = self
            .store
            .ticket(&ticket.id)
            .await?
            .ok_or_else(|| Refusal::internal("receipt", "ticket vanished"))?;
        let closed = match (&ticket.consumer_receipt, &ticket.provider_receipt) {
            (Some(c), Some(p)) => ticket.state.on_receipts(c, p).map(|state| (state, c)),
            _ => None,
        };
        let state = match closed {
            Some((state, payload)) => {
                let (event, alert) = match state {
                    TicketState::Completed => (
                        Event::ExchangeCompleted {
                            ticket: ticket.id.to_string(),
                            payload_sha256: payload.clone(),
                        },
                        None,
                    ),
                    _ => (
                        Event::ExchangeFlagged {
                            ticket: ticket.id.to_string(),
                            reason: Code::ReceiptMismatch,
                        },
                        Some(AlertRow {
                            seq: 0,
                            kind: AlertKind::ReceiptMismatch,
                            service_id: Some(ticket.provider_id.clone()),
                            ticket_id: Some(ticket.id.clone()),
                            detail: format!(
                                "ticket {}: the consumer and the provider report different payloads",
                                ticket.id
                            ),
                            created_at: t,
                        }),
                    ),
                };
                let mut commit = Commit::new().change(ExchangeChange::CloseTicket {
                    ticket_id: ticket.id.clone(),
                    state,
                    updated_at: t,
                });
                if let Some(alert) = alert {
                    commit.push(ExchangeChange::InsertAlert(alert));
                }
                match self
                    .committer
                    .commit(commit.leaf(leaf(&event, &[&ticket.account_id], t)))
                    .await
                {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                metrics::counter!("tsunagu_exchanges_total", "state" => state.as_str())
                    .increment(1);
                state
            }
            None => ticket.state,
        };
        Ok(ReceiptRecorded {
            ticket_id: ticket.id,
            side,
            state,
        })
    }

    /// `GET /v1/exchange/consents?since=`: the caller's consent feed, with its own pairwise
    /// ids. Uses up the assertion.
    pub async fn feed(&self, auth: &ServiceAuth, since: i64, limit: u32) -> Outcome<Feed> {
        self.consume(&auth.credential).await?;
        self.feed_of(&auth.service.row.id, since, limit).await
    }

    /// A service's consent feed after the cursor `since` (for a service already signed
    /// in, e.g. to its console).
    pub async fn feed_of(&self, service_id: &ServiceId, since: i64, limit: u32) -> Outcome<Feed> {
        let rows = self
            .store
            .consent_events(service_id, since.max(0), limit.clamp(1, 1000))
            .await?;
        let next = rows.last().map(|r| r.seq).unwrap_or(since.max(0));
        Ok(Feed {
            events: rows
                .into_iter()
                .map(|e| FeedEvent {
                    cursor: e.seq,
                    subject: self.keys.pairwise_id(service_id, &e.account_id),
                    purpose_id: e.purpose_id,
                    consumer: e.consumer_id,
                    provider: e.provider_id,
                    status: e.status.feed_status(),
                    items: e.items,
                    expires_at: e.expires_at,
                    at: e.created_at,
                    reason: e.reason,
                })
                .collect(),
            next,
        })
    }

    /// Flags exchanges whose receipts did not both arrive within the grace period. Returns
    /// how many.
    pub async fn sweep_missing_receipts(&self) -> Result<u64, StoreError> {
        let t = now();
        let overdue = self
            .store
            .overdue_tickets(t - self.config.receipt_grace_seconds, 500)
            .await?;
        let mut flagged = 0;
        for ticket in overdue {
            let Some(state) = ticket.state.on_overdue() else {
                continue;
            };
            let commit = Commit::new()
                .change(ExchangeChange::CloseTicket {
                    ticket_id: ticket.id.clone(),
                    state,
                    updated_at: t,
                })
                .change(ExchangeChange::InsertAlert(AlertRow {
                    seq: 0,
                    kind: AlertKind::ReceiptMissing,
                    service_id: Some(if ticket.consumer_receipt.is_none() {
                        ticket.consumer_id.clone()
                    } else {
                        ticket.provider_id.clone()
                    }),
                    ticket_id: Some(ticket.id.clone()),
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
                }))
                .leaf(leaf(
                    &Event::ExchangeFlagged {
                        ticket: ticket.id.to_string(),
                        reason: Code::ReceiptMissing,
                    },
                    &[&ticket.account_id],
                    t,
                ));
            match self.committer.commit(commit).await {
                Ok(_) => flagged += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(flagged)
    }

    /// Signs a service in to a console: an assertion for `audience` signed with a key of
    /// the service's JWKS; uses up its `jti`.
    pub async fn sign_in(
        &self,
        service_id: &str,
        assertion: &str,
        audience: &str,
    ) -> Outcome<ServiceId> {
        if service_id.is_empty() || assertion.is_empty() {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "service_id and assertion are required",
            ));
        }
        let entry = self
            .directory
            .find(service_id)
            .await?
            .ok_or_else(|| Refusal::new(Code::Unauthorized, "unknown service or key"))?;
        let verified = assertion::check_for(assertion, &[audience.to_owned()], |iss, kid| {
            entry.signing_key(iss, kid)
        })?;
        self.assertions.consume(&verified).await?;
        Ok(ServiceId::from(verified.party))
    }

    /// Alerts after the cursor `since`, oldest first.
    pub async fn alerts(&self, since: i64, limit: u32) -> Outcome<Vec<AlertRow>> {
        Ok(self.store.alerts(since.max(0), limit).await?)
    }

    /// A ticket, for the committee's view of an alert.
    pub async fn ticket_by_id(&self, id: &TicketId) -> Outcome<Option<TicketRow>> {
        Ok(self.store.ticket(id).await?)
    }

    /// Ticket counts where the service is the consumer or the provider.
    pub async fn ticket_counts(
        &self,
        service_id: &ServiceId,
    ) -> Outcome<Vec<(ReceiptSide, TicketState, u64)>> {
        Ok(self.store.ticket_counts(service_id).await?)
    }
}
