//! `tsunagu backup create | verify | restore`: the whole database, SQLite or PostgreSQL, in
//! one format, encrypted to an operator's age key (docs/operations.md, "Backup and restore").

use anyhow::Context;
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};
use tsunagu_backup::{archive, seal};

#[derive(Subcommand)]
pub enum BackupCommand {
    /// Take a consistent snapshot of the running platform's database, encrypted to an age key.
    Create {
        /// The server's configuration file (the database and the keyring to use).
        #[arg(long)]
        config: PathBuf,
        /// The age public key to encrypt to (age1…); keep its private half off the servers.
        #[arg(long)]
        recipient: String,
        /// The backup file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a backup without restoring it.
    Verify {
        #[arg(long = "in")]
        input: PathBuf,
        /// The age identity file (as age-keygen writes it).
        #[arg(long)]
        identity: PathBuf,
    },
    /// Restore a backup into the empty database the configuration names.
    Restore {
        #[arg(long = "in")]
        input: PathBuf,
        /// The age identity file (as age-keygen writes it).
        #[arg(long)]
        identity: PathBuf,
        /// The configuration of the server that will run on the restored database.
        #[arg(long)]
        config: PathBuf,
    },
}

pub async fn run(command: BackupCommand) -> anyhow::Result<()> {
    match command {
        BackupCommand::Create {
            config,
            recipient,
            out,
        } => create(&config, &recipient, &out).await,
        BackupCommand::Verify { input, identity } => verify(&input, &identity),
        BackupCommand::Restore {
            input,
            identity,
            config,
        } => restore(&input, &identity, &config).await,
    }
}

fn load_config(path: &Path) -> anyhow::Result<tsunagu_server::Config> {
    if !path.exists() {
        anyhow::bail!("configuration file {} does not exist", path.display());
    }
    Ok(crate::server().load_config(Some(path))?)
}

async fn create(config: &Path, recipient: &str, out: &Path) -> anyhow::Result<()> {
    let recipient = seal::recipient(recipient)?;
    let config = load_config(config)?;
    let storage = &config.storage;
    if let Some(path) =
        tsunagu_store::sqlite_path(storage.database_url.as_deref(), &storage.data_dir)
        && !path.exists()
    {
        anyhow::bail!("there is no database at {}", path.display());
    }
    let keyring_path = config.keyring_path();
    let keyring = std::fs::read_to_string(&keyring_path)
        .map_err(|e| anyhow::anyhow!("keyring {}: {e}", keyring_path.display()))
        .and_then(|text| {
            tsunagu_crypto::aead::Keyring::from_json(&text)
                .map_err(|e| anyhow::anyhow!("keyring {}: {e}", keyring_path.display()))
        })?;
    // Written beside the target and renamed when complete: a failed backup leaves no file
    // that looks like one.
    let partial = out.with_extension("partial");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("{} (a backup is never overwritten)", out.display()))?;
    drop(file);
    let result = async {
        let file =
            std::fs::File::create(&partial).with_context(|| partial.display().to_string())?;
        let sealed = seal::encrypt(std::io::BufWriter::new(file), &recipient)?;
        let db = tsunagu_store::open_database(storage.database_url.as_deref(), &storage.data_dir)
            .await?;
        let (sealed, summary) =
            archive::create(&db, keyring, sealed, tsunagu_platform::now()).await?;
        let mut file = sealed.finish()?;
        file.flush()?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&partial, out)?;
        anyhow::Ok(summary)
    }
    .await;
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
    };
    let sth = &summary.header.ledger.sth;
    println!(
        "backup written to {}: {} tables, {} rows from {}; tree head size {} root {}",
        out.display(),
        summary.header.tables.len(),
        summary.rows,
        summary.header.source_backend,
        sth.tree_size,
        sth.root_hash
    );
    Ok(())
}

fn open(input: &Path, identity: &Path) -> anyhow::Result<impl std::io::BufRead + Send + 'static> {
    let text = std::fs::read_to_string(identity)
        .map_err(|e| anyhow::anyhow!("identity file {}: {e}", identity.display()))?;
    let identities = seal::identities(&text, &identity.display().to_string())?;
    let file = std::fs::File::open(input)
        .map_err(|e| anyhow::anyhow!("backup {}: {e}", input.display()))?;
    Ok(seal::decrypt(std::io::BufReader::new(file), &identities)?)
}

fn verify(input: &Path, identity: &Path) -> anyhow::Result<()> {
    let report = tsunagu_backup::verify(open(input, identity)?)?;
    let h = &report.header;
    println!(
        "ok: format version {}, taken {} from {}; schema {}",
        h.version,
        tsunagu_platform::iso8601(h.created_at),
        h.source_backend,
        h.schema
            .iter()
            .map(|(c, v)| format!("{c} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for t in &h.tables {
        println!("  {:<20} {:>9} rows", t.name, t.rows);
    }
    println!(
        "ok: {} rows match their counts and the digest; tree head size {} root {} signed by {}; {} leaves rebuild it",
        report.rows,
        h.ledger.sth.tree_size,
        h.ledger.sth.root_hash,
        h.ledger.sth.key_id,
        report.leaves
    );
    Ok(())
}

async fn restore(input: &Path, identity: &Path, config: &Path) -> anyhow::Result<()> {
    let plaintext = open(input, identity)?;
    let config = load_config(config)?;
    let storage = &config.storage;
    if let Some(path) =
        tsunagu_store::sqlite_path(storage.database_url.as_deref(), &storage.data_dir)
        && let Some(parent) = path.parent()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| anyhow::anyhow!("{}: {e}", parent.display()))?;
    }
    let db =
        tsunagu_store::open_database(storage.database_url.as_deref(), &storage.data_dir).await?;
    let summary = archive::restore(
        &db,
        std::iter::once(tsunagu_store::PLATFORM_MIGRATIONS)
            .chain(crate::server().migrations())
            .collect(),
        plaintext,
        tsunagu_platform::now(),
    )
    .await?;
    let sth = &summary.header.ledger.sth;
    println!(
        "restored {} rows in {} tables (taken {} from {}); tree head size {} root {}",
        summary.rows,
        summary.header.tables.len(),
        tsunagu_platform::iso8601(summary.header.created_at),
        summary.header.source_backend,
        sth.tree_size,
        sth.root_hash
    );
    let keyring = config.keyring_path();
    if !keyring.exists() {
        println!(
            "note: no keyring at {}: put the platform's keyring there (it is kept apart from backups) before starting the server",
            keyring.display()
        );
    }
    Ok(())
}
