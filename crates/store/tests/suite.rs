//! One suite, two backends: every test runs on SQLite (a fresh file) and, when
//! `TSUNAGU_TEST_DATABASE_URL` is set, on PostgreSQL (a fresh schema per test).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tsunagu_core::identity::{AccountStatus, DeviceStatus, Level};
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
    PgStore::drop_schema(&url, &schema).await.unwrap();
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
    }
}

fn leaf(n: u8, subjects: &[&str]) -> NewLeaf {
    NewLeaf {
        input: vec![n; 3],
        hash: [n; 32],
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        created_at: 100 + i64::from(n),
    }
}

async fn commit(
    store: &Arc<dyn Store>,
    changes: Vec<Change>,
    leaves: Vec<NewLeaf>,
) -> std::result::Result<Committed, StoreError> {
    let outcome = store
        .commit_batch(&[Commit { changes, leaves }])
        .await
        .unwrap();
    outcome.results.into_iter().next().unwrap()
}

async fn enroll(store: &Arc<dyn Store>, acct: &str, dev: &str, card: Option<&str>) {
    commit(
        store,
        vec![
            Change::InsertAccount(account(acct, card)),
            Change::InsertDevice(device(dev, acct)),
        ],
        vec![leaf(1, &[acct])],
    )
    .await
    .unwrap();
}

store_tests! {
    accounts_and_devices_are_found_by_every_key => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", Some("card-1")).await;
        let a = store.account("a1").await.unwrap().unwrap();
        assert_eq!(a, account("a1", Some("card-1")));
        assert_eq!(store.account_by_card("card-1").await.unwrap().unwrap().id, "a1");
        assert_eq!(store.accounts_with_card(b"issuer", b"card-1").await.unwrap().len(), 1);
        assert!(store.accounts_with_card(b"other", b"card-1").await.unwrap().is_empty());
        assert_eq!(store.device_by_jkt("jkt-d1").await.unwrap().unwrap(), device("d1", "a1"));
        assert_eq!(store.devices_of("a1").await.unwrap().len(), 1);
        assert!(store.account("nope").await.unwrap().is_none());
        assert_eq!(store.count_accounts().await.unwrap(), 1);
    };

    a_refused_commit_leaves_nothing_behind => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", None).await;
        // Same device key (jkt) again: the whole commit is refused, its leaf included.
        let mut dup = device("d2", "a2");
        dup.jkt = "jkt-d1".into();
        let result = commit(
            &store,
            vec![Change::InsertAccount(account("a2", None)), Change::InsertDevice(dup)],
            vec![leaf(2, &["a2"])],
        )
        .await;
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
        assert!(store.account("a2").await.unwrap().is_none());
        assert_eq!(store.ledger_size().await.unwrap(), 1);
    };

    in_a_batch_only_the_refused_commit_is_undone => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", None).await;
        let mut dup = device("d3", "a3");
        dup.jkt = "jkt-d1".into();
        let outcome = store
            .commit_batch(&[
                Commit {
                    changes: vec![Change::InsertAccount(account("a2", None)), Change::InsertDevice(device("d2", "a2"))],
                    leaves: vec![leaf(2, &["a2"]), leaf(3, &["a2"])],
                },
                Commit {
                    changes: vec![Change::InsertAccount(account("a3", None)), Change::InsertDevice(dup)],
                    leaves: vec![leaf(4, &["a3"])],
                },
                Commit { changes: vec![], leaves: vec![leaf(5, &[])] },
            ])
            .await
            .unwrap();
        assert_eq!(outcome.size_before, 1);
        assert_eq!(outcome.size_after, 4);
        assert_eq!(outcome.results[0], Ok(Committed { first_leaf: 1, leaf_count: 2 }));
        assert!(matches!(outcome.results[1], Err(StoreError::Conflict(_))));
        assert_eq!(outcome.results[2], Ok(Committed { first_leaf: 3, leaf_count: 1 }));
        assert!(store.account("a2").await.unwrap().is_some());
        assert!(store.account("a3").await.unwrap().is_none());
        let hashes = store.leaf_hashes(0, 4).await.unwrap();
        assert_eq!(hashes, vec![[1; 32], [2; 32], [3; 32], [5; 32]]);
    };

    compare_and_set_changes_apply_once => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", Some("card-1")).await;
        let revoke = || Change::RevokeDevice { id: "d1".into(), at: 200 };
        commit(&store, vec![revoke()], vec![]).await.unwrap();
        assert!(matches!(commit(&store, vec![revoke()], vec![]).await, Err(StoreError::Conflict(_))));
        let d = store.device("d1").await.unwrap().unwrap();
        assert_eq!(d.status, DeviceStatus::Revoked);
        assert_eq!(d.revoked_at, Some(200));

        let set = |expected, failures| Change::SetLoginState {
            device_id: "d1".into(), expected_failures: expected, failures, locked_until: Some(300),
        };
        commit(&store, vec![set(0, 1)], vec![]).await.unwrap();
        assert!(matches!(commit(&store, vec![set(0, 1)], vec![]).await, Err(StoreError::Conflict(_))));
        assert_eq!(store.device("d1").await.unwrap().unwrap().failed_logins, 1);

        let status = |from, to| Change::SetAccountStatus { id: "a1".into(), from, to, updated_at: 300 };
        commit(&store, vec![status(AccountStatus::Active, AccountStatus::ReproofRequired)], vec![]).await.unwrap();
        assert!(matches!(
            commit(&store, vec![status(AccountStatus::Active, AccountStatus::ReproofRequired)], vec![]).await,
            Err(StoreError::Conflict(_))
        ));
        let a = store.account("a1").await.unwrap().unwrap();
        assert_eq!(a.status, AccountStatus::ReproofRequired);
        assert_eq!(a.version, 1);

        let proof = |expected_version| Change::UpdateAccountProof {
            id: "a1".into(),
            expected_version,
            level: Level::Verified,
            status: AccountStatus::Active,
            attributes: vec![9],
            card: CardRef { binding: "card-2".into(), issuer: b"issuer".to_vec(), serial: b"s2".to_vec(), not_after: 9 },
            updated_at: 400,
        };
        assert!(matches!(commit(&store, vec![proof(0)], vec![]).await, Err(StoreError::Conflict(_))));
        commit(&store, vec![proof(1)], vec![]).await.unwrap();
        let a = store.account("a1").await.unwrap().unwrap();
        assert_eq!(a.status, AccountStatus::Active);
        assert_eq!(a.card.unwrap().binding, "card-2");
        assert!(store.account_by_card("card-1").await.unwrap().is_none());
    };

    nonces_are_single_use_and_expire => |store: Arc<dyn Store>| async move {
        store.put_nonce("n1", "login", 1000).await.unwrap();
        store.put_nonce("n2", "login", 1000).await.unwrap();
        store.put_nonce("n3", "login", 500).await.unwrap();
        assert!(!store.take_nonce("n1", "enroll", 600).await.unwrap(), "wrong purpose");
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
        commit(&store, vec![Change::InsertSession(session.clone())], vec![]).await.unwrap();
        assert_eq!(store.session("h").await.unwrap(), Some(session));
        commit(&store, vec![Change::DeleteDeviceSessions { device_id: "d1".into() }], vec![]).await.unwrap();
        assert_eq!(store.session("h").await.unwrap(), None);
        let s2 = SessionRow { token_hash: "h2".into(), account_id: "a1".into(), device_id: "d1".into(), expires_at: 500, created_at: 100 };
        commit(&store, vec![Change::InsertSession(s2)], vec![]).await.unwrap();
        assert_eq!(store.purge_sessions(600).await.unwrap(), 1);
    };

    history_lists_a_residents_leaves_newest_first => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", None).await;
        enroll(&store, "a2", "d2", None).await;
        for n in 2..6 {
            commit(&store, vec![], vec![leaf(n, if n % 2 == 0 { &["a1"] } else { &["a1", "a2"] })]).await.unwrap();
        }
        let all: Vec<u64> = store.subject_leaves("a1", None, 100).await.unwrap().iter().map(|l| l.index).collect();
        assert_eq!(all, vec![5, 4, 3, 2, 0]);
        let page: Vec<u64> = store.subject_leaves("a1", Some(4), 2).await.unwrap().iter().map(|l| l.index).collect();
        assert_eq!(page, vec![3, 2]);
        let other: Vec<u64> = store.subject_leaves("a2", None, 100).await.unwrap().iter().map(|l| l.index).collect();
        assert_eq!(other, vec![5, 3, 1]);
    };

    retention_removes_content_but_keeps_hashes => |store: Arc<dyn Store>| async move {
        for n in 0..4 {
            commit(&store, vec![], vec![leaf(n, &[])]).await.unwrap();
        }
        assert_eq!(store.expire_leaf_inputs(102).await.unwrap(), 2);
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
        let key = KeyRow { name: "ledger-1".into(), purpose: "ledger".into(), kid: "k".into(), alg: "EdDSA".into(), secret: vec![1], active: true, created_at: 1 };
        assert!(store.insert_key_if_absent(&key).await.unwrap());
        let mut other = key.clone();
        other.secret = vec![2];
        assert!(!store.insert_key_if_absent(&other).await.unwrap());
        assert_eq!(store.keys("ledger").await.unwrap(), vec![key]);
        assert!(store.keys("other").await.unwrap().is_empty());
    };

    concurrent_committers_get_dense_distinct_indices => |store: Arc<dyn Store>| async move {
        let mut tasks = Vec::new();
        for t in 0..6u8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut firsts = Vec::new();
                for i in 0..10u8 {
                    let out = s.commit_batch(&[Commit { changes: vec![], leaves: vec![leaf(t * 10 + i, &[]), leaf(t * 10 + i, &[])] }]).await.unwrap();
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

    the_database_answers => |store: Arc<dyn Store>| async move {
        store.ping().await.unwrap();
        assert!(matches!(store.backend(), "sqlite" | "postgres"));
    };
}
