//! WebAuthn (W3C Web Authentication Level 2/3) as the relying party checks it: the
//! registration of a platform credential (§7.1) and an assertion with it (§7.2), for the
//! one shape tsunagu asks browsers for — an ES256 credential, attestation `"none"`, user
//! verification required. It gates the browser wallet's device key (issue 9, defect 6): a
//! device registered with a credential logs in only with an assertion whose authenticator
//! verified the user (PIN, fingerprint, face).
//!
//! Pure functions: the caller passes the relying party, the expected challenge and the stored
//! credential; nothing here reads a clock or a database. CBOR is read with `coset`'s
//! `ciborium` (the credential public key is a COSE_Key, RFC 9052/9053); the signature is
//! checked with aws-lc-rs. Why not a WebAuthn crate: see ADR 0021.

use coset::cbor::value::Value as Cbor;
use coset::{AsCborValue, CoseKey, KeyType, Label, iana};
use serde::Deserialize;

use crate::jwk::{KeyMaterial, PublicJwk};
use crate::{b64, keys, sha256};

/// Authenticator data flag: user present.
pub const FLAG_UP: u8 = 0x01;
/// Authenticator data flag: user verified.
pub const FLAG_UV: u8 = 0x04;
/// Authenticator data flag: backup eligible.
pub const FLAG_BE: u8 = 0x08;
/// Authenticator data flag: backed up.
pub const FLAG_BS: u8 = 0x10;
/// Authenticator data flag: attested credential data included.
pub const FLAG_AT: u8 = 0x40;
/// Authenticator data flag: extension data included.
pub const FLAG_ED: u8 = 0x80;

/// The longest credential ID the specification allows (§5.1: at most 1023 bytes).
pub const MAX_CREDENTIAL_ID: usize = 1023;
/// Inputs longer than this are refused before parsing (authenticator data, client data,
/// attestation objects of a platform credential are a few hundred bytes).
pub const MAX_INPUT: usize = 16 * 1024;

/// Why a registration or an assertion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebAuthnError {
    #[error("malformed {0}")]
    Malformed(String),
    #[error("clientDataJSON.type is {found:?}, expected {expected:?}")]
    WrongType {
        expected: &'static str,
        found: String,
    },
    #[error("the challenge signed is not the one this request was given")]
    ChallengeMismatch,
    #[error("origin {found:?} is not this platform's ({expected:?})")]
    OriginMismatch { expected: String, found: String },
    #[error("the credential was used from a cross-origin frame")]
    CrossOrigin,
    #[error("the authenticator data is for another relying party ID")]
    RpIdMismatch,
    #[error("the authenticator did not see the user present (UP flag clear)")]
    UserNotPresent,
    #[error(
        "the authenticator did not verify the user (UV flag clear): a PIN, fingerprint or face is required"
    )]
    UserNotVerified,
    #[error("unsupported {0}")]
    Unsupported(String),
    #[error("the assertion is for a different credential than the one registered for this device")]
    UnknownCredential,
    #[error("the assertion signature does not verify with the registered credential key")]
    BadSignature,
    #[error(
        "the signature counter did not increase ({stored} then {received}): the authenticator may have been cloned"
    )]
    CounterNotIncreased { stored: u32, received: u32 },
}

/// The relying party: its RP ID (a registrable domain, e.g. `city.example` or `localhost`)
/// and the exact origin the browser reports (`https://id.city.example`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    pub id: String,
    pub origin: String,
}

impl RelyingParty {
    /// The relying party of a platform served at `public_url`, or why WebAuthn cannot be
    /// used there: browsers accept an RP ID only on a domain name (never an IP address) and
    /// only in a secure context (https, or http on `localhost`).
    pub fn for_public_url(public_url: &str) -> Result<RelyingParty, String> {
        // Parsed as browsers parse it, so the origin is the one they send (default ports
        // dropped, host lowercased).
        let url = url::Url::parse(public_url)
            .map_err(|e| format!("{public_url:?} is not an absolute URL: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the public URL carries user information".into());
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {
                return Err(format!(
                    "WebAuthn needs a domain name, not an IP address ({})",
                    url.host_str().unwrap_or_default()
                ));
            }
            None => return Err("the public URL has no host".into()),
        };
        if host.ends_with('.') || host.starts_with("xn--") || host.contains(".xn--") {
            return Err(format!(
                "use the plain ASCII domain name without a trailing dot for WebAuthn, not {host}"
            ));
        }
        match url.scheme() {
            "https" => {}
            "http" if host == "localhost" => {}
            other => {
                return Err(format!(
                    "WebAuthn needs a secure context: https (or http on localhost), not {other}://{host}"
                ));
            }
        }
        Ok(RelyingParty {
            origin: url.origin().ascii_serialization(),
            id: host,
        })
    }
}

/// A credential as registered: what the platform keeps to check later assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    pub id: Vec<u8>,
    /// The credential's ES256 public key.
    pub public_key: PublicJwk,
    pub sign_count: u32,
    /// The authenticator's AAGUID (all zeros under attestation "none" on most platforms).
    pub aaguid: [u8; 16],
    /// Backup eligible (a synced passkey) at registration.
    pub backup_eligible: bool,
}

/// `navigator.credentials.create()`'s response, as the browser returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationResponse {
    pub client_data_json: Vec<u8>,
    pub attestation_object: Vec<u8>,
}

/// `navigator.credentials.get()`'s response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionResponse {
    pub credential_id: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub authenticator_data: Vec<u8>,
    /// ASN.1 DER ECDSA signature over `authenticator_data || SHA-256(client_data_json)`.
    pub signature: Vec<u8>,
}

/// The members of the wire form (base64url without padding), shared by the API and the
/// web forms: `{"type": "webauthn", "client_data_json", "attestation_object"}` for a
/// registration, `{"type": "webauthn", "credential_id", "client_data_json",
/// "authenticator_data", "signature"}` for an assertion.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireRegistration {
    #[serde(rename = "type")]
    pub kind: String,
    pub client_data_json: String,
    pub attestation_object: String,
}

/// See [`WireRegistration`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireAssertion {
    #[serde(rename = "type")]
    pub kind: String,
    pub credential_id: String,
    pub client_data_json: String,
    pub authenticator_data: String,
    pub signature: String,
}

fn field(name: &str, value: &str) -> Result<Vec<u8>, WebAuthnError> {
    if value.len() > MAX_INPUT * 4 / 3 + 4 {
        return Err(WebAuthnError::Malformed(format!("{name}: too long")));
    }
    b64::url_decode(value).map_err(|_| WebAuthnError::Malformed(format!("{name}: not base64url")))
}

fn check_kind(kind: &str) -> Result<(), WebAuthnError> {
    if kind == "webauthn" {
        Ok(())
    } else {
        Err(WebAuthnError::Unsupported(format!(
            "user verification type {kind:?} (only \"webauthn\")"
        )))
    }
}

impl WireRegistration {
    pub fn decode(&self) -> Result<RegistrationResponse, WebAuthnError> {
        check_kind(&self.kind)?;
        Ok(RegistrationResponse {
            client_data_json: field("client_data_json", &self.client_data_json)?,
            attestation_object: field("attestation_object", &self.attestation_object)?,
        })
    }
}

impl WireAssertion {
    pub fn decode(&self) -> Result<AssertionResponse, WebAuthnError> {
        check_kind(&self.kind)?;
        Ok(AssertionResponse {
            credential_id: field("credential_id", &self.credential_id)?,
            client_data_json: field("client_data_json", &self.client_data_json)?,
            authenticator_data: field("authenticator_data", &self.authenticator_data)?,
            signature: field("signature", &self.signature)?,
        })
    }
}

/// The collected client data (§5.8.1); members not named here are ignored, as the
/// specification requires (browsers add some, e.g. Chromium's `other_keys_can_be_added_here`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientData {
    #[serde(rename = "type")]
    pub kind: String,
    pub challenge: String,
    pub origin: String,
    #[serde(default)]
    pub cross_origin: Option<bool>,
}

/// Parses clientDataJSON (UTF-8 JSON).
pub fn parse_client_data(bytes: &[u8]) -> Result<ClientData, WebAuthnError> {
    if bytes.len() > MAX_INPUT {
        return Err(WebAuthnError::Malformed("clientDataJSON: too long".into()));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| WebAuthnError::Malformed(format!("clientDataJSON: {e}")))
}

/// Parsed authenticator data (§6.1).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatorData {
    pub rp_id_hash: [u8; 32],
    pub flags: u8,
    pub sign_count: u32,
    /// Present when the AT flag is set: (AAGUID, credential ID, credential public key).
    pub attested: Option<([u8; 16], Vec<u8>, PublicJwk)>,
}

/// Parses authenticator data: the fixed 37 bytes, the attested credential data when AT is
/// set, the extensions map when ED is set, and nothing after them.
pub fn parse_authenticator_data(bytes: &[u8]) -> Result<AuthenticatorData, WebAuthnError> {
    let bad = |what: &str| WebAuthnError::Malformed(format!("authenticator data: {what}"));
    if bytes.len() > MAX_INPUT {
        return Err(bad("too long"));
    }
    if bytes.len() < 37 {
        return Err(bad("shorter than 37 bytes"));
    }
    let mut rp_id_hash = [0u8; 32];
    rp_id_hash.copy_from_slice(&bytes[..32]);
    let flags = bytes[32];
    let sign_count = u32::from_be_bytes([bytes[33], bytes[34], bytes[35], bytes[36]]);
    if flags & FLAG_BS != 0 && flags & FLAG_BE == 0 {
        return Err(bad("backed up (BS) but not backup eligible (BE)"));
    }
    let mut rest = &bytes[37..];
    let attested = if flags & FLAG_AT != 0 {
        if rest.len() < 18 {
            return Err(bad("attested credential data truncated"));
        }
        let mut aaguid = [0u8; 16];
        aaguid.copy_from_slice(&rest[..16]);
        let len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
        rest = &rest[18..];
        if len == 0 || len > MAX_CREDENTIAL_ID {
            return Err(bad("credential ID length out of range"));
        }
        if rest.len() < len {
            return Err(bad("credential ID truncated"));
        }
        let id = rest[..len].to_vec();
        rest = &rest[len..];
        let (key, after) =
            read_cbor(rest).map_err(|e| bad(&format!("credential public key: {e}")))?;
        rest = after;
        Some((aaguid, id, cose_es256(key)?))
    } else {
        None
    };
    if flags & FLAG_ED != 0 {
        let (ext, after) = read_cbor(rest).map_err(|e| bad(&format!("extensions: {e}")))?;
        if !matches!(ext, Cbor::Map(_)) {
            return Err(bad("extensions are not a map"));
        }
        rest = after;
    }
    if !rest.is_empty() {
        return Err(bad("bytes left over after the declared contents"));
    }
    Ok(AuthenticatorData {
        rp_id_hash,
        flags,
        sign_count,
        attested,
    })
}

/// Reads one CBOR item from the front of `bytes`; returns it and what follows.
fn read_cbor(bytes: &[u8]) -> Result<(Cbor, &[u8]), String> {
    let mut cursor = bytes;
    let value: Cbor = coset::cbor::de::from_reader_with_recursion_limit(&mut cursor, 16)
        .map_err(|e| e.to_string())?;
    Ok((value, cursor))
}

/// An ES256 public key from a COSE_Key: kty EC2, alg ES256 (-7), crv P-256, x and y.
fn cose_es256(value: Cbor) -> Result<PublicJwk, WebAuthnError> {
    let key = CoseKey::from_cbor_value(value)
        .map_err(|e| WebAuthnError::Malformed(format!("COSE key: {e:?}")))?;
    if key.kty != KeyType::Assigned(iana::KeyType::EC2) {
        return Err(WebAuthnError::Unsupported(format!(
            "credential key type {:?} (only EC2 P-256 with ES256)",
            key.kty
        )));
    }
    if key.alg
        != Some(coset::RegisteredLabelWithPrivate::Assigned(
            iana::Algorithm::ES256,
        ))
    {
        return Err(WebAuthnError::Unsupported(format!(
            "credential algorithm {:?} (only ES256)",
            key.alg
        )));
    }
    let param = |label: i64| {
        key.params
            .iter()
            .find(|(l, _)| *l == Label::Int(label))
            .map(|(_, v)| v)
    };
    let crv = param(iana::Ec2KeyParameter::Crv as i64)
        .and_then(|v| v.as_integer())
        .map(i128::from);
    if crv != Some(iana::EllipticCurve::P_256 as i128) {
        return Err(WebAuthnError::Unsupported(format!(
            "credential curve {crv:?} (only P-256)"
        )));
    }
    let coord = |label: iana::Ec2KeyParameter| -> Result<[u8; 32], WebAuthnError> {
        match param(label as i64) {
            Some(Cbor::Bytes(b)) if b.len() == 32 => {
                let mut out = [0u8; 32];
                out.copy_from_slice(&b[..]);
                Ok(out)
            }
            _ => Err(WebAuthnError::Malformed(format!(
                "COSE key: {label:?} is not a 32-byte string"
            ))),
        }
    };
    let jwk = PublicJwk::bare(KeyMaterial::P256 {
        x: coord(iana::Ec2KeyParameter::X)?,
        y: coord(iana::Ec2KeyParameter::Y)?,
    });
    jwk.verifier()
        .map_err(|_| WebAuthnError::Malformed("COSE key: not a point on P-256".into()))?;
    Ok(jwk)
}

/// Parses an attestation object: `{fmt, attStmt, authData}`. Only `fmt: "none"` with an
/// empty statement is accepted (tsunagu asks for no attestation and trusts none).
pub fn parse_attestation_object(bytes: &[u8]) -> Result<AuthenticatorData, WebAuthnError> {
    let bad = |what: &str| WebAuthnError::Malformed(format!("attestation object: {what}"));
    if bytes.len() > MAX_INPUT {
        return Err(bad("too long"));
    }
    let (value, rest) = read_cbor(bytes).map_err(|e| bad(&e))?;
    if !rest.is_empty() {
        return Err(bad("bytes after the map"));
    }
    let Cbor::Map(entries) = value else {
        return Err(bad("not a map"));
    };
    let (mut fmt, mut stmt, mut auth) = (None, None, None);
    for (k, v) in entries {
        let Cbor::Text(k) = k else {
            return Err(bad("a key is not text"));
        };
        let slot = match k.as_str() {
            "fmt" => &mut fmt,
            "attStmt" => &mut stmt,
            "authData" => &mut auth,
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return Err(bad(&format!("{k} appears twice")));
        }
    }
    match fmt {
        Some(Cbor::Text(f)) if f == "none" => {}
        Some(Cbor::Text(f)) => {
            return Err(WebAuthnError::Unsupported(format!(
                "attestation format {f:?} (tsunagu asks for attestation \"none\")"
            )));
        }
        _ => return Err(bad("fmt missing or not text")),
    }
    match stmt {
        Some(Cbor::Map(m)) if m.is_empty() => {}
        _ => return Err(bad("attStmt of format none must be an empty map")),
    }
    let Some(Cbor::Bytes(auth)) = auth else {
        return Err(bad("authData missing or not a byte string"));
    };
    parse_authenticator_data(&auth)
}

fn check_client_data(
    rp: &RelyingParty,
    expected_type: &'static str,
    challenge: &[u8],
    bytes: &[u8],
) -> Result<(), WebAuthnError> {
    let data = parse_client_data(bytes)?;
    if data.kind != expected_type {
        return Err(WebAuthnError::WrongType {
            expected: expected_type,
            found: data.kind,
        });
    }
    let signed = b64::url_decode(&data.challenge).map_err(|_| WebAuthnError::ChallengeMismatch)?;
    if signed != challenge {
        return Err(WebAuthnError::ChallengeMismatch);
    }
    if data.origin != rp.origin {
        return Err(WebAuthnError::OriginMismatch {
            expected: rp.origin.clone(),
            found: data.origin,
        });
    }
    if data.cross_origin == Some(true) {
        return Err(WebAuthnError::CrossOrigin);
    }
    Ok(())
}

fn check_flags(rp: &RelyingParty, data: &AuthenticatorData) -> Result<(), WebAuthnError> {
    if data.rp_id_hash != sha256(rp.id.as_bytes()) {
        return Err(WebAuthnError::RpIdMismatch);
    }
    if data.flags & FLAG_UP == 0 {
        return Err(WebAuthnError::UserNotPresent);
    }
    if data.flags & FLAG_UV == 0 {
        return Err(WebAuthnError::UserNotVerified);
    }
    Ok(())
}

/// §7.1 for tsunagu's shape: the client data says `webauthn.create` for `challenge` at the
/// platform's origin; the attestation is `none`; the authenticator data is for the RP ID,
/// with the user present **and verified**, and carries an ES256 credential.
pub fn verify_registration(
    rp: &RelyingParty,
    challenge: &[u8],
    response: &RegistrationResponse,
) -> Result<Credential, WebAuthnError> {
    check_client_data(rp, "webauthn.create", challenge, &response.client_data_json)?;
    let data = parse_attestation_object(&response.attestation_object)?;
    check_flags(rp, &data)?;
    let Some((aaguid, id, public_key)) = data.attested else {
        return Err(WebAuthnError::Malformed(
            "authenticator data: no attested credential data (AT flag clear)".into(),
        ));
    };
    Ok(Credential {
        id,
        public_key,
        sign_count: data.sign_count,
        aaguid,
        backup_eligible: data.flags & FLAG_BE != 0,
    })
}

/// §7.2 for tsunagu's shape: the assertion is by `credential`, for `challenge` at the
/// platform's origin, with the user present and verified, signed by the credential's key,
/// and its signature counter (when either side is not zero) has grown. Returns the new
/// counter to store.
pub fn verify_assertion(
    rp: &RelyingParty,
    challenge: &[u8],
    credential_id: &[u8],
    public_key: &PublicJwk,
    stored_count: u32,
    response: &AssertionResponse,
) -> Result<u32, WebAuthnError> {
    if response.credential_id != credential_id {
        return Err(WebAuthnError::UnknownCredential);
    }
    check_client_data(rp, "webauthn.get", challenge, &response.client_data_json)?;
    let data = parse_authenticator_data(&response.authenticator_data)?;
    if data.attested.is_some() {
        return Err(WebAuthnError::Malformed(
            "authenticator data: an assertion carries no attested credential data".into(),
        ));
    }
    check_flags(rp, &data)?;
    let KeyMaterial::P256 { x, y } = &public_key.material else {
        return Err(WebAuthnError::Unsupported(
            "a registered key that is not P-256".into(),
        ));
    };
    let mut point = [0u8; 65];
    point[0] = 4;
    point[1..33].copy_from_slice(x);
    point[33..].copy_from_slice(y);
    let mut signed = response.authenticator_data.clone();
    signed.extend_from_slice(&sha256(&response.client_data_json));
    keys::verify_ecdsa_p256_der(&point, &signed, &response.signature)
        .map_err(|_| WebAuthnError::BadSignature)?;
    if (stored_count != 0 || data.sign_count != 0) && data.sign_count <= stored_count {
        return Err(WebAuthnError::CounterNotIncreased {
            stored: stored_count,
            received: data.sign_count,
        });
    }
    Ok(data.sign_count)
}

/// A software authenticator, for tests and fuzz seeds only: it makes registrations and
/// assertions the way a platform authenticator does (ES256, attestation "none"), with the
/// flags the test chooses. It is not used by the platform.
#[cfg(any(test, feature = "soft-authenticator"))]
pub mod soft {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    use coset::{CborSerializable, CoseKeyBuilder};

    /// A credential held by the software authenticator.
    pub struct SoftAuthenticator {
        pair: EcdsaKeyPair,
        pub credential_id: Vec<u8>,
        pub rp: RelyingParty,
        pub counter: u32,
        /// Flags set on every response (default UP | UV).
        pub flags: u8,
    }

    impl SoftAuthenticator {
        pub fn new(rp: RelyingParty) -> SoftAuthenticator {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .expect("key generation");
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
                .expect("own key");
            let credential_id = crate::random::bytes(16).expect("random");
            SoftAuthenticator {
                pair,
                credential_id,
                rp,
                counter: 0,
                flags: FLAG_UP | FLAG_UV,
            }
        }

        fn client_data(&self, kind: &str, challenge: &[u8]) -> Vec<u8> {
            serde_json::to_vec(&serde_json::json!({
                "type": kind,
                "challenge": b64::url_encode(challenge),
                "origin": self.rp.origin,
                "crossOrigin": false,
            }))
            .expect("json")
        }

        fn header(&self, flags: u8) -> Vec<u8> {
            let mut data = sha256(self.rp.id.as_bytes()).to_vec();
            data.push(flags);
            data.extend_from_slice(&self.counter.to_be_bytes());
            data
        }

        /// The COSE_Key of the credential.
        pub fn cose_key(&self) -> Vec<u8> {
            let point = self.pair.public_key().as_ref();
            CoseKeyBuilder::new_ec2_pub_key(
                iana::EllipticCurve::P_256,
                point[1..33].to_vec(),
                point[33..65].to_vec(),
            )
            .algorithm(iana::Algorithm::ES256)
            .build()
            .to_vec()
            .expect("cbor")
        }

        /// `navigator.credentials.create()` with attestation "none".
        pub fn register(&mut self, challenge: &[u8]) -> RegistrationResponse {
            let mut auth = self.header(self.flags | FLAG_AT);
            auth.extend_from_slice(&[0u8; 16]);
            auth.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
            auth.extend_from_slice(&self.credential_id);
            auth.extend_from_slice(&self.cose_key());
            let object = Cbor::Map(vec![
                (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
                (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
                (Cbor::Text("authData".into()), Cbor::Bytes(auth)),
            ]);
            let mut attestation_object = Vec::new();
            coset::cbor::ser::into_writer(&object, &mut attestation_object).expect("cbor");
            RegistrationResponse {
                client_data_json: self.client_data("webauthn.create", challenge),
                attestation_object,
            }
        }

        /// `navigator.credentials.get()`; the counter grows by one.
        pub fn assert(&mut self, challenge: &[u8]) -> AssertionResponse {
            self.counter += 1;
            let authenticator_data = self.header(self.flags);
            let client_data_json = self.client_data("webauthn.get", challenge);
            let mut signed = authenticator_data.clone();
            signed.extend_from_slice(&sha256(&client_data_json));
            let signature = self
                .pair
                .sign(&SystemRandom::new(), &signed)
                .expect("sign")
                .as_ref()
                .to_vec();
            AssertionResponse {
                credential_id: self.credential_id.clone(),
                client_data_json,
                authenticator_data,
                signature,
            }
        }
    }

    impl RegistrationResponse {
        /// The wire form (as the web app sends it).
        pub fn to_wire(&self) -> serde_json::Value {
            serde_json::json!({
                "type": "webauthn",
                "client_data_json": b64::url_encode(&self.client_data_json),
                "attestation_object": b64::url_encode(&self.attestation_object),
            })
        }
    }

    impl AssertionResponse {
        /// The wire form (as the web app sends it).
        pub fn to_wire(&self) -> serde_json::Value {
            serde_json::json!({
                "type": "webauthn",
                "credential_id": b64::url_encode(&self.credential_id),
                "client_data_json": b64::url_encode(&self.client_data_json),
                "authenticator_data": b64::url_encode(&self.authenticator_data),
                "signature": b64::url_encode(&self.signature),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::soft::SoftAuthenticator;
    use super::*;

    fn rp() -> RelyingParty {
        RelyingParty::for_public_url("https://id.city.example").unwrap()
    }

    fn registered() -> (SoftAuthenticator, Credential) {
        let mut a = SoftAuthenticator::new(rp());
        let r = a.register(b"enrollment challenge 0123456789");
        let c = verify_registration(&rp(), b"enrollment challenge 0123456789", &r).unwrap();
        (a, c)
    }

    #[test]
    fn relying_party_from_public_url() {
        let rp = RelyingParty::for_public_url("https://ID.City.example:8443/base").unwrap();
        assert_eq!(rp.id, "id.city.example");
        assert_eq!(rp.origin, "https://id.city.example:8443");
        assert!(RelyingParty::for_public_url("http://localhost:3000").is_ok());
        // The origin browsers send: no default port.
        let rp = RelyingParty::for_public_url("https://id.city.example:443/").unwrap();
        assert_eq!(rp.origin, "https://id.city.example");
        for bad in [
            "https://127.0.0.1:8443",
            "https://127.1",
            "https://0x7f000001",
            "https://[::1]:8443",
            "http://city.example",
            "city.example",
            "https://user@city.example",
            "https://city.example.",
            "https://前橋.example",
        ] {
            assert!(RelyingParty::for_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_registration_then_assertions_verify_and_the_counter_grows() {
        let (mut a, c) = registered();
        assert_eq!(c.id, a.credential_id);
        assert_eq!(c.sign_count, 0);
        let mut count = c.sign_count;
        for i in 0..3 {
            let challenge = format!("login {i}");
            let resp = a.assert(challenge.as_bytes());
            count = verify_assertion(
                &rp(),
                challenge.as_bytes(),
                &c.id,
                &c.public_key,
                count,
                &resp,
            )
            .unwrap();
        }
        assert_eq!(count, 3);
    }

    #[test]
    fn every_check_of_a_registration_refuses() {
        let mut a = SoftAuthenticator::new(rp());
        let good = a.register(b"c1234567890123456");
        assert_eq!(
            verify_registration(&rp(), b"another challenge", &good),
            Err(WebAuthnError::ChallengeMismatch)
        );
        let other = RelyingParty {
            id: "evil.example".into(),
            origin: rp().origin,
        };
        assert_eq!(
            verify_registration(&other, b"c1234567890123456", &good),
            Err(WebAuthnError::RpIdMismatch)
        );
        let other_origin = RelyingParty {
            id: rp().id,
            origin: "https://evil.example".into(),
        };
        assert!(matches!(
            verify_registration(&other_origin, b"c1234567890123456", &good),
            Err(WebAuthnError::OriginMismatch { .. })
        ));
        a.flags = FLAG_UP;
        assert_eq!(
            verify_registration(&rp(), b"c", &a.register(b"c")),
            Err(WebAuthnError::UserNotVerified)
        );
        a.flags = FLAG_UV;
        assert_eq!(
            verify_registration(&rp(), b"c", &a.register(b"c")),
            Err(WebAuthnError::UserNotPresent)
        );
        // An assertion's client data is not a registration's.
        a.flags = FLAG_UP | FLAG_UV;
        let mut swapped = a.register(b"c");
        swapped.client_data_json = a.assert(b"c").client_data_json;
        assert!(matches!(
            verify_registration(&rp(), b"c", &swapped),
            Err(WebAuthnError::WrongType { .. })
        ));
    }

    #[test]
    fn other_attestation_formats_and_trailing_bytes_are_refused() {
        let mut a = SoftAuthenticator::new(rp());
        let good = a.register(b"c");
        let (value, _) = read_cbor(&good.attestation_object).unwrap();
        let Cbor::Map(mut entries) = value else {
            panic!()
        };
        entries[0].1 = Cbor::Text("packed".into());
        let mut packed = Vec::new();
        coset::cbor::ser::into_writer(&Cbor::Map(entries), &mut packed).unwrap();
        assert!(matches!(
            verify_registration(
                &rp(),
                b"c",
                &RegistrationResponse {
                    attestation_object: packed,
                    ..good.clone()
                }
            ),
            Err(WebAuthnError::Unsupported(_))
        ));
        let mut trailing = good.attestation_object.clone();
        trailing.push(0);
        assert!(matches!(
            parse_attestation_object(&trailing),
            Err(WebAuthnError::Malformed(_))
        ));
        // Every truncation of the authenticator data is refused, never a panic.
        let Ok(data) = parse_attestation_object(&good.attestation_object) else {
            panic!()
        };
        assert!(data.attested.is_some());
        let (value, _) = read_cbor(&good.attestation_object).unwrap();
        let Cbor::Map(entries) = value else { panic!() };
        let auth = entries
            .iter()
            .find_map(|(k, v)| match (k, v) {
                (Cbor::Text(k), Cbor::Bytes(b)) if k == "authData" => Some(b.clone()),
                _ => None,
            })
            .unwrap();
        for n in 0..auth.len() {
            assert!(parse_authenticator_data(&auth[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn every_check_of_an_assertion_refuses() {
        let (mut a, c) = registered();
        let check = |resp: &AssertionResponse, challenge: &[u8], count: u32| {
            verify_assertion(&rp(), challenge, &c.id, &c.public_key, count, resp)
        };
        let resp = a.assert(b"n1");
        assert_eq!(
            check(&resp, b"n2", 0),
            Err(WebAuthnError::ChallengeMismatch)
        );
        // The signature covers the authenticator data: setting UV afterwards breaks it.
        a.flags = FLAG_UP;
        let mut unverified = a.assert(b"n1");
        assert_eq!(
            check(&unverified, b"n1", 0),
            Err(WebAuthnError::UserNotVerified)
        );
        unverified.authenticator_data[32] |= FLAG_UV;
        assert_eq!(
            check(&unverified, b"n1", 0),
            Err(WebAuthnError::BadSignature)
        );
        a.flags = FLAG_UP | FLAG_UV;
        let resp = a.assert(b"n3");
        assert_eq!(
            check(&resp, b"n3", resp_count(&resp)),
            Err(WebAuthnError::CounterNotIncreased {
                stored: resp_count(&resp),
                received: resp_count(&resp)
            })
        );
        let mut other_id = a.assert(b"n4");
        other_id.credential_id[0] ^= 1;
        assert_eq!(
            check(&other_id, b"n4", 0),
            Err(WebAuthnError::UnknownCredential)
        );
        // High-S and other twins: DER parsing refuses garbage.
        let mut garbage = a.assert(b"n5");
        garbage.signature = vec![0x30, 0x00];
        assert_eq!(check(&garbage, b"n5", 0), Err(WebAuthnError::BadSignature));
        // A registration's client data is not an assertion's.
        let mut swapped = a.assert(b"n6");
        swapped.client_data_json = a.register(b"n6").client_data_json;
        assert!(matches!(
            check(&swapped, b"n6", 0),
            Err(WebAuthnError::WrongType { .. })
        ));
    }

    fn resp_count(r: &AssertionResponse) -> u32 {
        parse_authenticator_data(&r.authenticator_data)
            .unwrap()
            .sign_count
    }

    #[test]
    fn the_wire_form_round_trips() {
        let (mut a, c) = registered();
        let resp = a.assert(b"wire");
        let wire: WireAssertion = serde_json::from_value(resp.to_wire()).unwrap();
        let back = wire.decode().unwrap();
        assert_eq!(back, resp);
        assert_eq!(
            verify_assertion(&rp(), b"wire", &c.id, &c.public_key, 0, &back),
            Ok(1)
        );
        let mut v = resp.to_wire();
        v["type"] = "password".into();
        let wire: WireAssertion = serde_json::from_value(v).unwrap();
        assert!(matches!(wire.decode(), Err(WebAuthnError::Unsupported(_))));
    }
}
