//! 情報提供の管理 (dynamic opt-in, SPEC §5): what a resident may consent to, their signed
//! consents and changes, consent receipts (ISO/IEC TS 27560 shape), the expiry sweep, and
//! showing a pairwise id at a service.

use crate::app::{App, iso8601, now};
use crate::error::ApiError;
use crate::identity::{Session, ledger_subject};
use crate::ledger::leaf;
use crate::services::{PurposeEntry, ServiceEntry};
use serde_json::{Value, json};
use std::sync::Arc;
use tsunagu_core::Code;
use tsunagu_core::consent::{
    self, ChangeAction, ChangePayload, ConsentPayload, ConsentStatus, PurposeFacts, ResidentFacts,
};
use tsunagu_core::event::Event;
use tsunagu_core::identity::DeviceStatus;
use tsunagu_core::service::{LegalBasis, PLATFORM_PROVIDER, ServiceStatus};
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::{jws, random, sha256};
use tsunagu_store::{
    Commit, ConsentChange, ConsentEventRow, ConsentRow, DeviceRow, ExchangeChange, StoreError,
};

/// The pairwise id of an account at a service (its sector is the service id).
pub fn pairwise(app: &App, service_id: &str, account_id: &str) -> String {
    app.keys.pairwise.subject(service_id, account_id)
}

fn max_seconds(app: &App) -> i64 {
    app.config.exchange.max_consent_days * 86_400
}

/// Whether a service counts as approved for data to flow (the platform, as the provider of
/// identity claims, always does).
fn approved(status: Option<ServiceStatus>, id: &str) -> bool {
    id == PLATFORM_PROVIDER || status == Some(ServiceStatus::Approved)
}

/// A resident-signed JWS: parsed, its signing device found (header `kid` = the device key's
/// thumbprint), belonging to the session's account, active, unexpired, and the signature
/// verified.
async fn verify_resident_jws(
    app: &App,
    session: &Session,
    compact: &str,
) -> Result<(jws::Jws, DeviceRow), ApiError> {
    let token = jws::parse(compact)
        .map_err(|e| ApiError::new(Code::InvalidRequest, format!("signed request: {e}")))?;
    let kid = token.kid.clone().ok_or_else(|| {
        ApiError::new(
            Code::InvalidRequest,
            "the JWS header needs `kid` = the device key's RFC 7638 thumbprint",
        )
    })?;
    let device = app
        .store
        .device_by_jkt(&kid)
        .await?
        .filter(|d| d.account_id == session.account_id)
        .ok_or_else(|| {
            ApiError::new(
                Code::SignatureInvalid,
                "the signing key is not a device of this resident",
            )
        })?;
    if device.status == DeviceStatus::Revoked {
        return Err(ApiError::new(
            Code::CredentialRevoked,
            "the signing device was revoked",
        ));
    }
    if device.expires_at <= now() {
        return Err(ApiError::new(
            Code::CredentialExpired,
            "the signing device's credential has expired",
        ));
    }
    let key = PublicJwk::from_json(&device.jwk).map_err(|e| ApiError::internal("device key", e))?;
    token.verify(&key).map_err(|_| {
        ApiError::new(
            Code::SignatureInvalid,
            "the signature does not verify with the device key",
        )
    })?;
    Ok((token, device))
}

async fn refuse(
    app: &App,
    session: &Session,
    purpose: Option<&str>,
    consumer: Option<&str>,
    err: ApiError,
) -> ApiError {
    let commit = Commit {
        changes: tsunagu_store::changes![],
        leaves: vec![leaf(
            Event::ConsentRefused {
                subject: ledger_subject(app, &session.account_id),
                purpose: purpose.map(str::to_owned),
                consumer: consumer.map(str::to_owned),
                reason: err.code,
            },
            &[&session.account_id],
            now(),
        )],
    };
    if let Err(e) = app.committer.commit(commit).await {
        tracing::error!(error = %e, "recording a consent refusal failed");
    }
    metrics::counter!("tsunagu_consents_total", "outcome" => err.code.as_str()).increment(1);
    err
}

async fn purpose_facts(
    app: &App,
    consumer: &str,
    purpose_id: &str,
) -> Result<Option<(Arc<ServiceEntry>, PurposeEntry, PurposeFacts)>, ApiError> {
    let Some(entry) = app.directory.get(app.store.as_ref(), consumer).await? else {
        return Ok(None);
    };
    let Some(purpose) = entry.purpose(purpose_id).cloned() else {
        return Ok(None);
    };
    let provider_status = if purpose.row.provider_id == PLATFORM_PROVIDER {
        None
    } else {
        app.store
            .service(&purpose.row.provider_id)
            .await?
            .map(|s| s.status)
    };
    let facts = PurposeFacts {
        consumer: consumer.to_owned(),
        provider: purpose.row.provider_id.clone(),
        items: purpose.row.items.clone(),
        legal_basis: purpose.row.legal_basis,
        terms_sha256: purpose.row.terms_sha256.clone(),
        services_approved: entry.row.status == ServiceStatus::Approved
            && approved(provider_status, &purpose.row.provider_id),
    };
    Ok(Some((entry, purpose, facts)))
}

async fn resident(app: &App, session: &Session) -> Result<ResidentFacts, ApiError> {
    let account = app
        .store
        .account(&session.account_id)
        .await?
        .ok_or_else(|| ApiError::new(Code::Unauthorized, "the account no longer exists"))?;
    Ok(ResidentFacts {
        level: account.level,
        status: account.status,
    })
}

fn consent_message(code: Code) -> &'static str {
    match code {
        Code::ProvisionalId => {
            "a provisional ID (仮ID) may not consent to data linkage: proof the ID with the card first"
        }
        Code::ReproofRequired => {
            "the card certificate that proofed this ID was revoked: proof it again first"
        }
        Code::StaleRequest => "issued_at is more than five minutes from now",
        Code::PurposeNotApproved => "no such purpose, or it or one of its services is not approved",
        Code::NotConsentable => "this flow rests on a legal basis: it is shown, not switched",
        Code::TermsMismatch => {
            "the consent does not match the purpose's current terms (consumer, provider, terms_sha256)"
        }
        Code::ItemsNotCovered => "items must be a non-empty list of the purpose's items, each once",
        Code::ExpiryInvalid => {
            "expires_at must be in the future and within the longest consent allowed"
        }
        Code::NonceInvalid => "the nonce is missing, too long, or was used before",
        Code::InvalidRequest => "the payload is not a version 1 consent",
        _ => "refused",
    }
}

/// `POST /v1/me/consents`.
pub async fn grant(app: &App, session: &Session, consent_jws: &str) -> Result<Value, ApiError> {
    let (token, device) = match verify_resident_jws(app, session, consent_jws).await {
        Ok(v) => v,
        Err(e) => return Err(refuse(app, session, None, None, e).await),
    };
    let payload: ConsentPayload = match token.payload_as() {
        Ok(p) => p,
        Err(e) => {
            let err = ApiError::new(Code::InvalidRequest, format!("consent payload: {e}"));
            return Err(refuse(app, session, None, None, err).await);
        }
    };
    let t = now();
    let facts = purpose_facts(app, &payload.consumer, &payload.purpose_id).await?;
    let resident = resident(app, session).await?;
    if let Err(code) = consent::check_consent(
        &payload,
        facts.as_ref().map(|f| &f.2),
        resident,
        t,
        max_seconds(app),
    ) {
        let err = ApiError::new(code, consent_message(code));
        return Err(refuse(
            app,
            session,
            Some(&payload.purpose_id),
            Some(&payload.consumer),
            err,
        )
        .await);
    }
    let (consumer, purpose, _) =
        facts.ok_or_else(|| ApiError::internal("consent", "purpose vanished"))?;

    for _ in 0..3 {
        let latest = app
            .store
            .latest_consent(&session.account_id, &payload.consumer, &payload.purpose_id)
            .await?;
        let generation = latest.as_ref().map(|c| c.generation + 1).unwrap_or(1);
        let existing = latest.filter(|c| c.status == ConsentStatus::Active);
        let id = random::token(16).map_err(|e| ApiError::internal("id", e))?;
        let row = ConsentRow {
            id: id.clone(),
            account_id: session.account_id.clone(),
            consumer_id: payload.consumer.clone(),
            provider_id: payload.provider.clone(),
            purpose_id: payload.purpose_id.clone(),
            generation,
            items: payload.items.clone(),
            expires_at: payload.expires_at,
            terms_sha256: payload.terms_sha256.clone(),
            status: ConsentStatus::Active,
            jws: consent_jws.to_owned(),
            device_id: device.id.clone(),
            version: 0,
            created_at: t,
            updated_at: t,
        };
        let mut changes = tsunagu_store::changes![ConsentChange::UseResidentNonce {
            account_id: session.account_id.clone(),
            nonce: payload.nonce.clone(),
            expires_at: t + 2 * consent::ISSUED_AT_WINDOW,
        }];
        if let Some(old) = &existing {
            changes.push(tsunagu_store::AnyChange::from(
                ConsentChange::SetConsentStatus {
                    id: old.id.clone(),
                    from: ConsentStatus::Active,
                    to: ConsentStatus::Superseded,
                    updated_at: t,
                },
            ));
        }
        changes.push(tsunagu_store::AnyChange::from(
            ConsentChange::InsertConsent(row.clone()),
        ));
        changes.push(tsunagu_store::AnyChange::from(
            ConsentChange::InsertConsentEvent(event_of(&row, "granted", t)),
        ));
        for sector in [&payload.consumer, &payload.provider] {
            if sector != PLATFORM_PROVIDER {
                changes.push(tsunagu_store::AnyChange::from(
                    ExchangeChange::LinkSubject {
                        sector: sector.clone(),
                        subject: pairwise(app, sector, &session.account_id),
                        account_id: session.account_id.clone(),
                        created_at: t,
                    },
                ));
            }
        }
        let commit = Commit {
            changes,
            leaves: vec![leaf(
                Event::ConsentGranted {
                    subject: ledger_subject(app, &session.account_id),
                    consent: id.clone(),
                    consumer: payload.consumer.clone(),
                    provider: payload.provider.clone(),
                    purpose: payload.purpose_id.clone(),
                    items: payload.items.clone(),
                    expires_at: payload.expires_at,
                    consent_sha256: hex::encode(sha256(consent_jws.as_bytes())),
                },
                &[&session.account_id],
                t,
            )],
        };
        match app.committer.commit(commit).await {
            Ok(_) => {
                metrics::counter!("tsunagu_consents_total", "outcome" => "granted").increment(1);
                let history = vec![event_of(&row, "granted", t)];
                return record(app, &row, &consumer, &purpose, &history, session, t).await;
            }
            Err(StoreError::Conflict(_)) => {
                // Either the nonce was used, or another consent to the purpose landed first.
                let again = app
                    .store
                    .latest_consent(&session.account_id, &payload.consumer, &payload.purpose_id)
                    .await?
                    .map(|c| c.generation + 1)
                    .unwrap_or(1);
                if again == generation {
                    let err =
                        ApiError::new(Code::NonceInvalid, consent_message(Code::NonceInvalid));
                    return Err(refuse(
                        app,
                        session,
                        Some(&payload.purpose_id),
                        Some(&payload.consumer),
                        err,
                    )
                    .await);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal(
        "consent",
        "concurrent consents kept colliding",
    ))
}

fn event_of(row: &ConsentRow, status: &str, t: i64) -> ConsentEventRow {
    ConsentEventRow {
        seq: 0,
        consent_id: row.id.clone(),
        account_id: row.account_id.clone(),
        consumer_id: row.consumer_id.clone(),
        provider_id: row.provider_id.clone(),
        purpose_id: row.purpose_id.clone(),
        status: status.to_owned(),
        items: row.items.clone(),
        expires_at: row.expires_at,
        created_at: t,
    }
}

/// `POST /v1/me/consents/{id}/revoke` and `/expiry`.
pub async fn change(
    app: &App,
    session: &Session,
    consent_id: &str,
    action: ChangeAction,
    change_jws: &str,
) -> Result<Value, ApiError> {
    let (token, _device) = match verify_resident_jws(app, session, change_jws).await {
        Ok(v) => v,
        Err(e) => return Err(refuse(app, session, None, None, e).await),
    };
    let payload: ChangePayload = token
        .payload_as()
        .map_err(|e| ApiError::new(Code::InvalidRequest, format!("change payload: {e}")))?;
    if payload.consent_id != consent_id || payload.action != action {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "the signed change names another consent or action than this request",
        ));
    }
    let consent = app
        .store
        .consent(consent_id)
        .await?
        .filter(|c| c.account_id == session.account_id)
        .ok_or_else(|| ApiError::new(Code::UnknownConsent, "no such consent of this resident"))?;
    let t = now();
    if let Err(code) = consent::check_change(
        &payload,
        consent.status,
        consent.expires_at,
        t,
        max_seconds(app),
    ) {
        let detail = match code {
            Code::ConsentRevoked => "the consent is already revoked",
            Code::ConsentSuperseded => "a newer consent replaced this one",
            Code::ConsentExpired => "the consent has expired: consent again instead",
            other => consent_message(other),
        };
        let err = ApiError::new(code, detail);
        return Err(refuse(
            app,
            session,
            Some(&consent.purpose_id),
            Some(&consent.consumer_id),
            err,
        )
        .await);
    }
    let mut updated = consent.clone();
    let subject = ledger_subject(app, &session.account_id);
    let change_sha256 = hex::encode(sha256(change_jws.as_bytes()));
    let (status_change, event_status, event) = match action {
        ChangeAction::Revoke => {
            updated.status = ConsentStatus::Revoked;
            (
                ConsentChange::SetConsentStatus {
                    id: consent.id.clone(),
                    from: ConsentStatus::Active,
                    to: ConsentStatus::Revoked,
                    updated_at: t,
                },
                "revoked",
                Event::ConsentRevoked {
                    subject,
                    consent: consent.id.clone(),
                    change_sha256,
                },
            )
        }
        ChangeAction::Expiry => {
            let expires_at = payload.expires_at.unwrap_or(consent.expires_at);
            updated.expires_at = expires_at;
            (
                ConsentChange::SetConsentExpiry {
                    id: consent.id.clone(),
                    expected_version: consent.version,
                    expires_at,
                    updated_at: t,
                },
                "expiry_changed",
                Event::ConsentExpiryChanged {
                    subject,
                    consent: consent.id.clone(),
                    expires_at,
                    change_sha256,
                },
            )
        }
    };
    let commit = Commit {
        changes: tsunagu_store::changes![
            ConsentChange::UseResidentNonce {
                account_id: session.account_id.clone(),
                nonce: payload.nonce.clone(),
                expires_at: t + 2 * consent::ISSUED_AT_WINDOW,
            },
            status_change,
            ConsentChange::InsertConsentChange {
                consent_id: consent.id.clone(),
                action: event_status.to_owned(),
                expires_at: payload.expires_at,
                jws: change_jws.to_owned(),
                created_at: t,
            },
            ConsentChange::InsertConsentEvent(event_of(&updated, event_status, t)),
        ],
        leaves: vec![leaf(event, &[&session.account_id], t)],
    };
    match app.committer.commit(commit).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            let err = ApiError::new(
                Code::NonceInvalid,
                "the nonce was used before, or the consent changed meanwhile",
            );
            return Err(refuse(
                app,
                session,
                Some(&consent.purpose_id),
                Some(&consent.consumer_id),
                err,
            )
            .await);
        }
        Err(e) => return Err(e.into()),
    }
    metrics::counter!("tsunagu_consent_changes_total", "action" => event_status).increment(1);
    let consumer = app
        .directory
        .get(app.store.as_ref(), &consent.consumer_id)
        .await?
        .ok_or_else(|| ApiError::internal("consent", "consumer vanished"))?;
    let purpose = consumer
        .purpose(&consent.purpose_id)
        .cloned()
        .ok_or_else(|| ApiError::internal("consent", "purpose vanished"))?;
    let history = app.store.consent_history(&consent.id).await?;
    record(app, &updated, &consumer, &purpose, &history, session, t).await
}

/// A consent as the resident sees it, with its receipt.
async fn record(
    app: &App,
    row: &ConsentRow,
    consumer: &ServiceEntry,
    purpose: &PurposeEntry,
    history: &[ConsentEventRow],
    session: &Session,
    t: i64,
) -> Result<Value, ApiError> {
    let provider = if row.provider_id == PLATFORM_PROVIDER {
        None
    } else {
        app.directory
            .get(app.store.as_ref(), &row.provider_id)
            .await?
    };
    let status = consent::effective_status(row.status, row.expires_at, t);
    Ok(json!({
        "consent_id": row.id,
        "status": status,
        "purpose_id": row.purpose_id,
        "consumer": row.consumer_id,
        "provider": row.provider_id,
        "items": row.items,
        "expires_at": row.expires_at,
        "created_at": row.created_at,
        "terms_sha256": row.terms_sha256,
        "receipt": receipt(app, row, status, consumer, purpose, provider.as_deref(), history, session),
    }))
}

/// A consent receipt shaped after ISO/IEC TS 27560 (and the Kantara consent receipt):
/// header, processing, parties, events.
#[allow(clippy::too_many_arguments)]
fn receipt(
    app: &App,
    row: &ConsentRow,
    status: &str,
    consumer: &ServiceEntry,
    purpose: &PurposeEntry,
    provider: Option<&ServiceEntry>,
    history: &[ConsentEventRow],
    session: &Session,
) -> Value {
    let source = provider
        .map(|p| p.application.offers.clone())
        .unwrap_or_default();
    let personal_data: Vec<Value> = row
        .items
        .iter()
        .map(|item| {
            let offer = source.iter().find(|o| &o.item == item);
            json!({
                "item": item,
                "title_ja": offer.map(|o| o.title_ja.clone()).unwrap_or_else(|| item.clone()),
                "data_class": offer.map(|o| o.data_class.as_str()),
                "sensitive": offer.is_some_and(|o| o.sensitive),
                "use": purpose.purpose.uses.get(item),
            })
        })
        .collect();
    json!({
        "schema": "ISO/IEC TS 27560:2023 consent record (tsunagu profile v1)",
        "header": {
            "record_id": row.id,
            "timestamp": iso8601(row.created_at),
            "jurisdiction": "JP",
            "language": "ja",
            "notice": {
                "terms_sha256": row.terms_sha256,
                "service": format!("{}/v1/services/{}", app.public_url, row.consumer_id),
            },
            "evidence": {
                "format": "JWS (ES256) by the resident's device key over the JCS of the consent",
                "jws_sha256": hex::encode(sha256(row.jws.as_bytes())),
                "device": row.device_id,
            },
        },
        "processing": {
            "purposes": [{
                "purpose_id": row.purpose_id,
                "purpose": purpose.purpose.title_ja,
                "purpose_en": purpose.purpose.title_en,
                "description": purpose.purpose.description_ja,
                "description_en": purpose.purpose.description_en,
                "lawful_basis": LegalBasis::Consent.as_str(),
                "personal_data": personal_data,
                "processing_operations": ["provision from the source to the recipient through tsunagu tickets", "use by the recipient for the purpose"],
                "retention": { "days": purpose.purpose.retention_days },
            }],
            "third_party_disclosure": false,
        },
        "parties": {
            "data_subject": { "pseudonym": ledger_subject(app, &session.account_id) },
            "recipient": {
                "service_id": consumer.row.id,
                "name": consumer.row.name,
                "organization": consumer.row.organization,
                "contact": consumer.row.contact,
            },
            "source": match provider {
                Some(p) => json!({"service_id": p.row.id, "name": p.row.name, "organization": p.row.organization}),
                None => json!({"service_id": row.provider_id, "name": "tsunagu"}),
            },
            "intermediary": { "name": "tsunagu", "url": app.public_url },
        },
        "events": history.iter().map(|e| json!({
            "type": match e.status.as_str() {
                "granted" => "given",
                "expiry_changed" => "modified",
                "revoked" => "withdrawn",
                other => other,
            },
            "timestamp": iso8601(e.created_at),
            "expires_at": e.expires_at,
            "items": e.items,
        })).collect::<Vec<_>>(),
        "state": status,
        "expires_at": row.expires_at,
    })
}

/// `GET /v1/me/consents`.
pub async fn list(app: &App, session: &Session) -> Result<Value, ApiError> {
    let t = now();
    let mut out = Vec::new();
    for row in app.store.consents_of(&session.account_id).await? {
        let Some(consumer) = app
            .directory
            .get(app.store.as_ref(), &row.consumer_id)
            .await?
        else {
            continue;
        };
        let Some(purpose) = consumer.purpose(&row.purpose_id).cloned() else {
            continue;
        };
        let history = app.store.consent_history(&row.id).await?;
        out.push(record(app, &row, &consumer, &purpose, &history, session, t).await?);
    }
    Ok(json!({ "consents": out }))
}

/// `GET /v1/me/offers`: every purpose of an approved (or suspended, to say why) consumer,
/// consent-based ones switchable, legal-basis ones read-only.
pub async fn offers(app: &App, session: &Session) -> Result<Value, ApiError> {
    let t = now();
    let mut out = Vec::new();
    let consents = app.store.consents_of(&session.account_id).await?;
    for row in app.store.all_purposes().await? {
        let Some(consumer) = app
            .directory
            .get(app.store.as_ref(), &row.consumer_id)
            .await?
        else {
            continue;
        };
        if !matches!(
            consumer.row.status,
            ServiceStatus::Approved | ServiceStatus::Suspended
        ) {
            continue;
        }
        let provider = if row.provider_id == PLATFORM_PROVIDER {
            None
        } else {
            match app
                .directory
                .get(app.store.as_ref(), &row.provider_id)
                .await?
            {
                Some(p)
                    if matches!(
                        p.row.status,
                        ServiceStatus::Approved | ServiceStatus::Suspended
                    ) =>
                {
                    Some(p)
                }
                _ => continue,
            }
        };
        let Some(purpose) = consumer.purpose(&row.purpose_id) else {
            continue;
        };
        let p = &purpose.purpose;
        let current = consents
            .iter()
            .find(|c| {
                c.consumer_id == row.consumer_id
                    && c.purpose_id == row.purpose_id
                    && c.status == ConsentStatus::Active
            })
            .or_else(|| {
                consents
                    .iter()
                    .find(|c| c.consumer_id == row.consumer_id && c.purpose_id == row.purpose_id)
            });
        let items: Vec<Value> = p
            .items
            .iter()
            .map(|item| {
                let offer = provider
                    .as_ref()
                    .and_then(|prov| prov.application.offers.iter().find(|o| &o.item == item));
                json!({
                    "item": item,
                    "title_ja": offer.map(|o| o.title_ja.clone()).unwrap_or_else(|| item.clone()),
                    "title_en": offer.and_then(|o| o.title_en.clone()),
                    "data_class": offer.map(|o| o.data_class.as_str()),
                    "sensitive": offer.is_some_and(|o| o.sensitive),
                    "use": p.uses.get(item),
                })
            })
            .collect();
        let suspended = consumer.row.status == ServiceStatus::Suspended
            || provider
                .as_ref()
                .is_some_and(|p| p.row.status == ServiceStatus::Suspended);
        out.push(json!({
            "purpose_id": row.purpose_id,
            "consumer": {"service_id": consumer.row.id, "name": consumer.row.name, "organization": consumer.row.organization},
            "provider": match &provider {
                Some(prov) => json!({"service_id": prov.row.id, "name": prov.row.name, "organization": prov.row.organization}),
                None => json!({"service_id": PLATFORM_PROVIDER, "name": "tsunagu"}),
            },
            "items": items,
            "title_ja": p.title_ja,
            "title_en": p.title_en,
            "description_ja": p.description_ja,
            "description_en": p.description_en,
            "retention_days": p.retention_days,
            "legal_basis": p.legal_basis,
            "citation": p.citation,
            "terms_sha256": row.terms_sha256,
            "read_only": p.legal_basis != LegalBasis::Consent,
            "status": if suspended { "suspended" } else { "available" },
            "status_reason": if suspended { Some("the governance committee suspended a service of this flow; nothing flows until it is reinstated") } else { None },
            "consent": current.map(|c| json!({
                "consent_id": c.id,
                "status": consent::effective_status(c.status, c.expires_at, t),
                "items": c.items,
                "expires_at": c.expires_at,
            })),
        }));
    }
    Ok(json!({ "offers": out }))
}

/// `GET /v1/me/pairwise/{service_id}`: the resident's id at a service, to show in person
/// (e.g. as a QR code to an ambulance crew acting under a vital-interest rule).
pub async fn show_pairwise(
    app: &App,
    session: &Session,
    service_id: &str,
) -> Result<Value, ApiError> {
    let service = app
        .directory
        .get(app.store.as_ref(), service_id)
        .await?
        .ok_or_else(|| ApiError::new(Code::UnknownService, format!("no service `{service_id}`")))?;
    let subject = pairwise(app, service_id, &session.account_id);
    let t = now();
    app.committer
        .commit(Commit {
            changes: tsunagu_store::changes![ExchangeChange::LinkSubject {
                sector: service_id.to_owned(),
                subject: subject.clone(),
                account_id: session.account_id.clone(),
                created_at: t,
            }],
            leaves: vec![leaf(
                Event::PairwiseShown {
                    subject: ledger_subject(app, &session.account_id),
                    service: service_id.to_owned(),
                },
                &[&session.account_id],
                t,
            )],
        })
        .await?;
    Ok(json!({ "subject": subject, "service_id": service_id, "service_name": service.row.name }))
}

/// Records consents whose expiry passed: status `expired`, a feed entry for the services, a
/// leaf for the resident.
pub async fn sweep_expirations(app: &App) -> Result<usize, StoreError> {
    let t = now();
    let due = app.store.due_expirations(t, 500).await?;
    let mut done = 0;
    for row in due {
        let commit = Commit {
            changes: tsunagu_store::changes![
                ConsentChange::SetConsentStatus {
                    id: row.id.clone(),
                    from: ConsentStatus::Active,
                    to: ConsentStatus::Expired,
                    updated_at: t,
                },
                ConsentChange::InsertConsentEvent(event_of(&row, "expired", t)),
            ],
            leaves: vec![leaf(
                Event::ConsentExpired {
                    subject: ledger_subject(app, &row.account_id),
                    consent: row.id.clone(),
                },
                &[&row.account_id],
                t,
            )],
        };
        match app.committer.commit(commit).await {
            Ok(_) => done += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
