//! Backup and restore as an operator runs them: a resident enrolls on a running platform, an
//! auditor saves the tree head, `backup create` takes an online snapshot encrypted to an age
//! key, `backup verify` checks it (and refuses a wrong key, a cut or a changed file),
//! `backup restore` fills an empty database (SQLite → SQLite, PostgreSQL → PostgreSQL,
//! SQLite → PostgreSQL) and refuses a non-empty one; the restored database holds the same
//! rows, the restored server serves the recorded tree head, the auditor's `ledger verify`
//! passes and the resident's wallet still works.

mod common;

use common::{Http, Server, fails, free_port, ok, run_tsunagu as tsunagu};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An operator's age key pair, as `age-keygen` writes it: (identity file, recipient).
// X25519, as the issue asks (age 0.13 prefers its post-quantum hybrid).
#[allow(deprecated)]
fn age_key(path: &Path) -> String {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public().to_string();
    std::fs::write(
        path,
        format!(
            "# public key: {recipient}\n{}\n",
            id.to_string().expose_secret()
        ),
    )
    .unwrap();
    recipient
}

/// The header and every row of a backup, rows sorted per table (row order may differ
/// between backends; contents may not).
fn contents(
    backup: &Path,
    identity: &Path,
) -> (tsunagu_backup::Header, BTreeMap<String, Vec<String>>) {
    let ids = tsunagu_backup::seal::identities(&std::fs::read_to_string(identity).unwrap(), "id")
        .unwrap();
    let file = std::fs::File::open(backup).unwrap();
    let plain = tsunagu_backup::seal::decrypt(std::io::BufReader::new(file), &ids).unwrap();
    let mut reader = tsunagu_backup::Reader::new(plain).unwrap();
    let header = reader.header().clone();
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while let Some((t, values)) = reader.next_row().unwrap() {
        rows.entry(header.tables[t].name.clone())
            .or_default()
            .push(format!("{values:?}"));
    }
    for r in rows.values_mut() {
        r.sort();
    }
    (header, rows)
}

/// Where a platform keeps its data: SQLite in its data directory, or a PostgreSQL schema.
enum Target {
    Sqlite,
    /// The URL (search path set to the schema) and the schema.
    Postgres(String, String),
}

impl Target {
    /// An empty database of this kind for `label`.
    async fn empty(kind: &str, label: &str) -> Target {
        match kind {
            "sqlite" => Target::Sqlite,
            _ => {
                let url = std::env::var("TSUNAGU_TEST_DATABASE_URL").unwrap();
                let schema = format!("bk_{label}_{}", std::process::id());
                tsunagu_store::SqlStore::drop_schema(&url, &schema)
                    .await
                    .unwrap();
                tsunagu_store::SqlStore::create_schema(&url, &schema)
                    .await
                    .unwrap();
                let sep = if url.contains('?') { '&' } else { '?' };
                Target::Postgres(
                    format!("{url}{sep}options=-c%20search_path%3D{schema}"),
                    schema,
                )
            }
        }
    }

    fn storage_toml(&self) -> String {
        match self {
            Target::Sqlite => String::new(),
            Target::Postgres(url, _) => format!("[storage]\ndatabase_url = \"{url}\"\n"),
        }
    }

    async fn drop(&self) {
        if let Target::Postgres(_, schema) = self {
            let url = std::env::var("TSUNAGU_TEST_DATABASE_URL").unwrap();
            tsunagu_store::SqlStore::drop_schema(&url, schema)
                .await
                .unwrap();
        }
    }
}

/// A platform's directory with its configuration (`tsunagu.toml`), listening on `port`.
fn site(root: &Path, name: &str, port: u16, target: &Target) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("tsunagu.toml"),
        format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\n{}[identity]\njpki_trust_anchors = [\"../ca/ca.pem\"]\njpki_crls = [\"../ca/ca.crl\"]\n",
            target.storage_toml()
        ),
    )
    .unwrap();
    dir
}

fn start(dir: &Path, port: u16) -> Server {
    let text = std::fs::read_to_string(dir.join("tsunagu.toml")).unwrap();
    Server::start(dir, &text, port)
}

async fn scenario(from: &str, to: &str) {
    let root_dir = tempfile::tempdir().unwrap();
    let root = root_dir.path();
    let label = format!("{from}_{to}");
    ok(tsunagu(root, &["dev", "jpki", "init", "--dir", "ca"], &[]));
    let card_pin = [("TSUNAGU_CARD_PIN", "abc123")];
    ok(tsunagu(
        root,
        &[
            "dev",
            "jpki",
            "issue",
            "--dir",
            "ca",
            "--name",
            "前橋　花子",
            "--address",
            "群馬県前橋市大手町二丁目12番1号",
            "--birthdate",
            "1988-04-01",
            "--sex",
            "2",
            "--out",
            "card.json",
        ],
        &card_pin,
    ));

    // ---- a running platform with a resident and an auditor
    let port = free_port();
    let source = Target::empty(from, &format!("{label}_src")).await;
    let src = site(root, "src", port, &source);
    let server = start(&src, port);
    let url = server.url.clone();
    let pins = [
        ("TSUNAGU_WALLET_PIN", "2468"),
        ("TSUNAGU_CARD_PIN", "abc123"),
    ];
    let enrolled = ok(tsunagu(
        root,
        &[
            "wallet",
            "enroll",
            "--wallet",
            "phone.json",
            "--url",
            &url,
            "--card",
            "card.json",
        ],
        &pins,
    ));
    assert!(enrolled.contains("level verified"), "{enrolled}");
    ok(tsunagu(
        root,
        &["wallet", "login", "--wallet", "phone.json"],
        &pins,
    ));
    ok(tsunagu(
        root,
        &["ledger", "verify", "--url", &url, "--state", "auditor.json"],
        &[],
    ));

    // ---- an online backup, encrypted to the operator's key
    let recipient = age_key(&root.join("operator.key"));
    let created = ok(tsunagu(
        root,
        &[
            "backup",
            "create",
            "--config",
            "src/tsunagu.toml",
            "--recipient",
            &recipient,
            "--out",
            "b1.age",
        ],
        &[],
    ));
    assert!(created.contains("backup written to b1.age"), "{created}");
    let bytes = std::fs::read(root.join("b1.age")).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1"), "an age file");
    let keyring = std::fs::read(src.join("data/keyring.json")).unwrap();
    let err = fails(tsunagu(
        root,
        &[
            "backup",
            "create",
            "--config",
            "src/tsunagu.toml",
            "--recipient",
            &recipient,
            "--out",
            "b1.age",
        ],
        &[],
    ));
    assert!(err.contains("never overwritten"), "{err}");
    drop(server);

    let verified = ok(tsunagu(
        root,
        &[
            "backup",
            "verify",
            "--in",
            "b1.age",
            "--identity",
            "operator.key",
        ],
        &[],
    ));
    assert!(verified.contains("leaves rebuild it"), "{verified}");
    let (header, rows) = contents(&root.join("b1.age"), &root.join("operator.key"));
    assert_eq!(header.source_backend, from);
    assert_eq!(rows["accounts"].len(), 1, "{:?}", rows.keys());
    assert!(!rows.contains_key("tsunagu_schema"));

    // ---- bad input is refused, readably
    if from == "sqlite" && to == "sqlite" {
        age_key(&root.join("other.key"));
        let err = fails(tsunagu(
            root,
            &[
                "backup",
                "verify",
                "--in",
                "b1.age",
                "--identity",
                "other.key",
            ],
            &[],
        ));
        assert!(err.contains("does not match"), "{err}");
        std::fs::write(root.join("cut.age"), &bytes[..bytes.len() - 100]).unwrap();
        let err = fails(tsunagu(
            root,
            &[
                "backup",
                "verify",
                "--in",
                "cut.age",
                "--identity",
                "operator.key",
            ],
            &[],
        ));
        assert!(err.contains("cut short or was changed"), "{err}");
        let mut changed = bytes.clone();
        let at = bytes.len() / 2;
        changed[at] ^= 0x20;
        std::fs::write(root.join("changed.age"), &changed).unwrap();
        fails(tsunagu(
            root,
            &[
                "backup",
                "verify",
                "--in",
                "changed.age",
                "--identity",
                "operator.key",
            ],
            &[],
        ));
        // A cut file restores nothing: the target stays empty and takes a good backup after.
        let cut_site = site(root, "cut", free_port(), &Target::Sqlite);
        fails(tsunagu(
            root,
            &[
                "backup",
                "restore",
                "--in",
                "cut.age",
                "--identity",
                "operator.key",
                "--config",
                "cut/tsunagu.toml",
            ],
            &[],
        ));
        ok(tsunagu(
            root,
            &[
                "backup",
                "restore",
                "--in",
                "b1.age",
                "--identity",
                "operator.key",
                "--config",
                "cut/tsunagu.toml",
            ],
            &[],
        ));
        assert!(cut_site.join("data/tsunagu.db").exists());
        // The source is not empty.
        let err = fails(tsunagu(
            root,
            &[
                "backup",
                "restore",
                "--in",
                "b1.age",
                "--identity",
                "operator.key",
                "--config",
                "src/tsunagu.toml",
            ],
            &[],
        ));
        assert!(err.contains("not empty"), "{err}");
    }

    // ---- restore into an empty database, with the keyring put back apart
    let target = Target::empty(to, &format!("{label}_dst")).await;
    let dst = site(root, "dst", port, &target);
    let restored = ok(tsunagu(
        root,
        &[
            "backup",
            "restore",
            "--in",
            "b1.age",
            "--identity",
            "operator.key",
            "--config",
            "dst/tsunagu.toml",
        ],
        &[],
    ));
    assert!(restored.contains("restored"), "{restored}");
    assert!(restored.contains("no keyring"), "{restored}");
    let err = fails(tsunagu(
        root,
        &[
            "backup",
            "restore",
            "--in",
            "b1.age",
            "--identity",
            "operator.key",
            "--config",
            "dst/tsunagu.toml",
        ],
        &[],
    ));
    assert!(err.contains("not empty"), "{err}");
    std::fs::create_dir_all(dst.join("data")).unwrap();
    std::fs::write(dst.join("data/keyring.json"), &keyring).unwrap();

    // The same rows, taken again from the restored database.
    ok(tsunagu(
        root,
        &[
            "backup",
            "create",
            "--config",
            "dst/tsunagu.toml",
            "--recipient",
            &recipient,
            "--out",
            "b2.age",
        ],
        &[],
    ));
    let (header2, rows2) = contents(&root.join("b2.age"), &root.join("operator.key"));
    assert_eq!(header2.source_backend, to);
    assert_eq!(header2.schema, header.schema);
    assert_eq!(header2.ledger, header.ledger, "the same tree head");
    assert_eq!(rows2, rows, "the restored database holds the same rows");

    // ---- the restored platform serves the recorded tree head; the auditor agrees
    let server = start(&dst, port);
    let (status, sth) = Http::new(&server.url).get("/v1/ledger/sth", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        sth,
        serde_json::to_value(&header.ledger.sth).unwrap(),
        "the restored tree head is the recorded one"
    );
    let audited = ok(tsunagu(
        root,
        &[
            "ledger",
            "verify",
            "--url",
            &server.url,
            "--state",
            "auditor.json",
        ],
        &[],
    ));
    assert!(
        audited.contains("consistent with the saved head"),
        "{audited}"
    );
    let status = ok(tsunagu(
        root,
        &["wallet", "status", "--wallet", "phone.json"],
        &pins,
    ));
    assert!(status.contains("前橋　花子"), "{status}");
    drop(server);
    source.drop().await;
    target.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_sqlite_to_sqlite() {
    scenario("sqlite", "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_postgres_to_postgres() {
    if std::env::var("TSUNAGU_TEST_DATABASE_URL").is_err() {
        println!("NOTICE: TSUNAGU_TEST_DATABASE_URL not set: the PostgreSQL backup run is skipped");
        return;
    }
    scenario("postgres", "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_sqlite_to_postgres() {
    if std::env::var("TSUNAGU_TEST_DATABASE_URL").is_err() {
        println!("NOTICE: TSUNAGU_TEST_DATABASE_URL not set: the PostgreSQL backup run is skipped");
        return;
    }
    scenario("sqlite", "postgres").await;
}
