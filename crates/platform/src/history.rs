//! The resident's history (SPEC §7): their ledger leaves, newest first, each with what is
//! needed to prove it included in a signed tree head, and explained: which service asked,
//! for which purpose and items, on which basis, with what outcome and why. Also the
//! ledger's entries for auditors.

use crate::assertion::Assertions;
use crate::config::LedgerConfig;
use crate::directory::Directory;
use crate::identity::Session;
use crate::keys::PlatformKeys;
use crate::ledger::LedgerService;
use crate::{Outcome, Refusal, now};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tsunagu_core::event::{CapabilityRecord, Event, LeafRecord};
use tsunagu_core::service::{LegalBasis, ServiceStatus};
use tsunagu_core::ticket::TicketState;
use tsunagu_core::{Code, ConsentId, PurposeId, ServiceId, TicketId};
use tsunagu_crypto::{jcs, sha256};
use tsunagu_ledger::SignedTreeHead;
pub use tsunagu_store::LeafRow;
use tsunagu_store::{Store, StoreError};

/// Most entries in one answer to an auditor.
pub const MAX_ENTRIES: u64 = 1000;

/// A service named in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceRef {
    pub service_id: ServiceId,
    /// The service's name, or its id when it is not known.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceStatus>,
}

/// An item of a purpose, named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedItem {
    pub item: String,
    pub title_ja: String,
}

/// A purpose named in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurposeRef {
    pub purpose_id: PurposeId,
    pub title_ja: Option<String>,
    pub title_en: Option<String>,
    pub legal_basis: Option<LegalBasis>,
    pub citation: Option<String>,
    pub items: Vec<NamedItem>,
}

/// What a history entry is about, where it can be said.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Details {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_id: Option<ConsentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<TicketId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<ServiceRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<ServiceRef>,
    /// The service of a receipt, or where a pairwise id was shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<PurposeRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// A ticket's basis claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    /// Where the ticket's exchange stands now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange: Option<TicketState>,
    /// Who asked under a legal-basis rule, as kept with the ticket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Option<String>>,
    /// Whether the kept requester and reason still hash to what the leaf committed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_matches_ledger: Option<bool>,
}

/// The outcome of a history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryOutcome {
    Recorded,
    Refused,
    /// The content is past retention: only its hash is kept.
    Expired,
}

impl EntryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryOutcome::Recorded => "recorded",
            EntryOutcome::Refused => "refused",
            EntryOutcome::Expired => "expired",
        }
    }
}

/// One entry of the resident's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryItem {
    pub leaf: LeafRow,
    /// The leaf's content, while it is kept.
    pub record: Option<LeafRecord>,
    /// The content of a capability's leaf (staff views, data-subject requests), while kept.
    pub other: Option<CapabilityRecord>,
    pub outcome: EntryOutcome,
    pub details: Option<Details>,
}

impl HistoryItem {
    /// The event's `type`.
    pub fn kind(&self) -> Option<&str> {
        match (&self.record, &self.other) {
            (Some(r), _) => Some(r.event.kind()),
            (None, Some(o)) => Some(o.kind.as_str()),
            (None, None) => None,
        }
    }

    /// Why it happened, when the event says.
    pub fn reason(&self) -> Option<String> {
        match (&self.record, &self.other) {
            (Some(r), _) => r.event.reason(),
            (None, Some(o)) => o.reason.clone(),
            (None, None) => None,
        }
    }
}

/// A page of the history, newest first.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub items: Vec<HistoryItem>,
    /// The index to ask below for the next page, if there may be more.
    pub next_before: Option<u64>,
    /// The tree head every entry's inclusion can be proven against.
    pub sth: SignedTreeHead,
}

/// The resident's history and the auditors' view of the ledger.
#[derive(Clone)]
pub struct History {
    store: Arc<dyn Store>,
    directory: Arc<Directory>,
    keys: Arc<PlatformKeys>,
    ledger: Arc<LedgerService>,
    assertions: Assertions,
    config: LedgerConfig,
}

impl History {
    pub fn new(
        store: Arc<dyn Store>,
        directory: Arc<Directory>,
        keys: Arc<PlatformKeys>,
        ledger: Arc<LedgerService>,
        assertions: Assertions,
        config: LedgerConfig,
    ) -> History {
        History {
            store,
            directory,
            keys,
            ledger,
            assertions,
            config,
        }
    }

    /// `GET /v1/me/history`.
    pub async fn page(
        &self,
        session: &Session,
        before: Option<u64>,
        limit: u32,
    ) -> Outcome<HistoryPage> {
        let limit = limit.clamp(1, 200);
        let sth = self.ledger.sth(now()).await?;
        let rows = self
            .store
            .subject_leaves(&session.account_id, before, limit)
            .await?;
        let next_before = if rows.len() as u32 == limit {
            rows.last().map(|r| r.index)
        } else {
            None
        };
        let mut names: HashMap<ServiceId, ServiceRef> = HashMap::new();
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let record: Option<LeafRecord> = row
                .input
                .as_ref()
                .and_then(|input| serde_json::from_slice(input).ok());
            // A leaf of a capability's event (its type is not the platform's).
            let other: Option<CapabilityRecord> = match (&record, &row.input) {
                (None, Some(input)) => serde_json::from_slice(input).ok(),
                _ => None,
            };
            let outcome = match (&record, &other) {
                (Some(r), _) if r.event.is_refusal() => EntryOutcome::Refused,
                (Some(_), _) => EntryOutcome::Recorded,
                (None, Some(o)) if o.is_refusal() => EntryOutcome::Refused,
                (None, Some(_)) => EntryOutcome::Recorded,
                (None, None) => EntryOutcome::Expired,
            };
            let details = match &record {
                Some(r) => self.explain(&r.event, session, &mut names).await?,
                None => None,
            };
            items.push(HistoryItem {
                leaf: row,
                record,
                other,
                outcome,
                details,
            });
        }
        Ok(HistoryPage {
            items,
            next_before,
            sth,
        })
    }

    /// A service's display data, cached for one history page.
    async fn service(
        &self,
        id: &str,
        names: &mut HashMap<ServiceId, ServiceRef>,
    ) -> Outcome<ServiceRef> {
        let id = ServiceId::from(id);
        if let Some(v) = names.get(&id) {
            return Ok(v.clone());
        }
        let v = match self.directory.get(&id).await? {
            Some(entry) => ServiceRef {
                service_id: id.clone(),
                name: entry.row.name.clone(),
                organization: Some(entry.row.organization.clone()),
                status: Some(entry.row.status),
            },
            None => ServiceRef {
                service_id: id.clone(),
                name: id.to_string(),
                organization: None,
                status: None,
            },
        };
        names.insert(id, v.clone());
        Ok(v)
    }

    async fn purpose(
        &self,
        consumer: &str,
        purpose_id: &str,
        items: &[String],
        provider: Option<&str>,
    ) -> Outcome<PurposeRef> {
        let entry = self.directory.find(consumer).await?;
        let p = entry
            .as_ref()
            .and_then(|e| e.purpose(purpose_id))
            .map(|p| p.purpose.clone());
        let source = match provider {
            Some(id) => self.directory.find(id).await?,
            None => None,
        };
        Ok(PurposeRef {
            purpose_id: purpose_id.into(),
            title_ja: p.as_ref().map(|p| p.title_ja.clone()),
            title_en: p.as_ref().map(|p| p.title_en.clone()),
            legal_basis: p.as_ref().map(|p| p.legal_basis),
            citation: p.as_ref().and_then(|p| p.citation.clone()),
            items: items
                .iter()
                .map(|i| NamedItem {
                    item: i.clone(),
                    title_ja: source
                        .as_ref()
                        .map(|s| s.item_title(i))
                        .unwrap_or_else(|| i.clone()),
                })
                .collect(),
        })
    }

    async fn explain(
        &self,
        event: &Event,
        session: &Session,
        names: &mut HashMap<ServiceId, ServiceRef>,
    ) -> Outcome<Option<Details>> {
        Ok(Some(match event {
            Event::ConsentGranted {
                consent,
                consumer,
                provider,
                purpose: p,
                items,
                expires_at,
                ..
            } => Details {
                consent_id: Some(consent.as_str().into()),
                consumer: Some(self.service(consumer, names).await?),
                provider: Some(self.service(provider, names).await?),
                purpose: Some(self.purpose(consumer, p, items, Some(provider)).await?),
                expires_at: Some(*expires_at),
                ..Details::default()
            },
            Event::ConsentRevoked { consent, .. }
            | Event::ConsentExpired { consent, .. }
            | Event::ConsentExpiryChanged { consent, .. } => {
                let id = ConsentId::from(consent.as_str());
                match self
                    .store
                    .consent(&id)
                    .await?
                    .filter(|c| c.account_id == session.account_id)
                {
                    Some(c) => Details {
                        consent_id: Some(id),
                        consumer: Some(self.service(c.consumer_id.as_str(), names).await?),
                        provider: Some(self.service(c.provider_id.as_str(), names).await?),
                        purpose: Some(
                            self.purpose(
                                c.consumer_id.as_str(),
                                c.purpose_id.as_str(),
                                &c.items,
                                Some(c.provider_id.as_str()),
                            )
                            .await?,
                        ),
                        ..Details::default()
                    },
                    None => Details {
                        consent_id: Some(id),
                        ..Details::default()
                    },
                }
            }
            Event::ConsentRefused {
                purpose: Some(p),
                consumer: Some(consumer),
                ..
            } => Details {
                consumer: Some(self.service(consumer, names).await?),
                purpose: Some(self.purpose(consumer, p, &[], None).await?),
                ..Details::default()
            },
            Event::TicketIssued {
                ticket,
                consumer,
                provider,
                purpose: p,
                items,
                basis,
                request_sha256,
                ..
            } => {
                let id = TicketId::from(ticket.as_str());
                let mut details = Details {
                    ticket_id: Some(id.clone()),
                    consumer: Some(self.service(consumer, names).await?),
                    provider: Some(self.service(provider, names).await?),
                    purpose: Some(self.purpose(consumer, p, items, Some(provider)).await?),
                    basis: Some(basis.clone()),
                    ..Details::default()
                };
                if let Some(row) = self
                    .store
                    .ticket(&id)
                    .await?
                    .filter(|t| t.account_id == session.account_id)
                {
                    details.exchange = Some(row.state);
                    if let Some(expected) = request_sha256 {
                        let actual =
                            jcs::to_vec(&json!({"requester": row.requester, "reason": row.reason}))
                                .map(|bytes| hex::encode(sha256(&bytes)))
                                .unwrap_or_default();
                        // The leaf commits to the requester and reason: a changed record
                        // shows.
                        details.request_matches_ledger = Some(&actual == expected);
                        details.requester = Some(row.requester);
                        details.reason = Some(row.reason);
                    }
                }
                details
            }
            Event::TicketRefused {
                consumer,
                purpose: p,
                items,
                ..
            } => Details {
                consumer: Some(self.service(consumer, names).await?),
                purpose: Some(self.purpose(consumer, p, items, None).await?),
                ..Details::default()
            },
            Event::ExchangeReceipt {
                ticket, service: s, ..
            } => Details {
                ticket_id: Some(ticket.as_str().into()),
                service: Some(self.service(s, names).await?),
                ..Details::default()
            },
            Event::ExchangeCompleted { ticket, .. } | Event::ExchangeFlagged { ticket, .. } => {
                Details {
                    ticket_id: Some(ticket.as_str().into()),
                    ..Details::default()
                }
            }
            Event::PairwiseShown { service: s, .. } => Details {
                service: Some(self.service(s, names).await?),
                ..Details::default()
            },
            _ => return Ok(None),
        }))
    }

    /// `GET /v1/ledger/entries`: leaves `[start, end)`, for auditors (an auditor's bearer
    /// assertion) unless the deployment publishes entries.
    pub async fn entries(
        &self,
        auditor: Option<&str>,
        start: u64,
        end: u64,
    ) -> Outcome<Vec<LeafRow>> {
        if !self.config.public_entries {
            let token = auditor.ok_or_else(|| {
                Refusal::new(
                    Code::Unauthorized,
                    "ledger entries are for auditors: send an auditor assertion",
                )
            })?;
            let auditors = &self.config.auditors;
            self.assertions
                .verify(token, |id, _kid| {
                    auditors.iter().find(|a| a.id == id).map(|a| a.jwk.clone())
                })
                .await?;
        }
        if start >= end || end - start > MAX_ENTRIES {
            return Err(Refusal::new(
                Code::InvalidRange,
                format!("need start < end and at most {MAX_ENTRIES} entries"),
            ));
        }
        let size = self.ledger.sync().await?;
        if end > size {
            return Err(Refusal::new(
                Code::InvalidRange,
                format!("the log has {size} entries"),
            ));
        }
        Ok(self.store.leaves(start, end).await?)
    }

    /// The resident's pseudonym in the ledger.
    /// Deletes the contents of leaves older than `[ledger] retention_days` (their hashes,
    /// and so every proof, stay); answers how many. The tree-head key changes
    /// (`ledger.key_rotated`, no personal data) are kept: an auditor's `ledger verify`
    /// follows them years later.
    pub async fn apply_retention(&self, now: i64) -> Result<u64, StoreError> {
        let cutoff = now - i64::from(self.config.retention_days) * 86_400;
        let keep = crate::rotation::announced_leaves(&self.store.keys(crate::keys::LEDGER).await?);
        self.store.expire_leaf_inputs(cutoff, &keep).await
    }

    pub fn ledger_subject(&self, session: &Session) -> tsunagu_core::PairwiseId {
        self.keys.ledger_subject(&session.account_id)
    }
}
