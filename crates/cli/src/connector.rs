//! `tsunagu connector`: the sidecar a service runs (see `tsunagu_connector::sidecar`).

use clap::{Args, Subcommand};
use std::path::PathBuf;
use tsunagu_connector::sidecar::{self, SidecarConfig};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConnectorArgs {
    #[command(subcommand)]
    command: Option<ConnectorCommand>,
    /// The sidecar's TOML configuration.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override the provider's upstream URL.
    #[arg(long)]
    upstream: Option<String>,
}

#[derive(Subcommand)]
enum ConnectorCommand {
    /// Make a service's keys and print the JWKS for its application.
    Keygen {
        /// Where to write the ES256 signing key (PKCS#8 PEM).
        #[arg(long)]
        out: PathBuf,
        /// Also make a P-256 key for receiving encrypted payloads.
        #[arg(long)]
        encryption_out: Option<PathBuf>,
    },
}

pub async fn run(args: ConnectorArgs, ca_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    match (args.command, args.config) {
        (
            Some(ConnectorCommand::Keygen {
                out,
                encryption_out,
            }),
            _,
        ) => {
            let jwks = sidecar::keygen(&out, encryption_out.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&jwks)?);
            Ok(())
        }
        (None, Some(path)) => {
            let mut config = SidecarConfig::load(&path)?;
            if let (Some(url), Some(provider)) = (args.upstream, config.provider.as_mut()) {
                provider.upstream = url;
            }
            if let Some(ca_file) = ca_file {
                config.ca_file = Some(ca_file.to_owned());
            }
            let running = sidecar::start(&config).await?;
            eprintln!(
                "tsunagu connector ({:?}) for {} listening on {}",
                config.role, config.service_id, running.addr
            );
            tokio::select! {
                result = running.wait() => result,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
        (None, None) => anyhow::bail!("give --config FILE, or `tsunagu connector keygen`"),
    }
}
