//! One suite, two backends: every test runs on SQLite (a fresh file) and, when
//! `TSUNAGU_TEST_DATABASE_URL` is set, on PostgreSQL (a fresh schema per test).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tsunagu_core::alert::AlertKind;
use tsunagu_core::consent::{ConsentEventKind, ConsentStatus};
use tsunagu_core::governance::Decision;
use tsunagu_core::identity::{AccountStatus, DeviceStatus, Level};
use tsunagu_core::service::{LegalBasis, ServiceKind, ServiceStatus};
use tsunagu_core::ticket::{Basis, TicketState};
use tsunagu_store::*;

static COUNTER: AtomicU64 = AtomicU64::new(0);

async fn with_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = open_sqlite(&dir.path().join("t.db")).await.unwrap();
    test(Arc::new(store)).await;
}

async fn with_postgres<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Ok(url) = std::env::var("TSUNAGU_TEST_DATABASE_URL") else {
        println!("NOTICE: TSUNAGU_TEST_DATABASE_URL not set: PostgreSQL case of {name} skipped");
        return;
    };
    let schema = format!(
        "t_{}_{}_{}",
        name,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let store = open_postgres(&url, Some(&schema)).await.unwrap();
    test(Arc::new(store)).await;
    SqlStore::drop_schema(&url, &schema).await.unwrap();
}

macro_rules! store_tests {
    ($($name:ident => $body:expr;)*) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { with_sqlite($body).await }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { with_postgres(stringify!($name), $body).await }
            )*
        }
    };
}

fn account(id: &str, card: Option<&str>) -> AccountRow {
    AccountRow {
        id: id.into(),
        level: if card.is_some() {
            Level::Verified
        } else {
            Level::Provisional
        },
        status: AccountStatus::Active,
        attributes: card.map(|_| vec![1, 2, 3]),
        card: card.map(|c| CardRef {
            binding: c.into(),
            issuer: b"issuer".to_vec(),
            serial: c.as_bytes().to_vec(),
            not_after: 2_000_000_000,
        }),
        version: 0,
        created_at: 100,
        updated_at: 100,
        restriction: Default::default(),
        erased_at: None,
    }
}

fn device(id: &str, account_id: &str) -> DeviceRow {
    DeviceRow {
        id: id.into(),
        account_id: account_id.into(),
        jkt: format!("jkt-{id}"),
        jwk: "{}".into(),
        status: DeviceStatus::Active,
        failed_logins: 0,
        locked_until: None,
        expires_at: 5_000,
        created_at: 100,
        revoked_at: None,
        uv: None,
    }
}

fn leaf(n: u8, subjects: &[&str]) -> NewLeaf {
    NewLeaf {
        input: vec![n; 3],
        hash: [n; 32],
        subjects: subjects.iter().map(|s| (*s).into()).collect(),
        created_at: 100 + i64::from(n),
    }
}

async fn commit(
    store: &Arc<dyn Store>,
    changes: Vec<AnyChange>,
    leaves: Vec<NewLeaf>,
) -> std::result::Result<Committed, StoreError> {
    let outcome = store
        .commit_batch(vec![Commit { changes, leaves }])
        .await
        .unwrap();
    outcome.results.into_iter().next().unwrap()
}

async fn enroll(store: &Arc<dyn Store>, acct: &str, dev: &str, card: Option<&str>) {
    commit(
        store,
        changes![
            IdentityChange::InsertAccount(account(acct, card)),
            IdentityChange::InsertDevice(device(dev, acct)),
        ],
        vec![leaf(1, &[acct])],
    )
    .await
    .unwrap();
}

fn service(id: &str, kind: ServiceKind) -> ServiceRow {
    ServiceRow {
        id: id.into(),
        name: format!("{id} name"),
        organization: "org".into(),
        contact: "c@example.jp".into(),
        kind,
        status: ServiceStatus::PendingReview,
        application: "{}".into(),
        jwks: r#"{"keys":[]}"#.into(),
        endpoint: None,
        lint: "[]".into(),
        round: 0,
        created_at: 100,
        updated_at: 100,
        client_secret_hash: None,
        client_cert_sha256: None,
    }
}

fn consent(id: &str, account: &str, status: ConsentStatus, created_at: i64) -> ConsentRow {
    ConsentRow {
        id: id.into(),
        account_id: account.into(),
        consumer_id: "daycare".into(),
        provider_id: "school".into(),
        purpose_id: "allergy".into(),
        generation: created_at - 99,
        items: vec!["allergy".into()],
        expires_at: 1_000,
        terms_sha256: "t".into(),
        status,
        jws: "jws".into(),
        device_id: "d1".into(),
        version: 0,
        created_at,
        updated_at: created_at,
    }
}

fn event(consent_id: &str, status: &str, consumer: &str) -> ConsentEventRow {
    ConsentEventRow {
        seq: 0,
        consent_id: consent_id.into(),
        account_id: "a1".into(),
        consumer_id: consumer.into(),
        provider_id: "school".into(),
        purpose_id: "allergy".into(),
        status: ConsentEventKind::parse(status).unwrap(),
        items: vec!["allergy".into()],
        expires_at: 1_000,
        created_at: 100,
        reason: None,
    }
}

fn ticket(id: &str) -> TicketRow {
    TicketRow {
        id: id.into(),
        consumer_id: "daycare".into(),
        provider_id: "school".into(),
        account_id: "a1".into(),
        purpose_id: "allergy".into(),
        items: vec!["allergy".into()],
        basis: Basis::Consent("c1".into()),
        requester: None,
        reason: None,
        issued_at: 100,
        expires_at: 220,
        consumer_receipt: None,
        provider_receipt: None,
        state: TicketState::Open,
        updated_at: 100,
    }
}

fn authz_request(id: &str, expires_at: i64) -> AuthzRequestRow {
    AuthzRequestRow {
        id: id.into(),
        client_id: "rp".into(),
        params: r#"{"scope":"openid"}"#.into(),
        pushed: true,
        login_nonce: None,
        expires_at,
        created_at: 100,
    }
}

fn grant(id: &str, account: &str, client: &str, created_at: i64) -> GrantRow {
    GrantRow {
        id: id.into(),
        client_id: client.into(),
        account_id: account.into(),
        device_id: "d1".into(),
        scope: "openid profile".into(),
        items: vec!["name".into(), "address".into()],
        consent_id: Some("c1".into()),
        auth_time: created_at - 5,
        created_at,
        revoked_at: None,
        revoked_reason: None,
    }
}

fn code(hash: &str, grant_id: &str, expires_at: i64) -> CodeRow {
    CodeRow {
        code_hash: hash.into(),
        grant_id: grant_id.into(),
        redirect_uri: "https://rp.example.jp/cb".into(),
        code_challenge: "challenge".into(),
        nonce: Some("n-0S6".into()),
        dpop_jkt: None,
        expires_at,
        used_at: None,
        created_at: 100,
    }
}

fn oauth_token(hash: &str, grant_id: &str, kind: TokenKind, expires_at: i64) -> OauthTokenRow {
    OauthTokenRow {
        token_hash: hash.into(),
        grant_id: grant_id.into(),
        kind,
        scope: "openid profile".into(),
        dpop_jkt: Some("jkt".into()),
        expires_at,
        used_at: None,
        created_at: 100,
    }
}

/// Two residents (a1 with device d1, a2 with d2) and two OpenID Connect clients (rp, rp2).
async fn oidc_city(store: &Arc<dyn Store>) {
    enroll(store, "a1", "d1", Some("card-1")).await;
    enroll(store, "a2", "d2", Some("card-2")).await;
    commit(
        store,
        changes![
            ServiceChange::InsertService(service("rp", ServiceKind::Consumer)),
            ServiceChange::InsertService(service("rp2", ServiceKind::Consumer)),
        ],
        vec![],
    )
    .await
    .unwrap();
}

fn key_row(name: &str, purpose: &str, created_at: i64) -> KeyRow {
    KeyRow {
        name: name.into(),
        purpose: purpose.into(),
        kid: format!("kid-{name}"),
        alg: "EdDSA".into(),
        secret: vec![1],
        active: true,
        created_at,
        activate_at: created_at,
        retire_at: None,
        announcement: None,
    }
}

fn account_version_before() -> i64 {
    account("x", None).version
}

fn is_conflict<T: std::fmt::Debug>(result: &std::result::Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

store_tests! {
    a_restriction_is_compared_and_set_and_an_erasure_leaves_no_attributes => |store: Arc<dyn Store>| async move {
        use tsunagu_core::identity::Restriction;
        enroll(&store, "a1", "d1", Some("card-1")).await;
        let set = |from, to| IdentityChange::SetRestriction { id: "a1".into(), from, to, updated_at: 200 };
        commit(&store, changes![set(Restriction::None, Restriction::Suspension)], vec![]).await.unwrap();
        assert_eq!(store.account(&"a1".into()).await.unwrap().unwrap().restriction, Restriction::Suspension);
        // A stale read loses.
        assert!(matches!(
            commit(&store, changes![set(Restriction::None, Restriction::StopProvision)], vec![]).await,
            Err(StoreError::Conflict(_))
        ));
        let session = SessionRow {
            token_hash: "h".into(), account_id: "a1".into(), device_id: "d1".into(), expires_at: 500, created_at: 100,
        };
        commit(&store, changes![IdentityChange::InsertSession(session)], vec![]).await.unwrap();
        commit(&store, changes![IdentityChange::EraseAccount { id: "a1".into(), at: 300 }], vec![leaf(2, &["a1"])]).await.unwrap();
        let a = store.account(&"a1".into()).await.unwrap().unwrap();
        assert_eq!((a.attributes, a.card, a.erased_at, a.restriction), (None, None, Some(300), Restriction::None));
        assert_eq!(store.account_by_card("card-1").await.unwrap(), None, "the same card enrolls anew");
        assert_eq!(store.session("h").await.unwrap(), None);
        let d = store.device(&"d1".into()).await.unwrap().unwrap();
        assert_eq!((d.status, d.revoked_at, d.uv), (DeviceStatus::Revoked, Some(300), None));
        assert_eq!((d.jkt.as_str(), d.jwk.as_str()), ("erased:d1", "{}"), "the key's thumbprint goes too");
        assert_eq!(store.device_by_jkt("jkt-d1").await.unwrap(), None);
        // Erased once; a second erasure and any restriction are refused.
        assert!(matches!(
            commit(&store, changes![IdentityChange::EraseAccount { id: "a1".into(), at: 400 }], vec![]).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            commit(&store, changes![set(Restriction::None, Restriction::Suspension)], vec![]).await,
            Err(StoreError::Conflict(_))
        ));
        // The history keeps its owner.
        assert_eq!(store.subject_leaves(&"a1".into(), None, 10).await.unwrap().len(), 2);
    };
    accounts_and_devices_are_found_by_every_key => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", Some("card-1")).await;
        let a = store.account(&"a1".into()).await.unwrap().unwrap();
        assert_eq!(a, account("a1", Some("card-1")));
        assert_eq!(store.account_by_card("card-1").await.unwrap().unwrap().id, "a1");
        assert_eq!(store.accounts_with_card(b"issuer", b"card-1").await.unwrap().len(), 1);
        assert!(store.accounts_with_card(b"other", b"card-1").await.unwrap().is_empty());
        assert_eq!(store.device_by_jkt("jkt-d1").await.unwrap().unwrap(), device("d1", "a1"));
        assert_eq!(store.devices_of(&"a1".into()).await.unwrap().len(), 1);
        assert!(store.account(&"nope".into()).await.unwrap().is_none());
        assert_eq!(store.count_accounts().await.unwrap(), 1);
    };

    a_refused_commit_leaves_nothing_behind => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", None).await;
        // Same device key (jkt) again: the whole commit is refused, its leaf included.
        let mut dup = device("d2", "a2");
        dup.jkt = "jkt-d1".into();
        let result = commit(
            &store,
            changes![IdentityChange::InsertAccount(account("a2", None)), IdentityChange::InsertDevice(dup)],
            vec![leaf(2, &["a2"])],
        )
        .await;
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
        assert!(store.account(&"a2".into()).await.unwrap().is_none());
        assert_eq!(store.ledger_size().await.unwrap(), 1);
    };

    in_a_batch_only_the_refused_commit_is_undone => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", None).await;
        let mut dup = device("d3", "a3");
        dup.jkt = "jkt-d1".into();
        let outcome = store
            .commit_batch(vec![
                Commit {
                    changes: changes![IdentityChange::InsertAccount(account("a2", None)), IdentityChange::InsertDevice(device("d2", "a2"))],
                    leaves: vec![leaf(2, &["a2"]), leaf(3, &["a2"])],
                },
                Commit {
                    changes: changes![IdentityChange::InsertAccount(account("a3", None)), IdentityChange::InsertDevice(dup)],
                    leaves: vec![leaf(4, &["a3"])],
                },
                Commit { changes: changes![], leaves: vec![leaf(5, &[])] },
            ])
            .await
            .unwrap();
        assert_eq!(outcome.size_before, 1);
        assert_eq!(outcome.size_after, 4);
        assert_eq!(outcome.results[0], Ok(Committed { first_leaf: 1, leaf_count: 2 }));
        assert!(matches!(outcome.results[1], Err(StoreError::Conflict(_))));
        assert_eq!(outcome.results[2], Ok(Committed { first_leaf: 3, leaf_count: 1 }));
        assert!(store.account(&"a2".into()).await.unwrap().is_some());
        assert!(store.account(&"a3".into()).await.unwrap().is_none());
        let hashes = store.leaf_hashes(0, 4).await.unwrap();
        assert_eq!(hashes, vec![[1; 32], [2; 32], [3; 32], [5; 32]]);
    };

    a_device_keeps_its_webauthn_credential_and_counter => |store: Arc<dyn Store>| async move {
        commit(&store, changes![IdentityChange::InsertAccount(account("a1", None))], vec![]).await.unwrap();
        let mut d = device("d1", "a1");
        d.uv = Some(UvCredential { credential_id: "Y3JlZA".into(), public_key: "{\"kty\":\"EC\"}".into(), sign_count: 7 });
        commit(&store, changes![IdentityChange::InsertDevice(d.clone())], vec![]).await.unwrap();
        assert_eq!(store.device(&"d1".into()).await.unwrap().unwrap(), d);
        let count = |expected, count| IdentityChange::SetUvSignCount { device_id: "d1".into(), expected, count };
        commit(&store, changes![count(7, 9)], vec![]).await.unwrap();
        // The same assertion counted twice (two racing logins): the second is a conflict.
        assert!(matches!(commit(&store, changes![count(7, 9)], vec![]).await, Err(StoreError::Conflict(_))));
        assert_eq!(store.device(&"d1".into()).await.unwrap().unwrap().uv.unwrap().sign_count, 9);
        let plain = device("d2", "a1");
        commit(&store, changes![IdentityChange::InsertDevice(plain)], vec![]).await.unwrap();
        assert_eq!(store.device(&"d2".into()).await.unwrap().unwrap().uv, None);
    };

    compare_and_set_changes_apply_once => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", Some("card-1")).await;
        let revoke = || IdentityChange::RevokeDevice { id: "d1".into(), at: 200 };
        commit(&store, changes![revoke()], vec![]).await.unwrap();
        assert!(matches!(commit(&store, changes![revoke()], vec![]).await, Err(StoreError::Conflict(_))));
        let d = store.device(&"d1".into()).await.unwrap().unwrap();
        assert_eq!(d.status, DeviceStatus::Revoked);
        assert_eq!(d.revoked_at, Some(200));

        let set = |expected, failures| IdentityChange::SetLoginState {
            device_id: "d1".into(), expected_failures: expected, failures, locked_until: Some(300),
        };
        commit(&store, changes![set(0, 1)], vec![]).await.unwrap();
        assert!(matches!(commit(&store, changes![set(0, 1)], vec![]).await, Err(StoreError::Conflict(_))));
        assert_eq!(store.device(&"d1".into()).await.unwrap().unwrap().failed_logins, 1);

        // Failed logins count atomically, however many race.
        let racing: Vec<_> = (0..10)
            .map(|_| { let store = store.clone(); tokio::spawn(async move { store.count_login_failure(&"d1".into()).await.unwrap().unwrap() }) })
            .collect();
        let mut sorted = Vec::new();
        for r in racing { sorted.push(r.await.unwrap()); }
        sorted.sort();
        assert_eq!(sorted, (2..=11).collect::<Vec<i64>>());
        assert_eq!(store.count_login_failure(&"nobody".into()).await.unwrap(), None);
        let lock = |until| IdentityChange::ExtendLock { device_id: "d1".into(), locked_until: until };
        commit(&store, changes![lock(500)], vec![]).await.unwrap();
        commit(&store, changes![lock(400)], vec![]).await.unwrap();
        assert_eq!(store.device(&"d1".into()).await.unwrap().unwrap().locked_until, Some(500), "a lock is only extended");

        let status = |from, to| IdentityChange::SetAccountStatus { id: "a1".into(), from, to, updated_at: 300 };
        commit(&store, changes![status(AccountStatus::Active, AccountStatus::ReproofRequired)], vec![]).await.unwrap();
        assert!(matches!(
            commit(&store, changes![status(AccountStatus::Active, AccountStatus::ReproofRequired)], vec![]).await,
            Err(StoreError::Conflict(_))
        ));
        let a = store.account(&"a1".into()).await.unwrap().unwrap();
        assert_eq!(a.status, AccountStatus::ReproofRequired);
        assert_eq!(a.version, 1);

        let proof = |expected_version| IdentityChange::UpdateAccountProof {
            id: "a1".into(),
            expected_version,
            level: Level::Verified,
            status: AccountStatus::Active,
            attributes: vec![9],
            card: CardRef { binding: "card-2".into(), issuer: b"issuer".to_vec(), serial: b"s2".to_vec(), not_after: 9 },
            updated_at: 400,
        };
        assert!(matches!(commit(&store, changes![proof(0)], vec![]).await, Err(StoreError::Conflict(_))));
        commit(&store, changes![proof(1)], vec![]).await.unwrap();
        let a = store.account(&"a1".into()).await.unwrap().unwrap();
        assert_eq!(a.status, AccountStatus::Active);
        assert_eq!(a.card.unwrap().binding, "card-2");
        assert!(store.account_by_card("card-1").await.unwrap().is_none());
    };

    nonces_are_single_use_and_expire => |store: Arc<dyn Store>| async move {
        store.put_nonce("n1", "login", 1000).await.unwrap();
        store.put_nonce("n2", "login", 1000).await.unwrap();
        store.put_nonce("n3", "login", 500).await.unwrap();
        assert!(!store.take_nonce("n1", "enroll", 600).await.unwrap(), "wrong purpose");
        assert!(store.nonce_live("n1", "login", 600).await.unwrap(), "looking does not consume");
        assert!(store.nonce_live("n1", "login", 600).await.unwrap());
        assert!(!store.nonce_live("n1", "enroll", 600).await.unwrap(), "wrong purpose");
        assert!(!store.nonce_live("n3", "login", 600).await.unwrap(), "expired");
        assert!(!store.nonce_live("nx", "login", 600).await.unwrap(), "unknown");
        assert!(store.take_nonce("n2", "login", 600).await.unwrap());
        assert!(!store.take_nonce("n2", "login", 600).await.unwrap(), "second use");
        assert!(!store.take_nonce("n3", "login", 600).await.unwrap(), "expired");
        assert!(!store.take_nonce("zz", "login", 600).await.unwrap(), "unknown");
        assert!(store.put_nonce("n2", "login", 1000).await.is_ok());
        assert_eq!(store.purge_nonces(2000).await.unwrap(), 2, "n1 and the new n2");
    };

    a_nonce_is_taken_by_exactly_one_of_many_racers => |store: Arc<dyn Store>| async move {
        store.put_nonce("race", "login", 1000).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move { s.take_nonce("race", "login", 10).await.unwrap() }));
        }
        let mut wins = 0;
        for t in tasks {
            if t.await.unwrap() { wins += 1; }
        }
        assert_eq!(wins, 1);
    };

    sessions_live_with_their_device => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", None).await;
        let session = SessionRow {
            token_hash: "h".into(), account_id: "a1".into(), device_id: "d1".into(), expires_at: 500, created_at: 100,
        };
        commit(&store, changes![IdentityChange::InsertSession(session.clone())], vec![]).await.unwrap();
        assert_eq!(store.session("h").await.unwrap(), Some(session));
        commit(&store, changes![IdentityChange::DeleteDeviceSessions { device_id: "d1".into() }], vec![]).await.unwrap();
        assert_eq!(store.session("h").await.unwrap(), None);
        let s2 = SessionRow { token_hash: "h2".into(), account_id: "a1".into(), device_id: "d1".into(), expires_at: 500, created_at: 100 };
        commit(&store, changes![IdentityChange::InsertSession(s2)], vec![]).await.unwrap();
        assert_eq!(store.purge_sessions(600).await.unwrap(), 1);
    };

    history_lists_a_residents_leaves_newest_first => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", None).await;
        enroll(&store, "a2", "d2", None).await;
        for n in 2..6 {
            commit(&store, changes![], vec![leaf(n, if n % 2 == 0 { &["a1"] } else { &["a1", "a2"] })]).await.unwrap();
        }
        let all: Vec<u64> = store.subject_leaves(&"a1".into(), None, 100).await.unwrap().iter().map(|l| l.index).collect();
        assert_eq!(all, vec![5, 4, 3, 2, 0]);
        let page: Vec<u64> = store.subject_leaves(&"a1".into(), Some(4), 2).await.unwrap().iter().map(|l| l.index).collect();
        assert_eq!(page, vec![3, 2]);
        let other: Vec<u64> = store.subject_leaves(&"a2".into(), None, 100).await.unwrap().iter().map(|l| l.index).collect();
        assert_eq!(other, vec![5, 3, 1]);
    };

    retention_removes_content_but_keeps_hashes => |store: Arc<dyn Store>| async move {
        for n in 0..4 {
            commit(&store, changes![], vec![leaf(n, &[])]).await.unwrap();
        }
        assert_eq!(store.expire_leaf_inputs(102, &[1]).await.unwrap(), 1);
        let leaves = store.leaves(0, 4).await.unwrap();
        assert_eq!(leaves.iter().map(|l| l.input.is_some()).collect::<Vec<_>>(), vec![false, true, true, true], "leaf 1 is kept");
        assert_eq!(store.expire_leaf_inputs(102, &[]).await.unwrap(), 1);
        let leaves = store.leaves(0, 4).await.unwrap();
        assert_eq!(leaves.iter().map(|l| l.input.is_some()).collect::<Vec<_>>(), vec![false, false, true, true]);
        assert_eq!(leaves[0].hash, [0; 32]);
        assert_eq!(store.leaf_hashes(0, 4).await.unwrap().len(), 4);
    };

    tree_heads_are_kept_and_the_latest_served => |store: Arc<dyn Store>| async move {
        assert_eq!(store.latest_sth().await.unwrap(), None);
        for size in [1u64, 5, 3] {
            store.put_sth(&SthRow { tree_size: size, root_hash: vec![size as u8; 32], timestamp: 10, key_id: "k".into(), signature: vec![1] }).await.unwrap();
        }
        store.put_sth(&SthRow { tree_size: 5, root_hash: vec![0; 32], timestamp: 11, key_id: "k".into(), signature: vec![2] }).await.unwrap();
        let latest = store.latest_sth().await.unwrap().unwrap();
        assert_eq!(latest.tree_size, 5);
        assert_eq!(latest.root_hash, vec![5; 32], "a stored head is never replaced");
    };

    keys_are_inserted_once => |store: Arc<dyn Store>| async move {
        let key = key_row("ledger-1", "ledger", 1);
        assert!(store.insert_key_if_absent(&key).await.unwrap());
        let mut other = key.clone();
        other.secret = vec![2];
        assert!(!store.insert_key_if_absent(&other).await.unwrap());
        assert_eq!(store.keys("ledger").await.unwrap(), vec![key]);
        assert!(store.keys("other").await.unwrap().is_empty());
    };

    key_rotation_changes_are_compare_and_set => |store: Arc<dyn Store>| async move {
        let old = key_row("platform-1", "platform", 1);
        assert!(store.insert_key_if_absent(&old).await.unwrap());
        let mut new = key_row("platform-2", "platform", 5);
        new.activate_at = 10;
        commit(&store, changes![
            KeyChange::Insert(new.clone()),
            KeyChange::SetRetireAt { name: "platform-1".into(), retire_at: 100 },
        ], vec![leaf(1, &[])]).await.unwrap();
        let keys = store.all_keys().await.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].retire_at, Some(100));
        assert_eq!(keys[1], new);
        // A second insert under the name, or a second retirement, is refused with its leaf.
        assert!(is_conflict(&commit(&store, changes![KeyChange::Insert(new.clone())], vec![leaf(2, &[])]).await));
        assert!(is_conflict(&commit(&store, changes![KeyChange::SetRetireAt { name: "platform-1".into(), retire_at: 7 }], vec![leaf(2, &[])]).await));
        // Deleted only once its time has passed, and only once.
        assert!(is_conflict(&commit(&store, changes![KeyChange::DeleteRetired { name: "platform-1".into(), now: 99 }], vec![]).await));
        commit(&store, changes![KeyChange::DeleteRetired { name: "platform-1".into(), now: 100 }], vec![leaf(2, &[])]).await.unwrap();
        assert!(is_conflict(&commit(&store, changes![KeyChange::DeleteRetired { name: "platform-1".into(), now: 100 }], vec![]).await));
        assert_eq!(store.all_keys().await.unwrap(), vec![new]);
        assert_eq!(store.ledger_size().await.unwrap(), 2);
        // The announcement is written once.
        assert!(store.set_key_announcement("platform-2", "{}").await.unwrap());
        assert!(!store.set_key_announcement("platform-2", "{\"x\":1}").await.unwrap());
        assert_eq!(store.keys("platform").await.unwrap()[0].announcement.as_deref(), Some("{}"));
    };

    reseal_passes_compare_and_set => |store: Arc<dyn Store>| async move {
        for id in ["a1", "a2", "a3"] {
            enroll(&store, id, &format!("d-{id}"), Some(&format!("card-{id}"))).await;
        }
        let page = store.sealed_attributes(None, 2).await.unwrap();
        assert_eq!(page.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["a1", "a2"]);
        let rest = store.sealed_attributes(Some(&page[1].0), 2).await.unwrap();
        assert_eq!(rest.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["a3"]);
        let (id, sealed) = &page[0];
        assert!(store.reseal_attributes(id, sealed, b"new").await.unwrap());
        assert!(!store.reseal_attributes(id, sealed, b"newer").await.unwrap(), "a value changed since it was read is kept");
        let account = store.account(id).await.unwrap().unwrap();
        assert_eq!(account.attributes.as_deref(), Some(&b"new"[..]));
        assert_eq!(account.version, account_version_before(), "re-sealing is not a new version");
        let key = key_row("pairwise-1", "pairwise", 1);
        store.insert_key_if_absent(&key).await.unwrap();
        assert!(store.reseal_key("pairwise-1", &key.secret, b"resealed").await.unwrap());
        assert!(!store.reseal_key("pairwise-1", &key.secret, b"again").await.unwrap());
        assert_eq!(store.keys("pairwise").await.unwrap()[0].secret, b"resealed");
    };

    concurrent_committers_get_dense_distinct_indices => |store: Arc<dyn Store>| async move {
        let mut tasks = Vec::new();
        for t in 0..6u8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut firsts = Vec::new();
                for i in 0..10u8 {
                    let out = s.commit_batch(vec![Commit { changes: changes![], leaves: vec![leaf(t * 10 + i, &[]), leaf(t * 10 + i, &[])] }]).await.unwrap();
                    firsts.push(out.results[0].clone().unwrap().first_leaf);
                }
                firsts
            }));
        }
        let mut all = Vec::new();
        for t in tasks { all.extend(t.await.unwrap()); }
        all.sort();
        assert_eq!(all, (0..60).map(|i| i * 2).collect::<Vec<u64>>());
        assert_eq!(store.ledger_size().await.unwrap(), 120);
        let hashes = store.leaf_hashes(0, 120).await.unwrap();
        for pair in hashes.chunks(2) {
            assert_eq!(pair[0], pair[1], "a commit's leaves are adjacent");
        }
    };

    services_purposes_and_votes_round_trip => |store: Arc<dyn Store>| async move {
        let school = service("school", ServiceKind::Provider);
        let daycare = service("daycare", ServiceKind::Consumer);
        let purpose = PurposeRow {
            consumer_id: "daycare".into(), purpose_id: "allergy".into(), provider_id: "school".into(),
            legal_basis: LegalBasis::Consent, items: vec!["allergy".into()], definition: "{}".into(), terms_sha256: "t".into(),
        };
        commit(&store, changes![
            ServiceChange::InsertService(school.clone()),
            ServiceChange::InsertService(daycare.clone()),
            ServiceChange::InsertPurpose(purpose.clone()),
        ], vec![]).await.unwrap();
        assert_eq!(store.service(&"school".into()).await.unwrap(), Some(school));
        assert_eq!(store.services(Some(ServiceStatus::PendingReview)).await.unwrap().len(), 2);
        assert!(store.services(Some(ServiceStatus::Approved)).await.unwrap().is_empty());
        assert_eq!(store.purpose(&"daycare".into(), &"allergy".into()).await.unwrap(), Some(purpose.clone()));
        assert_eq!(store.purposes_of(&"daycare".into()).await.unwrap(), vec![purpose.clone()]);
        assert_eq!(store.all_purposes().await.unwrap(), vec![purpose]);

        let vote = |member: &str, nonce: &str| VoteRow {
            member_id: member.into(), nonce: nonce.into(), service_id: "daycare".into(), round: 0,
            decision: Decision::Approve, comment: "".into(), issued_at: 100, jws: "j".into(), created_at: 100,
        };
        commit(&store, changes![ServiceChange::InsertVote(vote("m1", "n1"))], vec![]).await.unwrap();
        assert!(matches!(commit(&store, changes![ServiceChange::InsertVote(vote("m1", "n1"))], vec![]).await, Err(StoreError::Conflict(_))), "a vote nonce is used once");
        commit(&store, changes![ServiceChange::InsertVote(vote("m2", "n1"))], vec![]).await.unwrap();
        assert_eq!(store.votes(&"daycare".into(), 0).await.unwrap().len(), 2);
        let approve = |round| ServiceChange::SetServiceStatus { id: "daycare".into(), from: ServiceStatus::PendingReview, to: ServiceStatus::Approved, round, updated_at: 200 };
        assert!(matches!(commit(&store, changes![approve(1)], vec![]).await, Err(StoreError::Conflict(_))), "wrong round");
        commit(&store, changes![approve(0)], vec![]).await.unwrap();
        let s = store.service(&"daycare".into()).await.unwrap().unwrap();
        assert_eq!((s.status, s.round), (ServiceStatus::Approved, 1));
        assert!(store.votes(&"daycare".into(), 1).await.unwrap().is_empty(), "a new round starts empty");
    };

    a_resident_has_at_most_one_active_consent_per_purpose => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", Some("card-1")).await;
        commit(&store, changes![ConsentChange::InsertConsent(consent("c1", "a1", ConsentStatus::Active, 100))], vec![]).await.unwrap();
        assert!(matches!(
            commit(&store, changes![ConsentChange::InsertConsent(consent("c2", "a1", ConsentStatus::Active, 101))], vec![]).await,
            Err(StoreError::Conflict(_))
        ));
        commit(&store, changes![
            ConsentChange::SetConsentStatus { id: "c1".into(), from: ConsentStatus::Active, to: ConsentStatus::Superseded, updated_at: 101 },
            ConsentChange::InsertConsent(consent("c2", "a1", ConsentStatus::Active, 101)),
        ], vec![]).await.unwrap();
        assert_eq!(store.latest_consent(&"a1".into(), &"daycare".into(), &"allergy".into()).await.unwrap().unwrap().id, "c2");
        commit(&store, changes![ConsentChange::SetConsentStatus { id: "c2".into(), from: ConsentStatus::Active, to: ConsentStatus::Revoked, updated_at: 102 }], vec![]).await.unwrap();
        let latest = store.latest_consent(&"a1".into(), &"daycare".into(), &"allergy".into()).await.unwrap().unwrap();
        assert_eq!((latest.id.as_str(), latest.status), ("c2", ConsentStatus::Revoked), "the newest decides");
        let mut same_generation = consent("c9", "a1", ConsentStatus::Revoked, 101);
        same_generation.purpose_id = "allergy".into();
        assert!(matches!(commit(&store, changes![ConsentChange::InsertConsent(same_generation)], vec![]).await, Err(StoreError::Conflict(_))), "generations are unique");
        assert_eq!(store.consents_of(&"a1".into()).await.unwrap().len(), 2);
        assert!(store.latest_consent(&"a1".into(), &"daycare".into(), &"other".into()).await.unwrap().is_none());

        commit(&store, changes![ConsentChange::InsertConsent(consent("c3", "a1", ConsentStatus::Active, 103))], vec![]).await.unwrap();
        let set = |v| ConsentChange::SetConsentExpiry { id: "c3".into(), expected_version: v, expires_at: 5_000, updated_at: 104 };
        commit(&store, changes![set(0)], vec![]).await.unwrap();
        assert!(matches!(commit(&store, changes![set(0)], vec![]).await, Err(StoreError::Conflict(_))));
        assert_eq!(store.consent(&"c3".into()).await.unwrap().unwrap().expires_at, 5_000);
        assert!(store.due_expirations(4_999, 10).await.unwrap().is_empty());
        assert_eq!(store.due_expirations(5_000, 10).await.unwrap().len(), 1);

        let nonce = || ConsentChange::UseResidentNonce { account_id: "a1".into(), nonce: "n".into(), expires_at: 500 };
        commit(&store, changes![nonce()], vec![]).await.unwrap();
        assert!(matches!(commit(&store, changes![nonce()], vec![]).await, Err(StoreError::Conflict(_))));
        assert_eq!(store.purge_resident_nonces(600).await.unwrap(), 1);
    };

    the_consent_feed_is_ordered_and_per_service => |store: Arc<dyn Store>| async move {
        commit(&store, changes![ConsentChange::InsertConsentEvent(event("c1", "granted", "daycare"))], vec![]).await.unwrap();
        commit(&store, changes![ConsentChange::InsertConsentEvent(event("c2", "granted", "clinic"))], vec![]).await.unwrap();
        commit(&store, changes![ConsentChange::InsertConsentEvent(event("c1", "revoked", "daycare"))], vec![]).await.unwrap();
        let daycare = store.consent_events(&"daycare".into(), 0, 10).await.unwrap();
        assert_eq!(daycare.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(), vec!["granted", "revoked"]);
        assert!(daycare[0].seq < daycare[1].seq);
        let after = store.consent_events(&"daycare".into(), daycare[0].seq, 10).await.unwrap();
        let history = store.consent_history(&"c1".into()).await.unwrap();
        assert_eq!(history.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(), vec!["granted", "revoked"]);
        assert_eq!(after.len(), 1);
        assert_eq!(store.consent_events(&"school".into(), 0, 10).await.unwrap().len(), 3, "the provider sees all its purposes");
        assert_eq!(store.consent_events(&"school".into(), 0, 2).await.unwrap().len(), 2);
    };

    a_ticket_context_is_read_in_one_query => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", Some("card-1")).await;
        assert_eq!(store.ticket_context(&"daycare".into(), &"school".into(), &"allergy".into(), &"sub-1".into()).await.unwrap(), None, "unknown consumer");
        commit(&store, changes![
            ServiceChange::InsertService(service("daycare", ServiceKind::Consumer)),
            ServiceChange::InsertService(service("school", ServiceKind::Provider)),
        ], vec![]).await.unwrap();
        let ctx = store.ticket_context(&"daycare".into(), &"school".into(), &"allergy".into(), &"sub-1".into()).await.unwrap().unwrap();
        assert_eq!((ctx.consumer_status, ctx.provider_status, ctx.resident.clone()), (ServiceStatus::PendingReview, Some(ServiceStatus::PendingReview), None));
        assert_eq!(store.ticket_context(&"daycare".into(), &"nowhere".into(), &"allergy".into(), &"sub-1".into()).await.unwrap().unwrap().provider_status, None);
        let link = ExchangeChange::LinkSubject { sector: "daycare".into(), subject: "sub-1".into(), account_id: "a1".into(), created_at: 100 };
        commit(&store, changes![link.clone()], vec![]).await.unwrap();
        commit(&store, changes![link], vec![]).await.unwrap();
        assert_eq!(store.account_for_subject(&"daycare".into(), &"sub-1".into()).await.unwrap(), Some("a1".into()));
        assert_eq!(store.account_for_subject(&"school".into(), &"sub-1".into()).await.unwrap(), None, "subjects are per sector");
        let ctx = store.ticket_context(&"daycare".into(), &"school".into(), &"allergy".into(), &"sub-1".into()).await.unwrap().unwrap();
        let resident = ctx.resident.unwrap();
        assert_eq!((resident.account_id.as_str(), resident.level, ctx.consent), ("a1", Level::Verified, None));
        commit(&store, changes![ConsentChange::InsertConsent(consent("c1", "a1", ConsentStatus::Active, 100))], vec![]).await.unwrap();
        let ctx = store.ticket_context(&"daycare".into(), &"school".into(), &"allergy".into(), &"sub-1".into()).await.unwrap().unwrap();
        assert_eq!(ctx.consent, Some(consent("c1", "a1", ConsentStatus::Active, 100)));
        assert_eq!(store.ticket_context(&"daycare".into(), &"school".into(), &"other".into(), &"sub-1".into()).await.unwrap().unwrap().consent, None);
        commit(&store, changes![ServiceChange::SetServiceStatus { id: "school".into(), from: ServiceStatus::PendingReview, to: ServiceStatus::Suspended, round: 0, updated_at: 1 }], vec![]).await.unwrap();
        assert_eq!(store.ticket_context(&"daycare".into(), &"school".into(), &"allergy".into(), &"sub-1".into()).await.unwrap().unwrap().provider_status, Some(ServiceStatus::Suspended));
    };

    tickets_take_one_receipt_per_side_and_close_once => |store: Arc<dyn Store>| async move {
        commit(&store, changes![ExchangeChange::InsertTicket(Box::new(ticket("t1")))], vec![]).await.unwrap();
        let receipt = |side| ExchangeChange::SetReceipt { ticket_id: "t1".into(), side, payload_sha256: "ab".into(), updated_at: 150 };
        commit(&store, changes![receipt(ReceiptSide::Consumer)], vec![]).await.unwrap();
        assert!(matches!(commit(&store, changes![receipt(ReceiptSide::Consumer)], vec![]).await, Err(StoreError::Conflict(_))));
        commit(&store, changes![receipt(ReceiptSide::Provider)], vec![]).await.unwrap();
        let t = store.ticket(&"t1".into()).await.unwrap().unwrap();
        assert_eq!((t.consumer_receipt.as_deref(), t.provider_receipt.as_deref()), (Some("ab"), Some("ab")));
        assert_eq!(store.overdue_tickets(300, 10).await.unwrap().len(), 1);
        let close = || ExchangeChange::CloseTicket { ticket_id: "t1".into(), state: TicketState::Completed, updated_at: 160 };
        commit(&store, changes![close()], vec![]).await.unwrap();
        assert!(matches!(commit(&store, changes![close()], vec![]).await, Err(StoreError::Conflict(_))));
        assert!(store.overdue_tickets(300, 10).await.unwrap().is_empty());
        assert_eq!(store.tickets_of(&"a1".into(), 10).await.unwrap().len(), 1);

        let jti = || IdentityChange::UseJti { key: "svc:jti-1".into(), expires_at: 500 };
        commit(&store, changes![jti()], vec![]).await.unwrap();
        assert!(matches!(commit(&store, changes![jti()], vec![]).await, Err(StoreError::Conflict(_))), "an assertion is used once");

        commit(&store, changes![ExchangeChange::InsertAlert(AlertRow { seq: 0, kind: AlertKind::LegalBasisUse, service_id: Some("fire".into()), ticket_id: Some("t1".into()), detail: "d".into(), created_at: 1 })], vec![]).await.unwrap();
        let alerts = store.alerts(0, 10).await.unwrap();
        assert_eq!(alerts.len(), 1);
        assert!(store.alerts(alerts[0].seq, 10).await.unwrap().is_empty());
    };

    ticket_batches_bulk_write_and_refuse_replays => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", None).await;
        commit(&store, changes![IdentityChange::UseJti { key: "svc:used".into(), expires_at: 500 }], vec![]).await.unwrap();
        let ticket_of = |n: u8| {
            let mut t = ticket(&format!("t{n}"));
            if n.is_multiple_of(2) {
                t.basis = Basis::Rule("fire".into());
                t.requester = Some("crew 7".into());
                t.reason = Some("a call".into());
            }
            t
        };
        let issue = |n: u8, jti: &str| Commit {
            changes: changes![
                IdentityChange::UseJti { key: format!("svc:{jti}"), expires_at: 500 },
                ExchangeChange::InsertTicket(Box::new(ticket_of(n))),
                ExchangeChange::LinkSubject { sector: "school".into(), subject: format!("s{}", n % 2).into(), account_id: "a1".into(), created_at: 100 },
            ],
            leaves: vec![leaf(n, &["a1"])],
        };
        // All apply: one bulk statement per table, every field kept.
        let outcome = store.commit_batch(vec![issue(1, "j1"), issue(2, "j2"), issue(3, "j3")]).await.unwrap();
        assert!(outcome.results.iter().all(Result::is_ok));
        assert_eq!(outcome.size_after - outcome.size_before, 3);
        for n in 1..=3u8 {
            let expected = ticket_of(n);
            assert_eq!(store.ticket(&format!("t{n}").into()).await.unwrap().as_ref(), Some(&expected));
        }
        assert_eq!(store.account_for_subject(&"school".into(), &"s0".into()).await.unwrap(), Some("a1".into()));
        assert_eq!(store.account_for_subject(&"school".into(), &"s1".into()).await.unwrap(), Some("a1".into()));

        // A jti used before and one used twice within the batch: only those commits are refused.
        let outcome = store
            .commit_batch(vec![issue(4, "j4"), issue(5, "used"), issue(6, "j6"), issue(7, "j6"), issue(8, "j8")])
            .await
            .unwrap();
        let refused: Vec<bool> = outcome.results.iter().map(|r| matches!(r, Err(StoreError::Conflict(_)))).collect();
        assert_eq!(refused, vec![false, true, false, true, false]);
        assert_eq!(outcome.size_after - outcome.size_before, 3, "refused commits add no leaves");
        for (n, present) in [(4, true), (5, false), (6, true), (7, false), (8, true)] {
            assert_eq!(store.ticket(&format!("t{n}").into()).await.unwrap().is_some(), present, "ticket t{n}");
        }
    };

    authz_requests_round_trip_by_id_and_nonce => |store: Arc<dyn Store>| async move {
        oidc_city(&store).await;
        let r1 = authz_request("r1", 1_000);
        commit(&store, changes![OidcChange::InsertAuthzRequest(r1.clone())], vec![]).await.unwrap();
        assert_eq!(store.authz_request(&"r1".into()).await.unwrap(), Some(r1.clone()));
        assert_eq!(store.authz_request_by_login_nonce("ln1").await.unwrap(), None);

        let set = |id: &str, nonce: &str| OidcChange::SetAuthzLoginNonce { id: id.into(), login_nonce: nonce.into() };
        commit(&store, changes![set("r1", "ln1")], vec![]).await.unwrap();
        let with_nonce = AuthzRequestRow { login_nonce: Some("ln1".into()), ..r1 };
        assert_eq!(store.authz_request_by_login_nonce("ln1").await.unwrap(), Some(with_nonce.clone()));
        assert_eq!(store.authz_request(&"r1".into()).await.unwrap(), Some(with_nonce));

        let mut r2 = authz_request("r2", 1_000);
        r2.pushed = false;
        commit(&store, changes![OidcChange::InsertAuthzRequest(r2.clone())], vec![]).await.unwrap();
        assert_eq!(store.authz_request(&"r2".into()).await.unwrap(), Some(r2));
        assert!(is_conflict(&commit(&store, changes![set("r2", "ln1")], vec![]).await), "a login nonce answers one request");
        assert!(is_conflict(&commit(&store, changes![set("missing", "ln2")], vec![]).await), "no such request");

        let delete = || OidcChange::DeleteAuthzRequest { id: "r1".into() };
        commit(&store, changes![delete()], vec![]).await.unwrap();
        assert_eq!(store.authz_request(&"r1".into()).await.unwrap(), None);
        assert_eq!(store.authz_request_by_login_nonce("ln1").await.unwrap(), None);
        commit(&store, changes![delete()], vec![]).await.expect("deleting a deleted request is fine");
        assert!(store.authz_request(&"r2".into()).await.unwrap().is_some());

        let mut stranger = authz_request("r3", 1_000);
        stranger.client_id = "unknown".into();
        assert!(is_conflict(&commit(&store, changes![OidcChange::InsertAuthzRequest(stranger)], vec![]).await), "clients are services");
    };

    a_code_is_redeemed_once => |store: Arc<dyn Store>| async move {
        oidc_city(&store).await;
        let g = grant("g1", "a1", "rp", 100);
        let c = code("ch1", "g1", 160);
        commit(&store, changes![OidcChange::InsertGrant(g.clone()), OidcChange::InsertCode(c.clone())], vec![]).await.unwrap();
        assert_eq!(store.code("ch1").await.unwrap(), Some((c.clone(), g.clone())));
        assert_eq!(store.grant(&"g1".into()).await.unwrap(), Some(g.clone()));

        let redeem = |at| OidcChange::UseCode { code_hash: "ch1".into(), at };
        commit(&store, changes![redeem(130)], vec![]).await.unwrap();
        assert!(is_conflict(&commit(&store, changes![redeem(131)], vec![]).await), "a replayed code");
        let (used, of) = store.code("ch1").await.unwrap().unwrap();
        assert_eq!(used, CodeRow { used_at: Some(130), ..c });
        assert_eq!(of, g);

        assert!(is_conflict(&commit(&store, changes![OidcChange::UseCode { code_hash: "nope".into(), at: 130 }], vec![]).await), "an unknown code");
        assert_eq!(store.code("nope").await.unwrap(), None);
        assert!(is_conflict(&commit(&store, changes![OidcChange::InsertCode(code("ch2", "no-grant", 160))], vec![]).await), "a code needs its grant");
    };

    tokens_carry_their_grant_and_its_revocation => |store: Arc<dyn Store>| async move {
        oidc_city(&store).await;
        let g = grant("g1", "a1", "rp", 100);
        let access = oauth_token("at1", "g1", TokenKind::Access, 400);
        let mut refresh = oauth_token("rt1", "g1", TokenKind::Refresh, 10_000);
        refresh.dpop_jkt = None;
        commit(&store, changes![
            OidcChange::InsertGrant(g.clone()),
            OidcChange::InsertOauthToken(access.clone()),
            OidcChange::InsertOauthToken(refresh.clone()),
        ], vec![]).await.unwrap();
        assert_eq!(store.oauth_token("at1").await.unwrap(), Some((access.clone(), g.clone())));
        assert_eq!(store.oauth_token("rt1").await.unwrap(), Some((refresh.clone(), g.clone())));
        assert_eq!(store.oauth_token("nope").await.unwrap(), None);

        let rotate = |hash: &str, at| OidcChange::UseRefreshToken { token_hash: hash.into(), at };
        commit(&store, changes![rotate("rt1", 200)], vec![]).await.unwrap();
        assert!(is_conflict(&commit(&store, changes![rotate("rt1", 201)], vec![]).await), "a replayed refresh token");
        assert!(is_conflict(&commit(&store, changes![rotate("at1", 201)], vec![]).await), "an access token does not refresh");
        assert!(is_conflict(&commit(&store, changes![rotate("nope", 201)], vec![]).await), "an unknown token");
        assert_eq!(store.oauth_token("rt1").await.unwrap().unwrap().0.used_at, Some(200));
        assert_eq!(store.oauth_token("at1").await.unwrap().unwrap().0.used_at, None);

        let revoke = |id: &str, reason: &str, at| OidcChange::RevokeGrant { id: id.into(), reason: reason.into(), at };
        commit(&store, changes![revoke("g1", "resident", 300)], vec![]).await.unwrap();
        let revoked = GrantRow { revoked_at: Some(300), revoked_reason: Some("resident".into()), ..g };
        assert_eq!(store.grant(&"g1".into()).await.unwrap(), Some(revoked.clone()));
        assert_eq!(store.oauth_token("at1").await.unwrap(), Some((access, revoked.clone())));
        commit(&store, changes![revoke("g1", "replay", 400)], vec![]).await.expect("revoking twice is fine");
        assert_eq!(store.grant(&"g1".into()).await.unwrap(), Some(revoked), "the first revocation stays");
        assert!(is_conflict(&commit(&store, changes![revoke("nope", "resident", 300)], vec![]).await), "no such grant");
    };

    grants_are_listed_and_counted => |store: Arc<dyn Store>| async move {
        oidc_city(&store).await;
        commit(&store, changes![
            OidcChange::InsertGrant(grant("g1", "a1", "rp", 100)),
            OidcChange::InsertGrant(grant("g2", "a1", "rp2", 200)),
            OidcChange::InsertGrant(grant("g3", "a1", "rp", 300)),
            OidcChange::InsertGrant(grant("g4", "a2", "rp", 150)),
        ], vec![]).await.unwrap();
        let ids = |grants: Vec<GrantRow>| grants.into_iter().map(|g| g.id).collect::<Vec<_>>();
        assert_eq!(ids(store.grants_of(&"a1".into(), 10).await.unwrap()), vec!["g3", "g2", "g1"], "newest first");
        assert_eq!(ids(store.grants_of(&"a1".into(), 2).await.unwrap()), vec!["g3", "g2"]);
        assert_eq!(ids(store.grants_of(&"a2".into(), 10).await.unwrap()), vec!["g4"]);
        assert!(store.grants_of(&"nobody".into(), 10).await.unwrap().is_empty());

        assert_eq!(store.count_active_grants(&"rp".into()).await.unwrap(), 3);
        assert_eq!(store.count_active_grants(&"rp2".into()).await.unwrap(), 1);
        commit(&store, changes![OidcChange::RevokeGrant { id: "g1".into(), reason: "resident".into(), at: 400 }], vec![]).await.unwrap();
        assert_eq!(store.count_active_grants(&"rp".into()).await.unwrap(), 2, "revoked grants do not count");
        assert_eq!(store.count_active_grants(&"unknown".into()).await.unwrap(), 0);
        assert_eq!(store.grants_of(&"a1".into(), 10).await.unwrap()[2].revoked_at, Some(400), "but are still listed");
    };

    live_grants_are_those_a_client_can_still_use => |store: Arc<dyn Store>| async move {
        oidc_city(&store).await;
        let now = 10_000;
        let mut used_refresh = oauth_token("t-used", "g-used", TokenKind::Refresh, now + 3_600);
        used_refresh.used_at = Some(now - 10);
        commit(&store, changes![
            OidcChange::InsertGrant(grant("g-token", "a1", "rp", 100)),
            OidcChange::InsertOauthToken(oauth_token("t-live", "g-token", TokenKind::Refresh, now + 3_600)),
            OidcChange::InsertGrant(grant("g-code", "a1", "rp2", 200)),
            OidcChange::InsertCode(code("c-live", "g-code", now + 60)),
            OidcChange::InsertGrant(grant("g-expired", "a1", "rp", 300)),
            OidcChange::InsertOauthToken(oauth_token("t-old", "g-expired", TokenKind::Access, now)),
            OidcChange::InsertCode(code("c-old", "g-expired", now - 1)),
            OidcChange::InsertGrant(grant("g-used", "a1", "rp", 400)),
            OidcChange::InsertOauthToken(used_refresh),
            OidcChange::InsertGrant(grant("g-revoked", "a1", "rp", 500)),
            OidcChange::InsertOauthToken(oauth_token("t-revoked", "g-revoked", TokenKind::Refresh, now + 3_600)),
            OidcChange::RevokeGrant { id: "g-revoked".into(), reason: "resident".into(), at: now - 5 },
            OidcChange::InsertGrant(grant("g-other", "a2", "rp", 600)),
            OidcChange::InsertOauthToken(oauth_token("t-other", "g-other", TokenKind::Refresh, now + 3_600)),
        ], vec![]).await.unwrap();
        let ids = |grants: Vec<GrantRow>| grants.into_iter().map(|g| g.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.live_grants_of(&"a1".into(), now).await.unwrap()),
            vec!["g-code", "g-token"],
            "newest first; expired, used up and revoked grants are not live"
        );
        assert_eq!(ids(store.live_grants_of(&"a2".into(), now).await.unwrap()), vec!["g-other"]);
        assert!(store.live_grants_of(&"nobody".into(), now).await.unwrap().is_empty());
    };

    purge_oidc_keeps_live_rows => |store: Arc<dyn Store>| async move {
        oidc_city(&store).await;
        let now = 200_000;
        let day = 86_400;
        commit(&store, changes![
            OidcChange::InsertAuthzRequest(authz_request("r-expired", now - 1)),
            OidcChange::InsertAuthzRequest(authz_request("r-live", now + 300)),
            OidcChange::InsertGrant(grant("g1", "a1", "rp", 100)),
            OidcChange::InsertCode(code("c-old", "g1", now - day - 1)),
            OidcChange::InsertCode(code("c-recent", "g1", now - 60)),
            OidcChange::InsertCode(code("c-live", "g1", now + 60)),
            OidcChange::InsertOauthToken(oauth_token("t-old", "g1", TokenKind::Access, now - day - 3_600)),
            OidcChange::InsertOauthToken(oauth_token("t-recent", "g1", TokenKind::Refresh, now - 3_600)),
            OidcChange::InsertOauthToken(oauth_token("t-live", "g1", TokenKind::Access, now + 3_600)),
        ], vec![]).await.unwrap();
        assert_eq!(store.purge_oidc(now).await.unwrap(), 3);
        assert!(store.authz_request(&"r-expired".into()).await.unwrap().is_none());
        assert!(store.authz_request(&"r-live".into()).await.unwrap().is_some());
        assert!(store.code("c-old").await.unwrap().is_none());
        assert!(store.code("c-recent").await.unwrap().is_some(), "an expired code is kept a day, to recognise its replay");
        assert!(store.code("c-live").await.unwrap().is_some());
        assert!(store.oauth_token("t-old").await.unwrap().is_none());
        assert!(store.oauth_token("t-recent").await.unwrap().is_some());
        assert!(store.oauth_token("t-live").await.unwrap().is_some());
        assert!(store.grant(&"g1".into()).await.unwrap().is_some(), "grants are not purged");
        assert_eq!(store.purge_oidc(now).await.unwrap(), 0);
    };

    client_secret_and_registration_update => |store: Arc<dyn Store>| async move {
        let mut with_secret = service("rp", ServiceKind::Consumer);
        with_secret.client_secret_hash = Some("5e".into());
        commit(&store, changes![ServiceChange::InsertService(with_secret.clone())], vec![]).await.unwrap();
        assert_eq!(store.service(&"rp".into()).await.unwrap(), Some(with_secret.clone()));

        let secret = |id: &str, hash: Option<&str>, at| ServiceChange::SetClientSecret {
            service_id: id.into(), secret_hash: hash.map(Into::into), updated_at: at,
        };
        commit(&store, changes![secret("rp", Some("ab12"), 200)], vec![]).await.unwrap();
        let s = store.service(&"rp".into()).await.unwrap().unwrap();
        assert_eq!((s.client_secret_hash.as_deref(), s.updated_at), (Some("ab12"), 200));
        commit(&store, changes![secret("rp", None, 210)], vec![]).await.unwrap();
        assert_eq!(store.service(&"rp".into()).await.unwrap().unwrap().client_secret_hash, None);
        assert!(is_conflict(&commit(&store, changes![secret("nope", Some("ab12"), 200)], vec![]).await));

        let cert = "x5tS256x5tS256x5tS256x5tS256x5tS256x5tS2560";
        let update = |id: &str| ServiceChange::UpdateServiceRegistration {
            id: id.into(),
            application: r#"{"v":2}"#.into(),
            jwks: r#"{"keys":[{"kty":"EC"}]}"#.into(),
            endpoint: Some("https://rp.example.jp/tickets".into()),
            client_cert_sha256: Some(cert.into()),
            updated_at: 300,
        };
        assert_eq!(store.service_by_client_cert(cert).await.unwrap(), None);
        commit(&store, changes![update("rp")], vec![]).await.unwrap();
        assert_eq!(store.service(&"rp".into()).await.unwrap(), Some(ServiceRow {
            application: r#"{"v":2}"#.into(),
            jwks: r#"{"keys":[{"kty":"EC"}]}"#.into(),
            endpoint: Some("https://rp.example.jp/tickets".into()),
            updated_at: 300,
            client_secret_hash: None,
            client_cert_sha256: Some(cert.into()),
            ..with_secret
        }));
        assert_eq!(store.service_by_client_cert(cert).await.unwrap(), Some("rp".into()));
        assert!(is_conflict(&commit(&store, changes![update("nope")], vec![]).await));
        // A certificate belongs to one service at most.
        commit(&store, changes![ServiceChange::InsertService(service("rp2", ServiceKind::Consumer))], vec![]).await.unwrap();
        assert!(commit(&store, changes![update("rp2")], vec![]).await.is_err(), "the certificate is taken");
        assert_eq!(store.service_by_client_cert(cert).await.unwrap(), Some("rp".into()));
    };

    a_session_is_deleted_alone => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", None).await;
        let session = |hash: &str| SessionRow {
            token_hash: hash.into(), account_id: "a1".into(), device_id: "d1".into(), expires_at: 500, created_at: 100,
        };
        commit(&store, changes![IdentityChange::InsertSession(session("h1")), IdentityChange::InsertSession(session("h2"))], vec![]).await.unwrap();
        let logout = || IdentityChange::DeleteSession { token_hash: "h1".into() };
        commit(&store, changes![logout()], vec![]).await.unwrap();
        assert_eq!(store.session("h1").await.unwrap(), None);
        assert_eq!(store.session("h2").await.unwrap(), Some(session("h2")), "the device's other session stays");
        commit(&store, changes![logout()], vec![]).await.expect("logging out twice is fine");
    };

    ticket_counts_by_role_and_state => |store: Arc<dyn Store>| async move {
        let exchange = |id: &str, consumer: &str, provider: &str| TicketRow {
            consumer_id: consumer.into(), provider_id: provider.into(), ..ticket(id)
        };
        commit(&store, changes![
            ExchangeChange::InsertTicket(Box::new(exchange("t1", "daycare", "school"))),
            ExchangeChange::InsertTicket(Box::new(exchange("t2", "daycare", "school"))),
            ExchangeChange::InsertTicket(Box::new(exchange("t3", "daycare", "school"))),
            ExchangeChange::InsertTicket(Box::new(exchange("t4", "clinic", "daycare"))),
            ExchangeChange::InsertTicket(Box::new(exchange("t5", "clinic", "school"))),
        ], vec![]).await.unwrap();
        let close = |id: &str, state: &str| ExchangeChange::CloseTicket { ticket_id: id.into(), state: TicketState::parse(state).unwrap(), updated_at: 300 };
        commit(&store, changes![close("t2", "completed"), close("t3", "completed"), close("t5", "missing")], vec![]).await.unwrap();
        let counts = |v: &[(&str, &str, u64)]| v.iter().map(|(r, s, n)| (if *r == "consumer" { ReceiptSide::Consumer } else { ReceiptSide::Provider }, TicketState::parse(s).unwrap(), *n)).collect::<Vec<_>>();
        assert_eq!(
            store.ticket_counts(&"daycare".into()).await.unwrap(),
            counts(&[("consumer", "completed", 2), ("consumer", "open", 1), ("provider", "open", 1)])
        );
        assert_eq!(
            store.ticket_counts(&"school".into()).await.unwrap(),
            counts(&[("provider", "completed", 2), ("provider", "missing", 1), ("provider", "open", 1)])
        );
        assert_eq!(store.ticket_counts(&"clinic".into()).await.unwrap(), counts(&[("consumer", "missing", 1), ("consumer", "open", 1)]));
        assert!(store.ticket_counts(&"nobody".into()).await.unwrap().is_empty());
    };

    a_replayed_code_refuses_only_its_commit => |store: Arc<dyn Store>| async move {
        oidc_city(&store).await;
        commit(&store, changes![
            OidcChange::InsertGrant(grant("g1", "a1", "rp", 100)),
            OidcChange::InsertGrant(grant("g2", "a2", "rp", 100)),
            OidcChange::InsertCode(code("ch1", "g1", 160)),
            OidcChange::InsertCode(code("ch2", "g2", 160)),
        ], vec![]).await.unwrap();
        let redeem = |code_hash: &str, token: &str, grant_id: &str, n: u8| Commit {
            changes: changes![
                OidcChange::UseCode { code_hash: code_hash.into(), at: 120 + i64::from(n) },
                OidcChange::InsertOauthToken(oauth_token(token, grant_id, TokenKind::Access, 400)),
            ],
            leaves: vec![leaf(n, &[])],
        };
        // The second commit replays the first one's code within the same batch.
        let outcome = store
            .commit_batch(vec![redeem("ch1", "at1", "g1", 1), redeem("ch1", "at2", "g1", 2), redeem("ch2", "at3", "g2", 3)])
            .await
            .unwrap();
        let refused: Vec<bool> = outcome.results.iter().map(is_conflict).collect();
        assert_eq!(refused, vec![false, true, false]);
        assert_eq!(outcome.size_after - outcome.size_before, 2, "the refused commit adds no leaf");
        assert_eq!(store.code("ch1").await.unwrap().unwrap().0.used_at, Some(121), "the first redemption stands");
        assert_eq!(store.code("ch2").await.unwrap().unwrap().0.used_at, Some(123));
        assert!(store.oauth_token("at1").await.unwrap().is_some());
        assert!(store.oauth_token("at2").await.unwrap().is_none(), "the replay's token was undone");
        assert!(store.oauth_token("at3").await.unwrap().is_some());
        let hashes = store.leaf_hashes(outcome.size_before, outcome.size_after).await.unwrap();
        assert_eq!(hashes, vec![[1; 32], [3; 32]]);
    };

    the_database_answers => |store: Arc<dyn Store>| async move {
        store.ping().await.unwrap();
        assert!(matches!(store.backend(), "sqlite" | "postgres"));
    };
}
