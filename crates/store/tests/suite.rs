//! One suite, two backends: every test runs on SQLite (a fresh file) and, when
//! `TSUNAGU_TEST_DATABASE_URL` is set, on PostgreSQL (a fresh schema per test).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tsunagu_core::consent::ConsentStatus;
use tsunagu_core::identity::{AccountStatus, DeviceStatus, Level};
use tsunagu_core::service::{LegalBasis, ServiceKind, ServiceStatus};
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
        status: status.into(),
        items: vec!["allergy".into()],
        expires_at: 1_000,
        created_at: 100,
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
        basis: "consent:c1".into(),
        requester: None,
        reason: None,
        issued_at: 100,
        expires_at: 220,
        consumer_receipt: None,
        provider_receipt: None,
        state: "open".into(),
        updated_at: 100,
    }
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

    services_purposes_and_votes_round_trip => |store: Arc<dyn Store>| async move {
        let school = service("school", ServiceKind::Provider);
        let daycare = service("daycare", ServiceKind::Consumer);
        let purpose = PurposeRow {
            consumer_id: "daycare".into(), purpose_id: "allergy".into(), provider_id: "school".into(),
            legal_basis: LegalBasis::Consent, items: vec!["allergy".into()], definition: "{}".into(), terms_sha256: "t".into(),
        };
        commit(&store, vec![
            Change::InsertService(school.clone()),
            Change::InsertService(daycare.clone()),
            Change::InsertPurpose(purpose.clone()),
        ], vec![]).await.unwrap();
        assert_eq!(store.service("school").await.unwrap(), Some(school));
        assert_eq!(store.services(Some(ServiceStatus::PendingReview)).await.unwrap().len(), 2);
        assert!(store.services(Some(ServiceStatus::Approved)).await.unwrap().is_empty());
        assert_eq!(store.purpose("daycare", "allergy").await.unwrap(), Some(purpose.clone()));
        assert_eq!(store.purposes_of("daycare").await.unwrap(), vec![purpose.clone()]);
        assert_eq!(store.all_purposes().await.unwrap(), vec![purpose]);

        let vote = |member: &str, nonce: &str| VoteRow {
            member_id: member.into(), nonce: nonce.into(), service_id: "daycare".into(), round: 0,
            decision: "approve".into(), comment: "".into(), issued_at: 100, jws: "j".into(), created_at: 100,
        };
        commit(&store, vec![Change::InsertVote(vote("m1", "n1"))], vec![]).await.unwrap();
        assert!(matches!(commit(&store, vec![Change::InsertVote(vote("m1", "n1"))], vec![]).await, Err(StoreError::Conflict(_))), "a vote nonce is used once");
        commit(&store, vec![Change::InsertVote(vote("m2", "n1"))], vec![]).await.unwrap();
        assert_eq!(store.votes("daycare", 0).await.unwrap().len(), 2);
        let approve = |round| Change::SetServiceStatus { id: "daycare".into(), from: ServiceStatus::PendingReview, to: ServiceStatus::Approved, round, updated_at: 200 };
        assert!(matches!(commit(&store, vec![approve(1)], vec![]).await, Err(StoreError::Conflict(_))), "wrong round");
        commit(&store, vec![approve(0)], vec![]).await.unwrap();
        let s = store.service("daycare").await.unwrap().unwrap();
        assert_eq!((s.status, s.round), (ServiceStatus::Approved, 1));
        assert!(store.votes("daycare", 1).await.unwrap().is_empty(), "a new round starts empty");
    };

    a_resident_has_at_most_one_active_consent_per_purpose => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", Some("card-1")).await;
        commit(&store, vec![Change::InsertConsent(consent("c1", "a1", ConsentStatus::Active, 100))], vec![]).await.unwrap();
        assert!(matches!(
            commit(&store, vec![Change::InsertConsent(consent("c2", "a1", ConsentStatus::Active, 101))], vec![]).await,
            Err(StoreError::Conflict(_))
        ));
        commit(&store, vec![
            Change::SetConsentStatus { id: "c1".into(), from: ConsentStatus::Active, to: ConsentStatus::Superseded, updated_at: 101 },
            Change::InsertConsent(consent("c2", "a1", ConsentStatus::Active, 101)),
        ], vec![]).await.unwrap();
        assert_eq!(store.latest_consent("a1", "daycare", "allergy").await.unwrap().unwrap().id, "c2");
        commit(&store, vec![Change::SetConsentStatus { id: "c2".into(), from: ConsentStatus::Active, to: ConsentStatus::Revoked, updated_at: 102 }], vec![]).await.unwrap();
        let latest = store.latest_consent("a1", "daycare", "allergy").await.unwrap().unwrap();
        assert_eq!((latest.id.as_str(), latest.status), ("c2", ConsentStatus::Revoked), "the newest decides");
        let mut same_generation = consent("c9", "a1", ConsentStatus::Revoked, 101);
        same_generation.purpose_id = "allergy".into();
        assert!(matches!(commit(&store, vec![Change::InsertConsent(same_generation)], vec![]).await, Err(StoreError::Conflict(_))), "generations are unique");
        assert_eq!(store.consents_of("a1").await.unwrap().len(), 2);
        assert!(store.latest_consent("a1", "daycare", "other").await.unwrap().is_none());

        commit(&store, vec![Change::InsertConsent(consent("c3", "a1", ConsentStatus::Active, 103))], vec![]).await.unwrap();
        let set = |v| Change::SetConsentExpiry { id: "c3".into(), expected_version: v, expires_at: 5_000, updated_at: 104 };
        commit(&store, vec![set(0)], vec![]).await.unwrap();
        assert!(matches!(commit(&store, vec![set(0)], vec![]).await, Err(StoreError::Conflict(_))));
        assert_eq!(store.consent("c3").await.unwrap().unwrap().expires_at, 5_000);
        assert!(store.due_expirations(4_999, 10).await.unwrap().is_empty());
        assert_eq!(store.due_expirations(5_000, 10).await.unwrap().len(), 1);

        let nonce = || Change::UseResidentNonce { account_id: "a1".into(), nonce: "n".into(), expires_at: 500 };
        commit(&store, vec![nonce()], vec![]).await.unwrap();
        assert!(matches!(commit(&store, vec![nonce()], vec![]).await, Err(StoreError::Conflict(_))));
        assert_eq!(store.purge_resident_nonces(600).await.unwrap(), 1);
    };

    the_consent_feed_is_ordered_and_per_service => |store: Arc<dyn Store>| async move {
        commit(&store, vec![Change::InsertConsentEvent(event("c1", "granted", "daycare"))], vec![]).await.unwrap();
        commit(&store, vec![Change::InsertConsentEvent(event("c2", "granted", "clinic"))], vec![]).await.unwrap();
        commit(&store, vec![Change::InsertConsentEvent(event("c1", "revoked", "daycare"))], vec![]).await.unwrap();
        let daycare = store.consent_events("daycare", 0, 10).await.unwrap();
        assert_eq!(daycare.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(), vec!["granted", "revoked"]);
        assert!(daycare[0].seq < daycare[1].seq);
        let after = store.consent_events("daycare", daycare[0].seq, 10).await.unwrap();
        let history = store.consent_history("c1").await.unwrap();
        assert_eq!(history.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(), vec!["granted", "revoked"]);
        assert_eq!(after.len(), 1);
        assert_eq!(store.consent_events("school", 0, 10).await.unwrap().len(), 3, "the provider sees all its purposes");
        assert_eq!(store.consent_events("school", 0, 2).await.unwrap().len(), 2);
    };

    a_ticket_context_is_read_in_one_query => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", Some("card-1")).await;
        assert_eq!(store.ticket_context("daycare", "school", "allergy", "sub-1").await.unwrap(), None, "unknown consumer");
        commit(&store, vec![
            Change::InsertService(service("daycare", ServiceKind::Consumer)),
            Change::InsertService(service("school", ServiceKind::Provider)),
        ], vec![]).await.unwrap();
        let ctx = store.ticket_context("daycare", "school", "allergy", "sub-1").await.unwrap().unwrap();
        assert_eq!((ctx.consumer_status, ctx.provider_status, ctx.resident.clone()), (ServiceStatus::PendingReview, Some(ServiceStatus::PendingReview), None));
        assert_eq!(store.ticket_context("daycare", "nowhere", "allergy", "sub-1").await.unwrap().unwrap().provider_status, None);
        let link = Change::LinkSubject { sector: "daycare".into(), subject: "sub-1".into(), account_id: "a1".into(), created_at: 100 };
        commit(&store, vec![link.clone()], vec![]).await.unwrap();
        commit(&store, vec![link], vec![]).await.unwrap();
        assert_eq!(store.account_for_subject("daycare", "sub-1").await.unwrap().as_deref(), Some("a1"));
        assert_eq!(store.account_for_subject("school", "sub-1").await.unwrap(), None, "subjects are per sector");
        let ctx = store.ticket_context("daycare", "school", "allergy", "sub-1").await.unwrap().unwrap();
        let resident = ctx.resident.unwrap();
        assert_eq!((resident.account_id.as_str(), resident.level, ctx.consent), ("a1", Level::Verified, None));
        commit(&store, vec![Change::InsertConsent(consent("c1", "a1", ConsentStatus::Active, 100))], vec![]).await.unwrap();
        let ctx = store.ticket_context("daycare", "school", "allergy", "sub-1").await.unwrap().unwrap();
        assert_eq!(ctx.consent, Some(consent("c1", "a1", ConsentStatus::Active, 100)));
        assert_eq!(store.ticket_context("daycare", "school", "other", "sub-1").await.unwrap().unwrap().consent, None);
        commit(&store, vec![Change::SetServiceStatus { id: "school".into(), from: ServiceStatus::PendingReview, to: ServiceStatus::Suspended, round: 0, updated_at: 1 }], vec![]).await.unwrap();
        assert_eq!(store.ticket_context("daycare", "school", "allergy", "sub-1").await.unwrap().unwrap().provider_status, Some(ServiceStatus::Suspended));
    };

    tickets_take_one_receipt_per_side_and_close_once => |store: Arc<dyn Store>| async move {
        commit(&store, vec![Change::InsertTicket(ticket("t1"))], vec![]).await.unwrap();
        let receipt = |side| Change::SetReceipt { ticket_id: "t1".into(), side, payload_sha256: "ab".into(), updated_at: 150 };
        commit(&store, vec![receipt(ReceiptSide::Consumer)], vec![]).await.unwrap();
        assert!(matches!(commit(&store, vec![receipt(ReceiptSide::Consumer)], vec![]).await, Err(StoreError::Conflict(_))));
        commit(&store, vec![receipt(ReceiptSide::Provider)], vec![]).await.unwrap();
        let t = store.ticket("t1").await.unwrap().unwrap();
        assert_eq!((t.consumer_receipt.as_deref(), t.provider_receipt.as_deref()), (Some("ab"), Some("ab")));
        assert_eq!(store.overdue_tickets(300, 10).await.unwrap().len(), 1);
        let close = || Change::CloseTicket { ticket_id: "t1".into(), state: "completed".into(), updated_at: 160 };
        commit(&store, vec![close()], vec![]).await.unwrap();
        assert!(matches!(commit(&store, vec![close()], vec![]).await, Err(StoreError::Conflict(_))));
        assert!(store.overdue_tickets(300, 10).await.unwrap().is_empty());
        assert_eq!(store.tickets_of("a1", 10).await.unwrap().len(), 1);

        let jti = || Change::UseJti { key: "svc:jti-1".into(), expires_at: 500 };
        commit(&store, vec![jti()], vec![]).await.unwrap();
        assert!(matches!(commit(&store, vec![jti()], vec![]).await, Err(StoreError::Conflict(_))), "an assertion is used once");

        commit(&store, vec![Change::InsertAlert(AlertRow { seq: 0, kind: "rule_use".into(), service_id: Some("fire".into()), detail: "d".into(), created_at: 1 })], vec![]).await.unwrap();
        let alerts = store.alerts(0, 10).await.unwrap();
        assert_eq!(alerts.len(), 1);
        assert!(store.alerts(alerts[0].seq, 10).await.unwrap().is_empty());
    };

    ticket_batches_are_written_in_bulk_and_a_replayed_jti_refuses_only_its_commit => |store: Arc<dyn Store>| async move {
        enroll(&store, "a1", "d1", None).await;
        commit(&store, vec![Change::UseJti { key: "svc:used".into(), expires_at: 500 }], vec![]).await.unwrap();
        let issue = |n: u8, jti: &str| {
            let mut t = ticket(&format!("t{n}"));
            if n.is_multiple_of(2) {
                t.basis = "rule:fire".into();
                t.requester = Some("crew 7".into());
                t.reason = Some("a call".into());
            }
            Commit {
                changes: vec![
                    Change::UseJti { key: format!("svc:{jti}"), expires_at: 500 },
                    Change::InsertTicket(t),
                    Change::LinkSubject { sector: "school".into(), subject: format!("s{}", n % 2), account_id: "a1".into(), created_at: 100 },
                ],
                leaves: vec![leaf(n, &["a1"])],
            }
        };
        // All apply: one bulk statement per table, every field kept.
        let outcome = store.commit_batch(&[issue(1, "j1"), issue(2, "j2"), issue(3, "j3")]).await.unwrap();
        assert!(outcome.results.iter().all(Result::is_ok));
        assert_eq!(outcome.size_after - outcome.size_before, 3);
        for n in 1..=3u8 {
            let Commit { changes, .. } = issue(n, "x");
            let Change::InsertTicket(expected) = &changes[1] else { unreachable!() };
            assert_eq!(store.ticket(&format!("t{n}")).await.unwrap().as_ref(), Some(expected));
        }
        assert_eq!(store.account_for_subject("school", "s0").await.unwrap().as_deref(), Some("a1"));
        assert_eq!(store.account_for_subject("school", "s1").await.unwrap().as_deref(), Some("a1"));

        // A jti used before and one used twice within the batch: only those commits are refused.
        let outcome = store
            .commit_batch(&[issue(4, "j4"), issue(5, "used"), issue(6, "j6"), issue(7, "j6"), issue(8, "j8")])
            .await
            .unwrap();
        let refused: Vec<bool> = outcome.results.iter().map(|r| matches!(r, Err(StoreError::Conflict(_)))).collect();
        assert_eq!(refused, vec![false, true, false, true, false]);
        assert_eq!(outcome.size_after - outcome.size_before, 3, "refused commits add no leaves");
        for (n, present) in [(4, true), (5, false), (6, true), (7, false), (8, true)] {
            assert_eq!(store.ticket(&format!("t{n}")).await.unwrap().is_some(), present, "ticket t{n}");
        }
    };

    the_database_answers => |store: Arc<dyn Store>| async move {
        store.ping().await.unwrap();
        assert!(matches!(store.backend(), "sqlite" | "postgres"));
    };
}
