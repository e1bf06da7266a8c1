//! The resident web app end to end, through the real binary over HTTP, driven like a
//! browser without JavaScript: a client that keeps the session cookie, reads hidden fields
//! out of the pages, signs with its own device key, and posts the same forms the page
//! script would. Covers login, 情報提供の管理 (offers, a consent to some items only, an
//! expiry change, revocation, the receipt), the history and its JSON, the devices, the CSRF
//! and origin checks, and the simulated My Number card in development mode.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};

fn assert_see_other(a: &Answer, to: &str) {
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.location.as_deref(), Some(to));
}

fn assert_refused(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert!(a.body.contains("role=\"alert\""), "{}", a.body);
    assert!(
        a.body
            .contains(&format!("<code class=\"error-code\">{code}</code>")),
        "expected {code}: {}",
        a.body
    );
}

fn config(port: u16, committee: &Committee, extra: &str) -> String {
    format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\n[storage]\ndata_dir = \"./data\"\n[identity]\njpki_trust_anchors = [\"ca/ca.pem\"]\njpki_crls = [\"ca/ca.crl\"]\n[ledger]\nsth_interval_seconds = 1\n[governance]\nquorum = 1\nmembers = [{}]\n{extra}",
        committee.members_toml()
    )
}

/// A school (provider), a day-care centre asking for its allergy records with consent, and
/// the fire brigade reading them under a vital-interest rule; all approved.
async fn services(http: &Http, member: &Committee) -> (String, String, String) {
    let keys = |d: &Device| json!({"keys": [d.jwk()]});
    let security =
        json!({"iso27001": true, "incident_contact": "soc@example.jp", "subcontractors": []});
    let school = member
        .admit(
            http,
            &json!({
        "name": "前橋市立中央小学校", "organization": "前橋市教育委員会", "contact": "school@example.jp", "kind": "provider",
        "jwks": keys(&Device::new()), "endpoint": "https://school.example.jp/tsunagu/redeem", "redirect_uris": [],
        "offers": [
            {"item": "allergy", "title_ja": "食物アレルギー", "title_en": "Food allergies", "data_class": "closed", "sensitive": true},
            {"item": "class", "title_ja": "学級", "title_en": "Class", "data_class": "limited", "sensitive": false}
        ],
        "purposes": [], "security": security,
            }),
        )
        .await;
    let daycare = member
        .admit(
            http,
            &json!({
        "name": "すくすく保育園", "organization": "社会福祉法人すくすく", "contact": "daycare@example.jp", "kind": "consumer",
        "jwks": keys(&Device::new()), "redirect_uris": [], "offers": [],
        "purposes": [{
            "id": "allergy-to-daycare", "title_ja": "保育園の給食でのアレルギー対応", "title_en": "Allergy-safe meals at day care",
            "description_ja": "保育園が給食の献立からアレルゲンを除くため、学校に登録された食物アレルギー情報と学級を受け取ります。",
            "description_en": "The day-care centre receives the food allergy record and class kept by the school so that its kitchen removes allergens from meals.",
            "provider": school, "items": ["allergy", "class"],
            "uses": {"allergy": "献立からアレルゲンを除くため", "class": "兄弟の学級と送迎時間を合わせるため"},
            "retention_days": 365, "legal_basis": "consent"
        }],
        "security": security,
            }),
        )
        .await;
    let fire = member
        .admit(
            http,
            &json!({
        "name": "前橋市消防局", "organization": "前橋市", "contact": "fire@example.jp", "kind": "consumer",
        "jwks": keys(&Device::new()), "redirect_uris": [], "offers": [],
        "purposes": [{
            "id": "emergency-allergy", "title_ja": "救急搬送時のアレルギー確認", "title_en": "Allergy check in an emergency",
            "description_ja": "救急隊が傷病者の救命処置と搬送先での投薬判断のため、学校に登録された食物アレルギー情報を照会します。",
            "description_en": "Ambulance crews check a patient's registered food allergies to choose life-saving treatment.",
            "provider": school, "items": ["allergy"], "uses": {"allergy": "アナフィラキシーの判断と投薬の選択"},
            "retention_days": 30, "legal_basis": "vital_interest",
            "citation": "市の救急連携規程 第3条(生命・身体の保護)"
        }],
        "security": security,
            }),
        )
        .await;
    (school, daycare, fire)
}

/// Logs in through the web login page: the hidden nonce, signed, posted with the credential.
async fn web_login(browser: &mut Browser, device: &Device, credential: &str) {
    let page = browser.get("/login").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("action=\"/login\""), "{}", page.body);
    let nonce = hidden(&page.body, "nonce");
    let signature = device.sign(nonce.as_bytes());
    let done = browser
        .post(
            "/login",
            &[
                ("credential", credential),
                ("nonce", &nonce),
                ("signature", &signature),
            ],
        )
        .await;
    assert_see_other(&done, "/app");
    assert!(
        browser.session().is_some(),
        "the login sets the session cookie"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_uses_the_web_app_without_javascript() {
    let Scenario {
        root,
        card,
        dir: _dir,
        ..
    } = Scenario::new();
    let member = Committee::new(&["m1"]);
    let port = free_port();
    let server = Server::start(&root, &config(port, &member, ""), port);
    let http = Http::new(&server.url);
    let (_school, daycare, fire) = services(&http, &member).await;

    // ---- development conveniences are off: no simulated card
    let (status, answer) = http
        .post(
            "/dev/simulated-card",
            &json!({"name": "x", "address": "y", "birthdate": "1990-01-01", "sex": "1", "signed_data": ""}),
            None,
        )
        .await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("not_found")));
    let mut browser = Browser::new(&server.url, "ja,en;q=0.5");
    let enroll_page = browser.get("/enroll").await;
    assert_eq!(enroll_page.status, 200);
    assert!(enroll_page.body.contains("id=\"enroll-button\""));
    assert!(!enroll_page.body.contains("id=\"simcard\""));

    // ---- pages need a session
    for path in ["/app", "/app/consents", "/app/history", "/app/devices"] {
        assert_see_other(&browser.get(path).await, "/login");
    }
    let (status, _) = Http::new(&server.url).get("/app/history.json", None).await;
    assert_eq!(status, 401);

    // ---- a verified resident enrolls (over the API) and logs in on the web
    let device = Device::new();
    let enrolled = enroll_device(&http, &device, Some(&card)).await;
    assert_eq!(enrolled["level"], "verified");
    let credential = enrolled["credential"].as_str().unwrap().to_owned();
    let device_id = enrolled["device_id"].as_str().unwrap().to_owned();
    web_login(&mut browser, &device, &credential).await;
    let home = browser.get("/app").await;
    assert_eq!(home.status, 200);
    assert!(
        home.body.contains("data-level=\"verified\""),
        "{}",
        home.body
    );
    assert!(home.body.contains("前橋　花子"));
    assert!(home.body.contains("href=\"/app/consents\""));
    // The session cookie is an access token of this resident.
    let token = browser.session().unwrap();

    // ---- 情報提供の管理: every offer, with recipient, source, items, purpose, retention, basis
    let page = browser.get("/app/consents").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let b = &page.body;
    for shown in [
        "data-purpose=\"allergy-to-daycare\"",
        "保育園の給食でのアレルギー対応",
        "すくすく保育園",
        "前橋市立中央小学校",
        "食物アレルギー",
        "学級",
        "献立からアレルゲンを除くため",
        "365",
        "本人の同意",
        "data-purpose=\"emergency-allergy\"",
        "前橋市消防局",
        "人の生命・身体・財産の保護",
        "市の救急連携規程 第3条(生命・身体の保護)",
        "class=\"notice read-only\"",
        "role=\"switch\"",
        "type=\"date\"",
    ] {
        assert!(b.contains(shown), "{shown} missing from the consents page");
    }
    // The legal-basis flow is read-only: no form, no switch.
    assert!(b.contains(&format!("id=\"form-{daycare}-allergy-to-daycare\"")));
    assert!(!b.contains(&format!("id=\"form-{fire}-emergency-allergy\"")));
    let csrf = hidden(b, "csrf");
    let anchor = format!("id=\"form-{daycare}-allergy-to-daycare\"");
    let terms = attr_after(b, &anchor, "data-terms");
    let provider = attr_after(b, &anchor, "data-provider");
    assert_eq!(terms.len(), 64, "terms_sha256 is hex");

    let consent_jws = |items: &[&str]| {
        device.resident_jws(&json!({
            "v": 1, "purpose_id": "allergy-to-daycare", "consumer": daycare, "provider": provider,
            "items": items, "expires_at": now() + 30 * 86_400, "terms_sha256": terms,
            "issued_at": now(), "nonce": nonce(),
        }))
    };
    let consents_via_api = |token: String| {
        let http = Http::new(&server.url);
        async move {
            let (status, v) = http.get("/v1/me/consents", Some(&token)).await;
            assert_eq!(status, 200, "{v}");
            v["consents"].as_array().unwrap().clone()
        }
    };

    // ---- refused: no CSRF token, a foreign origin, no signature, items outside the purpose
    let jws = consent_jws(&["allergy"]);
    assert_refused(
        &browser
            .post("/app/consents", &[("consent_jws", &jws)])
            .await,
        403,
        "forbidden",
    );
    assert_refused(
        &browser
            .post_from(
                "/app/consents",
                &[("csrf", &csrf), ("consent_jws", &jws)],
                Some("https://evil.example"),
            )
            .await,
        403,
        "forbidden",
    );
    assert_refused(
        &browser
            .post(
                "/app/consents",
                &[("csrf", "not-the-token"), ("consent_jws", &jws)],
            )
            .await,
        403,
        "forbidden",
    );
    assert_refused(
        &browser
            .post("/app/consents", &[("csrf", &csrf), ("consent_jws", "")])
            .await,
        400,
        "invalid_request",
    );
    let wrong = consent_jws(&["income"]);
    let refused = browser
        .post("/app/consents", &[("csrf", &csrf), ("consent_jws", &wrong)])
        .await;
    assert_refused(&refused, 403, "items_not_covered");
    assert!(
        refused
            .body
            .contains("提供する情報を一つ以上選んでください")
    );
    assert!(consents_via_api(token.clone()).await.is_empty());

    // ---- consent to the allergy record only
    let granted = browser
        .post(
            "/app/consents",
            &[
                ("csrf", &csrf),
                ("consent_jws", &jws),
                ("enabled", "on"),
                ("item", "allergy"),
            ],
        )
        .await;
    assert_see_other(&granted, "/app/consents?done=granted");
    let page = browser.get("/app/consents?done=granted").await;
    assert!(page.body.contains("同意を記録しました。"), "{}", page.body);
    assert!(page.body.contains("role=\"status\""));
    let consent_id = attr_after(&page.body, "data-consent-record=", "data-consent-record");
    assert!(page.body.contains("data-status=\"active\""));
    assert!(
        page.body
            .contains(&format!("href=\"/app/consents/{consent_id}/receipt.json\""))
    );
    // The switch is on, and only the consented item is ticked.
    let switch = attr_after(
        &page.body,
        &format!("id=\"switch-{daycare}-allergy-to-daycare\""),
        "name",
    );
    assert_eq!(switch, "enabled");
    let form_start = page.body.find(&anchor).unwrap();
    let form_html =
        &page.body[form_start..form_start + page.body[form_start..].find("</form>").unwrap()];
    assert!(form_html.contains("role=\"switch\" id=\""));
    assert!(
        form_html.contains("name=\"enabled\" value=\"on\" checked"),
        "{form_html}"
    );
    assert!(
        form_html.contains("value=\"allergy\" checked"),
        "{form_html}"
    );
    assert!(
        !form_html.contains("value=\"class\" checked"),
        "{form_html}"
    );
    let api = consents_via_api(token.clone()).await;
    assert_eq!(api.len(), 1);
    assert_eq!(api[0]["consent_id"], consent_id.as_str());
    assert_eq!(api[0]["items"], json!(["allergy"]));

    // ---- change the expiry
    let until = now() + 10 * 86_400;
    let change = device.resident_jws(&json!({"consent_id": consent_id, "action": "expiry", "expires_at": until, "issued_at": now(), "nonce": nonce()}));
    assert_refused(
        &browser
            .post(
                &format!("/app/consents/{consent_id}/expiry"),
                &[("change_jws", &change)],
            )
            .await,
        403,
        "forbidden",
    );
    let changed = browser
        .post(
            &format!("/app/consents/{consent_id}/expiry"),
            &[("csrf", &csrf), ("change_jws", &change)],
        )
        .await;
    assert_see_other(&changed, "/app/consents?done=expiry");
    assert_eq!(
        consents_via_api(token.clone()).await[0]["expires_at"],
        until
    );

    // ---- the consent receipt, as a download
    let receipt = browser
        .get(&format!("/app/consents/{consent_id}/receipt.json"))
        .await;
    assert_eq!(receipt.status, 200);
    let disposition = receipt.headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(disposition.contains(".json"), "{disposition}");
    let r: Value = serde_json::from_str(&receipt.body).unwrap();
    assert_eq!(r["header"]["record_id"], consent_id.as_str());
    assert!(r["schema"].as_str().unwrap().contains("27560"));
    assert_eq!(r["parties"]["recipient"]["name"], "すくすく保育園");
    assert_eq!(
        r["processing"]["purposes"][0]["personal_data"][0]["item"],
        "allergy"
    );
    assert_eq!(r["events"][1]["type"], "modified");
    let missing = browser
        .get("/app/consents/no-such-consent/receipt.json")
        .await;
    assert_eq!(missing.status, 404);

    // ---- revoke
    let revoke = device.resident_jws(&json!({"consent_id": consent_id, "action": "revoke", "issued_at": now(), "nonce": nonce()}));
    assert_refused(
        &browser
            .post_from(
                &format!("/app/consents/{consent_id}/revoke"),
                &[("csrf", &csrf), ("change_jws", &revoke)],
                Some("http://127.0.0.1:1"),
            )
            .await,
        403,
        "forbidden",
    );
    let revoked = browser
        .post(
            &format!("/app/consents/{consent_id}/revoke"),
            &[("csrf", &csrf), ("change_jws", &revoke)],
        )
        .await;
    assert_see_other(&revoked, "/app/consents?done=revoked");
    let page = browser.get("/app/consents?done=revoked").await;
    assert!(page.body.contains("同意を取り消しました。"));
    assert!(page.body.contains("data-status=\"revoked\""));
    assert!(!page.body.contains(&format!("id=\"revoke-{consent_id}\"")));
    assert_eq!(
        consents_via_api(token.clone()).await[0]["status"],
        "revoked"
    );
    // Revoking twice is refused with its code, shown on the page.
    let again = device.resident_jws(&json!({"consent_id": consent_id, "action": "revoke", "issued_at": now(), "nonce": nonce()}));
    assert_refused(
        &browser
            .post(
                &format!("/app/consents/{consent_id}/revoke"),
                &[("csrf", &csrf), ("change_jws", &again)],
            )
            .await,
        403,
        "consent_revoked",
    );

    // ---- the history: a timeline with a mark per entry, and its JSON
    let history = browser.get("/app/history").await;
    assert_eq!(history.status, 200);
    let h = &history.body;
    assert!(h.contains("<ol class=\"timeline\">"), "{h}");
    for shown in [
        "提供に同意",
        "同意の期限を変更",
        "同意を取り消し",
        "すくすく保育園",
        "保育園の給食でのアレルギー対応",
        "食物アレルギー",
        "本人の同意",
        "ログイン",
        "拒否",
        "items_not_covered",
        "未確認",
    ] {
        assert!(h.contains(shown), "{shown} missing from the history");
    }
    let marks = h.matches("data-leaf-index=\"").count();
    let json_history = browser.get("/app/history.json").await;
    assert_eq!(json_history.status, 200);
    let jh: Value = serde_json::from_str(&json_history.body).unwrap();
    let (status, api_history) = http.get("/v1/me/history", Some(&token)).await;
    assert_eq!(status, 200);
    let indices = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["leaf_index"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(indices(&jh), indices(&api_history));
    assert_eq!(indices(&jh).len(), marks);
    for i in indices(&jh) {
        assert!(h.contains(&format!("data-leaf-index=\"{i}\"")));
    }
    assert!(jh["items"][0]["leaf_input"].is_string());
    assert!(jh["sth"]["tree_size"].as_u64().unwrap() > indices(&jh)[0]);
    let limited = browser.get("/app/history.json?limit=2").await;
    let limited: Value = serde_json::from_str(&limited.body).unwrap();
    assert_eq!(limited["items"].as_array().unwrap().len(), 2);
    let before = limited["next_before"].as_u64().unwrap();
    let older = browser.get(&format!("/app/history?before={before}")).await;
    assert_eq!(older.status, 200);
    assert!(older.body.contains(&format!("data-before=\"{before}\"")));
    assert_eq!(browser.get("/app/history.json?before=x").await.status, 400);

    // ---- devices: a second device of the same account, revoked from the web
    let phone = Device::new();
    let second = enroll_device(&http, &phone, Some(&card)).await;
    let phone_id = second["device_id"].as_str().unwrap().to_owned();
    assert_eq!(second["account_id"], enrolled["account_id"]);
    let devices = browser.get("/app/devices").await;
    assert_eq!(devices.status, 200);
    assert!(devices.body.contains(&format!("id=\"device-{device_id}\"")));
    assert!(
        devices
            .body
            .contains(&format!("id=\"revoke-device-{phone_id}\""))
    );
    assert!(devices.body.contains("この端末"));
    assert_refused(
        &browser
            .post(&format!("/app/devices/{phone_id}/revoke"), &[])
            .await,
        403,
        "forbidden",
    );
    let done = browser
        .post(
            &format!("/app/devices/{phone_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_see_other(&done, "/app/devices?done=device_revoked");
    let devices = browser.get("/app/devices?done=device_revoked").await;
    assert!(devices.body.contains("端末を無効にしました。"));
    assert!(
        !devices
            .body
            .contains(&format!("id=\"revoke-device-{phone_id}\""))
    );
    let (_, me) = http.get("/v1/me", Some(&token)).await;
    let phone_row = me["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == phone_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(phone_row["status"], "revoked");
    assert_refused(
        &browser
            .post("/app/devices/someone-elses/revoke", &[("csrf", &csrf)])
            .await,
        404,
        "not_found",
    );

    // ---- logging out ends the session on the server, only from this site with the page's
    // token (defect 10)
    assert_refused(
        &browser
            .post_from("/logout", &[("csrf", &csrf)], Some("https://evil.example"))
            .await,
        403,
        "forbidden",
    );
    assert_refused(&browser.post("/logout", &[]).await, 403, "forbidden");
    assert_eq!(browser.session().as_deref(), Some(token.as_str()));
    assert_eq!(browser.get("/app").await.status, 200, "still signed in");
    assert_see_other(&browser.post("/logout", &[("csrf", &csrf)]).await, "/");
    assert!(browser.session().is_none(), "the session cookie is cleared");
    browser
        .cookies
        .insert("tsunagu_session".into(), token.clone());
    assert_see_other(&browser.get("/app").await, "/login");
    assert_eq!(http.get("/v1/me", Some(&token)).await.0, 401);
    browser.cookies.remove("tsunagu_session");
    web_login(&mut browser, &device, &credential).await;
    let token = browser.session().unwrap();
    let csrf = hidden(&browser.get("/app").await.body, "csrf");

    // ---- revoking this device ends the session
    let done = browser
        .post(
            &format!("/app/devices/{device_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_see_other(&done, "/");
    assert!(browser.session().is_none(), "the session cookie is cleared");
    browser
        .cookies
        .insert("tsunagu_session".into(), token.clone());
    assert_see_other(&browser.get("/app").await, "/login");
    let (status, _) = http.get("/v1/me", Some(&token)).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_card_proofs_a_resident_in_development_mode() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    tsunagu(&root, &["dev", "jpki", "init", "--dir", "ca"]);
    let member = Committee::new(&["m1"]);
    let port = free_port();
    let server = Server::start(
        &root,
        &config(port, &member, "[dev]\nsimulated_jpki = \"ca\"\n"),
        port,
    );
    let http = Http::new(&server.url);
    let mut browser = Browser::new(&server.url, "ja,en;q=0.5");

    let page = browser.get("/enroll").await;
    assert_eq!(page.status, 200);
    for shown in [
        "id=\"simcard\"",
        "id=\"sim-name\"",
        "id=\"sim-address\"",
        "id=\"sim-birthdate\"",
        "id=\"sim-sex\"",
        "<legend>",
    ] {
        assert!(
            page.body.contains(shown),
            "{shown} missing from the enroll page"
        );
    }

    // ---- a provisional device, logged in on the web
    let device = Device::new();
    let enrolled = enroll_device(&http, &device, None).await;
    assert_eq!(enrolled["level"], "provisional");
    web_login(
        &mut browser,
        &device,
        enrolled["credential"].as_str().unwrap(),
    )
    .await;
    let home = browser.get("/app").await;
    assert!(home.body.contains("data-level=\"provisional\""));
    assert!(home.body.contains("id=\"upgrade-link\""));
    let page = browser.get("/enroll").await;
    assert!(page.body.contains("data-level=\"provisional\""));
    let consents = browser.get("/app/consents").await;
    assert!(consents.body.contains("id=\"consents-provisional\""));

    // ---- the simulated card refuses what is not an enrollment binding, and bad items
    let card_request = |signed: &[u8], birthdate: &str| {
        json!({"name": "前橋　花子", "address": "群馬県前橋市大手町二丁目12番1号", "birthdate": birthdate, "sex": "2",
               "signed_data": B64.encode(signed)})
    };
    let (status, answer) = http
        .post(
            "/dev/simulated-card",
            &card_request(b"pay 1000 yen", "1988-04-01"),
            None,
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_request")),
        "{answer}"
    );
    let nonce = http.nonce("/v1/enrollment/challenge").await;
    let signed = proof_bytes(&device.thumbprint(), &nonce);
    let (status, answer) = http
        .post(
            "/dev/simulated-card",
            &card_request(&signed, "1988-02-30"),
            None,
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_request")),
        "{answer}"
    );
    let (status, answer) = http
        .post("/dev/simulated-card", &json!({"name": "x"}), None)
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_json")),
        "{answer}"
    );

    // ---- the same device key upgrades with the simulated card's proof
    let (status, card) = http
        .post(
            "/dev/simulated-card",
            &card_request(&signed, "1988-04-01"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{card}");
    let chain = card["certificate_chain"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "the signing certificate and the CA");
    let (status, upgraded) = http
        .post(
            "/v1/enrollment",
            &json!({"device_jwk": device.jwk(), "nonce": nonce, "proof": {
                "type": "jpki", "certificate_chain": chain, "signed_data": B64.encode(&signed),
                "signature": card["signature"]}}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{upgraded}");
    assert_eq!(upgraded["level"], "verified");
    assert_eq!(upgraded["account_id"], enrolled["account_id"]);
    let home = browser.get("/app").await;
    assert!(
        home.body.contains("data-level=\"verified\""),
        "{}",
        home.body
    );
    assert!(home.body.contains("前橋　花子"));
    assert!(home.body.contains("1988-04-01"));

    // ---- a new device enrolls verified at once with a card of its own
    let other = Device::new();
    let nonce = http.nonce("/v1/enrollment/challenge").await;
    let signed = proof_bytes(&other.thumbprint(), &nonce);
    let (_, card) = http
        .post(
            "/dev/simulated-card",
            &json!({"name": "高崎　一郎", "address": "群馬県高崎市高松町35番地1", "birthdate": "1975-11-03", "sex": "1",
                    "signed_data": B64.encode(&signed)}),
            None,
        )
        .await;
    let (status, verified) = http
        .post(
            "/v1/enrollment",
            &json!({"device_jwk": other.jwk(), "nonce": nonce, "proof": {
                "type": "jpki", "certificate_chain": card["certificate_chain"], "signed_data": B64.encode(&signed),
                "signature": card["signature"]}}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{verified}");
    assert_eq!(verified["level"], "verified");
    assert_ne!(verified["account_id"], enrolled["account_id"]);
}
