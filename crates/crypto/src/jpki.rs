//! The four basic items (基本4情報) from a JPKI signing certificate.
//!
//! JPKI puts them in subjectAltName as otherName entries, each an OID and a string
//! (DOMAIN.md): `1.2.392.200149.8.5.5.1` name, `.2` name substitute characters,
//! `.3` sex, `.4` date of birth (one era digit, then YYYYMMDD), `.5` address, `.6` address
//! substitute characters. (Some code online swaps `.2` and `.4`; the date's shape tells
//! them apart, and a value that is not a date in `.4` is refused.)
//!
//! The individual number (個人番号) is never on these certificates, and nothing here asks
//! for it.

use tsunagu_core::identity::{BasicAttributes, Sex};
use x509_parser::asn1_rs::{Any, Tag};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

pub const OID_NAME: &str = "1.2.392.200149.8.5.5.1";
pub const OID_NAME_SUBSTITUTE: &str = "1.2.392.200149.8.5.5.2";
pub const OID_SEX: &str = "1.2.392.200149.8.5.5.3";
pub const OID_BIRTHDATE: &str = "1.2.392.200149.8.5.5.4";
pub const OID_ADDRESS: &str = "1.2.392.200149.8.5.5.5";
pub const OID_ADDRESS_SUBSTITUTE: &str = "1.2.392.200149.8.5.5.6";

/// Certificate policy of the signing certificate (署名用電子証明書).
pub const POLICY_SIGNING: &str = "1.2.392.200149.8.5.1.1.20";
/// Certificate policy of the user authentication certificate (利用者証明用電子証明書).
pub const POLICY_AUTHENTICATION: &str = "1.2.392.200149.8.5.1.3.30";

/// Why the basic items could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    #[error("certificate does not parse: {0}")]
    Malformed(String),
    #[error("basic items missing or unreadable: {}", .0.join(", "))]
    Missing(Vec<&'static str>),
}

/// Reads the string inside an otherName value (`[0] EXPLICIT` around a string type).
fn other_name_string(value: &[u8]) -> Option<String> {
    let (_, explicit) = Any::from_der(value).ok()?;
    let (_, inner) = Any::from_der(explicit.data).ok()?;
    let data: &[u8] = inner.data;
    match inner.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => {
            std::str::from_utf8(data).ok().map(str::to_owned)
        }
        Tag::BmpString => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// Reads a JPKI date of birth (an era digit then Gregorian YYYYMMDD; plain YYYYMMDD is
/// accepted too) into ISO 8601 `YYYY-MM-DD`, refusing impossible dates.
pub fn parse_birthdate(value: &str) -> Option<String> {
    let v = value.trim();
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ymd = match v.len() {
        9 => &v[1..],
        8 => v,
        _ => return None,
    };
    let year: i32 = ymd[0..4].parse().ok()?;
    let month: u8 = ymd[4..6].parse().ok()?;
    let day: u8 = ymd[6..8].parse().ok()?;
    let month = time::Month::try_from(month).ok()?;
    time::Date::from_calendar_date(year, month, day).ok()?;
    Some(format!("{}-{}-{}", &ymd[0..4], &ymd[4..6], &ymd[6..8]))
}

/// Extracts the four basic items from a signing certificate (DER).
pub fn basic_attributes(cert_der: &[u8]) -> Result<BasicAttributes, AttributeError> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| AttributeError::Malformed(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| AttributeError::Malformed(format!("subjectAltName: {e}")))?;
    let mut name = None;
    let mut name_substitute = None;
    let mut sex = None;
    let mut birthdate = None;
    let mut address = None;
    let mut address_substitute = None;
    if let Some(san) = san {
        for general_name in &san.value.general_names {
            let GeneralName::OtherName(oid, value) = general_name else {
                continue;
            };
            let Some(text) = other_name_string(value) else {
                continue;
            };
            match oid.to_id_string().as_str() {
                OID_NAME => name = Some(text),
                OID_NAME_SUBSTITUTE => name_substitute = Some(text),
                OID_SEX => sex = Sex::from_jpki(&text),
                OID_BIRTHDATE => birthdate = parse_birthdate(&text),
                OID_ADDRESS => address = Some(text),
                OID_ADDRESS_SUBSTITUTE => address_substitute = Some(text),
                _ => {}
            }
        }
    }
    let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let name = non_empty(name);
    let address = non_empty(address);
    let mut missing = Vec::new();
    if name.is_none() {
        missing.push("name");
    }
    if address.is_none() {
        missing.push("address");
    }
    if birthdate.is_none() {
        missing.push("birthdate");
    }
    if sex.is_none() {
        missing.push("sex");
    }
    match (name, address, birthdate, sex) {
        (Some(name), Some(address), Some(birthdate), Some(sex)) => Ok(BasicAttributes {
            name,
            address,
            birthdate,
            sex,
            name_substitute: non_empty(name_substitute),
            address_substitute: non_empty(address_substitute),
        }),
        _ => Err(AttributeError::Missing(missing)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn oid(dotted: &str) -> Vec<u64> {
        dotted.split('.').map(|p| p.parse().unwrap()).collect()
    }

    fn cert_with(items: &[(&str, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = items
            .iter()
            .map(|(o, v)| SanType::OtherName((oid(o), (*v).into())))
            .collect();
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_four_items_are_read_from_their_oids() {
        let der = cert_with(&[
            (OID_NAME, "山田　花子"),
            (OID_SEX, "2"),
            (OID_BIRTHDATE, "419800314"),
            (OID_ADDRESS, "群馬県前橋市大手町二丁目12番1号"),
            (OID_NAME_SUBSTITUTE, ""),
        ]);
        let attrs = basic_attributes(&der).unwrap();
        assert_eq!(attrs.name, "山田　花子");
        assert_eq!(attrs.sex, Sex::Female);
        assert_eq!(attrs.birthdate, "1980-03-14");
        assert_eq!(attrs.address, "群馬県前橋市大手町二丁目12番1号");
        assert_eq!(attrs.name_substitute, None);
    }

    #[test]
    fn missing_items_are_named() {
        let der = cert_with(&[(OID_NAME, "山田太郎"), (OID_SEX, "1")]);
        assert_eq!(
            basic_attributes(&der),
            Err(AttributeError::Missing(vec!["address", "birthdate"]))
        );
    }

    #[test]
    fn a_swapped_substitute_oid_does_not_pass_as_a_birthdate() {
        let der = cert_with(&[
            (OID_NAME, "山田太郎"),
            (OID_SEX, "1"),
            (OID_BIRTHDATE, "髙"),
            (OID_ADDRESS, "前橋市"),
        ]);
        assert_eq!(
            basic_attributes(&der),
            Err(AttributeError::Missing(vec!["birthdate"]))
        );
    }

    #[test]
    fn birthdates_are_checked_against_the_calendar() {
        assert_eq!(parse_birthdate("420000229").as_deref(), Some("2000-02-29"));
        assert_eq!(parse_birthdate("19990229"), None);
        assert_eq!(parse_birthdate("419801301"), None);
        assert_eq!(parse_birthdate("1980-01-01"), None);
        assert_eq!(parse_birthdate(""), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = basic_attributes(&bytes);
        }

        #[test]
        fn birthdate_parsing_never_panics(s in "\\PC{0,12}") {
            let _ = parse_birthdate(&s);
        }
    }
}
