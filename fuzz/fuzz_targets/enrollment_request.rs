//! Arbitrary bytes as a `POST /v1/enrollment` body: decoding, then the whole proof check
//! against a fixed trust context. Never a panic; never an accepted proof.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tsunagu_crypto::proofing::{self, ProofContext};
use tsunagu_crypto::x509::{CrlSet, TrustAnchors, ValidationPolicy};

fn trust() -> &'static (TrustAnchors, CrlSet, ValidationPolicy) {
    static TRUST: OnceLock<(TrustAnchors, CrlSet, ValidationPolicy)> = OnceLock::new();
    TRUST.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tsunagu-fuzz-enroll-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ca = tsunagu_jpki_sim::SimCa::init(&dir).expect("simulated CA");
        let crl = std::fs::read(ca.crl_path()).expect("CRL");
        (
            TrustAnchors::from_ders(vec![ca.certificate_der().to_vec()]).expect("anchor"),
            CrlSet::from_ders(&[crl]).expect("CRL parses"),
            ValidationPolicy::default(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = proofing::parse_enrollment(data) else {
        return;
    };
    let Some(proof) = &request.proof else { return };
    let (anchors, crls, policy) = trust();
    let ctx = ProofContext {
        anchors,
        crls,
        policy,
        now: 1_790_000_000,
    };
    // No certificate the fuzzer can build chains to the fresh CA with a valid signature.
    assert!(proofing::verify_jpki_proof(&request, proof, &ctx).is_err());
});
