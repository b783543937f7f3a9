//! Per-token request buckets (`auth.rate_per_sec`, `auth.burst`), in memory per instance; the
//! rate-limit middleware (`limits::rate_limit`) takes one token per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Per-principal token buckets: name → (tokens left, last refill).
#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    buckets: Arc<Mutex<HashMap<String, (f64, Instant)>>>,
}

impl RateLimiter {
    /// Takes one request's token for `who`; `Err(wait)` when the bucket is empty.
    pub fn take(&self, who: &str, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = map.entry(who.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.take("a", 2.0, 3.0, t0).is_ok());
        }
        let wait = l.take("a", 2.0, 3.0, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert!(l.take("b", 2.0, 3.0, t0).is_ok(), "buckets are per token");
        assert!(l.take("a", 2.0, 3.0, t0 + Duration::from_millis(500)).is_ok());
        assert!(l.take("a", 2.0, 3.0, t0 + Duration::from_millis(500)).is_err());
    }
}
