//! The simulated certificate authority and its on-disk state.

use crate::card::Card;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_RSA_SHA256, RevocationReason, RevokedCertParams, RsaKeySize, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use time::{Date, Duration, OffsetDateTime};
use tsunagu_crypto::{jpki, random};

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimCaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SimCaError + '_ {
    move |source| SimCaError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What to put on a signing certificate.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// 氏名
    pub name: String,
    /// 住所
    pub address: String,
    /// 生年月日 as `YYYY-MM-DD`.
    pub birthdate: String,
    /// 性別 code: `1` male, `2` female, `3` other.
    pub sex: String,
    /// Override the validity (days from now); by default the certificate is valid until the
    /// holder's 5th birthday after issue, as JPKI signing certificates are.
    pub valid_days: Option<i64>,
    /// Start of validity, if not now (to make certificates that are not valid yet, or
    /// expired ones with a negative `valid_days`).
    pub not_before: Option<OffsetDateTime>,
}

/// A card key held in memory, unsealed: for issuing many test cards with
/// [`SimCa::issue_batch`]. Signs as a card does (RSASSA-PKCS1-v1_5, SHA-256).
pub struct CardKey {
    pair: KeyPair,
    signer: RsaKeyPair,
}

impl CardKey {
    pub fn generate() -> Result<CardKey, SimCaError> {
        let pair = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)?;
        let signer = RsaKeyPair::from_pkcs8(&pair.serialize_der())
            .map_err(|e| SimCaError::Invalid(format!("card key: {e}")))?;
        Ok(CardKey { pair, signer })
    }

    /// Signs `data` as the card's signing function would.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, SimCaError> {
        let mut sig = vec![0u8; self.signer.public_modulus_len()];
        self.signer
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), data, &mut sig)
            .map_err(|_| SimCaError::Invalid("card key signature failed".into()))?;
        Ok(sig)
    }
}

/// A certificate from [`SimCa::issue_batch`], with the CA certificates above it.
#[derive(Debug, Clone)]
pub struct IssuedCard {
    pub certificate_der: Vec<u8>,
    pub chain: Vec<Vec<u8>>,
}

/// A certificate the CA issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedCert {
    /// Serial number, hex.
    pub serial: String,
    pub not_after: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Revoked {
    serial: String,
    revoked_at: i64,
    reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    crl_number: u64,
    issued: Vec<IssuedCert>,
    revoked: Vec<Revoked>,
    /// J-LIS's linkage of an earlier certificate's serial number to its successor's.
    #[serde(default)]
    links: Vec<SerialLink>,
}

/// One entry of J-LIS's serial-number linkage (シリアル番号の紐付け): the certificate with
/// `old_serial` was succeeded by `new_serial` for the same person (a renewal, or a reissue
/// after a change of name or address). Serials are upper-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialLink {
    pub old_serial: String,
    pub new_serial: String,
    pub linked_at: i64,
}

/// The file a relying party reads: `{"links": [...]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SerialLinks {
    pub links: Vec<SerialLink>,
}

/// A simulated JPKI CA living in a directory:
/// `ca.pem` (certificate), `ca-key.pem` (private key, unencrypted), `ca.crl` (DER CRL),
/// `state.json` (issued and revoked serials).
pub struct SimCa {
    dir: PathBuf,
    key: KeyPair,
    cert_der: Vec<u8>,
    state: State,
}

/// The CA's name, shaped like JPKI's (DOMAIN.md) and marked as a simulation.
fn ca_name() -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "JP");
    dn.push(DnType::OrganizationName, "JPKI");
    dn.push(
        DnType::OrganizationalUnitName,
        "JPKI for digital signature (SIMULATED)",
    );
    dn.push(
        DnType::OrganizationalUnitName,
        "tsunagu development simulator",
    );
    dn
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = ca_name();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

/// DER of the certificatePolicies extension value holding one policy OID.
fn certificate_policies(oid: &str) -> Result<Vec<u8>, SimCaError> {
    let arcs: Vec<u64> = oid
        .split('.')
        .map(|p| {
            p.parse()
                .map_err(|_| SimCaError::Invalid(format!("OID {oid}")))
        })
        .collect::<Result<_, _>>()?;
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for arc in &arcs[2..] {
        let mut chunk = vec![(*arc & 0x7f) as u8];
        let mut rest = *arc >> 7;
        while rest > 0 {
            chunk.push(((rest & 0x7f) as u8) | 0x80);
            rest >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    let tlv = |tag: u8, content: Vec<u8>| {
        let mut out = vec![tag, content.len() as u8];
        out.extend(content);
        out
    };
    Ok(tlv(0x30, tlv(0x30, tlv(0x06, body))))
}

fn oid_arcs(dotted: &str) -> Vec<u64> {
    dotted.split('.').filter_map(|p| p.parse().ok()).collect()
}

/// The 5th birthday after `issued` for someone born on `birthdate`.
fn fifth_birthday_after(issued: Date, birthdate: Date) -> Date {
    let mut year = issued.year();
    let mut count = 0;
    loop {
        let birthday = Date::from_calendar_date(year, birthdate.month(), birthdate.day())
            .or_else(|_| Date::from_calendar_date(year, birthdate.month(), 28))
            .unwrap_or(issued);
        if birthday > issued {
            count += 1;
            if count == 5 {
                return birthday;
            }
        }
        year += 1;
    }
}

fn parse_date(s: &str) -> Result<Date, SimCaError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &format).map_err(|_| SimCaError::Invalid(format!("date `{s}`: use YYYY-MM-DD")))
}

impl SimCa {
    /// Creates a new CA in `dir` (which must not hold one yet).
    pub fn init(dir: &Path) -> Result<SimCa, SimCaError> {
        if dir.join("ca.pem").exists() {
            return Err(SimCaError::Invalid(format!(
                "{} already holds a CA",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)?;
        let mut params = ca_params();
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(365 * 10);
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        let cert = params.self_signed(&key)?;
        let ca = SimCa {
            dir: dir.to_owned(),
            key,
            cert_der: cert.der().to_vec(),
            state: State {
                crl_number: 0,
                issued: vec![],
                revoked: vec![],
                links: vec![],
            },
        };
        write_private(&dir.join("ca-key.pem"), ca.key.serialize_pem().as_bytes())?;
        let pem = cert.pem();
        std::fs::write(dir.join("ca.pem"), pem).map_err(io(&dir.join("ca.pem")))?;
        let mut ca = ca;
        ca.publish_crl()?;
        Ok(ca)
    }

    /// Opens the CA in `dir`.
    pub fn open(dir: &Path) -> Result<SimCa, SimCaError> {
        let key_pem =
            std::fs::read_to_string(dir.join("ca-key.pem")).map_err(io(&dir.join("ca-key.pem")))?;
        let key = KeyPair::from_pem(&key_pem)?;
        let cert_pem = std::fs::read(dir.join("ca.pem")).map_err(io(&dir.join("ca.pem")))?;
        let cert_der = tsunagu_crypto::x509::certificates_from_pem_or_der(&cert_pem)
            .map_err(|e| SimCaError::Invalid(e.to_string()))?
            .remove(0);
        let state_path = dir.join("state.json");
        let state: State =
            serde_json::from_slice(&std::fs::read(&state_path).map_err(io(&state_path))?)
                .map_err(|e| SimCaError::Invalid(format!("{}: {e}", state_path.display())))?;
        Ok(SimCa {
            dir: dir.to_owned(),
            key,
            cert_der,
            state,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (DER).
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn certificate_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn crl_path(&self) -> PathBuf {
        self.dir.join("ca.crl")
    }

    /// The serial-number linkage file (`links.json`), written by [`SimCa::link`].
    pub fn links_path(&self) -> PathBuf {
        self.dir.join("links.json")
    }

    /// Records that the certificate `new_serial` succeeds `old_serial` for the same person
    /// (J-LIS's シリアル番号の紐付け) and writes the linkage file.
    pub fn link(&mut self, old_serial: &str, new_serial: &str) -> Result<(), SimCaError> {
        let (old, new) = (
            old_serial.to_ascii_uppercase(),
            new_serial.to_ascii_uppercase(),
        );
        for serial in [&old, &new] {
            if !self.state.issued.iter().any(|c| &c.serial == serial) {
                return Err(SimCaError::Invalid(format!(
                    "no certificate with serial {serial} was issued by this CA"
                )));
            }
        }
        if old == new {
            return Err(SimCaError::Invalid(
                "a certificate cannot succeed itself".into(),
            ));
        }
        if !self.state.links.iter().any(|l| l.old_serial == old) {
            self.state.links.push(SerialLink {
                old_serial: old,
                new_serial: new,
                linked_at: OffsetDateTime::now_utc().unix_timestamp(),
            });
        }
        let path = self.links_path();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&SerialLinks {
            links: self.state.links.clone(),
        })
        .map_err(|e| SimCaError::Invalid(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        self.save_state()
    }

    /// Issues a signing certificate and returns a card holding it, its key sealed under
    /// `pin` (JPKI signing passwords are 6 to 16 letters and digits).
    pub fn issue(&mut self, req: &IssueRequest, pin: &str) -> Result<Card, SimCaError> {
        crate::card::check_signing_pin(pin).map_err(|e| SimCaError::Invalid(e.to_string()))?;
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)?;
        let cert = self.certify(req, &key)?;
        self.save_state()?;
        Card::create(cert, vec![self.cert_der.clone()], &key.serialize_der(), pin)
            .map_err(|e| SimCaError::Invalid(e.to_string()))
    }

    /// Issues one signing certificate per request, all for `key`, and records them once.
    /// For benchmarks and tests that need many residents: a real card has a key of its own,
    /// and generating RSA-2048 keys (and sealing them under a password) would dominate
    /// issuing thousands of cards. Each certificate is still distinct (serial, holder).
    pub fn issue_batch(
        &mut self,
        reqs: &[IssueRequest],
        key: &CardKey,
    ) -> Result<Vec<IssuedCard>, SimCaError> {
        let issued = reqs
            .iter()
            .map(|req| {
                Ok(IssuedCard {
                    certificate_der: self.certify(req, &key.pair)?,
                    chain: vec![self.cert_der.clone()],
                })
            })
            .collect::<Result<Vec<_>, SimCaError>>()?;
        self.save_state()?;
        Ok(issued)
    }

    /// Signs a certificate for `key` and notes it as issued (the caller saves the state).
    fn certify(&mut self, req: &IssueRequest, key: &KeyPair) -> Result<Vec<u8>, SimCaError> {
        let birth = parse_date(&req.birthdate)?;
        if !matches!(req.sex.as_str(), "1" | "2" | "3") {
            return Err(SimCaError::Invalid("sex is 1, 2 or 3".into()));
        }
        let now = OffsetDateTime::now_utc();
        let not_before = req.not_before.unwrap_or(now - Duration::minutes(5));
        let not_after = match req.valid_days {
            Some(days) => now + Duration::days(days),
            None => fifth_birthday_after(now.date(), birth)
                .with_hms(23, 59, 59)
                .map_err(|e| SimCaError::Invalid(e.to_string()))?
                .assume_utc(),
        };
        if not_after <= not_before {
            return Err(SimCaError::Invalid(
                "the certificate would end before it starts".into(),
            ));
        }
        let serial = random_serial()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "JP");
        dn.push(DnType::CommonName, hex_upper(&serial));
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = not_before;
        params.not_after = not_after;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let era_birthdate = format!("4{}", req.birthdate.replace('-', ""));
        params.subject_alt_names = vec![
            SanType::OtherName((oid_arcs(jpki::OID_NAME), req.name.clone().into())),
            SanType::OtherName((oid_arcs(jpki::OID_SEX), req.sex.clone().into())),
            SanType::OtherName((oid_arcs(jpki::OID_BIRTHDATE), era_birthdate.into())),
            SanType::OtherName((oid_arcs(jpki::OID_ADDRESS), req.address.clone().into())),
        ];
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &[2, 5, 29, 32],
            certificate_policies(jpki::POLICY_SIGNING)?,
        )];
        let issuer = Issuer::new(ca_params(), &self.key);
        let cert = params.signed_by(key, &issuer)?;
        self.state.issued.push(IssuedCert {
            serial: hex_upper(&serial),
            not_after: not_after.unix_timestamp(),
        });
        Ok(cert.der().to_vec())
    }

    /// Revokes a certificate by serial (hex) and publishes a new CRL. `reason` is one of
    /// `affiliationChanged` (the contents changed, e.g. a move), `superseded`,
    /// `keyCompromise`, `cessationOfOperation`, `unspecified`.
    pub fn revoke(&mut self, serial_hex: &str, reason: &str) -> Result<(), SimCaError> {
        let serial = serial_hex.to_ascii_uppercase();
        if !self.state.issued.iter().any(|c| c.serial == serial) {
            return Err(SimCaError::Invalid(format!(
                "no certificate with serial {serial} was issued by this CA"
            )));
        }
        reason_code(reason)?;
        if !self.state.revoked.iter().any(|r| r.serial == serial) {
            self.state.revoked.push(Revoked {
                serial,
                revoked_at: OffsetDateTime::now_utc().unix_timestamp(),
                reason: reason.to_owned(),
            });
        }
        self.publish_crl()
    }

    /// Signs and writes a fresh CRL (valid for a day, like JPKI's daily CRL).
    pub fn publish_crl(&mut self) -> Result<(), SimCaError> {
        self.state.crl_number += 1;
        let now = OffsetDateTime::now_utc();
        let revoked_certs = self
            .state
            .revoked
            .iter()
            .map(|r| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&hex_decode(&r.serial)?),
                    revocation_time: OffsetDateTime::from_unix_timestamp(r.revoked_at)
                        .map_err(|e| SimCaError::Invalid(e.to_string()))?,
                    reason_code: Some(reason_code(&r.reason)?),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, SimCaError>>()?;
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(1),
            next_update: now + Duration::days(1),
            crl_number: SerialNumber::from(self.state.crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let issuer = Issuer::new(ca_params(), &self.key);
        let crl = params.signed_by(&issuer)?;
        let path = self.crl_path();
        let tmp = path.with_extension("crl.tmp");
        std::fs::write(&tmp, crl.der().as_ref()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        self.save_state()
    }

    /// Issued certificates.
    pub fn issued(&self) -> &[IssuedCert] {
        &self.state.issued
    }

    fn save_state(&self) -> Result<(), SimCaError> {
        let path = self.dir.join("state.json");
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&self.state)
            .map_err(|e| SimCaError::Invalid(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }
}

fn reason_code(reason: &str) -> Result<RevocationReason, SimCaError> {
    Ok(match reason {
        "unspecified" => RevocationReason::Unspecified,
        "keyCompromise" => RevocationReason::KeyCompromise,
        "affiliationChanged" => RevocationReason::AffiliationChanged,
        "superseded" => RevocationReason::Superseded,
        "cessationOfOperation" => RevocationReason::CessationOfOperation,
        "certificateHold" => RevocationReason::CertificateHold,
        other => {
            return Err(SimCaError::Invalid(format!(
                "revocation reason `{other}`: use affiliationChanged, superseded, keyCompromise, cessationOfOperation, certificateHold or unspecified"
            )));
        }
    })
}

/// A positive 16-byte serial number.
fn random_serial() -> Result<Vec<u8>, SimCaError> {
    let mut serial = random::bytes(16).map_err(|e| SimCaError::Invalid(e.to_string()))?;
    serial[0] = (serial[0] & 0x7f) | 0x01;
    Ok(serial)
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn hex_decode(s: &str) -> Result<Vec<u8>, SimCaError> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SimCaError::Invalid(format!("serial `{s}` is not hex")));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .map_err(|_| SimCaError::Invalid(format!("serial `{s}` is not hex")))
        })
        .collect()
}

/// Writes a file readable by its owner only.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<(), SimCaError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(data).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_birthday_after_issue_ends_the_certificate() {
        let issued = Date::from_calendar_date(2026, time::Month::November, 22).unwrap();
        let born = Date::from_calendar_date(1980, time::Month::March, 14).unwrap();
        assert_eq!(
            fifth_birthday_after(issued, born),
            Date::from_calendar_date(2031, time::Month::March, 14).unwrap()
        );
        let leap = Date::from_calendar_date(2000, time::Month::February, 29).unwrap();
        assert_eq!(
            fifth_birthday_after(issued, leap),
            Date::from_calendar_date(2031, time::Month::February, 28).unwrap()
        );
    }

    #[test]
    fn certificate_policies_encode_the_jpki_signing_oid() {
        let der = certificate_policies("1.2.392.200149.8.5.1.1.20").unwrap();
        assert_eq!(
            der,
            vec![
                0x30, 0x0f, 0x30, 0x0d, 0x06, 0x0b, 0x2a, 0x83, 0x08, 0x8c, 0x9b, 0x55, 0x08, 0x05,
                0x01, 0x01, 0x14
            ]
        );
    }
}
