//! The resident's history (SPEC §7): their ledger leaves, newest first, each with what is
//! needed to prove it included in a signed tree head, and explained: which service asked,
//! for which purpose and items, on which basis, with what outcome and why.

use crate::app::{App, now};
use crate::error::ApiError;
use crate::identity::Session;
use serde_json::{Value, json};
use std::collections::HashMap;
use tsunagu_core::event::{Event, LeafRecord};
use tsunagu_crypto::{b64, jcs, sha256};

/// `GET /v1/me/history`.
pub async fn history(
    app: &App,
    session: &Session,
    before: Option<u64>,
    limit: u32,
) -> Result<Value, ApiError> {
    let limit = limit.clamp(1, 200);
    let sth = app.ledger.sth(now()).await?;
    let rows = app
        .store
        .subject_leaves(&session.account_id, before, limit)
        .await?;
    let next = if rows.len() as u32 == limit {
        rows.last().map(|r| r.index)
    } else {
        None
    };
    let mut names: HashMap<String, Value> = HashMap::new();
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let record: Option<LeafRecord> = row
            .input
            .as_ref()
            .and_then(|input| serde_json::from_slice(input).ok());
        let event = record.as_ref().and_then(|r| serde_json::to_value(r).ok());
        let outcome = match &record {
            None => "expired",
            Some(r) if r.event.is_refusal() => "refused",
            Some(_) => "recorded",
        };
        let details = match &record {
            Some(r) => explain(app, &r.event, session, &mut names).await?,
            None => Value::Null,
        };
        items.push(json!({
            "leaf_index": row.index,
            "leaf_input": row.input.as_ref().map(b64::std_encode),
            "leaf_hash": b64::std_encode(row.hash),
            "at": row.created_at,
            "type": record.as_ref().map(|r| r.event.kind()),
            "outcome": outcome,
            "reason": event.as_ref().and_then(|e| e.get("reason")).cloned(),
            "event": event,
            "details": details,
        }));
    }
    Ok(json!({ "items": items, "next_before": next, "sth": sth }))
}

/// A service's display data, cached for one history page.
async fn service(
    app: &App,
    id: &str,
    names: &mut HashMap<String, Value>,
) -> Result<Value, ApiError> {
    if let Some(v) = names.get(id) {
        return Ok(v.clone());
    }
    let v = match app.directory.get(app.store.as_ref(), id).await? {
        Some(entry) => {
            json!({"service_id": id, "name": entry.row.name, "organization": entry.row.organization, "status": entry.row.status})
        }
        None => json!({"service_id": id, "name": id}),
    };
    names.insert(id.to_owned(), v.clone());
    Ok(v)
}

async fn purpose(
    app: &App,
    consumer: &str,
    purpose_id: &str,
    items: &[String],
    provider: Option<&str>,
) -> Result<Value, ApiError> {
    let entry = app.directory.get(app.store.as_ref(), consumer).await?;
    let p = entry
        .as_ref()
        .and_then(|e| e.purpose(purpose_id))
        .map(|p| p.purpose.clone());
    let source = match provider {
        Some(id) => app.directory.get(app.store.as_ref(), id).await?,
        None => None,
    };
    Ok(json!({
        "purpose_id": purpose_id,
        "title_ja": p.as_ref().map(|p| p.title_ja.clone()),
        "title_en": p.as_ref().map(|p| p.title_en.clone()),
        "legal_basis": p.as_ref().map(|p| p.legal_basis),
        "citation": p.as_ref().and_then(|p| p.citation.clone()),
        "items": items.iter().map(|i| json!({
            "item": i,
            "title_ja": source.as_ref().map(|s| s.item_title(i)).unwrap_or_else(|| i.clone()),
        })).collect::<Vec<_>>(),
    }))
}

async fn explain(
    app: &App,
    event: &Event,
    session: &Session,
    names: &mut HashMap<String, Value>,
) -> Result<Value, ApiError> {
    Ok(match event {
        Event::ConsentGranted {
            consent,
            consumer,
            provider,
            purpose: p,
            items,
            expires_at,
            ..
        } => json!({
            "consent_id": consent,
            "consumer": service(app, consumer, names).await?,
            "provider": service(app, provider, names).await?,
            "purpose": purpose(app, consumer, p, items, Some(provider)).await?,
            "expires_at": expires_at,
        }),
        Event::ConsentRevoked { consent, .. }
        | Event::ConsentExpired { consent, .. }
        | Event::ConsentExpiryChanged { consent, .. } => {
            match app
                .store
                .consent(consent)
                .await?
                .filter(|c| c.account_id == session.account_id)
            {
                Some(c) => json!({
                    "consent_id": consent,
                    "consumer": service(app, &c.consumer_id, names).await?,
                    "provider": service(app, &c.provider_id, names).await?,
                    "purpose": purpose(app, &c.consumer_id, &c.purpose_id, &c.items, Some(&c.provider_id)).await?,
                }),
                None => json!({ "consent_id": consent }),
            }
        }
        Event::ConsentRefused {
            purpose: Some(p),
            consumer: Some(consumer),
            ..
        } => json!({
            "consumer": service(app, consumer, names).await?,
            "purpose": purpose(app, consumer, p, &[], None).await?,
        }),
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
            let mut v = json!({
                "ticket_id": ticket,
                "consumer": service(app, consumer, names).await?,
                "provider": service(app, provider, names).await?,
                "purpose": purpose(app, consumer, p, items, Some(provider)).await?,
                "basis": basis,
            });
            if let Some(row) = app
                .store
                .ticket(ticket)
                .await?
                .filter(|t| t.account_id == session.account_id)
            {
                v["exchange"] = json!(row.state);
                if let Some(expected) = request_sha256 {
                    let actual =
                        jcs::to_vec(&json!({"requester": row.requester, "reason": row.reason}))
                            .map(|bytes| hex::encode(sha256(&bytes)))
                            .unwrap_or_default();
                    v["requester"] = json!(row.requester);
                    v["reason"] = json!(row.reason);
                    // The leaf commits to the requester and reason: a changed record shows.
                    v["request_matches_ledger"] = json!(&actual == expected);
                }
            }
            v
        }
        Event::TicketRefused {
            consumer,
            purpose: p,
            items,
            ..
        } => json!({
            "consumer": service(app, consumer, names).await?,
            "purpose": purpose(app, consumer, p, items, None).await?,
        }),
        Event::ExchangeReceipt {
            ticket, service: s, ..
        } => json!({
            "ticket_id": ticket,
            "service": service(app, s, names).await?,
        }),
        Event::ExchangeCompleted { ticket, .. } | Event::ExchangeFlagged { ticket, .. } => {
            json!({ "ticket_id": ticket })
        }
        Event::PairwiseShown { service: s, .. } => {
            json!({ "service": service(app, s, names).await? })
        }
        _ => Value::Null,
    })
}
