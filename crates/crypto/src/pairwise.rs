//! Pairwise subject identifiers (SPEC §3):
//! `sub = base64url(HMAC-SHA256(pairwise_key, sector_id || 0x00 || resident_id))`.
//!
//! A service never sees the internal resident id or another sector's identifier; the
//! platform keeps the key and translates when it brokers an exchange.

use crate::b64;
use aws_lc_rs::hmac;

/// The sector of the platform's own ledger: residents appear in leaves under this pseudonym.
pub const LEDGER_SECTOR: &str = "tsunagu:ledger";

/// Computes pairwise identifiers with one secret key.
#[derive(Clone)]
pub struct PairwiseKey {
    key: hmac::Key,
}

impl std::fmt::Debug for PairwiseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairwiseKey(..)")
    }
}

impl PairwiseKey {
    pub fn new(secret: &[u8]) -> PairwiseKey {
        PairwiseKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The identifier of `resident_id` in `sector_id`.
    pub fn subject(&self, sector_id: &str, resident_id: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(sector_id.as_bytes());
        ctx.update(&[0]);
        ctx.update(resident_id.as_bytes());
        b64::url_encode(ctx.sign())
    }

    /// A keyed digest of arbitrary bytes under a domain label, for lookups by values that
    /// must not be stored in the clear (e.g. which card certificate proofed an account).
    pub fn digest(&self, label: &str, data: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(label.as_bytes());
        ctx.update(&[0]);
        ctx.update(data);
        b64::url_encode(ctx.sign())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_ids_follow_the_spec_formula() {
        let key = PairwiseKey::new(b"k");
        let expected = {
            let k = hmac::Key::new(hmac::HMAC_SHA256, b"k");
            b64::url_encode(hmac::sign(&k, b"sector\x00resident"))
        };
        assert_eq!(key.subject("sector", "resident"), expected);
    }

    #[test]
    fn sectors_see_different_ids_for_the_same_resident() {
        let key = PairwiseKey::new(b"secret");
        assert_ne!(key.subject("a", "r1"), key.subject("b", "r1"));
        assert_eq!(key.subject("a", "r1"), key.subject("a", "r1"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(key.subject("ab", "c"), key.subject("a", "bc"));
    }
}
