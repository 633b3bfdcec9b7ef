//! Backpressure and fairness, checked before work: a token bucket per
//! collector key (429 with Retry-After), and a budget of bytes held by
//! uploads in flight (503 with Retry-After instead of memory growth).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Error, Result};

/// Uploads per second and burst of one key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_s: f64,
    pub burst: f64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by key id.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<i32, Bucket>>,
}

impl RateLimiter {
    /// Takes one token for `key_id`, or says how long until one is there.
    pub fn check(&self, key_id: i32, rate: Rate, now: Instant) -> Result<()> {
        if rate.per_s <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let b = buckets.entry(key_id).or_insert(Bucket {
            tokens: rate.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate.per_s).min(rate.burst.max(1.0));
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - b.tokens) / rate.per_s);
        Err(Error::RateLimited {
            retry_after_s: wait.as_secs().max(1),
        })
    }
}

/// Bytes that uploads in flight may hold, in KiB permits.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
    total_kib: usize,
}

impl ByteBudget {
    pub fn new(bytes: usize) -> Self {
        let total_kib = (bytes / 1024).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(total_kib)),
            total_kib,
        }
    }

    /// Reserves `bytes` until the permit is dropped, or refuses at once.
    pub fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit> {
        let kib = (bytes.div_ceil(1024)).clamp(1, self.total_kib) as u32;
        self.permits
            .clone()
            .try_acquire_many_owned(kib)
            .map_err(|_| Error::Overloaded {
                budget_mib: self.total_kib / 1024,
            })
    }

    /// Bytes currently reserved.
    pub fn in_use(&self) -> usize {
        (self.total_kib - self.permits.available_permits()) * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_the_rate() {
        let rl = RateLimiter::default();
        let rate = Rate {
            per_s: 2.0,
            burst: 3.0,
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            rl.check(1, rate, t0).unwrap();
        }
        let err = rl.check(1, rate, t0).unwrap_err();
        assert!(matches!(err, Error::RateLimited { retry_after_s: 1 }));
        rl.check(2, rate, t0).expect("keys have their own buckets");
        rl.check(1, rate, t0 + Duration::from_millis(500))
            .expect("refilled one token");
        assert!(rl.check(1, rate, t0 + Duration::from_millis(500)).is_err());
        rl.check(
            1,
            Rate {
                per_s: 0.0,
                burst: 0.0,
            },
            t0,
        )
        .expect("0 means unlimited");
    }

    #[test]
    fn the_budget_refuses_beyond_its_size_and_frees_on_drop() {
        let budget = ByteBudget::new(10 * 1024);
        let a = budget.reserve(6 * 1024).unwrap();
        assert!(matches!(
            budget.reserve(5 * 1024),
            Err(Error::Overloaded { .. })
        ));
        assert_eq!(budget.in_use(), 6 * 1024);
        drop(a);
        let all = budget.reserve(10 * 1024).unwrap();
        assert_eq!(budget.in_use(), 10 * 1024);
        drop(all);
        assert_eq!(budget.in_use(), 0);
    }
}
