//! Where "now" comes from, so that tests move time instead of sleeping.

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock, to the microsecond: the precision every store keeps, so a record reads
/// back exactly as it was written and the time a creation returns is the time stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        // Built from whole microseconds directly: as cheap as `Utc::now()`, which matters on
        // the verification path.
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since_epoch.as_secs())
            .ok()
            .and_then(|secs| DateTime::from_timestamp(secs, since_epoch.subsec_micros() * 1000))
            .unwrap_or_else(Utc::now)
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// # Example
///
/// ```
/// use chrono::TimeDelta;
/// use keyward_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse()?);
/// let shared = clock.clone();
/// clock.advance(TimeDelta::days(1));
/// assert_eq!(shared.now().to_rfc3339(), "2026-01-02T00:00:00+00:00");
/// # Ok::<(), chrono::ParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock showing `now`.
    #[must_use]
    pub fn new(now: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(now)))
    }

    /// Moves the clock forward (or back, with a negative delta).
    pub fn advance(&self, by: TimeDelta) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_keeps_microseconds() {
        let now = SystemClock.now();
        assert_eq!(now.timestamp_subsec_nanos() % 1000, 0);
        assert!((Utc::now() - now).abs() < TimeDelta::seconds(5));
    }
}
