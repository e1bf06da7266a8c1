//! JWE compact serialization with ECDH-ES (direct key agreement, RFC 7518 §4.6) and A256GCM:
//! how a provider encrypts a payload to a consumer's P-256 encryption key, so that only the
//! consumer can read it even if it passes through intermediaries.

use crate::jwk::{KeyMaterial, PublicJwk};
use crate::{CryptoError, b64, random};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::digest::{Context, SHA256};
use aws_lc_rs::encoding::AsDer;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

/// Longest JWE accepted.
pub const MAX_COMPACT_LEN: usize = 1024 * 1024;

/// The Concat KDF of NIST SP 800-56A §5.8.1 as JWA uses it (RFC 7518 §4.6.2), with SHA-256:
/// `keydatalen` bits from the shared secret `z`.
pub fn concat_kdf(
    z: &[u8],
    algorithm_id: &str,
    apu: &[u8],
    apv: &[u8],
    keydatalen: u32,
) -> Zeroizing<Vec<u8>> {
    let mut other = Vec::with_capacity(16 + algorithm_id.len() + apu.len() + apv.len());
    for part in [algorithm_id.as_bytes(), apu, apv] {
        other.extend_from_slice(&(part.len() as u32).to_be_bytes());
        other.extend_from_slice(part);
    }
    other.extend_from_slice(&keydatalen.to_be_bytes());
    let bytes = (keydatalen as usize).div_ceil(8);
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + 32));
    let mut counter: u32 = 1;
    while out.len() < bytes {
        let mut ctx = Context::new(&SHA256);
        ctx.update(&counter.to_be_bytes());
        ctx.update(z);
        ctx.update(&other);
        out.extend_from_slice(ctx.finish().as_ref());
        counter += 1;
    }
    out.truncate(bytes);
    out
}

fn point_of(jwk: &PublicJwk) -> Result<Vec<u8>, CryptoError> {
    match &jwk.material {
        KeyMaterial::P256 { x, y } => {
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(x);
            point.extend_from_slice(y);
            Ok(point)
        }
        _ => Err(CryptoError::Unsupported("ECDH-ES needs a P-256 key".into())),
    }
}

fn agree(private: &PrivateKey, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    agreement::agree(
        private,
        UnparsedPublicKey::new(&ECDH_P256, peer_point),
        CryptoError::Decrypt,
        |z| Ok(Zeroizing::new(z.to_vec())),
    )
}

fn content_key(z: &[u8], apu: &[u8], apv: &[u8]) -> Result<LessSafeKey, CryptoError> {
    let cek = concat_kdf(z, "A256GCM", apu, apv, 256);
    let unbound = UnboundKey::new(&AES_256_GCM, &cek).map_err(|_| CryptoError::Internal)?;
    Ok(LessSafeKey::new(unbound))
}

/// A P-256 key pair for receiving encrypted payloads.
pub struct EncryptionKey {
    key: PrivateKey,
    public: PublicJwk,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("kid", &self.public.thumbprint())
            .finish_non_exhaustive()
    }
}

impl EncryptionKey {
    pub fn generate() -> Result<EncryptionKey, CryptoError> {
        let key = PrivateKey::generate(&ECDH_P256).map_err(|_| CryptoError::Internal)?;
        let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
            key.as_der().map_err(|_| CryptoError::Internal)?;
        EncryptionKey::from_pkcs8(der.as_ref())
    }

    /// From a PKCS#8 (or SEC1) DER private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<EncryptionKey, CryptoError> {
        let key = PrivateKey::from_private_key_der(&ECDH_P256, der)
            .map_err(|e| CryptoError::InvalidKey(format!("P-256 private key: {e}")))?;
        EncryptionKey::from_private(key, der)
    }

    /// From the raw private scalar (32 bytes, big-endian).
    pub fn from_scalar(d: &[u8]) -> Result<EncryptionKey, CryptoError> {
        let key = PrivateKey::from_private_key(&ECDH_P256, d)
            .map_err(|e| CryptoError::InvalidKey(format!("P-256 private key: {e}")))?;
        let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
            key.as_der().map_err(|_| CryptoError::Internal)?;
        let der = der.as_ref().to_vec();
        EncryptionKey::from_private(key, &der)
    }

    fn from_private(key: PrivateKey, der: &[u8]) -> Result<EncryptionKey, CryptoError> {
        let public = key
            .compute_public_key()
            .map_err(|_| CryptoError::Internal)?;
        let public = PublicJwk::p256_from_sec1(public.as_ref())?;
        Ok(EncryptionKey {
            key,
            public,
            pkcs8: Zeroizing::new(der.to_vec()),
        })
    }

    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    /// The key as published in a JWKS: `use: enc`, `alg: ECDH-ES`.
    pub fn published_jwk(&self) -> PublicJwk {
        let kid = self.public.thumbprint();
        self.public.clone().with_metadata(&kid, "ECDH-ES", "enc")
    }

    /// The shared secret with a peer's public point (for tests against published vectors).
    pub fn agree(&self, peer: &PublicJwk) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        agree(&self.key, &point_of(peer)?)
    }
}

/// Encrypts `plaintext` to `recipient` (a P-256 key): ECDH-ES with an ephemeral key,
/// A256GCM. `cty` names the content type (e.g. `JWT` for a nested signed payload).
pub fn encrypt(
    recipient: &PublicJwk,
    plaintext: &[u8],
    cty: Option<&str>,
) -> Result<String, CryptoError> {
    let peer = point_of(recipient)?;
    let ephemeral = PrivateKey::generate(&ECDH_P256).map_err(|_| CryptoError::Internal)?;
    let epk_point = ephemeral
        .compute_public_key()
        .map_err(|_| CryptoError::Internal)?;
    let epk = PublicJwk::p256_from_sec1(epk_point.as_ref())?;
    let z = agree(&ephemeral, &peer)?;
    let mut header = Map::new();
    header.insert("alg".into(), json!("ECDH-ES"));
    header.insert("enc".into(), json!("A256GCM"));
    header.insert("epk".into(), epk.to_value());
    header.insert(
        "kid".into(),
        json!(
            recipient
                .kid
                .clone()
                .unwrap_or_else(|| recipient.thumbprint())
        ),
    );
    if let Some(cty) = cty {
        header.insert("cty".into(), json!(cty));
    }
    let header_b64 = b64::url_encode(crate::jcs::to_vec(&Value::Object(header))?);
    let key = content_key(&z, b"", b"")?;
    let iv: [u8; 12] = random::bytes(12)?
        .try_into()
        .map_err(|_| CryptoError::Internal)?;
    let mut data = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(header_b64.as_bytes()),
            &mut data,
        )
        .map_err(|_| CryptoError::Internal)?;
    Ok(format!(
        "{header_b64}..{}.{}.{}",
        b64::url_encode(iv),
        b64::url_encode(&data),
        b64::url_encode(tag.as_ref())
    ))
}

/// Decrypts a compact JWE made by [`encrypt`] (or any ECDH-ES + A256GCM JWE).
pub fn decrypt(key: &EncryptionKey, compact: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if compact.len() > MAX_COMPACT_LEN {
        return Err(CryptoError::Malformed("JWE too long".into()));
    }
    let parts: Vec<&str> = compact.split('.').collect();
    let [h, encrypted_key, iv, ciphertext, tag] = parts.as_slice() else {
        return Err(CryptoError::Malformed(
            "a compact JWE has five parts".into(),
        ));
    };
    if !encrypted_key.is_empty() {
        return Err(CryptoError::Unsupported(
            "ECDH-ES (direct) carries no encrypted key".into(),
        ));
    }
    let header: Map<String, Value> = match serde_json::from_slice(&b64::url_decode(h)?) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(CryptoError::Malformed(
                "the JWE header is not a JSON object".into(),
            ));
        }
    };
    if header.get("alg").and_then(Value::as_str) != Some("ECDH-ES")
        || header.get("enc").and_then(Value::as_str) != Some("A256GCM")
    {
        return Err(CryptoError::Unsupported(
            "only alg ECDH-ES with enc A256GCM".into(),
        ));
    }
    if header.contains_key("crit") || header.contains_key("zip") {
        return Err(CryptoError::Unsupported(
            "JWE crit and zip are not supported".into(),
        ));
    }
    let epk = PublicJwk::from_value(
        header
            .get("epk")
            .ok_or_else(|| CryptoError::Malformed("no epk".into()))?,
    )?;
    let apu = match header.get("apu").and_then(Value::as_str) {
        Some(s) => b64::url_decode(s)?,
        None => vec![],
    };
    let apv = match header.get("apv").and_then(Value::as_str) {
        Some(s) => b64::url_decode(s)?,
        None => vec![],
    };
    let z = agree(&key.key, &point_of(&epk)?)?;
    let cek = content_key(&z, &apu, &apv)?;
    let iv: [u8; 12] = b64::url_decode(iv)?
        .try_into()
        .map_err(|_| CryptoError::Malformed("the IV is 96 bits".into()))?;
    let tag = b64::url_decode(tag)?;
    if tag.len() != 16 {
        return Err(CryptoError::Malformed("the tag is 128 bits".into()));
    }
    let mut data = Zeroizing::new(b64::url_decode(ciphertext)?);
    data.extend_from_slice(&tag);
    let len = cek
        .open_in_place(
            Nonce::assume_unique_for_key(iv),
            Aad::from(h.as_bytes()),
            &mut data,
        )
        .map_err(|_| CryptoError::Decrypt)?
        .len();
    data.truncate(len);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 7518 Appendix C: Alice's ephemeral key, Bob's static key, "Alice"/"Bob" party
    /// info, A128GCM: the derived key is VqqN6vgjbSBcIijNcacQGg.
    #[test]
    fn rfc7518_appendix_c_key_agreement() {
        let bob = EncryptionKey::from_scalar(
            &b64::url_decode("VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw").unwrap(),
        )
        .unwrap();
        assert_eq!(
            bob.public_jwk().to_value()["x"],
            "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ"
        );
        let alice_public = PublicJwk::from_value(&json!({
            "kty": "EC", "crv": "P-256",
            "x": "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0",
            "y": "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps"
        }))
        .unwrap();
        let z = bob.agree(&alice_public).unwrap();
        let key = concat_kdf(&z, "A128GCM", b"Alice", b"Bob", 128);
        assert_eq!(b64::url_encode(&*key), "VqqN6vgjbSBcIijNcacQGg");
    }

    #[test]
    fn an_encrypted_payload_opens_only_with_the_recipients_key() {
        let consumer = EncryptionKey::generate().unwrap();
        let compact = encrypt(
            &consumer.published_jwk(),
            b"{\"allergy\":\"egg\"}",
            Some("JWT"),
        )
        .unwrap();
        assert_eq!(
            &*decrypt(&consumer, &compact).unwrap(),
            b"{\"allergy\":\"egg\"}"
        );
        let other = EncryptionKey::generate().unwrap();
        assert_eq!(decrypt(&other, &compact), Err(CryptoError::Decrypt));
        let again = EncryptionKey::from_pkcs8(consumer.pkcs8()).unwrap();
        assert_eq!(
            &*decrypt(&again, &compact).unwrap(),
            b"{\"allergy\":\"egg\"}"
        );
        let mut parts: Vec<String> = compact.split('.').map(str::to_owned).collect();
        parts[3] = b64::url_encode(b"tampered ciphertext");
        assert!(decrypt(&consumer, &parts.join(".")).is_err());
    }

    #[test]
    fn the_kdf_yields_as_many_bits_as_asked() {
        assert_eq!(concat_kdf(b"z", "A256GCM", b"", b"", 256).len(), 32);
        assert_eq!(concat_kdf(b"z", "X", b"", b"", 384).len(), 48);
        assert_ne!(
            *concat_kdf(b"z", "A", b"", b"", 256),
            *concat_kdf(b"z", "B", b"", b"", 256)
        );
    }

    proptest! {
        #[test]
        fn decrypting_garbage_never_panics(s in "\\PC{0,300}") {
            let key = EncryptionKey::generate().unwrap();
            let _ = decrypt(&key, &s);
        }
    }
}
