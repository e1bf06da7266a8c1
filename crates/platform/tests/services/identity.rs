//! Identity: enrollment with and without the card, login, devices.

use crate::city::City;
use tsunagu_core::Code;
use tsunagu_core::identity::DeviceStatus;
use tsunagu_core::identity::Level;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_platform::identity::NoncePurpose;

#[tokio::test]
async fn a_device_enrolled_without_the_card_is_a_provisional_id_that_may_not_link_data() {
    let city = City::new().await;
    let resident = city.resident(None).await;
    let me = city.platform.identity.me(&resident.session).await.unwrap();
    assert_eq!(me.level, Level::Provisional);
    assert!(!me.may_link_data());
}

#[tokio::test]
async fn the_card_proofs_the_same_device_up_to_verified() {
    let city = City::new().await;
    let resident = city.resident(None).await;
    let identity = &city.platform.identity;
    let nonce = identity
        .challenge(NoncePurpose::Enroll)
        .await
        .unwrap()
        .nonce;
    let upgraded = identity
        .enroll(city.enrollment(&resident.device, &nonce, Some("前橋　花子")))
        .await
        .unwrap();
    assert_eq!(upgraded.account_id, *resident.account());
    assert_eq!(upgraded.level, Level::Verified);
    let me = identity.me(&resident.session).await.unwrap();
    assert!(me.may_link_data());
}

#[tokio::test]
async fn an_enrollment_nonce_is_good_once() {
    let city = City::new().await;
    let identity = &city.platform.identity;
    let nonce = identity
        .challenge(NoncePurpose::Enroll)
        .await
        .unwrap()
        .nonce;
    let first = SigningKey::generate(Alg::Es256).unwrap();
    identity
        .enroll(city.enrollment(&first, &nonce, None))
        .await
        .unwrap();
    let second = SigningKey::generate(Alg::Es256).unwrap();
    let refusal = identity
        .enroll(city.enrollment(&second, &nonce, None))
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::NonceInvalid);
}

#[tokio::test]
async fn a_login_nonce_is_for_logins_only() {
    let city = City::new().await;
    let resident = city.resident(None).await;
    let identity = &city.platform.identity;
    let enroll_nonce = identity
        .challenge(NoncePurpose::Enroll)
        .await
        .unwrap()
        .nonce;
    let signature =
        tsunagu_crypto::b64::url_encode(resident.device.sign(enroll_nonce.as_bytes()).unwrap());
    let refusal = identity
        .login(&resident.enrolled.credential, &enroll_nonce, &signature)
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::NonceInvalid);
}

#[tokio::test]
async fn a_signature_by_another_key_does_not_log_in() {
    let city = City::new().await;
    let resident = city.resident(None).await;
    let identity = &city.platform.identity;
    let nonce = identity.challenge(NoncePurpose::Login).await.unwrap().nonce;
    let thief = SigningKey::generate(Alg::Es256).unwrap();
    let signature = tsunagu_crypto::b64::url_encode(thief.sign(nonce.as_bytes()).unwrap());
    let refusal = identity
        .login(&resident.enrolled.credential, &nonce, &signature)
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::SignatureInvalid);
}

#[tokio::test]
async fn a_revoked_device_can_no_longer_log_in() {
    let city = City::new().await;
    let resident = city.resident(Some("前橋　花子")).await;
    let identity = &city.platform.identity;
    let revoked = identity
        .revoke_device(&resident.session, &resident.enrolled.device_id)
        .await
        .unwrap();
    assert_eq!(revoked.device_id, resident.enrolled.device_id);
    assert_eq!(revoked.status, DeviceStatus::Revoked);
    let nonce = identity.challenge(NoncePurpose::Login).await.unwrap().nonce;
    let signature =
        tsunagu_crypto::b64::url_encode(resident.device.sign(nonce.as_bytes()).unwrap());
    let refusal = identity
        .login(&resident.enrolled.credential, &nonce, &signature)
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::CredentialRevoked);
}
