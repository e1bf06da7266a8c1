//! # tsunagu-jpki-sim
//!
//! A simulated JPKI (公的個人認証) for development, demos and tests: a certificate
//! authority that issues RSA-2048 signing certificates carrying the four basic items in the
//! JPKI subjectAltName otherNames, revokes them and publishes a CRL; and card files whose
//! private key is sealed under the signing password and locks after 5 wrong entries, as the
//! real card's signing certificate does.
//!
//! Invariant: nothing here is used by the platform at run time. The platform only sees the
//! certificates and CRLs, exactly as it would from J-LIS. The CA's private key is stored
//! unencrypted in its directory: it is a development tool, never a production CA.

mod ca;
mod card;

pub use ca::{
    CardKey, IssueRequest, IssuedCard, IssuedCert, SerialLink, SerialLinks, SimCa, SimCaError,
};
pub use card::{Card, CardError, SIGNING_PIN_ATTEMPTS};
