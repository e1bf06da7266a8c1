//! Signing keys (ES256 on P-256, Ed25519) and raw signature verification.
//!
//! Private keys live in PKCS#8 form, only in memory or in encrypted storage; the bytes are
//! zeroized when dropped.

use crate::jwk::{KeyMaterial, PublicJwk};
use crate::{CryptoError, b64};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use zeroize::Zeroizing;

/// A JOSE signature algorithm tsunagu signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// ECDSA P-256 SHA-256, r||s (RFC 7518 §3.4).
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Alg> {
        match s {
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }
}

enum Inner {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private signing key.
pub struct SigningKey {
    inner: Inner,
    pkcs8: Zeroizing<Vec<u8>>,
    public: PublicJwk,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key for `alg`.
    pub fn generate(alg: Alg) -> Result<SigningKey, CryptoError> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Alg::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng),
            Alg::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| CryptoError::Internal)?;
        SigningKey::from_pkcs8(alg, pkcs8.as_ref())
    }

    /// Loads a PKCS#8 DER private key.
    pub fn from_pkcs8(alg: Alg, der: &[u8]) -> Result<SigningKey, CryptoError> {
        let rejected = |e: aws_lc_rs::error::KeyRejected| {
            CryptoError::InvalidKey(format!("PKCS#8 key rejected: {e}"))
        };
        let (inner, material) = match alg {
            Alg::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(rejected)?;
                let point = pair.public_key().as_ref();
                let material = PublicJwk::p256_from_sec1(point)?.material;
                (Inner::Es256(pair), material)
            }
            Alg::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(der).map_err(rejected)?;
                let x: [u8; 32] = pair
                    .public_key()
                    .as_ref()
                    .try_into()
                    .map_err(|_| CryptoError::InvalidKey("Ed25519 public key length".into()))?;
                (Inner::Ed25519(pair), KeyMaterial::Ed25519 { x })
            }
        };
        let public = PublicJwk::bare(material);
        let kid = public.thumbprint();
        Ok(SigningKey {
            inner,
            pkcs8: Zeroizing::new(der.to_vec()),
            public,
            kid,
        })
    }

    /// Loads a PKCS#8 key from PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(alg: Alg, pem: &str) -> Result<SigningKey, CryptoError> {
        SigningKey::from_pkcs8(alg, &pkcs8_from_pem(pem)?)
    }

    /// The PKCS#8 key as PEM.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem_encode("PRIVATE KEY", &self.pkcs8))
    }

    /// A second handle to the same key.
    pub fn try_clone(&self) -> Result<SigningKey, CryptoError> {
        SigningKey::from_pkcs8(self.alg(), &self.pkcs8)
    }

    pub fn alg(&self) -> Alg {
        match self.inner {
            Inner::Es256(_) => Alg::Es256,
            Inner::Ed25519(_) => Alg::EdDsa,
        }
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key, without metadata.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    /// The public key as published in a JWKS (`kid`, `alg`, `use: sig`).
    pub fn published_jwk(&self) -> PublicJwk {
        self.public
            .clone()
            .with_metadata(&self.kid, self.alg().as_str(), "sig")
    }

    /// The PKCS#8 DER, for encrypted storage.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Signs `msg`: ES256 gives the 64-byte r||s form, Ed25519 64 bytes.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            Inner::Es256(pair) => pair
                .sign(&SystemRandom::new(), msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| CryptoError::Internal),
            Inner::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
        }
    }
}

/// The DER of a PKCS#8 private key in PEM (`-----BEGIN PRIVATE KEY-----`).
pub fn pkcs8_from_pem(pem: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| CryptoError::InvalidKey(format!("PEM private key: {e}")))?;
    Ok(Zeroizing::new(der.secret_pkcs8_der().to_vec()))
}

/// PEM text of DER bytes under `label`.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = b64::std_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Verifies a JOSE signature `sig` over `msg` by `key` under `alg`; the key type must match
/// the algorithm (no algorithm confusion).
pub fn verify(key: &PublicJwk, alg: Alg, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    match (alg, &key.material) {
        (Alg::Es256, KeyMaterial::P256 { .. }) | (Alg::EdDsa, KeyMaterial::Ed25519 { .. }) => key
            .verifier()?
            .verify_sig(msg, sig)
            .map_err(|_| CryptoError::BadSignature),
        _ => Err(CryptoError::Unsupported(format!(
            "algorithm {} does not match the key type",
            alg.as_str()
        ))),
    }
}

/// Verifies an ES256 signature given as base64url r||s, the form device keys use for login.
pub fn verify_es256_b64(key: &PublicJwk, msg: &[u8], sig_b64url: &str) -> Result<(), CryptoError> {
    let sig = b64::url_decode(sig_b64url).map_err(|_| CryptoError::BadSignature)?;
    verify(key, Alg::Es256, msg, &sig)
}

/// ECDSA P-256 SHA-256 with an ASN.1 DER signature, over an uncompressed SEC1 point.
pub fn verify_ecdsa_p256_der(point: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(msg, sig)
        .map_err(|_| CryptoError::BadSignature)
}

/// ECDSA P-256 SHA-256 with a 64-byte r||s signature (IEEE P1363), over a SEC1 point.
pub fn verify_ecdsa_p256_fixed(point: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(msg, sig)
        .map_err(|_| CryptoError::BadSignature)
}

/// RSASSA-PKCS1-v1_5 with SHA-256, over a DER `RSAPublicKey` of 2048 to 8192 bits.
pub fn verify_rsa_pkcs1_sha256(
    rsa_public_key_der: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> Result<(), CryptoError> {
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, rsa_public_key_der)
        .verify(msg, sig)
        .map_err(|_| CryptoError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pkcs8_and_sign_verifiably() {
        for alg in [Alg::Es256, Alg::EdDsa] {
            let key = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, key.pkcs8()).unwrap();
            assert_eq!(key.kid(), again.kid());
            let sig = again.sign(b"message").unwrap();
            assert_eq!(sig.len(), 64);
            verify(key.public_jwk(), alg, b"message", &sig).unwrap();
            assert_eq!(
                verify(key.public_jwk(), alg, b"massage", &sig),
                Err(CryptoError::BadSignature)
            );
        }
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let key = SigningKey::generate(Alg::Es256).unwrap();
        let pem = key.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let again = SigningKey::from_pkcs8_pem(Alg::Es256, &pem).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert!(SigningKey::from_pkcs8_pem(Alg::Es256, "not pem").is_err());
    }

    #[test]
    fn an_algorithm_that_does_not_match_the_key_is_refused() {
        let key = SigningKey::generate(Alg::Es256).unwrap();
        let sig = key.sign(b"m").unwrap();
        assert!(matches!(
            verify(key.public_jwk(), Alg::EdDsa, b"m", &sig),
            Err(CryptoError::Unsupported(_))
        ));
    }

    #[test]
    fn published_jwk_names_its_thumbprint() {
        let key = SigningKey::generate(Alg::EdDsa).unwrap();
        let jwk = key.published_jwk().to_value();
        assert_eq!(jwk["kid"], key.kid());
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["kty"], "OKP");
    }
}
