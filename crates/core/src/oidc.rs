//! OpenID Connect rules as pure functions: which identity items a scope asks for, whether an
//! authorization request is acceptable (and, when not, whether the error may be sent back to
//! the client or must be shown to the user), the shape of PKCE values, and the refresh-token
//! rotation decision.
//!
//! References: OpenID Connect Core 1.0 §3.1.2 (authorization), RFC 6749 §4.1.2.1 (errors,
//! and when not to redirect), RFC 7636 (PKCE), RFC 9126 (PAR), RFC 9449 (DPoP),
//! the OAuth 2.0 Security BCP (RFC 9700) §4.14 (refresh token rotation and reuse).

use crate::UnixSeconds;
use crate::identity::BasicAttributes;
use crate::service::{IDENTITY_ITEMS, ServiceStatus};
use serde::{Deserialize, Serialize};

/// The scopes this provider knows besides `openid`, and the identity item each releases.
pub const SCOPE_ITEMS: &[(&str, &str)] = &[
    ("profile", "name"),
    ("address", "address"),
    ("birthdate", "birthdate"),
    ("gender", "gender"),
];

/// Every scope value this provider supports.
pub const SCOPES_SUPPORTED: &[&str] = &["openid", "profile", "address", "birthdate", "gender"];

/// How long an authorization code lives.
pub const CODE_SECONDS: i64 = 60;
/// How long a pushed or pending authorization request lives.
pub const REQUEST_SECONDS: i64 = 600;
/// The `expires_in` of a PAR response.
pub const PAR_SECONDS: i64 = 90;
/// The `acr` values: the level of the resident's ID.
pub const ACR_VERIFIED: &str = "urn:tsunagu:acr:verified";
pub const ACR_PROVISIONAL: &str = "urn:tsunagu:acr:provisional";

/// The identity items a space-separated scope asks for, in the order of [`IDENTITY_ITEMS`].
pub fn items_for_scope(scope: &str) -> Vec<String> {
    let asked: Vec<&str> = scope.split_ascii_whitespace().collect();
    IDENTITY_ITEMS
        .iter()
        .filter(|item| {
            SCOPE_ITEMS
                .iter()
                .any(|(s, i)| i == *item && asked.contains(s))
        })
        .map(|i| (*i).to_owned())
        .collect()
}

/// The scope values of `scope` this provider supports, deduplicated, in its order.
pub fn normalize_scope(scope: &str) -> String {
    let asked: Vec<&str> = scope.split_ascii_whitespace().collect();
    SCOPES_SUPPORTED
        .iter()
        .filter(|s| asked.contains(s))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The items released: asked for, approved by the committee for this client, and agreed to
/// by the resident — the intersection, in the order of [`IDENTITY_ITEMS`].
pub fn released_items(asked: &[String], approved: &[String], agreed: &[String]) -> Vec<String> {
    IDENTITY_ITEMS
        .iter()
        .filter(|i| {
            let has = |list: &[String]| list.iter().any(|x| x == *i);
            has(asked) && has(approved) && has(agreed)
        })
        .map(|i| (*i).to_owned())
        .collect()
}

/// An address claim (OpenID Connect Core §5.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressClaim {
    pub formatted: String,
    pub country: String,
}

/// The standard claims (OpenID Connect Core §5.1) of the released identity items; an item
/// not released is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<AddressClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
}

/// The standard claims (OpenID Connect Core §5.1) for the released items.
pub fn claims(attributes: &BasicAttributes, items: &[String]) -> IdentityClaims {
    let mut out = IdentityClaims::default();
    for item in items {
        match item.as_str() {
            "name" => out.name = Some(attributes.name.clone()),
            "address" => {
                out.address = Some(AddressClaim {
                    formatted: attributes.address.clone(),
                    country: "JP".into(),
                })
            }
            "birthdate" => out.birthdate = Some(attributes.birthdate.clone()),
            "gender" => out.gender = Some(attributes.sex.as_str().to_owned()),
            _ => {}
        }
    }
    out
}

/// An authorization request's parameters as received (query, form, or a pushed request).
/// Unknown parameters are ignored, as OAuth requires.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_locales: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The `claims` parameter (OpenID Connect Core §5.5): not supported, and refused rather
    /// than ignored, so that a client asking for particular claims learns it will not get
    /// them that way (the discovery document says `claims_parameter_supported: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
}

/// What the decision needs to know about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFacts<'a> {
    pub id: &'a str,
    pub status: ServiceStatus,
    pub redirect_uris: &'a [String],
}

/// `prompt` (OpenID Connect Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// An acceptable authorization request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    pub client_id: String,
    pub redirect_uri: String,
    /// The supported scope values asked for (always including `openid`).
    pub scope: String,
    /// The identity items the scope asks for.
    pub items: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub ui_locales: Option<String>,
    /// RFC 9449 §10: the DPoP key the client will bind its tokens to.
    pub dpop_jkt: Option<String>,
}

/// Why an authorization request is refused, and where the answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted: the error is shown to the user and
    /// never redirected (RFC 6749 §4.1.2.1, an open redirector otherwise).
    Show {
        error: &'static str,
        description: String,
    },
    /// Sent to the client's (registered) redirect URI.
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
}

impl AuthorizeError {
    pub fn error(&self) -> &'static str {
        match self {
            AuthorizeError::Show { error, .. } | AuthorizeError::Redirect { error, .. } => error,
        }
    }
}

const MAX_PARAM: usize = 512;

fn b64url_of_len(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An RFC 7636 `code_verifier`: 43–128 characters of `[A-Za-z0-9-._~]`.
pub fn verifier_well_formed(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Decides whether an authorization request is acceptable.
pub fn validate(
    p: &AuthorizeParams,
    client: Option<&ClientFacts<'_>>,
) -> Result<Authorization, AuthorizeError> {
    let show = |error: &'static str, description: &str| AuthorizeError::Show {
        error,
        description: description.to_owned(),
    };
    let client_id = p
        .client_id
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| show("invalid_request", "client_id is missing"))?;
    let client = client
        .filter(|c| c.id == client_id)
        .ok_or_else(|| show("invalid_client", "no such client"))?;
    let redirect_uri = p
        .redirect_uri
        .as_deref()
        .ok_or_else(|| show("invalid_request", "redirect_uri is missing"))?;
    // Exact string comparison (OpenID Connect Core §3.1.2.1; RFC 9700 §4.1.3).
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(show(
            "invalid_request",
            "redirect_uri is not registered for this client",
        ));
    }
    let state = p.state.clone();
    let redirect = |error: &'static str, description: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        error,
        description: description.to_owned(),
        state: state.clone(),
    };
    if state.as_deref().is_some_and(|s| s.len() > MAX_PARAM) {
        return Err(redirect("invalid_request", "state is too long"));
    }
    match client.status {
        ServiceStatus::Approved => {}
        ServiceStatus::Suspended => {
            return Err(redirect(
                "unauthorized_client",
                "the governance committee suspended this service",
            ));
        }
        ServiceStatus::PendingReview | ServiceStatus::Rejected => {
            return Err(redirect(
                "unauthorized_client",
                "this service is not approved by the governance committee",
            ));
        }
    }
    if p.request.is_some() {
        return Err(redirect(
            "request_not_supported",
            "request objects are not supported; use pushed authorization requests",
        ));
    }
    if p.claims.is_some() {
        return Err(redirect(
            "request_not_supported",
            "the claims parameter is not supported; ask with scope values (profile, address)",
        ));
    }
    match p.response_type.as_deref() {
        Some("code") => {}
        None => return Err(redirect("invalid_request", "response_type is missing")),
        Some(_) => {
            return Err(redirect(
                "unsupported_response_type",
                "only the authorization code flow (response_type=code) is supported",
            ));
        }
    }
    if p.response_mode.as_deref().is_some_and(|m| m != "query") {
        return Err(redirect(
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    let scope = p.scope.as_deref().unwrap_or("");
    if !scope.split_ascii_whitespace().any(|s| s == "openid") {
        return Err(redirect("invalid_scope", "scope must include openid"));
    }
    let challenge = p.code_challenge.as_deref().ok_or_else(|| {
        redirect(
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        )
    })?;
    if p.code_challenge_method.as_deref() != Some("S256") {
        return Err(redirect(
            "invalid_request",
            "code_challenge_method must be S256",
        ));
    }
    if !b64url_of_len(challenge, 43) {
        return Err(redirect(
            "invalid_request",
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        ));
    }
    if p.nonce
        .as_deref()
        .is_some_and(|n| n.is_empty() || n.len() > MAX_PARAM)
    {
        return Err(redirect(
            "invalid_request",
            "nonce must be 1-512 characters",
        ));
    }
    let mut prompt = Prompt::default();
    for value in p.prompt.as_deref().unwrap_or("").split_ascii_whitespace() {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "select_account" => {}
            _ => return Err(redirect("invalid_request", "unknown prompt value")),
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(redirect(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age =
        match p.max_age.as_deref() {
            None => None,
            Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                redirect("invalid_request", "max_age must be a number of seconds")
            })?),
        };
    if p.dpop_jkt.as_deref().is_some_and(|j| !b64url_of_len(j, 43)) {
        return Err(redirect(
            "invalid_request",
            "dpop_jkt must be a base64url SHA-256 JWK thumbprint",
        ));
    }
    let scope = normalize_scope(scope);
    Ok(Authorization {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        items: items_for_scope(&scope),
        scope,
        state,
        nonce: p.nonce.clone(),
        code_challenge: challenge.to_owned(),
        prompt,
        max_age,
        ui_locales: p.ui_locales.clone().filter(|u| u.len() <= 64),
        dpop_jkt: p.dpop_jkt.clone(),
    })
}

/// Whether the resident must log in (again) before this request is answered.
pub fn login_needed(
    auth: &Authorization,
    session_auth_time: Option<UnixSeconds>,
    now: UnixSeconds,
) -> bool {
    match session_auth_time {
        None => true,
        Some(_) if auth.prompt.login => true,
        Some(t) => auth.max_age.is_some_and(|m| now - t > m),
    }
}

/// What is known about a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFacts<'a> {
    pub client_id: &'a str,
    pub used: bool,
    pub expires_at: UnixSeconds,
    pub grant_revoked: bool,
}

/// The refresh decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Issue new tokens and retire this refresh token.
    Rotate,
    /// The token was used before: someone else holds a copy. Revoke the whole grant
    /// (RFC 9700 §4.14.2) and refuse.
    ReuseDetected,
    /// Refuse (expired, revoked, or another client's token).
    Refuse,
}

pub fn refresh_decision(
    token: &RefreshFacts<'_>,
    presenting_client: &str,
    now: UnixSeconds,
) -> RefreshDecision {
    if token.client_id != presenting_client || token.grant_revoked {
        RefreshDecision::Refuse
    } else if token.used {
        RefreshDecision::ReuseDetected
    } else if token.expires_at <= now {
        RefreshDecision::Refuse
    } else {
        RefreshDecision::Rotate
    }
}

/// What a request's `Authorization` header says about the client (RFC 6749 §2.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuthHeader {
    /// No header, or another scheme.
    None,
    /// `Basic` with the form-decoded client id and secret.
    Basic { id: String, secret: String },
    /// `Basic` that does not decode to `id:secret`.
    MalformedBasic,
}

impl ClientAuthHeader {
    /// Reads an `Authorization` header's value: `Basic` credentials are base64 of
    /// `form-encoded id:form-encoded secret`.
    pub fn parse(value: &str) -> ClientAuthHeader {
        let Some((scheme, rest)) = value.split_once(' ') else {
            return ClientAuthHeader::None;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return ClientAuthHeader::None;
        }
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok());
        let Some((id, secret)) = decoded.as_deref().and_then(|t| t.split_once(':')) else {
            return ClientAuthHeader::MalformedBasic;
        };
        match (form_decode(id), form_decode(secret)) {
            (Some(id), Some(secret)) => ClientAuthHeader::Basic { id, secret },
            _ => ClientAuthHeader::MalformedBasic,
        }
    }
}

/// `application/x-www-form-urlencoded` decoding of one component: `+` is a space, then
/// percent-decoding. A `%` not followed by two hex digits is malformed (`None`), as is text
/// that does not decode to UTF-8.
pub fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> AuthorizeParams {
        AuthorizeParams {
            response_type: Some("code".into()),
            client_id: Some("svc_a".into()),
            redirect_uri: Some("https://rp.example/cb".into()),
            scope: Some("openid profile address".into()),
            state: Some("st".into()),
            nonce: Some("n-1".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            ..Default::default()
        }
    }

    fn uris() -> Vec<String> {
        vec!["https://rp.example/cb".into()]
    }

    fn check(p: &AuthorizeParams, status: ServiceStatus) -> Result<Authorization, AuthorizeError> {
        let uris = uris();
        validate(
            p,
            Some(&ClientFacts {
                id: "svc_a",
                status,
                redirect_uris: &uris,
            }),
        )
    }

    #[test]
    fn a_good_request_is_accepted_with_its_items() {
        let a = check(&params(), ServiceStatus::Approved).unwrap();
        assert_eq!(a.scope, "openid profile address");
        assert_eq!(a.items, vec!["name", "address"]);
        assert_eq!(a.state.as_deref(), Some("st"));
    }

    #[test]
    fn client_and_redirect_errors_are_shown_never_redirected() {
        let mut p = params();
        p.redirect_uri = Some("https://rp.example/cb/../evil".into());
        assert!(matches!(
            check(&p, ServiceStatus::Approved),
            Err(AuthorizeError::Show {
                error: "invalid_request",
                ..
            })
        ));
        p.redirect_uri = Some("https://rp.example/CB".into());
        assert!(matches!(
            check(&p, ServiceStatus::Approved),
            Err(AuthorizeError::Show { .. })
        ));
        let mut p = params();
        p.client_id = Some("svc_other".into());
        assert!(matches!(
            check(&p, ServiceStatus::Approved),
            Err(AuthorizeError::Show {
                error: "invalid_client",
                ..
            })
        ));
        assert!(matches!(
            validate(&params(), None),
            Err(AuthorizeError::Show {
                error: "invalid_client",
                ..
            })
        ));
    }

    type Alter = Box<dyn Fn(&mut AuthorizeParams)>;

    #[test]
    fn other_errors_go_back_to_the_client_with_state() {
        let cases: Vec<(Alter, &str)> = vec![
            (Box::new(|p| p.code_challenge = None), "invalid_request"),
            (
                Box::new(|p| p.code_challenge_method = Some("plain".into())),
                "invalid_request",
            ),
            (
                Box::new(|p| p.code_challenge_method = None),
                "invalid_request",
            ),
            (
                Box::new(|p| p.code_challenge = Some("short".into())),
                "invalid_request",
            ),
            (
                Box::new(|p| p.scope = Some("profile".into())),
                "invalid_scope",
            ),
            (
                Box::new(|p| p.response_type = Some("token".into())),
                "unsupported_response_type",
            ),
            (Box::new(|p| p.response_type = None), "invalid_request"),
            (
                Box::new(|p| p.request = Some("eyJ…".into())),
                "request_not_supported",
            ),
            (
                Box::new(|p| p.claims = Some(r#"{"userinfo":{"name":null}}"#.into())),
                "request_not_supported",
            ),
            (
                Box::new(|p| p.prompt = Some("none login".into())),
                "invalid_request",
            ),
            (
                Box::new(|p| p.max_age = Some("-1".into())),
                "invalid_request",
            ),
            (
                Box::new(|p| p.response_mode = Some("fragment".into())),
                "invalid_request",
            ),
        ];
        for (change, expected) in cases {
            let mut p = params();
            change(&mut p);
            match check(&p, ServiceStatus::Approved) {
                Err(AuthorizeError::Redirect {
                    error,
                    state,
                    redirect_uri,
                    ..
                }) => {
                    assert_eq!(error, expected, "{p:?}");
                    assert_eq!(state.as_deref(), Some("st"));
                    assert_eq!(redirect_uri, "https://rp.example/cb");
                }
                other => panic!("{p:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn only_approved_services_may_log_residents_in() {
        for status in [
            ServiceStatus::PendingReview,
            ServiceStatus::Rejected,
            ServiceStatus::Suspended,
        ] {
            assert_eq!(
                check(&params(), status).unwrap_err().error(),
                "unauthorized_client"
            );
        }
    }

    #[test]
    fn items_are_the_intersection_of_asked_approved_and_agreed() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            released_items(
                &v(&["name", "address", "gender"]),
                &v(&["name", "address", "birthdate"]),
                &v(&["address", "name"])
            ),
            v(&["name", "address"])
        );
        assert_eq!(
            items_for_scope("openid gender birthdate unknown"),
            v(&["birthdate", "gender"])
        );
        assert_eq!(
            normalize_scope("profile openid profile x"),
            "openid profile"
        );
    }

    #[test]
    fn login_is_needed_without_a_session_on_prompt_login_and_past_max_age() {
        let mut a = check(&params(), ServiceStatus::Approved).unwrap();
        assert!(login_needed(&a, None, 100));
        assert!(!login_needed(&a, Some(50), 100));
        a.max_age = Some(30);
        assert!(login_needed(&a, Some(50), 100));
        a.max_age = None;
        a.prompt.login = true;
        assert!(login_needed(&a, Some(99), 100));
    }

    #[test]
    fn a_reused_refresh_token_revokes_its_grant() {
        let facts = |used, revoked| RefreshFacts {
            client_id: "svc_a",
            used,
            expires_at: 200,
            grant_revoked: revoked,
        };
        assert_eq!(
            refresh_decision(&facts(false, false), "svc_a", 100),
            RefreshDecision::Rotate
        );
        assert_eq!(
            refresh_decision(&facts(true, false), "svc_a", 100),
            RefreshDecision::ReuseDetected
        );
        assert_eq!(
            refresh_decision(&facts(true, true), "svc_a", 100),
            RefreshDecision::Refuse
        );
        assert_eq!(
            refresh_decision(&facts(false, false), "svc_b", 100),
            RefreshDecision::Refuse
        );
        assert_eq!(
            refresh_decision(&facts(false, false), "svc_a", 200),
            RefreshDecision::Refuse
        );
    }

    #[test]
    fn verifiers_follow_rfc_7636() {
        assert!(verifier_well_formed(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!verifier_well_formed("short"));
        assert!(!verifier_well_formed(&"a".repeat(129)));
        assert!(!verifier_well_formed(&format!("{}!", "a".repeat(43))));
    }
}
