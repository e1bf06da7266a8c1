//! `tsunagu dev jpki`: the simulated J-LIS's certificate authority on the command line.

use clap::Subcommand;
use std::path::PathBuf;
use tsunagu_jpki_sim::{Card, IssueRequest, SimCa};

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
        /// The serial (hex) of the same person's earlier certificate, which this one
        /// succeeds (a change of name or address): it is revoked (affiliationChanged) and
        /// J-LIS's serial-number linkage (links.json) records the succession.
        #[arg(long)]
        replaces: Option<String>,
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

/// Runs a `tsunagu dev jpki` command.
pub fn run(command: JpkiCommand) -> anyhow::Result<()> {
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
            replaces,
        } => {
            if out.exists() {
                anyhow::bail!("{} exists; choose another card file", out.display());
            }
            let pin =
                tsunagu_client::secret(pin, "card signing password (6-16 letters and digits): ")
                    .map_err(anyhow::Error::msg)?;
            let mut ca = SimCa::open(&dir)?;
            if let Some(old) = &replaces
                && !ca
                    .issued()
                    .iter()
                    .any(|c| c.serial.eq_ignore_ascii_case(old))
            {
                anyhow::bail!(
                    "--replaces {old}: no certificate with that serial was issued by this CA"
                );
            }
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
            if let Some(old) = replaces {
                ca.link(&old, &issued)?;
                ca.revoke(&old, "affiliationChanged")?;
                println!(
                    "{old} revoked (affiliationChanged) and linked to {issued} in {}",
                    ca.links_path().display()
                );
            }
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
