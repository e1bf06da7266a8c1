//! Data linkage end to end, through real processes over HTTP: the platform (`tsunagu
//! serve`), a provider and a consumer each behind its own `tsunagu connector` sidecar with
//! its own keys, the provider's existing API (an HTTP server in this test), two committee
//! members voting, residents consenting with their device keys. Every ticket refusal code
//! comes from a real situation; the consumer verifies the provider's signed (and encrypted)
//! payload; receipts match; the resident's history tells it all; and the platform's
//! database holds no payload value. On SQLite, and on PostgreSQL when
//! `TSUNAGU_TEST_DATABASE_URL` is set.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Values only the provider's upstream knows: they must never reach the platform.
const ALLERGY: &str = "卵・えび（E2E-7f3a9c）";
const CLASS: &str = "ひまわり組（E2E-51be02）";

/// The provider's existing API: allergy and class records by its own pairwise subject.
async fn upstream(calls: Arc<AtomicUsize>) -> u16 {
    let app = axum::Router::new().route(
        "/items",
        axum::routing::post(move |axum::Json(req): axum::Json<Value>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                assert!(req["subject"].as_str().is_some_and(|s| s.len() > 20), "{req}");
                // It also holds an item nobody asked for: the connector must not pass it on.
                axum::Json(json!({"data": {"allergy": ALLERGY, "class": CLASS, "income": "should never leave"}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

struct Resident {
    device: Device,
    token: String,
}

async fn verified_resident(http: &Http, card: &Issued) -> Resident {
    let device = Device::new();
    let enrolled = enroll_device(http, &device, Some(card)).await;
    login(http, device, enrolled["credential"].as_str().unwrap()).await
}

async fn provisional_resident(http: &Http) -> Resident {
    let device = Device::new();
    let nonce = http.nonce("/v1/enrollment/challenge").await;
    let (_, enrolled) = http
        .post(
            "/v1/enrollment",
            &json!({"device_jwk": device.jwk(), "nonce": nonce}),
            None,
        )
        .await;
    assert_eq!(enrolled["level"], "provisional");
    login(http, device, enrolled["credential"].as_str().unwrap()).await
}

async fn login(http: &Http, device: Device, credential: &str) -> Resident {
    let nonce = http.nonce("/v1/auth/challenge").await;
    let body = json!({"credential": credential, "nonce": nonce, "signature": device.sign(nonce.as_bytes())});
    let (status, answer) = http.post("/v1/auth/login", &body, None).await;
    assert_eq!(status, 200, "{answer}");
    Resident {
        device,
        token: answer["access_token"].as_str().unwrap().to_owned(),
    }
}

impl Resident {
    async fn consent(
        &self,
        http: &Http,
        offer: &Value,
        items: &[&str],
        lasts: i64,
    ) -> (u16, Value) {
        let payload = json!({
            "v": 1, "purpose_id": offer["purpose_id"], "consumer": offer["consumer"]["service_id"],
            "provider": offer["provider"]["service_id"], "items": items, "expires_at": now() + lasts,
            "terms_sha256": offer["terms_sha256"], "issued_at": now(), "nonce": nonce(),
        });
        http.post(
            "/v1/me/consents",
            &json!({"consent_jws": self.device.resident_jws(&payload)}),
            Some(&self.token),
        )
        .await
    }

    async fn change(
        &self,
        http: &Http,
        consent_id: &str,
        action: &str,
        expires_at: Option<i64>,
    ) -> (u16, Value) {
        let mut payload = json!({"consent_id": consent_id, "action": action, "issued_at": now(), "nonce": nonce()});
        if let Some(t) = expires_at {
            payload["expires_at"] = json!(t);
        }
        http.post(
            &format!("/v1/me/consents/{consent_id}/{action}"),
            &json!({"change_jws": self.device.resident_jws(&payload)}),
            Some(&self.token),
        )
        .await
    }

    async fn subject_at(&self, http: &Http, service: &str) -> String {
        let (status, v) = http
            .get(&format!("/v1/me/pairwise/{service}"), Some(&self.token))
            .await;
        assert_eq!(status, 200, "{v}");
        v["subject"].as_str().unwrap().to_owned()
    }
}

/// Asks the consumer sidecar for data and returns (status, answer).
async fn fetch(consumer: &Http, subject: &str, items: &[&str]) -> (u16, Value) {
    consumer
        .post(
            "/fetch",
            &json!({"subject": subject, "purpose_id": "allergy-to-daycare", "items": items}),
            None,
        )
        .await
}

async fn refused_with(consumer: &Http, subject: &str, items: &[&str], code: &str) {
    let (status, answer) = fetch(consumer, subject, items).await;
    assert_eq!(answer["code"], code, "{status} {answer}");
    assert!(status >= 400, "{status}");
}

async fn scenario(label: &str) {
    let Scenario {
        root,
        card,
        dir: _dir,
        ..
    } = Scenario::new();
    let committee = Committee::new(&["m1", "m2"]);
    let db = postgres_url("e2e_x", label).await;
    let port = free_port();
    let config = format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\nsweep_interval_seconds = 1\n[storage]\ndata_dir = \"./data\"\n{}[identity]\njpki_trust_anchors = [\"ca/ca.pem\"]\njpki_crls = [\"ca/ca.crl\"]\n[ledger]\nsth_interval_seconds = 1\n[governance]\nquorum = 2\nmembers = [{}]\n[exchange]\nresident_rate_per_minute = 40\nreceipt_grace_seconds = 5\n",
        db.as_ref()
            .map(|(u, _)| format!("database_url = \"{u}\"\n"))
            .unwrap_or_default(),
        committee.members_toml()
    );
    let server = Server::start(&root, &config, port);
    let platform_url = server.url.clone();
    let http = Http::new(&platform_url);

    // ---- two services with their own keys apply
    let provider_jwks: Value = serde_json::from_str(&tsunagu(
        &root,
        &["connector", "keygen", "--out", "school.pem"],
    ))
    .unwrap();
    let consumer_jwks: Value = serde_json::from_str(&tsunagu(
        &root,
        &[
            "connector",
            "keygen",
            "--out",
            "daycare.pem",
            "--encryption-out",
            "daycare-enc.pem",
        ],
    ))
    .unwrap();
    let provider_port = free_port();
    let endpoint = format!("http://127.0.0.1:{provider_port}/tsunagu/redeem");
    let (status, school) = http.post("/v1/services", &json!({
        "name": "前橋市立中央小学校", "organization": "前橋市教育委員会", "contact": "school@example.jp", "kind": "provider",
        "jwks": provider_jwks, "endpoint": endpoint, "redirect_uris": [],
        "offers": [
            {"item": "allergy", "title_ja": "食物アレルギー", "data_class": "closed", "sensitive": true},
            {"item": "class", "title_ja": "学級", "data_class": "limited", "sensitive": false}
        ],
        "purposes": [],
        "security": {"iso27001": true, "incident_contact": "soc@example.jp", "subcontractors": []}
    }), None).await;
    assert_eq!(status, 201, "{school}");
    assert_eq!(school["status"], "pending_review");
    let school_id = school["service_id"].as_str().unwrap().to_owned();
    // The day care accepts the contract obligations: its signing key signs their hash.
    let (status, obligations) = http.get("/v1/governance/obligations", None).await;
    assert_eq!(status, 200, "{obligations}");
    assert_eq!(obligations["obligations"].as_array().unwrap().len(), 5);
    let signing_kid = consumer_jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["use"] == "sig" || k["alg"] == "ES256")
        .and_then(|k| k["kid"].as_str())
        .unwrap()
        .to_owned();
    let acceptance = Device::from_pem(&root.join("daycare.pem")).jws(
        json!({"kid": signing_kid}),
        &json!({"obligations_sha256": obligations["obligations_sha256"]}),
    );
    let application = |purposes: Value| {
        json!({
            "name": "すくすく保育園", "organization": "社会福祉法人すくすく", "contact": "daycare@example.jp", "kind": "consumer",
            "jwks": consumer_jwks, "redirect_uris": [], "offers": [], "purposes": purposes,
            "security": {"iso27001": true, "incident_contact": "soc@daycare.example.jp", "subcontractors": []},
            "obligations_acceptance": acceptance,
        })
    };
    // A vague purpose is flagged by the lint, with its principle.
    let (_, vague) = http.post("/v1/services", &application(json!([{
        "id": "vague", "title_ja": "サービス向上", "title_en": "Service improvement",
        "description_ja": "サービス向上のための各種検討に活用します。", "description_en": "To improve our services.",
        "provider": school_id, "items": ["allergy"], "uses": {}, "retention_days": 3650, "legal_basis": "consent"
    }])), None).await;
    let codes: Vec<&str> = vague["lint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    for code in ["vague_purpose", "item_without_use", "retention_too_long"] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    assert!(
        vague["lint"][0]["principle"]
            .as_str()
            .unwrap()
            .contains("ISO/IEC 29100")
    );
    let (status, daycare) = http.post("/v1/services", &application(json!([{
        "id": "allergy-to-daycare", "title_ja": "保育園の給食でのアレルギー対応", "title_en": "Allergy-safe meals at day care",
        "description_ja": "保育園が給食の献立からアレルゲンを除くため、学校に登録された食物アレルギー情報と学級を受け取ります。",
        "description_en": "The day-care centre receives the food allergy record and class kept by the school so that its kitchen removes allergens from meals.",
        "provider": school_id, "items": ["allergy", "class"],
        "uses": {"allergy": "献立からアレルゲンを除くため", "class": "兄弟の学級と送迎時間を合わせるため"},
        "retention_days": 365, "legal_basis": "consent"
    }])), None).await;
    assert_eq!(status, 201, "{daycare}");
    let findings: Vec<&str> = daycare["lint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        findings,
        vec!["provider_not_approved"],
        "a specific, minimal purpose: only the reminder that the school is still under review"
    );
    assert_eq!(daycare["lint"][0]["severity"], "warning");
    let daycare_id = daycare["service_id"].as_str().unwrap().to_owned();

    // ---- both sidecars start, the provider in front of the school's existing API
    let calls = Arc::new(AtomicUsize::new(0));
    let upstream_port = upstream(calls.clone()).await;
    std::fs::write(root.join("school.toml"), format!(
        "role = \"provider\"\nservice_id = \"{school_id}\"\nplatform_url = \"{platform_url}\"\nkey_file = \"school.pem\"\nbind = \"127.0.0.1:{provider_port}\"\n[provider]\nendpoint = \"{endpoint}\"\nupstream = \"http://127.0.0.1:{upstream_port}/items\"\n"
    )).unwrap();
    let _provider = Process::start(
        &root,
        &["connector", "--config", "school.toml"],
        provider_port,
        "school.log",
    );
    let consumer_port = free_port();
    std::fs::write(root.join("daycare.toml"), format!(
        "role = \"consumer\"\nservice_id = \"{daycare_id}\"\nplatform_url = \"{platform_url}\"\nkey_file = \"daycare.pem\"\nbind = \"127.0.0.1:{consumer_port}\"\n[consumer]\nencryption_key_file = \"daycare-enc.pem\"\n"
    )).unwrap();
    let _consumer = Process::start(
        &root,
        &["connector", "--config", "daycare.toml"],
        consumer_port,
        "daycare.log",
    );
    let consumer = Http::new(&format!("http://127.0.0.1:{consumer_port}"));

    // ---- residents
    let hanako = verified_resident(&http, &card).await;
    let subject = hanako.subject_at(&http, &daycare_id).await;
    refused_with(&consumer, &subject, &["allergy"], "purpose_not_approved").await;

    // ---- the committee votes: one vote is not a quorum, two are
    let one = committee.vote(&http, &school_id, "approve", 1).await;
    assert_eq!(one["status"], "pending_review");
    let (_, m2) = &committee.members[1];
    let payload = json!({"service_id": school_id, "decision": "approve", "comment": "", "issued_at": now(), "nonce": nonce()});
    let (_, two) = http
        .post(
            &format!("/v1/governance/services/{school_id}/votes"),
            &json!({"vote_jws": m2.jws(json!({"kid": "m2"}), &payload)}),
            None,
        )
        .await;
    assert_eq!(two["status"], "approved", "{two}");
    let stranger = Device::new().jws(json!({"kid": "m9"}), &payload);
    let (status, answer) = http
        .post(
            &format!("/v1/governance/services/{school_id}/votes"),
            &json!({"vote_jws": stranger}),
            None,
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("unknown_member"))
    );
    assert_eq!(
        committee.vote(&http, &daycare_id, "approve", 2).await["status"],
        "approved"
    );

    // ---- before consent: unknown subject, no consent, provisional ID
    refused_with(
        &consumer,
        "not-a-subject-of-ours",
        &["allergy"],
        "unknown_subject",
    )
    .await;
    refused_with(&consumer, &subject, &["allergy"], "no_consent").await;
    let taro = provisional_resident(&http).await;
    let taro_subject = taro.subject_at(&http, &daycare_id).await;
    refused_with(&consumer, &taro_subject, &["allergy"], "provisional_id").await;

    // ---- the resident consents to the allergy record only
    let (_, offers) = http.get("/v1/me/offers", Some(&hanako.token)).await;
    let offer = offers["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["purpose_id"] == "allergy-to-daycare")
        .unwrap()
        .clone();
    assert_eq!(offer["items"][0]["sensitive"], true);
    assert_eq!(offer["read_only"], false);
    let (status, refused) = taro.consent(&http, &offer, &["allergy"], 86_400).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (403, Some("provisional_id")),
        "{refused}"
    );
    let mut stale = offer.clone();
    stale["terms_sha256"] = json!("00".repeat(32));
    assert_eq!(
        hanako.consent(&http, &stale, &["allergy"], 86_400).await.1["code"],
        "terms_mismatch"
    );
    let (status, granted) = hanako.consent(&http, &offer, &["allergy"], 86_400).await;
    assert_eq!(status, 201, "{granted}");
    let consent_id = granted["consent_id"].as_str().unwrap().to_owned();
    assert_eq!(
        granted["receipt"]["header"]["record_id"],
        consent_id.as_str()
    );
    assert_eq!(granted["receipt"]["events"][0]["type"], "given");
    assert_eq!(
        granted["receipt"]["parties"]["recipient"]["service_id"],
        daycare_id.as_str()
    );

    // ---- the consumer learns it from its feed, with its own pairwise id
    let (_, feed) = consumer.get("/consents?since=0", None).await;
    let event = &feed["events"][0];
    assert_eq!(
        (event["subject"].as_str(), event["status"].as_str()),
        (Some(subject.as_str()), Some("granted")),
        "{feed}"
    );

    // ---- data flows directly from provider to consumer, verified and receipted
    refused_with(
        &consumer,
        &subject,
        &["allergy", "class"],
        "items_not_covered",
    )
    .await;
    let (status, fetched) = fetch(&consumer, &subject, &["allergy"]).await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(
        fetched["data"],
        json!({"allergy": ALLERGY}),
        "only the consented item, nothing the upstream added"
    );
    assert_eq!(fetched["basis"], format!("consent:{consent_id}"));
    let ticket_id = fetched["ticket_id"].as_str().unwrap().to_owned();
    // The consumer holds the provider's signature over the payload: check it independently.
    let signed = fetched["payload"].as_str().unwrap();
    let parts: Vec<&str> = signed.split('.').collect();
    let header: Value = serde_json::from_slice(&B64URL.decode(parts[0]).unwrap()).unwrap();
    let key = provider_jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap();
    let mut point = vec![4u8];
    point.extend(B64URL.decode(key["x"].as_str().unwrap()).unwrap());
    point.extend(B64URL.decode(key["y"].as_str().unwrap()).unwrap());
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        point,
    )
    .verify(
        format!("{}.{}", parts[0], parts[1]).as_bytes(),
        &B64URL.decode(parts[2]).unwrap(),
    )
    .expect("the payload is signed by the provider's registered key");
    let claims: Value = serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(
        (claims["iss"].as_str(), claims["aud"].as_str()),
        (Some(school_id.as_str()), Some(daycare_id.as_str()))
    );
    assert!(
        claims.get("sub").is_none(),
        "the consumer never sees the provider's id for the resident"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A stolen ticket is useless without the consumer's key.
    let daycare_key = Device::from_pem(&root.join("daycare.pem"));
    let (status, grant) = http
        .post_with(
            "/v1/exchange/tickets",
            &json!({"subject": subject, "purpose_id": "allergy-to-daycare", "items": ["allergy"]}),
            &[(
                "authorization",
                format!(
                    "Bearer {}",
                    daycare_key.assertion(&daycare_id, &platform_url)
                ),
            )],
        )
        .await;
    assert_eq!(
        status,
        201,
        "{grant} jwks {consumer_jwks} dir {}",
        root.display()
    );
    let ticket = grant["ticket"].as_str().unwrap();
    let thief = Device::new();
    let proof = thief.jws(json!({"typ": "dpop+jwt", "jwk": thief.jwk()}), &json!({"jti": nonce(), "htm": "POST", "htu": endpoint, "iat": now(),
        "ath": B64URL.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ticket.as_bytes()))}));
    let provider_http = Http::new(&format!("http://127.0.0.1:{provider_port}"));
    let (status, answer) = provider_http
        .post_with(
            "/tsunagu/redeem",
            &json!({}),
            &[("authorization", format!("DPoP {ticket}")), ("dpop", proof)],
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("proof_invalid")),
        "{answer}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the upstream was not asked"
    );
    // Replaying an assertion is refused.
    let assertion = daycare_key.assertion(&daycare_id, &platform_url);
    let body =
        json!({"subject": subject, "purpose_id": "allergy-to-daycare", "items": ["allergy"]});
    assert_eq!(
        http.post_with(
            "/v1/exchange/tickets",
            &body,
            &[("authorization", format!("Bearer {assertion}"))]
        )
        .await
        .0,
        201
    );
    let (status, answer) = http
        .post_with(
            "/v1/exchange/tickets",
            &body,
            &[("authorization", format!("Bearer {assertion}"))],
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("unauthorized"))
    );

    // ---- the resident changes the expiry, then revokes: the next request is refused
    let (status, changed) = hanako
        .change(&http, &consent_id, "expiry", Some(now() + 3 * 86_400))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["receipt"]["events"][1]["type"], "modified");
    assert_eq!(fetch(&consumer, &subject, &["allergy"]).await.0, 200);
    let (status, revoked) = hanako.change(&http, &consent_id, "revoke", None).await;
    assert_eq!(
        (status, revoked["status"].as_str()),
        (200, Some("revoked")),
        "{revoked}"
    );
    refused_with(&consumer, &subject, &["allergy"], "consent_revoked").await;
    assert_eq!(
        hanako.change(&http, &consent_id, "revoke", None).await.1["code"],
        "consent_revoked"
    );
    let (_, feed) = consumer.get("/consents?since=0", None).await;
    let statuses: Vec<&str> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["granted", "changed", "revoked"]);

    // ---- a consent that runs out
    let (_, short) = hanako
        .consent(&http, &offer, &["allergy", "class"], 2)
        .await;
    let short_id = short["consent_id"].as_str().unwrap().to_owned();
    assert_eq!(
        fetch(&consumer, &subject, &["allergy", "class"]).await.0,
        200
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    refused_with(&consumer, &subject, &["allergy"], "consent_expired").await;

    // ---- the committee suspends the consumer: refused from the next request
    let (status, _) = hanako.consent(&http, &offer, &["allergy"], 86_400).await;
    assert_eq!(status, 201);
    assert_eq!(fetch(&consumer, &subject, &["allergy"]).await.0, 200);
    assert_eq!(
        committee.vote(&http, &daycare_id, "suspend", 2).await["status"],
        "suspended"
    );
    refused_with(&consumer, &subject, &["allergy"], "service_suspended").await;
    let (_, offers) = http.get("/v1/me/offers", Some(&hanako.token)).await;
    assert_eq!(
        offers["offers"][0]["status"], "suspended",
        "residents see why"
    );
    assert_eq!(
        committee.vote(&http, &daycare_id, "reinstate", 2).await["status"],
        "approved"
    );
    assert_eq!(fetch(&consumer, &subject, &["allergy"]).await.0, 200);

    // ---- too many requests about one resident
    let mut limited = false;
    for _ in 0..60 {
        let (status, answer) = fetch(&consumer, &subject, &["allergy"]).await;
        if answer["code"] == "rate_limited" {
            assert_eq!(status, 429);
            limited = true;
            break;
        }
    }
    assert!(limited, "the per-resident rate limit answers rate_limited");

    // ---- receipts matched; the history tells it all, each item proven in the ledger
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, history) = http
        .get("/v1/me/history?limit=200", Some(&hanako.token))
        .await;
    let items = history["items"].as_array().unwrap();
    let find = |kind: &str| {
        items
            .iter()
            .filter(|i| i["type"] == kind)
            .collect::<Vec<_>>()
    };
    let issued = find("ticket.issued");
    let first = issued
        .iter()
        .find(|i| i["details"]["ticket_id"] == ticket_id.as_str())
        .expect("the first exchange is in the history");
    assert_eq!(first["details"]["consumer"]["name"], "すくすく保育園");
    assert_eq!(first["details"]["provider"]["name"], "前橋市立中央小学校");
    assert_eq!(
        first["details"]["purpose"]["title_ja"],
        "保育園の給食でのアレルギー対応"
    );
    assert_eq!(
        first["details"]["purpose"]["items"][0]["title_ja"],
        "食物アレルギー"
    );
    assert_eq!(first["details"]["basis"], format!("consent:{consent_id}"));
    assert_eq!(
        first["details"]["exchange"], "completed",
        "both receipts arrived and match"
    );
    assert!(
        find("exchange.completed")
            .iter()
            .any(|i| i["details"]["ticket_id"] == ticket_id.as_str())
    );
    let reasons: Vec<&str> = find("ticket.refused")
        .iter()
        .map(|i| i["reason"].as_str().unwrap())
        .collect();
    for reason in [
        "no_consent",
        "items_not_covered",
        "consent_revoked",
        "consent_expired",
        "service_suspended",
        "rate_limited",
    ] {
        assert!(
            reasons.contains(&reason),
            "{reason} missing from the history's refusals {reasons:?}"
        );
    }
    for kind in [
        "consent.granted",
        "consent.expiry_changed",
        "consent.revoked",
        "consent.expired",
        "identity.pairwise_shown",
    ] {
        assert!(!find(kind).is_empty(), "{kind} missing from the history");
    }
    assert!(
        find("consent.expired")
            .iter()
            .any(|i| i["details"]["consent_id"] == short_id.as_str())
    );
    let sth = &history["sth"];
    let size = sth["tree_size"].as_u64().unwrap();
    let root_hash = B64.decode(sth["root_hash"].as_str().unwrap()).unwrap();
    for item in items {
        let index = item["leaf_index"].as_u64().unwrap();
        let (_, proof) = http
            .get(
                &format!("/v1/ledger/proof/inclusion?leaf_index={index}&tree_size={size}"),
                None,
            )
            .await;
        let path: Vec<Vec<u8>> = proof["audit_path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| B64.decode(h.as_str().unwrap()).unwrap())
            .collect();
        let leaf =
            tsunagu_ledger::leaf_hash(&B64.decode(item["leaf_input"].as_str().unwrap()).unwrap());
        tsunagu_ledger::verify_inclusion(index, size, &leaf, &path, &root_hash).unwrap();
    }
    let (_, taro_history) = http
        .get("/v1/me/history?limit=200", Some(&taro.token))
        .await;
    assert!(
        taro_history["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["reason"] == "provisional_id"),
        "refusals show in the refused resident's history too"
    );

    // ---- the platform holds no payload value
    drop(server);
    let dumped: Vec<u8> = match &db {
        None => ["tsunagu.db", "tsunagu.db-wal"]
            .iter()
            .flat_map(|f| std::fs::read(root.join("data").join(f)).unwrap_or_default())
            .collect(),
        Some((_, schema)) => {
            let url = std::env::var("TSUNAGU_TEST_DATABASE_URL").unwrap();
            let out = std::process::Command::new("pg_dump")
                .arg("--schema")
                .arg(schema)
                .arg("--data-only")
                .arg(&url)
                .output()
                .expect("pg_dump runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    };
    assert!(dumped.len() > 10_000, "the dump holds the platform's data");
    for value in [
        ALLERGY,
        CLASS,
        "E2E-7f3a9c",
        "E2E-51be02",
        "should never leave",
    ] {
        assert!(
            !dumped.windows(value.len()).any(|w| w == value.as_bytes()),
            "the platform's database contains `{value}`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_end_to_end_on_sqlite() {
    scenario("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_end_to_end_on_postgres() {
    if std::env::var("TSUNAGU_TEST_DATABASE_URL").is_err() {
        println!(
            "NOTICE: TSUNAGU_TEST_DATABASE_URL not set: the PostgreSQL end-to-end run is skipped"
        );
        return;
    }
    scenario("postgres").await;
}
