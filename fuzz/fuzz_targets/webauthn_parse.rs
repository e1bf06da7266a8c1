//! WebAuthn input as a browser (or an attacker) sends it: raw CBOR/authenticator data/client
//! data; the JSON wire forms; and genuine registrations and assertions of a software
//! authenticator with fuzzer-chosen byte edits, then the full relying-party checks.
//! Never a panic; an edited assertion never verifies unless the signed bytes are unchanged;
//! an accepted registration always has the user present and verified, at our RP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, OnceLock};
use tsunagu_crypto::webauthn::soft::SoftAuthenticator;
use tsunagu_crypto::webauthn::{self, *};

const CHALLENGE: &[u8] = b"fuzzing challenge, 32 bytes long";

struct Genuine {
    rp: RelyingParty,
    registration: RegistrationResponse,
    credential: Credential,
    assertion: AssertionResponse,
}

fn genuine() -> &'static Genuine {
    static G: OnceLock<Genuine> = OnceLock::new();
    G.get_or_init(|| {
        let rp = RelyingParty::for_public_url("https://id.city.example").unwrap();
        let mut a = SoftAuthenticator::new(rp.clone());
        let registration = a.register(CHALLENGE);
        let credential = verify_registration(&rp, CHALLENGE, &registration).unwrap();
        let assertion = a.assert(CHALLENGE);
        Genuine {
            rp,
            registration,
            credential,
            assertion,
        }
    })
}

/// Applies (position, xor) edits from `edits` to the concatenation of `parts`; the byte
/// after each pair may also truncate or extend a part.
fn edit(parts: &mut [&mut Vec<u8>], edits: &[u8]) {
    for e in edits.chunks_exact(4) {
        let part = usize::from(e[0]) % parts.len();
        let buf = &mut *parts[part];
        let pos = usize::from(u16::from_le_bytes([e[1], e[2]]));
        match e[3] {
            0 => buf.truncate(pos % (buf.len() + 1)),
            1 => buf.insert(pos % (buf.len() + 1), e[2]),
            x => {
                if !buf.is_empty() {
                    let n = buf.len();
                    buf[pos % n] ^= x;
                }
            }
        }
    }
}

static LOCK: Mutex<()> = Mutex::new(());

fuzz_target!(|data: &[u8]| {
    let _guard = LOCK.lock();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let g = genuine();
    match mode % 4 {
        0 => {
            let _ = parse_attestation_object(rest);
            let _ = parse_authenticator_data(rest);
            let _ = parse_client_data(rest);
        }
        1 => {
            let mut r = g.registration.clone();
            edit(
                &mut [&mut r.client_data_json, &mut r.attestation_object],
                rest,
            );
            if let Ok(c) = verify_registration(&g.rp, CHALLENGE, &r) {
                let data = parse_attestation_object(&r.attestation_object).unwrap();
                assert_eq!(data.rp_id_hash, tsunagu_crypto::sha256(g.rp.id.as_bytes()));
                assert!(data.flags & FLAG_UP != 0 && data.flags & FLAG_UV != 0);
                let cd = parse_client_data(&r.client_data_json).unwrap();
                assert_eq!(cd.kind, "webauthn.create");
                assert_eq!(cd.origin, g.rp.origin);
                assert!(!c.id.is_empty() && c.id.len() <= MAX_CREDENTIAL_ID);
            }
        }
        2 => {
            let mut a = g.assertion.clone();
            edit(
                &mut [
                    &mut a.client_data_json,
                    &mut a.authenticator_data,
                    &mut a.signature,
                    &mut a.credential_id,
                ],
                rest,
            );
            let result = webauthn::verify_assertion(
                &g.rp,
                CHALLENGE,
                &g.credential.id,
                &g.credential.public_key,
                0,
                &a,
            );
            if result.is_ok() {
                assert_eq!(
                    a.client_data_json, g.assertion.client_data_json,
                    "forged client data accepted"
                );
                assert_eq!(
                    a.authenticator_data, g.assertion.authenticator_data,
                    "forged authenticator data accepted"
                );
                assert_eq!(a.credential_id, g.assertion.credential_id);
            }
        }
        _ => {
            if let Ok(w) = serde_json::from_slice::<WireAssertion>(rest) {
                let _ = w.decode();
            }
            if let Ok(w) = serde_json::from_slice::<WireRegistration>(rest) {
                let _ = w.decode();
            }
        }
    }
});
