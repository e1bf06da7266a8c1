//! Base64 in the two forms tsunagu's interfaces use: base64url without padding (JOSE) and
//! standard base64 (API fields such as hashes and DER certificates).

use crate::CryptoError;
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// base64url, no padding on output, padding refused on input (RFC 7515 §2).
const URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Standard base64 with padding on output; padding optional on input.
const STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub fn url_encode(data: impl AsRef<[u8]>) -> String {
    URL.encode(data)
}

pub fn url_decode(s: &str) -> Result<Vec<u8>, CryptoError> {
    URL.decode(s)
        .map_err(|e| CryptoError::Malformed(format!("base64url: {e}")))
}

pub fn std_encode(data: impl AsRef<[u8]>) -> String {
    STD.encode(data)
}

pub fn std_decode(s: &str) -> Result<Vec<u8>, CryptoError> {
    STD.decode(s.trim())
        .map_err(|e| CryptoError::Malformed(format!("base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn url_form_refuses_padding_and_the_standard_alphabet() {
        assert!(url_decode("YQ==").is_err());
        assert!(url_decode("+/8").is_err());
        assert_eq!(url_decode("YQ").unwrap(), b"a");
    }

    #[test]
    fn standard_form_accepts_missing_padding() {
        assert_eq!(std_decode("YQ==").unwrap(), b"a");
        assert_eq!(std_decode("YQ").unwrap(), b"a");
    }

    proptest! {
        #[test]
        fn both_forms_round_trip(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(url_decode(&url_encode(&data)).unwrap(), data.clone());
            prop_assert_eq!(std_decode(&std_encode(&data)).unwrap(), data);
        }
    }
}
