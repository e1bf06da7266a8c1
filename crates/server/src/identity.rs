//! The identity service: enrollment and proofing, device credentials, challenge-response
//! login with lock-out, sessions, device revocation, the resident's account view, and the
//! status check of proofed accounts against CRLs (現況確認).
//!
//! The rules (how an enrollment binds, when a login may proceed, how long a lock lasts) are
//! in `tsunagu-core`; the checks of signatures and certificates in `tsunagu-crypto`; this
//! module orders them, reads and writes state, and records every outcome in the ledger.

use crate::app::{App, now};
use crate::error::ApiError;
use crate::ledger::leaf;
use serde::Serialize;
use serde_json::{Value, json};
use tsunagu_core::Code;
use tsunagu_core::event::{Actor, Event, ProofMethod};
use tsunagu_core::identity::{
    AccountFacts, AccountStatus, BasicAttributes, CardProof, DeviceGate, DeviceStatus,
    EnrolledDevice, EnrollmentPlan, Level, credential_expiry, decide_enrollment, login_gate,
};
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::pairwise::LEDGER_SECTOR;
use tsunagu_crypto::proofing::{self, ProofContext, ProvenIdentity};
use tsunagu_crypto::{jws, keys, random, sha256};
use tsunagu_store::{
    AccountRow, CardRef, Commit, DeviceRow, IdentityChange, SessionRow, StoreError,
};

pub const NONCE_ENROLL: &str = "enroll";
pub const NONCE_LOGIN: &str = "login";
const CREDENTIAL_TYP: &str = "tsunagu-device-credential+jwt";

/// A fresh nonce for `purpose`.
pub async fn challenge(app: &App, purpose: &str) -> Result<Value, ApiError> {
    let nonce = random::token(32).map_err(|e| ApiError::internal("nonce", e))?;
    let expires_at = now() + app.config.identity.nonce_ttl_seconds as i64;
    app.store.put_nonce(&nonce, purpose, expires_at).await?;
    Ok(json!({ "nonce": nonce, "expires_at": expires_at }))
}

/// The resident's pseudonym in ledger leaves.
pub fn ledger_subject(app: &App, account_id: &str) -> String {
    app.keys.pairwise.subject(LEDGER_SECTOR, account_id)
}

fn seal_attributes(
    app: &App,
    account_id: &str,
    attrs: &BasicAttributes,
) -> Result<Vec<u8>, ApiError> {
    let plain = serde_json::to_vec(attrs).map_err(|e| ApiError::internal("attributes", e))?;
    app.keys
        .keyring
        .seal(format!("account:{account_id}").as_bytes(), &plain)
        .map_err(|e| ApiError::internal("sealing attributes", e))
}

/// The basic items of an account, decrypted.
pub fn open_attributes(
    app: &App,
    account: &AccountRow,
) -> Result<Option<BasicAttributes>, ApiError> {
    let Some(sealed) = &account.attributes else {
        return Ok(None);
    };
    let plain = app
        .keys
        .keyring
        .open(format!("account:{}", account.id).as_bytes(), sealed)
        .map_err(|e| ApiError::internal("opening attributes", e))?;
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(|e| ApiError::internal("attributes", e))
}

fn facts(app: &App, account: &AccountRow) -> Result<AccountFacts, ApiError> {
    Ok(AccountFacts {
        account_id: account.id.clone(),
        level: account.level,
        status: account.status,
        birthdate: open_attributes(app, account)?.map(|a| a.birthdate),
    })
}

fn card_binding(app: &App, proven: &ProvenIdentity) -> String {
    let mut data = proven.certificate.issuer.clone();
    data.push(0);
    data.extend_from_slice(&proven.certificate.serial);
    app.keys.pairwise.digest("jpki-card", &data)
}

async fn record(app: &App, event: Event, subjects: &[&str]) {
    let commit = Commit {
        changes: tsunagu_store::changes![],
        leaves: vec![leaf(event, subjects, now())],
    };
    if let Err(e) = app.committer.commit(commit).await {
        tracing::error!(error = %e, "recording a refusal in the ledger failed");
    }
}

async fn refuse_enrollment(
    app: &App,
    key: &str,
    account: Option<&str>,
    code: Code,
    detail: String,
) -> ApiError {
    let subject = account.map(|a| ledger_subject(app, a));
    record(
        app,
        Event::EnrollmentRefused {
            subject,
            key: key.to_owned(),
            reason: code,
        },
        &account.into_iter().collect::<Vec<_>>(),
    )
    .await;
    metrics::counter!("tsunagu_enrollments_total", "outcome" => code.as_str()).increment(1);
    ApiError::new(code, detail)
}

/// What an accepted enrollment returns.
#[derive(Debug, Serialize)]
pub struct Enrolled {
    pub account_id: String,
    pub device_id: String,
    pub level: Level,
    pub status: AccountStatus,
    pub credential: String,
    pub expires_at: i64,
    /// Whether a new account or device was created (HTTP 201) rather than an existing one
    /// upgraded or re-proofed (200).
    #[serde(skip)]
    pub created: bool,
}

fn issue_credential(
    app: &App,
    account_id: &str,
    device_id: &str,
    jkt: &str,
    level: Level,
    iat: i64,
    exp: i64,
) -> Result<String, ApiError> {
    jws::sign_json(
        &app.keys.signing,
        Some(CREDENTIAL_TYP),
        &json!({
            "iss": app.public_url,
            "sub": account_id,
            "device_id": device_id,
            "cnf": { "jkt": jkt },
            "level": level.as_str(),
            "iat": iat,
            "exp": exp,
        }),
    )
    .map_err(|e| ApiError::internal("signing a credential", e))
}

/// `POST /v1/enrollment`.
pub async fn enroll(app: &App, body: &[u8]) -> Result<Enrolled, ApiError> {
    let request = proofing::parse_enrollment(body).map_err(|e| ApiError::new(e.code, e.detail))?;
    let jkt = request.device_jwk.thumbprint();
    let t = now();
    if !app
        .store
        .take_nonce(&request.nonce, NONCE_ENROLL, t)
        .await?
    {
        return Err(refuse_enrollment(
            app,
            &jkt,
            None,
            Code::NonceInvalid,
            "the nonce is unknown, expired or already used; ask for a new challenge".into(),
        )
        .await);
    }
    let known_account = app.store.device_by_jkt(&jkt).await?.map(|d| d.account_id);
    let proven = match &request.proof {
        None => None,
        Some(proof) => {
            let trust = app.trust.current();
            let ctx = ProofContext {
                anchors: &trust.anchors,
                crls: &trust.crls,
                policy: &trust.policy,
                now: t,
            };
            match proofing::verify_jpki_proof(&request, proof, &ctx) {
                Ok(p) => Some(p),
                Err(e) => {
                    return Err(refuse_enrollment(
                        app,
                        &jkt,
                        known_account.as_deref(),
                        e.code,
                        e.detail,
                    )
                    .await);
                }
            }
        }
    };

    let mut attempt = 0;
    loop {
        attempt += 1;
        match enroll_once(app, &request.device_jwk, &jkt, proven.as_ref(), t).await {
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
                        "the card belongs to a different person than this account"
                    }
                    _ => "enrollment refused",
                };
                return Err(
                    refuse_enrollment(app, &jkt, account.as_deref(), code, detail.into()).await,
                );
            }
            Err(StoreError::Conflict(reason)) if attempt < 3 => {
                tracing::debug!(%reason, "enrollment raced another write; deciding again");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

type Refusal = (Code, Option<String>);

/// Reads the current state, decides, and commits. A store conflict means the state changed
/// underneath; the caller decides again.
async fn enroll_once(
    app: &App,
    device_jwk: &PublicJwk,
    jkt: &str,
    proven: Option<&ProvenIdentity>,
    t: i64,
) -> Result<Result<Enrolled, Refusal>, StoreError> {
    let device = app.store.device_by_jkt(jkt).await?;
    let enrolled = match &device {
        Some(d) => {
            let account = app
                .store
                .account(&d.account_id)
                .await?
                .ok_or_else(|| StoreError::Corrupt("device without account".into()))?;
            Some((
                EnrolledDevice {
                    device_id: d.id.clone(),
                    status: d.status,
                    account: facts(app, &account).map_err(api_to_store)?,
                },
                account,
            ))
        }
        None => None,
    };
    let card = match proven {
        Some(p) => {
            let binding = card_binding(app, p);
            let bound = app.store.account_by_card(&binding).await?;
            Some((
                CardProof {
                    birthdate: p.attributes.birthdate.clone(),
                    bound_account: bound
                        .as_ref()
                        .map(|a| facts(app, a))
                        .transpose()
                        .map_err(api_to_store)?,
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

    let max = app.config.identity.credential_max_days * 86_400;
    let card_not_after = card.as_ref().map(|(_, c)| c.not_after);
    let method = if proven.is_some() {
        ProofMethod::Jpki
    } else {
        ProofMethod::None
    };
    let new_device = |account_id: &str, level: Level| -> Result<(DeviceRow, String), StoreError> {
        let device_id = random::token(16).map_err(|e| StoreError::Database(e.to_string()))?;
        let expires_at = credential_expiry(t, card_not_after, max);
        let credential = issue_credential(app, account_id, &device_id, jkt, level, t, expires_at)
            .map_err(api_to_store)?;
        Ok((
            DeviceRow {
                id: device_id,
                account_id: account_id.to_owned(),
                jkt: jkt.to_owned(),
                jwk: device_jwk.to_value().to_string(),
                status: DeviceStatus::Active,
                failed_logins: 0,
                locked_until: None,
                expires_at,
                created_at: t,
                revoked_at: None,
            },
            credential,
        ))
    };
    let sealed = |account_id: &str| -> Result<Option<Vec<u8>>, StoreError> {
        proven
            .map(|p| seal_attributes(app, account_id, &p.attributes))
            .transpose()
            .map_err(api_to_store)
    };

    let upgrade = matches!(plan, EnrollmentPlan::Upgrade { .. });
    let (commit, enrolled) = match plan {
        EnrollmentPlan::NewProvisional | EnrollmentPlan::NewVerified => {
            let level = if proven.is_some() {
                Level::Verified
            } else {
                Level::Provisional
            };
            let account_id = random::token(16).map_err(|e| StoreError::Database(e.to_string()))?;
            let (device, credential) = new_device(&account_id, level)?;
            let subject = ledger_subject(app, &account_id);
            let result = Enrolled {
                account_id: account_id.clone(),
                device_id: device.id.clone(),
                level,
                status: AccountStatus::Active,
                credential,
                expires_at: device.expires_at,
                created: true,
            };
            let commit = Commit {
                changes: tsunagu_store::changes![
                    IdentityChange::InsertAccount(AccountRow {
                        id: account_id.clone(),
                        level,
                        status: AccountStatus::Active,
                        attributes: sealed(&account_id)?,
                        card: card.map(|(_, c)| c),
                        version: 0,
                        created_at: t,
                        updated_at: t,
                    }),
                    IdentityChange::InsertDevice(device.clone()),
                ],
                leaves: vec![leaf(
                    Event::IdentityEnrolled {
                        subject,
                        device: device.id.clone(),
                        level,
                        method,
                    },
                    &[&account_id],
                    t,
                )],
            };
            (commit, result)
        }
        EnrollmentPlan::AddDevice { account_id } => {
            let account = app
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
            let commit = Commit {
                changes: tsunagu_store::changes![IdentityChange::InsertDevice(device.clone())],
                leaves: vec![leaf(
                    Event::DeviceAdded {
                        subject: ledger_subject(app, &account_id),
                        device: device.id.clone(),
                        method,
                    },
                    &[&account_id],
                    t,
                )],
            };
            (commit, result)
        }
        EnrollmentPlan::Upgrade { account_id } | EnrollmentPlan::Reproof { account_id } => {
            let (device, account) = match (&device, &enrolled) {
                (Some(d), Some((_, a))) => (d.clone(), a.clone()),
                _ => return Err(StoreError::Conflict("device vanished".into())),
            };
            let (_, card) = card.ok_or_else(|| StoreError::Conflict("proof required".into()))?;
            let attributes = sealed(&account_id)?
                .ok_or_else(|| StoreError::Conflict("proof required".into()))?;
            let expires_at = credential_expiry(t, Some(card.not_after), max);
            let credential = issue_credential(
                app,
                &account_id,
                &device.id,
                jkt,
                Level::Verified,
                t,
                expires_at,
            )
            .map_err(api_to_store)?;
            let subject = ledger_subject(app, &account_id);
            let event = if upgrade {
                Event::IdentityUpgraded {
                    subject,
                    device: device.id.clone(),
                }
            } else {
                Event::IdentityReproofed {
                    subject,
                    device: device.id.clone(),
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
            let commit = Commit {
                changes: tsunagu_store::changes![IdentityChange::UpdateAccountProof {
                    id: account_id.clone(),
                    expected_version: account.version,
                    level: Level::Verified,
                    status: AccountStatus::Active,
                    attributes,
                    card,
                    updated_at: t,
                }],
                leaves: vec![leaf(event, &[&account_id], t)],
            };
            (commit, result)
        }
    };
    app.committer.commit(commit).await?;
    Ok(Ok(enrolled))
}

fn api_to_store(e: ApiError) -> StoreError {
    StoreError::Database(e.detail)
}

/// The claims of a device credential this platform issued.
#[derive(Debug, serde::Deserialize)]
struct CredentialClaims {
    iss: String,
    sub: String,
    device_id: String,
    cnf: Cnf,
}

#[derive(Debug, serde::Deserialize)]
struct Cnf {
    jkt: String,
}

fn verify_credential(app: &App, credential: &str) -> Result<CredentialClaims, ApiError> {
    let invalid = || {
        ApiError::new(
            Code::CredentialInvalid,
            "the credential was not issued by this platform",
        )
    };
    let token = jws::parse(credential).map_err(|_| invalid())?;
    if token.typ.as_deref() != Some(CREDENTIAL_TYP) {
        return Err(invalid());
    }
    let key = token
        .kid
        .as_deref()
        .and_then(|kid| app.keys.jwks.find(kid))
        .ok_or_else(invalid)?;
    token.verify(key).map_err(|_| invalid())?;
    let claims: CredentialClaims = token.payload_as().map_err(|_| invalid())?;
    if claims.iss != app.public_url {
        return Err(invalid());
    }
    Ok(claims)
}

/// A successful login.
#[derive(Debug, Serialize)]
pub struct LoggedIn {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub account_id: String,
    pub device_id: String,
}

/// `POST /v1/auth/login`: `{credential, nonce, signature}`.
pub async fn login(
    app: &App,
    credential: &str,
    nonce: &str,
    signature: &str,
) -> Result<LoggedIn, ApiError> {
    let claims = verify_credential(app, credential)?;
    let t = now();
    let device = app
        .store
        .device(&claims.device_id)
        .await?
        .filter(|d| d.jkt == claims.cnf.jkt && d.account_id == claims.sub)
        .ok_or_else(|| ApiError::new(Code::CredentialInvalid, "no such device credential"))?;
    let account_id = device.account_id.clone();
    let subject = ledger_subject(app, &account_id);
    let refuse = |reason: Code, locked_until: Option<i64>| Event::LoginRefused {
        subject: subject.clone(),
        device: device.id.clone(),
        reason,
        locked_until,
    };

    let gate = DeviceGate {
        status: device.status,
        locked_until: device.locked_until,
        expires_at: device.expires_at,
    };
    if let Err(code) = login_gate(&gate, t) {
        record(app, refuse(code, None), &[&account_id]).await;
        metrics::counter!("tsunagu_logins_total", "outcome" => code.as_str()).increment(1);
        let detail = match code {
            Code::Locked => format!(
                "too many failed logins: locked until {}",
                crate::app::iso8601(device.locked_until.unwrap_or(t))
            ),
            Code::CredentialRevoked => "this device credential was revoked".into(),
            _ => "this device credential has expired; enroll again with the card".into(),
        };
        return Err(ApiError::new(code, detail));
    }
    if !app.store.take_nonce(nonce, NONCE_LOGIN, t).await? {
        record(app, refuse(Code::NonceInvalid, None), &[&account_id]).await;
        metrics::counter!("tsunagu_logins_total", "outcome" => "nonce_invalid").increment(1);
        return Err(ApiError::new(
            Code::NonceInvalid,
            "the nonce is unknown, expired or already used; ask for a new challenge",
        ));
    }
    let jwk = PublicJwk::from_json(&device.jwk).map_err(|e| ApiError::internal("device key", e))?;
    if keys::verify_es256_b64(&jwk, nonce.as_bytes(), signature).is_err() {
        let failures = device.failed_logins + 1;
        let lock = app
            .config
            .identity
            .lockout
            .policy()
            .lock_after(u32::try_from(failures).unwrap_or(u32::MAX))
            .map(|secs| t + secs as i64);
        let commit = Commit {
            changes: tsunagu_store::changes![IdentityChange::SetLoginState {
                device_id: device.id.clone(),
                expected_failures: device.failed_logins,
                failures,
                locked_until: lock.or(device.locked_until),
            }],
            leaves: vec![leaf(
                refuse(Code::SignatureInvalid, lock),
                &[&account_id],
                t,
            )],
        };
        if let Err(e) = app.committer.commit(commit).await {
            // A concurrent failure updated the counter first; it was counted there.
            tracing::debug!(error = %e, "login failure not recorded by this request");
            record(app, refuse(Code::SignatureInvalid, None), &[&account_id]).await;
        }
        metrics::counter!("tsunagu_logins_total", "outcome" => "signature_invalid").increment(1);
        return Err(ApiError::new(
            Code::SignatureInvalid,
            "the signature over the nonce does not verify with the device key",
        ));
    }

    let token = random::token(32).map_err(|e| ApiError::internal("token", e))?;
    let ttl = app.config.identity.session_ttl_seconds;
    let mut changes = tsunagu_store::changes![IdentityChange::InsertSession(SessionRow {
        token_hash: hex::encode(sha256(token.as_bytes())),
        account_id: account_id.clone(),
        device_id: device.id.clone(),
        expires_at: t + ttl as i64,
        created_at: t,
    })];
    if device.failed_logins != 0 || device.locked_until.is_some() {
        changes.push(tsunagu_store::AnyChange::from(
            IdentityChange::SetLoginState {
                device_id: device.id.clone(),
                expected_failures: device.failed_logins,
                failures: 0,
                locked_until: None,
            },
        ));
    }
    let commit = Commit {
        changes,
        leaves: vec![leaf(
            Event::Login {
                subject: subject.clone(),
                device: device.id.clone(),
            },
            &[&account_id],
            t,
        )],
    };
    app.committer.commit(commit).await.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::new(
            Code::SignatureInvalid,
            "the device's login state changed during this login; try again",
        ),
        other => other.into(),
    })?;
    metrics::counter!("tsunagu_logins_total", "outcome" => "accepted").increment(1);
    Ok(LoggedIn {
        access_token: token,
        token_type: "Bearer",
        expires_in: ttl,
        account_id,
        device_id: device.id,
    })
}

/// An authenticated resident.
#[derive(Debug, Clone)]
pub struct Session {
    pub account_id: String,
    pub device_id: String,
    /// When the resident logged in (OpenID Connect `auth_time`).
    pub auth_time: i64,
}

/// Ends a session (logout): its token stops working at once.
pub async fn end_session(app: &App, token: &str) -> Result<(), ApiError> {
    app.committer
        .commit(Commit {
            changes: tsunagu_store::changes![IdentityChange::DeleteSession {
                token_hash: hex::encode(sha256(token.as_bytes())),
            }],
            leaves: vec![],
        })
        .await?;
    Ok(())
}

/// Resolves a bearer token to a session.
pub async fn authenticate(app: &App, token: &str) -> Result<Session, ApiError> {
    let unauthorized = || ApiError::new(Code::Unauthorized, "a valid access token is required");
    let row = app
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

/// `GET /v1/me`.
pub async fn me(app: &App, session: &Session) -> Result<Value, ApiError> {
    let account = app
        .store
        .account(&session.account_id)
        .await?
        .ok_or_else(|| ApiError::new(Code::Unauthorized, "the account no longer exists"))?;
    let attributes = open_attributes(app, &account)?;
    let devices: Vec<Value> = app
        .store
        .devices_of(&account.id)
        .await?
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id,
                "status": d.status,
                "created_at": d.created_at,
                "expires_at": d.expires_at,
                "revoked_at": d.revoked_at,
                "locked_until": d.locked_until,
                "current": d.id == session.device_id,
                "key_thumbprint": d.jkt,
            })
        })
        .collect();
    Ok(json!({
        "account_id": account.id,
        "level": account.level,
        "status": account.status,
        "attributes": attributes.map(|a| json!({
            "name": a.name,
            "address": a.address,
            "birthdate": a.birthdate,
            "sex": a.sex.as_str(),
        })),
        "proofed_until": account.card.as_ref().map(|c| c.not_after),
        "devices": devices,
        "ledger_subject": ledger_subject(app, &account.id),
    }))
}

/// `POST /v1/me/devices/{id}/revoke`.
pub async fn revoke_device(
    app: &App,
    session: &Session,
    device_id: &str,
) -> Result<Value, ApiError> {
    let device = app
        .store
        .device(device_id)
        .await?
        .filter(|d| d.account_id == session.account_id)
        .ok_or_else(|| ApiError::new(Code::NotFound, "no such device on this account"))?;
    if device.status == DeviceStatus::Revoked {
        return Ok(
            json!({"device_id": device.id, "status": "revoked", "revoked_at": device.revoked_at}),
        );
    }
    let t = now();
    let commit = Commit {
        changes: tsunagu_store::changes![
            IdentityChange::RevokeDevice {
                id: device.id.clone(),
                at: t,
            },
            IdentityChange::DeleteDeviceSessions {
                device_id: device.id.clone(),
            },
        ],
        leaves: vec![leaf(
            Event::DeviceRevoked {
                subject: ledger_subject(app, &session.account_id),
                device: device.id.clone(),
                by: Actor::Device(session.device_id.clone()),
            },
            &[&session.account_id],
            t,
        )],
    };
    match app.committer.commit(commit).await {
        Ok(_) | Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let device = app
        .store
        .device(device_id)
        .await?
        .ok_or_else(|| ApiError::new(Code::NotFound, "no such device"))?;
    Ok(json!({"device_id": device.id, "status": device.status, "revoked_at": device.revoked_at}))
}

/// 現況確認: puts every verified account whose proofing certificate is on a loaded CRL into
/// `reproof_required`. CRL entries already handled are skipped.
pub async fn status_check(app: &App) -> anyhow::Result<()> {
    let trust = app.trust.current();
    let mut fresh = Vec::new();
    {
        let checked = app.status_checked.lock().expect("status lock");
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
        for account in app.store.accounts_with_card(issuer, serial).await? {
            if account.status != AccountStatus::Active || account.level != Level::Verified {
                continue;
            }
            let t = now();
            let commit = Commit {
                changes: tsunagu_store::changes![IdentityChange::SetAccountStatus {
                    id: account.id.clone(),
                    from: AccountStatus::Active,
                    to: AccountStatus::ReproofRequired,
                    updated_at: t,
                }],
                leaves: vec![leaf(
                    Event::ReproofRequired {
                        subject: ledger_subject(app, &account.id),
                        reason: Code::CertificateRevoked,
                    },
                    &[&account.id],
                    t,
                )],
            };
            match app.committer.commit(commit).await {
                Ok(_) => flagged += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    app.status_checked
        .lock()
        .expect("status lock")
        .extend(fresh);
    if flagged > 0 {
        tracing::info!(
            accounts = flagged,
            "card certificates revoked: re-proofing required"
        );
    }
    Ok(())
}
