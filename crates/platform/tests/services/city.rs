//! A small city for the service-boundary tests: a platform on SQLite in a temporary
//! directory, a simulated JPKI whose cards proof residents, a committee of two (quorum 2),
//! and helpers that act as a service, a member and a resident would.

use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tsunagu_core::consent::ChangeAction;
use tsunagu_core::identity::Level;
use tsunagu_core::{AccountId, ConsentId, MemberId, ServiceId};
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::{b64, jcs, jws, proofing, random};
use tsunagu_jpki_sim::{Card, IssueRequest, SimCa};
use tsunagu_platform::Outcome;
use tsunagu_platform::config::MemberConfig;
use tsunagu_platform::consents::ConsentRecord;
use tsunagu_platform::exchange::ServiceAuth;
use tsunagu_platform::identity::{
    Enrolled, EnrollmentRequest, NoncePurpose, Session, parse_enrollment,
};
use tsunagu_platform::services::parse_application;
use tsunagu_platform::{Platform, PlatformConfig};

/// A card's certificate serial, in hex.
pub fn serial(card: &Card) -> String {
    tsunagu_crypto::x509::certificate_serial_hex(&card.certificate_der().unwrap()).unwrap()
}

pub const URL: &str = "https://tsunagu.test";
pub const PURPOSE: &str = "meals";

pub fn now() -> i64 {
    tsunagu_platform::now()
}

/// A committee member with their key.
pub struct Member {
    pub id: MemberId,
    pub key: SigningKey,
}

impl Member {
    /// A vote signed by this member, as the console and `tsunagu admin vote` make it.
    pub fn vote(&self, service: &ServiceId, decision: &str) -> String {
        self.vote_with_key(&self.key, service, decision)
    }

    /// An approval that overrides the lint error findings `overrides`.
    pub fn approve_over(&self, service: &ServiceId, overrides: &[&str]) -> String {
        let mut header = serde_json::Map::new();
        header.insert("kid".into(), json!(self.id));
        let payload = json!({"service_id": service, "decision": "approve", "comment": "",
            "issued_at": now(), "nonce": random::token(12).unwrap(), "override": overrides});
        jws::sign_with_header(&self.key, header, &jcs::to_vec(&payload).unwrap()).unwrap()
    }

    /// A vote naming this member but signed with `key`.
    pub fn vote_with_key(&self, key: &SigningKey, service: &ServiceId, decision: &str) -> String {
        let mut header = serde_json::Map::new();
        header.insert("kid".into(), json!(self.id));
        let payload = json!({"service_id": service, "decision": decision, "comment": "",
            "issued_at": now(), "nonce": random::token(12).unwrap()});
        jws::sign_with_header(key, header, &jcs::to_vec(&payload).unwrap()).unwrap()
    }
}

/// A registered service and its signing key.
pub struct Service {
    pub id: ServiceId,
    pub key: SigningKey,
}

impl Service {
    /// A fresh client assertion for the platform (single use).
    pub fn assertion(&self) -> String {
        let t = now();
        jws::sign_json(
            &self.key,
            Some("JWT"),
            &json!({"iss": self.id, "sub": self.id, "aud": URL, "jti": random::token(16).unwrap(),
                    "iat": t, "exp": t + 60}),
        )
        .unwrap()
    }
}

/// A resident's device, logged in.
pub struct Resident {
    pub device: SigningKey,
    pub enrolled: Enrolled,
    pub session: Session,
    /// The card that proofed the resident, if any.
    pub card: Option<Card>,
}

impl Resident {
    pub fn account(&self) -> &AccountId {
        &self.session.account_id
    }

    /// A consent to the city's purpose, signed by the device.
    pub fn consent(&self, city: &City, terms: &str, items: &[&str]) -> String {
        self.sign(&json!({
            "v": 1, "purpose_id": PURPOSE, "consumer": city.consumer.id, "provider": city.provider.id,
            "items": items, "expires_at": now() + 30 * 86_400, "terms_sha256": terms,
            "issued_at": now(), "nonce": random::token(12).unwrap(),
        }))
    }

    /// A signed change of a consent (`revoke`, or `expiry` with `expires_at`).
    pub fn change(&self, consent_id: &str, action: &str, expires_at: Option<i64>) -> String {
        let mut payload = json!({"consent_id": consent_id, "action": action,
            "issued_at": now(), "nonce": random::token(12).unwrap()});
        if let Some(e) = expires_at {
            payload["expires_at"] = json!(e);
        }
        self.sign(&payload)
    }

    pub fn sign(&self, payload: &Value) -> String {
        jws::sign_json(&self.device, None, payload).unwrap()
    }
}

pub struct City {
    pub platform: Arc<Platform>,
    pub members: Vec<Member>,
    /// An approved provider of `allergy` and `class`.
    pub provider: Service,
    /// An approved consumer with the purpose `meals` (consent, opt-in).
    pub consumer: Service,
    ca: Mutex<SimCa>,
    /// The key of the auditor `AUDITOR`, who may read ledger entries.
    auditor: SigningKey,
    _dir: tempfile::TempDir,
}

/// The id of the city's auditor.
pub const AUDITOR: &str = "auditor-1";

pub fn application(kind: &str, key: &SigningKey, provider: Option<&ServiceId>) -> Value {
    let mut app = json!({
        "name": format!("{kind} of the city"), "organization": "city", "contact": "c@example.jp",
        "kind": kind, "jwks": {"keys": [key.published_jwk().to_value()]},
        "security": {"iso27001": true, "incident_contact": "soc@example.jp"},
    });
    match provider {
        None => {
            app["endpoint"] = json!("http://127.0.0.1:9/redeem");
            app["offers"] = json!([
                {"item": "allergy", "title_ja": "アレルギー", "data_class": "closed", "sensitive": true},
                {"item": "class", "title_ja": "学級", "data_class": "limited"}]);
        }
        Some(provider) => {
            app["purposes"] = json!([{"id": PURPOSE, "title_ja": "給食", "title_en": "Meals",
                "description_ja": "保育園の給食からアレルゲンを除くためにアレルギー情報と学級を受け取ります。",
                "description_en": "The day-care kitchen removes allergens from meals using the allergy record and class.",
                "provider": provider, "items": ["allergy", "class"],
                "uses": {"allergy": "献立からアレルゲンを除くため", "class": "配膳のため"},
                "retention_days": 365, "legal_basis": "consent", "consent_mode": "opt_in"}]);
        }
    }
    app
}

impl City {
    /// A city with an approved provider and consumer.
    pub async fn new() -> City {
        City::with(|_| {}).await
    }

    /// A city whose configuration `adjust` changes first.
    pub async fn with(adjust: impl FnOnce(&mut PlatformConfig)) -> City {
        let dir = tempfile::tempdir().unwrap();
        let ca = SimCa::init(&dir.path().join("ca")).unwrap();
        let members: Vec<Member> = ["chair", "member-2"]
            .into_iter()
            .map(|id| Member {
                id: MemberId::from(id),
                key: SigningKey::generate(Alg::Es256).unwrap(),
            })
            .collect();
        let auditor = SigningKey::generate(Alg::Es256).unwrap();
        let mut config = PlatformConfig::default();
        config.storage.data_dir = dir.path().join("data");
        config.identity.jpki_trust_anchors = vec![ca.certificate_path()];
        config.identity.jpki_crls = vec![ca.crl_path().to_string_lossy().into_owned()];
        std::fs::write(ca.links_path(), r#"{"links": []}"#).unwrap();
        config.identity.jpki_serial_links = vec![ca.links_path()];
        config.ledger.auditors = vec![tsunagu_platform::config::AuditorConfig {
            id: AUDITOR.into(),
            jwk: auditor.published_jwk(),
        }];
        config.governance.quorum = 2;
        config.governance.members = members
            .iter()
            .map(|m| MemberConfig {
                id: m.id.clone(),
                name: None,
                jwk: m.key.public_jwk().clone(),
            })
            .collect();
        config.exchange.resident_rate_per_minute = 1_000_000;
        adjust(&mut config);
        config.validate().unwrap();
        let platform = Platform::start(config, URL.into(), &[]).await.unwrap();
        let provider_key = SigningKey::generate(Alg::Es256).unwrap();
        let consumer_key = SigningKey::generate(Alg::Es256).unwrap();
        let mut city = City {
            platform,
            members,
            provider: Service {
                id: ServiceId::from(""),
                key: provider_key,
            },
            consumer: Service {
                id: ServiceId::from(""),
                key: consumer_key,
            },
            ca: Mutex::new(ca),
            auditor,
            _dir: dir,
        };
        city.provider.id = city
            .apply(&application("provider", &city.provider.key, None))
            .await;
        city.approve(&city.provider.id.clone()).await;
        let provider = city.provider.id.clone();
        city.consumer.id = city
            .apply(&application(
                "consumer",
                &city.consumer.key,
                Some(&provider),
            ))
            .await;
        city.approve(&city.consumer.id.clone()).await;
        city
    }

    /// Every ledger leaf's content so far (read as the auditor), as text.
    pub async fn ledger_texts(&self) -> Vec<String> {
        let size = self.platform.ledger.sync().await.unwrap();
        let t = now();
        let assertion = jws::sign_json(
            &self.auditor,
            Some("JWT"),
            &json!({"iss": AUDITOR, "sub": AUDITOR, "aud": URL, "jti": random::token(16).unwrap(),
                    "iat": t, "exp": t + 60}),
        )
        .unwrap();
        self.platform
            .history
            .entries(Some(&assertion), 0, size)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|l| l.input)
            .map(|i| String::from_utf8(i).unwrap())
            .collect()
    }

    pub async fn apply(&self, application: &Value) -> ServiceId {
        self.platform
            .services
            .apply(parse_application(&serde_json::to_vec(application).unwrap()).unwrap())
            .await
            .unwrap()
            .service_id
    }

    /// Every member approves.
    pub async fn approve(&self, service: &ServiceId) {
        for m in &self.members {
            self.platform
                .governance
                .vote(service, &m.vote(service, "approve"))
                .await
                .unwrap();
        }
    }

    /// A card of the simulated J-LIS for `name`, born on 1988-04-01.
    pub fn card(&self, name: &str) -> Card {
        self.ca
            .lock()
            .unwrap()
            .issue(
                &IssueRequest {
                    name: name.into(),
                    address: "群馬県前橋市大手町二丁目12番1号".into(),
                    birthdate: "1988-04-01".into(),
                    sex: "2".into(),
                    valid_days: None,
                    not_before: None,
                },
                "card2024",
            )
            .unwrap()
    }

    /// J-LIS reissues `old`'s certificate for `name` (a change of name or address): the old
    /// one is revoked, the serial-number linkage records the succession, and the platform
    /// reads both (the status check runs).
    pub async fn reissue(&self, old: &Card, name: &str) -> Card {
        let new = self.card(name);
        {
            let mut ca = self.ca.lock().unwrap();
            let (old, new) = (serial(old), serial(&new));
            ca.link(&old, &new).unwrap();
            ca.revoke(&old, "affiliationChanged").unwrap();
        }
        self.platform.identity.refresh_trust(true).await.unwrap();
        new
    }

    /// J-LIS revokes `card`'s certificate (a move) and the platform reads the new CRL.
    pub async fn revoke_card(&self, card: &Card) {
        self.ca
            .lock()
            .unwrap()
            .revoke(&serial(card), "affiliationChanged")
            .unwrap();
        self.platform.identity.refresh_trust(true).await.unwrap();
    }

    /// An enrollment request for `device`, with a proof by `card` when given, as a device
    /// sends it and the API reads it.
    pub fn enrollment_with(
        &self,
        device: &SigningKey,
        nonce: &str,
        card: Option<&mut Card>,
    ) -> EnrollmentRequest {
        let body = self.enrollment_body(device, nonce, card);
        parse_enrollment(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    /// The JSON body of `POST /v1/enrollment` for `device` (with `card`'s proof when given),
    /// for a test that adds to it before parsing.
    pub fn enrollment_body(
        &self,
        device: &SigningKey,
        nonce: &str,
        card: Option<&mut Card>,
    ) -> Value {
        let mut body = json!({"device_jwk": device.public_jwk().to_value(), "nonce": nonce});
        if let Some(card) = card {
            let signed = proofing::proof_payload(device.public_jwk(), nonce);
            let signature = card.sign("card2024", &signed).unwrap();
            let mut chain = vec![card.certificate.clone()];
            chain.extend(card.chain.iter().cloned());
            body["proof"] = json!({"type": "jpki", "certificate_chain": chain,
                "signed_data": b64::std_encode(&signed), "signature": b64::std_encode(signature)});
        }
        body
    }

    /// An enrollment request for `device`, with a proof by a new card for `name` when given.
    pub fn enrollment(
        &self,
        device: &SigningKey,
        nonce: &str,
        card_for: Option<&str>,
    ) -> EnrollmentRequest {
        let mut card = card_for.map(|name| self.card(name));
        self.enrollment_with(device, nonce, card.as_mut())
    }

    /// Enrolls `device` with `card` (a fresh nonce each time).
    pub async fn enroll_with(&self, device: &SigningKey, card: &mut Card) -> Outcome<Enrolled> {
        let identity = &self.platform.identity;
        let nonce = identity.challenge(NoncePurpose::Enroll).await?.nonce;
        identity
            .enroll(self.enrollment_with(device, &nonce, Some(card)))
            .await
    }

    /// A resident who enrolls a new device (proofed with a card when `card_for` names them)
    /// and logs in.
    pub async fn resident(&self, card_for: Option<&str>) -> Resident {
        let identity = &self.platform.identity;
        let device = SigningKey::generate(Alg::Es256).unwrap();
        let nonce = identity
            .challenge(NoncePurpose::Enroll)
            .await
            .unwrap()
            .nonce;
        let mut card = card_for.map(|name| self.card(name));
        let enrolled = identity
            .enroll(self.enrollment_with(&device, &nonce, card.as_mut()))
            .await
            .unwrap();
        assert_eq!(
            enrolled.level,
            if card_for.is_some() {
                Level::Verified
            } else {
                Level::Provisional
            }
        );
        let session = self.login(&device, &enrolled.credential).await;
        Resident {
            device,
            enrolled,
            session,
            card,
        }
    }

    pub async fn login(&self, device: &SigningKey, credential: &str) -> Session {
        let identity = &self.platform.identity;
        let nonce = identity.challenge(NoncePurpose::Login).await.unwrap().nonce;
        let signature = b64::url_encode(device.sign(nonce.as_bytes()).unwrap());
        let logged_in = identity
            .login(credential, &nonce, &signature)
            .await
            .unwrap();
        identity
            .authenticate(&logged_in.access_token)
            .await
            .unwrap()
    }

    /// The terms of the city's purpose, as `resident` is offered them.
    pub async fn terms(&self, resident: &Resident) -> String {
        self.platform
            .consents
            .offers(&resident.session)
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.purpose_id == PURPOSE)
            .expect("the purpose is offered")
            .terms_sha256
    }

    /// `resident` consents to the city's purpose for `items`, on the terms offered.
    pub async fn consented(&self, resident: &Resident, items: &[&str]) -> ConsentRecord {
        let terms = self.terms(resident).await;
        self.platform
            .consents
            .grant(&resident.session, &resident.consent(self, &terms, items))
            .await
            .unwrap()
    }

    /// `resident` revokes a consent with a change signed by the device.
    pub async fn revoke(&self, resident: &Resident, id: &ConsentId) -> Outcome<ConsentRecord> {
        self.platform
            .consents
            .change(
                &resident.session,
                id,
                ChangeAction::Revoke,
                &resident.change(id.as_str(), "revoke", None),
            )
            .await
    }

    /// The consumer, authenticated by a fresh assertion.
    pub async fn consumer_auth(&self) -> ServiceAuth {
        self.platform
            .exchange
            .authenticate(Some(&self.consumer.assertion()), None)
            .await
            .unwrap()
    }

    /// The consumer's pairwise id for `resident`.
    pub fn subject(&self, resident: &Resident) -> tsunagu_core::PairwiseId {
        self.platform
            .keys
            .pairwise_id(&self.consumer.id, resident.account())
    }
}
