//! Verification costs: JWS (ES256, EdDSA), raw ES256 login signatures, RSA PKCS#1 card
//! signatures, and a JPKI certificate path with a CRL. Results: docs/PERFORMANCE.md.

use criterion::{Criterion, criterion_group, criterion_main};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256, RsaKeySize,
    SanType, SerialNumber,
};
use serde_json::json;
use std::hint::black_box;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::x509::{
    CrlSet, TrustAnchors, ValidationPolicy, validate_chain, verify_with_certificate,
};
use tsunagu_crypto::{jcs, jpki, jws};

fn jose(c: &mut Criterion) {
    let mut group = c.benchmark_group("jws");
    let payload = json!({"v":1,"purpose_id":"allergy-to-childcare","consumer":"svc-a","provider":"svc-b",
        "items":["allergy"],"expires_at":1800000000,"terms_sha256":"ab".repeat(32),"issued_at":1790000000,"nonce":"n0nce"});
    for alg in [Alg::Es256, Alg::EdDsa] {
        let key = SigningKey::generate(alg).unwrap();
        let token = jws::sign_json(&key, Some("test"), &payload).unwrap();
        group.bench_function(format!("{} sign (JCS payload)", alg.as_str()), |b| {
            b.iter(|| black_box(jws::sign_json(&key, Some("test"), black_box(&payload)).unwrap()))
        });
        group.bench_function(format!("{} parse + verify", alg.as_str()), |b| {
            b.iter(|| {
                jws::parse(black_box(&token))
                    .unwrap()
                    .verify(key.public_jwk())
                    .unwrap()
            })
        });
    }
    let device = SigningKey::generate(Alg::Es256).unwrap();
    let nonce = "kX3m9V0pXc1r8i0ZpXk4n8F2d3Qh6y9s7t5u1w2e4r0";
    let sig = tsunagu_crypto::b64::url_encode(device.sign(nonce.as_bytes()).unwrap());
    group.bench_function("ES256 login signature verify", |b| {
        b.iter(|| {
            tsunagu_crypto::keys::verify_es256_b64(device.public_jwk(), nonce.as_bytes(), &sig)
                .unwrap()
        })
    });
    group.bench_function("JCS of a consent payload", |b| {
        b.iter(|| black_box(jcs::to_vec(&payload).unwrap()))
    });
    group.finish();
}

fn certificates(c: &mut Criterion) {
    let ca_key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
    let mut ca_params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "bench CA");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf_key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
    let mut leaf_params = CertificateParams::default();
    let oid = |s: &str| {
        s.split('.')
            .map(|p| p.parse().unwrap())
            .collect::<Vec<u64>>()
    };
    leaf_params.subject_alt_names = vec![
        SanType::OtherName((oid(jpki::OID_NAME), "前橋　太郎".into())),
        SanType::OtherName((oid(jpki::OID_SEX), "1".into())),
        SanType::OtherName((oid(jpki::OID_BIRTHDATE), "419800101".into())),
        SanType::OtherName((oid(jpki::OID_ADDRESS), "群馬県前橋市".into())),
    ];
    leaf_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    leaf_params.serial_number = Some(SerialNumber::from_slice(&[1, 2, 3]));
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    // A CRL listing 10,000 other certificates, as a busy CA's would.
    let now = time::OffsetDateTime::now_utc();
    let crl = CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: (0..10_000u32)
            .map(|i| rcgen::RevokedCertParams {
                serial_number: SerialNumber::from_slice(&(i + 1_000_000).to_be_bytes()),
                revocation_time: now - time::Duration::hours(2),
                reason_code: Some(rcgen::RevocationReason::AffiliationChanged),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap();
    let anchors = TrustAnchors::from_ders(vec![ca_cert.der().to_vec()]).unwrap();
    let crls = CrlSet::from_ders(&[crl.der().to_vec()]).unwrap();
    let chain = vec![leaf.der().to_vec()];
    let t = now.unix_timestamp();
    let policy = ValidationPolicy::default();
    validate_chain(&chain, &anchors, &crls, t, &policy).unwrap();

    let mut group = c.benchmark_group("x509");
    group.bench_function("validate a JPKI path with a 10,000-entry CRL", |b| {
        b.iter(|| validate_chain(black_box(&chain), &anchors, &crls, t, &policy).unwrap())
    });
    group.bench_function("read the four basic items", |b| {
        b.iter(|| black_box(jpki::basic_attributes(black_box(&chain[0])).unwrap()))
    });
    let message = b"{\"device_jwk_thumbprint\":\"x\",\"nonce\":\"y\"}";
    let pkcs8 = leaf_key.serialize_der();
    let rsa = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
    let mut sig = vec![0u8; rsa.public_modulus_len()];
    rsa.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        message,
        &mut sig,
    )
    .unwrap();
    group.bench_function("verify a card's RSA-2048 signature", |b| {
        b.iter(|| verify_with_certificate(&chain[0], black_box(message), &sig).unwrap())
    });
    group.bench_function("parse a 10,000-entry CRL", |b| {
        b.iter(|| black_box(CrlSet::from_ders(&[crl.der().to_vec()]).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, jose, certificates);
criterion_main!(benches);
