//! `tsunagu dev …`: the development commands, as the binary parses them.

use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DevCommand {
    /// The simulated JPKI CA.
    Jpki {
        #[command(subcommand)]
        command: crate::jpki::JpkiCommand,
    },
    /// Make a certificate authority for one run and a server certificate it signs:
    /// ca.pem, server.pem, server-key.pem (for `[server] tls_cert`/`tls_key`).
    Tls {
        /// Where to write the files.
        #[arg(long)]
        out: PathBuf,
        /// A DNS name or IP address of the server (repeat it; default localhost,
        /// 127.0.0.1 and ::1).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Also make a client certificate for a service on mutual TLS,
        /// client-NAME.pem and client-NAME-key.pem (repeat it).
        #[arg(long = "client")]
        clients: Vec<String>,
    },
    /// Fill a stopped platform's storage with approved benchmark services and consenting
    /// residents, for `dev load` (through the platform's services: the committee approves,
    /// residents enroll with simulated cards and sign their consents).
    Seed(crate::seed::SeedArgs),
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

/// Runs a `tsunagu dev` command.
pub async fn run(command: DevCommand) -> anyhow::Result<()> {
    match command {
        DevCommand::Jpki { command } => crate::jpki::run(command),
        DevCommand::Tls {
            out,
            hosts,
            clients,
        } => crate::tls::run(&out, &hosts, &clients),
        DevCommand::Seed(args) => crate::seed::run(args).await,
        DevCommand::OidcSeed(args) => crate::oidc_seed::run(args).await,
        DevCommand::Load {
            url,
            seed,
            duration,
            connections,
            presign,
        } => crate::load::load(&url, &seed, duration, connections, presign).await,
    }
}
