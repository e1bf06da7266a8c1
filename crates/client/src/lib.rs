//! # tsunagu-client
//!
//! What runs on the resident's and the auditor's side:
//!
//! - [`wallet`]: the CLI wallet file: a P-256 device key sealed under a PIN (locks after 3
//!   wrong PINs), the device credential, the account id;
//! - [`api`]: an HTTP client for the platform's resident and ledger endpoints, returning
//!   problem+json refusals as values;
//! - [`committee`]: a committee member's signed votes;
//! - [`verify`]: offline checks of what the platform serves: signed tree heads, a history
//!   item's inclusion, and a saved tree head's consistency with the current one (the
//!   monitor behind `tsunagu ledger verify`).
//!
//! Invariant: no server code. Everything here talks to the platform over HTTP like any
//! other client would.

pub mod api;
pub mod committee;
pub mod verify;
pub mod wallet;

pub use api::{ApiClient, ClientError};
pub use wallet::{Wallet, WalletError};

/// A secret from a flag or environment variable, or else asked for on the terminal (a
/// wallet PIN, a card's signing password).
pub fn secret(given: Option<String>, prompt: &str) -> Result<String, String> {
    match given {
        Some(s) => Ok(s),
        None => rpassword::prompt_password(prompt).map_err(|e| {
            format!(
                "cannot read the secret from the terminal ({e}); pass it with the flag or environment variable"
            )
        }),
    }
}
