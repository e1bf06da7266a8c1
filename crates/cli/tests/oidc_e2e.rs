//! "Log in with tsunagu" end to end: the real binary, driven by an independent OpenID
//! Connect client library (the `openidconnect` crate, as a test client only) on one side and
//! by a resident's no-JavaScript client on the other (it reads the login and consent pages,
//! signs the login nonce and the consent payload with its device key, and posts the forms).
//!
//! The library discovers the provider, builds the authorization requests (PKCE S256, state,
//! nonce), exchanges codes (`private_key_jwt` for one service, `client_secret_basic` for the
//! other), validates ID tokens against the published JWKS and fetches userinfo. Around that:
//! pairwise subjects, claims released only by a signed consent and stopped by its revocation,
//! and every failure the specifications prescribe — denied consent, a wrong redirect URI,
//! missing PKCE, a reused code, a reused refresh token, unknown pushed requests, DPoP-bound
//! tokens used as bearer tokens, unregistered logout redirects. On SQLite, and on PostgreSQL
//! when `TSUNAGU_TEST_DATABASE_URL` is set.

mod common;

use common::*;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreIdToken, CoreTokenResponse,
    CoreUserInfoClaims,
};
use openidconnect::url::Url;
use openidconnect::{
    AccessToken, AccessTokenHash, AsyncHttpClient, AuthorizationCode, ClientId, ClientSecret,
    CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, SubjectIdentifier, TokenResponse, UserInfoError,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

// ---------------------------------------------------------------------------------------
// The relying party's HTTP transport: openidconnect's `AsyncHttpClient` over the workspace's
// reqwest, never following redirects (the library's advice against SSRF). With a DPoP key it
// is a DPoP-aware transport (RFC 9449): every request carries a fresh proof for its method
// and URL, and a presented access token goes out under the `DPoP` scheme with `ath`.

#[derive(Debug)]
struct TransportError(String);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TransportError {}

struct Transport {
    client: reqwest::Client,
    dpop: Option<Arc<Device>>,
}

impl Transport {
    fn new(dpop: Option<Arc<Device>>) -> Transport {
        Transport {
            client: no_redirect_client(),
            dpop,
        }
    }
}

/// A DPoP proof made here from its definition (RFC 9449 §4.2), signed with `key`.
fn dpop_proof(key: &Device, method: &str, url: &str, token: Option<&str>) -> String {
    let htu = url.split(['?', '#']).next().unwrap();
    let mut claims = json!({"jti": nonce(), "htm": method, "htu": htu, "iat": now()});
    if let Some(t) = token {
        use base64::Engine;
        claims["ath"] = json!(B64URL.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            t.as_bytes()
        )));
    }
    key.jws(json!({"typ": "dpop+jwt", "jwk": key.jwk()}), &claims)
}

impl<'c> AsyncHttpClient<'c> for Transport {
    type Error = TransportError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let err = |e: &dyn std::fmt::Display| TransportError(e.to_string());
            let (parts, body) = request.into_parts();
            let url = parts.uri.to_string();
            let mut builder = self.client.request(parts.method.clone(), &url);
            let mut authorization = None;
            for (name, value) in &parts.headers {
                if name == reqwest::header::AUTHORIZATION {
                    authorization = Some(value.to_str().map_err(|e| err(&e))?.to_owned());
                } else {
                    builder = builder.header(name, value);
                }
            }
            if let Some(key) = &self.dpop {
                let token = authorization
                    .as_deref()
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .map(str::to_owned);
                builder = builder.header(
                    "DPoP",
                    dpop_proof(key, parts.method.as_str(), &url, token.as_deref()),
                );
                if let Some(t) = token {
                    authorization = Some(format!("DPoP {t}"));
                }
            }
            if let Some(a) = authorization {
                builder = builder.header(reqwest::header::AUTHORIZATION, a);
            }
            let response = builder.body(body).send().await.map_err(|e| err(&e))?;
            let mut out = openidconnect::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                out = out.header(name, value);
            }
            let body = response.bytes().await.map_err(|e| err(&e))?;
            out.body(body.to_vec()).map_err(|e| err(&e))
        })
    }
}

/// A client built from discovery: authorization endpoint set, token and userinfo endpoints
/// as the provider said.
type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// How a relying party authenticates at the token endpoint.
enum Auth {
    /// `private_key_jwt`: an assertion signed with this key (RFC 7523).
    KeyJwt(Arc<Device>),
    /// `client_secret_basic`: the library sends the secret it was built with.
    Basic,
}

struct Service {
    id: String,
    client: Rp,
    auth: Auth,
    redirect_uri: String,
    logout_uri: String,
}

/// What the library prepared for one authorization request.
struct Request {
    url: Url,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

impl Service {
    fn request(&self, scopes: &[&str], extra: &[(&str, &str)]) -> Request {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for s in scopes {
            req = req.add_scope(Scope::new((*s).to_owned()));
        }
        for (k, v) in extra {
            req = req.add_extra_param(*k, *v);
        }
        let (url, state, nonce) = req.url();
        Request {
            url,
            state,
            nonce,
            verifier,
        }
    }

    /// A request without PKCE, built by the library all the same.
    fn request_without_pkce(&self) -> (Url, CsrfToken) {
        let (url, state, _) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .url();
        (url, state)
    }

    fn assertion(&self, audience: &str) -> Option<String> {
        match &self.auth {
            Auth::KeyJwt(key) => Some(key.assertion(&self.id, audience)),
            Auth::Basic => None,
        }
    }

    async fn exchange(
        &self,
        transport: &Transport,
        code: &str,
        verifier: PkceCodeVerifier,
        token_endpoint: &str,
    ) -> Result<CoreTokenResponse, String> {
        let mut req = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .unwrap()
            .set_pkce_verifier(verifier);
        if let Some(a) = self.assertion(token_endpoint) {
            req = req
                .add_extra_param("client_assertion_type", JWT_BEARER)
                .add_extra_param("client_assertion", a);
        }
        req.request_async(transport).await.map_err(token_error)
    }

    async fn refresh(
        &self,
        transport: &Transport,
        refresh: &RefreshToken,
        token_endpoint: &str,
    ) -> Result<CoreTokenResponse, String> {
        let mut req = self.client.exchange_refresh_token(refresh).unwrap();
        if let Some(a) = self.assertion(token_endpoint) {
            req = req
                .add_extra_param("client_assertion_type", JWT_BEARER)
                .add_extra_param("client_assertion", a);
        }
        req.request_async(transport).await.map_err(token_error)
    }

    /// Verifies the ID token the library received: signature by a key of the discovered
    /// JWKS, `iss`, `aud`, `exp`, the nonce, and `at_hash` against the access token.
    fn verify(&self, tokens: &CoreTokenResponse, nonce: &Nonce) -> Value {
        let id_token: &CoreIdToken = tokens.id_token().expect("an ID token");
        let verifier = self.client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, nonce)
            .expect("the ID token verifies");
        let hash = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&verifier).unwrap(),
        )
        .unwrap();
        assert_eq!(claims.access_token_hash(), Some(&hash), "at_hash");
        serde_json::to_value(claims).unwrap()
    }

    async fn userinfo(
        &self,
        transport: &Transport,
        access: &AccessToken,
        sub: &str,
    ) -> Result<Value, String> {
        let claims: Result<CoreUserInfoClaims, _> = self
            .client
            .user_info(access.clone(), Some(SubjectIdentifier::new(sub.to_owned())))
            .unwrap()
            .request_async(transport)
            .await;
        match claims {
            Ok(c) => Ok(serde_json::to_value(c).unwrap()),
            Err(UserInfoError::Response(status, body, _)) => Err(format!(
                "{} {}",
                status.as_u16(),
                String::from_utf8_lossy(&body)
            )),
            Err(e) => panic!("userinfo: {e:?}"),
        }
    }
}

/// The OAuth error code of a failed token request (RFC 6749 §5.2).
fn token_error(
    e: RequestTokenError<
        TransportError,
        openidconnect::StandardErrorResponse<CoreErrorResponseType>,
    >,
) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => r.error().to_string(),
        other => panic!("token request: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The resident's side: a no-JavaScript client with a cookie jar and a device key.

struct Resident {
    device: Device,
    credential: String,
    /// An API session (bearer) for /v1/me.
    token: String,
}

async fn enroll(http: &Http, card: Option<&Issued>) -> Resident {
    let device = Device::new();
    let enrolled = enroll_device(http, &device, card).await;
    let credential = enrolled["credential"].as_str().unwrap().to_owned();
    let login = http.nonce("/v1/auth/challenge").await;
    let (status, answer) = http
        .post(
            "/v1/auth/login",
            &json!({"credential": credential, "nonce": login, "signature": device.sign(login.as_bytes())}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    Resident {
        device,
        credential,
        token: answer["access_token"].as_str().unwrap().to_owned(),
    }
}

/// What the resident decides on a consent page.
#[derive(Clone)]
enum Decide {
    /// Sign the payload as offered.
    Approve,
    /// Sign the payload with only these items.
    ApproveOnly(Vec<&'static str>),
    Deny,
}

/// Where an authorization ended for the resident.
#[derive(Debug)]
struct Ended {
    /// The client's redirect URI with its parameters, when the browser was sent there.
    callback: Option<Url>,
    /// Otherwise the page shown.
    page: Option<Answer>,
    logged_in: bool,
    consent_shown: bool,
}

impl Ended {
    fn callback(&self) -> BTreeMap<String, String> {
        let url = self
            .callback
            .as_ref()
            .unwrap_or_else(|| panic!("expected a redirect to the client, got {:?}", self.page));
        url.query_pairs().into_owned().collect()
    }
}

impl Browser {
    /// Follows an authorization request as a resident would: logs in with the device key
    /// when the login page is shown, decides on the consent page, and stops at the first
    /// redirect to another origin (the client) or at any other page.
    async fn authorize(&mut self, start: &str, who: &Resident, decide: Decide) -> Ended {
        let mut ended = Ended {
            callback: None,
            page: None,
            logged_in: false,
            consent_shown: false,
        };
        let mut answer = self.get(start).await;
        for _ in 0..10 {
            if let Some(to) = answer.location.clone() {
                assert_eq!(answer.status, 303, "{answer:?}");
                let to = self.absolute(&to);
                if !to.starts_with(&self.base) {
                    ended.callback = Some(Url::parse(&to).unwrap());
                    return ended;
                }
                answer = self.get(&to).await;
            } else if answer.status == 200 && answer.body.contains("action=\"/login\"") {
                assert!(
                    !ended.logged_in,
                    "the login page came twice: {}",
                    answer.body
                );
                ended.logged_in = true;
                let login_nonce = hidden(&answer.body, "nonce");
                let signature = who.device.sign(login_nonce.as_bytes());
                answer = self
                    .post(
                        "/login",
                        &[
                            ("credential", &who.credential),
                            ("nonce", &login_nonce),
                            ("signature", &signature),
                        ],
                    )
                    .await;
            } else if answer.status == 200 && answer.body.contains("action=\"/oauth2/consent\"") {
                assert!(!ended.consent_shown, "the consent page came twice");
                ended.consent_shown = true;
                let request = hidden(&answer.body, "request");
                let mut payload: Value =
                    serde_json::from_str(&hidden(&answer.body, "consent_payload")).unwrap();
                answer = match &decide {
                    Decide::Deny => {
                        self.post(
                            "/oauth2/consent",
                            &[("request", &request), ("decision", "deny")],
                        )
                        .await
                    }
                    Decide::Approve | Decide::ApproveOnly(_) => {
                        if let Decide::ApproveOnly(items) = &decide {
                            payload["items"] = json!(items);
                        }
                        let jws = who.device.resident_jws(&payload);
                        self.post(
                            "/oauth2/consent",
                            &[
                                ("request", &request),
                                ("decision", "approve"),
                                ("consent_jws", &jws),
                            ],
                        )
                        .await
                    }
                };
            } else {
                ended.page = Some(answer);
                return ended;
            }
        }
        panic!("the authorization did not end");
    }
}

/// The client was sent `error` with the request's `state`.
fn assert_error_to_client(callback: &BTreeMap<String, String>, error: &str, state: &CsrfToken) {
    assert_eq!(callback.get("error").map(String::as_str), Some(error));
    assert_eq!(callback.get("state"), Some(state.secret()));
}

/// An error page (HTML) and not a redirect: RFC 6749 §4.1.2.1.
fn assert_shown(ended: &Ended, code: &str) {
    assert!(ended.callback.is_none(), "redirected: {:?}", ended.callback);
    let page = ended.page.as_ref().unwrap();
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page.content_type.starts_with("text/html"), "{page:?}");
    assert!(page.body.contains(code), "{code} not in {}", page.body);
}

// ---------------------------------------------------------------------------------------

fn application(
    name: &str,
    key: &Device,
    redirect_uri: &str,
    logout_uri: &str,
    auth: Option<&str>,
) -> Value {
    let mut jwk = key.jwk();
    jwk["use"] = json!("sig");
    let mut a = json!({
        "name": name, "organization": "前橋市", "contact": "rp@example.jp", "kind": "consumer",
        "jwks": {"keys": [jwk]},
        "redirect_uris": [redirect_uri],
        "post_logout_redirect_uris": [logout_uri],
        "purposes": [{
            "id": "login-identity",
            "title_ja": "本人確認済みの会員登録", "title_en": "Verified membership",
            "description_ja": "会員証の発行と郵送のため、氏名・住所・生年月日・性別を受け取ります。",
            "description_en": "We receive your name, address, date of birth and gender to issue and post your membership card.",
            "provider": "tsunagu", "items": ["name", "address", "birthdate", "gender"],
            "uses": {"name": "会員証に印字するため", "address": "会員証を郵送するため",
                     "birthdate": "年齢区分の料金のため", "gender": "更衣室の案内のため"},
            "retention_days": 365, "legal_basis": "consent"
        }],
        "security": {"iso27001": true, "incident_contact": "soc@example.jp", "subcontractors": []}
    });
    if let Some(method) = auth {
        a["token_endpoint_auth_method"] = json!(method);
    }
    a
}

async fn scenario(label: &str) {
    let Scenario {
        root,
        card,
        dir: _dir,
        ..
    } = Scenario::new();
    let committee = Committee::new(&["m1", "m2"]);
    let db = postgres_url("e2e_oidc", label).await.map(|(url, _)| url);
    let port = free_port();
    let config = format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\n[storage]\ndata_dir = \"./data\"\n{}[identity]\njpki_trust_anchors = [\"ca/ca.pem\"]\njpki_crls = [\"ca/ca.crl\"]\n[ledger]\nsth_interval_seconds = 1\n[governance]\nquorum = 2\nmembers = [{}]\n",
        db.map(|u| format!("database_url = \"{u}\"\n"))
            .unwrap_or_default(),
        committee.members_toml()
    );
    let server = Server::start(&root, &config, port);
    let base = server.url.clone();
    let http = Http::new(&base);

    // ---- two services apply for login with identity claims; the committee approves both
    let rp = format!("http://127.0.0.1:{}", free_port());
    let key_a = Arc::new(Device::new());
    let key_b = Device::new();
    let (status, a) = http
        .post(
            "/v1/services",
            &application(
                "前橋市民プール",
                &key_a,
                &format!("{rp}/pool/callback"),
                &format!("{rp}/pool/bye"),
                None,
            ),
            None,
        )
        .await;
    assert_eq!(status, 201, "{a}");
    assert!(
        a.get("client_secret").is_none(),
        "private_key_jwt: no secret"
    );
    let (status, b) = http
        .post(
            "/v1/services",
            &application(
                "まえばし図書館",
                &key_b,
                &format!("{rp}/library/callback"),
                &format!("{rp}/library/bye"),
                Some("client_secret_basic"),
            ),
            None,
        )
        .await;
    assert_eq!(status, 201, "{b}");
    let secret_b = b["client_secret"]
        .as_str()
        .expect("client_secret_basic: a secret, once")
        .to_owned();
    assert!(secret_b.len() >= 43, "{secret_b}");
    let a_id = a["service_id"].as_str().unwrap().to_owned();
    let b_id = b["service_id"].as_str().unwrap().to_owned();
    let (_, public) = http.get(&format!("/v1/services/{b_id}"), None).await;
    assert!(
        !public.to_string().contains(&secret_b),
        "the secret is not shown again"
    );
    committee.approve(&http, &a_id).await;
    committee.approve(&http, &b_id).await;

    // ---- residents: Hanako (verified with her card), Taro (provisional)
    let hanako = enroll(&http, Some(&card)).await;
    let taro = enroll(&http, None).await;
    let (_, me) = http.get("/v1/me", Some(&hanako.token)).await;
    let attributes = me["attributes"].clone();
    assert_eq!(attributes["name"], "前橋　花子", "{me}");

    // ---- the library discovers the provider (issuer check, JWKS)
    let plain = Transport::new(None);
    let metadata =
        ProviderMetadataWithLogout::discover_async(IssuerUrl::new(base.clone()).unwrap(), &plain)
            .await
            .expect("discovery");
    assert_eq!(metadata.issuer().as_str(), base);
    let token_endpoint = metadata.token_endpoint().unwrap().as_str().to_owned();
    let end_session = metadata
        .additional_metadata()
        .end_session_endpoint
        .clone()
        .expect("end_session_endpoint");
    let discovered: Value = reqwest::get(format!("{base}/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let par_endpoint = discovered["pushed_authorization_request_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let service = |id: &str, secret: Option<&str>, auth: Auth, path: &str| Service {
        id: id.to_owned(),
        client: CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(id.to_owned()),
            secret.map(|s| ClientSecret::new(s.to_owned())),
        )
        .set_redirect_uri(RedirectUrl::new(format!("{rp}/{path}/callback")).unwrap()),
        auth,
        redirect_uri: format!("{rp}/{path}/callback"),
        logout_uri: format!("{rp}/{path}/bye"),
    };
    let pool = service(&a_id, None, Auth::KeyJwt(key_a.clone()), "pool");
    let library = service(&b_id, Some(&secret_b), Auth::Basic, "library");
    let scopes_all = ["profile", "address", "birthdate", "gender"];

    // ---- 1. the code flow with PKCE, private_key_jwt; every item consented
    let mut browser = Browser::new(&base, "ja");
    let req = pool.request(&scopes_all, &[]);
    let ended = browser
        .authorize(req.url.as_str(), &hanako, Decide::Approve)
        .await;
    assert!(ended.logged_in && ended.consent_shown, "{ended:?}");
    let cb = ended.callback();
    assert!(
        ended
            .callback
            .as_ref()
            .unwrap()
            .as_str()
            .starts_with(&pool.redirect_uri),
        "{cb:?}"
    );
    assert_eq!(cb.get("state"), Some(req.state.secret()), "state");
    assert_eq!(cb.get("iss"), Some(&base), "RFC 9207 iss");
    let tokens = pool
        .exchange(&plain, &cb["code"], req.verifier, &token_endpoint)
        .await
        .expect("the code exchanges");
    let id = pool.verify(&tokens, &req.nonce);
    let sub_pool = id["sub"].as_str().unwrap().to_owned();
    assert_eq!(id["acr"], "urn:tsunagu:acr:verified", "{id}");
    assert_eq!(id["aud"], json!([a_id]), "{id}");
    assert_eq!(tokens.token_type().as_ref(), "bearer");
    assert!(tokens.refresh_token().is_some());
    let info = pool
        .userinfo(&plain, tokens.access_token(), &sub_pool)
        .await
        .expect("userinfo");
    assert_eq!(info["sub"], sub_pool);
    assert_eq!(info["name"], attributes["name"], "{info}");
    assert_eq!(
        info["address"]["formatted"], attributes["address"],
        "{info}"
    );
    assert_eq!(info["birthdate"], attributes["birthdate"], "{info}");
    assert_eq!(info["gender"], attributes["sex"], "{info}");

    // The consent is a signed consent like any other: in the resident's list.
    let (status, list) = http.get("/v1/me/consents", Some(&hanako.token)).await;
    assert_eq!(status, 200, "{list}");
    let consent_pool = list["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["consumer"] == a_id && c["provider"] == "tsunagu")
        .unwrap_or_else(|| panic!("no identity consent for the pool in {list}"))
        .clone();
    assert_eq!(consent_pool["status"], "active");
    assert_eq!(
        consent_pool["items"],
        json!(scopes_all.map(|s| if s == "profile" { "name" } else { s }))
    );

    // ---- 2. the second service: client_secret_basic; Hanako agrees to two of three items
    let req = library.request(&["profile", "address", "birthdate"], &[]);
    let ended = browser
        .authorize(
            req.url.as_str(),
            &hanako,
            Decide::ApproveOnly(vec!["name", "address"]),
        )
        .await;
    assert!(!ended.logged_in, "the session carries over");
    assert!(ended.consent_shown);
    let cb = ended.callback();
    assert_eq!(cb.get("state"), Some(req.state.secret()));
    let lib_tokens = library
        .exchange(&plain, &cb["code"], req.verifier, &token_endpoint)
        .await
        .expect("client_secret_basic exchange");
    let id_b = library.verify(&lib_tokens, &req.nonce);
    let sub_library = id_b["sub"].as_str().unwrap().to_owned();
    assert_ne!(
        sub_library, sub_pool,
        "pairwise: another service, another sub"
    );
    let info = library
        .userinfo(&plain, lib_tokens.access_token(), &sub_library)
        .await
        .unwrap();
    assert_eq!(info["name"], attributes["name"]);
    assert_eq!(info["address"]["formatted"], attributes["address"]);
    assert!(
        info.get("birthdate").is_none(),
        "not consented, not released: {info}"
    );

    // ---- Hanako asks the platform to stop using her data (利用停止, SPEC §9): the services
    // keep her pairwise sub and learn nothing else until she resumes.
    for (kind, released) in [
        ("suspension", false),
        ("resume", true),
        ("stop_provision", false),
        ("resume", true),
    ] {
        let (status, r) = http
            .post(
                "/v1/me/requests",
                &json!({"type": kind}),
                Some(&hanako.token),
            )
            .await;
        assert_eq!(
            (status, r["status"].as_str()),
            (201, Some("completed")),
            "{r}"
        );
        let info = pool
            .userinfo(&plain, tokens.access_token(), &sub_pool)
            .await
            .expect("userinfo answers with the sub");
        assert_eq!(info["sub"], sub_pool);
        assert_eq!(info.get("name").is_some(), released, "{kind}: {info}");
    }

    // A wrong secret is refused as invalid_client (RFC 6749 §5.2).
    let wrong = service(&b_id, Some("not-the-secret"), Auth::Basic, "library");
    let req = library.request(&["profile"], &[]);
    let ended = browser
        .authorize(req.url.as_str(), &hanako, Decide::Approve)
        .await;
    assert!(!ended.consent_shown, "consent remembered: {ended:?}");
    let code = ended.callback()["code"].clone();
    assert_eq!(
        wrong
            .exchange(
                &plain,
                &code,
                PkceCodeVerifier::new(req.verifier.secret().clone()),
                &token_endpoint
            )
            .await
            .unwrap_err(),
        "invalid_client"
    );
    // …and a wrong PKCE verifier as invalid_grant.
    let (_, other_verifier) = PkceCodeChallenge::new_random_sha256();
    assert_eq!(
        library
            .exchange(&plain, &code, other_verifier, &token_endpoint)
            .await
            .unwrap_err(),
        "invalid_grant"
    );

    // ---- 2b. a code is redeemed only by its client, with the redirect URI it was issued for
    let req = pool.request(&["profile"], &[]);
    let code = browser
        .authorize(req.url.as_str(), &hanako, Decide::Approve)
        .await
        .callback()["code"]
        .clone();
    let verifier = req.verifier.secret().clone();
    let again = || PkceCodeVerifier::new(verifier.clone());
    assert_eq!(
        library
            .exchange(&plain, &code, again(), &token_endpoint)
            .await
            .unwrap_err(),
        "invalid_grant",
        "another client's code"
    );
    let elsewhere = service(&a_id, None, Auth::KeyJwt(key_a.clone()), "elsewhere");
    assert_eq!(
        elsewhere
            .exchange(&plain, &code, again(), &token_endpoint)
            .await
            .unwrap_err(),
        "invalid_grant",
        "another redirect_uri"
    );
    pool.exchange(&plain, &code, again(), &token_endpoint)
        .await
        .expect("the rightful client still redeems it");

    // ---- 2c. a consent signed for another service does not answer the request, and is not
    // recorded
    let consents_before = http.get("/v1/me/consents", Some(&hanako.token)).await.1["consents"]
        .as_array()
        .unwrap()
        .len();
    let req = library.request(&scopes_all, &[]);
    let page = browser.get(req.url.as_str()).await;
    assert_eq!(page.status, 200, "{page:?}");
    let mut payload: Value = serde_json::from_str(&hidden(&page.body, "consent_payload")).unwrap();
    assert_eq!(payload["consumer"], b_id);
    assert_eq!(payload["provider"], "tsunagu");
    assert_eq!(
        payload["items"],
        json!(["name", "address", "birthdate", "gender"])
    );
    let request = hidden(&page.body, "request");
    // A valid consent to the pool's identity claims, but not what this page asked for.
    let (_, pool_public) = http.get(&format!("/v1/services/{a_id}"), None).await;
    payload["consumer"] = json!(a_id);
    payload["terms_sha256"] = pool_public["purposes"][0]["terms_sha256"].clone();
    let answer = browser
        .post(
            "/oauth2/consent",
            &[
                ("request", &request),
                ("decision", "approve"),
                ("consent_jws", &hanako.device.resident_jws(&payload)),
            ],
        )
        .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(answer.location.is_none());
    assert_eq!(
        http.get("/v1/me/consents", Some(&hanako.token)).await.1["consents"]
            .as_array()
            .unwrap()
            .len(),
        consents_before
    );
    let answer = browser
        .post(
            "/oauth2/consent",
            &[("request", &request), ("decision", "deny")],
        )
        .await;
    assert_eq!(answer.status, 303);
    let denied: BTreeMap<String, String> = Url::parse(answer.location.as_deref().unwrap())
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_error_to_client(&denied, "access_denied", &req.state);

    // ---- 2d. prompt=none: nothing is shown; the reason goes back to the client
    let req = library.request(&scopes_all, &[("prompt", "none")]);
    let cb = browser
        .authorize(req.url.as_str(), &hanako, Decide::Approve)
        .await
        .callback();
    assert_error_to_client(&cb, "consent_required", &req.state);
    let req = pool.request(&scopes_all, &[("prompt", "none")]);
    let cb = Browser::new(&base, "ja")
        .authorize(req.url.as_str(), &hanako, Decide::Approve)
        .await
        .callback();
    assert_error_to_client(&cb, "login_required", &req.state);

    // ---- 3. a consent already given is not asked again; denial when asked (prompt=consent)
    let req = pool.request(&scopes_all, &[]);
    let ended = browser
        .authorize(req.url.as_str(), &hanako, Decide::Approve)
        .await;
    assert!(!ended.consent_shown && !ended.logged_in, "{ended:?}");
    assert!(ended.callback().contains_key("code"));
    let req = pool.request(&scopes_all, &[("prompt", "consent")]);
    let ended = browser
        .authorize(req.url.as_str(), &hanako, Decide::Deny)
        .await;
    assert!(ended.consent_shown);
    let cb = ended.callback();
    assert_error_to_client(&cb, "access_denied", &req.state);
    assert_eq!(cb.get("iss"), Some(&base));
    assert!(!cb.contains_key("code"));

    // ---- 4. a redirect URI that is not registered: shown to the resident, never redirected
    let req = pool.request(&scopes_all, &[]);
    let evil = req.url.as_str().replace(
        &pool.redirect_uri.replace(':', "%3A").replace('/', "%2F"),
        "https%3A%2F%2Fevil.example%2Fcb",
    );
    assert_ne!(evil, req.url.as_str(), "the redirect_uri was replaced");
    let ended = browser.authorize(&evil, &hanako, Decide::Approve).await;
    assert_shown(&ended, "invalid_request");
    let unknown_client = req.url.as_str().replace(&a_id, "svc_nobody");
    assert_shown(
        &browser
            .authorize(&unknown_client, &hanako, Decide::Approve)
            .await,
        "invalid_client",
    );

    // ---- 5. no PKCE: the request is refused back to the client (RFC 7636 §4.4.1)
    let (url, state) = pool.request_without_pkce();
    let ended = browser
        .authorize(url.as_str(), &hanako, Decide::Approve)
        .await;
    let cb = ended.callback();
    assert_eq!(cb.get("error").map(String::as_str), Some("invalid_request"));
    assert!(cb["error_description"].contains("PKCE"), "{cb:?}");
    assert_eq!(cb.get("state"), Some(state.secret()));

    // ---- 6. a code used twice: invalid_grant, and what it gave stops working (§4.1.2)
    let req = pool.request(&scopes_all, &[]);
    let code = browser
        .authorize(req.url.as_str(), &hanako, Decide::Approve)
        .await
        .callback()["code"]
        .clone();
    let verifier = req.verifier.secret().clone();
    let first = pool
        .exchange(&plain, &code, req.verifier, &token_endpoint)
        .await
        .unwrap();
    pool.userinfo(&plain, first.access_token(), &sub_pool)
        .await
        .expect("works before the replay");
    assert_eq!(
        pool.exchange(
            &plain,
            &code,
            PkceCodeVerifier::new(verifier),
            &token_endpoint
        )
        .await
        .unwrap_err(),
        "invalid_grant"
    );
    let refused = pool
        .userinfo(&plain, first.access_token(), &sub_pool)
        .await
        .unwrap_err();
    assert!(
        refused.starts_with("401") && refused.contains("invalid_token"),
        "{refused}"
    );
    assert_eq!(
        pool.refresh(&plain, first.refresh_token().unwrap(), &token_endpoint)
            .await
            .unwrap_err(),
        "invalid_grant"
    );

    // ---- 7. refresh rotation; a reused refresh token revokes the whole grant
    let req = pool.request(&scopes_all, &[]);
    let code = browser
        .authorize(req.url.as_str(), &hanako, Decide::Approve)
        .await
        .callback()["code"]
        .clone();
    let req_nonce = req.nonce.clone();
    let t1 = pool
        .exchange(&plain, &code, req.verifier, &token_endpoint)
        .await
        .unwrap();
    let r1 = t1.refresh_token().unwrap().clone();
    let t2 = pool.refresh(&plain, &r1, &token_endpoint).await.unwrap();
    let r2 = t2.refresh_token().unwrap().clone();
    assert_ne!(r1.secret(), r2.secret(), "rotated");
    let refreshed_id: Value = {
        let verifier = pool.client.id_token_verifier();
        let claims = t2
            .id_token()
            .unwrap()
            .claims(&verifier, |_: Option<&Nonce>| Ok(()))
            .unwrap();
        serde_json::to_value(claims).unwrap()
    };
    assert_eq!(refreshed_id["sub"], sub_pool);
    let first_id = pool.verify(&t1, &req_nonce);
    assert_eq!(
        refreshed_id["auth_time"], first_id["auth_time"],
        "OIDC Core §12.2"
    );
    assert!(refreshed_id.get("nonce").is_none(), "{refreshed_id}");
    pool.userinfo(&plain, t2.access_token(), &sub_pool)
        .await
        .expect("the rotated tokens work");
    assert_eq!(
        pool.refresh(&plain, &r1, &token_endpoint)
            .await
            .unwrap_err(),
        "invalid_grant",
        "reuse"
    );
    assert_eq!(
        pool.refresh(&plain, &r2, &token_endpoint)
            .await
            .unwrap_err(),
        "invalid_grant",
        "the grant is revoked: the other refresh token is dead"
    );
    assert!(
        pool.userinfo(&plain, t2.access_token(), &sub_pool)
            .await
            .unwrap_err()
            .starts_with("401")
    );

    // ---- 8. PAR (RFC 9126): pushed with client authentication, then only request_uri
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (state, oidc_nonce) = (nonce(), nonce());
    let scope = "openid profile address birthdate gender";
    let push = |extra: Vec<(&'static str, String)>| {
        let mut pairs: Vec<(&str, String)> = vec![
            ("response_type", "code".into()),
            ("client_id", a_id.clone()),
            ("redirect_uri", pool.redirect_uri.clone()),
            ("scope", scope.into()),
            ("state", state.clone()),
            ("nonce", oidc_nonce.clone()),
            ("code_challenge", challenge.as_str().to_owned()),
            ("code_challenge_method", "S256".into()),
            ("client_assertion_type", JWT_BEARER.into()),
            ("client_assertion", key_a.assertion(&a_id, &base)),
        ];
        pairs.extend(extra);
        let body = form_encode(
            &pairs
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>(),
        );
        let url = par_endpoint.clone();
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, pushed) = push(vec![]).await;
    assert_eq!(status, 201, "{pushed}");
    let request_uri = pushed["request_uri"].as_str().unwrap();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    assert!(pushed["expires_in"].as_i64().unwrap() > 0);
    let mut authorize = Url::parse(metadata.authorization_endpoint().as_str()).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &a_id)
        .append_pair("request_uri", request_uri);
    let ended = browser
        .authorize(authorize.as_str(), &hanako, Decide::Approve)
        .await;
    let cb = ended.callback();
    assert_eq!(cb.get("state"), Some(&state));
    let par_tokens = pool
        .exchange(&plain, &cb["code"], verifier, &token_endpoint)
        .await
        .unwrap();
    pool.verify(&par_tokens, &Nonce::new(oidc_nonce.clone()));
    // A request_uri is good once; an unknown one is an error shown to the resident.
    assert_shown(
        &browser
            .authorize(authorize.as_str(), &hanako, Decide::Approve)
            .await,
        "invalid_request_uri",
    );
    let mut unknown = Url::parse(metadata.authorization_endpoint().as_str()).unwrap();
    unknown
        .query_pairs_mut()
        .append_pair("client_id", &a_id)
        .append_pair("request_uri", "urn:ietf:params:oauth:request_uri:nope");
    assert_shown(
        &browser
            .authorize(unknown.as_str(), &hanako, Decide::Approve)
            .await,
        "invalid_request_uri",
    );
    // Pushing without client authentication is refused.
    let (status, refused) = {
        let body = form_encode(&[
            ("response_type", "code"),
            ("client_id", &a_id),
            ("redirect_uri", &pool.redirect_uri),
            ("scope", scope),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]);
        let resp = reqwest::Client::new()
            .post(&par_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(
        (status, refused["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // ---- 9. DPoP (RFC 9449): tokens bound to the client's key
    let dpop_key = Arc::new(Device::new());
    let dpop = Transport::new(Some(dpop_key.clone()));
    let req = pool.request(&scopes_all, &[]);
    let code = browser
        .authorize(req.url.as_str(), &hanako, Decide::Approve)
        .await
        .callback()["code"]
        .clone();
    let bound = pool
        .exchange(&dpop, &code, req.verifier, &token_endpoint)
        .await
        .expect("a DPoP token request");
    assert_eq!(bound.token_type().as_ref(), "dpop");
    pool.verify(&bound, &req.nonce);
    let info = pool
        .userinfo(&dpop, bound.access_token(), &sub_pool)
        .await
        .expect("userinfo with the DPoP scheme and a proof with ath");
    assert_eq!(info["name"], attributes["name"]);
    let refused = pool
        .userinfo(&plain, bound.access_token(), &sub_pool)
        .await
        .unwrap_err();
    assert!(
        refused.starts_with("401") && refused.contains("invalid_token"),
        "{refused}"
    );
    // A proof made for another token (wrong ath) and a replayed proof are refused.
    let userinfo_url = metadata.userinfo_endpoint().unwrap().as_str().to_owned();
    let raw = |proof: String| {
        let token = bound.access_token().secret().clone();
        let url = userinfo_url.clone();
        async move {
            reqwest::Client::new()
                .get(url)
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let proof = dpop_proof(
        &dpop_key,
        "GET",
        &userinfo_url,
        Some(bound.access_token().secret()),
    );
    assert_eq!(raw(proof.clone()).await, 200);
    assert_eq!(raw(proof).await, 401, "a replayed proof");
    assert_eq!(
        raw(dpop_proof(
            &dpop_key,
            "GET",
            &userinfo_url,
            Some("another token")
        ))
        .await,
        401
    );
    assert_eq!(
        raw(dpop_proof(
            &Device::new(),
            "GET",
            &userinfo_url,
            Some(bound.access_token().secret())
        ))
        .await,
        401,
        "another key"
    );
    // dpop_jkt at the authorization endpoint binds the code to the key (RFC 9449 §10).
    let req = pool.request(&scopes_all, &[("dpop_jkt", &dpop_key.thumbprint())]);
    let code = browser
        .authorize(req.url.as_str(), &hanako, Decide::Approve)
        .await
        .callback()["code"]
        .clone();
    assert_eq!(
        pool.exchange(&plain, &code, req.verifier, &token_endpoint)
            .await
            .unwrap_err(),
        "invalid_dpop_proof"
    );

    // ---- 10. revoking the consent stops the claims at once (the login itself goes on)
    let consent_id = consent_pool["consent_id"].as_str().unwrap();
    let change =
        json!({"consent_id": consent_id, "action": "revoke", "issued_at": now(), "nonce": nonce()});
    let (status, revoked) = http
        .post(
            &format!("/v1/me/consents/{consent_id}/revoke"),
            &json!({"change_jws": hanako.device.resident_jws(&change)}),
            Some(&hanako.token),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    let info = pool
        .userinfo(&dpop, bound.access_token(), &sub_pool)
        .await
        .unwrap();
    assert_eq!(info, json!({"sub": sub_pool}), "no claims after revocation");
    let (_, list) = http.get("/v1/me/consents", Some(&hanako.token)).await;
    let listed = list["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["consent_id"] == consent_id)
        .unwrap()
        .clone();
    assert_eq!(listed["status"], "revoked", "{listed}");
    // The next login asks again.
    let req = pool.request(&scopes_all, &[]);
    let ended = browser
        .authorize(req.url.as_str(), &hanako, Decide::Deny)
        .await;
    assert!(ended.consent_shown, "a revoked consent is asked again");

    // ---- 11. a provisional ID logs in but gets no identity claims
    let mut taro_browser = Browser::new(&base, "ja");
    let req = pool.request(&scopes_all, &[]);
    let ended = taro_browser
        .authorize(req.url.as_str(), &taro, Decide::Approve)
        .await;
    assert!(ended.logged_in && !ended.consent_shown, "{ended:?}");
    let taro_tokens = pool
        .exchange(
            &plain,
            &ended.callback()["code"],
            req.verifier,
            &token_endpoint,
        )
        .await
        .unwrap();
    let taro_id = pool.verify(&taro_tokens, &req.nonce);
    assert_eq!(taro_id["acr"], "urn:tsunagu:acr:provisional", "{taro_id}");
    let taro_sub = taro_id["sub"].as_str().unwrap();
    assert_ne!(taro_sub, sub_pool);
    let info = pool
        .userinfo(&plain, taro_tokens.access_token(), taro_sub)
        .await
        .unwrap();
    assert_eq!(info, json!({"sub": taro_sub}));

    // ---- 11b. the resident sees the service's login on the devices page, with the device
    // that revoking would log out of it, and ends the login there on its own (defect 7)
    let devices = taro_browser.get("/app/devices").await;
    assert_eq!(devices.status, 200, "{devices:?}");
    let grant = attr_after(&devices.body, "class=\"card login\"", "data-grant");
    assert_eq!(
        attr_after(&devices.body, "class=\"card login\"", "data-client"),
        a_id
    );
    assert!(devices.body.contains("前橋市民プール"), "{}", devices.body);
    assert!(
        devices.body.contains("class=\"device-ends\""),
        "the device says which services revoking it logs out of"
    );
    let csrf = hidden(&devices.body, "csrf");
    let done = taro_browser
        .post(&format!("/app/logins/{grant}/revoke"), &[("csrf", &csrf)])
        .await;
    assert_eq!(done.status, 303, "{done:?}");
    assert_eq!(
        done.location.as_deref(),
        Some("/app/devices?done=login_ended")
    );
    assert!(
        pool.userinfo(&plain, taro_tokens.access_token(), taro_sub)
            .await
            .is_err(),
        "the ended login's access token reads nothing"
    );
    assert!(
        pool.refresh(
            &plain,
            taro_tokens.refresh_token().unwrap(),
            &token_endpoint
        )
        .await
        .is_err(),
        "and its refresh token refreshes nothing"
    );
    let devices = taro_browser.get("/app/devices?done=login_ended").await;
    assert!(
        !devices.body.contains("class=\"card login\""),
        "{}",
        devices.body
    );
    assert!(devices.body.contains("id=\"logins-none\""));

    // Logout without an ID token hint: the resident confirms first.
    let mut ask = Url::parse(end_session.as_str()).unwrap();
    ask.query_pairs_mut()
        .append_pair("client_id", &a_id)
        .append_pair("post_logout_redirect_uri", &pool.logout_uri)
        .append_pair("state", "s-3");
    let page = taro_browser.get(ask.as_str()).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.location.is_none());
    let carried: Vec<(String, String)> = ["client_id", "post_logout_redirect_uri", "state", "csrf"]
        .iter()
        .map(|k| (k.to_string(), hidden(&page.body, k)))
        .collect();
    let mut confirm: Vec<(&str, &str)> = carried
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    confirm.push(("confirm", "yes"));
    let taro_session = taro_browser
        .cookies
        .get("tsunagu_session")
        .cloned()
        .unwrap();
    // Another site can show the confirmation but not answer it: without the page's token
    // the resident is asked again and stays logged in (defect 10).
    let forged: Vec<(&str, &str)> = confirm
        .iter()
        .filter(|(k, _)| *k != "csrf")
        .copied()
        .collect();
    let again = taro_browser.post("/oauth2/logout", &forged).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert!(again.body.contains("name=\"confirm\""), "asked again");
    assert_eq!(http.get("/v1/me", Some(&taro_session)).await.0, 200);
    let answer = taro_browser.post("/oauth2/logout", &confirm).await;
    assert_eq!(answer.status, 303, "{answer:?}");
    assert_eq!(
        answer.location.as_deref(),
        Some(format!("{}?state=s-3", pool.logout_uri).as_str())
    );
    assert_eq!(http.get("/v1/me", Some(&taro_session)).await.0, 401);

    // ---- 12. RP-initiated logout
    let hint = tokens.id_token().unwrap();
    let unregistered = LogoutRequest::from(end_session.clone())
        .set_id_token_hint(hint)
        .set_post_logout_redirect_uri(
            PostLogoutRedirectUrl::new("https://evil.example/bye".into()).unwrap(),
        )
        .set_state(CsrfToken::new("s-1".into()))
        .http_get_url();
    let answer = browser.get(unregistered.as_str()).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(answer.location.is_none() && answer.content_type.starts_with("text/html"));
    let session_cookie = browser.cookies.get("tsunagu_session").cloned().unwrap();
    let (status, _) = http.get("/v1/me", Some(&session_cookie)).await;
    assert_eq!(status, 200, "still logged in");
    let logout = LogoutRequest::from(end_session)
        .set_id_token_hint(hint)
        .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(pool.logout_uri.clone()).unwrap())
        .set_state(CsrfToken::new("s-2".into()))
        .http_get_url();
    let answer = browser.get(logout.as_str()).await;
    assert_eq!(answer.status, 303, "{answer:?}");
    assert_eq!(
        answer.location.as_deref(),
        Some(format!("{}?state=s-2", pool.logout_uri).as_str())
    );
    assert!(
        !browser.cookies.contains_key("tsunagu_session"),
        "cookie cleared"
    );
    let (status, _) = http.get("/v1/me", Some(&session_cookie)).await;
    assert_eq!(status, 401, "the session has ended");
    // The next authorization needs a login again.
    let req = pool.request(&scopes_all, &[]);
    let ended = browser
        .authorize(req.url.as_str(), &hanako, Decide::Deny)
        .await;
    assert!(ended.logged_in, "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_with_an_independent_client_on_sqlite() {
    scenario("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_with_an_independent_client_on_postgres() {
    if std::env::var("TSUNAGU_TEST_DATABASE_URL").is_err() {
        println!(
            "NOTICE: TSUNAGU_TEST_DATABASE_URL not set: the PostgreSQL end-to-end run is skipped"
        );
        return;
    }
    scenario("postgres").await;
}
