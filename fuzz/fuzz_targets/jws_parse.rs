//! Any string through the compact JWS parser, then verification with a fixed key: never a
//! panic, and nothing but the genuine token verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_crypto::jws;

fn key() -> &'static PublicJwk {
    static KEY: OnceLock<PublicJwk> = OnceLock::new();
    KEY.get_or_init(|| {
        PublicJwk::from_json(
            r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#,
        )
        .expect("RFC 7515 A.3 key")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = jws::parse(text) {
        let _ = token.json_payload();
        let _ = token.verify(key());
    }
    let _ = PublicJwk::from_json(text);
});
