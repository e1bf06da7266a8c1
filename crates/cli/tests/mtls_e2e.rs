//! Mutual TLS for services (RFC 8705) end to end, through real processes: the platform
//! serving HTTPS and asking for client certificates chaining to `[server] client_ca`; a
//! provider sidecar serving its endpoint over TLS and asking consumers for theirs; a
//! consumer sidecar that connects with its certificate and signs no client assertion. The
//! ticket it gets is bound to the certificate (`cnf.x5t#S256`), and the provider redeems it
//! only on a connection made with that certificate. Client assertions keep working beside
//! it. All certificates come from `tsunagu dev tls`. On SQLite, and on PostgreSQL when
//! `TSUNAGU_TEST_DATABASE_URL` is set.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const ALLERGY: &str = "小麦（mTLS-E2E-4410）";

/// The provider's existing API: answers the allergy item for anyone.
async fn upstream() -> u16 {
    let app = axum::Router::new().route(
        "/items",
        axum::routing::post(|| async { axum::Json(json!({"data": {"allergy": ALLERGY}})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// The `x5t#S256` `tsunagu dev tls` printed for a client.
fn x5t_of(printed: &str, name: &str) -> String {
    let line = printed
        .lines()
        .find(|l| l.starts_with(&format!("client `{name}`")))
        .unwrap_or_else(|| panic!("no line for {name}: {printed}"));
    let start = line.find("tls_client_certificate = \"").unwrap() + 26;
    line[start..start + 43].to_owned()
}

/// The claims of a compact JWS, unverified (the test reads what the platform put there).
fn claims(compact: &str) -> Value {
    let payload = compact.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64URL.decode(payload).unwrap()).unwrap()
}

async fn wait_healthy(http: &Http) {
    eventually("the platform answers over TLS", || async {
        http.client()
            .get(format!("{}/healthz", http.base()))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
}

async fn scenario(label: &str) {
    let Scenario {
        root,
        card,
        dir: _dir,
        ..
    } = Scenario::new();
    let d: &Path = &root;
    let committee = Committee::new(&["m1", "m2"]);
    let db = postgres_url("e2e_mtls", label).await;

    // ---- one CA for the run: the platform's and the provider's server certificate, and a
    // client certificate for each service; a stranger's certificate from another CA
    let printed = ok(run_tsunagu(
        d,
        &[
            "dev", "tls", "--out", "tls", "--client", "daycare", "--client", "school", "--client",
            "clinic", "--client", "portal",
        ],
        &[],
    ));
    ok(run_tsunagu(
        d,
        &["dev", "tls", "--out", "other", "--client", "stranger"],
        &[],
    ));
    let daycare_x5t = x5t_of(&printed, "daycare");
    let ca = d.join("tls/ca.pem");
    let cert = |name: &str| {
        (
            d.join(format!("tls/client-{name}.pem")),
            d.join(format!("tls/client-{name}-key.pem")),
        )
    };
    let (daycare_cert, daycare_key) = cert("daycare");
    let (stranger_cert, stranger_key) = (
        d.join("other/client-stranger.pem"),
        d.join("other/client-stranger-key.pem"),
    );

    let port = free_port();
    let config = format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\ntls_cert = \"tls/server.pem\"\ntls_key = \"tls/server-key.pem\"\nclient_ca = \"tls/ca.pem\"\n[storage]\ndata_dir = \"./data\"\n{}[identity]\njpki_trust_anchors = [\"ca/ca.pem\"]\njpki_crls = [\"ca/ca.crl\"]\n[ledger]\nsth_interval_seconds = 1\n[governance]\nquorum = 2\nmembers = [{}]\n",
        db.as_ref()
            .map(|(u, _)| format!("database_url = \"{u}\"\n"))
            .unwrap_or_default(),
        committee.members_toml()
    );
    std::fs::write(d.join("tsunagu.toml"), config).unwrap();
    let _server =
        Process::start_listening(d, &["serve", "--config", "tsunagu.toml"], port, "serve.log");
    let platform_url = format!("https://127.0.0.1:{port}");
    let http = Http::tls(&platform_url, &ca, None);
    wait_healthy(&http).await;
    let as_daycare = Http::tls(&platform_url, &ca, Some((&daycare_cert, &daycare_key)));
    let as_stranger = Http::tls(&platform_url, &ca, Some((&stranger_cert, &stranger_key)));
    let as_school = Http::tls(
        &platform_url,
        &ca,
        Some((&cert("school").0, &cert("school").1)),
    );
    // A certificate of the services' CA that no service registered.
    let as_clinic = Http::tls(
        &platform_url,
        &ca,
        Some((&cert("clinic").0, &cert("clinic").1)),
    );

    // ---- the services apply: the school registers its certificate (PEM) with the
    // application, the day care later by a registration update (its x5t#S256)
    let school_jwks: Value = serde_json::from_str(&ok(run_tsunagu(
        d,
        &["connector", "keygen", "--out", "school.pem"],
        &[],
    )))
    .unwrap();
    let daycare_jwks: Value = serde_json::from_str(&ok(run_tsunagu(
        d,
        &["connector", "keygen", "--out", "daycare.pem"],
        &[],
    )))
    .unwrap();
    let provider_port = free_port();
    let endpoint = format!("https://127.0.0.1:{provider_port}/tsunagu/redeem");
    let school_pem = std::fs::read_to_string(cert("school").0).unwrap();
    let school_application = json!({
        "name": "前橋市立中央小学校", "organization": "前橋市教育委員会", "contact": "school@example.jp", "kind": "provider",
        "jwks": school_jwks, "endpoint": endpoint,
        "offers": [{"item": "allergy", "title_ja": "食物アレルギー", "data_class": "closed", "sensitive": true}],
        "security": {"iso27001": true, "incident_contact": "soc@example.jp", "subcontractors": []},
        "tls_client_certificate": school_pem,
    });
    // Registering a certificate takes a connection made with it: thumbprints are no secret.
    let (status, no_proof) = http.post("/v1/services", &school_application, None).await;
    assert_eq!(
        (status, no_proof["code"].as_str()),
        (400, Some("application_invalid")),
        "{no_proof}"
    );
    assert!(
        no_proof["detail"]
            .as_str()
            .unwrap()
            .contains("proof of possession"),
        "{no_proof}"
    );
    let (school_id, _) = apply(&as_school, &school_application).await;
    let (daycare_id, _) = apply(&http, &json!({
        "name": "すくすく保育園", "organization": "社会福祉法人すくすく", "contact": "daycare@example.jp", "kind": "consumer",
        "jwks": daycare_jwks,
        "purposes": [{
            "id": "allergy-to-daycare", "title_ja": "保育園の給食でのアレルギー対応", "title_en": "Allergy-safe meals at day care",
            "description_ja": "保育園が給食の献立からアレルゲンを除くため、学校に登録された食物アレルギー情報を受け取ります。",
            "description_en": "The day-care centre receives the food allergy record kept by the school so that its kitchen removes allergens from meals.",
            "provider": school_id, "items": ["allergy"], "uses": {"allergy": "献立からアレルゲンを除くため"},
            "retention_days": 365, "legal_basis": "consent"
        }],
        "security": {"iso27001": true, "incident_contact": "soc@daycare.example.jp", "subcontractors": []},
    })).await;
    // A certificate that is not one: refused with the field named.
    let (status, bad) = http
        .post(
            "/v1/services",
            &json!({"name": "x", "organization": "x", "contact": "x@example.jp", "kind": "consumer",
                "jwks": serde_json::from_str::<Value>(&ok(run_tsunagu(d, &["connector", "keygen", "--out", "x.pem"], &[]))).unwrap(),
                "redirect_uris": ["https://x.example/cb"],
                "tls_client_certificate": "-----BEGIN CERTIFICATE-----\nbm90\n-----END CERTIFICATE-----\n"}),
            None,
        )
        .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("application_invalid")),
        "{bad}"
    );
    assert!(
        bad["detail"]
            .as_str()
            .unwrap()
            .contains("tls_client_certificate"),
        "{bad}"
    );

    let daycare_key_jwt = Device::from_pem(&d.join("daycare.pem"));
    let registration_url = format!("{platform_url}/v1/services/{daycare_id}/registration");
    let register = |over: &Http, body: Value| {
        let request = over
            .client()
            .put(&registration_url)
            .bearer_auth(daycare_key_jwt.assertion(&daycare_id, &platform_url))
            .json(&body);
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // Without the certificate on the connection: no proof of possession.
    let (status, no_proof) = register(&http, json!({"tls_client_certificate": daycare_x5t})).await;
    assert_eq!(
        (status, no_proof["code"].as_str()),
        (400, Some("application_invalid")),
        "{no_proof}"
    );
    // Whoever holds the school's certificate cannot give it to a second service.
    let school_x5t = x5t_of(&printed, "school");
    let (status, taken) = register(&as_school, json!({"tls_client_certificate": school_x5t})).await;
    assert_eq!(
        (status, taken["code"].as_str()),
        (400, Some("application_invalid")),
        "{taken}"
    );
    assert!(
        taken["detail"]
            .as_str()
            .unwrap()
            .contains("another service"),
        "{taken}"
    );
    let (status, registered) =
        register(&as_daycare, json!({"tls_client_certificate": daycare_x5t})).await;
    assert_eq!(status, 200, "{registered}");
    assert_eq!(registered["changed"], json!(["tls_client_certificate"]));
    assert_eq!(
        registered["tls_client_certificate_sha256"],
        daycare_x5t.as_str()
    );

    committee.approve(&http, &school_id).await;
    committee.approve(&http, &daycare_id).await;

    // ---- a resident consents
    let device = Device::new();
    let enrolled = enroll_device(&http, &device, Some(&card)).await;
    let challenge = http.nonce("/v1/auth/challenge").await;
    let (status, login) = http
        .post(
            "/v1/auth/login",
            &json!({"credential": enrolled["credential"], "nonce": challenge, "signature": device.sign(challenge.as_bytes())}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let token = login["access_token"].as_str().unwrap().to_owned();
    let (_, offers) = http.get("/v1/me/offers", Some(&token)).await;
    let offer = offers["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["purpose_id"] == "allergy-to-daycare")
        .unwrap()
        .clone();
    let payload = json!({
        "v": 1, "purpose_id": "allergy-to-daycare", "consumer": daycare_id, "provider": school_id,
        "items": ["allergy"], "expires_at": now() + 86_400, "terms_sha256": offer["terms_sha256"],
        "issued_at": now(), "nonce": nonce(),
    });
    let (status, granted) = http
        .post(
            "/v1/me/consents",
            &json!({"consent_jws": device.resident_jws(&payload)}),
            Some(&token),
        )
        .await;
    assert_eq!(status, 201, "{granted}");
    let (_, pairwise) = http
        .get(&format!("/v1/me/pairwise/{daycare_id}"), Some(&token))
        .await;
    let subject = pairwise["subject"].as_str().unwrap().to_owned();
    let request =
        json!({"subject": subject, "purpose_id": "allergy-to-daycare", "items": ["allergy"]});

    // ---- the platform authenticates the day care by its certificate alone
    let (status, nobody) = http.post("/v1/exchange/tickets", &request, None).await;
    assert_eq!(
        (status, nobody["code"].as_str()),
        (401, Some("unauthorized")),
        "{nobody}"
    );
    let (status, unregistered) = as_clinic.post("/v1/exchange/tickets", &request, None).await;
    assert_eq!(
        (status, unregistered["code"].as_str()),
        (401, Some("unauthorized")),
        "a certificate of the CA that no service registered: {unregistered}"
    );
    // A credential in the header is judged by itself, never passed over for the certificate.
    let (status, bad_bearer) = as_daycare
        .post("/v1/exchange/tickets", &request, Some("not-an-assertion"))
        .await;
    assert_eq!(
        (status, bad_bearer["code"].as_str()),
        (401, Some("unauthorized")),
        "{bad_bearer}"
    );
    // Its own registration and secret change only with an assertion, not the certificate
    // alone (which a browser would send with any cross-site request).
    let put = as_daycare
        .client()
        .put(&registration_url)
        .json(&json!({"endpoint": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 401);
    assert!(
        as_stranger
            .client()
            .post(format!("{platform_url}/v1/exchange/tickets"))
            .json(&request)
            .send()
            .await
            .is_err(),
        "a certificate from another CA ends the handshake"
    );
    let (status, grant) = as_daycare
        .post("/v1/exchange/tickets", &request, None)
        .await;
    assert_eq!(status, 201, "{grant}");
    let ticket = grant["ticket"].as_str().unwrap().to_owned();
    let cnf = &claims(&ticket)["cnf"];
    assert_eq!(
        cnf,
        &json!({"x5t#S256": daycare_x5t}),
        "bound to the certificate"
    );
    // Client assertions keep working on the same listener; their tickets are key-bound.
    let (status, by_assertion) = http
        .post(
            "/v1/exchange/tickets",
            &request,
            Some(&daycare_key_jwt.assertion(&daycare_id, &platform_url)),
        )
        .await;
    assert_eq!(status, 201, "{by_assertion}");
    assert!(claims(by_assertion["ticket"].as_str().unwrap())["cnf"]["jkt"].is_string());

    // ---- the provider's sidecar serves TLS and asks consumers for their certificate; it
    // reaches the platform with its own certificate
    let upstream_port = upstream().await;
    std::fs::write(d.join("school.toml"), format!(
        "role = \"provider\"\nservice_id = \"{school_id}\"\nplatform_url = \"{platform_url}\"\nca_file = \"tls/ca.pem\"\nkey_file = \"school.pem\"\nbind = \"127.0.0.1:{provider_port}\"\ntls_client_cert = \"tls/client-school.pem\"\ntls_client_key = \"tls/client-school-key.pem\"\n[provider]\nendpoint = \"{endpoint}\"\nupstream = \"http://127.0.0.1:{upstream_port}/items\"\nencrypt = false\ntls_cert = \"tls/server.pem\"\ntls_key = \"tls/server-key.pem\"\nclient_ca = \"tls/ca.pem\"\n"
    )).unwrap();
    let _provider = Process::start_listening(
        d,
        &["connector", "--config", "school.toml"],
        provider_port,
        "school.log",
    );
    let redeem = |client: &Http, ticket: &str| {
        let request = client
            .client()
            .post(&endpoint)
            .header("authorization", format!("Bearer {ticket}"))
            .json(&json!({}));
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // Without the certificate the ticket is bound to, it is refused (and not used up).
    let (status, refused) = redeem(&http, &ticket).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (401, Some("proof_invalid")),
        "{refused}"
    );
    let as_school = Http::tls(
        &platform_url,
        &ca,
        Some((&cert("school").0, &cert("school").1)),
    );
    let (status, refused) = redeem(&as_school, &ticket).await;
    assert_eq!(
        refused["code"], "proof_invalid",
        "another service's certificate: {status}"
    );
    let (status, redeemed) = redeem(&as_daycare, &ticket).await;
    assert_eq!(status, 200, "{redeemed}");
    let payload = redeemed["payload"].as_str().unwrap();
    assert_eq!(claims(payload)["items"], json!({"allergy": ALLERGY}));
    let (status, again) = redeem(&as_daycare, &ticket).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("replayed")),
        "{again}"
    );
    // A certificate-bound ticket is presented as Bearer, not as DPoP.
    let (status, grant2) = as_daycare
        .post("/v1/exchange/tickets", &request, None)
        .await;
    assert_eq!(status, 201, "{grant2}");
    let as_dpop = as_daycare
        .client()
        .post(&endpoint)
        .header(
            "authorization",
            format!("DPoP {}", grant2["ticket"].as_str().unwrap()),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(as_dpop.status().as_u16(), 401);
    // A key-bound ticket still needs its DPoP proof.
    let (status, refused) = redeem(&as_daycare, by_assertion["ticket"].as_str().unwrap()).await;
    assert_eq!(refused["code"], "ticket_invalid", "{status} {refused}");

    // ---- the consumer's sidecar on mutual TLS: no assertion signed, data verified, receipts
    let consumer_port = free_port();
    std::fs::write(d.join("daycare.toml"), format!(
        "role = \"consumer\"\nservice_id = \"{daycare_id}\"\nplatform_url = \"{platform_url}\"\nca_file = \"tls/ca.pem\"\nkey_file = \"daycare.pem\"\nbind = \"127.0.0.1:{consumer_port}\"\ntls_client_cert = \"tls/client-daycare.pem\"\ntls_client_key = \"tls/client-daycare-key.pem\"\n"
    )).unwrap();
    let _consumer = Process::start(
        d,
        &["connector", "--config", "daycare.toml"],
        consumer_port,
        "daycare.log",
    );
    let consumer = Http::new(&format!("http://127.0.0.1:{consumer_port}"));
    let (status, fetched) = consumer.post("/fetch", &request, None).await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched["data"], json!({"allergy": ALLERGY}));
    let ticket_id = fetched["ticket_id"].as_str().unwrap().to_owned();
    // Both receipts arrive (the provider's over its own certificate): the exchange closes.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, history) = http.get("/v1/me/history?limit=200", Some(&token)).await;
        let completed = history["items"].as_array().unwrap().iter().any(|i| {
            i["type"] == "exchange.completed" && i["details"]["ticket_id"] == ticket_id.as_str()
        });
        if completed {
            break;
        }
        assert!(Instant::now() < deadline, "receipts not matched: {history}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // ---- withdrawing the certificate: from then on it authenticates nobody (every replica
    // within the directory cache's 2 s)
    let (status, withdrawn) = register(&http, json!({"tls_client_certificate": ""})).await;
    assert_eq!(status, 200, "{withdrawn}");
    assert_eq!(withdrawn["tls_client_certificate_sha256"], Value::Null);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, answer) = as_daycare
            .post("/v1/exchange/tickets", &request, None)
            .await;
        if status == 401 {
            assert_eq!(answer["code"], "unauthorized");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still authenticated: {status} {answer}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // ---- RFC 8705 tls_client_auth at the token endpoint: a relying party registered for it
    // redeems a code with `client_id` and its certificate, nothing else
    let (portal_cert, portal_key) = cert("portal");
    let portal_key_jwk = Device::new();
    let redirect = "https://portal.example.jp/cb";
    // Applied over a connection made with the certificate (proof of possession).
    let portal_http = Http::tls(&platform_url, &ca, Some((&portal_cert, &portal_key)));
    let portal = committee
        .admit(
            &portal_http,
            &json!({
                "name": "まえばしポータル", "organization": "前橋市", "contact": "portal@example.jp",
                "kind": "consumer", "jwks": {"keys": [portal_key_jwk.jwk()]},
                "redirect_uris": [redirect],
                "token_endpoint_auth_method": "tls_client_auth",
                "tls_client_certificate": std::fs::read_to_string(&portal_cert).unwrap(),
                "purposes": [{"id": "login", "title_ja": "会員登録", "title_en": "Membership",
                    "description_ja": "会員証の発行のため、氏名を受け取ります。",
                    "description_en": "We receive your name to issue your membership card.",
                    "provider": "tsunagu", "items": ["name"], "uses": {"name": "会員証に印字するため"},
                    "retention_days": 365, "legal_basis": "consent"}],
                "security": {"iso27001": true, "incident_contact": "soc@example.jp", "subcontractors": []}
            }),
        )
        .await;
    // A provisional resident logs in on the web form and is sent back with a code at once.
    let device = Device::new();
    let enrolled = enroll_device(&http, &device, None).await;
    let mut browser = Browser::new(&platform_url, "en");
    browser.client = reqwest::Client::builder()
        .tls_certs_merge(
            reqwest::Certificate::from_pem_bundle(&std::fs::read(&ca).unwrap()).unwrap(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let nonce = http.nonce("/v1/auth/challenge").await;
    let logged_in = browser
        .post(
            "/login",
            &[
                ("credential", enrolled["credential"].as_str().unwrap()),
                ("nonce", &nonce),
                ("signature", &device.sign(nonce.as_bytes())),
            ],
        )
        .await;
    assert_eq!(logged_in.status, 303, "{}", logged_in.body);
    let verifier = "a-code-verifier-of-at-least-43-characters-0123456789";
    let challenge = B64URL.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let authorize = format!(
        "/oauth2/authorize?response_type=code&client_id={portal}&redirect_uri={}&scope=openid&state=s1&nonce=n1&code_challenge={challenge}&code_challenge_method=S256",
        form_encode(&[("", redirect)]).trim_start_matches('=')
    );
    let authorized = browser.get(&authorize).await;
    let location = authorized.location.clone().unwrap_or_default();
    assert!(location.starts_with(redirect), "{authorized:?}");
    let code_value = location
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("code="))
        .expect("a code")
        .to_owned();
    let grant = |code: &str| {
        form_encode(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
            ("client_id", &portal),
        ])
    };
    let token_request = |client: &reqwest::Client, body: String| {
        client
            .post(format!("{platform_url}/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    // Without the certificate, or with another service's: refused, the code unspent.
    let plain = https_client(&ca, None);
    let refused = token_request(&plain, grant(&code_value)).await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client", "{body}");
    let other = https_client(&ca, Some((&cert("school").0, &cert("school").1)));
    let refused = token_request(&other, grant(&code_value)).await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    // With it: tokens.
    let as_portal = https_client(&ca, Some((&portal_cert, &portal_key)));
    let tokens = token_request(&as_portal, grant(&code_value)).await.unwrap();
    assert_eq!(tokens.status().as_u16(), 200);
    let tokens: Value = tokens.json().await.unwrap();
    assert_eq!(
        claims(tokens["id_token"].as_str().unwrap())["aud"],
        portal.as_str()
    );
    let (_, discovery) = http.get("/.well-known/openid-configuration", None).await;
    assert!(
        discovery["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("tls_client_auth")),
        "{discovery}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_on_mutual_tls_on_sqlite() {
    scenario("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_on_mutual_tls_on_postgres() {
    if std::env::var("TSUNAGU_TEST_DATABASE_URL").is_err() {
        println!("NOTICE: TSUNAGU_TEST_DATABASE_URL not set; skipped");
        return;
    }
    scenario("postgres").await;
}
