//! Text from outside shown to residents and clients: `service::deceptive_char`, which finds
//! the characters that would let an application's names and descriptions say something else
//! than they seem, and `code::public_detail`, which takes the platform's Rust type names out
//! of a refusal's detail. Never a panic; a text `deceptive_char` passes holds no NUL nor bidi
//! override, embedding or isolate; `public_detail` leaves no `expected struct Name` behind
//! and is idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsunagu_core::code::public_detail;
use tsunagu_core::service::deceptive_char;

fn names_a_type(detail: &str) -> bool {
    detail.match_indices("expected struct ").any(|(i, m)| {
        detail[i + m.len()..]
            .chars()
            .next()
            .is_some_and(char::is_uppercase)
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for multiline in [false, true] {
        match deceptive_char(&text, multiline) {
            None => assert!(!text.chars().any(|c| {
                let cp = c as u32;
                c == '\0' || (0x202A..=0x202E).contains(&cp) || (0x2066..=0x2069).contains(&cp)
            })),
            Some(c) => assert!(text.contains(c)),
        }
    }
    // A single-line check is the stricter one.
    if deceptive_char(&text, false).is_none() {
        assert!(deceptive_char(&text, true).is_none());
    }

    let detail = public_detail(&text);
    assert!(!names_a_type(&detail), "{text:?} -> {detail:?}");
    assert_eq!(public_detail(&detail), detail, "not idempotent on {text:?}");
    // Also as serde writes it, so the fuzzer reaches the rewriting with any type name.
    let serde_like = format!("invalid type: string, expected struct {text} at line 1 column 2");
    let detail = public_detail(&serde_like);
    assert!(!names_a_type(&detail), "{serde_like:?} -> {detail:?}");
});
