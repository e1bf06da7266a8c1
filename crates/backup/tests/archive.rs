//! Snapshots through the store on both backends: a backup restores to the same rows on
//! either backend, a restored database serves the recorded tree head, and a restore writes
//! nothing when the backup is changed or the target is not empty.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;
use tsunagu_backup::{Reader, archive, verify};
use tsunagu_crypto::aead::Keyring;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_ledger::leaf_hash;
use tsunagu_store::{
    Commit, Database, KeyRow, Migrations, NewLeaf, PLATFORM_MIGRATIONS, SqlStore, Store,
};

/// A store with a ledger key sealed by `keyring`, three leaves and a nonce.
async fn seed(store: &dyn Store, keyring: &Keyring) {
    let key = SigningKey::generate(Alg::EdDsa).unwrap();
    store
        .insert_key_if_absent(&KeyRow {
            name: "ledger-ed25519-1".into(),
            purpose: "ledger".into(),
            kid: key.kid().into(),
            alg: "EdDSA".into(),
            secret: keyring.seal(b"ledger-ed25519-1", key.pkcs8()).unwrap(),
            active: true,
            created_at: 1,
            activate_at: 1,
            retire_at: None,
            announcement: None,
        })
        .await
        .unwrap();
    for i in 0..3u8 {
        let input = vec![b'{', b'0' + i, b'}'];
        let commit = Commit::new().leaf(NewLeaf {
            hash: leaf_hash(&input),
            input,
            subjects: vec![],
            created_at: 10 + i64::from(i),
        });
        store.commit_batch(vec![commit]).await.unwrap();
    }
    store.put_nonce("n-1", "login", 99).await.unwrap();
}

async fn backup(db: &Database, keyring: &Keyring) -> Vec<u8> {
    let keyring = Keyring::from_json(&keyring.to_json()).unwrap();
    let (bytes, summary) = archive::create(db, keyring, Vec::new(), 1_790_000_000)
        .await
        .unwrap();
    assert_eq!(summary.header.ledger.sth.tree_size, 3);
    bytes
}

fn rows(bytes: &[u8]) -> BTreeMap<String, Vec<String>> {
    let mut reader = Reader::new(bytes).unwrap();
    let header = reader.header().clone();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while let Some((t, values)) = reader.next_row().unwrap() {
        out.entry(header.tables[t].name.clone())
            .or_default()
            .push(format!("{values:?}"));
    }
    for r in out.values_mut() {
        r.sort();
    }
    out
}

/// A database of each kind: SQLite in a temporary file, or a fresh PostgreSQL schema.
struct Target {
    _dir: tempfile::TempDir,
    schema: Option<(String, String)>,
}

impl Target {
    async fn new(kind: &str, label: &str) -> Option<Target> {
        let dir = tempfile::tempdir().unwrap();
        if kind == "sqlite" {
            return Some(Target {
                _dir: dir,
                schema: None,
            });
        }
        let Ok(url) = std::env::var("TSUNAGU_TEST_DATABASE_URL") else {
            println!("NOTICE: TSUNAGU_TEST_DATABASE_URL not set: PostgreSQL case skipped");
            return None;
        };
        let schema = format!("t_archive_{label}_{}", std::process::id());
        SqlStore::drop_schema(&url, &schema).await.unwrap();
        SqlStore::create_schema(&url, &schema).await.unwrap();
        Some(Target {
            _dir: dir,
            schema: Some((url, schema)),
        })
    }

    fn url(&self) -> Option<String> {
        self.schema.as_ref().map(|(url, schema)| {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}options=-c%20search_path%3D{schema}")
        })
    }

    async fn database(&self) -> Database {
        tsunagu_store::open_database(self.url().as_deref(), self._dir.path())
            .await
            .unwrap()
    }

    async fn store(&self) -> Arc<dyn Store> {
        tsunagu_store::open(self.url().as_deref(), self._dir.path())
            .await
            .unwrap()
    }

    async fn drop(self) {
        if let Some((url, schema)) = &self.schema {
            SqlStore::drop_schema(url, schema).await.unwrap();
        }
    }
}

async fn round_trip(from: &str, to: &str) {
    let label = format!("{from}_{to}");
    let Some(source) = Target::new(from, &format!("{label}_a")).await else {
        return;
    };
    let Some(target) = Target::new(to, &format!("{label}_b")).await else {
        return;
    };
    let keyring = Keyring::generate().unwrap();
    let store = source.store().await;
    seed(store.as_ref(), &keyring).await;
    let bytes = backup(store.database(), &keyring).await;
    let report = verify(bytes.as_slice()).unwrap();
    assert_eq!(report.leaves, 3);

    // A changed byte: refused, and nothing written.
    let mut changed = bytes.clone();
    let at = changed.len() - 80;
    changed[at] ^= 1;
    let db = target.database().await;
    let err = archive::restore(&db, vec![PLATFORM_MIGRATIONS], Cursor::new(changed), 1)
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    let tables = db
        .read(|c| {
            c.query_int(
                match c.dialect() {
                    tsunagu_store::Dialect::Sqlite => {
                        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
                    }
                    tsunagu_store::Dialect::Postgres => {
                        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
                    }
                },
                &[],
            )
        })
        .await
        .unwrap();
    assert_eq!(tables, 0, "a refused restore leaves the target empty");

    // A binary that knows fewer schema steps than the backup: refused, by name.
    let older = Migrations {
        capability: PLATFORM_MIGRATIONS.capability,
        steps: &PLATFORM_MIGRATIONS.steps[..3],
    };
    let err = archive::restore(&db, vec![older], Cursor::new(bytes.clone()), 1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("knows only 3"), "{err}");

    let summary = archive::restore(
        &db,
        vec![PLATFORM_MIGRATIONS],
        Cursor::new(bytes.clone()),
        1,
    )
    .await
    .unwrap();
    assert_eq!(summary.rows, report.rows);
    let err = archive::restore(
        &db,
        vec![PLATFORM_MIGRATIONS],
        Cursor::new(bytes.clone()),
        1,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");

    let restored = target.store().await;
    assert_eq!(restored.ledger_size().await.unwrap(), 3);
    let sth = restored.latest_sth().await.unwrap().unwrap();
    assert_eq!(sth.tree_size, report.header.ledger.sth.tree_size);
    assert_eq!(
        restored.keys("ledger").await.unwrap().len(),
        1,
        "the sealed key came back"
    );
    let again = backup(restored.database(), &keyring).await;
    assert_eq!(rows(&again), rows(&bytes), "the same rows on {to}");
    // The restored rows are live.
    assert!(restored.take_nonce("n-1", "login", 1).await.unwrap());
    source.drop().await;
    target.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restores_to_sqlite() {
    round_trip("sqlite", "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restores_to_postgres() {
    round_trip("postgres", "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restores_to_postgres() {
    round_trip("sqlite", "postgres").await;
}
