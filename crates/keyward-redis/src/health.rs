//! Whether Redis is answering, as one part sees it: one warning per outage, and while it lasts
//! at most one attempt per interval, so requests are not slowed down by a dead Redis.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a part tries Redis again while it is down.
const RETRY_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub(crate) struct Health {
    part: &'static str,
    start: Instant,
    down: AtomicBool,
    /// While down: milliseconds since `start` when the next attempt may be made.
    retry_at: AtomicU64,
}

impl Health {
    pub(crate) fn new(part: &'static str) -> Self {
        Self {
            part,
            start: Instant::now(),
            down: AtomicBool::new(false),
            retry_at: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether to ask Redis now: always while it answers; during an outage, one caller per
    /// retry interval.
    pub(crate) fn should_try(&self) -> bool {
        if !self.down.load(Ordering::Relaxed) {
            return true;
        }
        let now = self.now_ms();
        let at = self.retry_at.load(Ordering::Relaxed);
        now >= at
            && self
                .retry_at
                .compare_exchange(
                    at,
                    now + ms(RETRY_INTERVAL),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Whether Redis is taken to be down.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    pub(crate) fn failed(&self, error: &dyn std::fmt::Display) {
        self.retry_at
            .store(self.now_ms() + ms(RETRY_INTERVAL), Ordering::Relaxed);
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                part = self.part,
                error = %error,
                "keyward-redis: Redis is not answering; working locally until it does"
            );
        }
    }

    pub(crate) fn succeeded(&self) {
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::AcqRel) {
            tracing::info!(part = self.part, "keyward-redis: Redis answers again");
        }
    }
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_attempt_per_interval_while_down() {
        let health = Health::new("test");
        assert!(health.should_try() && health.should_try());
        health.failed(&"refused");
        assert!(health.is_down());
        assert!(!health.should_try());
        std::thread::sleep(RETRY_INTERVAL + Duration::from_millis(20));
        assert!(health.should_try());
        assert!(!health.should_try());
        health.succeeded();
        assert!(!health.is_down() && health.should_try());
    }
}
