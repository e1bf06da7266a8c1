//! The service console and the committee console end to end, driven over HTTP through the
//! real binary as a browser without JavaScript would: forms posted, cookies carried by hand,
//! every signature (sign-in assertions, votes) made by this test with its own keys.
//!
//! A service applies through `/console/apply`; two committee members sign in at
//! `/committee/login` and vote through `/committee/votes` until the service is approved; the
//! service signs in to `/console`, changes its redirect URIs (visible at
//! `GET /v1/services/{id}` and in the ledger) and rotates its client secret (the old one stops
//! working at the token endpoint). Forged and confused cookies, missing CSRF tokens and
//! foreign origins are refused; the registration API refuses another service's assertion;
//! the committee sees a legal-basis rule use with who asked and why.

mod common;

use base64::Engine;
use common::*;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// A browser without JavaScript: no redirects followed, cookies given per request.
struct Browser {
    client: reqwest::Client,
    base: String,
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    /// The value a `Set-Cookie` header gives `name` (empty when it deletes it).
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                let first = v.split(';').next()?;
                let (k, value) = first.split_once('=')?;
                (k.trim() == name).then(|| value.to_owned())
            })
    }

    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the first `name="…" value="…"` input.
    fn input(&self, name: &str) -> String {
        hidden(&self.body, name)
    }

    /// The text of the element with `id` (up to its first `<`).
    fn text_of(&self, id: &str) -> String {
        let marker = format!("id=\"{id}\"");
        let at = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no #{id} in {}", self.body));
        let rest = &self.body[at..];
        let open = rest.find('>').unwrap() + 1;
        rest[open..open + rest[open..].find('<').unwrap()].to_owned()
    }

    fn has(&self, needle: &str) -> bool {
        self.body.contains(needle)
    }
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            client: no_redirect_client(),
            base: base.to_owned(),
        }
    }

    async fn page(resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    fn cookie_header(cookies: &[(&str, &str)]) -> String {
        cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&self, path: &str, cookies: &[(&str, &str)]) -> Page {
        let mut r = self.client.get(format!("{}{path}", self.base));
        if !cookies.is_empty() {
            r = r.header("cookie", Self::cookie_header(cookies));
        }
        Self::page(r.send().await.unwrap()).await
    }

    /// Posts a form from this origin (`Origin` as a browser sends it) or from `origin`.
    async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        cookies: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Page {
        let mut r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", origin.unwrap_or(&self.base))
            .body(form_encode(fields));
        if !cookies.is_empty() {
            r = r.header("cookie", Self::cookie_header(cookies));
        }
        Self::page(r.send().await.unwrap()).await
    }
}

/// A JSON call with a bearer token (any method), keeping the status.
async fn api(
    base: &str,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut r = client
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .bearer_auth(bearer);
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `PUT /v1/services/{service}/registration`, authenticated by `assertion`.
async fn put_registration(
    base: &str,
    service: &str,
    assertion: &str,
    body: &Value,
) -> (u16, Value) {
    let path = format!("/v1/services/{service}/registration");
    api(base, "PUT", &path, assertion, Some(body)).await
}

/// `POST /v1/services/{service}/client_secret`, authenticated by `assertion`.
async fn new_client_secret(base: &str, service: &str, assertion: &str) -> (u16, Value) {
    let path = format!("/v1/services/{service}/client_secret");
    api(base, "POST", &path, assertion, None).await
}

/// A sign-in assertion of a committee member: header `kid` = the member id.
fn member_assertion(key: &Device, member: &str, audience: &str) -> String {
    key.jws(
        json!({"typ": "JWT", "kid": member}),
        &json!({"iss": member, "sub": member, "aud": audience, "jti": nonce(), "iat": now(), "exp": now() + 120}),
    )
}

/// Signs a committee member in and returns the cookie's value.
async fn committee_login(web: &Browser, key: &Device, member: &str) -> String {
    let audience = format!("{}/committee", web.base);
    let signed_in = web
        .post(
            "/committee/login",
            &[
                ("member_id", member),
                ("assertion", &member_assertion(key, member, &audience)),
            ],
            &[],
            None,
        )
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.location(), "/committee");
    signed_in.cookie("tsunagu_committee").unwrap()
}

/// `POST /committee/votes` with `[csrf, service_id, vote_jws, decision]` (an empty one is
/// left out of the form), from this origin or `origin`.
async fn post_vote(
    web: &Browser,
    cookies: &[(&str, &str)],
    [csrf, service_id, vote_jws, decision]: [&str; 4],
    origin: Option<&str>,
) -> Page {
    let fields: Vec<(&str, &str)> = [
        ("csrf", csrf),
        ("service_id", service_id),
        ("vote_jws", vote_jws),
        ("decision", decision),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect();
    web.post("/committee/votes", &fields, cookies, origin).await
}

#[tokio::test(flavor = "multi_thread")]
async fn service_and_committee_consoles() {
    let Scenario {
        root,
        card,
        dir: _dir,
        ..
    } = Scenario::new();
    let members = [("m1", Device::new()), ("m2", Device::new())];
    let port = free_port();
    let config = format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\n[storage]\ndata_dir = \"./data\"\n[identity]\njpki_trust_anchors = [\"ca/ca.pem\"]\njpki_crls = [\"ca/ca.crl\"]\n[ledger]\nsth_interval_seconds = 1\npublic_entries = true\n[governance]\nquorum = 2\nmembers = [{}]\n",
        members_toml(&members)
    );
    let server = Server::start(&root, &config, port);
    let base = server.url.clone();
    let web = Browser::new(&base);
    let http = Http::new(&base);

    // ---- a service applies through the console's form
    let form_page = web.get("/console/apply", &[]).await;
    assert_eq!(form_page.status, 200);
    assert!(form_page.has("id=\"apply-form\""));
    assert!(
        form_page
            .body
            .replace("&#34;", "\"")
            .replace("&quot;", "\"")
            .contains("\"provider\": \"tsunagu\""),
        "the purposes are prefilled with an identity purpose"
    );
    let jwks: Value =
        serde_json::from_str(&tsunagu(&root, &["connector", "keygen", "--out", "rp.pem"])).unwrap();
    let rp_key = Device::from_pem(&root.join("rp.pem"));
    let purposes = json!([{
        "id": "delivery", "title_ja": "配送先の確認", "title_en": "Delivery address",
        "description_ja": "申し込んだ品物を自宅へ届けるため、氏名と住所を受け取ります。",
        "description_en": "We receive the name and address to deliver the order to the resident's home.",
        "provider": "tsunagu", "items": ["name", "address"],
        "uses": {"name": "配送伝票の宛名のため", "address": "品物を自宅へ届けるため"},
        "retention_days": 90, "legal_basis": "consent"
    }])
    .to_string();
    let jwks_text = jwks.to_string();
    let apply_fields = |jwks: &'_ str| -> Vec<(&'static str, String)> {
        vec![
            ("name", "まちの配送".into()),
            ("organization", "株式会社つなぐ配送".into()),
            ("contact", "ops@delivery.example.jp".into()),
            ("kind", "consumer".into()),
            ("endpoint", "".into()),
            ("redirect_uris", "https://rp.example.jp/callback".into()),
            ("post_logout_redirect_uris", "".into()),
            ("token_endpoint_auth_method", "client_secret_basic".into()),
            ("jwks", jwks.into()),
            ("offers", "".into()),
            ("purposes", purposes.clone()),
            ("iso27001", "on".into()),
            ("incident_contact", "soc@delivery.example.jp".into()),
            ("subcontractors", "".into()),
        ]
    };
    let post_apply = |fields: Vec<(&'static str, String)>| {
        let web = &web;
        async move {
            let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            web.post("/console/apply", &refs, &[], None).await
        }
    };
    // A JWKS that is not JSON: refused, the form comes back with what was typed.
    let bad = post_apply(apply_fields("{not json")).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.has("id=\"apply-error\"") && bad.has("jwks: not valid JSON"));
    assert!(bad.has("value=\"まちの配送\""), "the form keeps the values");
    let applied = post_apply(apply_fields(&jwks_text)).await;
    assert_eq!(applied.status, 201, "{}", applied.body);
    let service_id = applied.text_of("applied-service-id");
    assert!(service_id.starts_with("svc_"), "{service_id}");
    assert!(applied.has("data-status=\"pending_review\""));
    assert!(
        applied.has("data-code=\"obligations_not_accepted\""),
        "no signed acceptance of the obligations: the review warns"
    );
    let first_secret = applied.text_of("client-secret");
    assert!(first_secret.len() >= 32, "the client secret is shown once");
    let (_, listed) = http.get(&format!("/v1/services/{service_id}"), None).await;
    assert_eq!(listed["status"], "pending_review");
    assert_eq!(
        listed["redirect_uris"],
        json!(["https://rp.example.jp/callback"])
    );

    // ---- committee sign-in: the member's key signs an assertion for /committee
    let (m1, m1_key) = (&members[0].0, &members[0].1);
    let (m2, m2_key) = (&members[1].0, &members[1].1);
    let committee_aud = format!("{base}/committee");
    let page = web.get("/committee", &[]).await;
    assert_eq!((page.status, page.location()), (303, "/committee/login"));
    let login_page = web.get("/committee/login", &[]).await;
    assert!(login_page.has("id=\"member-key-file\"") && login_page.has(&committee_aud));
    let assertion = member_assertion(m1_key, m1, &committee_aud);
    let first = web
        .post(
            "/committee/login",
            &[("member_id", m1), ("assertion", &assertion)],
            &[],
            None,
        )
        .await;
    assert_eq!(first.status, 303, "{}", first.body);
    let m1_cookie = first.cookie("tsunagu_committee").unwrap();
    let replayed = web
        .post(
            "/committee/login",
            &[("member_id", m1), ("assertion", &assertion)],
            &[],
            None,
        )
        .await;
    assert_eq!(replayed.status, 401, "an assertion signs in once");
    assert!(replayed.has("jti was already used"));
    for (why, assertion) in [
        ("another audience", member_assertion(m1_key, m1, &base)),
        (
            "another member's key",
            member_assertion(m2_key, m1, &committee_aud),
        ),
        (
            "not a member",
            member_assertion(&Device::new(), "m9", &committee_aud),
        ),
    ] {
        let refused = web
            .post("/committee/login", &[("assertion", &assertion)], &[], None)
            .await;
        assert_eq!(refused.status, 401, "{why}: {}", refused.body);
        assert!(refused.cookie("tsunagu_committee").is_none(), "{why}");
    }

    // ---- the pending application, its lint findings, purposes and items
    let cookies = [("tsunagu_committee", m1_cookie.as_str())];
    let console = web.get("/committee", &cookies).await;
    assert_eq!(console.status, 200, "{}", console.body);
    assert!(console.has(&format!("id=\"service-{service_id}\" data-service-id=\"{service_id}\" data-status=\"pending_review\"")));
    assert!(console.has("data-purpose-id=\"delivery\"") && console.has("data-item=\"address\""));
    assert!(console.has(&format!("id=\"vote-approve-{service_id}\"")));
    assert!(console.has(&format!("id=\"vote-reject-{service_id}\"")));
    let csrf = console.input("csrf");

    // ---- votes: refused without CSRF, from elsewhere, signed by another member
    let m1_vote = vote_jws(m1_key, m1, &service_id, "approve");
    let no_csrf = post_vote(&web, &cookies, ["", &service_id, &m1_vote, ""], None).await;
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.body);
    let elsewhere = post_vote(
        &web,
        &cookies,
        [&csrf, &service_id, &m1_vote, ""],
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(elsewhere.status, 403);
    let by_m2 = vote_jws(m2_key, m2, &service_id, "approve");
    let not_mine = post_vote(
        &web,
        &cookies,
        [&csrf, &service_id, &by_m2, "approve"],
        None,
    )
    .await;
    assert_eq!(not_mine.status, 403, "{}", not_mine.body);
    let mismatch = post_vote(
        &web,
        &cookies,
        [&csrf, &service_id, &m1_vote, "reject"],
        None,
    )
    .await;
    assert_eq!(
        mismatch.status, 400,
        "the signed decision is the one pressed"
    );
    let (_, still) = http.get(&format!("/v1/services/{service_id}"), None).await;
    assert_eq!(still["status"], "pending_review", "no refused vote counted");

    // ---- m1 votes: recorded, quorum not reached
    let voted = post_vote(
        &web,
        &cookies,
        [&csrf, &service_id, &m1_vote, "approve"],
        None,
    )
    .await;
    assert_eq!(voted.status, 200, "{}", voted.body);
    assert!(voted.has("data-decided=\"false\""));
    assert_eq!(voted.text_of("vote-quorum"), "1 / 2");
    assert!(voted.has("data-member=\"m1\" data-decision=\"approve\""));
    // The same signed vote again: its nonce was used.
    let again = post_vote(&web, &cookies, [&csrf, &service_id, &m1_vote, ""], None).await;
    assert_eq!(again.status, 403, "{}", again.body);
    assert!(again.has("nonce_invalid"));

    // ---- m2 signs in and votes: approved
    let m2_cookie = committee_login(&web, m2_key, m2).await;
    let m2_cookies = [("tsunagu_committee", m2_cookie.as_str())];
    let m2_page = web.get("/committee", &m2_cookies).await;
    assert!(
        m2_page.has("1 / 2") && !m2_page.has("data-my-vote"),
        "m1's vote is shown, m2 has not voted"
    );
    let m2_csrf = m2_page.input("csrf");
    assert_ne!(m2_csrf, csrf, "the CSRF token belongs to the session");
    let decided = post_vote(
        &web,
        &m2_cookies,
        [&m2_csrf, &service_id, &by_m2, "approve"],
        None,
    )
    .await;
    assert_eq!(decided.status, 200, "{}", decided.body);
    assert!(decided.has("data-decided=\"true\""));
    assert!(
        decided.has("id=\"vote-result\" data-service-id=\"")
            && decided.has("data-status=\"approved\"")
    );
    let (_, approved) = http.get(&format!("/v1/services/{service_id}"), None).await;
    assert_eq!(approved["status"], "approved");
    let after = web.get("/committee", &m2_cookies).await;
    assert!(after.has(&format!(
        "data-service-id=\"{service_id}\" data-status=\"approved\""
    )));
    assert!(
        after.has(&format!("id=\"vote-suspend-{service_id}\"")),
        "approved services can be suspended"
    );

    // ---- the service signs in to its console
    let console_aud = format!("{base}/console");
    let page = web.get("/console", &[]).await;
    assert_eq!((page.status, page.location()), (303, "/console/login"));
    let login_page = web
        .get(&format!("/console/login?service_id={service_id}"), &[])
        .await;
    assert!(login_page.has("id=\"service-key-file\"") && login_page.has(&console_aud));
    let assertion = rp_key.assertion(&service_id, &console_aud);
    let signed_in = web
        .post(
            "/console/login",
            &[("service_id", &service_id), ("assertion", &assertion)],
            &[],
            None,
        )
        .await;
    assert_eq!(
        (signed_in.status, signed_in.location()),
        (303, "/console"),
        "{}",
        signed_in.body
    );
    let console_cookie = signed_in.cookie("tsunagu_console").unwrap();
    let replay = web
        .post(
            "/console/login",
            &[("service_id", &service_id), ("assertion", &assertion)],
            &[],
            None,
        )
        .await;
    assert_eq!(replay.status, 401);
    for (why, assertion) in [
        (
            "the platform's audience, not the console's",
            rp_key.assertion(&service_id, &base),
        ),
        (
            "a key the service did not register",
            Device::new().assertion(&service_id, &console_aud),
        ),
    ] {
        let refused = web
            .post(
                "/console/login",
                &[("service_id", &service_id), ("assertion", &assertion)],
                &[],
                None,
            )
            .await;
        assert_eq!(refused.status, 401, "{why}: {}", refused.body);
        assert!(refused.cookie("tsunagu_console").is_none());
    }
    let cookies = [("tsunagu_console", console_cookie.as_str())];
    let home = web.get("/console", &cookies).await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.has(&format!(
        "id=\"console-service\" data-service-id=\"{service_id}\" data-status=\"approved\""
    )));
    assert_eq!(home.text_of("console-auth-method"), "client_secret_basic");
    let kid = jwks["keys"][0]["kid"].as_str().unwrap();
    assert!(
        home.has(&format!("data-kid=\"{kid}\"")),
        "the registered key is listed"
    );
    assert!(home.has("https://rp.example.jp/callback"));
    assert_eq!(home.text_of("console-active-grants"), "0");
    let csrf = home.input("csrf");

    // ---- refusals: forged and confused cookies, no CSRF, a foreign origin
    let forged = Device::new().jws(
        json!({"typ": "console+jwt", "kid": "whatever"}),
        &json!({"iss": base, "service_id": service_id, "iat": now(), "exp": now() + 3600}),
    );
    let parts: Vec<&str> = console_cookie.split('.').collect();
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(
            json!({"iss": base, "service_id": "svc_other", "iat": now(), "exp": now() + 3600})
                .to_string()
        ),
        parts[2]
    );
    let expired_shape = Device::new().jws(
        json!({"typ": "console+jwt"}),
        &json!({"iss": base, "service_id": service_id, "iat": now() - 40_000, "exp": now() - 10_000}),
    );
    for (why, cookie) in [
        ("signed by someone else", forged.as_str()),
        (
            "payload changed under the platform's signature",
            swapped.as_str(),
        ),
        ("expired and not the platform's", expired_shape.as_str()),
        ("a committee cookie", m1_cookie.as_str()),
    ] {
        let page = web.get("/console", &[("tsunagu_console", cookie)]).await;
        assert_eq!(
            (page.status, page.location()),
            (303, "/console/login"),
            "{why}"
        );
        let post = web
            .post(
                "/console/registration",
                &[
                    ("csrf", &csrf),
                    ("redirect_uris", "https://evil.example/cb"),
                ],
                &[("tsunagu_console", cookie)],
                None,
            )
            .await;
        assert_eq!(post.status, 401, "{why}: {}", post.body);
    }
    let no_csrf = web
        .post(
            "/console/registration",
            &[("redirect_uris", "https://evil.example/cb")],
            &cookies,
            None,
        )
        .await;
    assert_eq!(no_csrf.status, 403);
    let wrong_csrf = web
        .post(
            "/console/registration",
            &[
                ("csrf", &m2_csrf),
                ("redirect_uris", "https://evil.example/cb"),
            ],
            &cookies,
            None,
        )
        .await;
    assert_eq!(wrong_csrf.status, 403, "another session's token");
    let foreign = web
        .post(
            "/console/registration",
            &[
                ("csrf", &csrf),
                ("redirect_uris", "https://evil.example/cb"),
            ],
            &cookies,
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(foreign.status, 403);
    let (_, unchanged) = http.get(&format!("/v1/services/{service_id}"), None).await;
    assert_eq!(
        unchanged["redirect_uris"],
        json!(["https://rp.example.jp/callback"])
    );

    // ---- registration update through the console
    let bad_uri = web
        .post(
            "/console/registration",
            &[
                ("csrf", &csrf),
                ("jwks", &jwks_text),
                ("redirect_uris", "https://rp.example.jp/cb#frag"),
            ],
            &cookies,
            None,
        )
        .await;
    assert_eq!(bad_uri.status, 400, "{}", bad_uri.body);
    assert!(bad_uri.has("id=\"console-error\"") && bad_uri.has("application_invalid"));
    let private = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": jwks["keys"][0]["x"], "y": jwks["keys"][0]["y"], "d": "AAAA"}]}).to_string();
    let with_private = web
        .post(
            "/console/registration",
            &[("csrf", &csrf), ("jwks", &private)],
            &cookies,
            None,
        )
        .await;
    assert_eq!(with_private.status, 400, "a private key member is refused");
    let updated = web
        .post(
            "/console/registration",
            &[
                ("csrf", &csrf),
                ("jwks", &jwks_text),
                (
                    "redirect_uris",
                    "https://rp.example.jp/callback\r\nhttps://rp.example.jp/callback2\r\n",
                ),
                ("post_logout_redirect_uris", "https://rp.example.jp/bye"),
                ("endpoint", ""),
            ],
            &cookies,
            None,
        )
        .await;
    assert_eq!(
        (updated.status, updated.location()),
        (303, "/console?done=registration"),
        "{}",
        updated.body
    );
    let (_, now_registered) = http.get(&format!("/v1/services/{service_id}"), None).await;
    assert_eq!(
        now_registered["redirect_uris"],
        json!([
            "https://rp.example.jp/callback",
            "https://rp.example.jp/callback2"
        ])
    );
    assert_eq!(
        now_registered["status"], "approved",
        "no new review for keys and URIs"
    );
    let shown = web.get("/console?done=registration", &cookies).await;
    assert!(shown.has("id=\"console-notice\"") && shown.has("https://rp.example.jp/callback2"));
    let change = ledger_events(&http)
        .await
        .into_iter()
        .find(|e| {
            e["type"] == "service.registration_changed" && e["service"] == service_id.as_str()
        })
        .expect("the change is a ledger leaf");
    assert_eq!(
        change["fields"],
        json!(["redirect_uris", "post_logout_redirect_uris"])
    );
    assert_eq!(change["jwks_sha256"].as_str().unwrap().len(), 64);
    let same = web
        .post(
            "/console/registration",
            &[
                ("csrf", &csrf),
                ("jwks", &jwks_text),
                (
                    "redirect_uris",
                    "https://rp.example.jp/callback\nhttps://rp.example.jp/callback2",
                ),
                ("post_logout_redirect_uris", "https://rp.example.jp/bye"),
                ("endpoint", ""),
            ],
            &cookies,
            None,
        )
        .await;
    assert_eq!(same.location(), "/console?done=unchanged");

    // ---- client secret rotation: the new secret works at the token endpoint, the old does not
    let token_with = |secret: String| {
        let base = base.clone();
        let service_id = service_id.clone();
        async move {
            let resp = reqwest::Client::new()
                .post(format!("{base}/oauth2/token"))
                .basic_auth(&service_id, Some(secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_encode(&[
                    ("grant_type", "authorization_code"),
                    ("code", "no-such-code"),
                    ("redirect_uri", "https://rp.example.jp/callback"),
                    (
                        "code_verifier",
                        "a-verifier-that-is-long-enough-to-pass-the-length-check-1234",
                    ),
                ]))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body["error"].as_str().unwrap_or("").to_owned())
        }
    };
    // With the right secret the client is authenticated, and only the code is wrong.
    assert_eq!(
        token_with(first_secret.clone()).await,
        (400, "invalid_grant".to_owned())
    );
    let rotated = web
        .post("/console/client_secret", &[("csrf", &csrf)], &cookies, None)
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let second_secret = rotated.text_of("client-secret");
    assert_ne!(second_secret, first_secret);
    assert_eq!(
        token_with(first_secret.clone()).await,
        (401, "invalid_client".to_owned())
    );
    assert_eq!(
        token_with(second_secret.clone()).await,
        (400, "invalid_grant".to_owned())
    );
    let no_csrf = web
        .post("/console/client_secret", &[], &cookies, None)
        .await;
    assert_eq!(no_csrf.status, 403);

    // ---- the API: another service's assertion is refused; its own is accepted
    let other_jwks: Value = serde_json::from_str(&tsunagu(
        &root,
        &["connector", "keygen", "--out", "other.pem"],
    ))
    .unwrap();
    let other_key = Device::from_pem(&root.join("other.pem"));
    let (status, other) = http
        .post(
            "/v1/services",
            &json!({
                "name": "別のサービス", "organization": "別の会社", "contact": "x@example.jp", "kind": "consumer",
                "jwks": other_jwks, "redirect_uris": ["https://other.example.jp/cb"],
                "security": {"iso27001": true, "incident_contact": "soc@other.example.jp"}
            }),
            None,
        )
        .await;
    assert_eq!(status, 201, "{other}");
    let other_id = other["service_id"].as_str().unwrap().to_owned();
    let hijack = json!({"redirect_uris": ["https://attacker.example/cb"]});
    let (status, refused) = put_registration(
        &base,
        &service_id,
        &other_key.assertion(&other_id, &base),
        &hijack,
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (403, Some("forbidden")),
        "{refused}"
    );
    let (status, refused) =
        new_client_secret(&base, &service_id, &other_key.assertion(&other_id, &base)).await;
    assert_eq!(status, 403, "{refused}");
    let (status, refused) = put_registration(
        &base,
        &service_id,
        &rp_key.assertion(&service_id, &console_aud),
        &hijack,
    )
    .await;
    assert_eq!(
        status, 401,
        "the console's audience is not the API's: {refused}"
    );
    let (_, kept) = http.get(&format!("/v1/services/{service_id}"), None).await;
    assert_eq!(kept["redirect_uris"][1], "https://rp.example.jp/callback2");
    let own = rp_key.assertion(&service_id, &base);
    let (status, answer) = put_registration(
        &base,
        &service_id,
        &own,
        &json!({"redirect_uris": ["https://rp.example.jp/callback3"]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changed"], json!(["redirect_uris"]));
    assert_eq!(
        answer["post_logout_redirect_uris"],
        json!(["https://rp.example.jp/bye"]),
        "absent fields stay"
    );
    let (status, _) = put_registration(&base, &service_id, &own, &json!({})).await;
    assert_eq!(status, 401, "an assertion is used once");
    let (status, answer) = put_registration(
        &base,
        &service_id,
        &rp_key.assertion(&service_id, &base),
        &json!({"jwks": {"keys": []}}),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("application_invalid")),
        "{answer}"
    );
    let (status, answer) =
        new_client_secret(&base, &service_id, &rp_key.assertion(&service_id, &base)).await;
    assert_eq!(status, 200, "{answer}");
    let third_secret = answer["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(token_with(second_secret).await.1, "invalid_client");
    assert_eq!(
        token_with(third_secret).await,
        (400, "invalid_grant".to_owned())
    );
    let (status, answer) =
        new_client_secret(&base, &other_id, &other_key.assertion(&other_id, &base)).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_request")),
        "private_key_jwt services have no secret"
    );

    // ---- a legal-basis rule use, seen by the committee with who asked and why
    let provider_jwks: Value = serde_json::from_str(&tsunagu(
        &root,
        &["connector", "keygen", "--out", "school.pem"],
    ))
    .unwrap();
    let (_, school) = http.post("/v1/services", &json!({
        "name": "中央小学校", "organization": "教育委員会", "contact": "school@example.jp", "kind": "provider",
        "jwks": provider_jwks, "endpoint": "http://127.0.0.1:9/redeem",
        "offers": [{"item": "allergy", "title_ja": "食物アレルギー", "data_class": "closed", "sensitive": true}],
        "security": {"iso27001": true, "incident_contact": "soc@school.example.jp"}
    }), None).await;
    let school_id = school["service_id"].as_str().unwrap().to_owned();
    let fire_jwks: Value = serde_json::from_str(&tsunagu(
        &root,
        &["connector", "keygen", "--out", "fire.pem"],
    ))
    .unwrap();
    let fire_key = Device::from_pem(&root.join("fire.pem"));
    let (_, fire) = http.post("/v1/services", &json!({
        "name": "消防局", "organization": "市消防局", "contact": "fire@example.jp", "kind": "consumer",
        "jwks": fire_jwks,
        "purposes": [{
            "id": "emergency-allergy", "title_ja": "救急時のアレルギー確認", "title_en": "Allergies in an emergency",
            "description_ja": "救急隊が搬送中の投薬で事故を起こさないよう、学校に登録された食物アレルギーを確認します。",
            "description_en": "Paramedics check the food allergies the school holds so that no medication given on the way harms the patient.",
            "provider": school_id, "items": ["allergy"], "uses": {"allergy": "搬送中の投薬を安全にするため"},
            "retention_days": 30, "legal_basis": "vital_interest",
            "citation": "個人情報保護法の例外規定(人の生命・身体の保護)に基づく市の救急連携規程"
        }],
        "security": {"iso27001": true, "incident_contact": "soc@fire.example.jp"}
    }), None).await;
    let fire_id = fire["service_id"].as_str().unwrap().to_owned();
    for id in [&school_id, &fire_id] {
        for (member, key) in &members {
            let (status, v) = http
                .post(
                    &format!("/v1/governance/services/{id}/votes"),
                    &json!({"vote_jws": vote_jws(key, member, id, "approve")}),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{v}");
        }
    }
    let device = Device::new();
    let challenge = http.nonce("/v1/enrollment/challenge").await;
    let signed = proof_bytes(&device.thumbprint(), &challenge);
    let (status, enrolled) = http.post("/v1/enrollment", &json!({
        "device_jwk": device.jwk(), "nonce": challenge,
        "proof": {"type": "jpki", "certificate_chain": [B64.encode(&card.der)],
                  "signed_data": B64.encode(&signed), "signature": B64.encode(card_sign(&card.key, &signed))}
    }), None).await;
    assert_eq!(status, 201, "{enrolled}");
    let login_nonce = http.nonce("/v1/auth/challenge").await;
    let (_, session) = http.post("/v1/auth/login", &json!({
        "credential": enrolled["credential"], "nonce": login_nonce, "signature": device.sign(login_nonce.as_bytes())
    }), None).await;
    let token = session["access_token"].as_str().unwrap();
    let (_, pairwise) = http
        .get(&format!("/v1/me/pairwise/{fire_id}"), Some(token))
        .await;
    let requester = "市消防局 中央消防署 救急隊長 E2E-3c1d";
    let reason = "搬送中の傷病者への投薬前の確認 E2E-91aa";
    let (status, ticket) = api(
        &base,
        "POST",
        "/v1/exchange/tickets",
        &fire_key.assertion(&fire_id, &base),
        Some(&json!({"subject": pairwise["subject"], "purpose_id": "emergency-allergy", "items": ["allergy"], "requester": requester, "reason": reason})),
    )
    .await;
    assert_eq!(status, 201, "{ticket}");
    let ticket_id = ticket["ticket_id"].as_str().unwrap();
    let oversight = web.get("/committee", &m2_cookies).await;
    assert!(
        oversight.has(&format!(
            "class=\"rule-use\" data-service-id=\"{fire_id}\" data-ticket-id=\"{ticket_id}\""
        )),
        "{}",
        oversight.body
    );
    assert!(oversight.has(requester) && oversight.has(reason));

    // ---- signing out ends the session on the server, and only from this site with the
    // page's token (defect 10: another site could clear the cookie, never the session)
    let out = web
        .post(
            "/console/logout",
            &[("csrf", &csrf)],
            &cookies,
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(out.status, 403, "a cross-site logout is refused");
    assert_eq!(out.cookie("tsunagu_console"), None);
    let out = web.post("/console/logout", &[], &cookies, None).await;
    assert_eq!(
        out.status, 403,
        "a logout without the csrf token is refused"
    );
    assert_eq!(
        web.get("/console", &cookies).await.status,
        200,
        "still signed in"
    );
    let out = web
        .post("/console/logout", &[("csrf", &csrf)], &cookies, None)
        .await;
    assert_eq!((out.status, out.location()), (303, "/console/login"));
    assert_eq!(out.cookie("tsunagu_console").as_deref(), Some(""));
    let replayed = web.get("/console", &cookies).await;
    assert_eq!(
        (replayed.status, replayed.location()),
        (303, "/console/login"),
        "a copy of the cookie is worthless after logout"
    );
    let out = web
        .post("/console/logout", &[("csrf", &csrf)], &cookies, None)
        .await;
    assert_eq!(out.status, 303, "signing out twice is harmless");
    let out = web
        .post(
            "/committee/logout",
            &[("csrf", &m2_csrf)],
            &m2_cookies,
            None,
        )
        .await;
    assert_eq!((out.status, out.location()), (303, "/committee/login"));
    assert_eq!(out.cookie("tsunagu_committee").as_deref(), Some(""));
    let replayed = web.get("/committee", &m2_cookies).await;
    assert_eq!(
        (replayed.status, replayed.location()),
        (303, "/committee/login"),
        "the committee session ended on the server"
    );
    drop(server);
}
