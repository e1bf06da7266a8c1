//! # tsunagu-dev
//!
//! Development tools, wired into the binary and never into the production server:
//!
//! - [`SimulatedCard`], the `dev-card` capability: `POST /dev/simulated-card` issues a card of
//!   the simulated J-LIS and signs an enrollment binding with it, so that a browser can be
//!   proofed without a card reader. It is on only when `[dev] simulated_jpki` names a CA.
//! - [`demo`]: `tsunagu demo`, a whole city on the embedded default, narrated and checked.
//! - [`seed`] and [`load`]: the ticket benchmark (`tsunagu dev seed`, `tsunagu dev load`);
//!   the seeder goes through the platform's services as the committee and residents would.
//! - [`oidc_seed`]: the OpenID Connect benchmark's setup against a running server.
//! - [`jpki`]: the simulated J-LIS's commands (`tsunagu dev jpki …`).
//!
//! Invariant: `tsunagu-server` and the capability crates never depend on this crate (nor on
//! `tsunagu-jpki-sim`); only the binary does.

mod card;
mod command;
pub mod demo;
pub mod jpki;
pub mod load;
pub mod oidc_seed;
pub mod seed;

pub use card::{DevConfig, SimulatedCard};
pub use command::{DevCommand, run};
