//! [`RateLimiter`]: a contract's resource limits, enforced.
//!
//! Time is a parameter (`now: Instant`) rather than read from the clock, so
//! callers pass `Instant::now()` and tests pass `start + Duration`, with no
//! sleeping and no wall-clock assertions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::contract::ResourceLimits;
use crate::error::{ContractError, Limit};

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The limits of one model: token buckets for vectors and queries per
/// second (each starts full and holds one second's budget), a storage quota
/// and a maximum message size.
///
/// Shared by reference between threads (`&self` everywhere); each bucket is
/// one atomic word, so a check is a load and a compare-exchange.
#[derive(Debug)]
pub struct RateLimiter {
    vectors: TokenBucket,
    queries: TokenBucket,
    max_storage_mb: u64,
    max_message_size_bytes: u64,
}

impl RateLimiter {
    /// The limiter of `limits` and a maximum message size, with full buckets
    /// at `now`.
    pub fn new(limits: &ResourceLimits, max_message_size_bytes: u64, now: Instant) -> Self {
        Self {
            vectors: TokenBucket::new(limits.max_vectors_per_second, now),
            queries: TokenBucket::new(limits.max_queries_per_second, now),
            max_storage_mb: limits.max_storage_mb,
            max_message_size_bytes,
        }
    }

    /// Takes `n` vectors from the vectors-per-second budget, or refuses
    /// (taking nothing) with [`ContractError::LimitExceeded`] saying when
    /// the same request would pass.
    pub fn acquire_vectors(&self, n: u64, now: Instant) -> Result<(), ContractError> {
        self.vectors
            .try_acquire(n, now)
            .map_err(|retry_after| ContractError::LimitExceeded {
                limit: Limit::VectorsPerSecond,
                value: self.vectors.per_second,
                retry_after,
            })
    }

    /// Gives back `n` vectors taken by [`acquire_vectors`](Self::acquire_vectors)
    /// for work that was then refused (a bucket never holds more than full).
    pub fn release_vectors(&self, n: u64) {
        self.vectors.give_back(n);
    }

    /// Takes `n` queries from the queries-per-second budget, or refuses
    /// (taking nothing) like [`acquire_vectors`](RateLimiter::acquire_vectors).
    pub fn acquire_queries(&self, n: u64, now: Instant) -> Result<(), ContractError> {
        self.queries
            .try_acquire(n, now)
            .map_err(|retry_after| ContractError::LimitExceeded {
                limit: Limit::QueriesPerSecond,
                value: self.queries.per_second,
                retry_after,
            })
    }

    /// Refuses adding `additional_bytes` to a model that holds `used_bytes`
    /// when the total would pass `max_storage_mb` MiB. The caller (storage)
    /// knows the usage; this only compares.
    pub fn check_storage(
        &self,
        used_bytes: u64,
        additional_bytes: u64,
    ) -> Result<(), ContractError> {
        let quota = self.max_storage_mb.saturating_mul(1 << 20);
        if used_bytes.saturating_add(additional_bytes) <= quota {
            Ok(())
        } else {
            Err(ContractError::LimitExceeded {
                limit: Limit::StorageMb,
                value: self.max_storage_mb,
                retry_after: None,
            })
        }
    }

    /// Refuses a message longer than `max_message_size_bytes`.
    pub fn check_message_size(&self, bytes: u64) -> Result<(), ContractError> {
        if bytes <= self.max_message_size_bytes {
            Ok(())
        } else {
            Err(ContractError::LimitExceeded {
                limit: Limit::MessageSizeBytes,
                value: self.max_message_size_bytes,
                retry_after: None,
            })
        }
    }
}

/// A token bucket of `per_second` tokens per second and as many of burst,
/// kept as GCRA (the generic cell rate algorithm): one atomic "theoretical
/// arrival time" instead of a token count and a timestamp.
///
/// Each token costs `cost_ns = ⌈10⁹ / per_second⌉` nanoseconds of the
/// bucket's time. A request for `n` tokens moves the arrival time from
/// `max(tat, now)` to `+ n · cost_ns` and is allowed when that lands within
/// one full bucket (`per_second · cost_ns`, i.e. one second) of `now`.
/// Rounding the cost up means the bucket never allows more than
/// `per_second` per second, and a full burst is exactly `per_second`
/// tokens. (Above 10⁹ per second a token costs 1 ns, so the sustained rate
/// is capped at 10⁹ per second.)
#[derive(Debug)]
struct TokenBucket {
    per_second: u64,
    cost_ns: u64,
    burst_ns: u64,
    epoch: Instant,
    /// Theoretical arrival time in nanoseconds after `epoch`.
    tat: AtomicU64,
}

impl TokenBucket {
    fn new(per_second: u64, epoch: Instant) -> Self {
        let cost_ns = match per_second {
            0 => 0,
            r => NANOS_PER_SECOND.div_ceil(r),
        };
        Self {
            per_second,
            cost_ns,
            burst_ns: per_second.saturating_mul(cost_ns),
            epoch,
            tat: AtomicU64::new(0),
        }
    }

    /// Takes `n` tokens, or answers how long until the same request would
    /// pass (`None`: never, because `n` is more than a full bucket).
    fn try_acquire(&self, n: u64, now: Instant) -> Result<(), Option<Duration>> {
        if n == 0 {
            return Ok(());
        }
        if n > self.per_second {
            return Err(None);
        }
        let now =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let need = n * self.cost_ns; // n <= per_second, so no overflow
        let allowed_until = now.saturating_add(self.burst_ns);
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let new_tat = tat.max(now).saturating_add(need);
            if new_tat > allowed_until {
                return Err(Some(Duration::from_nanos(new_tat - allowed_until)));
            }
            // Relaxed suffices: the bucket is this one word and publishes
            // nothing else.
            match self
                .tat
                .compare_exchange_weak(tat, new_tat, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }
}

impl TokenBucket {
    /// Returns `n` tokens taken before: the arrival time moves back by
    /// their cost. Moving it before `now` changes nothing, since a request
    /// starts from `max(tat, now)`: a bucket never holds more than full.
    fn give_back(&self, n: u64) {
        let cost = n.saturating_mul(self.cost_ns);
        let _ = self
            .tat
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
                Some(tat.saturating_sub(cost))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_given_back_can_be_taken_again_but_never_past_a_full_bucket() {
        let t0 = Instant::now();
        let b = TokenBucket::new(10, t0);
        assert_eq!(b.try_acquire(10, t0), Ok(()));
        assert!(b.try_acquire(4, t0).is_err());
        b.give_back(4);
        assert_eq!(b.try_acquire(4, t0), Ok(()));
        assert!(b.try_acquire(1, t0).is_err());
        // Giving back more than was taken leaves a full bucket, no more.
        b.give_back(100);
        assert_eq!(b.try_acquire(10, t0), Ok(()));
        assert!(b.try_acquire(1, t0).is_err());
    }

    #[test]
    fn a_full_burst_of_an_uneven_rate_is_allowed() {
        let t0 = Instant::now();
        let b = TokenBucket::new(3, t0);
        assert_eq!(b.try_acquire(3, t0), Ok(()));
        assert!(b.try_acquire(1, t0).is_err());
    }

    #[test]
    fn a_zero_rate_refuses_everything_but_nothing() {
        let t0 = Instant::now();
        let b = TokenBucket::new(0, t0);
        assert_eq!(b.try_acquire(0, t0), Ok(()));
        assert_eq!(b.try_acquire(1, t0), Err(None));
    }

    #[test]
    fn huge_rates_do_not_overflow() {
        let t0 = Instant::now();
        let b = TokenBucket::new(2_000_000_000, t0);
        assert_eq!(b.try_acquire(2_000_000_000, t0), Ok(()));
        assert_eq!(b.try_acquire(1, t0), Err(Some(Duration::from_nanos(1))));
        let b = TokenBucket::new(u64::MAX, t0);
        assert_eq!(b.try_acquire(u64::MAX, t0), Ok(()));
        let late = t0 + Duration::from_secs(1 << 40);
        assert_eq!(b.try_acquire(1, late), Ok(()));
    }
}
