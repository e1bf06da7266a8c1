//! NIST PKITS (Public Key Interoperability Test Suite) path validation cases.
//!
//! The vectors are not in the repository: `scripts/fetch-vectors.sh` downloads them (from
//! the pyhanko-certvalidator source distribution) into `.vectors/nist_pkits`, or point
//! `TSUNAGU_PKITS_DIR` at a folder holding `pkits.json`, `certs/` and `crls/`. Without
//! them the test prints a notice and passes.
//!
//! Sections that apply to tsunagu (signatures 4.1, validity 4.2, name chaining 4.3, basic
//! CRLs 4.4, basic constraints 4.6, key usage 4.7, private extensions 4.16) must give the
//! expected answer for every case, except the cases listed in `DEVIATIONS` with why. The
//! other sections (self-issued certificates, policies, name constraints, distribution
//! points, delta CRLs) are run and reported, not required; docs/security/x509.md lists them.

use std::path::PathBuf;
use tsunagu_crypto::x509::{
    CrlSet, LeafUsage, RevocationMode, TrustAnchors, ValidationPolicy, validate_chain,
};

/// Cases in required sections where tsunagu's answer differs from PKITS, and why. Every
/// one refuses a path PKITS calls valid (fails closed); none accepts an invalid path.
const DEVIATIONS: &[(&str, &str)] = &[
    ("40104", "DSA signatures are not accepted"),
    ("40105", "DSA signatures are not accepted"),
    ("40203", "UTCTime before the year 2000 is refused by webpki"),
    (
        "40303",
        "names are compared byte for byte (no RFC 5280 §7.1 normalization)",
    ),
    (
        "40304",
        "names are compared byte for byte (no RFC 5280 §7.1 normalization)",
    ),
    (
        "40305",
        "names are compared byte for byte (no RFC 5280 §7.1 normalization)",
    ),
    (
        "40306",
        "certificates with issuer/subject unique identifiers are refused",
    ),
    (
        "40310",
        "names are compared byte for byte (no RFC 5280 §7.1 normalization)",
    ),
    (
        "40311",
        "names are compared byte for byte (no RFC 5280 §7.1 normalization)",
    ),
    (
        "40419",
        "CRLs signed by a separate CRL-signing key are not supported",
    ),
    (
        "40608",
        "a CA certificate is not accepted as an end-entity certificate",
    ),
    (
        "40614",
        "a CA certificate is not accepted as an end-entity certificate",
    ),
    (
        "40615",
        "self-issued intermediate certificates are not supported",
    ),
    (
        "40617",
        "self-issued intermediate certificates are not supported",
    ),
];

const REQUIRED_SECTIONS: &[&str] = &["401", "402", "403", "404", "406", "407", "416"];

/// PKITS validation time used by its maintainers' harness: 2022-05-01T00:00:00Z.
const PKITS_TIME: i64 = 1_651_363_200;

fn vectors_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("TSUNAGU_PKITS_DIR") {
        return Some(PathBuf::from(dir));
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.vectors/nist_pkits");
    local.join("pkits.json").exists().then_some(local)
}

#[derive(serde::Deserialize)]
struct Case {
    id: String,
    name: String,
    cert: String,
    #[serde(default)]
    other_certs: Vec<String>,
    #[serde(default)]
    crls: Vec<String>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    params: Option<serde_json::Value>,
}

#[test]
fn nist_pkits_cases() {
    let Some(dir) = vectors_dir() else {
        println!("NOTICE: PKITS vectors not found; run scripts/fetch-vectors.sh (test skipped)");
        return;
    };
    let cases: Vec<Case> =
        serde_json::from_slice(&std::fs::read(dir.join("pkits.json")).unwrap()).unwrap();
    let read = |sub: &str, name: &str| std::fs::read(dir.join(sub).join(name)).unwrap();
    let anchors =
        TrustAnchors::from_ders(vec![read("certs", "TrustAnchorRootCertificate.crt")]).unwrap();
    let policy = ValidationPolicy {
        revocation: RevocationMode::Chain,
        require_status: true,
        enforce_crl_expiry: true,
        leaf_usage: LeafUsage::Any,
        required_policy: None,
    };

    let mut failures = Vec::new();
    let mut accepted_invalid = Vec::new();
    let mut per_section: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for case in &cases {
        // Cases with policy parameters exercise policy processing, which is out of scope.
        if case.params.is_some() {
            continue;
        }
        let mut chain = vec![read("certs", &case.cert)];
        chain.extend(case.other_certs.iter().map(|c| read("certs", c)));
        let mut crl_ders = vec![read("crls", "TrustAnchorRootCRL.crl")];
        crl_ders.extend(case.crls.iter().map(|c| read("crls", c)));
        let crls = CrlSet::from_ders(&crl_ders).ok();
        let outcome = match &crls {
            Some(crls) => validate_chain(&chain, &anchors, crls, PKITS_TIME, &policy),
            None => Err(tsunagu_crypto::x509::CertError::Malformed(
                "CRL unparsable".into(),
            )),
        };
        let expected_valid = case.error.is_none();
        let correct = outcome.is_ok() == expected_valid;
        let section = case.id[..3].to_owned();
        let entry = per_section.entry(section.clone()).or_default();
        entry.0 += 1;
        if correct {
            entry.1 += 1;
        }
        if !expected_valid && outcome.is_ok() {
            accepted_invalid.push(format!("{} {}", case.id, case.name));
        }
        let deviation = DEVIATIONS.iter().any(|(id, _)| *id == case.id);
        if REQUIRED_SECTIONS.contains(&section.as_str()) && deviation == correct {
            failures.push(format!(
                "{} {}: expected {}, got {:?}{}",
                case.id,
                case.name,
                if expected_valid { "valid" } else { "invalid" },
                outcome.err(),
                if deviation {
                    " (listed as a deviation: update DEVIATIONS)"
                } else {
                    ""
                }
            ));
        }
    }
    println!("PKITS section  cases  as expected");
    for (section, (total, ok)) in &per_section {
        let required = if REQUIRED_SECTIONS.contains(&section.as_str()) {
            "required"
        } else {
            "reported"
        };
        println!("4.{:<11} {total:>5}  {ok:>11}  {required}", &section[1..]);
    }
    println!("invalid paths accepted (all in sections outside scope):");
    for case in &accepted_invalid {
        println!("  {case}");
    }
    for case in &accepted_invalid {
        let section = &case[..3];
        assert!(
            !REQUIRED_SECTIONS.contains(&section),
            "an invalid path was accepted in a required section: {case}"
        );
    }
    assert!(
        per_section.values().map(|v| v.0).sum::<usize>() > 150,
        "too few cases ran"
    );
    assert!(
        failures.is_empty(),
        "PKITS failures:\n{}",
        failures.join("\n")
    );
}
