//! Backpressure and fairness, checked before work: token buckets per
//! collector key, one for uploads and one for its control-plane calls
//! (429 with Retry-After, rounded up so a client that obeys it finds a
//! token), and a budget of bytes held by requests in flight, counted as
//! they are read (503 with Retry-After instead of memory growth).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

/// What a token is spent on: each key has a bucket per lane, so its
/// heartbeats and command polls never use up its uploads (nor the other
/// way round).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    Upload,
    /// Heartbeats, command polls and command results.
    Control,
}

/// Token buckets by key id and lane.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<(i32, Lane), Bucket>>,
}

impl RateLimiter {
    /// Takes one upload token for `key_id`, or says how long until one is
    /// there.
    pub fn check(&self, key_id: i32, rate: Rate, now: Instant) -> Result<()> {
        self.check_lane(key_id, Lane::Upload, rate, now)
    }

    /// Takes one token of `lane` for `key_id`; the wait it answers is
    /// rounded up to whole seconds (at least 1).
    pub fn check_lane(&self, key_id: i32, lane: Lane, rate: Rate, now: Instant) -> Result<()> {
        if rate.per_s <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let b = buckets.entry((key_id, lane)).or_insert(Bucket {
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
        let wait = (1.0 - b.tokens) / rate.per_s;
        Err(Error::RateLimited {
            retry_after_s: (wait.ceil() as u64).max(1),
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

    /// Reserves `bytes` until the reservation is dropped, or refuses at once.
    pub fn reserve(&self, bytes: usize) -> Result<Reservation> {
        let mut held = self.reservation();
        held.grow(bytes)?;
        Ok(held)
    }

    /// An empty reservation that [`Reservation::grow`]s as a body is read.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            permit: None,
            kib: 0,
        }
    }

    fn overloaded(&self) -> Error {
        Error::Overloaded {
            budget_kib: self.total_kib,
        }
    }

    /// Bytes currently reserved.
    pub fn in_use(&self) -> usize {
        (self.total_kib - self.permits.available_permits()) * 1024
    }
}

/// Bytes of the budget held by one request, grown as its body arrives
/// (a chunked body states no length up front) and given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: ByteBudget,
    permit: Option<OwnedSemaphorePermit>,
    kib: usize,
}

impl Reservation {
    /// Holds at least `bytes` in all, or refuses at once (what is held
    /// stays held until the reservation is dropped).
    pub fn grow(&mut self, bytes: usize) -> Result<()> {
        let want = bytes.div_ceil(1024).clamp(1, self.budget.total_kib);
        if want <= self.kib {
            return Ok(());
        }
        let more = self
            .budget
            .permits
            .clone()
            .try_acquire_many_owned((want - self.kib) as u32)
            .map_err(|_| self.budget.overloaded())?;
        match &mut self.permit {
            Some(p) => p.merge(more),
            None => self.permit = Some(more),
        }
        self.kib = want;
        Ok(())
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.kib * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        rl.check_lane(1, Lane::Control, rate, t0)
            .expect("control calls have their own bucket");
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

    /// A client that waits the Retry-After it got finds a token.
    #[test]
    fn retry_after_is_rounded_up() {
        let rl = RateLimiter::default();
        let rate = Rate {
            per_s: 0.4,
            burst: 1.0,
        };
        let t0 = Instant::now();
        rl.check(1, rate, t0).unwrap();
        let Err(Error::RateLimited { retry_after_s }) = rl.check(1, rate, t0) else {
            panic!("over the rate");
        };
        assert_eq!(retry_after_s, 3, "2.5 s rounds up");
        rl.check(1, rate, t0 + Duration::from_secs(retry_after_s))
            .expect("a token after Retry-After");
    }

    #[test]
    fn a_reservation_grows_with_the_bytes_read_and_frees_on_drop() {
        let budget = ByteBudget::new(10 * 1024);
        let mut r = budget.reservation();
        assert_eq!(budget.in_use(), 0);
        r.grow(100).unwrap();
        r.grow(4 * 1024).unwrap();
        r.grow(3 * 1024).unwrap();
        assert_eq!((r.bytes(), budget.in_use()), (4 * 1024, 4 * 1024));
        let other = budget.reserve(5 * 1024).unwrap();
        assert!(matches!(r.grow(6 * 1024), Err(Error::Overloaded { .. })));
        assert_eq!(
            budget.in_use(),
            9 * 1024,
            "a refused growth holds nothing more"
        );
        drop(other);
        r.grow(6 * 1024).unwrap();
        drop(r);
        assert_eq!(budget.in_use(), 0);
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
