//! Services and their applications (SPEC §4): who they are, the items they offer as
//! providers, the purposes they ask for as consumers, and the review state.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Consumer, provider, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    Consumer,
    Provider,
    Both,
}

impl ServiceKind {
    pub fn consumes(self) -> bool {
        matches!(self, ServiceKind::Consumer | ServiceKind::Both)
    }

    pub fn provides(self) -> bool {
        matches!(self, ServiceKind::Provider | ServiceKind::Both)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Consumer => "consumer",
            ServiceKind::Provider => "provider",
            ServiceKind::Both => "both",
        }
    }

    pub fn parse(s: &str) -> Option<ServiceKind> {
        match s {
            "consumer" => Some(ServiceKind::Consumer),
            "provider" => Some(ServiceKind::Provider),
            "both" => Some(ServiceKind::Both),
            _ => None,
        }
    }
}

/// The review state of a service (審査).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    PendingReview,
    Approved,
    Rejected,
    /// Suspended by the committee: its tickets are refused until reinstated.
    Suspended,
}

impl ServiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::PendingReview => "pending_review",
            ServiceStatus::Approved => "approved",
            ServiceStatus::Rejected => "rejected",
            ServiceStatus::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<ServiceStatus> {
        match s {
            "pending_review" => Some(ServiceStatus::PendingReview),
            "approved" => Some(ServiceStatus::Approved),
            "rejected" => Some(ServiceStatus::Rejected),
            "suspended" => Some(ServiceStatus::Suspended),
            _ => None,
        }
    }
}

/// Data classes of the Smart City Security Guidebook: open (public), limited (shared
/// among named parties under conditions), closed (personal data, restricted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataClass {
    Open,
    Limited,
    Closed,
}

impl DataClass {
    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::Open => "open",
            DataClass::Limited => "limited",
            DataClass::Closed => "closed",
        }
    }
}

/// The legal basis of a purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// The resident's signed, revocable opt-in consent (dynamic opt-in).
    Consent,
    /// Protection of life, body or property (e.g. allergy data to the fire brigade).
    VitalInterest,
    /// A provision of law, named in `citation`.
    Statutory,
}

impl LegalBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::VitalInterest => "vital_interest",
            LegalBasis::Statutory => "statutory",
        }
    }

    pub fn parse(s: &str) -> Option<LegalBasis> {
        match s {
            "consent" => Some(LegalBasis::Consent),
            "vital_interest" => Some(LegalBasis::VitalInterest),
            "statutory" => Some(LegalBasis::Statutory),
            _ => None,
        }
    }
}

/// An item a provider offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    pub item: String,
    pub title_ja: String,
    #[serde(default)]
    pub title_en: Option<String>,
    pub data_class: DataClass,
    /// 要配慮個人情報 and similar: health, allergies, beliefs, criminal records….
    #[serde(default)]
    pub sensitive: bool,
}

/// How a purpose asks for agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// Nothing flows until the resident opts in.
    #[default]
    OptIn,
    /// Data flows unless the resident objects. Declared so the lint can refuse it.
    OptOut,
}

/// A purpose a consumer asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purpose {
    pub id: String,
    pub title_ja: String,
    pub title_en: String,
    pub description_ja: String,
    pub description_en: String,
    /// The service id of the source, or `tsunagu` for identity claims (OpenID Connect).
    pub provider: String,
    pub items: Vec<String>,
    /// Why each item is needed.
    #[serde(default)]
    pub uses: BTreeMap<String, String>,
    pub retention_days: u32,
    pub legal_basis: LegalBasis,
    #[serde(default)]
    pub citation: Option<String>,
    #[serde(default)]
    pub consent_mode: ConsentMode,
}

/// The security checklist of an application.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    #[serde(default)]
    pub iso27001: bool,
    #[serde(default)]
    pub incident_contact: String,
    #[serde(default)]
    pub subcontractors: Vec<String>,
}

/// `POST /v1/services`. `K` is the service's JSON Web Key Set: the rules here do not look at
/// keys, and this crate has no cryptography; the platform reads it as
/// `tsunagu_crypto::jwk::JwkSet` (public keys only, each checked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application<K> {
    pub name: String,
    pub organization: String,
    pub contact: String,
    pub kind: ServiceKind,
    pub jwks: K,
    /// Providers: where tickets are redeemed.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Where the platform may send the browser after an RP-initiated logout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// How the service authenticates at the token endpoint: `private_key_jwt` (the default)
    /// or `client_secret_basic` (the platform then issues a client secret once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub offers: Vec<Offer>,
    #[serde(default)]
    pub purposes: Vec<Purpose>,
    #[serde(default)]
    pub security: Security,
    /// The service's acceptance of the contract obligations ([`OBLIGATIONS`]): a compact JWS
    /// by a key of its own JWKS over `{"obligations_sha256": <hex SHA-256 of
    /// [`obligations_text`]>}`. Without it the lint warns `obligations_not_accepted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obligations_acceptance: Option<String>,
    /// Mutual TLS (RFC 8705): the client certificate the service connects with, as PEM, or
    /// only its SHA-256 (`x5t#S256`: 43 characters of base64url). A connection made with it
    /// (chaining to the platform's `[server] client_ca`) authenticates as the service
    /// without a client assertion, and its tickets are bound to the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_certificate: Option<String>,
}

/// Whether `text` has the shape of an `x5t#S256` (the base64url SHA-256 of a certificate,
/// without padding).
pub fn is_x5t_s256(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The obligations a service accepts by contract with its approval (SPEC §4): code, the
/// Japanese text, the English text.
pub const OBLIGATIONS: &[(&str, &str, &str)] = &[
    (
        "purpose_limitation",
        "受け取った情報は、承認された目的にだけ使います。",
        "We use what we receive only for the approved purposes.",
    ),
    (
        "no_id_linkage_beyond_limit",
        "受け取った識別子を、承認された範囲を超えて他の情報と結び付けません。",
        "We do not link the identifiers we receive with other data beyond the approved scope.",
    ),
    (
        "no_advertising_use",
        "受け取った情報を広告やマーケティングに使いません。",
        "We do not use what we receive for advertising or marketing.",
    ),
    (
        "incident_reporting",
        "漏えいなどの事故は、直ちに運営者とデータガバナンス委員会に報告します。",
        "We report any incident, such as a leak, to the operator and the committee at once.",
    ),
    (
        "resident_interest_first",
        "住民の利益を第一にし、住民がいつでも同意を撤回できるようにします。",
        "We put residents' interests first and let them withdraw consent at any time.",
    ),
];

/// The obligations as the text a service signs the hash of: one line per obligation,
/// `code<TAB>Japanese<TAB>English`, each ending in a line feed.
pub fn obligations_text() -> String {
    OBLIGATIONS
        .iter()
        .map(|(code, ja, en)| format!("{code}\t{ja}\t{en}\n"))
        .collect()
}

/// Token endpoint authentication by a JWT signed with a key in the service's JWKS (RFC 7523).
pub const TOKEN_AUTH_PRIVATE_KEY_JWT: &str = "private_key_jwt";
/// Token endpoint authentication by HTTP Basic with a secret the platform issued.
pub const TOKEN_AUTH_CLIENT_SECRET_BASIC: &str = "client_secret_basic";
/// RFC 8705 §2: the client authenticates at the token and PAR endpoints by the mutual-TLS
/// connection, with the certificate it registered (`tls_client_certificate`).
pub const TOKEN_AUTH_TLS_CLIENT_AUTH: &str = "tls_client_auth";

impl<K> Application<K> {
    /// The token endpoint authentication method the service registered.
    pub fn token_auth_method(&self) -> &str {
        self.token_endpoint_auth_method
            .as_deref()
            .unwrap_or(TOKEN_AUTH_PRIVATE_KEY_JWT)
    }
}

/// The provider id that stands for the platform itself (identity claims over OIDC).
pub const PLATFORM_PROVIDER: &str = "tsunagu";

/// Identity claims the platform can provide, as items of the `tsunagu` provider.
pub const IDENTITY_ITEMS: &[&str] = &["name", "address", "birthdate", "gender"];

/// The first character of `text` that would make what a resident reads differ from what it
/// says: controls (NUL and the rest; line breaks and tabs only where `multiline`), the
/// bidirectional overrides, embeddings, isolates and marks (an RLO turns `gpj.exe` around),
/// zero-width characters and other invisible formatting, and noncharacters.
pub fn deceptive_char(text: &str, multiline: bool) -> Option<char> {
    text.chars().find(|&c| {
        let cp = c as u32;
        let control = c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t'));
        let bidi = matches!(cp, 0x061C | 0x200E | 0x200F | 0x202A..=0x202E | 0x2066..=0x2069);
        let invisible = matches!(
            cp,
            0x00AD | 0x034F | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
                | 0x200B..=0x200D | 0x2060..=0x2064 | 0x206A..=0x206F | 0x3164 | 0xFEFF
                | 0xFFA0 | 0xFFF9..=0xFFFB | 0x1D173..=0x1D17A | 0xE0000..=0xE007F
        );
        let nonchar = matches!(cp, 0xFDD0..=0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
        control || bidi || invisible || nonchar
    })
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl<K> Application<K> {
    /// Structural checks an application must pass before it is even linted: required
    /// texts present, identifiers well-formed, kind-specific parts present, no duplicates.
    /// The message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let text = |name: &str, value: &str, max: usize| -> Result<(), String> {
            if value.trim().is_empty() {
                Err(format!("`{name}` is required"))
            } else if value.chars().count() > max {
                Err(format!("`{name}` is longer than {max} characters"))
            } else if let Some(c) = deceptive_char(value, max > 200) {
                Err(format!(
                    "`{name}` contains U+{:04X}, a control, direction or invisible character: \
                     residents read this text, so it must show what it says",
                    c as u32
                ))
            } else {
                Ok(())
            }
        };
        text("name", &self.name, 200)?;
        text("organization", &self.organization, 200)?;
        text("contact", &self.contact, 200)?;
        if let Some(cert) = &self.tls_client_certificate {
            let cert = cert.trim();
            if !cert.starts_with("-----BEGIN CERTIFICATE-----") && !is_x5t_s256(cert) {
                return Err(
                    "`tls_client_certificate` is a PEM certificate or its x5t#S256 \
                     (the base64url SHA-256 of the DER, 43 characters)"
                        .into(),
                );
            }
        }
        if self.kind.provides() {
            let endpoint = self.endpoint.as_deref().unwrap_or("");
            if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                return Err(
                    "providers need an `endpoint` (http or https URL) where tickets are redeemed"
                        .into(),
                );
            }
            if self.offers.is_empty() {
                return Err("providers list the items they offer in `offers`".into());
            }
        }
        if self.kind.consumes() && self.purposes.is_empty() && self.redirect_uris.is_empty() {
            return Err(
                "consumers list their `purposes` (or `redirect_uris` for login only)".into(),
            );
        }
        if !self.kind.consumes() && !self.purposes.is_empty() {
            return Err("only consumers (kind consumer or both) may ask for purposes".into());
        }
        for uri in self
            .redirect_uris
            .iter()
            .chain(&self.post_logout_redirect_uris)
        {
            if !(uri.starts_with("https://") || uri.starts_with("http://"))
                || uri.contains('#')
                || uri.len() > 512
            {
                return Err(format!(
                    "redirect URI `{uri}` must be an absolute http(s) URL without a fragment"
                ));
            }
        }
        if self.redirect_uris.len() + self.post_logout_redirect_uris.len() > 20 {
            return Err("at most 20 redirect URIs".into());
        }
        match self.token_endpoint_auth_method.as_deref() {
            None | Some(TOKEN_AUTH_PRIVATE_KEY_JWT) | Some(TOKEN_AUTH_CLIENT_SECRET_BASIC) => {}
            Some(TOKEN_AUTH_TLS_CLIENT_AUTH) => {
                if self.tls_client_certificate.is_none() {
                    return Err(
                        "token_endpoint_auth_method `tls_client_auth` needs `tls_client_certificate`"
                            .into(),
                    );
                }
            }
            Some(other) => {
                return Err(format!(
                    "token_endpoint_auth_method `{other}` is not supported (private_key_jwt, client_secret_basic or tls_client_auth)"
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for offer in &self.offers {
            if !is_identifier(&offer.item) {
                return Err(format!(
                    "offer item `{}` must be 1-64 letters, digits, - _ .",
                    offer.item
                ));
            }
            text(
                &format!("offers[{}].title_ja", offer.item),
                &offer.title_ja,
                200,
            )?;
            if !seen.insert(offer.item.as_str()) {
                return Err(format!("offer item `{}` is listed twice", offer.item));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for p in &self.purposes {
            if !is_identifier(&p.id) {
                return Err(format!(
                    "purpose id `{}` must be 1-64 letters, digits, - _ .",
                    p.id
                ));
            }
            if !ids.insert(p.id.as_str()) {
                return Err(format!("purpose id `{}` is listed twice", p.id));
            }
            text(&format!("purposes[{}].title_ja", p.id), &p.title_ja, 200)?;
            text(&format!("purposes[{}].title_en", p.id), &p.title_en, 200)?;
            text(
                &format!("purposes[{}].description_ja", p.id),
                &p.description_ja,
                4000,
            )?;
            text(
                &format!("purposes[{}].description_en", p.id),
                &p.description_en,
                4000,
            )?;
            if p.provider.trim().is_empty() {
                return Err(format!("purposes[{}].provider is required", p.id));
            }
            if p.items.is_empty() {
                return Err(format!(
                    "purposes[{}].items must name at least one item",
                    p.id
                ));
            }
            let mut items = std::collections::BTreeSet::new();
            for item in &p.items {
                if !is_identifier(item) {
                    return Err(format!(
                        "purposes[{}]: item `{item}` is not a valid item name",
                        p.id
                    ));
                }
                if !items.insert(item.as_str()) {
                    return Err(format!("purposes[{}]: item `{item}` is listed twice", p.id));
                }
            }
            if p.retention_days == 0 {
                return Err(format!(
                    "purposes[{}].retention_days must be at least 1",
                    p.id
                ));
            }
            if p.provider == PLATFORM_PROVIDER
                && let Some(item) = p
                    .items
                    .iter()
                    .find(|i| !IDENTITY_ITEMS.contains(&i.as_str()))
            {
                return Err(format!(
                    "purposes[{}]: the platform provides only {} (not `{item}`)",
                    p.id,
                    IDENTITY_ITEMS.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// What a resident agrees to when consenting to a purpose: the purpose as approved, with
/// the two services. Its SHA-256 (over the JCS) is the consent's `terms_sha256`, so a
/// changed purpose is a new agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    pub consumer: String,
    pub consumer_name: String,
    pub provider: String,
    pub provider_name: String,
    pub purpose: Purpose,
}
