//! # tsunagu-core
//!
//! The domain of tsunagu as plain values and pure functions: identity levels and states,
//! the four basic items, the lock-out rule, the enrollment binding decision; services,
//! purposes and the policy lint; the committee's quorum rule; what a consent and its changes
//! must say; the ticket decision; ledger event shapes; and the stable error codes every
//! layer reports.
//!
//! Invariant: this crate does no I/O (no files, network, clock or randomness). Callers pass
//! the current time and any looked-up state in; decisions come back as values. That keeps
//! every rule testable without a database or a server.

pub mod alert;
pub mod code;
pub mod consent;
pub mod event;
pub mod governance;
pub mod identity;
pub mod ids;
pub mod lint;
pub mod oidc;
pub mod service;
pub mod ticket;

pub use code::Code;
pub use ids::{
    AccountId, ConsentId, DeviceId, GrantId, MemberId, PairwiseId, PurposeId, RequestId, ServiceId,
    TicketId,
};

/// Seconds since the Unix epoch, the only time unit in signed payloads and stored rows.
pub type UnixSeconds = i64;
