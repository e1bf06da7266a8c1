//! The simulated JPKI produces what the platform's verifier accepts, and revokes.

use tsunagu_crypto::x509::{
    CrlSet, TrustAnchors, ValidationPolicy, validate_chain, verify_with_certificate,
};
use tsunagu_crypto::{jpki, x509::CertError};
use tsunagu_jpki_sim::{CardError, CardKey, IssueRequest, SimCa};

fn request() -> IssueRequest {
    IssueRequest {
        name: "前橋　太郎".into(),
        address: "群馬県前橋市大手町二丁目12番1号".into(),
        birthdate: "1985-07-07".into(),
        sex: "1".into(),
        valid_days: None,
        not_before: None,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn issued_cards_validate_sign_and_carry_the_basic_items_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca = SimCa::init(dir.path()).unwrap();
    let mut card = ca.issue(&request(), "abc123").unwrap();
    let cert = card.certificate_der().unwrap();
    let anchors = TrustAnchors::from_ders(vec![ca.certificate_der().to_vec()]).unwrap();
    let policy = ValidationPolicy {
        required_policy: Some(jpki::POLICY_SIGNING.into()),
        ..ValidationPolicy::default()
    };
    let crl = std::fs::read(ca.crl_path()).unwrap();
    let crls = CrlSet::from_ders(&[crl]).unwrap();
    validate_chain(std::slice::from_ref(&cert), &anchors, &crls, now(), &policy).unwrap();

    let attrs = jpki::basic_attributes(&cert).unwrap();
    assert_eq!(attrs.name, "前橋　太郎");
    assert_eq!(attrs.birthdate, "1985-07-07");

    let sig = card.sign("abc123", b"data").unwrap();
    verify_with_certificate(&cert, b"data", &sig).unwrap();

    let serial = ca.issued()[0].serial.clone();
    let mut ca = SimCa::open(dir.path()).unwrap();
    ca.revoke(&serial, "affiliationChanged").unwrap();
    let crls = CrlSet::from_ders(&[std::fs::read(ca.crl_path()).unwrap()]).unwrap();
    assert_eq!(
        validate_chain(&[cert], &anchors, &crls, now(), &policy),
        Err(CertError::Revoked)
    );
}

#[test]
fn a_batch_of_cards_shares_a_key_but_each_certificate_is_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca = SimCa::init(dir.path()).unwrap();
    let key = CardKey::generate().unwrap();
    let reqs: Vec<IssueRequest> = (0..3)
        .map(|i| IssueRequest {
            name: format!("前橋　太郎{i}"),
            ..request()
        })
        .collect();
    let cards = ca.issue_batch(&reqs, &key).unwrap();
    assert_eq!(cards.len(), 3);
    let anchors = TrustAnchors::from_ders(vec![ca.certificate_der().to_vec()]).unwrap();
    let crls = CrlSet::from_ders(&[std::fs::read(ca.crl_path()).unwrap()]).unwrap();
    let policy = ValidationPolicy {
        required_policy: Some(jpki::POLICY_SIGNING.into()),
        ..ValidationPolicy::default()
    };
    let sig = key.sign(b"data").unwrap();
    for (i, card) in cards.iter().enumerate() {
        assert_eq!(card.chain, vec![ca.certificate_der().to_vec()]);
        let cert = &card.certificate_der;
        validate_chain(std::slice::from_ref(cert), &anchors, &crls, now(), &policy).unwrap();
        assert_eq!(
            jpki::basic_attributes(cert).unwrap().name,
            format!("前橋　太郎{i}")
        );
        verify_with_certificate(cert, b"data", &sig).unwrap();
    }
    // Recorded once, all of them, and revocable like any other.
    let reopened = SimCa::open(dir.path()).unwrap();
    assert_eq!(reopened.issued().len(), 3);
    let serials: std::collections::HashSet<_> =
        reopened.issued().iter().map(|c| c.serial.clone()).collect();
    assert_eq!(serials.len(), 3);
}

#[test]
fn the_card_locks_after_five_wrong_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca = SimCa::init(dir.path()).unwrap();
    let mut card = ca.issue(&request(), "abc123").unwrap();
    for remaining in (1..5).rev() {
        assert!(
            matches!(card.sign("wrong1", b"x"), Err(CardError::WrongPin { remaining: r }) if r == remaining)
        );
    }
    assert!(matches!(card.sign("wrong1", b"x"), Err(CardError::Locked)));
    assert!(matches!(card.sign("abc123", b"x"), Err(CardError::Locked)));
}

#[test]
fn signing_passwords_follow_the_jpki_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca = SimCa::init(dir.path()).unwrap();
    for bad in ["12345", "this-is-not-ok", "12345678901234567"] {
        assert!(ca.issue(&request(), bad).is_err(), "{bad}");
    }
}
