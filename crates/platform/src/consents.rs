//! 情報提供の管理 (dynamic opt-in, SPEC §5): what a resident may consent to, their signed
//! consents and changes, consent receipts (ISO/IEC TS 27560 shape), the expiry sweep, and
//! showing a pairwise id at a service.

use crate::directory::{Directory, PurposeEntry, ServiceEntry};
use crate::identity::Session;
use crate::identity::webauthn::WireAssertion;
use crate::keys::PlatformKeys;
use crate::ledger::{Committer, leaf};
use crate::{Outcome, Refusal, iso8601, now};
use serde::Serialize;
use std::sync::Arc;
use tsunagu_core::consent::{
    self, ChangeAction, ChangePayload, ConsentEventKind, ConsentPayload, ConsentStatus,
    PurposeFacts, ResidentFacts,
};
use tsunagu_core::event::Event;
use tsunagu_core::identity::DeviceStatus;
use tsunagu_core::service::{DataClass, LegalBasis, ServiceStatus};
use tsunagu_core::{Code, ConsentId, PairwiseId, PurposeId, ServiceId};
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::{jws, random, sha256};
use tsunagu_store::{
    Commit, ConsentChange, ConsentEventRow, ConsentRow, DeviceRow, ExchangeChange, Store,
    StoreError,
};

/// A service named in an offer or a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Party {
    pub service_id: ServiceId,
    pub name: String,
    /// Absent for the platform itself (the provider of identity claims).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
}

impl Party {
    fn of(entry: &ServiceEntry) -> Party {
        Party {
            service_id: entry.row.id.clone(),
            name: entry.row.name.clone(),
            organization: Some(entry.row.organization.clone()),
        }
    }

    fn platform() -> Party {
        Party {
            service_id: ServiceId::platform(),
            name: "tsunagu".into(),
            organization: None,
        }
    }
}

/// An item a purpose asks for, as the resident sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferItem {
    pub item: String,
    pub title_ja: String,
    pub title_en: Option<String>,
    pub data_class: Option<DataClass>,
    pub sensitive: bool,
    /// What the recipient uses it for.
    #[serde(rename = "use")]
    pub use_: Option<String>,
}

/// Whether data can flow under an offer now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferStatus {
    Available,
    /// The committee suspended a service of the flow.
    Suspended,
}

/// The resident's consent to an offer, as of now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferConsent {
    pub consent_id: ConsentId,
    /// As of now: an active consent past its expiry is `expired`.
    pub status: ConsentStatus,
    pub items: Vec<String>,
    pub expires_at: i64,
}

/// A purpose the resident may consent to (or, under a legal basis, only see).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offer {
    pub purpose_id: PurposeId,
    pub consumer: Party,
    pub provider: Party,
    pub items: Vec<OfferItem>,
    pub title_ja: String,
    pub title_en: String,
    pub description_ja: String,
    pub description_en: String,
    pub retention_days: u32,
    pub legal_basis: LegalBasis,
    pub citation: Option<String>,
    pub terms_sha256: String,
    /// A legal-basis flow: shown, not switched.
    pub read_only: bool,
    pub status: OfferStatus,
    pub status_reason: Option<&'static str>,
    /// The newest consent to this purpose (the active one, if any).
    pub consent: Option<OfferConsent>,
    /// The policy lint's error findings about this purpose (or the whole application) that
    /// the committee approved the consumer over, by naming each in its votes.
    pub approved_over: Vec<ApprovedOver>,
}

/// A lint error finding the committee approved a service over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovedOver {
    pub code: String,
    pub message: String,
}

/// The error findings of `lint_json` about `purpose` or about no purpose in particular.
fn approved_over(lint_json: &str, purpose: &PurposeId) -> Vec<ApprovedOver> {
    let findings: Vec<tsunagu_core::lint::Finding> =
        serde_json::from_str(lint_json).unwrap_or_default();
    findings
        .into_iter()
        .filter(|f| {
            f.severity == tsunagu_core::lint::Severity::Error
                && f.purpose_id
                    .as_deref()
                    .is_none_or(|p| p == purpose.as_str())
        })
        .map(|f| ApprovedOver {
            code: f.code,
            message: f.message,
        })
        .collect()
}

impl Offer {
    /// The expiry proposed when the resident consents now.
    pub fn default_expiry(&self, max_consent_days: i64, now: i64) -> i64 {
        consent::default_expiry(self.retention_days, max_consent_days, now)
    }

    /// Whether the resident's newest consent to this offer is active (data may flow under it).
    pub fn consent_in_force(&self) -> bool {
        self.consent
            .as_ref()
            .is_some_and(|c| c.status == ConsentStatus::Active)
    }
}

/// An item of a consent receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiptItem {
    pub item: String,
    pub title_ja: String,
    pub data_class: Option<DataClass>,
    pub sensitive: bool,
    #[serde(rename = "use")]
    pub use_: Option<String>,
}

/// A consent receipt shaped after ISO/IEC TS 27560 (and the Kantara consent receipt):
/// header, processing, parties, events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub schema: &'static str,
    pub header: ReceiptHeader,
    pub processing: Processing,
    pub parties: Parties,
    pub events: Vec<ReceiptEvent>,
    pub state: ConsentStatus,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiptHeader {
    pub record_id: ConsentId,
    pub timestamp: String,
    pub jurisdiction: &'static str,
    pub language: &'static str,
    pub notice: Notice,
    pub evidence: Evidence,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub terms_sha256: String,
    /// Where the service's application can be read.
    pub service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub format: &'static str,
    pub jws_sha256: String,
    pub device: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Processing {
    pub purposes: Vec<ProcessingPurpose>,
    pub third_party_disclosure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessingPurpose {
    pub purpose_id: PurposeId,
    pub purpose: String,
    pub purpose_en: String,
    pub description: String,
    pub description_en: String,
    pub lawful_basis: &'static str,
    pub personal_data: Vec<ReceiptItem>,
    pub processing_operations: [&'static str; 2],
    pub retention: Retention,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retention {
    pub days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parties {
    pub data_subject: DataSubject,
    pub recipient: Recipient,
    pub source: Party,
    pub intermediary: Intermediary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataSubject {
    pub pseudonym: PairwiseId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    pub service_id: ServiceId,
    pub name: String,
    pub organization: String,
    pub contact: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Intermediary {
    pub name: &'static str,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiptEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub timestamp: String,
    pub expires_at: i64,
    pub items: Vec<String>,
}

/// A consent as the resident sees it, with its receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentRecord {
    pub consent_id: ConsentId,
    /// As of now: an active consent past its expiry is `expired`.
    pub status: ConsentStatus,
    pub purpose_id: PurposeId,
    pub consumer: ServiceId,
    pub provider: ServiceId,
    pub items: Vec<String>,
    pub expires_at: i64,
    pub created_at: i64,
    pub terms_sha256: String,
    pub receipt: Receipt,
}

/// A pairwise id shown to the resident (`GET /v1/me/pairwise/{service_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShownPairwise {
    pub subject: PairwiseId,
    pub service_id: ServiceId,
    pub service_name: String,
}

/// Whether a service counts as approved for data to flow (the platform, as the provider of
/// identity claims, always does).
fn approved(status: Option<ServiceStatus>, id: &ServiceId) -> bool {
    id.is_platform() || status == Some(ServiceStatus::Approved)
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

fn event_of(row: &ConsentRow, kind: ConsentEventKind, t: i64) -> ConsentEventRow {
    ConsentEventRow {
        seq: 0,
        consent_id: row.id.clone(),
        account_id: row.account_id.clone(),
        consumer_id: row.consumer_id.clone(),
        provider_id: row.provider_id.clone(),
        purpose_id: row.purpose_id.clone(),
        status: kind,
        items: row.items.clone(),
        expires_at: row.expires_at,
        created_at: t,
        reason: None,
    }
}

/// Residents' consents and what they may consent to.
#[derive(Clone)]
pub struct Consents {
    store: Arc<dyn Store>,
    committer: Committer,
    directory: Arc<Directory>,
    keys: Arc<PlatformKeys>,
    max_consent_days: i64,
    public_url: String,
    /// The WebAuthn relying party that gates browser devices (see `identity`).
    webauthn: Result<crate::identity::RelyingParty, String>,
}

impl Consents {
    pub fn new(
        store: Arc<dyn Store>,
        committer: Committer,
        directory: Arc<Directory>,
        keys: Arc<PlatformKeys>,
        max_consent_days: i64,
        public_url: String,
    ) -> Consents {
        Consents {
            store,
            committer,
            directory,
            keys,
            max_consent_days,
            webauthn: crate::identity::RelyingParty::for_public_url(&public_url),
            public_url,
        }
    }

    /// The longest consent allowed, in days.
    pub fn max_consent_days(&self) -> i64 {
        self.max_consent_days
    }

    fn max_seconds(&self) -> i64 {
        self.max_consent_days * 86_400
    }

    /// The latest expiry a consent signed at `now` may have.
    pub fn latest_expiry(&self, now: i64) -> i64 {
        now + self.max_seconds()
    }

    /// A resident-signed JWS: parsed, its signing device found (header `kid` = the device
    /// key's thumbprint), belonging to the session's account, active, unexpired, and the
    /// signature verified.
    ///
    /// A device gated by WebAuthn also needs `uv`: an assertion by its credential with the
    /// user verified, over SHA-256 of the JWS in its canonical low-S form — the statement the
    /// platform keeps as evidence, confirmed by the screen lock (ADR 0021).
    async fn verify_resident_jws(
        &self,
        session: &Session,
        compact: &str,
        uv: Option<&WireAssertion>,
    ) -> Outcome<(jws::Jws, DeviceRow)> {
        let token = jws::parse(compact)
            .map_err(|e| Refusal::new(Code::InvalidRequest, format!("signed request: {e}")))?;
        let kid = token.kid.clone().ok_or_else(|| {
            Refusal::new(
                Code::InvalidRequest,
                "the JWS header needs `kid` = the device key's RFC 7638 thumbprint",
            )
        })?;
        let device = self
            .store
            .device_by_jkt(&kid)
            .await?
            .filter(|d| d.account_id == session.account_id)
            .ok_or_else(|| {
                Refusal::new(
                    Code::SignatureInvalid,
                    "the signing key is not a device of this resident",
                )
            })?;
        if device.status == DeviceStatus::Revoked {
            return Err(Refusal::new(
                Code::CredentialRevoked,
                "the signing device was revoked",
            ));
        }
        if device.expires_at <= now() {
            return Err(Refusal::new(
                Code::CredentialExpired,
                "the signing device's credential has expired",
            ));
        }
        let key =
            PublicJwk::from_json(&device.jwk).map_err(|e| Refusal::internal("device key", e))?;
        token.verify(&key).map_err(|_| {
            Refusal::new(
                Code::SignatureInvalid,
                "the signature does not verify with the device key",
            )
        })?;
        if let Some(credential) = &device.uv {
            let assertion = uv.ok_or_else(|| {
                Refusal::new(
                    Code::UserVerificationRequired,
                    "this device's key is protected by its screen lock: send user_verification, a WebAuthn assertion over SHA-256 of the signed JWS",
                )
            })?;
            let count = crate::identity::verify_device_assertion(
                self.webauthn.as_ref().map_err(String::as_str),
                credential,
                // The statement kept as evidence is the canonical (low-S) JWS; the screen
                // lock confirms that one (the web app signs low-S, so it is also what it sent).
                &sha256(token.canonical_compact().as_bytes()),
                assertion,
            )?;
            let count = i64::from(count);
            if count != credential.sign_count {
                self.committer
                    .commit(
                        Commit::new().change(tsunagu_store::IdentityChange::SetUvSignCount {
                            device_id: device.id.clone(),
                            expected: credential.sign_count,
                            count,
                        }),
                    )
                    .await
                    .map_err(|e| match e {
                        StoreError::Conflict(_) => Refusal::new(
                            Code::UserVerificationInvalid,
                            "this assertion's counter was already used (two requests at once?)",
                        ),
                        other => other.into(),
                    })?;
            }
        }
        Ok((token, device))
    }

    async fn refuse(
        &self,
        session: &Session,
        purpose: Option<&str>,
        consumer: Option<&str>,
        err: Refusal,
    ) -> Refusal {
        let commit = Commit::new().leaf(leaf(
            &Event::ConsentRefused {
                subject: self.keys.ledger_subject(&session.account_id).into_string(),
                purpose: purpose.map(str::to_owned),
                consumer: consumer.map(str::to_owned),
                reason: err.code,
            },
            &[&session.account_id],
            now(),
        ));
        if let Err(e) = self.committer.commit(commit).await {
            tracing::error!(error = %e, "recording a consent refusal failed");
        }
        metrics::counter!("tsunagu_consents_total", "outcome" => err.code.as_str()).increment(1);
        err
    }

    async fn purpose_facts(
        &self,
        consumer: &str,
        purpose_id: &str,
    ) -> Outcome<Option<(Arc<ServiceEntry>, PurposeEntry, PurposeFacts)>> {
        let Some(entry) = self.directory.find(consumer).await? else {
            return Ok(None);
        };
        let Some(purpose) = entry.purpose(purpose_id).cloned() else {
            return Ok(None);
        };
        let provider_status = if purpose.row.provider_id.is_platform() {
            None
        } else {
            self.store
                .service(&purpose.row.provider_id)
                .await?
                .map(|s| s.status)
        };
        let facts = PurposeFacts {
            consumer: consumer.to_owned(),
            provider: purpose.row.provider_id.to_string(),
            items: purpose.row.items.clone(),
            legal_basis: purpose.row.legal_basis,
            terms_sha256: purpose.row.terms_sha256.clone(),
            services_approved: entry.row.status == ServiceStatus::Approved
                && approved(provider_status, &purpose.row.provider_id),
        };
        Ok(Some((entry, purpose, facts)))
    }

    async fn resident(&self, session: &Session) -> Outcome<ResidentFacts> {
        let account = self
            .store
            .account(&session.account_id)
            .await?
            .ok_or_else(|| Refusal::new(Code::Unauthorized, "the account no longer exists"))?;
        Ok(ResidentFacts {
            level: account.level,
            status: account.status,
            restriction: account.restriction,
            erased: account.erased_at.is_some(),
        })
    }

    /// `POST /v1/me/consents`: a consent signed by one of the resident's devices.
    pub async fn grant(&self, session: &Session, consent_jws: &str) -> Outcome<ConsentRecord> {
        self.grant_verified(session, consent_jws, None).await
    }

    /// [`Consents::grant`] with, for a device gated by WebAuthn, the assertion over SHA-256 of
    /// the consent JWS.
    pub async fn grant_verified(
        &self,
        session: &Session,
        consent_jws: &str,
        uv: Option<&WireAssertion>,
    ) -> Outcome<ConsentRecord> {
        let (token, device) = match self.verify_resident_jws(session, consent_jws, uv).await {
            Ok(v) => v,
            Err(e) => return Err(self.refuse(session, None, None, e).await),
        };
        // Kept and hashed in its one canonical form (low-S): a twin signature is the same
        // statement with the same evidence hash.
        let consent_jws = &token.canonical_compact();
        let payload: ConsentPayload = match token.payload_as() {
            Ok(p) => p,
            Err(e) => {
                let err = Refusal::new(Code::InvalidRequest, format!("consent payload: {e}"));
                return Err(self.refuse(session, None, None, err).await);
            }
        };
        let t = now();
        let facts = self
            .purpose_facts(&payload.consumer, &payload.purpose_id)
            .await?;
        let resident = self.resident(session).await?;
        if let Err(code) = consent::check_consent(
            &payload,
            facts.as_ref().map(|f| &f.2),
            resident,
            t,
            self.max_seconds(),
        ) {
            let err = Refusal::new(code, consent_message(code));
            return Err(self
                .refuse(
                    session,
                    Some(&payload.purpose_id),
                    Some(&payload.consumer),
                    err,
                )
                .await);
        }
        let (consumer, purpose, _) =
            facts.ok_or_else(|| Refusal::internal("consent", "purpose vanished"))?;
        let consumer_id = ServiceId::from(payload.consumer.as_str());
        let provider_id = ServiceId::from(payload.provider.as_str());
        let purpose_id = PurposeId::from(payload.purpose_id.as_str());

        for _ in 0..3 {
            let latest = self
                .store
                .latest_consent(&session.account_id, &consumer_id, &purpose_id)
                .await?;
            let generation = latest.as_ref().map(|c| c.generation + 1).unwrap_or(1);
            let existing = latest.filter(|c| c.status == ConsentStatus::Active);
            let id = ConsentId::from(random::token(16).map_err(|e| Refusal::internal("id", e))?);
            let row = ConsentRow {
                id: id.clone(),
                account_id: session.account_id.clone(),
                consumer_id: consumer_id.clone(),
                provider_id: provider_id.clone(),
                purpose_id: purpose_id.clone(),
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
            let mut commit = Commit::new().change(ConsentChange::UseResidentNonce {
                account_id: session.account_id.clone(),
                nonce: payload.nonce.clone(),
                expires_at: t + 2 * consent::ISSUED_AT_WINDOW,
            });
            if let Some(old) = &existing {
                commit.push(ConsentChange::SetConsentStatus {
                    id: old.id.clone(),
                    from: ConsentStatus::Active,
                    to: ConsentStatus::Superseded,
                    updated_at: t,
                });
            }
            commit.push(ConsentChange::InsertConsent(row.clone()));
            commit.push(ConsentChange::InsertConsentEvent(event_of(
                &row,
                ConsentEventKind::Granted,
                t,
            )));
            for sector in [&consumer_id, &provider_id] {
                if !sector.is_platform() {
                    commit.push(ExchangeChange::LinkSubject {
                        sector: sector.clone(),
                        subject: self.keys.pairwise_id(sector, &session.account_id),
                        account_id: session.account_id.clone(),
                        created_at: t,
                    });
                }
            }
            let commit = commit.leaf(leaf(
                &Event::ConsentGranted {
                    subject: self.keys.ledger_subject(&session.account_id).into_string(),
                    consent: id.to_string(),
                    consumer: payload.consumer.clone(),
                    provider: payload.provider.clone(),
                    purpose: payload.purpose_id.clone(),
                    items: payload.items.clone(),
                    expires_at: payload.expires_at,
                    consent_sha256: hex::encode(sha256(consent_jws.as_bytes())),
                    confirmed_by: device.uv.as_ref().map(|_| "webauthn".to_owned()),
                },
                &[&session.account_id],
                t,
            ));
            match self.committer.commit(commit).await {
                Ok(_) => {
                    metrics::counter!("tsunagu_consents_total", "outcome" => "granted")
                        .increment(1);
                    let history = vec![event_of(&row, ConsentEventKind::Granted, t)];
                    return self
                        .record(&row, &consumer, &purpose, &history, session, t)
                        .await;
                }
                Err(StoreError::Conflict(_)) => {
                    // Either the nonce was used, or another consent to the purpose landed
                    // first.
                    let again = self
                        .store
                        .latest_consent(&session.account_id, &consumer_id, &purpose_id)
                        .await?
                        .map(|c| c.generation + 1)
                        .unwrap_or(1);
                    if again == generation {
                        let err =
                            Refusal::new(Code::NonceInvalid, consent_message(Code::NonceInvalid));
                        return Err(self
                            .refuse(
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
        Err(Refusal::internal(
            "consent",
            "concurrent consents kept colliding",
        ))
    }

    /// `POST /v1/me/consents/{id}/revoke` and `/expiry`: a change signed by one of the
    /// resident's devices.
    pub async fn change(
        &self,
        session: &Session,
        consent_id: &ConsentId,
        action: ChangeAction,
        change_jws: &str,
    ) -> Outcome<ConsentRecord> {
        self.change_verified(session, consent_id, action, change_jws, None)
            .await
    }

    /// [`Consents::change`] with, for a device gated by WebAuthn, the assertion over SHA-256
    /// of the change JWS.
    pub async fn change_verified(
        &self,
        session: &Session,
        consent_id: &ConsentId,
        action: ChangeAction,
        change_jws: &str,
        uv: Option<&WireAssertion>,
    ) -> Outcome<ConsentRecord> {
        let (token, device) = match self.verify_resident_jws(session, change_jws, uv).await {
            Ok(v) => v,
            Err(e) => return Err(self.refuse(session, None, None, e).await),
        };
        let change_jws = &token.canonical_compact();
        let payload: ChangePayload = token
            .payload_as()
            .map_err(|e| Refusal::new(Code::InvalidRequest, format!("change payload: {e}")))?;
        if payload.consent_id != consent_id.as_str() || payload.action != action {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "the signed change names another consent or action than this request",
            ));
        }
        let consent = self
            .store
            .consent(consent_id)
            .await?
            .filter(|c| c.account_id == session.account_id)
            .ok_or_else(|| {
                Refusal::new(Code::UnknownConsent, "no such consent of this resident")
            })?;
        let t = now();
        if let Err(code) = consent::check_change(
            &payload,
            consent.status,
            consent.expires_at,
            t,
            self.max_seconds(),
        ) {
            let detail = match code {
                Code::ConsentRevoked => "the consent is already revoked",
                Code::ConsentSuperseded => "a newer consent replaced this one",
                Code::ConsentExpired => "the consent has expired: consent again instead",
                other => consent_message(other),
            };
            let err = Refusal::new(code, detail);
            return Err(self
                .refuse(
                    session,
                    Some(consent.purpose_id.as_str()),
                    Some(consent.consumer_id.as_str()),
                    err,
                )
                .await);
        }
        let mut updated = consent.clone();
        let subject = self.keys.ledger_subject(&session.account_id).into_string();
        let change_sha256 = hex::encode(sha256(change_jws.as_bytes()));
        let confirmed_by = device.uv.as_ref().map(|_| "webauthn".to_owned());
        let (status_change, kind, event) = match action {
            ChangeAction::Revoke => {
                updated.status = ConsentStatus::Revoked;
                (
                    ConsentChange::SetConsentStatus {
                        id: consent.id.clone(),
                        from: ConsentStatus::Active,
                        to: ConsentStatus::Revoked,
                        updated_at: t,
                    },
                    ConsentEventKind::Revoked,
                    Event::ConsentRevoked {
                        subject,
                        consent: consent.id.to_string(),
                        change_sha256,
                        reason: None,
                        confirmed_by,
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
                    ConsentEventKind::ExpiryChanged,
                    Event::ConsentExpiryChanged {
                        subject,
                        consent: consent.id.to_string(),
                        expires_at,
                        change_sha256,
                        confirmed_by,
                    },
                )
            }
        };
        let commit = Commit::new()
            .change(ConsentChange::UseResidentNonce {
                account_id: session.account_id.clone(),
                nonce: payload.nonce.clone(),
                expires_at: t + 2 * consent::ISSUED_AT_WINDOW,
            })
            .change(status_change)
            .change(ConsentChange::InsertConsentChange {
                consent_id: consent.id.clone(),
                action: kind,
                expires_at: payload.expires_at,
                jws: change_jws.to_owned(),
                created_at: t,
            })
            .change(ConsentChange::InsertConsentEvent(event_of(
                &updated, kind, t,
            )))
            .leaf(leaf(&event, &[&session.account_id], t));
        match self.committer.commit(commit).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                let err = Refusal::new(
                    Code::NonceInvalid,
                    "the nonce was used before, or the consent changed meanwhile",
                );
                return Err(self
                    .refuse(
                        session,
                        Some(consent.purpose_id.as_str()),
                        Some(consent.consumer_id.as_str()),
                        err,
                    )
                    .await);
            }
            Err(e) => return Err(e.into()),
        }
        metrics::counter!("tsunagu_consent_changes_total", "action" => kind.as_str()).increment(1);
        let consumer = self
            .directory
            .get(&consent.consumer_id)
            .await?
            .ok_or_else(|| Refusal::internal("consent", "consumer vanished"))?;
        let purpose = consumer
            .purpose_by_id(&consent.purpose_id)
            .cloned()
            .ok_or_else(|| Refusal::internal("consent", "purpose vanished"))?;
        let history = self.store.consent_history(&consent.id).await?;
        self.record(&updated, &consumer, &purpose, &history, session, t)
            .await
    }

    /// A consent as the resident sees it, with its receipt.
    async fn record(
        &self,
        row: &ConsentRow,
        consumer: &ServiceEntry,
        purpose: &PurposeEntry,
        history: &[ConsentEventRow],
        session: &Session,
        t: i64,
    ) -> Outcome<ConsentRecord> {
        let provider = if row.provider_id.is_platform() {
            None
        } else {
            self.directory.get(&row.provider_id).await?
        };
        let status = row.status.at(row.expires_at, t);
        Ok(ConsentRecord {
            consent_id: row.id.clone(),
            status,
            purpose_id: row.purpose_id.clone(),
            consumer: row.consumer_id.clone(),
            provider: row.provider_id.clone(),
            items: row.items.clone(),
            expires_at: row.expires_at,
            created_at: row.created_at,
            terms_sha256: row.terms_sha256.clone(),
            receipt: self.receipt(
                row,
                status,
                consumer,
                purpose,
                provider.as_deref(),
                history,
                session,
            ),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn receipt(
        &self,
        row: &ConsentRow,
        status: ConsentStatus,
        consumer: &ServiceEntry,
        purpose: &PurposeEntry,
        provider: Option<&ServiceEntry>,
        history: &[ConsentEventRow],
        session: &Session,
    ) -> Receipt {
        let source = provider
            .map(|p| p.application.offers.clone())
            .unwrap_or_default();
        let personal_data = row
            .items
            .iter()
            .map(|item| {
                let offer = source.iter().find(|o| &o.item == item);
                ReceiptItem {
                    item: item.clone(),
                    title_ja: offer
                        .map(|o| o.title_ja.clone())
                        .unwrap_or_else(|| item.clone()),
                    data_class: offer.map(|o| o.data_class),
                    sensitive: offer.is_some_and(|o| o.sensitive),
                    use_: purpose.purpose.uses.get(item).cloned(),
                }
            })
            .collect();
        Receipt {
            schema: "ISO/IEC TS 27560:2023 consent record (tsunagu profile v1)",
            header: ReceiptHeader {
                record_id: row.id.clone(),
                timestamp: iso8601(row.created_at),
                jurisdiction: "JP",
                language: "ja",
                notice: Notice {
                    terms_sha256: row.terms_sha256.clone(),
                    service: format!("{}/v1/services/{}", self.public_url, row.consumer_id),
                },
                evidence: Evidence {
                    format: "JWS (ES256) by the resident's device key over the JCS of the consent",
                    jws_sha256: hex::encode(sha256(row.jws.as_bytes())),
                    device: row.device_id.to_string(),
                },
            },
            processing: Processing {
                purposes: vec![ProcessingPurpose {
                    purpose_id: row.purpose_id.clone(),
                    purpose: purpose.purpose.title_ja.clone(),
                    purpose_en: purpose.purpose.title_en.clone(),
                    description: purpose.purpose.description_ja.clone(),
                    description_en: purpose.purpose.description_en.clone(),
                    lawful_basis: LegalBasis::Consent.as_str(),
                    personal_data,
                    processing_operations: [
                        "provision from the source to the recipient through tsunagu tickets",
                        "use by the recipient for the purpose",
                    ],
                    retention: Retention {
                        days: purpose.purpose.retention_days,
                    },
                }],
                third_party_disclosure: false,
            },
            parties: Parties {
                data_subject: DataSubject {
                    pseudonym: self.keys.ledger_subject(&session.account_id),
                },
                recipient: Recipient {
                    service_id: consumer.row.id.clone(),
                    name: consumer.row.name.clone(),
                    organization: consumer.row.organization.clone(),
                    contact: consumer.row.contact.clone(),
                },
                source: match provider {
                    Some(p) => Party::of(p),
                    None => Party {
                        service_id: row.provider_id.clone(),
                        name: "tsunagu".into(),
                        organization: None,
                    },
                },
                intermediary: Intermediary {
                    name: "tsunagu",
                    url: self.public_url.clone(),
                },
            },
            events: history
                .iter()
                .map(|e| ReceiptEvent {
                    kind: e.status.receipt_event(),
                    timestamp: iso8601(e.created_at),
                    expires_at: e.expires_at,
                    items: e.items.clone(),
                })
                .collect(),
            state: status,
            expires_at: row.expires_at,
        }
    }

    /// `GET /v1/me/consents`: the resident's consents, newest first, with their receipts.
    pub async fn list(&self, session: &Session) -> Outcome<Vec<ConsentRecord>> {
        let t = now();
        let mut out = Vec::new();
        for row in self.store.consents_of(&session.account_id).await? {
            let Some(consumer) = self.directory.get(&row.consumer_id).await? else {
                continue;
            };
            let Some(purpose) = consumer.purpose_by_id(&row.purpose_id).cloned() else {
                continue;
            };
            let history = self.store.consent_history(&row.id).await?;
            out.push(
                self.record(&row, &consumer, &purpose, &history, session, t)
                    .await?,
            );
        }
        Ok(out)
    }

    /// One of the resident's consents, with its receipt.
    pub async fn get(&self, session: &Session, id: &ConsentId) -> Outcome<ConsentRecord> {
        self.list(session)
            .await?
            .into_iter()
            .find(|c| c.consent_id == *id)
            .ok_or_else(|| Refusal::new(Code::UnknownConsent, "no such consent of this resident"))
    }

    /// `GET /v1/me/offers`: every purpose of an approved (or suspended, to say why)
    /// consumer, consent-based ones switchable, legal-basis ones read-only.
    pub async fn offers(&self, session: &Session) -> Outcome<Vec<Offer>> {
        let t = now();
        let mut out = Vec::new();
        let consents = self.store.consents_of(&session.account_id).await?;
        for row in self.store.all_purposes().await? {
            let Some(consumer) = self.directory.get(&row.consumer_id).await? else {
                continue;
            };
            if !matches!(
                consumer.row.status,
                ServiceStatus::Approved | ServiceStatus::Suspended
            ) {
                continue;
            }
            let provider = if row.provider_id.is_platform() {
                None
            } else {
                match self.directory.get(&row.provider_id).await? {
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
            let Some(purpose) = consumer.purpose_by_id(&row.purpose_id) else {
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
                    consents.iter().find(|c| {
                        c.consumer_id == row.consumer_id && c.purpose_id == row.purpose_id
                    })
                });
            let items = p
                .items
                .iter()
                .map(|item| {
                    let offer = provider
                        .as_ref()
                        .and_then(|prov| prov.application.offers.iter().find(|o| &o.item == item));
                    OfferItem {
                        item: item.clone(),
                        title_ja: offer
                            .map(|o| o.title_ja.clone())
                            .unwrap_or_else(|| item.clone()),
                        title_en: offer.and_then(|o| o.title_en.clone()),
                        data_class: offer.map(|o| o.data_class),
                        sensitive: offer.is_some_and(|o| o.sensitive),
                        use_: p.uses.get(item).cloned(),
                    }
                })
                .collect();
            let suspended = consumer.row.status == ServiceStatus::Suspended
                || provider
                    .as_ref()
                    .is_some_and(|p| p.row.status == ServiceStatus::Suspended);
            out.push(Offer {
                purpose_id: row.purpose_id.clone(),
                consumer: Party::of(&consumer),
                provider: provider
                    .as_deref()
                    .map(Party::of)
                    .unwrap_or_else(Party::platform),
                items,
                title_ja: p.title_ja.clone(),
                title_en: p.title_en.clone(),
                description_ja: p.description_ja.clone(),
                description_en: p.description_en.clone(),
                retention_days: p.retention_days,
                legal_basis: p.legal_basis,
                citation: p.citation.clone(),
                terms_sha256: row.terms_sha256.clone(),
                read_only: p.legal_basis != LegalBasis::Consent,
                status: if suspended {
                    OfferStatus::Suspended
                } else {
                    OfferStatus::Available
                },
                status_reason: suspended.then_some(
                    "the governance committee suspended a service of this flow; nothing flows until it is reinstated",
                ),
                approved_over: approved_over(&consumer.row.lint, &row.purpose_id),
                consent: current.map(|c| OfferConsent {
                    consent_id: c.id.clone(),
                    status: c.status.at(c.expires_at, t),
                    items: c.items.clone(),
                    expires_at: c.expires_at,
                }),
            });
        }
        Ok(out)
    }

    /// `GET /v1/me/pairwise/{service_id}`: the resident's id at a service, to show in
    /// person (e.g. as a QR code to an ambulance crew acting under a vital-interest rule).
    pub async fn show_pairwise(
        &self,
        session: &Session,
        service_id: &ServiceId,
    ) -> Outcome<ShownPairwise> {
        let service = self.directory.get(service_id).await?.ok_or_else(|| {
            Refusal::new(Code::UnknownService, format!("no service `{service_id}`"))
        })?;
        let subject = self.keys.pairwise_id(service_id, &session.account_id);
        let t = now();
        self.committer
            .commit(
                Commit::new()
                    .change(ExchangeChange::LinkSubject {
                        sector: service_id.clone(),
                        subject: subject.clone(),
                        account_id: session.account_id.clone(),
                        created_at: t,
                    })
                    .leaf(leaf(
                        &Event::PairwiseShown {
                            subject: self.keys.ledger_subject(&session.account_id).into_string(),
                            service: service_id.to_string(),
                        },
                        &[&session.account_id],
                        t,
                    )),
            )
            .await?;
        Ok(ShownPairwise {
            subject,
            service_id: service_id.clone(),
            service_name: service.row.name.clone(),
        })
    }

    /// Records consents whose expiry passed: status `expired`, a feed entry for the
    /// services, a leaf for the resident. Returns how many.
    pub async fn sweep_expirations(&self) -> Result<u64, StoreError> {
        let t = now();
        let due = self.store.due_expirations(t, 500).await?;
        let mut done = 0;
        for row in due {
            let commit = Commit::new()
                .change(ConsentChange::SetConsentStatus {
                    id: row.id.clone(),
                    from: ConsentStatus::Active,
                    to: ConsentStatus::Expired,
                    updated_at: t,
                })
                .change(ConsentChange::InsertConsentEvent(event_of(
                    &row,
                    ConsentEventKind::Expired,
                    t,
                )))
                .leaf(leaf(
                    &Event::ConsentExpired {
                        subject: self.keys.ledger_subject(&row.account_id).into_string(),
                        consent: row.id.to_string(),
                    },
                    &[&row.account_id],
                    t,
                ));
            match self.committer.commit(commit).await {
                Ok(_) => done += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Deletes residents' used nonces past their window. Returns rows deleted.
    pub async fn purge_nonces(&self) -> Result<u64, StoreError> {
        self.store.purge_resident_nonces(now()).await
    }
}
