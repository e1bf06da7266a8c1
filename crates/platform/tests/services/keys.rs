//! Key rotation (ADR 0019): what a rotation changes for the platform's signatures, its tree
//! heads and its sealed rows, and what stays valid.

use crate::city::{City, now};
use tsunagu_crypto::aead::Keyring;
use tsunagu_crypto::jws;
use tsunagu_ledger::{leaf_hash, verify_inclusion};
use tsunagu_platform::rotation::{KeyAdmin, KeyState, longest_signed_lifetime};

fn kid_of(token: &str) -> String {
    jws::parse(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn a_new_signing_key_is_published_before_it_signs_and_the_old_one_stays_until_what_it_signed_expires()
 {
    let city = City::new().await;
    let keys = &city.platform.keys;
    let before = city.resident(None).await;
    let old_kid = kid_of(&before.enrolled.credential);
    let admin = KeyAdmin::of(&city.platform);

    // Published ahead: in the JWKS, not yet signing.
    let t = now();
    let pending = admin.rotate_signing(t).await.unwrap();
    assert_eq!(pending.previous, vec![old_kid.clone()]);
    assert!(keys.jwks().find(&pending.key).is_some());
    assert_eq!(keys.signing().kid(), old_kid);
    let err = admin.rotate_signing(t).await.unwrap_err().to_string();
    assert!(err.contains("under way"), "{err}");
    let retire_at = pending.retire_previous_at.unwrap();
    assert_eq!(
        retire_at,
        pending.activate_at + longest_signed_lifetime(&city.platform.config)
    );
    assert!(city.ledger_texts().await.iter().any(
        |l| l.contains(r#""type":"keys.rotation_started""#)
            && l.contains(&pending.key)
            && l.contains(r#""what":"signing""#)
    ));

    // From activate_at the new key signs; the old credential still logs in.
    assert_eq!(
        keys.signing_at(pending.activate_at).kid(),
        pending.key,
        "the new key signs from its activation"
    );
    assert_eq!(keys.signing_at(pending.activate_at - 1).kid(), old_kid);
    city.login(&before.device, &before.enrolled.credential)
        .await;

    // At retire_at the old key leaves the JWKS (one leaf), and what it signed stops verifying.
    assert_eq!(admin.retire_due(retire_at - 1).await.unwrap(), 0);
    assert_eq!(admin.retire_due(retire_at).await.unwrap(), 1);
    assert_eq!(
        admin.retire_due(retire_at).await.unwrap(),
        0,
        "retired once"
    );
    assert!(keys.jwks().find(&old_kid).is_none());
    assert!(keys.jwks().find(&pending.key).is_some());
    assert!(
        city.ledger_texts()
            .await
            .iter()
            .any(|l| l.contains(r#""type":"keys.retired""#) && l.contains(&old_kid))
    );
}

#[tokio::test]
async fn after_activation_credentials_and_tickets_carry_the_new_key_and_what_the_old_one_signed_still_verifies()
 {
    let city = City::with(|c| {
        c.keys.refresh_seconds = 1;
        c.keys.publish_ahead_seconds = 1;
    })
    .await;
    let before = city.resident(None).await;
    let hanako = city.resident(Some("前橋　花子")).await;
    city.consented(&hanako, &["allergy"]).await;
    let ticket_before = ticket(&city, &hanako).await;
    let old_kid = kid_of(&ticket_before);
    let admin = KeyAdmin::of(&city.platform);
    let rotated = admin.rotate_signing(now()).await.unwrap();
    while now() < rotated.activate_at {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(city.platform.keys.signing().kid(), rotated.key);
    let after = city.resident(None).await;
    assert_eq!(kid_of(&after.enrolled.credential), rotated.key);
    let ticket_after = ticket(&city, &hanako).await;
    assert_eq!(kid_of(&ticket_after), rotated.key);
    // What the old key signed still verifies against the published keys, as a provider's
    // connector checks a ticket; the old credential still logs in.
    let jwks = city.platform.keys.jwks();
    for (token, kid) in [(&ticket_before, &old_kid), (&ticket_after, &rotated.key)] {
        let parsed = jws::parse(token).unwrap();
        parsed.verify(jwks.find(kid).unwrap()).unwrap();
    }
    city.login(&before.device, &before.enrolled.credential)
        .await;
    city.login(&after.device, &after.enrolled.credential).await;
}

async fn ticket(city: &City, resident: &crate::city::Resident) -> String {
    city.platform
        .exchange
        .ticket(
            &city.consumer_auth().await,
            tsunagu_platform::exchange::TicketRequest {
                subject: city.subject(resident),
                purpose_id: tsunagu_core::PurposeId::from(crate::city::PURPOSE),
                items: vec!["allergy".into()],
                requester: None,
                reason: None,
            },
        )
        .await
        .unwrap()
        .ticket
}

#[tokio::test]
async fn a_new_tree_head_key_is_announced_in_a_head_signed_by_the_old_one() {
    let city = City::new().await;
    let ledger = &city.platform.ledger;
    let t = now();
    let old = ledger.sth(t).await.unwrap();
    let admin = KeyAdmin::of(&city.platform);
    let rotated = admin.rotate_ledger(t).await.unwrap();
    assert_eq!(rotated.previous, vec![old.key_id.clone()]);

    let rotations = city.platform.ledger_key_rotations().await.unwrap();
    assert_eq!(rotations.len(), 1);
    let r = &rotations[0];
    assert_eq!(r.leaf_index, rotated.leaf_index);
    assert_eq!(
        r.sth.key_id, old.key_id,
        "the handover head is signed by the old key"
    );
    let old_key = city.platform.keys.jwks().find(&old.key_id).unwrap().clone();
    r.sth.verify(&old_key).unwrap();
    let input = r.leaf_input.clone().unwrap();
    verify_inclusion(
        r.leaf_index,
        r.sth.tree_size,
        &leaf_hash(&input),
        &r.audit_path,
        &r.sth.root().unwrap(),
    )
    .unwrap();
    let text = String::from_utf8(input).unwrap();
    assert!(text.contains(r#""type":"ledger.key_rotated""#), "{text}");
    assert!(text.contains(&rotated.key) && text.contains(&old.key_id));

    // Before activation heads are signed by the old key, after it by the new one, even
    // without new leaves.
    assert_eq!(ledger.sth(t).await.unwrap().key_id, old.key_id);
    let later = ledger.sth(rotated.activate_at).await.unwrap();
    assert_eq!(later.key_id, rotated.key);
    later
        .verify(city.platform.keys.jwks().find(&rotated.key).unwrap())
        .unwrap();
    assert_eq!(later.tree_size, r.sth.tree_size);

    // Long after, retention blanks every leaf's content but the announcement's: auditors
    // follow the key change years later.
    let blanked = city
        .platform
        .history
        .apply_retention(t + 100 * 365 * 86_400)
        .await
        .unwrap();
    assert!(blanked > 0);
    let left = city.ledger_texts().await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].contains(r#""type":"ledger.key_rotated""#),
        "{left:?}"
    );
    let kept = city.platform.ledger_key_rotations().await.unwrap();
    assert_eq!(kept[0].leaf_input, r.leaf_input);
}

#[tokio::test]
async fn a_new_keyring_key_seals_every_row_again_and_the_old_key_is_removed() {
    let city = City::with(|c| {
        c.keys.refresh_seconds = 1;
        c.keys.sealing_grace_seconds = 1;
    })
    .await;
    let resident = city.resident(Some("山田 花子")).await;
    let me = city.platform.identity.me(&resident.session).await.unwrap();
    let attributes = me.attributes.clone().unwrap();
    let path = city.platform.config.keyring_path();
    let before = Keyring::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(before.key_ids(), vec![1]);

    let admin = KeyAdmin::of(&city.platform);
    // One sealing rotation at a time: while another holds the lease, a second is refused
    // and the keyring file is left alone.
    let lease = tsunagu_store::KeyRow {
        name: "sealing-rotation".into(),
        purpose: "lease".into(),
        kid: "started elsewhere".into(),
        alg: "none".into(),
        secret: Vec::new(),
        active: false,
        created_at: now(),
        activate_at: now(),
        retire_at: Some(now()),
        announcement: None,
    };
    let commit = |change: tsunagu_store::KeyChange| {
        city.platform
            .committer
            .commit(tsunagu_store::Commit::new().change(change))
    };
    commit(tsunagu_store::KeyChange::Insert(lease.clone()))
        .await
        .unwrap();
    let refused = admin
        .rotate(
            tsunagu_platform::rotation::KeyKind::Sealing,
            &|_line: String| {},
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("under way") && refused.contains("started elsewhere"),
        "{refused}"
    );
    assert_eq!(
        Keyring::from_json(&std::fs::read_to_string(&path).unwrap())
            .unwrap()
            .key_ids(),
        vec![1]
    );
    let release = || tsunagu_store::KeyChange::DeleteRetired {
        name: "sealing-rotation".into(),
        now: now(),
    };
    commit(release()).await.unwrap();
    let rotated = admin.rotate(
        tsunagu_platform::rotation::KeyKind::Sealing,
        &|_line: String| {},
    );
    let rotated = rotated.await.unwrap();
    assert_eq!(rotated.key, "2");
    assert_eq!(rotated.previous, vec!["1".to_owned()]);
    // The account's attributes and the three platform keys.
    assert_eq!(rotated.resealed, Some(4));

    let after = Keyring::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        after.key_ids(),
        vec![2],
        "the old key is gone from the file"
    );
    // The lease was released: it can be taken again.
    commit(tsunagu_store::KeyChange::Insert(lease.clone()))
        .await
        .expect("the lease is released");
    commit(release()).await.unwrap();
    let account = city
        .platform
        .identity
        .account(&resident.session)
        .await
        .unwrap();
    assert_eq!(
        Keyring::key_id_of(account.attributes.as_ref().unwrap()),
        Some(2)
    );
    let me = city.platform.identity.me(&resident.session).await.unwrap();
    assert_eq!(me.attributes.unwrap(), attributes);
    // The pairwise secret is sealed again, never replaced: pseudonyms stay.
    assert_eq!(
        me.ledger_subject,
        city.platform.keys.ledger_subject(&account.id)
    );
    // Another replica starting now opens every platform key with the new ring alone.
    let fresh = KeyAdmin::open((*city.platform.config).clone())
        .await
        .unwrap();
    let status = fresh.status(now()).await.unwrap();
    assert!(
        status
            .iter()
            .any(|k| k.what == "sealing" && k.kid == "2" && k.state == KeyState::Active)
    );
    assert!(!status.iter().any(|k| k.what == "sealing" && k.kid == "1"));
    let texts = city.ledger_texts().await;
    assert!(
        texts
            .iter()
            .any(|l| l.contains(r#""type":"keys.rotation_started""#)
                && l.contains(r#""what":"sealing""#))
    );
    assert!(
        texts
            .iter()
            .any(|l| l.contains(r#""type":"keys.retired""#) && l.contains(r#""resealed":4"#))
    );
}
