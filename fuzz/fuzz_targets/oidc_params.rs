//! An OpenID Connect authorization request as the platform receives it: arbitrary bytes as
//! an `application/x-www-form-urlencoded` query or form, each component form-decoded, the
//! pairs read into `AuthorizeParams` (unknown parameters ignored), then the authorization
//! decision `oidc::validate` for a registered client. Never a panic; form-decoding a
//! component a client encoded gives it back; an accepted request is one the client may make.
#![no_main]

use libfuzzer_sys::fuzz_target;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tsunagu_core::oidc::{self, AuthorizeError, AuthorizeParams, ClientFacts, form_decode};
use tsunagu_core::service::ServiceStatus;

fn form_encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut map = serde_json::Map::new();
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (form_decode(k), form_decode(v)) else {
            continue;
        };
        // What a client's encoding of the decoded text gives back is the decoded text.
        assert_eq!(form_decode(&form_encode(&k)).as_deref(), Some(k.as_str()));
        assert_eq!(form_decode(&form_encode(&v)).as_deref(), Some(v.as_str()));
        // Decoding never grows the text.
        assert!(v.len() <= pair.len());
        map.entry(k).or_insert(serde_json::Value::String(v));
    }
    let Ok(params) = serde_json::from_value::<AuthorizeParams>(serde_json::Value::Object(map))
    else {
        return;
    };
    let again = serde_json::to_value(&params).expect("serializes");
    assert_eq!(
        serde_json::from_value::<AuthorizeParams>(again).expect("reparses"),
        params
    );

    let client_id = params.client_id.clone().unwrap_or_default();
    let registered = vec!["https://daycare.example/cb".to_owned()];
    for status in [ServiceStatus::Approved, ServiceStatus::Suspended] {
        let client = ClientFacts {
            id: &client_id,
            status,
            redirect_uris: &registered,
        };
        match oidc::validate(&params, Some(&client)) {
            Ok(auth) => {
                assert_eq!(status, ServiceStatus::Approved);
                assert!(!auth.client_id.is_empty());
                assert!(registered.contains(&auth.redirect_uri));
                assert!(auth.scope.split_ascii_whitespace().any(|s| s == "openid"));
                assert_eq!(auth.code_challenge.len(), 43);
                assert!(!(auth.prompt.none && (auth.prompt.login || auth.prompt.consent)));
                assert!(auth.max_age.is_none_or(|m| m >= 0));
                assert!(params.request.is_none() && params.claims.is_none());
                let _ = oidc::login_needed(&auth, Some(0), 1_790_000_000);
            }
            // Never redirect to a URI the client did not register (an open redirector).
            Err(AuthorizeError::Redirect { redirect_uri, .. }) => {
                assert!(registered.contains(&redirect_uri));
            }
            Err(AuthorizeError::Show { .. }) => {}
        }
    }
    // Without a known client, nothing is accepted and nothing is redirected.
    assert!(matches!(
        oidc::validate(&params, None),
        Err(AuthorizeError::Show { .. })
    ));
    if let Some(scope) = &params.scope {
        let _ = oidc::items_for_scope(&oidc::normalize_scope(scope));
    }
});
