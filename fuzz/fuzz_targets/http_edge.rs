//! What the HTTP edge reads from outside before any service runs: form-encoded components,
//! `Authorization: Basic` credentials, and an application as `POST /v1/services` takes it
//! (parsed with its keys, checked, linted). Never a panic; decoded credentials never hold
//! what a client's encoding of them would not give back.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tsunagu_core::lint::{LintPolicy, lint};
use tsunagu_core::oidc::{ClientAuthHeader, form_decode};
use tsunagu_core::service::Application;
use tsunagu_crypto::jwk::JwkSet;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = form_decode(text);
        let _ = ClientAuthHeader::parse(text);
        if let ClientAuthHeader::Basic { id, secret } =
            ClientAuthHeader::parse(&format!("Basic {text}"))
        {
            // Credentials that decode come back whole when a client encodes them again.
            let encode = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
            let again = STANDARD.encode(format!("{}:{}", encode(&id), encode(&secret)));
            assert_eq!(
                ClientAuthHeader::parse(&format!("Basic {again}")),
                ClientAuthHeader::Basic { id, secret }
            );
        }
    }
    if let Ok(application) = serde_json::from_slice::<Application<JwkSet>>(data) {
        let _ = application.validate();
        let _ = lint(&application, &LintPolicy::default(), &|_| None);
    }
});
