//! The `tsunagu` binary. It parses arguments and wires the crates together; the work is in
//! the crates.

mod admin;
mod backup;
mod connector;
mod ledger;
mod wallet;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "tsunagu",
    version,
    about = "Resident-sovereign digital ID and consent-driven data linkage for cities"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// CA certificates (PEM) to trust beside the usual roots when talking to the platform
    /// over HTTPS (a certificate from a private CA, or `tsunagu dev tls`).
    #[arg(long, global = true, env = "TSUNAGU_CA_FILE")]
    ca_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform.
    Serve {
        /// TOML configuration file (settings also come from TSUNAGU_<SECTION>__<KEY>).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Start a whole city on the embedded default and show it working.
    Demo {
        /// Leave the platform running afterwards and print where to find it.
        #[arg(long)]
        keep_running: bool,
    },
    /// A resident's command-line wallet.
    Wallet {
        #[command(subcommand)]
        command: wallet::WalletCommand,
    },
    /// The transparency ledger.
    Ledger {
        #[command(subcommand)]
        command: ledger::LedgerCommand,
    },
    /// The sidecar a service runs to exchange data through the platform.
    Connector(connector::ConnectorArgs),
    /// Backups of the whole database, encrypted to an operator's age key.
    Backup {
        #[command(subcommand)]
        command: backup::BackupCommand,
    },
    /// Committee members' tools.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Development tools (never for production).
    Dev {
        #[command(subcommand)]
        command: tsunagu_dev::DevCommand,
    },
}

/// The client commands' log filter: a refused certificate is reported in the command's error
/// (with its cause), so the TLS verifier's own log line would only repeat it.
const CLIENT_LOG: &str = "warn,rustls_platform_verifier=off";

fn init_logging(default: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// The server this binary runs: the platform's capabilities and the simulated card (which
/// stays off unless `[dev] simulated_jpki` is set).
fn server() -> tsunagu_server::Server {
    tsunagu_server::Server::new().with(tsunagu_dev::SimulatedCard)
}

async fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let server = server();
    let config = server.load_config(config.as_deref())?;
    init_logging("info,tower_http=warn", config.server.log_format == "json");
    let running = server.spawn(config).await?;
    eprintln!("tsunagu listening on {}", running.url());
    tokio::select! {
        result = running.wait() => result,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("shutting down");
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let ca_file = cli.ca_file.as_deref();
    let result = match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Demo { keep_running } => {
            init_logging("error", false);
            tsunagu_dev::demo::run(keep_running).await
        }
        Command::Wallet { command } => {
            init_logging(CLIENT_LOG, false);
            wallet::run(command, ca_file).await
        }
        Command::Ledger { command } => {
            init_logging(CLIENT_LOG, false);
            ledger::run(command, ca_file).await
        }
        Command::Connector(args) => {
            init_logging("info,tower_http=warn", false);
            connector::run(args, ca_file).await
        }
        Command::Backup { command } => {
            init_logging("warn", false);
            backup::run(command).await
        }
        Command::Admin { command } => {
            init_logging(CLIENT_LOG, false);
            admin::run(command, ca_file).await
        }
        Command::Dev { command } => {
            init_logging(CLIENT_LOG, false);
            tsunagu_dev::run(command).await
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// A secret from a flag or environment variable, or asked for on the terminal.
pub fn secret(given: Option<String>, prompt: &str) -> anyhow::Result<String> {
    tsunagu_client::secret(given, prompt).map_err(anyhow::Error::msg)
}
