//! # tsunagu-tls
//!
//! The HTTP listener tsunagu's servers share (the platform's `tsunagu serve`, a provider's
//! connector): plain or TLS with rustls, HTTP/1.1 and HTTP/2, a certificate re-read on SIGHUP
//! or when its files change ([`ReloadingCert`]), client certificates checked against a CA
//! when asked for ([`client_verifier`], RFC 8705) and handed to each request as
//! [`ClientCert`], and deadlines for handshakes, headers and idle connections
//! ([`Limits`]). ADR 0017 (the listener) and ADR 0020 (mutual TLS) record why.

mod cert;
mod listener;

pub use cert::{Hangup, ReloadingCert, client_verifier, hangup};
pub use listener::{ClientCert, Decorate, Limits, Peer, Tls, serve};
