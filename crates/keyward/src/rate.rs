//! Per-key rate limits (requests per minute), with governor's GCRA.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use keyward_core::{Clock, KeyId};
use moka::sync::Cache;

/// Governor reads time from the injected clock, so tests move time instead of sleeping.
#[derive(Debug, Clone)]
struct KeywardClock(Arc<dyn Clock>);

impl GovernorClock for KeywardClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        let now = self.0.now();
        let nanos = now.timestamp_nanos_opt().unwrap_or(i64::MAX).max(0);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, KeywardClock, StateInformationMiddleware>;

#[derive(Debug)]
struct KeyLimiter {
    per_minute: NonZeroU32,
    limiter: Limiter,
}

/// The outcome of a rate-limited request, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateState {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    /// Seconds until the full quota is available again.
    pub(crate) reset: u64,
}

/// Too many requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exceeded {
    pub(crate) limit: u32,
    pub(crate) retry_after: Duration,
}

#[derive(Debug)]
pub(crate) struct RateLimits {
    clock: KeywardClock,
    limiters: Cache<KeyId, Arc<KeyLimiter>>,
}

impl RateLimits {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock: KeywardClock(clock),
            // A bucket idle for a minute is full again, so forgetting it loses nothing.
            limiters: Cache::builder()
                .time_to_idle(Duration::from_secs(120))
                .max_capacity(1_000_000)
                .build(),
        }
    }

    pub(crate) fn check(&self, id: KeyId, per_minute: NonZeroU32) -> Result<RateState, Exceeded> {
        let limiter = match self.limiters.get(&id) {
            Some(limiter) if limiter.per_minute == per_minute => limiter,
            _ => {
                let fresh = Arc::new(KeyLimiter {
                    per_minute,
                    limiter: RateLimiter::direct_with_clock(
                        Quota::per_minute(per_minute),
                        self.clock.clone(),
                    )
                    .with_middleware::<StateInformationMiddleware>(),
                });
                self.limiters.insert(id, Arc::clone(&fresh));
                fresh
            }
        };
        let limit = per_minute.get();
        match limiter.limiter.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = u64::from(limit.saturating_sub(remaining));
                Ok(RateState {
                    limit,
                    remaining,
                    reset: (used * 60).div_ceil(u64::from(limit)),
                })
            }
            Err(not_until) => Err(Exceeded {
                limit,
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::ManualClock;

    #[test]
    fn allows_the_quota_then_refuses_until_a_cell_returns() {
        let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let limits = RateLimits::new(Arc::new(clock.clone()));
        let id = KeyId::new();
        let per_minute = NonZeroU32::new(3).unwrap();
        let states: Vec<_> = (0..3)
            .map(|_| limits.check(id, per_minute).unwrap())
            .collect();
        assert_eq!(
            states.iter().map(|s| s.remaining).collect::<Vec<_>>(),
            [2, 1, 0]
        );
        let exceeded = limits.check(id, per_minute).unwrap_err();
        assert_eq!(exceeded.limit, 3);
        assert_eq!(exceeded.retry_after, Duration::from_secs(20));
        clock.advance(chrono::TimeDelta::seconds(20));
        assert!(limits.check(id, per_minute).is_ok());
        // A changed limit starts a fresh bucket.
        assert!(limits.check(id, NonZeroU32::new(10).unwrap()).is_ok());
    }
}
