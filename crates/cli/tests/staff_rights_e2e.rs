//! Operator staff and the residents' rights end to end, through the real binary over HTTP
//! (SPEC §8, §9), on SQLite and on PostgreSQL when `TSUNAGU_TEST_DATABASE_URL` is set:
//!
//! - staff log in with a password and a TOTP code, only from `[admin] allowed_networks`
//!   (the test's staff connect from 127.0.0.2; 127.0.0.1 is refused, also with a forged
//!   `X-Forwarded-For`); a code is used once; failures lock the account;
//! - a look at a resident needs a reason and a grant in force (not none, not expired, not
//!   withdrawn), and lands in the resident's history and in the auditors' access report;
//! - every request type from filing to completion, with deadlines; a suspension and a stop
//!   of provision refuse consent tickets while a legal-basis rule still provides; an
//!   erasure leaves none of the four basic items (plain or sealed) in the SQLite file or in
//!   a `pg_dump`, and the account cannot log in.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use totp_rs::{Algorithm, Secret, TOTP};

const NAME: &str = "前橋　花子";
const ADDRESS: &str = "群馬県前橋市大手町二丁目12番1号";

/// The staff's own address: the only one `[admin] allowed_networks` lets in.
const STAFF_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn staff_http(base: &str) -> Http {
    Http::with_client(
        base,
        reqwest::Client::builder()
            .local_address(STAFF_IP)
            .build()
            .unwrap(),
    )
}

/// A staff member's credentials as `admin staff create` or `POST /v1/admin/staff` print
/// them, and the TOTP they make (RFC 6238 by an independent implementation).
struct Credentials {
    id: String,
    password: String,
    totp: TOTP,
}

impl Credentials {
    fn from(v: &Value) -> Credentials {
        let secret = Secret::Encoded(v["totp_secret"].as_str().unwrap().to_owned())
            .to_bytes()
            .unwrap();
        assert!(
            v["otpauth_uri"]
                .as_str()
                .unwrap()
                .starts_with("otpauth://totp/")
        );
        Credentials {
            id: v["id"].as_str().unwrap().to_owned(),
            password: v["password"].as_str().unwrap().to_owned(),
            totp: TOTP::new(Algorithm::SHA1, 6, 1, 30, secret).unwrap(),
        }
    }

    /// The code of the step `steps` from now (one step of skew is accepted).
    fn code(&self, steps: i64) -> String {
        self.totp.generate((now() + steps * 30) as u64)
    }

    async fn login_with(&self, http: &Http, code: &str) -> (u16, Value) {
        http.post(
            "/v1/admin/login",
            &json!({"id": self.id, "password": self.password, "totp": code}),
            None,
        )
        .await
    }

    async fn login(&self, http: &Http, steps: i64) -> String {
        let (status, v) = self.login_with(http, &self.code(steps)).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["expires_in"], 900);
        v["token"].as_str().unwrap().to_owned()
    }
}

fn refused(answer: (u16, Value), status: u16, code: &str) {
    assert_eq!(
        (answer.0, answer.1["code"].as_str()),
        (status, Some(code)),
        "{}",
        answer.1
    );
}

struct Resident {
    device: Device,
    token: String,
    credential: String,
}

async fn resident(http: &Http, card: &Issued) -> Resident {
    let device = Device::new();
    let enrolled = enroll_device(http, &device, Some(card)).await;
    let credential = enrolled["credential"].as_str().unwrap().to_owned();
    let (status, answer) = login(http, &device, &credential).await;
    assert_eq!(status, 200, "{answer}");
    Resident {
        device,
        token: answer["access_token"].as_str().unwrap().to_owned(),
        credential,
    }
}

async fn login(http: &Http, device: &Device, credential: &str) -> (u16, Value) {
    let nonce = http.nonce("/v1/auth/challenge").await;
    let body = json!({"credential": credential, "nonce": nonce, "signature": device.sign(nonce.as_bytes())});
    http.post("/v1/auth/login", &body, None).await
}

async fn history(http: &Http, token: &str) -> Vec<Value> {
    let (status, h) = http.get("/v1/me/history?limit=200", Some(token)).await;
    assert_eq!(status, 200, "{h}");
    h["items"].as_array().unwrap().clone()
}

/// A ticket request by the day care for one of its purposes.
async fn ticket(
    http: &Http,
    daycare: &(String, Device),
    subject: &str,
    purpose: &str,
) -> (u16, Value) {
    let mut body = json!({"subject": subject, "purpose_id": purpose, "items": ["allergy"]});
    if purpose == "emergency" {
        body["requester"] = json!("救急隊長 E2E");
        body["reason"] = json!("搬送中の投薬前の確認");
    }
    let resp = http
        .client()
        .post(format!("{}/v1/exchange/tickets", http.base()))
        .bearer_auth(daycare.1.assertion(&daycare.0, http.base()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn file(http: &Http, token: &str, kind: &str, detail: Option<&str>) -> Value {
    let mut body = json!({"type": kind});
    if let Some(d) = detail {
        body["detail"] = json!(d);
    }
    let (status, v) = http.post("/v1/me/requests", &body, Some(token)).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["type"], kind);
    v
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bytes of the SQLite database and its write-ahead log.
fn sqlite_bytes(data: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["tsunagu.db", "tsunagu.db-wal"] {
        if let Ok(b) = std::fs::read(data.join(name)) {
            all.extend(b);
        }
    }
    assert!(all.len() > 4096, "the database file is there");
    all
}

fn pg_dump(url: &str, schema: &str) -> Vec<u8> {
    let base = url.split('?').next().unwrap();
    let out = std::process::Command::new("pg_dump")
        .args(["--schema", schema, "--data-only", base])
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.len() > 1000);
    out.stdout
}

async fn scenario(label: &str) {
    let Scenario {
        root,
        mut ca,
        card,
        dir: _dir,
    } = Scenario::new();
    let taro_card = ca.issue(
        "taro",
        &jpki_items("高崎　太郎", "群馬県高崎市高松町35番地1"),
        "20240101000000Z",
        "20350101000000Z",
    );
    ca.publish_crl();
    let committee = Committee::new(&["m1"]);
    let db = postgres_url("e2e_staff", label).await;
    let port = free_port();
    let config = format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\nsweep_interval_seconds = 1\n[storage]\ndata_dir = \"./data\"\n{}[identity]\njpki_trust_anchors = [\"ca/ca.pem\"]\njpki_crls = [\"ca/ca.crl\"]\n[governance]\nquorum = 1\nmembers = [{}]\n[exchange]\nresident_rate_per_minute = 1000\n[admin]\nallowed_networks = [\"127.0.0.2/32\"]\nbulk_threshold = 1\n[dsr.deadline_days]\ncorrection = 7\n",
        db.as_ref()
            .map(|(u, _)| format!("database_url = \"{u}\"\n"))
            .unwrap_or_default(),
        committee.members_toml()
    );
    let server = Server::start(&root, &config, port);
    let http = Http::new(&server.url);
    let staff = staff_http(&server.url);

    // ---- a provider, and a day care with a consent purpose and a vital-interest rule
    let keys = |name: &str| -> Value {
        serde_json::from_str(&tsunagu(
            &root,
            &["connector", "keygen", "--out", &format!("{name}.pem")],
        ))
        .unwrap()
    };
    let school = committee
        .admit(&http, &json!({
            "name": "中央小学校", "organization": "教育委員会", "contact": "school@example.jp", "kind": "provider",
            "jwks": keys("school"), "endpoint": "http://127.0.0.1:9/redeem",
            "offers": [{"item": "allergy", "title_ja": "食物アレルギー", "data_class": "closed", "sensitive": true}],
            "security": {"iso27001": true, "incident_contact": "soc@school.example.jp"}
        }))
        .await;
    let daycare_jwks = keys("daycare");
    let daycare_key = Device::from_pem(&root.join("daycare.pem"));
    let daycare_id = committee
        .admit(&http, &json!({
            "name": "すくすく保育園", "organization": "社会福祉法人すくすく", "contact": "daycare@example.jp", "kind": "consumer",
            "jwks": daycare_jwks,
            "purposes": [
                {"id": "meals", "title_ja": "給食のアレルギー対応", "title_en": "Allergy-safe meals",
                 "description_ja": "保育園の給食からアレルゲンを除くため、学校に登録された食物アレルギーを受け取ります。",
                 "description_en": "The day-care kitchen removes allergens from meals using the allergy record the school keeps.",
                 "provider": school, "items": ["allergy"], "uses": {"allergy": "献立からアレルゲンを除くため"},
                 "retention_days": 365, "legal_basis": "consent"},
                {"id": "emergency", "title_ja": "救急時のアレルギー確認", "title_en": "Allergies in an emergency",
                 "description_ja": "園児の救急搬送時に、投薬で事故を起こさないよう食物アレルギーを確認します。",
                 "description_en": "When a child is taken to hospital, staff check the food allergies so that no medication harms the child.",
                 "provider": school, "items": ["allergy"], "uses": {"allergy": "搬送中の投薬を安全にするため"},
                 "retention_days": 30, "legal_basis": "vital_interest",
                 "citation": "個人情報保護法第27条第1項第2号(人の生命・身体の保護)"}
            ],
            "security": {"iso27001": true, "incident_contact": "soc@daycare.example.jp"}
        }))
        .await;
    let daycare = (daycare_id.clone(), daycare_key);

    // ---- residents: Hanako consents to the meals purpose
    let hanako = resident(&http, &card).await;
    let taro = resident(&http, &taro_card).await;
    let (_, me) = http.get("/v1/me", Some(&hanako.token)).await;
    let hanako_id = me["account_id"].as_str().unwrap().to_owned();
    let (_, me) = http.get("/v1/me", Some(&taro.token)).await;
    let taro_id = me["account_id"].as_str().unwrap().to_owned();
    let (_, offers) = http.get("/v1/me/offers", Some(&hanako.token)).await;
    let offer = offers["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["purpose_id"] == "meals")
        .unwrap()
        .clone();
    let payload = json!({
        "v": 1, "purpose_id": "meals", "consumer": daycare_id, "provider": school, "items": ["allergy"],
        "expires_at": now() + 86_400, "terms_sha256": offer["terms_sha256"], "issued_at": now(), "nonce": nonce(),
    });
    let (status, consent) = http
        .post(
            "/v1/me/consents",
            &json!({"consent_jws": hanako.device.resident_jws(&payload)}),
            Some(&hanako.token),
        )
        .await;
    assert_eq!(status, 201, "{consent}");
    let (_, pairwise) = http
        .get(
            &format!("/v1/me/pairwise/{daycare_id}"),
            Some(&hanako.token),
        )
        .await;
    let subject = pairwise["subject"].as_str().unwrap().to_owned();
    assert_eq!(ticket(&http, &daycare, &subject, "meals").await.0, 201);

    // ---- the first security officer and an auditor, from the command line while the
    // server runs
    let bootstrap = |id: &str, role: &str| -> Credentials {
        let out = tsunagu(
            &root,
            &[
                "admin",
                "staff",
                "create",
                "--config",
                "tsunagu.toml",
                "--id",
                id,
                "--role",
                role,
            ],
        );
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["id"], id);
        Credentials::from(&v)
    };
    let officer = bootstrap("officer-1", "security_officer");
    let officer2 = bootstrap("officer-2", "security_officer");
    let auditor = bootstrap("audit-1", "auditor");
    let out = run_tsunagu(
        &root,
        &[
            "admin",
            "staff",
            "create",
            "--config",
            "tsunagu.toml",
            "--id",
            "officer-1",
            "--role",
            "auditor",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));

    // ---- the network is checked before anything else, and a forged header does not help
    refused(
        officer.login_with(&http, &officer.code(0)).await,
        403,
        "network_not_allowed",
    );
    let forged = http
        .post_with(
            "/v1/admin/login",
            &json!({"id": officer.id, "password": officer.password, "totp": officer.code(0)}),
            &[("x-forwarded-for", STAFF_IP.to_string())],
        )
        .await;
    refused(forged, 403, "network_not_allowed");
    refused(
        http.get("/v1/admin/access-review", None).await,
        403,
        "network_not_allowed",
    );

    // ---- wrong password, wrong code, a code used once
    let wrong = json!({"id": officer.id, "password": "not-it", "totp": officer.code(0)});
    refused(
        staff.post("/v1/admin/login", &wrong, None).await,
        401,
        "invalid_credentials",
    );
    let nobody = json!({"id": "nobody", "password": "x", "totp": "123456"});
    refused(
        staff.post("/v1/admin/login", &nobody, None).await,
        401,
        "invalid_credentials",
    );
    refused(
        officer.login_with(&staff, "000000").await,
        401,
        "totp_invalid",
    );
    let code = officer.code(0);
    let (status, first) = officer.login_with(&staff, &code).await;
    assert_eq!(status, 200, "{first}");
    let officer_token = first["token"].as_str().unwrap().to_owned();
    refused(
        officer.login_with(&staff, &code).await,
        401,
        "totp_replayed",
    );
    // The session answers only the client that logged in.
    refused(
        http.get("/v1/admin/access-review", Some(&officer_token))
            .await,
        403,
        "network_not_allowed",
    );

    // ---- the officer creates an operator; views need a grant and a reason
    let (status, created) = staff
        .post(
            "/v1/admin/staff",
            &json!({"id": "op-1", "display_name": "窓口 一郎"}),
            Some(&officer_token),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let operator = Credentials::from(&created);
    let op = operator.login(&staff, 0).await;
    let look = |who: &str, reason: Option<&str>| {
        let path = match reason {
            Some(r) => format!("/v1/admin/residents/{who}?reason={}", urlencode(r)),
            None => format!("/v1/admin/residents/{who}"),
        };
        let staff = &staff;
        let op = op.clone();
        async move { staff.get(&path, Some(&op)).await }
    };
    refused(
        look(&hanako_id, Some("窓口での本人確認")).await,
        403,
        "no_grant",
    );
    // The officer who created op-1 saw its credentials: she may not grant it anything.
    refused(
        staff
            .post(
                "/v1/admin/grants",
                &json!({"staff_id": "op-1", "role": "operator", "scope": "view",
                        "expires_at": now() + 86_400, "reason": "窓口業務への配属"}),
                Some(&officer_token),
            )
            .await,
        403,
        "forbidden",
    );
    let officer2_token = officer2.login(&staff, 0).await;
    let grant = |body: Value| {
        let staff = &staff;
        let token = officer2_token.clone();
        async move { staff.post("/v1/admin/grants", &body, Some(&token)).await }
    };
    let (status, g) = grant(
        json!({"staff_id": "op-1", "role": "operator", "scope": "view",
        "expires_at": now() + 86_400, "reason": "窓口業務への配属"}),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    let view_grant = g["grant_id"].as_str().unwrap().to_owned();
    refused(
        grant(json!({"staff_id": "officer-2", "role": "auditor", "expires_at": now() + 86_400, "reason": "self"})).await,
        403,
        "forbidden",
    );
    refused(
        grant(json!({"staff_id": "op-1", "role": "operator", "expires_at": now() + 86_400, "reason": "no scope"})).await,
        400,
        "invalid_request",
    );
    refused(
        grant(json!({"staff_id": "op-1", "role": "auditor", "expires_at": now() + 400 * 86_400, "reason": "too long"})).await,
        400,
        "invalid_request",
    );
    refused(look(&hanako_id, None).await, 400, "reason_required");
    refused(look(&hanako_id, Some("  ")).await, 400, "reason_required");
    let reason = "転居届の受付での本人確認 E2E-4d2f";
    let (status, seen) = look(&hanako_id, Some(reason)).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["basic_items"]["name"], NAME);
    assert_eq!(seen["basic_items"]["address"], ADDRESS);
    assert_eq!(
        seen["items_shown"],
        json!(["name", "address", "birthdate", "gender"])
    );
    let (status, _) = look(&taro_id, Some("転居届の受付での本人確認(同一世帯)")).await;
    assert_eq!(status, 200);

    // The look is in Hanako's history, with the items and the reason.
    let items = history(&http, &hanako.token).await;
    let viewed = items
        .iter()
        .find(|i| i["type"] == "staff.viewed")
        .expect("the look is in the resident's history");
    assert_eq!(viewed["outcome"], "recorded");
    assert_eq!(viewed["reason"], reason);
    assert_eq!(
        viewed["event"]["items"],
        json!(["name", "address", "birthdate", "gender"])
    );
    assert_eq!(viewed["event"]["role"], "operator");
    assert!(
        !viewed["event"]["staff"].as_str().unwrap().contains("op-1"),
        "a pseudonym"
    );

    // ---- withdrawn and expired grants are refused
    let resp = staff
        .client()
        .delete(format!("{}/v1/admin/grants/{view_grant}", staff.base()))
        .bearer_auth(&officer_token)
        .json(&json!({"reason": "異動"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    refused(look(&hanako_id, Some(reason)).await, 403, "no_grant");
    let (status, short) = grant(
        json!({"staff_id": "op-1", "role": "operator", "scope": "update",
        "expires_at": now() + 2, "reason": "短期の応援"}),
    )
    .await;
    assert_eq!(status, 201, "{short}");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    refused(look(&hanako_id, Some(reason)).await, 403, "no_grant");
    let refusals = history(&http, &hanako.token).await;
    assert!(
        refusals
            .iter()
            .any(|i| i["type"] == "staff.view_refused" && i["outcome"] == "refused"),
        "a refused look is in the history too"
    );

    // ---- the access review and its reconfirmation
    let (status, review) = staff
        .get("/v1/admin/access-review", Some(&officer_token))
        .await;
    assert_eq!(status, 200, "{review}");
    assert_eq!(review["review_period_days"], 90);
    assert!(review["grants_due"].as_array().unwrap().is_empty());
    let (status, g) = grant(
        json!({"staff_id": "op-1", "role": "operator", "scope": "update",
        "expires_at": now() + 86_400, "reason": "窓口業務(更新)"}),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    let update_grant = g["grant_id"].as_str().unwrap().to_owned();
    let (status, r) = staff
        .post(
            &format!("/v1/admin/grants/{update_grant}/reconfirm"),
            &json!({}),
            Some(&officer_token),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    // Nobody reviews their own grant.
    let (_, all) = staff.get("/v1/admin/grants", Some(&officer2_token)).await;
    let own = all["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["staff_id"] == "officer-1")
        .unwrap()["grant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    refused(
        staff
            .post(
                &format!("/v1/admin/grants/{own}/reconfirm"),
                &json!({}),
                Some(&officer_token),
            )
            .await,
        403,
        "forbidden",
    );
    refused(
        staff.get("/v1/admin/access-review", Some(&op)).await,
        403,
        "no_grant",
    );

    // ---- the auditors' report: who looked at what, and what was unusual
    let audit = auditor.login(&staff, 0).await;
    let (status, report) = staff
        .get(
            &format!(
                "/v1/admin/reports/access?from={}&to={}",
                now() - 3600,
                now() + 60
            ),
            Some(&audit),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    let views = report["views"].as_array().unwrap();
    assert_eq!(views.len(), 2, "{report}");
    assert!(views.iter().any(|v| v["account_id"] == hanako_id.as_str()
        && v["reason"] == reason
        && v["staff_id"] == "op-1"));
    let kinds: Vec<&str> = report["unusual"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"bulk"),
        "two residents in an hour over a threshold of one: {kinds:?}"
    );
    assert!(kinds.contains(&"no_open_request"), "{kinds:?}");
    refused(
        staff.get("/v1/admin/reports/access", Some(&op)).await,
        403,
        "no_grant",
    );

    // ---- growing lock-out: five failures lock the account (429)
    let (_, created) = staff
        .post(
            "/v1/admin/staff",
            &json!({"id": "op-2", "display_name": "窓口 二郎"}),
            Some(&officer_token),
        )
        .await;
    let op2 = Credentials::from(&created);
    for _ in 0..5 {
        let wrong = json!({"id": "op-2", "password": "guess", "totp": op2.code(0)});
        refused(
            staff.post("/v1/admin/login", &wrong, None).await,
            401,
            "invalid_credentials",
        );
    }
    refused(op2.login_with(&staff, &op2.code(0)).await, 429, "locked");

    // ---- disclosure: completed at once, with the export
    let disclosure = file(&http, &hanako.token, "disclosure", None).await;
    assert_eq!(disclosure["status"], "completed");
    assert_eq!(
        disclosure["deadline"].as_i64().unwrap() - disclosure["received_at"].as_i64().unwrap(),
        14 * 86_400
    );
    let id = disclosure["request_id"].as_str().unwrap();
    let (status, export) = http
        .get(&format!("/v1/me/requests/{id}/export"), Some(&hanako.token))
        .await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["basic_items"]["name"], NAME);
    assert_eq!(export["account"]["account_id"], hanako_id.as_str());
    assert_eq!(export["devices"].as_array().unwrap().len(), 1);
    assert!(
        export["consents"][0]["signed_jws"]
            .as_str()
            .unwrap()
            .split('.')
            .count()
            == 3
    );
    assert!(export["receipts"][0]["receipt"].is_object());
    assert_eq!(export["tickets"].as_array().unwrap().len(), 1);
    let provisions = export["provisions"].as_array().unwrap();
    assert!(provisions.iter().any(|p| p["type"] == "ticket.issued"
        && p["details"]["consumer"]["service_id"] == daycare_id.as_str()));
    let staff_views = export["staff_views"].as_array().unwrap();
    assert!(staff_views.iter().any(|v| v["reason"] == reason));
    // Every history entry proves its inclusion under the export's tree head, offline.
    let size = export["sth"]["tree_size"].as_u64().unwrap();
    let root_hash = B64
        .decode(export["sth"]["root_hash"].as_str().unwrap())
        .unwrap();
    let entries = export["history"].as_array().unwrap();
    assert!(entries.len() >= 8, "{}", entries.len());
    for item in entries {
        assert_eq!(item["inclusion"]["tree_size"].as_u64(), Some(size));
        let input = B64.decode(item["leaf_input"].as_str().unwrap()).unwrap();
        let hash = tsunagu_ledger::leaf_hash(&input);
        assert_eq!(B64.encode(hash), item["leaf_hash"].as_str().unwrap());
        let path: Vec<Vec<u8>> = item["inclusion"]["audit_path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| B64.decode(h.as_str().unwrap()).unwrap())
            .collect();
        tsunagu_ledger::verify_inclusion(
            item["leaf_index"].as_u64().unwrap(),
            size,
            &hash,
            &path,
            &root_hash,
        )
        .expect("the entry is in the tree the export names");
    }
    let page = http
        .client()
        .get(format!(
            "{}/v1/me/requests/{id}/export?format=html",
            http.base()
        ))
        .bearer_auth(&hanako.token)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains(NAME) && html.contains(reason) && html.contains("保有個人情報の開示"));
    refused(
        http.get(&format!("/v1/me/requests/{id}/export"), Some(&taro.token))
            .await,
        404,
        "unknown_request",
    );
    refused(
        http.get(
            &format!("/v1/me/requests/{id}/export?format=pdf"),
            Some(&hanako.token),
        )
        .await,
        400,
        "invalid_request",
    );
    refused(
        http.post(
            "/v1/me/requests",
            &json!({"type": "everything"}),
            Some(&hanako.token),
        )
        .await,
        400,
        "invalid_request",
    );
    refused(
        http.post(
            "/v1/me/requests",
            &json!({"type": "correction"}),
            Some(&hanako.token),
        )
        .await,
        400,
        "invalid_request",
    );

    // ---- correction: the staff queue, with the configured deadline
    let correction = file(
        &http,
        &hanako.token,
        "correction",
        Some("住所の方書が抜けています"),
    )
    .await;
    assert_eq!(correction["status"], "received");
    assert_eq!(
        correction["deadline"].as_i64().unwrap() - correction["received_at"].as_i64().unwrap(),
        7 * 86_400
    );
    let cid = correction["request_id"].as_str().unwrap().to_owned();
    let (status, queue) = staff.get("/v1/admin/requests", Some(&op)).await;
    assert_eq!(status, 200, "{queue}");
    let queued = queue["requests"].as_array().unwrap();
    assert!(queued.iter().any(|r| r["request_id"] == cid.as_str()
        && r["detail"] == "住所の方書が抜けています"
        && r["account_id"] == hanako_id.as_str()));
    let (_, overdue) = staff
        .get("/v1/admin/requests?overdue=true", Some(&op))
        .await;
    assert!(overdue["requests"].as_array().unwrap().is_empty());
    let decide = |body: Value| {
        let staff = &staff;
        let op = op.clone();
        let path = format!("/v1/admin/requests/{cid}/decision");
        async move { staff.post(&path, &body, Some(&op)).await }
    };
    refused(
        decide(json!({"decision": "refused"})).await,
        400,
        "reason_required",
    );
    let (status, v) = decide(json!({"decision": "in_progress"})).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("in_progress")),
        "{v}"
    );
    let (status, v) =
        decide(json!({"decision": "completed", "reason": "住民票と照合し訂正しました"})).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("completed")),
        "{v}"
    );
    refused(
        decide(json!({"decision": "refused", "reason": "late"})).await,
        409,
        "request_closed",
    );
    let (_, mine) = http
        .get(&format!("/v1/me/requests/{cid}"), Some(&hanako.token))
        .await;
    assert_eq!(mine["status"], "completed");
    assert_eq!(mine["decided_by"], "staff");
    assert_eq!(mine["reason"], "住民票と照合し訂正しました");

    // ---- suspension and stop of provision: consent tickets refused, the rule provides
    for kind in ["suspension", "stop_provision"] {
        let r = file(&http, &hanako.token, kind, None).await;
        assert_eq!(r["status"], "completed");
        assert!(r["note"].as_str().unwrap().contains("legal-basis rules"));
        refused(
            ticket(&http, &daycare, &subject, "meals").await,
            403,
            "suspended_by_resident",
        );
        let (status, t) = ticket(&http, &daycare, &subject, "emergency").await;
        assert_eq!(status, 201, "{kind}: {t}");
    }
    assert_eq!(
        file(&http, &hanako.token, "resume", None).await["status"],
        "completed"
    );
    assert_eq!(ticket(&http, &daycare, &subject, "meals").await.0, 201);

    // Every request and its changes are in the history, and the list shows them all.
    let (_, list) = http.get("/v1/me/requests", Some(&hanako.token)).await;
    assert_eq!(list["requests"].as_array().unwrap().len(), 5);
    let kinds: Vec<Value> = history(&http, &hanako.token)
        .await
        .into_iter()
        .map(|i| i["type"].clone())
        .collect();
    assert!(kinds.contains(&json!("rights.request_received")));
    assert!(kinds.contains(&json!("rights.request_status_changed")));

    // ---- erasure: nothing of the four items stays in the database's files
    let store = tsunagu_store::open(db.as_ref().map(|(u, _)| u.as_str()), &root.join("data"))
        .await
        .unwrap();
    let sealed = store
        .account(&hanako_id.clone().into())
        .await
        .unwrap()
        .unwrap()
        .attributes
        .expect("sealed items before the erasure");
    let before = match &db {
        None => sqlite_bytes(&root.join("data")),
        Some((url, schema)) => pg_dump(url, schema),
    };
    let sealed_hex = hex::encode(&sealed);
    assert!(
        contains(&before, &sealed) || contains(&before, sealed_hex.as_bytes()),
        "the scan finds the sealed items before the erasure"
    );
    let erasure = file(
        &http,
        &hanako.token,
        "erasure",
        Some("引っ越すので退会します"),
    )
    .await;
    assert_eq!(erasure["status"], "completed");
    assert_eq!(
        erasure["deadline"].as_i64().unwrap() - erasure["received_at"].as_i64().unwrap(),
        30 * 86_400
    );
    refused(
        http.get("/v1/me", Some(&hanako.token)).await,
        401,
        "unauthorized",
    );
    refused(
        login(&http, &hanako.device, &hanako.credential).await,
        403,
        "account_erased",
    );
    let after = match &db {
        None => sqlite_bytes(&root.join("data")),
        Some((url, schema)) => pg_dump(url, schema),
    };
    for needle in [
        NAME.as_bytes(),
        ADDRESS.as_bytes(),
        sealed.as_slice(),
        sealed_hex.as_bytes(),
        "引っ越すので退会します".as_bytes(),
    ] {
        assert!(
            !contains(&after, needle),
            "{} is still in the database files",
            String::from_utf8_lossy(needle)
        );
    }
    let account = store
        .account(&hanako_id.clone().into())
        .await
        .unwrap()
        .unwrap();
    assert!(account.erased_at.is_some() && account.attributes.is_none());
    // The day care learns it from the consent feed.
    let resp = http
        .client()
        .get(format!("{}/v1/exchange/consents", http.base()))
        .bearer_auth(daycare.1.assertion(&daycare.0, http.base()))
        .send()
        .await
        .unwrap();
    let feed: Value = resp.json().await.unwrap();
    let last = feed["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["status"].as_str(), last["reason"].as_str()),
        (Some("revoked"), Some("erasure")),
        "{feed}"
    );
    refused(
        ticket(&http, &daycare, &subject, "meals").await,
        403,
        "account_erased",
    );
    // Staff see the minimal record: the account, erased, without items.
    let (status, g) = grant(
        json!({"staff_id": "op-1", "role": "operator", "scope": "view",
        "expires_at": now() + 86_400, "reason": "退会後の問い合わせ対応"}),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    let (status, seen) = look(&hanako_id, Some("退会者からの問い合わせ")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(
        (seen["erased"].as_bool(), &seen["basic_items"]),
        (Some(true), &Value::Null)
    );
    drop(server);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_and_residents_rights_on_sqlite() {
    scenario("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_and_residents_rights_on_postgres() {
    if std::env::var("TSUNAGU_TEST_DATABASE_URL").is_err() {
        println!("NOTICE: TSUNAGU_TEST_DATABASE_URL not set: the PostgreSQL case is skipped");
        return;
    }
    scenario("postgres").await;
}
