//! The platform's services as specifications: a call in, a typed result or a typed refusal
//! out, over a small city (`city.rs`) on real storage, keys, a simulated JPKI and the
//! ledger. The HTTP edge is tested end to end in the binary's tests; these say what the
//! services decide.

mod city;
mod consents;
mod exchange;
mod governance;
mod history;
mod identity;
mod keys;
mod oidc;
mod rights;
mod services;
mod user_verification;
