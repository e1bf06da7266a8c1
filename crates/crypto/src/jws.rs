//! JWS compact serialization (RFC 7515) with ES256 and EdDSA, parsed strictly.
//!
//! tsunagu signs the JCS bytes of JSON payloads; verification checks the bytes as received.
//! Parsing refuses: anything but three base64url parts, padding, a header that is not a JSON
//! object with a string `alg`, `alg: none` and unknown algorithms, any `crit` extension,
//! and tokens longer than [`MAX_COMPACT_LEN`].

use crate::jwk::PublicJwk;
use crate::keys::{self, Alg, SigningKey};
use crate::{CryptoError, b64, jcs};
use serde::Serialize;
use serde_json::{Map, Value};

/// The longest compact JWS accepted.
pub const MAX_COMPACT_LEN: usize = 64 * 1024;

/// A parsed, not yet verified, compact JWS.
#[derive(Debug, Clone)]
pub struct Jws {
    pub alg: Alg,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// The whole protected header.
    pub header: Map<String, Value>,
    pub payload: Vec<u8>,
    signature: Vec<u8>,
    signing_input: String,
}

/// Splits and decodes a compact JWS.
pub fn parse(compact: &str) -> Result<Jws, CryptoError> {
    if compact.len() > MAX_COMPACT_LEN {
        return Err(CryptoError::Malformed("JWS too long".into()));
    }
    let mut parts = compact.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CryptoError::Malformed(
            "a compact JWS has exactly three parts".into(),
        ));
    };
    let header_bytes = b64::url_decode(h)?;
    let header: Map<String, Value> = match serde_json::from_slice(&header_bytes) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(CryptoError::Malformed(
                "the JWS header is not a JSON object".into(),
            ));
        }
    };
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| CryptoError::Malformed("the JWS header has no `alg`".into()))?;
    let alg = Alg::parse(alg_name)
        .ok_or_else(|| CryptoError::Unsupported(format!("JWS algorithm `{alg_name}`")))?;
    if header.contains_key("crit") {
        return Err(CryptoError::Unsupported(
            "JWS `crit` extensions are not understood".into(),
        ));
    }
    let string_member = |name: &str| -> Result<Option<String>, CryptoError> {
        match header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(CryptoError::Malformed(format!(
                "JWS header `{name}` is not a string"
            ))),
        }
    };
    let kid = string_member("kid")?;
    let typ = string_member("typ")?;
    let payload = b64::url_decode(p)?;
    let signature = b64::url_decode(s)?;
    Ok(Jws {
        alg,
        kid,
        typ,
        signing_input: compact[..h.len() + 1 + p.len()].to_owned(),
        header,
        payload,
        signature,
    })
}

/// The order n of P-256's group, big-endian.
const P256_N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// `a - b` for big-endian 32-byte numbers with `a >= b`.
fn sub_be(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

/// The other signature of an ES256 pair (`r || n - s`): it verifies wherever the first
/// does. `None` when `signature` is not 64 bytes with `0 < s < n`.
pub fn es256_twin(signature: &[u8]) -> Option<Vec<u8>> {
    let s: [u8; 32] = signature
        .get(32..64)
        .filter(|_| signature.len() == 64)?
        .try_into()
        .ok()?;
    if s >= P256_N || s == [0u8; 32] {
        return None;
    }
    let mut out = signature[..32].to_vec();
    out.extend_from_slice(&sub_be(&P256_N, &s));
    Some(out)
}

/// An ES256 signature (`r || s`, 64 bytes) in its low-S form: when `s > n/2` it is replaced
/// by `n - s`, which verifies as well (ECDSA signatures come in such twins). Anything else is
/// returned as it is.
pub fn es256_low_s(signature: &[u8]) -> Vec<u8> {
    match es256_twin(signature) {
        // s > n/2  ⇔  s > n - s (big-endian byte order is numeric order).
        Some(twin) if signature[32..] > twin[32..] => twin,
        _ => signature.to_vec(),
    }
}

impl Jws {
    /// The signature as sent (decoded).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The header and payload as sent (`base64url(header).base64url(payload)`).
    pub fn signing_input(&self) -> &str {
        &self.signing_input
    }

    /// The signature in its one canonical form (the low-S twin for ES256; Ed25519
    /// signatures are not malleable).
    pub fn canonical_signature(&self) -> Vec<u8> {
        match self.alg {
            keys::Alg::Es256 => es256_low_s(&self.signature),
            _ => self.signature.clone(),
        }
    }

    /// The compact serialization with the canonical signature (and canonical base64): one
    /// signed statement has one such form, so evidence hashes and replay keys computed over
    /// it cannot be doubled by presenting a twin signature.
    pub fn canonical_compact(&self) -> String {
        format!(
            "{}.{}",
            self.signing_input,
            b64::url_encode(self.canonical_signature())
        )
    }

    /// Verifies the signature with `key`. The header's `alg` must fit the key type.
    pub fn verify(&self, key: &PublicJwk) -> Result<(), CryptoError> {
        keys::verify(
            key,
            self.alg,
            self.signing_input.as_bytes(),
            &self.signature,
        )
    }

    /// The payload as a JSON object.
    pub fn json_payload(&self) -> Result<Map<String, Value>, CryptoError> {
        match serde_json::from_slice(&self.payload) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(CryptoError::Malformed(
                "the JWS payload is not a JSON object".into(),
            )),
        }
    }

    /// The payload deserialized into `T`.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, CryptoError> {
        serde_json::from_slice(&self.payload)
            .map_err(|e| CryptoError::Malformed(format!("JWS payload: {e}")))
    }
}

/// Signs `payload` bytes. The header holds `alg`, `kid` (the key's thumbprint), and `typ`
/// when given.
pub fn sign(key: &SigningKey, typ: Option<&str>, payload: &[u8]) -> Result<String, CryptoError> {
    let mut header = Map::new();
    header.insert("alg".into(), Value::String(key.alg().as_str().into()));
    header.insert("kid".into(), Value::String(key.kid().into()));
    if let Some(typ) = typ {
        header.insert("typ".into(), Value::String(typ.into()));
    }
    sign_with_header(key, header, payload)
}

/// Signs `payload` with a caller-built header; `alg` is set from the key.
pub fn sign_with_header(
    key: &SigningKey,
    mut header: Map<String, Value>,
    payload: &[u8],
) -> Result<String, CryptoError> {
    header.insert("alg".into(), Value::String(key.alg().as_str().into()));
    let header = jcs::to_vec(&Value::Object(header))?;
    let mut out = b64::url_encode(header);
    out.push('.');
    out.push_str(&b64::url_encode(payload));
    let sig = key.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&b64::url_encode(sig));
    Ok(out)
}

/// Signs the JCS of `value`.
pub fn sign_json<T: Serialize>(
    key: &SigningKey,
    typ: Option<&str>,
    value: &T,
) -> Result<String, CryptoError> {
    sign(key, typ, &jcs::to_vec(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The high-S twin of a JWS: `s` replaced by `n - s`.
    fn twin(compact: &str) -> String {
        let jws = parse(compact).unwrap();
        let sig = es256_twin(&jws.signature).unwrap();
        format!("{}.{}", jws.signing_input, b64::url_encode(sig))
    }

    #[test]
    fn ecdsa_twins_both_verify_and_share_one_canonical_form() {
        let key = SigningKey::generate(keys::Alg::Es256).unwrap();
        for i in 0..32 {
            let compact = sign_json(&key, None, &json!({"i": i})).unwrap();
            let other = twin(&compact);
            assert_ne!(compact, other);
            let (a, b) = (parse(&compact).unwrap(), parse(&other).unwrap());
            // The malleability this guards against: both verify.
            a.verify(key.public_jwk()).unwrap();
            b.verify(key.public_jwk()).unwrap();
            assert_eq!(a.canonical_compact(), b.canonical_compact());
            let canonical = parse(&a.canonical_compact()).unwrap();
            canonical.verify(key.public_jwk()).unwrap();
            let s = &canonical.signature[32..];
            assert!(s <= &sub_be(&P256_N, &s.try_into().unwrap())[..], "low S");
        }
    }

    #[test]
    fn low_s_leaves_other_shapes_alone() {
        assert_eq!(es256_low_s(&[1, 2, 3]), vec![1, 2, 3]);
        assert_eq!(es256_low_s(&[0xFF; 64]), vec![0xFF; 64]);
        let low = [0u8; 64];
        assert_eq!(es256_low_s(&low), low.to_vec());
    }

    /// RFC 7515 Appendix A.3: an ES256 JWS and the key that signed it.
    #[test]
    fn rfc7515_a3_es256_example_verifies() {
        let key = PublicJwk::from_value(&json!({
            "kty":"EC","crv":"P-256",
            "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }))
        .unwrap();
        let compact = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
        let jws = parse(compact).unwrap();
        assert_eq!(jws.alg, Alg::Es256);
        jws.verify(&key).unwrap();
        let tampered = compact.replace(".eyJpc3MiOiJqb2", ".eyJpc3MiOiJqb3");
        assert!(parse(&tampered).unwrap().verify(&key).is_err());
    }

    /// RFC 8037 Appendix A.4: an Ed25519 JWS over "Example of Ed25519 signing".
    #[test]
    fn rfc8037_a4_eddsa_example_verifies() {
        let key = PublicJwk::from_value(&json!({
            "kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }))
        .unwrap();
        let compact = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
        let jws = parse(compact).unwrap();
        assert_eq!(jws.payload, b"Example of Ed25519 signing");
        jws.verify(&key).unwrap();
    }

    #[test]
    fn signed_json_round_trips_with_kid_and_typ() {
        let key = SigningKey::generate(Alg::Es256).unwrap();
        let compact = sign_json(&key, Some("test+jwt"), &json!({"b":2,"a":1})).unwrap();
        let jws = parse(&compact).unwrap();
        assert_eq!(jws.kid.as_deref(), Some(key.kid()));
        assert_eq!(jws.typ.as_deref(), Some("test+jwt"));
        assert_eq!(jws.payload, br#"{"a":1,"b":2}"#);
        jws.verify(key.public_jwk()).unwrap();
        let other = SigningKey::generate(Alg::Es256).unwrap();
        assert_eq!(
            jws.verify(other.public_jwk()),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn malformed_and_dangerous_tokens_are_refused() {
        let none = format!(
            "{}.{}.",
            b64::url_encode(br#"{"alg":"none"}"#),
            b64::url_encode(b"{}")
        );
        let hs = format!(
            "{}.{}.AA",
            b64::url_encode(br#"{"alg":"HS256"}"#),
            b64::url_encode(b"{}")
        );
        let crit = format!(
            "{}.{}.AA",
            b64::url_encode(br#"{"alg":"ES256","crit":["b64"],"b64":false}"#),
            b64::url_encode(b"{}")
        );
        let array_header = format!("{}.{}.AA", b64::url_encode(b"[1]"), b64::url_encode(b"{}"));
        let numeric_kid = format!(
            "{}.{}.AA",
            b64::url_encode(br#"{"alg":"ES256","kid":7}"#),
            b64::url_encode(b"{}")
        );
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.e30.AA",
            "e30=.e30.AA",
            &none,
            &hs,
            &crit,
            &array_header,
            &numeric_kid,
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        assert!(parse(&"a".repeat(MAX_COMPACT_LEN + 1)).is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,300}") {
            let _ = parse(&s);
        }

        #[test]
        fn any_changed_byte_breaks_the_signature(index in 0usize..200, flip in 1u8..=255) {
            let key = SigningKey::generate(Alg::EdDsa).unwrap();
            let compact = sign_json(&key, None, &json!({"n": index})).unwrap();
            let mut bytes = compact.clone().into_bytes();
            let at = index % bytes.len();
            bytes[at] ^= flip;
            if let Ok(s) = String::from_utf8(bytes)
                && let Ok(jws) = parse(&s)
            {
                // A change that still parses must either leave the token identical in
                // meaning (impossible: every byte is significant) or fail to verify.
                prop_assert!(s == compact || jws.verify(key.public_jwk()).is_err());
            }
        }
    }
}
