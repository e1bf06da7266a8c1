//! RFC 8785 JSON Canonicalization Scheme: the exact bytes tsunagu signs and hashes.

use crate::CryptoError;
use serde::Serialize;

/// The JCS bytes of `value`.
pub fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, CryptoError> {
    serde_json_canonicalizer::to_vec(value).map_err(|e| CryptoError::Malformed(format!("jcs: {e}")))
}

/// The JCS string of `value`.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, CryptoError> {
    serde_json_canonicalizer::to_string(value)
        .map_err(|e| CryptoError::Malformed(format!("jcs: {e}")))
}

/// Whether `bytes` are already the canonical form of the JSON they hold (no duplicate names,
/// sorted members, no insignificant whitespace, canonical numbers and strings).
pub fn is_canonical(bytes: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return false;
    };
    matches!(to_vec(&value), Ok(canonical) if canonical == bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 8785 §3.2.2: whitespace, numbers, strings and literals.
    #[test]
    fn rfc8785_section_3_2_2_example() {
        let input = r#"{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;
        let value: serde_json::Value = serde_json::from_str(input).unwrap();
        let expected = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        assert_eq!(to_string(&value).unwrap(), expected);
    }

    /// RFC 8785 §3.2.3: members sorted by UTF-16 code units, not by code points or bytes.
    #[test]
    fn rfc8785_section_3_2_3_sorting() {
        let input = r#"{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"#;
        let value: serde_json::Value = serde_json::from_str(input).unwrap();
        let out = to_string(&value).unwrap();
        let expected_order = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ];
        let mut last = 0;
        for name in expected_order {
            let at = out.find(name).unwrap();
            assert!(at > last, "{name} out of order in {out}");
            last = at;
        }
    }

    /// RFC 8785 Appendix B: IEEE 754 doubles and their canonical text.
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, text) in cases {
            let f = f64::from_bits(*bits);
            assert_eq!(to_string(&f).unwrap(), *text, "bits {bits:#018x}");
        }
    }

    /// RFC 8785 Appendix B: NaN and infinities have no JSON form.
    #[test]
    fn rfc8785_non_finite_numbers_are_refused() {
        for bits in [
            0x7fffffffffffffffu64,
            0x7ff0000000000000,
            0xfff0000000000000,
        ] {
            assert!(
                to_string(&f64::from_bits(bits)).is_err(),
                "bits {bits:#018x}"
            );
        }
    }

    #[test]
    fn canonical_form_is_recognized_and_variants_are_not() {
        assert!(is_canonical(br#"{"a":1,"b":[true,null]}"#));
        assert!(!is_canonical(br#"{"b":1,"a":2}"#));
        assert!(!is_canonical(br#"{"a": 1}"#));
        assert!(!is_canonical(br#"{"a":1,"a":1}"#));
        assert!(!is_canonical(br#"{"a":1.0}"#));
        assert!(!is_canonical(b"not json"));
        assert!(is_canonical(
            &to_vec(&json!({"名前":"山田","n":1e21})).unwrap()
        ));
    }
}
