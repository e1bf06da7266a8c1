//! The one-time code a staff login sends (`tsunagu_crypto::totp::matching_step`), against a
//! secret and a time from the input. Never a panic (any text, any time, any secret); a code
//! that matches is six ASCII digits, its step is within one of now's, and it is exactly the
//! code of that step; the code of now always matches now.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsunagu_crypto::totp::{DIGITS, STEP, code_at, matching_step};

fuzz_target!(|input: (Vec<u8>, i64, String)| {
    let (mut secret, now, code) = input;
    // totp-rs refuses secrets under 128 bits; the platform makes 160-bit ones.
    secret.resize(secret.len().max(20), 0);
    let now = now.rem_euclid(8_000_000_000);
    if let Some(step) = matching_step(&secret, &code, now) {
        assert!(code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit()));
        assert!((step - now.div_euclid(STEP)).abs() <= 1);
        assert_eq!(
            code_at(&secret, step * STEP).as_deref(),
            Some(code.as_str())
        );
    }
    if let Some(current) = code_at(&secret, now) {
        // (A neighbouring step may have the same code; then that step is the one taken.)
        let step = matching_step(&secret, &current, now).expect("now's code matches now");
        assert_eq!(code_at(&secret, step * STEP), Some(current));
    }
});
