//! Arbitrary bytes as a certificate chain: path validation against a fixed anchor, the JPKI
//! basic items, signature verification with the certificate's key, and a service's client
//! certificate as registered for mutual TLS (PEM → `x5t#S256`). Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tsunagu_crypto::jpki;
use tsunagu_crypto::x509::{self, CrlSet, TrustAnchors, ValidationPolicy};

fn anchors() -> &'static (TrustAnchors, CrlSet) {
    static ANCHORS: OnceLock<(TrustAnchors, CrlSet)> = OnceLock::new();
    ANCHORS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tsunagu-fuzz-ca-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ca = tsunagu_jpki_sim::SimCa::init(&dir).expect("simulated CA");
        let crl = std::fs::read(ca.crl_path()).expect("CRL");
        (
            TrustAnchors::from_ders(vec![ca.certificate_der().to_vec()]).expect("anchor"),
            CrlSet::from_ders(&[crl]).expect("CRL parses"),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let (anchors, crls) = anchors();
    // The input may hold several certificates separated by a marker byte sequence.
    let chain: Vec<Vec<u8>> = data
        .split(|b| *b == 0xff)
        .map(<[u8]>::to_vec)
        .take(4)
        .collect();
    let _ = x509::validate_chain(
        &chain,
        anchors,
        crls,
        1_790_000_000,
        &ValidationPolicy::default(),
    );
    let _ = jpki::basic_attributes(data);
    let _ = x509::subject_key(data);
    let _ = x509::verify_with_certificate(data, b"message", &[0u8; 64]);
    let _ = x509::certificates_from_pem_or_der(data);
    let _ = CrlSet::from_ders(&[data.to_vec()]);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = x509::x5t_s256_of_pem(text);
    }
});
