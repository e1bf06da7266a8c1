//! `tsunagu dev jpki`: the simulated JPKI certificate authority.

use clap::Subcommand;
use std::path::PathBuf;
use tsunagu_jpki_sim::{Card, IssueRequest, SimCa};

#[derive(Subcommand)]
pub enum DevCommand {
    /// The simulated JPKI CA.
    Jpki {
        #[command(subcommand)]
        command: JpkiCommand,
    },
    /// Fill a stopped platform's storage with approved benchmark services and consenting
    /// residents, for `dev load`.
    Seed {
        /// The platform's configuration (its storage is filled).
        #[arg(long)]
        config: PathBuf,
        /// How many residents, each with a signed consent.
        #[arg(long, default_value_t = 10_000)]
        residents: u64,
        /// Where to write the consumer's key and the residents' pairwise ids.
        #[arg(long)]
        out: PathBuf,
    },
    /// Prepare the OpenID Connect benchmark (bench/oidc) against a running `tsunagu serve`:
    /// two approved services (private_key_jwt, client_secret_basic), a verified resident
    /// logged in who consented once to each; writes one setup JSON per service.
    OidcSeed(crate::oidc_seed::OidcSeedArgs),
    /// Drive ticket requests against a running `tsunagu serve` and report throughput and latency.
    Load {
        /// The platform's public URL (the assertions' audience).
        #[arg(long)]
        url: String,
        /// The directory `dev seed --out` wrote.
        #[arg(long)]
        seed: PathBuf,
        /// Seconds to run.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// Concurrent connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Client assertions to sign before the run (each is single-use).
        #[arg(long, default_value_t = 400_000)]
        presign: usize,
    },
}

#[derive(Subcommand)]
pub enum JpkiCommand {
    /// Create a CA (ca.pem, ca-key.pem, ca.crl, state.json) in a directory.
    Init {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a signing certificate with the four basic items and write a card file.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// 氏名
        #[arg(long)]
        name: String,
        /// 住所
        #[arg(long)]
        address: String,
        /// 生年月日, YYYY-MM-DD
        #[arg(long)]
        birthdate: String,
        /// 性別: 1 male, 2 female, 3 other
        #[arg(long)]
        sex: String,
        /// Days of validity (default: until the 5th birthday after today, as JPKI).
        #[arg(long)]
        valid_days: Option<i64>,
        /// The card file to write.
        #[arg(long)]
        out: PathBuf,
        /// Signing password (6-16 letters and digits).
        #[arg(long, env = "TSUNAGU_CARD_PIN", hide_env_values = true)]
        pin: Option<String>,
    },
    /// Revoke a certificate and publish a new CRL.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        /// Serial number (hex), or give --card.
        #[arg(long, conflicts_with = "card")]
        serial: Option<String>,
        /// A card file whose certificate to revoke.
        #[arg(long)]
        card: Option<PathBuf>,
        /// affiliationChanged (a move), superseded, keyCompromise, cessationOfOperation,
        /// certificateHold, unspecified
        #[arg(long, default_value = "affiliationChanged")]
        reason: String,
    },
    /// Publish a fresh CRL (valid for a day).
    Crl {
        #[arg(long)]
        dir: PathBuf,
    },
}

pub async fn run(command: DevCommand) -> anyhow::Result<()> {
    let command = match command {
        DevCommand::Jpki { command } => command,
        DevCommand::Seed {
            config,
            residents,
            out,
        } => return crate::load::seed(&config, residents, &out).await,
        DevCommand::OidcSeed(args) => return crate::oidc_seed::run(args).await,
        DevCommand::Load {
            url,
            seed,
            duration,
            connections,
            presign,
        } => {
            return crate::load::load(&url, &seed, duration, connections, presign).await;
        }
    };
    match command {
        JpkiCommand::Init { dir } => {
            let ca = SimCa::init(&dir)?;
            println!("simulated JPKI CA created in {}", dir.display());
            println!("  trust anchor: {}", ca.certificate_path().display());
            println!("  CRL:          {}", ca.crl_path().display());
        }
        JpkiCommand::Issue {
            dir,
            name,
            address,
            birthdate,
            sex,
            valid_days,
            out,
            pin,
        } => {
            if out.exists() {
                anyhow::bail!("{} exists; choose another card file", out.display());
            }
            let pin = crate::secret(pin, "card signing password (6-16 letters and digits): ")?;
            let mut ca = SimCa::open(&dir)?;
            let card = ca.issue(
                &IssueRequest {
                    name,
                    address,
                    birthdate,
                    sex,
                    valid_days,
                    not_before: None,
                },
                &pin,
            )?;
            card.save(&out)?;
            let issued = ca
                .issued()
                .last()
                .map(|c| c.serial.clone())
                .unwrap_or_default();
            println!(
                "card written to {} (certificate serial {issued})",
                out.display()
            );
        }
        JpkiCommand::Revoke {
            dir,
            serial,
            card,
            reason,
        } => {
            let serial = match (serial, card) {
                (Some(s), _) => s,
                (None, Some(card)) => {
                    let card = Card::load(&card)?;
                    tsunagu_crypto::x509::certificate_serial_hex(&card.certificate_der()?)?
                }
                (None, None) => anyhow::bail!("give --serial or --card"),
            };
            let mut ca = SimCa::open(&dir)?;
            ca.revoke(&serial, &reason)?;
            println!(
                "revoked {serial} ({reason}); CRL written to {}",
                ca.crl_path().display()
            );
        }
        JpkiCommand::Crl { dir } => {
            let mut ca = SimCa::open(&dir)?;
            ca.publish_crl()?;
            println!("CRL written to {}", ca.crl_path().display());
        }
    }
    Ok(())
}
