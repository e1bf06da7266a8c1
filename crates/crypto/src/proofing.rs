//! Enrollment requests and the JPKI identity proof.
//!
//! The resident's card signs `JCS({"device_jwk_thumbprint": <RFC 7638 thumbprint of the
//! device key>, "nonce": <enrollment nonce>})`. The platform checks, in order: the signed
//! bytes are exactly that JCS for this device key and nonce; the certificate chain leads to
//! a trust anchor, is valid now, usable for signing and not revoked; the card's signature
//! over the bytes; and the four basic items are on the certificate. Whether the nonce is
//! fresh and unused is the caller's business (it lives in storage).

use crate::jwk::PublicJwk;
use crate::x509::{CrlSet, TrustAnchors, ValidatedCert, ValidationPolicy};
use crate::{b64, jcs, jpki, x509};
use serde::Deserialize;
use serde_json::{Value, json};
use tsunagu_core::Code;
use tsunagu_core::identity::BasicAttributes;

/// Longest nonce accepted.
pub const MAX_NONCE_LEN: usize = 128;
/// Most certificates accepted in a chain.
pub const MAX_CHAIN_LEN: usize = 5;
/// Largest certificate accepted, in DER bytes.
pub const MAX_CERT_LEN: usize = 16 * 1024;

/// A refusal with its stable code and a readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ProofError {
    pub code: Code,
    pub detail: String,
}

impl ProofError {
    fn new(code: Code, detail: impl Into<String>) -> ProofError {
        ProofError {
            code,
            detail: detail.into(),
        }
    }
}

/// A JPKI proof as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpkiProof {
    /// DER certificates, the card's signing certificate first.
    pub chain: Vec<Vec<u8>>,
    /// The exact bytes the card signed.
    pub signed_data: Vec<u8>,
    pub signature: Vec<u8>,
}

/// A decoded `POST /v1/enrollment` body.
#[derive(Debug, Clone)]
pub struct EnrollmentRequest {
    pub device_jwk: PublicJwk,
    pub nonce: String,
    pub proof: Option<JpkiProof>,
    /// A WebAuthn registration that gates the new device's key behind user verification;
    /// its challenge is SHA-256 of [`proof_payload`] (binding it to this device key and nonce).
    pub user_verification: Option<crate::webauthn::RegistrationResponse>,
}

#[derive(Deserialize)]
struct WireRequest {
    device_jwk: Value,
    nonce: String,
    #[serde(default)]
    proof: Option<WireProof>,
    #[serde(default)]
    user_verification: Option<crate::webauthn::WireRegistration>,
}

#[derive(Deserialize)]
struct WireProof {
    #[serde(rename = "type")]
    kind: String,
    certificate_chain: Vec<String>,
    signed_data: String,
    signature: String,
}

/// Decodes and validates the shape of an enrollment request: a P-256 public device key, a
/// nonce of sane length, and when present a well-formed JPKI proof.
pub fn parse_enrollment(body: &[u8]) -> Result<EnrollmentRequest, ProofError> {
    let wire: WireRequest = serde_json::from_slice(body)
        .map_err(|e| ProofError::new(Code::InvalidJson, format!("enrollment request: {e}")))?;
    let device_jwk = PublicJwk::from_value(&wire.device_jwk)
        .map_err(|e| ProofError::new(Code::InvalidJwk, e.to_string()))?;
    if !matches!(device_jwk.material, crate::jwk::KeyMaterial::P256 { .. }) {
        return Err(ProofError::new(
            Code::InvalidJwk,
            "device keys are P-256 (kty EC, crv P-256)",
        ));
    }
    if wire.nonce.is_empty() || wire.nonce.len() > MAX_NONCE_LEN {
        return Err(ProofError::new(Code::NonceInvalid, "nonce length"));
    }
    let proof = match wire.proof {
        None => None,
        Some(p) => {
            if p.kind != "jpki" {
                return Err(ProofError::new(
                    Code::UnsupportedProofType,
                    format!("proof type `{}`: only `jpki` is supported", p.kind),
                ));
            }
            if p.certificate_chain.is_empty() || p.certificate_chain.len() > MAX_CHAIN_LEN {
                return Err(ProofError::new(
                    Code::InvalidRequest,
                    format!("certificate_chain must hold 1 to {MAX_CHAIN_LEN} certificates"),
                ));
            }
            let chain = p
                .certificate_chain
                .iter()
                .map(|c| {
                    let der = b64::std_decode(c).map_err(|_| {
                        ProofError::new(
                            Code::InvalidRequest,
                            "certificate_chain entries are base64 DER",
                        )
                    })?;
                    if der.len() > MAX_CERT_LEN {
                        return Err(ProofError::new(
                            Code::InvalidRequest,
                            "certificate too large",
                        ));
                    }
                    Ok(der)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let signed_data = b64::std_decode(&p.signed_data)
                .map_err(|_| ProofError::new(Code::InvalidRequest, "signed_data is base64"))?;
            let signature = b64::std_decode(&p.signature)
                .map_err(|_| ProofError::new(Code::InvalidRequest, "signature is base64"))?;
            if signed_data.len() > 4096 || signature.len() > 2048 {
                return Err(ProofError::new(
                    Code::InvalidRequest,
                    "signed_data or signature too large",
                ));
            }
            Some(JpkiProof {
                chain,
                signed_data,
                signature,
            })
        }
    };
    let user_verification = wire
        .user_verification
        .map(|w| w.decode())
        .transpose()
        .map_err(|e| ProofError::new(Code::UserVerificationInvalid, e.to_string()))?;
    Ok(EnrollmentRequest {
        device_jwk,
        nonce: wire.nonce,
        proof,
        user_verification,
    })
}

/// The challenge a WebAuthn registration signs at enrollment: SHA-256 of the same bytes a
/// card signs ([`proof_payload`]), so the credential is bound to this device key and nonce.
pub fn user_verification_challenge(device_jwk: &PublicJwk, nonce: &str) -> [u8; 32] {
    crate::sha256(&proof_payload(device_jwk, nonce))
}

/// The bytes a card must sign to bind `device_jwk` with `nonce`.
pub fn proof_payload(device_jwk: &PublicJwk, nonce: &str) -> Vec<u8> {
    jcs::to_vec(&json!({
        "device_jwk_thumbprint": device_jwk.thumbprint(),
        "nonce": nonce,
    }))
    .expect("an object of two strings canonicalizes")
}

/// Trust configuration for proofs.
pub struct ProofContext<'a> {
    pub anchors: &'a TrustAnchors,
    pub crls: &'a CrlSet,
    pub policy: &'a ValidationPolicy,
    /// Unix seconds.
    pub now: i64,
}

/// What a valid proof establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenIdentity {
    pub attributes: BasicAttributes,
    pub certificate: ValidatedCert,
}

/// Checks a JPKI proof for `request` (see the module documentation for the order).
pub fn verify_jpki_proof(
    request: &EnrollmentRequest,
    proof: &JpkiProof,
    ctx: &ProofContext<'_>,
) -> Result<ProvenIdentity, ProofError> {
    let signed: serde_json::Map<String, Value> = match serde_json::from_slice(&proof.signed_data) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(ProofError::new(
                Code::ProofMismatch,
                "signed_data is not a JSON object",
            ));
        }
    };
    let (Some(Value::String(thumbprint)), Some(Value::String(nonce)), 2) = (
        signed.get("device_jwk_thumbprint"),
        signed.get("nonce"),
        signed.len(),
    ) else {
        return Err(ProofError::new(
            Code::ProofMismatch,
            "signed_data must hold exactly device_jwk_thumbprint and nonce",
        ));
    };
    if nonce != &request.nonce {
        return Err(ProofError::new(
            Code::NonceInvalid,
            "the signed nonce is not the nonce of this request",
        ));
    }
    if thumbprint != &request.device_jwk.thumbprint() {
        return Err(ProofError::new(
            Code::ProofMismatch,
            "the signed thumbprint is not the device key's",
        ));
    }
    if proof.signed_data != proof_payload(&request.device_jwk, &request.nonce) {
        return Err(ProofError::new(
            Code::ProofMismatch,
            "signed_data is not in RFC 8785 canonical form",
        ));
    }
    let certificate =
        x509::validate_chain(&proof.chain, ctx.anchors, ctx.crls, ctx.now, ctx.policy)
            .map_err(|e| ProofError::new(e.code(), e.to_string()))?;
    x509::verify_with_certificate(&proof.chain[0], &proof.signed_data, &proof.signature)
        .map_err(|e| ProofError::new(Code::SignatureInvalid, e.to_string()))?;
    let attributes = jpki::basic_attributes(&proof.chain[0])
        .map_err(|e| ProofError::new(Code::AttributesMissing, e.to_string()))?;
    Ok(ProvenIdentity {
        attributes,
        certificate,
    })
}
