//! The identity service: enrollment and proofing, device credentials, challenge-response
//! login with lock-out, sessions, device revocation, the resident's account view, and the
//! status check of proofed accounts against CRLs (現況確認).
//!
//! The rules (how an enrollment binds, when a login may proceed, how long a lock lasts) are
//! in `tsunagu-core`; the checks of signatures and certificates in `tsunagu-crypto`; this
//! module orders them, reads and writes state, and records every outcome in the ledger.

use crate::config::IdentityConfig;
use crate::keys::PlatformKeys;
use crate::ledger::{Committer, leaf};
use crate::trust::Trust;
use crate::{Outcome, Refusal, iso8601, now};
use serde::Serialize;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tsunagu_core::event::{Actor, Event, ProofMethod};
pub use tsunagu_core::identity::DeviceState;
use tsunagu_core::identity::{
    AccountFacts, AccountStatus, BasicAttributes, CardProof, DeviceGate, DeviceStatus,
    EnrolledDevice, EnrollmentPlan, Level, credential_expiry, decide_enrollment, login_gate,
};
use tsunagu_core::{AccountId, Code, DeviceId, GrantId, PairwiseId, ServiceId};
use tsunagu_crypto::jwk::PublicJwk;
pub use tsunagu_crypto::proofing::EnrollmentRequest;
use tsunagu_crypto::proofing::{self, ProofContext, ProvenIdentity};
pub use tsunagu_crypto::webauthn::{self, RelyingParty};
use tsunagu_crypto::{b64, jws, keys, random, sha256};
use tsunagu_store::{
    AccountRow, CardRef, Commit, DeviceRow, GrantRow, IdentityChange, SessionRow, Store,
    StoreError, UvCredential,
};

const CREDENTIAL_TYP: &str = "tsunagu-device-credential+jwt";

/// What a single-use nonce is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoncePurpose {
    Enroll,
    Login,
}

impl NoncePurpose {
    fn as_str(self) -> &'static str {
        match self {
            NoncePurpose::Enroll => "enroll",
            NoncePurpose::Login => "login",
        }
    }
}

/// Reads an enrollment request (`POST /v1/enrollment`'s body) strictly: a public P-256
/// device key, and a proof whose signed data is exactly the binding.
pub fn parse_enrollment(body: &[u8]) -> Outcome<EnrollmentRequest> {
    proofing::parse_enrollment(body).map_err(|e| Refusal::new(e.code, e.detail))
}

/// A fresh challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Challenge {
    pub nonce: String,
    pub expires_at: i64,
    /// The WebAuthn relying party ID a browser registers and asserts credentials for, when
    /// this platform's public URL allows WebAuthn (an https domain name); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webauthn_rp_id: Option<String>,
}

/// What an accepted enrollment returns.
#[derive(Debug, Clone, Serialize)]
pub struct Enrolled {
    pub account_id: AccountId,
    pub device_id: DeviceId,
    pub level: Level,
    pub status: AccountStatus,
    pub credential: String,
    pub expires_at: i64,
    /// Whether a new account or device was created rather than an existing one upgraded or
    /// re-proofed.
    #[serde(skip)]
    pub created: bool,
}

/// A successful login.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedIn {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub account_id: AccountId,
    pub device_id: DeviceId,
}

/// An authenticated resident.
#[derive(Debug, Clone)]
pub struct Session {
    pub account_id: AccountId,
    pub device_id: DeviceId,
    /// When the resident logged in (OpenID Connect `auth_time`).
    pub auth_time: i64,
}

/// A device as the resident sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    pub id: DeviceId,
    pub status: DeviceStatus,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub locked_until: Option<i64>,
    /// The device the session is on.
    pub current: bool,
    /// RFC 7638 thumbprint of the device key.
    pub key_thumbprint: String,
    /// The device key is gated by WebAuthn user verification (PIN, fingerprint, face).
    pub user_verification: bool,
}

impl DeviceView {
    /// What the device can do at `now`.
    pub fn state_at(&self, now: i64) -> DeviceState {
        DeviceState::at(self.status, self.locked_until, self.expires_at, now)
    }
}

/// The resident's account as they see it (`GET /v1/me`).
#[derive(Debug, Clone)]
pub struct Me {
    pub account_id: AccountId,
    pub level: Level,
    pub status: AccountStatus,
    /// The four basic items, for a proofed account.
    pub attributes: Option<BasicAttributes>,
    /// When the proofing certificate expires.
    pub proofed_until: Option<i64>,
    pub devices: Vec<DeviceView>,
    /// The resident's pseudonym in the ledger.
    pub ledger_subject: PairwiseId,
}

impl Me {
    /// A verified ID in good standing: may consent to data linkage.
    pub fn may_link_data(&self) -> bool {
        self.level == Level::Verified && self.status == AccountStatus::Active
    }
}

/// A device after a revocation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedDevice {
    pub device_id: DeviceId,
    pub status: DeviceStatus,
    pub revoked_at: Option<i64>,
    /// The services whose login grants through this device ended with it (this
    /// revocation's; empty when the device was already revoked).
    pub ended_logins: Vec<EndedLogin>,
}

/// A service login (an OpenID Connect grant) ended because its device was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndedLogin {
    pub grant_id: GrantId,
    pub client_id: ServiceId,
}

/// Why a login grant ended with its device (the grant's `revoked_reason`).
pub const DEVICE_REVOKED_REASON: &str = "device revoked";

/// The claims of a device credential this platform issued.
#[derive(Debug, serde::Deserialize)]
struct CredentialClaims {
    iss: String,
    sub: AccountId,
    device_id: DeviceId,
    cnf: Cnf,
}

#[derive(Debug, serde::Deserialize)]
struct Cnf {
    jkt: String,
}

/// Enrollment, login, sessions, devices and the status check.
#[derive(Clone)]
pub struct Identity {
    store: Arc<dyn Store>,
    committer: Committer,
    keys: Arc<PlatformKeys>,
    trust: Arc<Trust>,
    config: IdentityConfig,
    public_url: String,
    /// The WebAuthn relying party of `public_url`, or why there is none (an IP address or
    /// plain http): devices then enroll without user verification, and the UI says so.
    webauthn: Result<RelyingParty, String>,
    status_checked: Arc<Mutex<HashSet<CrlEntry>>>,
}

/// A CRL entry (issuer, serial) already matched against accounts.
type CrlEntry = (Vec<u8>, Vec<u8>);

type RefusedWith = (Code, Option<AccountId>);

impl Identity {
    pub fn new(
        store: Arc<dyn Store>,
        committer: Committer,
        keys: Arc<PlatformKeys>,
        trust: Arc<Trust>,
        config: IdentityConfig,
        public_url: String,
    ) -> Identity {
        Identity {
            store,
            committer,
            keys,
            trust,
            config,
            webauthn: RelyingParty::for_public_url(&public_url),
            public_url,
            status_checked: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// A fresh nonce for `purpose`.
    pub async fn challenge(&self, purpose: NoncePurpose) -> Outcome<Challenge> {
        let nonce = random::token(32).map_err(|e| Refusal::internal("nonce", e))?;
        let expires_at = now() + self.config.nonce_ttl_seconds as i64;
        self.store
            .put_nonce(&nonce, purpose.as_str(), expires_at)
            .await?;
        Ok(Challenge {
            nonce,
            expires_at,
            webauthn_rp_id: self.webauthn.as_ref().ok().map(|rp| rp.id.clone()),
        })
    }

    fn seal_attributes(&self, account_id: &AccountId, attrs: &BasicAttributes) -> Outcome<Vec<u8>> {
        let plain = serde_json::to_vec(attrs).map_err(|e| Refusal::internal("attributes", e))?;
        self.keys
            .keyring()
            .seal(format!("account:{account_id}").as_bytes(), &plain)
            .map_err(|e| Refusal::internal("sealing attributes", e))
    }

    /// The basic items of an account, decrypted.
    pub fn open_attributes(&self, account: &AccountRow) -> Outcome<Option<BasicAttributes>> {
        let Some(sealed) = &account.attributes else {
            return Ok(None);
        };
        let plain = self
            .keys
            .open_sealed(format!("account:{}", account.id).as_bytes(), sealed)
            .map_err(|e| Refusal::internal("opening attributes", e))?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| Refusal::internal("attributes", e))
    }

    fn facts(&self, account: &AccountRow) -> Outcome<AccountFacts> {
        let attributes = self.open_attributes(account)?;
        Ok(AccountFacts {
            account_id: account.id.to_string(),
            level: account.level,
            status: account.status,
            birthdate: attributes.as_ref().map(|a| a.birthdate.clone()),
            name: attributes.map(|a| a.name),
        })
    }

    fn card_binding(&self, issuer: &[u8], serial: &[u8]) -> String {
        let mut data = issuer.to_vec();
        data.push(0);
        data.extend_from_slice(serial);
        self.keys.pairwise.digest("jpki-card", &data)
    }

    /// The account an earlier certificate of the same person proofed, when J-LIS links it
    /// to this one (newest link first).
    async fn linked_account(
        &self,
        proven: &ProvenIdentity,
    ) -> Result<Option<AccountRow>, StoreError> {
        let trust = self.trust.current();
        for old in trust.predecessors(&proven.certificate.serial) {
            let binding = self.card_binding(&proven.certificate.issuer, &old);
            if let Some(account) = self.store.account_by_card(&binding).await? {
                return Ok(Some(account));
            }
        }
        Ok(None)
    }

    async fn record(&self, event: Event, subjects: &[&AccountId]) {
        let commit = Commit::new().leaf(leaf(&event, subjects, now()));
        if let Err(e) = self.committer.commit(commit).await {
            tracing::error!(error = %e, "recording a refusal in the ledger failed");
        }
    }

    async fn refuse_enrollment(
        &self,
        key: &str,
        account: Option<&AccountId>,
        code: Code,
        detail: String,
    ) -> Refusal {
        let subject = account.map(|a| self.keys.ledger_subject(a).into_string());
        self.record(
            Event::EnrollmentRefused {
                subject,
                key: key.to_owned(),
                reason: code,
            },
            &account.into_iter().collect::<Vec<_>>(),
        )
        .await;
        metrics::counter!("tsunagu_enrollments_total", "outcome" => code.as_str()).increment(1);
        Refusal::new(code, detail)
    }

    fn issue_credential(
        &self,
        account_id: &AccountId,
        device_id: &DeviceId,
        jkt: &str,
        level: Level,
        iat: i64,
        exp: i64,
    ) -> Outcome<String> {
        jws::sign_json(
            &self.keys.signing(),
            Some(CREDENTIAL_TYP),
            &json!({
                "iss": self.public_url,
                "sub": account_id,
                "device_id": device_id,
                "cnf": { "jkt": jkt },
                "level": level.as_str(),
                "iat": iat,
                "exp": exp,
            }),
        )
        .map_err(|e| Refusal::internal("signing a credential", e))
    }

    /// `POST /v1/enrollment`: a device key, a nonce, and optionally a JPKI proof (the
    /// request as [`parse_enrollment`] reads it).
    pub async fn enroll(&self, request: EnrollmentRequest) -> Outcome<Enrolled> {
        let jkt = request.device_jwk.thumbprint();
        let t = now();
        if !self
            .store
            .take_nonce(&request.nonce, NoncePurpose::Enroll.as_str(), t)
            .await?
        {
            return Err(self
                .refuse_enrollment(
                    &jkt,
                    None,
                    Code::NonceInvalid,
                    "the nonce is unknown, expired or already used; ask for a new challenge".into(),
                )
                .await);
        }
        let known_account = self.store.device_by_jkt(&jkt).await?.map(|d| d.account_id);
        let proven = match &request.proof {
            None => None,
            Some(proof) => {
                let trust = self.trust.current();
                let ctx = ProofContext {
                    anchors: &trust.anchors,
                    crls: &trust.crls,
                    policy: &trust.policy,
                    now: t,
                };
                match proofing::verify_jpki_proof(&request, proof, &ctx) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        return Err(self
                            .refuse_enrollment(&jkt, known_account.as_ref(), e.code, e.detail)
                            .await);
                    }
                }
            }
        };

        let uv = match &request.user_verification {
            None => None,
            Some(registration) => {
                let challenge =
                    proofing::user_verification_challenge(&request.device_jwk, &request.nonce);
                match self.verify_registration(&challenge, registration) {
                    Ok(uv) => Some(uv),
                    Err(r) => {
                        return Err(self
                            .refuse_enrollment(&jkt, known_account.as_ref(), r.code, r.detail)
                            .await);
                    }
                }
            }
        };

        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .enroll_once(&request.device_jwk, &jkt, proven.as_ref(), uv.as_ref(), t)
                .await
            {
                Ok(Ok(enrolled)) => {
                    metrics::counter!("tsunagu_enrollments_total", "outcome" => "accepted")
                        .increment(1);
                    return Ok(enrolled);
                }
                Ok(Err((code, account))) => {
                    let detail = match code {
                        Code::DeviceAlreadyEnrolled => {
                            "this device key is already enrolled; send a card proof to upgrade or re-proof it"
                        }
                        Code::CredentialRevoked => {
                            "this device key was revoked and cannot enroll again"
                        }
                        Code::IdentityMismatch => {
                            "the card belongs to a different person than this account (the birth date and the name must both match, or J-LIS must link this certificate to the account's)"
                        }
                        Code::UserVerificationInvalid => {
                            "user verification is registered with a new device key; this device key is already enrolled"
                        }
                        _ => "enrollment refused",
                    };
                    return Err(self
                        .refuse_enrollment(&jkt, account.as_ref(), code, detail.into())
                        .await);
                }
                Err(AttemptError::Store(StoreError::Conflict(reason))) if attempt < 3 => {
                    tracing::debug!(%reason, "enrollment raced another write; deciding again");
                }
                Err(AttemptError::Store(e)) => return Err(e.into()),
                Err(AttemptError::Refused(r)) => return Err(r),
            }
        }
    }

    /// Reads the current state, decides, and commits. A store conflict means the state
    /// changed underneath; the caller decides again.
    async fn enroll_once(
        &self,
        device_jwk: &PublicJwk,
        jkt: &str,
        proven: Option<&ProvenIdentity>,
        uv: Option<&UvCredential>,
        t: i64,
    ) -> Result<Result<Enrolled, RefusedWith>, AttemptError> {
        let device = self.store.device_by_jkt(jkt).await?;
        let enrolled = match &device {
            Some(d) => {
                let account = self
                    .store
                    .account(&d.account_id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("device without account".into()))?;
                Some((
                    EnrolledDevice {
                        device_id: d.id.to_string(),
                        status: d.status,
                        account: self.facts(&account)?,
                    },
                    account,
                ))
            }
            None => None,
        };
        let card = match proven {
            Some(p) => {
                let binding = self.card_binding(&p.certificate.issuer, &p.certificate.serial);
                let bound = self.store.account_by_card(&binding).await?;
                let linked = match &bound {
                    Some(_) => None,
                    None => self.linked_account(p).await?,
                };
                Some((
                    CardProof {
                        birthdate: p.attributes.birthdate.clone(),
                        name: p.attributes.name.clone(),
                        bound_account: bound.as_ref().map(|a| self.facts(a)).transpose()?,
                        linked_account: linked.as_ref().map(|a| self.facts(a)).transpose()?,
                    },
                    CardRef {
                        binding,
                        issuer: p.certificate.issuer.clone(),
                        serial: p.certificate.serial.clone(),
                        not_after: p.certificate.not_after,
                    },
                ))
            }
            None => None,
        };
        let known_account = enrolled.as_ref().map(|(_, a)| a.id.clone());
        let plan = match decide_enrollment(
            enrolled.as_ref().map(|(d, _)| d),
            card.as_ref().map(|(c, _)| c),
        ) {
            Ok(plan) => plan,
            Err(code) => return Ok(Err((code, known_account))),
        };
        if uv.is_some()
            && matches!(
                plan,
                EnrollmentPlan::Upgrade { .. } | EnrollmentPlan::Reproof { .. }
            )
        {
            return Ok(Err((Code::UserVerificationInvalid, known_account)));
        }

        let max = self.config.credential_max_days * 86_400;
        let card_not_after = card.as_ref().map(|(_, c)| c.not_after);
        let method = if proven.is_some() {
            ProofMethod::Jpki
        } else {
            ProofMethod::None
        };
        let new_device = |account_id: &AccountId, level: Level| -> Outcome<(DeviceRow, String)> {
            let device_id =
                DeviceId::from(random::token(16).map_err(|e| Refusal::internal("id", e))?);
            let expires_at = credential_expiry(t, card_not_after, max);
            let credential =
                self.issue_credential(account_id, &device_id, jkt, level, t, expires_at)?;
            Ok((
                DeviceRow {
                    id: device_id,
                    account_id: account_id.clone(),
                    jkt: jkt.to_owned(),
                    jwk: device_jwk.to_value().to_string(),
                    status: DeviceStatus::Active,
                    failed_logins: 0,
                    locked_until: None,
                    expires_at,
                    created_at: t,
                    revoked_at: None,
                    uv: uv.cloned(),
                },
                credential,
            ))
        };
        let sealed = |account_id: &AccountId| -> Outcome<Option<Vec<u8>>> {
            proven
                .map(|p| self.seal_attributes(account_id, &p.attributes))
                .transpose()
        };

        let upgrade = matches!(plan, EnrollmentPlan::Upgrade { .. });
        let (commit, enrolled) = match plan {
            EnrollmentPlan::NewProvisional | EnrollmentPlan::NewVerified => {
                let level = if proven.is_some() {
                    Level::Verified
                } else {
                    Level::Provisional
                };
                let account_id =
                    AccountId::from(random::token(16).map_err(|e| Refusal::internal("id", e))?);
                let (device, credential) = new_device(&account_id, level)?;
                let subject = self.keys.ledger_subject(&account_id).into_string();
                let result = Enrolled {
                    account_id: account_id.clone(),
                    device_id: device.id.clone(),
                    level,
                    status: AccountStatus::Active,
                    credential,
                    expires_at: device.expires_at,
                    created: true,
                };
                let commit = Commit::new()
                    .change(IdentityChange::InsertAccount(AccountRow {
                        id: account_id.clone(),
                        level,
                        status: AccountStatus::Active,
                        attributes: sealed(&account_id)?,
                        card: card.map(|(_, c)| c),
                        version: 0,
                        created_at: t,
                        updated_at: t,
                        restriction: Default::default(),
                        erased_at: None,
                    }))
                    .change(IdentityChange::InsertDevice(device.clone()))
                    .leaf(leaf(
                        &Event::IdentityEnrolled {
                            subject,
                            device: device.id.to_string(),
                            level,
                            method,
                        },
                        &[&account_id],
                        t,
                    ));
                (commit, result)
            }
            EnrollmentPlan::AddDevice { account_id } => {
                let account_id = AccountId::from(account_id);
                let account = self
                    .store
                    .account(&account_id)
                    .await?
                    .ok_or_else(|| StoreError::Conflict("account vanished".into()))?;
                let (device, credential) = new_device(&account_id, account.level)?;
                let result = Enrolled {
                    account_id: account_id.clone(),
                    device_id: device.id.clone(),
                    level: account.level,
                    status: account.status,
                    credential,
                    expires_at: device.expires_at,
                    created: true,
                };
                let commit = Commit::new()
                    .change(IdentityChange::InsertDevice(device.clone()))
                    .leaf(leaf(
                        &Event::DeviceAdded {
                            subject: self.keys.ledger_subject(&account_id).into_string(),
                            device: device.id.to_string(),
                            method,
                        },
                        &[&account_id],
                        t,
                    ));
                (commit, result)
            }
            EnrollmentPlan::ReproofWithNewDevice { account_id } => {
                let account_id = AccountId::from(account_id);
                let account = self
                    .store
                    .account(&account_id)
                    .await?
                    .ok_or_else(|| StoreError::Conflict("account vanished".into()))?;
                let (_, card) =
                    card.ok_or_else(|| StoreError::Conflict("proof required".into()))?;
                let attributes = sealed(&account_id)?
                    .ok_or_else(|| StoreError::Conflict("proof required".into()))?;
                let (device, credential) = new_device(&account_id, Level::Verified)?;
                let subject = self.keys.ledger_subject(&account_id).into_string();
                let result = Enrolled {
                    account_id: account_id.clone(),
                    device_id: device.id.clone(),
                    level: Level::Verified,
                    status: AccountStatus::Active,
                    credential,
                    expires_at: device.expires_at,
                    created: true,
                };
                let commit = Commit::new()
                    .change(IdentityChange::UpdateAccountProof {
                        id: account_id.clone(),
                        expected_version: account.version,
                        level: Level::Verified,
                        status: AccountStatus::Active,
                        attributes,
                        card,
                        updated_at: t,
                    })
                    .change(IdentityChange::InsertDevice(device.clone()))
                    .leaf(leaf(
                        &Event::DeviceAdded {
                            subject: subject.clone(),
                            device: device.id.to_string(),
                            method,
                        },
                        &[&account_id],
                        t,
                    ))
                    .leaf(leaf(
                        &Event::IdentityReproofed {
                            subject,
                            device: device.id.to_string(),
                        },
                        &[&account_id],
                        t,
                    ));
                (commit, result)
            }
            EnrollmentPlan::Upgrade { account_id } | EnrollmentPlan::Reproof { account_id } => {
                let account_id = AccountId::from(account_id);
                let (device, account) = match (&device, &enrolled) {
                    (Some(d), Some((_, a))) => (d.clone(), a.clone()),
                    _ => return Err(StoreError::Conflict("device vanished".into()).into()),
                };
                let (_, card) =
                    card.ok_or_else(|| StoreError::Conflict("proof required".into()))?;
                let attributes = sealed(&account_id)?
                    .ok_or_else(|| StoreError::Conflict("proof required".into()))?;
                let expires_at = credential_expiry(t, Some(card.not_after), max);
                let credential = self.issue_credential(
                    &account_id,
                    &device.id,
                    jkt,
                    Level::Verified,
                    t,
                    expires_at,
                )?;
                let subject = self.keys.ledger_subject(&account_id).into_string();
                let event = if upgrade {
                    Event::IdentityUpgraded {
                        subject,
                        device: device.id.to_string(),
                    }
                } else {
                    Event::IdentityReproofed {
                        subject,
                        device: device.id.to_string(),
                    }
                };
                let result = Enrolled {
                    account_id: account_id.clone(),
                    device_id: device.id.clone(),
                    level: Level::Verified,
                    status: AccountStatus::Active,
                    credential,
                    expires_at,
                    created: false,
                };
                let commit = Commit::new()
                    .change(IdentityChange::UpdateAccountProof {
                        id: account_id.clone(),
                        expected_version: account.version,
                        level: Level::Verified,
                        status: AccountStatus::Active,
                        attributes,
                        card,
                        updated_at: t,
                    })
                    .leaf(leaf(&event, &[&account_id], t));
                (commit, result)
            }
        };
        self.committer.commit(commit).await?;
        Ok(Ok(enrolled))
    }

    fn verify_credential(&self, credential: &str) -> Outcome<CredentialClaims> {
        let invalid = || {
            Refusal::new(
                Code::CredentialInvalid,
                "the credential was not issued by this platform",
            )
        };
        let token = jws::parse(credential).map_err(|_| invalid())?;
        if token.typ.as_deref() != Some(CREDENTIAL_TYP) {
            return Err(invalid());
        }
        if token.alg != tsunagu_crypto::keys::Alg::Es256 {
            return Err(invalid());
        }
        let key = token
            .kid
            .as_deref()
            .and_then(|kid| self.keys.signing_key(kid))
            .ok_or_else(invalid)?;
        token.verify(&key).map_err(|_| invalid())?;
        let claims: CredentialClaims = token.payload_as().map_err(|_| invalid())?;
        if claims.iss != self.public_url {
            return Err(invalid());
        }
        Ok(claims)
    }

    /// `POST /v1/auth/login`: a device credential, a login nonce and the device's
    /// signature over it.
    pub async fn login(&self, credential: &str, nonce: &str, signature: &str) -> Outcome<LoggedIn> {
        self.login_verified(credential, nonce, signature, None)
            .await
    }

    /// Whether this platform can register WebAuthn credentials, and the relying party ID
    /// the browser must use; otherwise why not (shown to residents at enrollment).
    pub fn webauthn_rp(&self) -> Result<&RelyingParty, &str> {
        self.webauthn.as_ref().map_err(String::as_str)
    }

    /// Checks a WebAuthn registration for `challenge`: the credential to keep.
    fn verify_registration(
        &self,
        challenge: &[u8],
        registration: &webauthn::RegistrationResponse,
    ) -> Outcome<UvCredential> {
        let rp = self.webauthn.as_ref().map_err(|why| {
            Refusal::new(
                Code::UserVerificationUnavailable,
                format!("this platform cannot register WebAuthn credentials: {why}"),
            )
        })?;
        let credential =
            webauthn::verify_registration(rp, challenge, registration).map_err(uv_refusal)?;
        Ok(UvCredential {
            credential_id: b64::url_encode(&credential.id),
            public_key: credential.public_key.to_value().to_string(),
            sign_count: i64::from(credential.sign_count),
        })
    }

    /// Checks a device's WebAuthn assertion for a login nonce; the counter to store.
    fn verify_uv_assertion(
        &self,
        uv: &UvCredential,
        nonce: &str,
        assertion: &webauthn::WireAssertion,
    ) -> Outcome<u32> {
        verify_device_assertion(
            self.webauthn.as_ref().map_err(String::as_str),
            uv,
            &login_uv_challenge(nonce),
            assertion,
        )
    }

    /// `POST /v1/auth/login` with, for a device gated by WebAuthn, the assertion (its
    /// challenge is [`login_uv_challenge`] of the nonce).
    pub async fn login_verified(
        &self,
        credential: &str,
        nonce: &str,
        signature: &str,
        user_verification: Option<&webauthn::WireAssertion>,
    ) -> Outcome<LoggedIn> {
        let claims = self.verify_credential(credential)?;
        let t = now();
        // An erased account logs in from no device, whatever the device's state (one added
        // in the very moment of the erasure included). The credential is the platform's own
        // signature, so its `sub` is the account's.
        if let Some(account) = self.store.account(&claims.sub).await?
            && account.erased_at.is_some()
        {
            let subject = self.keys.ledger_subject(&account.id).into_string();
            self.record(
                Event::LoginRefused {
                    subject,
                    device: claims.device_id.to_string(),
                    reason: Code::AccountErased,
                    locked_until: None,
                },
                &[&account.id],
            )
            .await;
            metrics::counter!("tsunagu_logins_total", "outcome" => "account_erased").increment(1);
            return Err(Refusal::new(
                Code::AccountErased,
                "this account was erased at the resident's request; it cannot log in again",
            ));
        }
        let device = self
            .store
            .device(&claims.device_id)
            .await?
            .filter(|d| d.jkt == claims.cnf.jkt && d.account_id == claims.sub)
            .ok_or_else(|| Refusal::new(Code::CredentialInvalid, "no such device credential"))?;
        let account_id = device.account_id.clone();
        let subject = self.keys.ledger_subject(&account_id).into_string();
        let refuse = |reason: Code, locked_until: Option<i64>| Event::LoginRefused {
            subject: subject.clone(),
            device: device.id.to_string(),
            reason,
            locked_until,
        };

        let gate = DeviceGate {
            status: device.status,
            locked_until: device.locked_until,
            expires_at: device.expires_at,
        };
        if let Err(code) = login_gate(&gate, t) {
            self.record(refuse(code, None), &[&account_id]).await;
            metrics::counter!("tsunagu_logins_total", "outcome" => code.as_str()).increment(1);
            let detail = match code {
                Code::Locked => format!(
                    "too many failed logins: locked until {}",
                    iso8601(device.locked_until.unwrap_or(t))
                ),
                Code::CredentialRevoked => "this device credential was revoked".into(),
                _ => "this device credential has expired; enroll again with the card".into(),
            };
            return Err(Refusal::new(code, detail));
        }
        if !self
            .store
            .take_nonce(nonce, NoncePurpose::Login.as_str(), t)
            .await?
        {
            self.record(refuse(Code::NonceInvalid, None), &[&account_id])
                .await;
            metrics::counter!("tsunagu_logins_total", "outcome" => "nonce_invalid").increment(1);
            return Err(Refusal::new(
                Code::NonceInvalid,
                "the nonce is unknown, expired or already used; ask for a new challenge",
            ));
        }
        let jwk =
            PublicJwk::from_json(&device.jwk).map_err(|e| Refusal::internal("device key", e))?;
        let signature_ok = keys::verify_es256_b64(&jwk, nonce.as_bytes(), signature).is_ok();
        // The device key signed; for a gated device the authenticator must also have
        // verified the user. A missing assertion is not a failed attempt (a client that does
        // not know the device is gated); a wrong one counts like a wrong signature.
        let uv_count = match (&device.uv, user_verification, signature_ok) {
            (Some(_), None, true) => {
                self.record(refuse(Code::UserVerificationRequired, None), &[&account_id])
                    .await;
                metrics::counter!("tsunagu_logins_total", "outcome" => "user_verification_required")
                    .increment(1);
                return Err(Refusal::new(
                    Code::UserVerificationRequired,
                    "this device's key is protected by its screen lock: send a WebAuthn assertion (user_verification) made with the device's platform authenticator",
                ));
            }
            (Some(uv), Some(assertion), true) => {
                match self.verify_uv_assertion(uv, nonce, assertion) {
                    Ok(count) => Some((uv.sign_count, i64::from(count))),
                    // The platform's own trouble (its address no longer allows WebAuthn, a
                    // stored row it cannot read) is not the resident's failed attempt.
                    Err(r)
                        if !matches!(
                            r.code,
                            Code::UserVerificationInvalid | Code::UserVerificationRequired
                        ) =>
                    {
                        self.record(refuse(r.code, None), &[&account_id]).await;
                        return Err(r);
                    }
                    Err(r) => {
                        self.count_login_failure(&device, &refuse, r.code, &account_id, t)
                            .await?;
                        return Err(r);
                    }
                }
            }
            _ => None,
        };
        if !signature_ok {
            self.count_login_failure(&device, &refuse, Code::SignatureInvalid, &account_id, t)
                .await?;
            return Err(Refusal::new(
                Code::SignatureInvalid,
                "the signature over the nonce does not verify with the device key",
            ));
        }

        let token = random::token(32).map_err(|e| Refusal::internal("token", e))?;
        let ttl = self.config.session_ttl_seconds;
        let mut commit = Commit::new().change(IdentityChange::InsertSession(SessionRow {
            token_hash: hex::encode(sha256(token.as_bytes())),
            account_id: account_id.clone(),
            device_id: device.id.clone(),
            expires_at: t + ttl as i64,
            created_at: t,
        }));
        if let Some((expected, count)) = uv_count.filter(|(before, after)| before != after) {
            commit.push(IdentityChange::SetUvSignCount {
                device_id: device.id.clone(),
                expected,
                count,
            });
        }
        if device.failed_logins != 0 || device.locked_until.is_some() {
            commit.push(IdentityChange::SetLoginState {
                device_id: device.id.clone(),
                expected_failures: device.failed_logins,
                failures: 0,
                locked_until: None,
            });
        }
        let commit = commit.leaf(leaf(
            &Event::Login {
                subject: subject.clone(),
                device: device.id.to_string(),
            },
            &[&account_id],
            t,
        ));
        if let Err(e) = self.committer.commit(commit).await {
            let refusal = match e {
                // The assertion's counter was taken by another request at the same time (the
                // same assertion twice, or a clone racing the authenticator).
                StoreError::Conflict(_) if uv_count.is_some() => Refusal::new(
                    Code::UserVerificationInvalid,
                    "this assertion's signature counter was used by another request at the same time",
                ),
                StoreError::Conflict(_) => Refusal::new(
                    Code::SignatureInvalid,
                    "the device's login state changed during this login; try again",
                ),
                other => return Err(other.into()),
            };
            self.record(refuse(refusal.code, None), &[&account_id])
                .await;
            return Err(refusal);
        }
        metrics::counter!("tsunagu_logins_total", "outcome" => "accepted").increment(1);
        Ok(LoggedIn {
            access_token: token,
            token_type: "Bearer",
            expires_in: ttl,
            account_id,
            device_id: device.id,
        })
    }

    /// Counts a failed login (atomically in the database: of 20 concurrent failures, 20
    /// count), locks the device when the policy says so, and records the refusal.
    async fn count_login_failure(
        &self,
        device: &DeviceRow,
        refuse: &impl Fn(Code, Option<i64>) -> Event,
        code: Code,
        account_id: &AccountId,
        t: i64,
    ) -> Outcome<()> {
        let failures = self
            .store
            .count_login_failure(&device.id)
            .await?
            .unwrap_or(device.failed_logins + 1);
        let lock = self
            .config
            .lockout
            .policy()
            .lock_after(u32::try_from(failures).unwrap_or(u32::MAX))
            .map(|secs| t + secs as i64);
        let mut commit = Commit::new().leaf(leaf(&refuse(code, lock), &[account_id], t));
        if let Some(until) = lock {
            commit.push(IdentityChange::ExtendLock {
                device_id: device.id.clone(),
                locked_until: until,
            });
        }
        if let Err(e) = self.committer.commit(commit).await {
            tracing::error!(error = %e, "recording a failed login failed");
        }
        metrics::counter!("tsunagu_logins_total", "outcome" => code.as_str()).increment(1);
        Ok(())
    }

    /// Ends a session (logout): its token stops working at once.
    pub async fn end_session(&self, token: &str) -> Outcome<()> {
        self.committer
            .commit(Commit::new().change(IdentityChange::DeleteSession {
                token_hash: hex::encode(sha256(token.as_bytes())),
            }))
            .await?;
        Ok(())
    }

    /// Resolves a bearer token to a session.
    pub async fn authenticate(&self, token: &str) -> Outcome<Session> {
        let unauthorized = || Refusal::new(Code::Unauthorized, "a valid access token is required");
        let row = self
            .store
            .session(&hex::encode(sha256(token.as_bytes())))
            .await?
            .ok_or_else(unauthorized)?;
        if row.expires_at <= now() {
            return Err(unauthorized());
        }
        Ok(Session {
            account_id: row.account_id,
            device_id: row.device_id,
            auth_time: row.created_at,
        })
    }

    /// The account of a session, as the store has it.
    pub async fn account(&self, session: &Session) -> Outcome<AccountRow> {
        self.store
            .account(&session.account_id)
            .await?
            .ok_or_else(|| Refusal::new(Code::Unauthorized, "the account no longer exists"))
    }

    /// `GET /v1/me`.
    pub async fn me(&self, session: &Session) -> Outcome<Me> {
        let account = self.account(session).await?;
        let attributes = self.open_attributes(&account)?;
        let devices = self
            .store
            .devices_of(&account.id)
            .await?
            .into_iter()
            .map(|d| DeviceView {
                current: d.id == session.device_id,
                id: d.id,
                status: d.status,
                created_at: d.created_at,
                expires_at: d.expires_at,
                revoked_at: d.revoked_at,
                locked_until: d.locked_until,
                user_verification: d.uv.is_some(),
                key_thumbprint: d.jkt,
            })
            .collect();
        Ok(Me {
            ledger_subject: self.keys.ledger_subject(&account.id),
            account_id: account.id,
            level: account.level,
            status: account.status,
            attributes,
            proofed_until: account.card.as_ref().map(|c| c.not_after),
            devices,
        })
    }

    /// `POST /v1/me/devices/{id}/revoke`.
    pub async fn revoke_device(
        &self,
        session: &Session,
        device_id: &DeviceId,
    ) -> Outcome<RevokedDevice> {
        let device = self
            .store
            .device(device_id)
            .await?
            .filter(|d| d.account_id == session.account_id)
            .ok_or_else(|| Refusal::new(Code::NotFound, "no such device on this account"))?;
        if device.status == DeviceStatus::Revoked {
            return Ok(RevokedDevice {
                device_id: device.id,
                status: DeviceStatus::Revoked,
                revoked_at: device.revoked_at,
                ended_logins: vec![],
            });
        }
        let t = now();
        // What the device started ends with it: its sessions, and the services' login grants
        // made through it (their refresh and access tokens stop working). A grant made
        // between this read and the commit is refused at the token endpoint all the same,
        // because its device is revoked.
        let ended: Vec<GrantRow> = self
            .store
            .live_grants_of(&session.account_id, t)
            .await?
            .into_iter()
            .filter(|g| g.device_id == device.id)
            .collect();
        let subject = self.keys.ledger_subject(&session.account_id).into_string();
        let mut commit = Commit::new()
            .change(IdentityChange::RevokeDevice {
                id: device.id.clone(),
                at: t,
            })
            .change(IdentityChange::DeleteDeviceSessions {
                device_id: device.id.clone(),
            })
            .leaf(leaf(
                &Event::DeviceRevoked {
                    subject: subject.clone(),
                    device: device.id.to_string(),
                    by: Actor::Device(session.device_id.to_string()),
                },
                &[&session.account_id],
                t,
            ));
        for g in &ended {
            commit = crate::oidc::revoke_grant_in(commit, &self.keys, g, DEVICE_REVOKED_REASON, t);
        }
        let ended_logins = match self.committer.commit(commit).await {
            Ok(_) => ended
                .into_iter()
                .map(|g| EndedLogin {
                    grant_id: g.id,
                    client_id: g.client_id,
                })
                .collect(),
            // Revoked concurrently: that revocation ended what it found.
            Err(StoreError::Conflict(_)) => vec![],
            Err(e) => return Err(e.into()),
        };
        let device = self
            .store
            .device(device_id)
            .await?
            .ok_or_else(|| Refusal::new(Code::NotFound, "no such device"))?;
        Ok(RevokedDevice {
            device_id: device.id,
            status: device.status,
            revoked_at: device.revoked_at,
            ended_logins,
        })
    }

    /// 現況確認: puts every verified account whose proofing certificate is on a loaded CRL
    /// into `reproof_required`. CRL entries already handled are skipped. Returns how many
    /// accounts were flagged.
    pub async fn status_check(&self) -> anyhow::Result<u64> {
        let trust = self.trust.current();
        let mut fresh = Vec::new();
        {
            let checked = self.status_checked.lock().expect("status lock");
            for info in trust.crls.infos() {
                for (serial, _) in &info.revoked {
                    let key = (info.issuer.clone(), serial.clone());
                    if !checked.contains(&key) {
                        fresh.push(key);
                    }
                }
            }
        }
        let mut flagged = 0;
        for (issuer, serial) in &fresh {
            for account in self.store.accounts_with_card(issuer, serial).await? {
                if account.status != AccountStatus::Active || account.level != Level::Verified {
                    continue;
                }
                let t = now();
                let commit = Commit::new()
                    .change(IdentityChange::SetAccountStatus {
                        id: account.id.clone(),
                        from: AccountStatus::Active,
                        to: AccountStatus::ReproofRequired,
                        updated_at: t,
                    })
                    .leaf(leaf(
                        &Event::ReproofRequired {
                            subject: self.keys.ledger_subject(&account.id).into_string(),
                            reason: Code::CertificateRevoked,
                        },
                        &[&account.id],
                        t,
                    ));
                match self.committer.commit(commit).await {
                    Ok(_) => flagged += 1,
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.status_checked
            .lock()
            .expect("status lock")
            .extend(fresh);
        if flagged > 0 {
            tracing::info!(
                accounts = flagged,
                "card certificates revoked: re-proofing required"
            );
        }
        Ok(flagged)
    }

    /// Loads the CRLs again when their files changed or `full` is due, then runs the status
    /// check. Returns the accounts flagged; a CRL that could not be loaded or fetched (even
    /// when a cached copy stood in) makes it an error, after the status check has run.
    pub async fn refresh_trust(&self, full: bool) -> anyhow::Result<u64> {
        if !full && !self.trust.files_changed() {
            return Ok(0);
        }
        let state = self.trust.refresh().await?;
        let flagged = self.status_check().await?;
        let failed: Vec<String> = state
            .sources
            .iter()
            .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.location)))
            .collect();
        if !failed.is_empty() {
            anyhow::bail!("CRLs not refreshed: {}", failed.join("; "));
        }
        Ok(flagged)
    }

    /// How often CRLs are fetched again in full.
    pub fn crl_refresh_seconds(&self) -> u64 {
        self.config.crl_refresh_seconds
    }

    /// Deletes expired nonces and sessions. Returns rows deleted.
    pub async fn purge(&self) -> Outcome<u64> {
        let t = now();
        Ok(self.store.purge_nonces(t).await? + self.store.purge_sessions(t).await?)
    }
}

/// A failure inside an enrollment attempt: the store (retried on conflict) or a refusal.
enum AttemptError {
    Store(StoreError),
    Refused(Refusal),
}

impl From<StoreError> for AttemptError {
    fn from(e: StoreError) -> Self {
        AttemptError::Store(e)
    }
}

impl From<Refusal> for AttemptError {
    fn from(r: Refusal) -> Self {
        AttemptError::Refused(r)
    }
}

/// The WebAuthn challenge of a login: SHA-256 of the login nonce's UTF-8 bytes.
pub fn login_uv_challenge(nonce: &str) -> [u8; 32] {
    sha256(nonce.as_bytes())
}

/// A refused WebAuthn check as the resident's client sees it: the authenticator did not
/// verify the user → `user_verification_required`; anything else → `user_verification_invalid`.
fn uv_refusal(e: webauthn::WebAuthnError) -> Refusal {
    let code = match e {
        webauthn::WebAuthnError::UserNotVerified | webauthn::WebAuthnError::UserNotPresent => {
            Code::UserVerificationRequired
        }
        _ => Code::UserVerificationInvalid,
    };
    Refusal::new(code, e.to_string())
}

/// Checks an assertion by a gated device's credential for `challenge` (user present and
/// verified, counter grown); the counter to store. Shared by logins and signed consents.
pub(crate) fn verify_device_assertion(
    rp: Result<&RelyingParty, &str>,
    uv: &UvCredential,
    challenge: &[u8],
    assertion: &webauthn::WireAssertion,
) -> Outcome<u32> {
    let rp = rp.map_err(|why| {
        Refusal::new(
            Code::UserVerificationUnavailable,
            format!(
                "this device needs WebAuthn user verification, which this platform's address no longer allows: {why}"
            ),
        )
    })?;
    let response = assertion.decode().map_err(uv_refusal)?;
    let id = b64::url_decode(&uv.credential_id)
        .map_err(|e| Refusal::internal("stored credential id", e))?;
    let key = PublicJwk::from_json(&uv.public_key)
        .map_err(|e| Refusal::internal("stored credential key", e))?;
    let stored = u32::try_from(uv.sign_count).unwrap_or(u32::MAX);
    webauthn::verify_assertion(rp, challenge, &id, &key, stored, &response).map_err(uv_refusal)
}
