//! `tsunagu wallet`: a resident's device on the command line.

use clap::Subcommand;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tsunagu_client::{ApiClient, Wallet};
use tsunagu_jpki_sim::Card;

#[derive(Subcommand)]
pub enum WalletCommand {
    /// Create a device key and enroll it: provisional without --card, verified with it.
    /// With an existing wallet and --card, upgrades or re-proofs the ID.
    Enroll {
        /// Wallet file (created if missing).
        #[arg(long)]
        wallet: PathBuf,
        /// Platform URL (for a new wallet).
        #[arg(long)]
        url: Option<String>,
        /// A card file to proof the ID with (its signing certificate signs the binding).
        #[arg(long)]
        card: Option<PathBuf>,
        /// Wallet PIN.
        #[arg(long, env = "TSUNAGU_WALLET_PIN", hide_env_values = true)]
        pin: Option<String>,
        /// The card's signing password.
        #[arg(long, env = "TSUNAGU_CARD_PIN", hide_env_values = true)]
        card_pin: Option<String>,
    },
    /// Log in and print the access token.
    Login {
        #[arg(long)]
        wallet: PathBuf,
        #[arg(long, env = "TSUNAGU_WALLET_PIN", hide_env_values = true)]
        pin: Option<String>,
    },
    /// Log in and show the account, its devices and recent history.
    Status {
        #[arg(long)]
        wallet: PathBuf,
        #[arg(long, env = "TSUNAGU_WALLET_PIN", hide_env_values = true)]
        pin: Option<String>,
    },
}

pub async fn run(command: WalletCommand, ca_file: Option<&Path>) -> anyhow::Result<()> {
    match command {
        WalletCommand::Enroll {
            wallet,
            url,
            card,
            pin,
            card_pin,
        } => {
            let pin = crate::secret(pin, "wallet PIN: ")?;
            let mut w = if wallet.exists() {
                let mut w = Wallet::load(&wallet)?;
                w.unlock(&pin)?;
                w
            } else {
                let url = url.ok_or_else(|| anyhow::anyhow!("a new wallet needs --url"))?;
                Wallet::create(&wallet, &pin, &url)?
            };
            let client = ApiClient::with_ca_file(&w.server, ca_file)?;
            let jwk = w.device_jwk()?;
            let answer = match card {
                Some(card_path) => {
                    let mut card = Card::load(&card_path)?;
                    let card_pin = crate::secret(card_pin, "card signing password: ")?;
                    let result = client.enroll(&jwk, Some((&mut card, &card_pin))).await;
                    card.save(&card_path)?;
                    result?
                }
                None => client.enroll(&jwk, None).await?,
            };
            remember(&mut w, &answer)?;
            println!(
                "enrolled: account {} device {} level {} (credential until {})",
                w.account_id.as_deref().unwrap_or("?"),
                w.device_id.as_deref().unwrap_or("?"),
                w.level.as_deref().unwrap_or("?"),
                w.credential_expires_at.unwrap_or(0)
            );
        }
        WalletCommand::Login { wallet, pin } => {
            let (_, token) = login(&wallet, pin, ca_file).await?;
            println!("{token}");
        }
        WalletCommand::Status { wallet, pin } => {
            let (client, token) = login(&wallet, pin, ca_file).await?;
            let me = client.get("/v1/me", Some(&token)).await?;
            println!("{}", serde_json::to_string_pretty(&me)?);
            let history = client.get("/v1/me/history?limit=20", Some(&token)).await?;
            println!("recent history:");
            for item in history["items"].as_array().into_iter().flatten() {
                println!(
                    "  #{:<6} {:<28} {}",
                    item["leaf_index"],
                    item["type"].as_str().unwrap_or("?"),
                    item["reason"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

fn remember(w: &mut Wallet, answer: &Value) -> anyhow::Result<()> {
    let field = |name: &str| answer[name].as_str().map(str::to_owned);
    w.account_id = field("account_id");
    w.device_id = field("device_id");
    w.level = field("level");
    w.credential = field("credential");
    w.credential_expires_at = answer["expires_at"].as_i64();
    w.save()?;
    Ok(())
}

async fn login(
    path: &Path,
    pin: Option<String>,
    ca_file: Option<&Path>,
) -> anyhow::Result<(ApiClient, String)> {
    let mut w = Wallet::load(path)?;
    let credential = w.credential.clone().ok_or_else(|| {
        anyhow::anyhow!("this wallet is not enrolled yet: run `tsunagu wallet enroll`")
    })?;
    let pin = crate::secret(pin, "wallet PIN: ")?;
    let key = w.unlock(&pin)?;
    let client = ApiClient::with_ca_file(&w.server, ca_file)?;
    let answer = client.login(&credential, &key).await?;
    Ok((client.clone(), ApiClient::token(&answer)?))
}
