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

impl Jws {
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
