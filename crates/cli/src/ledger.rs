//! `tsunagu ledger verify`: an auditor's monitor of the transparency ledger.

use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tsunagu_client::verify::monitor;

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Fetch the signed tree head, check its signature and that it extends the saved one,
    /// and save it.
    Verify {
        /// The platform's URL.
        #[arg(long)]
        url: String,
        /// Where the last verified tree head (and the pinned ledger key) is kept.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Keep checking every this many seconds.
        #[arg(long)]
        watch: Option<u64>,
    },
}

pub async fn run(command: LedgerCommand, ca_file: Option<&Path>) -> anyhow::Result<()> {
    let LedgerCommand::Verify { url, state, watch } = command;
    let client = tsunagu_client::ApiClient::with_ca_file(&url, ca_file)?;
    loop {
        let report = monitor(&client, state.as_deref()).await?;
        if !report.key_changes.is_empty() {
            println!(
                "the ledger key changed: {} (each change announced in the ledger under the key before it)",
                report.key_changes.join(" -> ")
            );
        }
        match report.previous {
            Some(prev) => println!(
                "ok: tree_size {} root {} signed by {}; consistent with the saved head of size {prev}",
                report.sth.tree_size, report.sth.root_hash, report.sth.key_id
            ),
            None => println!(
                "ok: tree_size {} root {} signed by {}{}",
                report.sth.tree_size,
                report.sth.root_hash,
                report.sth.key_id,
                if state.is_some() {
                    " (saved; the ledger key is now pinned)"
                } else {
                    ""
                }
            ),
        }
        match watch {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs.max(1))).await,
            None => return Ok(()),
        }
    }
}
