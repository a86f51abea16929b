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

    /// Moves the clock forward (or back, with a negative delta), stopping at the earliest or
    /// latest instant a `DateTime<Utc>` holds.
    pub fn advance(&self, by: TimeDelta) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = now
            .checked_add_signed(by)
            .unwrap_or(if by < TimeDelta::zero() {
                DateTime::<Utc>::MIN_UTC
            } else {
                DateTime::<Utc>::MAX_UTC
            });
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

/// Instants and durations for the property tests of the time rules: the ends of the range,
/// the edges of the longest lifetime, and arbitrary values.
#[cfg(test)]
pub(crate) mod extremes {
    use chrono::{DateTime, TimeDelta, Utc};
    use proptest::prelude::*;

    use crate::MAX_LIFETIME;

    /// An ordinary present.
    pub(crate) fn present() -> DateTime<Utc> {
        "2026-06-01T12:00:00Z".parse().expect("valid time")
    }

    /// Offsets that land on either side of an edge.
    pub(crate) const NUDGES: [TimeDelta; 5] = [
        TimeDelta::seconds(-1),
        TimeDelta::microseconds(-1),
        TimeDelta::zero(),
        TimeDelta::microseconds(1),
        TimeDelta::seconds(1),
    ];

    /// Any representable instant, with the extremes and the edges of the longest lifetime
    /// from [`present`] drawn often.
    pub(crate) fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        let edge = (
            prop::sample::select(vec![
                DateTime::<Utc>::MIN_UTC,
                DateTime::<Utc>::MAX_UTC,
                present(),
                present() + MAX_LIFETIME,
                DateTime::<Utc>::MAX_UTC - MAX_LIFETIME,
            ]),
            prop::sample::select(NUDGES.to_vec()),
        )
            .prop_map(|(at, nudge)| at.checked_add_signed(nudge).unwrap_or(at));
        let micros = (DateTime::<Utc>::MIN_UTC.timestamp_micros()
            ..=DateTime::<Utc>::MAX_UTC.timestamp_micros())
            .prop_map(|m| DateTime::from_timestamp_micros(m).expect("inside the range"));
        let nanos = any::<i64>().prop_map(DateTime::from_timestamp_nanos);
        prop_oneof![2 => edge, 1 => micros, 1 => nanos]
    }

    /// Any lifetime a record could hold: arbitrary microseconds, with zero, the longest
    /// lifetime and its neighbours drawn often.
    pub(crate) fn lifetime() -> impl Strategy<Value = TimeDelta> {
        let edge = prop::sample::select(NUDGES.to_vec()).prop_map(|n| MAX_LIFETIME + n);
        prop_oneof![
            1 => edge,
            1 => prop::sample::select(vec![
                TimeDelta::zero(),
                TimeDelta::microseconds(1),
                TimeDelta::microseconds(i64::MAX),
                TimeDelta::microseconds(i64::MIN),
                TimeDelta::MAX,
                TimeDelta::MIN,
            ]),
            2 => any::<i64>().prop_map(TimeDelta::microseconds),
        ]
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

    #[test]
    fn manual_clock_stops_at_the_ends_of_time() {
        let clock = ManualClock::new(DateTime::<Utc>::MAX_UTC - TimeDelta::seconds(1));
        clock.advance(TimeDelta::days(1));
        assert_eq!(clock.now(), DateTime::<Utc>::MAX_UTC);
        clock.set(DateTime::<Utc>::MIN_UTC + TimeDelta::seconds(1));
        clock.advance(TimeDelta::MIN);
        assert_eq!(clock.now(), DateTime::<Utc>::MIN_UTC);
        clock.advance(TimeDelta::seconds(2));
        assert_eq!(
            clock.now(),
            DateTime::<Utc>::MIN_UTC + TimeDelta::seconds(2)
        );
    }
}
