//! TOTP (RFC 6238) for staff logins: SHA-1, 6 digits, 30-second steps, one step of skew
//! either way, computed by `totp-rs`; the secret in base32 and as an `otpauth://` URI for
//! authenticator apps. Pure: the time comes in as an argument.

use crate::random;
use totp_rs::{Algorithm, Secret, TOTP};

/// TOTP period (seconds).
pub const STEP: i64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Bytes of a TOTP secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;

/// A new TOTP secret.
pub fn new_secret() -> Result<Vec<u8>, String> {
    random::bytes(SECRET_BYTES).map_err(|e| e.to_string())
}

/// The secret in base32, as authenticator apps take it.
pub fn base32(secret: &[u8]) -> String {
    Secret::Raw(secret.to_vec()).to_encoded().to_string()
}

/// A base32 secret (as `totp_secret` is printed) back to its bytes.
pub fn from_base32(secret: &str) -> Option<Vec<u8>> {
    Secret::Encoded(secret.to_owned()).to_bytes().ok()
}

/// RFC 3986 unreserved characters stay; everything else is percent-encoded.
const LABEL: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, LABEL).to_string()
}

/// The `otpauth://totp/…` URI authenticator apps read from a QR code.
pub fn otpauth_uri(issuer: &str, staff_id: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        percent(issuer),
        percent(staff_id),
        base32(secret),
        percent(issuer)
    )
}

fn totp(secret: &[u8]) -> Option<TOTP> {
    TOTP::new(Algorithm::SHA1, DIGITS, 0, STEP as u64, secret.to_vec()).ok()
}

/// The code for the step containing `at` (Unix seconds).
pub fn code_at(secret: &[u8], at: i64) -> Option<String> {
    Some(totp(secret)?.generate(u64::try_from(at).ok()?))
}

/// The time step of a code that matches at `now` within one step either way, if any (the
/// caller refuses a step at or before the last one used: each code once per account).
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret)?;
    let step = now.div_euclid(STEP);
    let mut found = None;
    // Every candidate is computed and compared in constant time, whichever matches.
    for s in [step - 1, step, step + 1] {
        let Ok(at) = u64::try_from(s * STEP) else {
            continue;
        };
        let expected = t.generate(at);
        if crate::constant_time_eq(expected.as_bytes(), code.as_bytes()) && found.is_none() {
            found = Some(s);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        let secret = b"12345678901234567890";
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(secret, t).unwrap(), &eight[2..], "t = {t}");
        }
    }

    #[test]
    fn a_code_matches_one_step_either_way_and_no_further() {
        let secret = new_secret().unwrap();
        let now = 1_800_000_015;
        let code = code_at(&secret, now).unwrap();
        assert_eq!(matching_step(&secret, &code, now), Some(now / STEP));
        assert_eq!(matching_step(&secret, &code, now + STEP), Some(now / STEP));
        assert_eq!(matching_step(&secret, &code, now - STEP), Some(now / STEP));
        assert_eq!(matching_step(&secret, &code, now + 2 * STEP), None);
        assert_eq!(matching_step(&secret, "12345", now), None);
        assert_eq!(matching_step(&secret, "12345a", now), None);
        assert_eq!(matching_step(&secret, "１２３４５６", now), None);
    }

    #[test]
    fn otpauth_uri_names_the_issuer_and_the_secret() {
        let uri = otpauth_uri("tsunagu city", "officer-1", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/tsunagu%20city:officer-1?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=tsunagu%20city&algorithm=SHA1&digits=6&period=30"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_checked_without_panic_and_only_six_digits_match(code in ".{0,12}", now in 0i64..4_000_000_000) {
            let secret = b"12345678901234567890";
            if let Some(step) = matching_step(secret, &code, now) {
                proptest::prop_assert!(code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit()));
                proptest::prop_assert!((step - now.div_euclid(STEP)).abs() <= 1);
                proptest::prop_assert_eq!(code_at(secret, step * STEP).unwrap(), code);
            }
        }
    }
}
