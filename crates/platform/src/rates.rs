//! Token buckets per key (a consumer, a resident), per process (ADR 0010).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets per key, per process.
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl RateLimiter {
    /// Takes one token from `key`'s bucket (refilled at `per_second`, holding `burst`).
    pub fn allow(&self, key: &str, per_second: f64, burst: f64) -> bool {
        let mut buckets = self.buckets.lock().expect("rate lock");
        if buckets.len() > 100_000 {
            buckets.retain(|_, (tokens, at)| *tokens < burst || at.elapsed().as_secs() < 60);
        }
        let now = Instant::now();
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses() {
        let limiter = RateLimiter::default();
        assert!((0..3).all(|_| limiter.allow("k", 0.0, 3.0)));
        assert!(!limiter.allow("k", 0.0, 3.0));
        assert!(limiter.allow("other", 0.0, 3.0), "buckets are per key");
    }
}
