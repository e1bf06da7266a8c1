//! Public JSON Web Keys (RFC 7517) and their RFC 7638 thumbprints.
//!
//! Only public keys are accepted: a JWK carrying a private member (`d`, `p`, `q`, …) is
//! refused, because tsunagu must never receive a device's or a service's private key.

use crate::{CryptoError, b64, jcs, sha256};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
};
use serde_json::{Map, Value, json};

/// The key material of a public JWK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyMaterial {
    /// `kty: EC`, `crv: P-256`.
    P256 { x: [u8; 32], y: [u8; 32] },
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519 { x: [u8; 32] },
    /// `kty: RSA` (for verifying RS256 from services; tsunagu itself signs with ES256/EdDSA).
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// A validated public JWK. Equality and thumbprints consider the key material only.
#[derive(Clone, Debug)]
pub struct PublicJwk {
    pub material: KeyMaterial,
    pub kid: Option<String>,
    pub alg: Option<String>,
    pub use_: Option<String>,
}

impl PartialEq for PublicJwk {
    fn eq(&self, other: &Self) -> bool {
        self.material == other.material
    }
}

const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, CryptoError> {
    obj.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| CryptoError::InvalidKey(format!("member `{name}` missing or not a string")))
}

fn fixed32(obj: &Map<String, Value>, name: &str) -> Result<[u8; 32], CryptoError> {
    let bytes = b64::url_decode(member(obj, name)?)
        .map_err(|_| CryptoError::InvalidKey(format!("member `{name}` is not base64url")))?;
    bytes
        .try_into()
        .map_err(|_| CryptoError::InvalidKey(format!("member `{name}` must be 32 bytes")))
}

fn optional_string(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, CryptoError> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CryptoError::InvalidKey(format!(
            "member `{name}` must be a string"
        ))),
    }
}

impl PublicJwk {
    /// Reads and validates a public JWK (the point must be on the curve, RSA at least 2048 bits).
    pub fn from_value(value: &Value) -> Result<PublicJwk, CryptoError> {
        let obj = value
            .as_object()
            .ok_or_else(|| CryptoError::InvalidKey("a JWK must be a JSON object".into()))?;
        if let Some(private) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return Err(CryptoError::InvalidKey(format!(
                "private member `{private}` present: send the public key only"
            )));
        }
        let material = match member(obj, "kty")? {
            "EC" => {
                let crv = member(obj, "crv")?;
                if crv != "P-256" {
                    return Err(CryptoError::InvalidKey(format!(
                        "curve `{crv}` unsupported: P-256 only"
                    )));
                }
                KeyMaterial::P256 {
                    x: fixed32(obj, "x")?,
                    y: fixed32(obj, "y")?,
                }
            }
            "OKP" => {
                let crv = member(obj, "crv")?;
                if crv != "Ed25519" {
                    return Err(CryptoError::InvalidKey(format!(
                        "curve `{crv}` unsupported: Ed25519 only"
                    )));
                }
                KeyMaterial::Ed25519 {
                    x: fixed32(obj, "x")?,
                }
            }
            "RSA" => {
                let n = b64::url_decode(member(obj, "n")?)
                    .map_err(|_| CryptoError::InvalidKey("`n` is not base64url".into()))?;
                let e = b64::url_decode(member(obj, "e")?)
                    .map_err(|_| CryptoError::InvalidKey("`e` is not base64url".into()))?;
                if n.first() == Some(&0) || e.first() == Some(&0) || e.is_empty() {
                    return Err(CryptoError::InvalidKey(
                        "RSA members must be unsigned big-endian without leading zeros".into(),
                    ));
                }
                KeyMaterial::Rsa { n, e }
            }
            other => {
                return Err(CryptoError::InvalidKey(format!(
                    "key type `{other}` unsupported"
                )));
            }
        };
        let jwk = PublicJwk {
            material,
            kid: optional_string(obj, "kid")?,
            alg: optional_string(obj, "alg")?,
            use_: optional_string(obj, "use")?,
        };
        jwk.verifier()?;
        Ok(jwk)
    }

    /// Parses a JWK from JSON text.
    pub fn from_json(text: &str) -> Result<PublicJwk, CryptoError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| CryptoError::InvalidKey(format!("not JSON: {e}")))?;
        PublicJwk::from_value(&value)
    }

    /// A P-256 key from its uncompressed SEC1 point.
    pub fn p256_from_sec1(point: &[u8]) -> Result<PublicJwk, CryptoError> {
        if point.len() != 65 || point[0] != 4 {
            return Err(CryptoError::InvalidKey(
                "expected an uncompressed P-256 point".into(),
            ));
        }
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        x.copy_from_slice(&point[1..33]);
        y.copy_from_slice(&point[33..65]);
        let jwk = PublicJwk::bare(KeyMaterial::P256 { x, y });
        jwk.verifier()?;
        Ok(jwk)
    }

    /// A JWK with no optional members.
    pub fn bare(material: KeyMaterial) -> PublicJwk {
        PublicJwk {
            material,
            kid: None,
            alg: None,
            use_: None,
        }
    }

    /// The same key with `kid`, `alg` and `use` set, for publishing in a JWKS.
    pub fn with_metadata(mut self, kid: &str, alg: &str, use_: &str) -> PublicJwk {
        self.kid = Some(kid.to_owned());
        self.alg = Some(alg.to_owned());
        self.use_ = Some(use_.to_owned());
        self
    }

    /// The JOSE algorithm this key verifies.
    pub fn jose_alg(&self) -> &'static str {
        match self.material {
            KeyMaterial::P256 { .. } => "ES256",
            KeyMaterial::Ed25519 { .. } => "EdDSA",
            KeyMaterial::Rsa { .. } => "RS256",
        }
    }

    /// The members that define the key (RFC 7638 §3.2), as a JSON object.
    fn required_members(&self) -> Value {
        match &self.material {
            KeyMaterial::P256 { x, y } => json!({
                "crv": "P-256", "kty": "EC", "x": b64::url_encode(x), "y": b64::url_encode(y)
            }),
            KeyMaterial::Ed25519 { x } => json!({
                "crv": "Ed25519", "kty": "OKP", "x": b64::url_encode(x)
            }),
            KeyMaterial::Rsa { n, e } => json!({
                "e": b64::url_encode(e), "kty": "RSA", "n": b64::url_encode(n)
            }),
        }
    }

    /// The JWK as JSON, with optional members when set.
    pub fn to_value(&self) -> Value {
        let mut value = self.required_members();
        if let Some(obj) = value.as_object_mut() {
            for (name, v) in [("kid", &self.kid), ("alg", &self.alg), ("use", &self.use_)] {
                if let Some(v) = v {
                    obj.insert(name.to_owned(), Value::String(v.clone()));
                }
            }
        }
        value
    }

    /// RFC 7638 SHA-256 thumbprint, base64url. The required members in lexicographic order
    /// without whitespace are exactly their JCS form.
    pub fn thumbprint(&self) -> String {
        let canonical = jcs::to_vec(&self.required_members())
            .expect("a JSON object of strings always canonicalizes");
        b64::url_encode(sha256(&canonical))
    }

    /// A verifier for signatures by this key (ECDSA with fixed-size r||s, Ed25519, RSA
    /// PKCS#1 v1.5 with SHA-256).
    pub fn verifier(&self) -> Result<ParsedPublicKey, CryptoError> {
        let rejected = |e: aws_lc_rs::error::KeyRejected| {
            CryptoError::InvalidKey(format!("key rejected: {e}"))
        };
        match &self.material {
            KeyMaterial::P256 { x, y } => {
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map_err(rejected)
            }
            KeyMaterial::Ed25519 { x } => ParsedPublicKey::new(&ED25519, x).map_err(rejected),
            KeyMaterial::Rsa { n, e } => {
                let der = rsa_public_key_der(n, e);
                ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).map_err(rejected)
            }
        }
    }
}

/// DER of `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, bytes: &[u8]) {
        let pad = bytes.first().is_some_and(|b| b & 0x80 != 0);
        let len = bytes.len() + usize::from(pad);
        out.push(0x02);
        length(out, len);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(bytes);
    }
    fn length(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(&mut body, n);
    integer(&mut body, e);
    let mut out = Vec::with_capacity(body.len() + 8);
    out.push(0x30);
    length(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

/// A JWK in configuration and other documents: checked when it is read (a private member,
/// an unknown key type or curve is an error there, not later).
impl serde::Serialize for PublicJwk {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for PublicJwk {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        PublicJwk::from_value(&value).map_err(serde::de::Error::custom)
    }
}

/// A JSON Web Key Set. Equal when the keys' material is, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JwkSet {
    pub keys: Vec<PublicJwk>,
}

impl serde::Serialize for JwkSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

/// Reads `{"keys": [...]}` with every key checked (public keys only).
impl<'de> serde::Deserialize<'de> for JwkSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        JwkSet::from_value(&value).map_err(|e| serde::de::Error::custom(format!("jwks: {e}")))
    }
}

impl JwkSet {
    /// Reads `{"keys": [...]}`; every key must be a valid public key.
    pub fn from_value(value: &Value) -> Result<JwkSet, CryptoError> {
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| CryptoError::InvalidKey("a JWKS needs a `keys` array".into()))?;
        let keys = keys
            .iter()
            .map(PublicJwk::from_value)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JwkSet { keys })
    }

    pub fn to_value(&self) -> Value {
        json!({ "keys": self.keys.iter().map(PublicJwk::to_value).collect::<Vec<_>>() })
    }

    /// The key with this `kid`, or with this RFC 7638 thumbprint when no key names it.
    pub fn find(&self, kid: &str) -> Option<&PublicJwk> {
        self.keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .or_else(|| self.keys.iter().find(|k| k.thumbprint() == kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1: the RSA key of RFC 7517 Appendix A.1 and its thumbprint.
    #[test]
    fn rfc7638_example_thumbprint() {
        let jwk = PublicJwk::from_value(&json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    /// RFC 8037 Appendix A.3: the Ed25519 key's RFC 7638 thumbprint.
    #[test]
    fn rfc8037_ed25519_thumbprint() {
        let jwk = PublicJwk::from_value(&json!({
            "kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn optional_members_do_not_change_the_thumbprint() {
        let a = PublicJwk::from_value(&json!({
            "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }))
        .unwrap();
        let b = a.clone().with_metadata("k1", "EdDSA", "sig");
        assert_eq!(a.thumbprint(), b.thumbprint());
        assert_eq!(PublicJwk::from_value(&b.to_value()).unwrap(), a);
    }

    #[test]
    fn private_keys_are_refused() {
        let err = PublicJwk::from_value(&json!({
            "kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("private member `d`"), "{err}");
    }

    #[test]
    fn a_point_off_the_curve_is_refused() {
        let err = PublicJwk::from_value(&json!({
            "kty": "EC", "crv": "P-256",
            "x": b64::url_encode([1u8; 32]), "y": b64::url_encode([2u8; 32])
        }));
        assert!(matches!(err, Err(CryptoError::InvalidKey(_))));
    }

    #[test]
    fn other_curves_and_types_are_refused() {
        for jwk in [
            json!({"kty":"EC","crv":"P-384","x":"AA","y":"AA"}),
            json!({"kty":"oct","k":"AA"}),
            json!({"kty":"OKP","crv":"X25519","x":"AA"}),
            json!("a string"),
            json!({"kty":"EC","crv":"P-256","x":"AA"}),
        ] {
            assert!(PublicJwk::from_value(&jwk).is_err(), "{jwk}");
        }
    }

    #[test]
    fn rsa_public_key_der_matches_the_standard_encoding() {
        // 0x00 padding is added when the high bit is set.
        assert_eq!(
            rsa_public_key_der(&[0x80], &[1, 0, 1]),
            vec![
                0x30, 0x09, 0x02, 0x02, 0x00, 0x80, 0x02, 0x03, 0x01, 0x00, 0x01
            ]
        );
    }
}
