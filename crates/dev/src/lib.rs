//! # tsunagu-dev
//!
//! Development tools, wired into the binary and never into the production server:
//!
//! - [`demo`]: `tsunagu demo`, a whole city on the embedded default, narrated and checked.
//! - [`seed`] and [`load`]: the ticket benchmark (`tsunagu dev seed`, `tsunagu dev load`);
//!   the seeder goes through the platform's services as the committee and residents would.
//! - [`oidc_seed`]: the OpenID Connect benchmark's setup against a running server.
//! - [`jpki`]: the simulated J-LIS's commands (`tsunagu dev jpki …`).
//! - [`tls`]: a CA and a server certificate for one run (`tsunagu dev tls`).
//!
//! The simulated card ([`SimulatedCard`], the `dev-card` capability) is a crate of its own,
//! `tsunagu-dev-card`, as a capability never depends on the server; this crate uses both to
//! run a city.
//!
//! Invariant: `tsunagu-server` and the capability crates never depend on this crate (nor on
//! `tsunagu-jpki-sim`); only the binary does.

mod command;
pub mod demo;
pub mod jpki;
pub mod load;
pub mod oidc_seed;
pub mod seed;
pub mod tls;

pub use command::{DevCommand, run};
pub use tsunagu_dev_card::{DevConfig, SimulatedCard};
