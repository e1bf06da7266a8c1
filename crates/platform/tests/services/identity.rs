//! Identity: enrollment with and without the card, login, devices.

use crate::city::{City, now};
use tsunagu_core::Code;
use tsunagu_core::identity::Level;
use tsunagu_core::identity::{AccountStatus, DeviceStatus};
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

#[tokio::test]
async fn reproofing_needs_the_name_as_well_as_the_birth_date() {
    // A twin or a sibling with the same birth date, holding the resident's device, cannot
    // take the identity over with their own card.
    let city = City::new().await;
    let resident = city.resident(Some("前橋　花子")).await;
    let mut twin = city.card("前橋　太郎");
    let refusal = city
        .enroll_with(&resident.device, &mut twin)
        .await
        .unwrap_err();
    assert_eq!(refusal.code, Code::IdentityMismatch);
    // The same person with a new card (the name written with another space) re-proofs.
    let mut renewed = city.card("前橋 花子");
    let reproofed = city
        .enroll_with(&resident.device, &mut renewed)
        .await
        .unwrap();
    assert_eq!(reproofed.account_id, *resident.account());
}

#[tokio::test]
async fn a_change_of_name_is_followed_through_the_serial_linkage_only() {
    let city = City::new().await;
    let identity = &city.platform.identity;
    let device = SigningKey::generate(Alg::Es256).unwrap();
    let mut maiden = city.card("前橋　花子");
    let enrolled = city.enroll_with(&device, &mut maiden).await.unwrap();
    let session = city.login(&device, &enrolled.credential).await;

    // Married: a certificate with the new name, not linked, is another person.
    let mut unlinked = city.card("高崎　花子");
    let refusal = city.enroll_with(&device, &mut unlinked).await.unwrap_err();
    assert_eq!(refusal.code, Code::IdentityMismatch);

    // J-LIS reissues the certificate and links the serials: the old one is revoked, the
    // account must re-proof, and the linked certificate re-proofs it.
    let mut married = city.reissue(&maiden, "高崎　花子").await;
    let me = identity.me(&session).await.unwrap();
    assert_eq!(me.status, AccountStatus::ReproofRequired);
    let reproofed = city.enroll_with(&device, &mut married).await.unwrap();
    assert_eq!(reproofed.account_id, enrolled.account_id);
    assert_eq!(reproofed.status, AccountStatus::Active);
    assert_eq!(
        identity.me(&session).await.unwrap().status,
        AccountStatus::Active
    );
}

#[tokio::test]
async fn a_new_device_with_a_linked_certificate_reaches_the_same_account() {
    // A resident who lost the phone and got a new card after a move enrolls a new browser:
    // the same person reaches the same account, not a new one.
    let city = City::new().await;
    let old_device = SigningKey::generate(Alg::Es256).unwrap();
    let mut first = city.card("前橋　花子");
    let enrolled = city.enroll_with(&old_device, &mut first).await.unwrap();
    let mut second = city.reissue(&first, "前橋　花子").await;
    let new_device = SigningKey::generate(Alg::Es256).unwrap();
    let again = city.enroll_with(&new_device, &mut second).await.unwrap();
    assert_eq!(again.account_id, enrolled.account_id);
    assert_eq!(again.level, Level::Verified);
    assert_eq!(again.status, AccountStatus::Active);
    // Without the linkage a new card is a new account (nothing says it is the same person).
    let mut stranger = city.card("前橋　花子");
    let other = city
        .enroll_with(&SigningKey::generate(Alg::Es256).unwrap(), &mut stranger)
        .await
        .unwrap();
    assert_ne!(other.account_id, enrolled.account_id);
}

#[tokio::test]
async fn concurrent_login_failures_all_count() {
    // A burst of bad signatures must not slip past the lock-out by racing the counter.
    let city = City::new().await;
    let resident = city.resident(Some("前橋　花子")).await;
    let identity = city.platform.identity.clone();
    let stranger = SigningKey::generate(Alg::Es256).unwrap();
    let mut attempts = Vec::new();
    for _ in 0..20 {
        let nonce = identity.challenge(NoncePurpose::Login).await.unwrap().nonce;
        let signature = tsunagu_crypto::b64::url_encode(stranger.sign(nonce.as_bytes()).unwrap());
        let identity = identity.clone();
        let credential = resident.enrolled.credential.clone();
        attempts.push(tokio::spawn(async move {
            identity.login(&credential, &nonce, &signature).await
        }));
    }
    let mut bad_signatures = 0;
    for a in attempts {
        let refusal = a.await.unwrap().unwrap_err();
        match refusal.code {
            Code::SignatureInvalid => bad_signatures += 1,
            Code::Locked => {}
            _ => panic!("{refusal:?}"),
        }
    }
    let device = resident.enrolled.device_id.clone();
    let failures = city
        .platform
        .database()
        .read(move |c| {
            c.query_int(
                "SELECT failed_logins FROM devices WHERE id = $1",
                &tsunagu_store::params![&device],
            )
        })
        .await
        .unwrap();
    // Every attempt that reached the signature check counted (those refused as locked
    // before it did not need to), and the device is locked.
    assert_eq!(failures, bad_signatures);
    assert!(failures >= 3, "only {failures} failures counted");
    let me = identity.me(&resident.session).await.unwrap();
    let shown = me
        .devices
        .iter()
        .find(|d| d.id == resident.enrolled.device_id)
        .unwrap();
    assert_eq!(
        shown.state_at(now()),
        tsunagu_core::identity::DeviceState::Locked
    );
}
