//! `tsunagu admin`: committee members' tools on the command line.

use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::{jws, random};

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
    },
}

pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
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
        } => {
            let pem = std::fs::read_to_string(&key)
                .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
            let signing = SigningKey::from_pkcs8_pem(Alg::Es256, &pem)?;
            let mut header = serde_json::Map::new();
            header.insert("kid".into(), json!(member));
            header.insert("typ".into(), json!("tsunagu-vote+jwt"));
            let payload = json!({
                "service_id": service,
                "decision": decision,
                "comment": comment,
                "issued_at": tsunagu_connector::now(),
                "nonce": random::token(16)?,
            });
            let vote =
                jws::sign_with_header(&signing, header, &tsunagu_crypto::jcs::to_vec(&payload)?)?;
            let client = tsunagu_client::ApiClient::new(&url);
            let answer = client
                .post(
                    &format!("/v1/governance/services/{service}/votes"),
                    &json!({"vote_jws": vote}),
                    None,
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
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
