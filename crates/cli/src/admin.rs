//! `tsunagu admin`: committee members' tools on the command line.

use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use tsunagu_crypto::keys::{Alg, SigningKey};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Make a committee member's ES256 key and print the public JWK for `[governance]`.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign and send a vote on a service.
    Vote {
        /// The platform's URL.
        #[arg(long)]
        url: String,
        /// The member id, as configured.
        #[arg(long)]
        member: String,
        /// The member's key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        service: String,
        /// approve, reject, suspend or reinstate
        #[arg(long)]
        decision: String,
        #[arg(long, default_value = "")]
        comment: String,
        /// A lint error finding (its code) this approval overrides; repeat for each. An
        /// approval over error findings must name every one.
        #[arg(long = "override", value_name = "CODE")]
        overrides: Vec<String>,
    },
    /// The platform's keys: rotate one kind on a running deployment, or list them.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Operator staff (SPEC §8).
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
}

#[derive(Subcommand)]
pub enum StaffCommand {
    /// Create a staff account with one grant, on the deployment's own machine (the first
    /// security officer; works while the server runs). Prints one JSON object with the
    /// password, the TOTP secret and its otpauth URI, shown only this once.
    Create {
        /// The server's configuration file (the database and the keyring to use).
        #[arg(long)]
        config: PathBuf,
        /// The staff id (a-z, 0-9, '.', '_', '-').
        #[arg(long)]
        id: String,
        /// security_officer, auditor or operator
        #[arg(long)]
        role: String,
        /// An operator's scope: view, update or delete
        #[arg(long)]
        scope: Option<String>,
        /// Days the grant runs (at most `[admin] grant_max_days`).
        #[arg(long, default_value_t = 90)]
        days: u32,
    },
}

async fn staff(command: StaffCommand) -> anyhow::Result<()> {
    use tsunagu_staff::{AdminConfig, Role, Scope, Staff};
    match command {
        StaffCommand::Create {
            config,
            id,
            role,
            scope,
            days,
        } => {
            let role = Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!("--role: security_officer, auditor or operator, not `{role}`")
            })?;
            let scope = scope
                .map(|s| {
                    Scope::parse(&s).ok_or_else(|| {
                        anyhow::anyhow!("--scope: view, update or delete, not `{s}`")
                    })
                })
                .transpose()?;
            let mut config = load_config(&config)?;
            let platform = crate::server().platform(&mut config).await?;
            let admin: AdminConfig = config.source.section()?;
            let dsr: tsunagu_rights::DsrConfig = config.source.section()?;
            let staff = Staff::new(
                platform.clone(),
                admin,
                tsunagu_rights::Rights::new(platform, dsr),
            );
            let created = staff
                .bootstrap(&id, role, scope, days)
                .await
                .map_err(|r| anyhow::anyhow!("{}: {}", r.code, r.detail))?;
            println!("{}", serde_json::to_string(&created)?);
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Rotate a key (ADR 0019): `signing` publishes a new ES256 key that signs after
    /// `[keys] publish_ahead_seconds`; `ledger` announces a new tree-head key in the ledger;
    /// `sealing` adds a keyring key, seals every row again and removes the old keys.
    Rotate {
        /// The server's configuration file (the database and the keyring to use).
        #[arg(long)]
        config: PathBuf,
        /// sealing, signing or ledger
        #[arg(long)]
        what: String,
    },
    /// List the platform's keys and their states.
    Status {
        #[arg(long)]
        config: PathBuf,
    },
}

fn load_config(path: &std::path::Path) -> anyhow::Result<tsunagu_server::Config> {
    if !path.exists() {
        anyhow::bail!("configuration file {} does not exist", path.display());
    }
    Ok(crate::server().load_config(Some(path))?)
}

async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    use tsunagu_platform::rotation::{KeyAdmin, KeyKind};
    match command {
        KeysCommand::Rotate { config, what } => {
            let what: KeyKind = what.parse().map_err(anyhow::Error::msg)?;
            let config = load_config(&config)?;
            let admin = KeyAdmin::open(config.platform).await?;
            let progress = |line: String| eprintln!("{line}");
            let rotated = admin.rotate(what, &progress).await?;
            println!("{}", serde_json::to_string_pretty(&rotated)?);
        }
        KeysCommand::Status { config } => {
            let config = load_config(&config)?;
            let admin = KeyAdmin::open(config.platform).await?;
            let status = admin.status(tsunagu_platform::now()).await?;
            println!("{}", serde_json::to_string_pretty(&status)?);
        }
    }
    Ok(())
}

pub async fn run(command: AdminCommand, ca_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    match command {
        AdminCommand::Keygen { out } => {
            if out.exists() {
                anyhow::bail!("{} exists; choose another file", out.display());
            }
            let key = SigningKey::generate(Alg::Es256)?;
            write_private(&out, key.to_pkcs8_pem().as_bytes())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&key.public_jwk().to_value())?
            );
        }
        AdminCommand::Vote {
            url,
            member,
            key,
            service,
            decision,
            comment,
            overrides,
        } => {
            let member = tsunagu_client::committee::Member::load(&member, &key)
                .map_err(anyhow::Error::msg)?;
            let vote = member
                .sign_vote(&service, &decision, &comment, &overrides)
                .map_err(anyhow::Error::msg)?;
            let client = tsunagu_client::ApiClient::with_ca_file(&url, ca_file)?;
            let answer = client
                .post(
                    &format!("/v1/governance/services/{service}/votes"),
                    &json!({"vote_jws": vote}),
                    None,
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
        AdminCommand::Keys { command } => keys(command).await?,
        AdminCommand::Staff { command } => staff(command).await?,
    }
    Ok(())
}

fn write_private(path: &std::path::Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(data)?;
    Ok(())
}
