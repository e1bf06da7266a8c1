//! # tsunagu-core
//!
//! The domain of tsunagu as plain values and pure functions: identity levels and states,
//! the four basic items, the lock-out rule, the enrollment binding decision, ledger event
//! shapes, and the stable error codes every layer reports.
//!
//! Invariant: this crate does no I/O (no files, network, clock or randomness). Callers pass
//! the current time and any looked-up state in; decisions come back as values. That keeps
//! every rule testable without a database or a server.

pub mod code;
pub mod event;
pub mod identity;

pub use code::Code;

/// Seconds since the Unix epoch, the only time unit in signed payloads and stored rows.
pub type UnixSeconds = i64;
