//! Wycheproof vectors for the signature primitives tsunagu verifies with: ECDSA P-256
//! SHA-256 (DER and IEEE P1363 forms) and RSASSA-PKCS1-v1_5 2048-bit SHA-256.

use tsunagu_crypto::keys::{
    verify_ecdsa_p256_der, verify_ecdsa_p256_fixed, verify_rsa_pkcs1_sha256,
};
use wycheproof::TestResult;

fn check(name: &str, tc_id: usize, result: TestResult, outcome: bool, tally: &mut (usize, usize)) {
    match result {
        TestResult::Valid => assert!(outcome, "{name} tc {tc_id}: valid signature refused"),
        TestResult::Invalid => assert!(!outcome, "{name} tc {tc_id}: invalid signature accepted"),
        TestResult::Acceptable => {}
    }
    tally.0 += 1;
    if outcome {
        tally.1 += 1;
    }
}

#[test]
fn ecdsa_p256_sha256_der_signatures() {
    let set = wycheproof::ecdsa::TestSet::load(wycheproof::ecdsa::TestName::EcdsaSecp256r1Sha256)
        .unwrap();
    let mut tally = (0, 0);
    for group in &set.test_groups {
        for t in &group.tests {
            let ok = verify_ecdsa_p256_der(&group.key.key, &t.msg, &t.sig).is_ok();
            check("ecdsa der", t.tc_id, t.result, ok, &mut tally);
        }
    }
    assert!(tally.0 > 400, "only {} cases ran", tally.0);
}

#[test]
fn ecdsa_p256_sha256_p1363_signatures() {
    let set =
        wycheproof::ecdsa::TestSet::load(wycheproof::ecdsa::TestName::EcdsaSecp256r1Sha256P1363)
            .unwrap();
    let mut tally = (0, 0);
    for group in &set.test_groups {
        for t in &group.tests {
            let ok = verify_ecdsa_p256_fixed(&group.key.key, &t.msg, &t.sig).is_ok();
            check("ecdsa p1363", t.tc_id, t.result, ok, &mut tally);
        }
    }
    assert!(tally.0 > 100, "only {} cases ran", tally.0);
}

#[test]
fn rsa_pkcs1_2048_sha256_signatures() {
    let set = wycheproof::rsa_pkcs1_verify::TestSet::load(
        wycheproof::rsa_pkcs1_verify::TestName::Rsa2048Sha256,
    )
    .unwrap();
    let mut tally = (0, 0);
    for group in &set.test_groups {
        for t in &group.tests {
            let ok = verify_rsa_pkcs1_sha256(&group.asn_key, &t.msg, &t.sig).is_ok();
            check("rsa pkcs1", t.tc_id, t.result, ok, &mut tally);
        }
    }
    assert!(tally.0 > 100, "only {} cases ran", tally.0);
}
