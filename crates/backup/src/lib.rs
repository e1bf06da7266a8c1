//! # tsunagu-backup
//!
//! Backups of the whole database in one backend-neutral format, encrypted to an operator's
//! age key (docs/adr/0016-backups.md):
//!
//! - [`format`]: the plaintext, JSON lines — a header (format version, schema steps, source
//!   backend, tables with their columns and row counts, the ledger key and a signed tree
//!   head), the rows of each table with explicitly typed values, a SHA-256 trailer. Pure.
//! - [`seal`]: age encryption to an X25519 recipient, and decryption with an identity file.
//! - [`check`]: the ledger checks of `backup verify` (and of every restore).
//! - [`archive`] (feature `store`): taking a snapshot through `tsunagu-store` in one read
//!   transaction, and restoring one into an empty database in one transaction.
//!
//! Invariant: the keyring is never in a backup (its sealed columns stay sealed), and a
//! restore writes everything or nothing.

#[cfg(feature = "store")]
pub mod archive;
pub mod check;
pub mod format;
pub mod seal;

pub use check::{Report, VerifyError, verify};
pub use format::{FORMAT_VERSION, FormatError, Header, Reader, Table, Value, Writer};
