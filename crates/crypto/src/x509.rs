//! X.509 path validation to configured trust anchors, with revocation by CRL.
//!
//! rustls-webpki builds and checks the path: signatures (RSA PKCS#1 v1.5 and ECDSA with
//! SHA-256/384/512), validity at the given time, basic constraints and path length, name
//! chaining and, with CRLs, revocation of each certificate. webpki does not look at the
//! keyUsage extension of certificates, so this module checks it in webpki's path hook:
//! an intermediate CA must assert keyCertSign, and a signing end-entity certificate
//! digitalSignature or nonRepudiation; optionally the end-entity must carry a certificate
//! policy (JPKI's signing policy 1.2.392.200149.8.5.1.1.20).
//!
//! Not supported (refused or ignored as documented in docs/security/x509.md): DSA, policy
//! processing beyond "the leaf carries this policy", indirect and delta CRLs, CRLs signed by
//! a key other than the certificate issuer's, and OCSP.

use crate::CryptoError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, SignatureVerificationAlgorithm, TrustAnchor,
    UnixTime,
};
use std::cell::RefCell;
use std::time::Duration;
use tsunagu_core::Code;
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyPurposeIdIter, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Signature algorithms accepted on certificates and CRLs.
static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ED25519,
];

/// Why a certificate path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("certificate is malformed: {0}")]
    Malformed(String),
    #[error("certificate path is not trusted: {0}")]
    Untrusted(String),
    #[error("a certificate in the path has expired")]
    Expired,
    #[error("a certificate in the path is not valid yet")]
    NotYetValid,
    #[error("a certificate in the path is revoked")]
    Revoked,
    #[error("revocation status unknown: {0}")]
    StatusUnknown(String),
}

impl CertError {
    pub fn code(&self) -> Code {
        match self {
            CertError::Malformed(_) | CertError::Untrusted(_) => Code::CertificateUntrusted,
            CertError::Expired => Code::CertificateExpired,
            CertError::NotYetValid => Code::CertificateNotYetValid,
            CertError::Revoked => Code::CertificateRevoked,
            CertError::StatusUnknown(_) => Code::CertificateStatusUnknown,
        }
    }

    fn from_webpki(err: webpki::Error) -> CertError {
        use webpki::Error as E;
        match err {
            E::CertExpired { .. } => CertError::Expired,
            E::CertNotValidYet { .. } => CertError::NotYetValid,
            E::CertRevoked => CertError::Revoked,
            E::UnknownRevocationStatus => {
                CertError::StatusUnknown("no CRL from the issuer is loaded".into())
            }
            E::CrlExpired { .. } => {
                CertError::StatusUnknown("the issuer's CRL is past its nextUpdate".into())
            }
            E::BadDer | E::BadDerTime | E::TrailingData(_) | E::UnsupportedCertVersion => {
                CertError::Malformed(format!("{err:?}"))
            }
            other => CertError::Untrusted(format!("{other:?}")),
        }
    }
}

/// Reads one or more certificates from PEM text, or a single DER certificate.
pub fn certificates_from_pem_or_der(bytes: &[u8]) -> Result<Vec<Vec<u8>>, CryptoError> {
    if bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let certs = CertificateDer::pem_slice_iter(bytes)
            .map(|c| c.map(|c| c.as_ref().to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CryptoError::Malformed(format!("PEM: {e}")))?;
        if certs.is_empty() {
            return Err(CryptoError::Malformed("no CERTIFICATE in the PEM".into()));
        }
        Ok(certs)
    } else {
        Ok(vec![bytes.to_vec()])
    }
}

/// Reads a CRL from PEM or DER.
pub fn crl_from_pem_or_der(bytes: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        CertificateRevocationListDer::from_pem_slice(bytes)
            .map(|c| c.as_ref().to_vec())
            .map_err(|e| CryptoError::Malformed(format!("PEM CRL: {e}")))
    } else {
        Ok(bytes.to_vec())
    }
}

/// The configured trust anchors.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    anchors: Vec<TrustAnchor<'static>>,
    ders: Vec<Vec<u8>>,
}

impl TrustAnchors {
    /// Trust anchors from DER certificates.
    pub fn from_ders(ders: Vec<Vec<u8>>) -> Result<TrustAnchors, CryptoError> {
        let mut anchors = Vec::with_capacity(ders.len());
        for der in &ders {
            let cert = CertificateDer::from(der.as_slice());
            let anchor = webpki::anchor_from_trusted_cert(&cert)
                .map_err(|e| CryptoError::Malformed(format!("trust anchor: {e:?}")))?;
            anchors.push(anchor.to_owned());
        }
        Ok(TrustAnchors { anchors, ders })
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// The anchors' DER certificates (to verify CRL signatures by anchors).
    pub fn ders(&self) -> &[Vec<u8>] {
        &self.ders
    }
}

/// A loaded CRL with what monitoring and the status check need.
#[derive(Debug, Clone)]
pub struct CrlInfo {
    /// DER of the issuer name.
    pub issuer: Vec<u8>,
    /// Issuer name as text.
    pub issuer_text: String,
    pub this_update: i64,
    pub next_update: Option<i64>,
    /// Revoked serial numbers (DER INTEGER content bytes) with their revocation time.
    pub revoked: Vec<(Vec<u8>, i64)>,
}

/// A set of CRLs.
#[derive(Debug, Default)]
pub struct CrlSet {
    crls: Vec<CertRevocationList<'static>>,
    infos: Vec<CrlInfo>,
}

impl CrlSet {
    /// Parses DER CRLs. The signatures are checked when a path is validated against them
    /// (webpki verifies a CRL with the issuer's key found in the path).
    pub fn from_ders(ders: &[Vec<u8>]) -> Result<CrlSet, CryptoError> {
        let mut set = CrlSet::default();
        for der in ders {
            set.add(der)?;
        }
        Ok(set)
    }

    /// Adds one DER CRL.
    pub fn add(&mut self, der: &[u8]) -> Result<(), CryptoError> {
        let owned = OwnedCertRevocationList::from_der(der)
            .map_err(|e| CryptoError::Malformed(format!("CRL: {e:?}")))?;
        let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
            .map_err(|e| CryptoError::Malformed(format!("CRL: {e}")))?;
        let revoked = parsed
            .iter_revoked_certificates()
            .map(|r| (r.raw_serial().to_vec(), r.revocation_date.timestamp()))
            .collect();
        self.infos.push(CrlInfo {
            issuer: parsed.tbs_cert_list.issuer.as_raw().to_vec(),
            issuer_text: parsed.issuer().to_string(),
            this_update: parsed.last_update().timestamp(),
            next_update: parsed.next_update().map(|t| t.timestamp()),
            revoked,
        });
        self.crls.push(CertRevocationList::from(owned));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.crls.is_empty()
    }

    pub fn infos(&self) -> &[CrlInfo] {
        &self.infos
    }

    /// Whether a CRL of `issuer` (DER name) lists `serial`. Used by the status check of
    /// accounts (現況確認), where the certificate is no longer at hand.
    pub fn lists(&self, issuer: &[u8], serial: &[u8]) -> bool {
        self.crls
            .iter()
            .any(|crl| crl.issuer() == issuer && matches!(crl.find_serial(serial), Ok(Some(_))))
    }
}

/// How much revocation checking a validation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationMode {
    /// No revocation checking.
    Off,
    /// The end-entity certificate only.
    EndEntity,
    /// Every certificate below the trust anchor.
    Chain,
}

/// What the end-entity certificate must be good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafUsage {
    /// Signing: keyUsage, when present, asserts digitalSignature or nonRepudiation.
    Signing,
    /// No keyUsage requirement.
    Any,
}

/// The rules of a validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationPolicy {
    pub revocation: RevocationMode,
    /// Refuse a certificate whose issuer has no loaded CRL (otherwise it passes unchecked).
    pub require_status: bool,
    /// Refuse a CRL past its nextUpdate.
    pub enforce_crl_expiry: bool,
    pub leaf_usage: LeafUsage,
    /// A certificate policy OID (dotted) the end-entity certificate must carry.
    pub required_policy: Option<String>,
}

impl Default for ValidationPolicy {
    fn default() -> Self {
        ValidationPolicy {
            revocation: RevocationMode::Chain,
            require_status: true,
            enforce_crl_expiry: true,
            leaf_usage: LeafUsage::Signing,
            required_policy: None,
        }
    }
}

/// Facts about a validated end-entity certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedCert {
    /// DER of the issuer name.
    pub issuer: Vec<u8>,
    /// Serial number (DER INTEGER content bytes).
    pub serial: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the end-entity DER.
    pub fingerprint: [u8; 32],
}

/// Any extended key usage is acceptable: signing certificates are not TLS certificates, and
/// key usage bits are checked separately.
struct AnyExtendedKeyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyExtendedKeyUsage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for purpose in iter {
            purpose?;
        }
        Ok(())
    }
}

/// Checks keyUsage and policies along a path webpki found. Returns the reason on failure.
fn check_path_extensions(
    end_entity: &[u8],
    intermediates: &[&[u8]],
    policy: &ValidationPolicy,
) -> Result<(), String> {
    for der in intermediates {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("intermediate certificate does not parse: {e}"))?;
        let ku = cert
            .key_usage()
            .map_err(|e| format!("intermediate keyUsage: {e}"))?;
        if let Some(ku) = ku
            && !ku.value.key_cert_sign()
        {
            return Err("an intermediate CA's keyUsage lacks keyCertSign".into());
        }
    }
    let (_, leaf) = X509Certificate::from_der(end_entity)
        .map_err(|e| format!("end-entity certificate does not parse: {e}"))?;
    if policy.leaf_usage == LeafUsage::Signing {
        let ku = leaf
            .key_usage()
            .map_err(|e| format!("end-entity keyUsage: {e}"))?;
        if let Some(ku) = ku
            && !(ku.value.digital_signature() || ku.value.non_repudiation())
        {
            return Err(
                "the end-entity keyUsage allows neither digitalSignature nor nonRepudiation".into(),
            );
        }
    }
    if let Some(required) = &policy.required_policy {
        let found = leaf
            .iter_extensions()
            .any(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::CertificatePolicies(policies) => policies
                    .iter()
                    .any(|p| p.policy_id.to_id_string() == *required),
                _ => false,
            });
        if !found {
            return Err(format!(
                "the end-entity certificate does not carry policy {required}"
            ));
        }
    }
    Ok(())
}

/// Validates `chain` (end-entity first, then any intermediates, in any order) to one of
/// `anchors` at `time` (Unix seconds).
pub fn validate_chain(
    chain: &[Vec<u8>],
    anchors: &TrustAnchors,
    crls: &CrlSet,
    time: i64,
    policy: &ValidationPolicy,
) -> Result<ValidatedCert, CertError> {
    let Some((leaf_der, rest)) = chain.split_first() else {
        return Err(CertError::Malformed(
            "the certificate chain is empty".into(),
        ));
    };
    if anchors.is_empty() {
        return Err(CertError::Untrusted("no trust anchor is configured".into()));
    }
    let (_, leaf) = X509Certificate::from_der(leaf_der)
        .map_err(|e| CertError::Malformed(format!("end-entity certificate: {e}")))?;
    let leaf_cert = CertificateDer::from(leaf_der.as_slice());
    let ee = EndEntityCert::try_from(&leaf_cert)
        .map_err(|e| CertError::Malformed(format!("end-entity certificate: {e:?}")))?;
    let intermediates: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let time = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(time).unwrap_or(0)));

    let crl_refs: Vec<&CertRevocationList<'_>> = crls.crls.iter().collect();
    let revocation = match policy.revocation {
        RevocationMode::Off => None,
        _ if crl_refs.is_empty() && !policy.require_status => None,
        mode => {
            let builder = RevocationOptionsBuilder::new(&crl_refs).map_err(|_| {
                CertError::StatusUnknown("revocation checking requires a CRL".into())
            })?;
            Some(
                builder
                    .with_depth(if mode == RevocationMode::Chain {
                        RevocationCheckDepth::Chain
                    } else {
                        RevocationCheckDepth::EndEntity
                    })
                    .with_status_policy(if policy.require_status {
                        UnknownStatusPolicy::Deny
                    } else {
                        UnknownStatusPolicy::Allow
                    })
                    .with_expiration_policy(if policy.enforce_crl_expiry {
                        ExpirationPolicy::Enforce
                    } else {
                        ExpirationPolicy::Ignore
                    })
                    .build(),
            )
        }
    };

    let hook_failure: RefCell<Option<String>> = RefCell::new(None);
    let hook = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
        let inter: Vec<Vec<u8>> = path
            .intermediate_certificates()
            .map(|c| c.der().to_vec())
            .collect();
        let inter: Vec<&[u8]> = inter.iter().map(Vec::as_slice).collect();
        match check_path_extensions(leaf_der, &inter, policy) {
            Ok(()) => Ok(()),
            Err(reason) => {
                *hook_failure.borrow_mut() = Some(reason);
                // Any error makes webpki try other paths; the reason is reported below.
                // CertDistrusted is otherwise only raised for a built-in list of keys.
                Err(webpki::Error::CertDistrusted)
            }
        }
    };
    let result = ee.verify_for_usage(
        ALGORITHMS,
        &anchors.anchors,
        &intermediates,
        time,
        AnyExtendedKeyUsage,
        revocation,
        Some(&hook),
    );
    if let Err(err) = result {
        if let Some(reason) = hook_failure.borrow_mut().take()
            && matches!(err, webpki::Error::CertDistrusted)
        {
            return Err(CertError::Untrusted(reason));
        }
        return Err(CertError::from_webpki(err));
    }

    Ok(ValidatedCert {
        issuer: leaf.issuer().as_raw().to_vec(),
        serial: leaf.raw_serial().to_vec(),
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
        fingerprint: crate::sha256(leaf_der),
    })
}

/// RFC 8705's `x5t#S256` of a client certificate given as PEM (the first certificate in
/// it, which must parse as X.509): the base64url SHA-256 of its DER.
pub fn x5t_s256_of_pem(pem: &str) -> Result<String, CryptoError> {
    let ders = certificates_from_pem_or_der(pem.trim().as_bytes())?;
    let der = ders
        .first()
        .ok_or_else(|| CryptoError::Malformed("no CERTIFICATE in the PEM".into()))?;
    X509Certificate::from_der(der)
        .map_err(|e| CryptoError::Malformed(format!("certificate: {e}")))?;
    Ok(crate::b64::url_encode(crate::sha256(der)))
}

/// The serial number of a DER certificate, upper-case hex.
pub fn certificate_serial_hex(cert_der: &[u8]) -> Result<String, CryptoError> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| CryptoError::Malformed(format!("certificate: {e}")))?;
    Ok(cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect())
}

/// The public key of a certificate, for verifying a signature it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertKey {
    /// DER `RSAPublicKey`.
    Rsa(Vec<u8>),
    /// Uncompressed SEC1 point on P-256.
    P256(Vec<u8>),
}

/// The certificate's subject public key, when it is RSA or ECDSA P-256.
pub fn subject_key(cert_der: &[u8]) -> Result<CertKey, CryptoError> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| CryptoError::Malformed(format!("certificate: {e}")))?;
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    let key = spki.subject_public_key.data.to_vec();
    match alg.as_str() {
        "1.2.840.113549.1.1.1" => Ok(CertKey::Rsa(key)),
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            if curve.as_deref() == Some("1.2.840.10045.3.1.7") {
                Ok(CertKey::P256(key))
            } else {
                Err(CryptoError::Unsupported("EC keys other than P-256".into()))
            }
        }
        other => Err(CryptoError::Unsupported(format!(
            "subject public key algorithm {other}"
        ))),
    }
}

/// Verifies a signature made with a certificate's key: RSA PKCS#1 v1.5 SHA-256, or ECDSA
/// P-256 SHA-256 in DER or 64-byte r||s form.
pub fn verify_with_certificate(cert_der: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    match subject_key(cert_der)? {
        CertKey::Rsa(der) => crate::keys::verify_rsa_pkcs1_sha256(&der, msg, sig),
        CertKey::P256(point) if sig.len() == 64 => {
            crate::keys::verify_ecdsa_p256_fixed(&point, msg, sig)
        }
        CertKey::P256(point) => crate::keys::verify_ecdsa_p256_der(&point, msg, sig),
    }
}
