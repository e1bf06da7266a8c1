//! `tsunagu dev oidc-seed`: prepares the OpenID Connect benchmark (`bench/oidc`) against a
//! running `tsunagu serve`.
//!
//! Everything goes through the platform's public interfaces, as a service, the committee and a
//! resident would: two consumer services apply (`POST /v1/services`) for "log in with
//! tsunagu" with an identity purpose (provider `tsunagu`, items `name` and `birthdate`), one
//! authenticating at the token endpoint with `private_key_jwt`, one with
//! `client_secret_basic`; the committee members approve them with signed votes; a resident
//! enrolls with a card of the simulated JPKI (verified), logs in through the login page the
//! authorization endpoint shows (`POST /login`, which sets the `tsunagu_session` cookie) and
//! approves each service once on the consent page with a consent signed by the device key.
//! Each service's setup is then checked end to end: a fresh authorization must answer with a
//! code at once, and the code must buy an ID token, signed by a key of the platform's JWKS,
//! at the token endpoint. One setup JSON per client authentication method is written for
//! `bench/oidc/run.sh setup FILE`.

use anyhow::{Context, bail, ensure};
use clap::Args;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tsunagu_client::committee::Member;
use tsunagu_connector::ServiceIdentity;
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::{b64, jws, random, sha256};
use tsunagu_jpki_sim::{IssueRequest, SimCa};
use tsunagu_platform::oidc::{urlencode, with_query};

const SESSION_COOKIE: &str = "tsunagu_session";
const PURPOSE_ID: &str = "bench-login";
const CARD_PIN: &str = "bench2024";

#[derive(Args)]
pub struct OidcSeedArgs {
    /// The running platform's URL (its issuer).
    #[arg(long)]
    url: String,
    /// The platform's configuration: committee members, quorum, session lifetime, and
    /// `[dev] simulated_jpki` (the CA whose card the resident uses).
    #[arg(long)]
    config: PathBuf,
    /// Where to write the setup JSON files and the client keys.
    #[arg(long)]
    out: PathBuf,
    /// A committee member who votes: `ID=KEY.pem` (a key made by `tsunagu admin keygen`).
    /// Give at least as many as the quorum.
    #[arg(long = "member", value_name = "ID=KEY.pem", required = true)]
    members: Vec<String>,
    /// The simulated JPKI directory (default: `[dev] simulated_jpki` of the configuration).
    #[arg(long)]
    jpki: Option<PathBuf>,
    /// The redirect URI the services register (nothing needs to listen there).
    #[arg(long, default_value = "http://127.0.0.1:9/cb")]
    redirect_uri: String,
    /// The scope the benchmark asks for.
    #[arg(long, default_value = "openid profile")]
    scope: String,
}

/// One benchmark client: a registered, approved service.
struct BenchClient {
    auth: &'static str,
    label: &'static str,
    id: String,
    key: SigningKey,
    key_file: PathBuf,
    secret: Option<String>,
}

/// The platform, seen as a browser and a service see it (no redirects followed).
struct Platform {
    http: reqwest::Client,
    api: tsunagu_client::ApiClient,
    issuer: String,
    authorize: String,
    token: String,
    jwks: Vec<PublicJwk>,
}

/// An authorization request made here, with what the token request needs.
#[derive(Clone)]
struct Request {
    url: String,
    state: String,
    verifier: String,
    nonce: String,
}

/// Decodes the character references askama writes into attribute values.
fn html_unescape(s: &str) -> anyhow::Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(';')
            .filter(|&e| e <= 10)
            .with_context(|| format!("unterminated character reference in `{s}`"))?;
        let entity = &after[..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .with_context(|| format!("unknown character reference `&{entity};`"))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of the `<input … name="NAME" value="…">` in a page.
fn hidden_input(page: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .map(|i| i + marker.len())
        .with_context(|| format!("the page has no input `{name}`:\n{}", excerpt(page)))?;
    let len = page[start..]
        .find('"')
        .with_context(|| format!("input `{name}` is not closed"))?;
    html_unescape(&page[start..start + len])
}

fn excerpt(text: &str) -> String {
    text.chars().take(1500).collect()
}

fn location(response: &reqwest::Response) -> anyhow::Result<String> {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .context("a redirect without Location")
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The query parameters of a URL (percent-decoded; `+` is a space).
fn query_params(url: &str) -> anyhow::Result<Vec<(String, String)>> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let decode = |s: &str| -> anyhow::Result<String> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = s.get(i + 1..i + 3).context("bad percent-encoding")?;
                    out.push(u8::from_str_radix(hex, 16).context("bad percent-encoding")?);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        Ok(String::from_utf8(out)?)
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The value of a `Set-Cookie` for `name` (None when absent or a deletion).
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|line| {
            let pair = line.split(';').next()?;
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name && !v.trim().is_empty()).then(|| v.trim().to_owned())
        })
        .next_back()
}

fn application(
    name: &str,
    key: &SigningKey,
    auth: &str,
    redirect_uri: &str,
) -> anyhow::Result<Value> {
    Ok(json!({
        "name": name,
        "organization": "tsunagu benchmark",
        "contact": "bench@example.jp",
        "kind": "consumer",
        "jwks": {"keys": [key.published_jwk().to_value()]},
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": auth,
        "purposes": [{
            "id": PURPOSE_ID,
            "title_ja": "ログインと本人確認",
            "title_en": "Log in and identity check",
            "description_ja": "会員登録の本人確認のため、氏名と生年月日を受け取ります。",
            "description_en": "The service receives the name and date of birth to check who signs up.",
            "provider": "tsunagu",
            "items": ["name", "birthdate"],
            "uses": {"name": "会員名簿の氏名", "birthdate": "年齢の確認"},
            "retention_days": 365,
            "legal_basis": "consent",
            "consent_mode": "opt_in",
        }],
        "security": {"iso27001": true, "incident_contact": "soc@example.jp", "subcontractors": []},
    }))
}

impl Platform {
    async fn discover(url: &str) -> anyhow::Result<Platform> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        let base = url.trim_end_matches('/');
        let meta: Value = http
            .get(format!("{base}/.well-known/openid-configuration"))
            .send()
            .await
            .with_context(|| format!("cannot reach {base}"))?
            .error_for_status()?
            .json()
            .await
            .context("the discovery document is not JSON")?;
        let field = |k: &str| -> anyhow::Result<String> {
            meta[k]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("discovery: no `{k}`"))
        };
        let jwks: Value = http
            .get(field("jwks_uri")?)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .context("the JWKS is not JSON")?;
        let jwks = jwks["keys"]
            .as_array()
            .context("JWKS without keys")?
            .iter()
            .map(PublicJwk::from_value)
            .collect::<Result<Vec<_>, _>>()
            .context("a JWKS key")?;
        Ok(Platform {
            api: tsunagu_client::ApiClient::new(base),
            issuer: field("issuer")?,
            authorize: field("authorization_endpoint")?,
            token: field("token_endpoint")?,
            jwks,
            http,
        })
    }

    fn request(&self, client_id: &str, redirect_uri: &str, scope: &str) -> anyhow::Result<Request> {
        let verifier = random::token(32)?;
        let challenge = b64::url_encode(sha256(verifier.as_bytes()));
        let state = random::token(16)?;
        let nonce = random::token(16)?;
        let url = with_query(
            &self.authorize,
            &[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("scope", scope),
                ("state", &state),
                ("nonce", &nonce),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        );
        Ok(Request {
            url,
            state,
            verifier,
            nonce,
        })
    }

    /// GET with the session cookie (if any); the answer is not followed.
    async fn get(&self, url: &str, session: Option<&str>) -> anyhow::Result<reqwest::Response> {
        let mut r = self.http.get(url);
        if let Some(s) = session {
            r = r.header(reqwest::header::COOKIE, format!("{SESSION_COOKIE}={s}"));
        }
        Ok(r.send().await?)
    }

    async fn post_form(
        &self,
        url: &str,
        pairs: &[(&str, &str)],
        session: Option<&str>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut r = self
            .http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form_body(pairs));
        if let Some(s) = session {
            r = r.header(reqwest::header::COOKIE, format!("{SESSION_COOKIE}={s}"));
        }
        Ok(r.send().await?)
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') {
            format!("{}{location}", self.api.base())
        } else {
            location.to_owned()
        }
    }

    /// Checks that a redirect is the redirect URI with a code for `request`; returns the code.
    fn code_of(&self, to: &str, request: &Request, redirect_uri: &str) -> anyhow::Result<String> {
        ensure!(
            to.split('?').next() == Some(redirect_uri),
            "expected a redirect to {redirect_uri}, got {to}"
        );
        let params = query_params(to)?;
        if let Some(e) = param(&params, "error") {
            bail!(
                "the authorization failed: {e}: {}",
                param(&params, "error_description").unwrap_or("")
            );
        }
        ensure!(
            param(&params, "state") == Some(request.state.as_str()),
            "state was not returned unchanged: {to}"
        );
        ensure!(
            param(&params, "iss") == Some(self.issuer.as_str()),
            "iss (RFC 9207) is not the issuer: {to}"
        );
        param(&params, "code")
            .map(str::to_owned)
            .with_context(|| format!("no code in {to}"))
    }

    /// Exchanges a code as `client` does and checks the ID token (signature by a JWKS key,
    /// iss, aud, nonce). Returns the pairwise `sub`.
    async fn exchange(
        &self,
        client: &BenchClient,
        code: &str,
        request: &Request,
        redirect_uri: &str,
    ) -> anyhow::Result<String> {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", request.verifier.as_str()),
        ];
        let assertion;
        let mut r = self.http.post(&self.token);
        match &client.secret {
            Some(secret) => {
                r = r.basic_auth(urlencode(&client.id), Some(urlencode(secret)));
            }
            None => {
                assertion = ServiceIdentity::new(&client.id, client.key.try_clone()?)
                    .assertion(&self.token)?;
                pairs.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                pairs.push(("client_assertion", assertion.as_str()));
            }
        }
        let response = r
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form_body(&pairs))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.context("token response")?;
        ensure!(
            status.is_success(),
            "the token endpoint refused {} ({}): {body}",
            client.id,
            client.auth
        );
        let id_token = body["id_token"]
            .as_str()
            .with_context(|| format!("no id_token in {body}"))?;
        let parsed = jws::parse(id_token)?;
        let key = parsed
            .kid
            .as_deref()
            .and_then(|kid| self.jwks.iter().find(|k| k.kid.as_deref() == Some(kid)))
            .context("the ID token's kid is not in the JWKS")?;
        parsed
            .verify(key)
            .context("the ID token's signature does not verify")?;
        let claims = parsed.json_payload()?;
        ensure!(
            claims.get("iss").and_then(Value::as_str) == Some(self.issuer.as_str()),
            "ID token iss"
        );
        ensure!(
            claims.get("aud").and_then(Value::as_str) == Some(client.id.as_str()),
            "ID token aud"
        );
        ensure!(
            claims.get("nonce").and_then(Value::as_str) == Some(request.nonce.as_str()),
            "ID token nonce"
        );
        claims
            .get("sub")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .context("ID token without sub")
    }
}

async fn register(
    platform: &Platform,
    out: &Path,
    auth: &'static str,
    label: &'static str,
    redirect_uri: &str,
) -> anyhow::Result<BenchClient> {
    let key = SigningKey::generate(Alg::Es256)?;
    let key_file = out.join(format!("tsunagu-{label}-key.pem"));
    write_private(&key_file, key.to_pkcs8_pem().as_bytes())?;
    let answer = platform
        .api
        .post(
            "/v1/services",
            &application(&format!("bench RP ({auth})"), &key, auth, redirect_uri)?,
            None,
        )
        .await
        .with_context(|| format!("applying for the {auth} service"))?;
    let id = answer["service_id"]
        .as_str()
        .with_context(|| format!("no service_id in {answer}"))?
        .to_owned();
    let secret = answer["client_secret"].as_str().map(str::to_owned);
    if auth == "client_secret_basic" {
        ensure!(
            secret.is_some(),
            "POST /v1/services returned no client_secret for a client_secret_basic service: {answer}"
        );
    }
    Ok(BenchClient {
        auth,
        label,
        id,
        key,
        key_file,
        secret,
    })
}

async fn approve(platform: &Platform, members: &[Member], service: &str) -> anyhow::Result<()> {
    let mut status = String::new();
    for m in members {
        let vote = m
            .sign_vote(service, "approve", "OIDC benchmark client", &[])
            .map_err(anyhow::Error::msg)?;
        let answer = platform
            .api
            .post(
                &format!("/v1/governance/services/{service}/votes"),
                &json!({"vote_jws": vote}),
                None,
            )
            .await
            .with_context(|| format!("{}'s vote on {service}", m.id))?;
        status = answer["status"].as_str().unwrap_or_default().to_owned();
        if status == "approved" {
            return Ok(());
        }
    }
    bail!(
        "{service} is `{status}` after {} votes: give as many --member as the quorum",
        members.len()
    )
}

pub async fn run(args: OidcSeedArgs) -> anyhow::Result<()> {
    let crate::seed::Setup {
        config,
        members,
        jpki,
        ..
    } = crate::seed::Setup::load(&args.config, &args.members, args.jpki.as_deref())?;
    std::fs::create_dir_all(&args.out)?;
    let out = std::fs::canonicalize(&args.out)?;
    let platform = Platform::discover(&args.url).await?;
    let redirect_uri = args.redirect_uri.as_str();

    // Two services, approved by the committee.
    let mut clients = vec![
        register(&platform, &out, "private_key_jwt", "jwt", redirect_uri).await?,
        register(
            &platform,
            &out,
            "client_secret_basic",
            "basic",
            redirect_uri,
        )
        .await?,
    ];
    for c in &clients {
        approve(&platform, &members, &c.id).await?;
        eprintln!("service {} ({}) approved", c.id, c.auth);
    }

    // A verified resident.
    let mut ca =
        SimCa::open(&jpki).with_context(|| format!("simulated JPKI {}", jpki.display()))?;
    let mut card = ca.issue(
        &IssueRequest {
            name: "前橋　花子".into(),
            address: "群馬県前橋市大手町二丁目12番1号".into(),
            birthdate: "1990-04-01".into(),
            sex: "2".into(),
            valid_days: None,
            not_before: None,
        },
        CARD_PIN,
    )?;
    let device = SigningKey::generate(Alg::Es256)?;
    let enrolled = platform
        .api
        .enroll(device.public_jwk(), Some((&mut card, CARD_PIN)))
        .await
        .context("enrollment")?;
    ensure!(
        enrolled["level"] == "verified",
        "the resident is not verified: {enrolled}"
    );
    let credential = enrolled["credential"]
        .as_str()
        .context("no credential in the enrollment answer")?
        .to_owned();

    // Log in on the login page the first authorization shows.
    let first = platform.request(&clients[0].id, redirect_uri, &args.scope)?;
    let page = platform.get(&first.url, None).await?;
    ensure!(
        page.status() == 200,
        "the authorization without a session answered {}",
        page.status()
    );
    let nonce = hidden_input(&page.text().await?, "nonce")?;
    let signature = b64::url_encode(device.sign(nonce.as_bytes())?);
    let login_url = format!("{}/login", platform.api.base());
    let logged_in = platform
        .post_form(
            &login_url,
            &[
                ("credential", &credential),
                ("nonce", &nonce),
                ("signature", &signature),
            ],
            None,
        )
        .await?;
    ensure!(
        logged_in.status() == 303,
        "POST /login answered {}: {}",
        logged_in.status(),
        excerpt(&logged_in.text().await.unwrap_or_default())
    );
    let session = set_cookie(&logged_in, SESSION_COOKIE)
        .context("POST /login set no tsunagu_session cookie")?;
    let mut next = Some(platform.absolute(&location(&logged_in)?));
    let session_expires_at = tsunagu_connector::now() + config.identity.session_ttl_seconds as i64;
    eprintln!(
        "resident enrolled (verified) and logged in; the session lasts {} s",
        config.identity.session_ttl_seconds
    );

    // Consent once per service, then check that a fresh authorization goes straight to a
    // code and that the code buys a valid ID token.
    let mut subjects = Vec::new();
    for c in &mut clients {
        let (url, request) = match next.take() {
            Some(url) => (url, first.clone()),
            None => {
                let r = platform.request(&c.id, redirect_uri, &args.scope)?;
                (r.url.clone(), r)
            }
        };
        let page = platform.get(&url, Some(&session)).await?;
        ensure!(
            page.status() == 200,
            "expected the consent page for {}, got {} {}",
            c.id,
            page.status(),
            location(&page).unwrap_or_default()
        );
        let html = page.text().await?;
        let request_id = hidden_input(&html, "request")?;
        let payload = hidden_input(&html, "consent_payload")?;
        let consent_jws = jws::sign(&device, None, payload.as_bytes())?;
        let consent_url = format!("{}/oauth2/consent", platform.api.base());
        let decided = platform
            .post_form(
                &consent_url,
                &[
                    ("request", &request_id),
                    ("decision", "approve"),
                    ("consent_jws", &consent_jws),
                ],
                Some(&session),
            )
            .await?;
        ensure!(
            decided.status() == 303,
            "the consent for {} answered {}: {}",
            c.id,
            decided.status(),
            excerpt(&decided.text().await.unwrap_or_default())
        );
        let code = platform.code_of(&location(&decided)?, &request, redirect_uri)?;
        let sub = platform.exchange(c, &code, &request, redirect_uri).await?;

        let again = platform.request(&c.id, redirect_uri, &args.scope)?;
        let answer = platform.get(&again.url, Some(&session)).await?;
        ensure!(
            answer.status() == 303,
            "after consenting, an authorization for {} answered {} instead of a code",
            c.id,
            answer.status()
        );
        let code = platform.code_of(&location(&answer)?, &again, redirect_uri)?;
        let sub_again = platform.exchange(c, &code, &again, redirect_uri).await?;
        ensure!(sub == sub_again, "the pairwise sub changed between logins");
        eprintln!(
            "{} ({}): consented; authorize → code → ID token checked (sub {sub})",
            c.id, c.auth
        );
        subjects.push(sub);
    }
    ensure!(
        subjects[0] != subjects[1],
        "two services got the same sub for one resident"
    );

    let name = format!("tsunagu {}", env!("CARGO_PKG_VERSION"));
    for c in &clients {
        let mut setup = json!({
            "name": name,
            "issuer": platform.issuer,
            "client_id": c.id,
            "redirect_uri": redirect_uri,
            "scope": args.scope,
            "auth": c.auth,
            "cookies": {SESSION_COOKIE: session},
            "session_expires_at": session_expires_at,
        });
        match &c.secret {
            Some(secret) => setup["client_secret"] = json!(secret),
            None => {
                setup["client_key_pem"] = json!(c.key_file.to_string_lossy());
                setup["client_key_kid"] = json!(c.key.kid());
            }
        }
        let file = out.join(format!("setup-tsunagu-{}.json", c.label));
        write_private(
            &file,
            format!("{}\n", serde_json::to_string_pretty(&setup)?).as_bytes(),
        )?;
        println!("{}", file.display());
    }
    Ok(())
}

/// Writes a file readable by its owner only (it holds a key, a secret or a session).
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_are_unescaped() {
        assert_eq!(
            html_unescape("{&#34;v&#34;:1,&quot;a&quot;:&#x27;x&#39; &amp; &lt;&gt;}").unwrap(),
            "{\"v\":1,\"a\":'x' & <>}"
        );
        assert!(html_unescape("a &bogus; b").is_err());
        assert!(html_unescape("a & b").is_err());
    }

    #[test]
    fn hidden_inputs_and_query_parameters_are_read() {
        let page = r#"<input type="hidden" name="nonce" value="n&#45;1"><input name="x" value="">"#;
        assert_eq!(hidden_input(page, "nonce").unwrap(), "n-1");
        assert_eq!(hidden_input(page, "x").unwrap(), "");
        assert!(hidden_input(page, "missing").is_err());
        let q = query_params("http://rp/cb?code=a%2Bb&state=s+t&iss=http%3A%2F%2Fop").unwrap();
        assert_eq!(param(&q, "code"), Some("a+b"));
        assert_eq!(param(&q, "state"), Some("s t"));
        assert_eq!(param(&q, "iss"), Some("http://op"));
    }
}
