//! A device behind its screen lock (WebAuthn user verification, ADR 0021): every use of its
//! key — a login, a consent, a change of a consent — needs an assertion of its credential,
//! with the user verified, over exactly what is used (the login nonce, the JWS as sent).

use crate::city::{City, Resident, URL};
use tsunagu_core::Code;
use tsunagu_core::consent::ConsentStatus;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::webauthn::soft::SoftAuthenticator;
use tsunagu_crypto::webauthn::{FLAG_UP, RelyingParty, WireAssertion};
use tsunagu_crypto::{b64, proofing, sha256};
use tsunagu_platform::identity::{NoncePurpose, login_uv_challenge, parse_enrollment};

/// The screen lock's assertion over a signed statement in its canonical (low-S) form.
fn wire(auth: &mut SoftAuthenticator, jws: &str) -> WireAssertion {
    let canonical = tsunagu_crypto::jws::parse(jws).unwrap().canonical_compact();
    serde_json::from_value(auth.assert(&sha256(canonical.as_bytes())).to_wire()).unwrap()
}

/// A verified resident whose device enrolled with a platform credential, logged in with it.
async fn gated_resident(city: &City) -> (Resident, SoftAuthenticator) {
    let identity = &city.platform.identity;
    let mut auth = SoftAuthenticator::new(RelyingParty::for_public_url(URL).unwrap());
    let device = SigningKey::generate(Alg::Es256).unwrap();
    let nonce = identity
        .challenge(NoncePurpose::Enroll)
        .await
        .unwrap()
        .nonce;
    let mut card = city.card("前橋　花子");
    let mut body = city.enrollment_body(&device, &nonce, Some(&mut card));
    let challenge = proofing::user_verification_challenge(device.public_jwk(), &nonce);
    body["user_verification"] = auth.register(&challenge).to_wire();
    let enrolled = identity
        .enroll(parse_enrollment(&serde_json::to_vec(&body).unwrap()).unwrap())
        .await
        .unwrap();
    let nonce = identity.challenge(NoncePurpose::Login).await.unwrap().nonce;
    let signature = b64::url_encode(device.sign(nonce.as_bytes()).unwrap());
    let assertion: WireAssertion =
        serde_json::from_value(auth.assert(&login_uv_challenge(&nonce)).to_wire()).unwrap();
    let logged_in = identity
        .login_verified(&enrolled.credential, &nonce, &signature, Some(&assertion))
        .await
        .unwrap();
    let session = identity
        .authenticate(&logged_in.access_token)
        .await
        .unwrap();
    (
        Resident {
            device,
            enrolled,
            session,
            card: Some(card),
        },
        auth,
    )
}

#[tokio::test]
async fn a_gated_device_consents_and_changes_only_with_the_screen_lock_over_that_statement() {
    let city = City::new().await;
    let (hanako, mut auth) = gated_resident(&city).await;
    let consents = &city.platform.consents;
    let terms = city.terms(&hanako).await;

    // Without the screen lock: refused, nothing granted.
    let consent = hanako.consent(&city, &terms, &["allergy"]);
    let err = consents.grant(&hanako.session, &consent).await.unwrap_err();
    assert_eq!(err.code, Code::UserVerificationRequired, "{err:?}");
    // An assertion over another statement (a consent the resident did not sign here).
    let other = hanako.consent(&city, &terms, &["allergy", "class"]);
    let err = consents
        .grant_verified(&hanako.session, &consent, Some(&wire(&mut auth, &other)))
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::UserVerificationInvalid, "{err:?}");
    // The authenticator did not verify the user.
    auth.flags = FLAG_UP;
    let err = consents
        .grant_verified(&hanako.session, &consent, Some(&wire(&mut auth, &consent)))
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::UserVerificationRequired, "{err:?}");
    auth.flags |= tsunagu_crypto::webauthn::FLAG_UV;
    assert!(consents.list(&hanako.session).await.unwrap().is_empty());

    // With it, over this very JWS: granted.
    let granted = consents
        .grant_verified(&hanako.session, &consent, Some(&wire(&mut auth, &consent)))
        .await
        .unwrap();
    assert_eq!(granted.status, ConsentStatus::Active);

    // A change the same way: without → refused; with → revoked.
    let change = hanako.change(granted.consent_id.as_str(), "revoke", None);
    let err = city.revoke(&hanako, &granted.consent_id).await.unwrap_err();
    assert_eq!(err.code, Code::UserVerificationRequired, "{err:?}");
    let revoked = consents
        .change_verified(
            &hanako.session,
            &granted.consent_id,
            tsunagu_core::consent::ChangeAction::Revoke,
            &change,
            Some(&wire(&mut auth, &change)),
        )
        .await
        .unwrap();
    assert_eq!(revoked.status, ConsentStatus::Revoked);
    // The ledger says the screen lock confirmed both.
    let texts = city.ledger_texts().await;
    for kind in ["consent.granted", "consent.revoked"] {
        assert!(
            texts
                .iter()
                .any(|t| t.contains(kind) && t.contains(r#""confirmed_by":"webauthn""#)),
            "{kind}: {texts:?}"
        );
    }

    // A cloned authenticator (its counter went back) signs nothing.
    auth.counter = 0;
    let again = hanako.consent(&city, &terms, &["allergy"]);
    let err = consents
        .grant_verified(&hanako.session, &again, Some(&wire(&mut auth, &again)))
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::UserVerificationInvalid, "{err:?}");
    assert!(err.detail.contains("counter"), "{err:?}");

    // Each refusal is in the resident's history (consent refusals are ledger leaves).
    let texts = city.ledger_texts().await;
    assert!(
        texts
            .iter()
            .any(|t| t.contains("user_verification_required")),
        "{texts:?}"
    );
}

#[tokio::test]
async fn the_consent_page_of_a_login_with_tsunagu_needs_the_screen_lock_too() {
    use tsunagu_platform::oidc::AuthorizeOutcome;
    let city = City::new().await;
    let (client, _key) = crate::oidc::relying_party(&city).await;
    let (hanako, mut auth) = gated_resident(&city).await;
    let oidc = &city.platform.oidc;
    let verifier = tsunagu_crypto::random::token(32).unwrap();
    let outcome = oidc
        .authorize(
            crate::oidc::params(client.as_str(), &verifier),
            Some(&hanako.session),
        )
        .await
        .unwrap();
    let AuthorizeOutcome::Consent(view) = outcome else {
        panic!("expected the consent page: {outcome:?}");
    };
    let payload: serde_json::Value = serde_json::from_str(&view.payload).unwrap();
    let consent = hanako.sign(&payload);
    // Without the assertion: refused, no code.
    let err = oidc
        .consent_decision_verified(
            &hanako.session,
            &view.request_id,
            "approve",
            Some(&consent),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::UserVerificationRequired, "{err:?}");
    // With it, over the consent: the code.
    let outcome = oidc
        .consent_decision_verified(
            &hanako.session,
            &view.request_id,
            "approve",
            Some(&consent),
            Some(&wire(&mut auth, &consent)),
        )
        .await
        .unwrap();
    let AuthorizeOutcome::Redirect(to) = outcome else {
        panic!("expected a redirect with a code: {outcome:?}");
    };
    assert!(crate::oidc::query(&to, "code").is_some(), "{to}");
}
