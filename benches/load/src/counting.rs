//! What keyward's failure budget decided, counted by a [`FailureBudget`] wrapper, and the
//! store lookups per budget window, from the spy store's lookup times.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keyward::FailureBudget;
use keyward_test_support::Counts;

/// Store lookups and failure-budget decisions, for the forged-token scenarios.
#[derive(Debug)]
pub(crate) struct Lookups {
    /// The spy store's counts, with when each lookup started.
    store: Arc<Counts>,
    /// Failed verifications charged to a client's budget (each answered 401).
    pub(crate) charged: AtomicU64,
    /// Requests refused because their client's budget was spent (each answered 429).
    pub(crate) refused: AtomicU64,
}

impl Lookups {
    /// Decisions counted here, lookups read from `store` (a spy store timing its lookups).
    pub(crate) fn new(store: Arc<Counts>) -> Self {
        Self {
            store,
            charged: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// The most lookups in one budget window (see [`max_per_window`]).
    pub(crate) fn max_per_window(&self, window: Duration) -> usize {
        max_per_window(&self.store.find_times(), window)
    }

    /// `lookups=<n> charged=<n> refused=<n>`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "lookups={} charged={} refused={}",
            self.store.find(),
            self.charged.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

/// The most lookups `started` in one budget window, with windows opened as a fixed-window
/// budget opens them: each at the first lookup after the previous window ended. With one
/// failing client and no valid keys missing the cache, this is the client's lookups per
/// window.
fn max_per_window(started: &[Instant], window: Duration) -> usize {
    let mut max = 0;
    let mut opened: Option<(Instant, usize)> = None;
    for &at in started {
        opened = match opened {
            Some((start, n)) if at.duration_since(start) < window => Some((start, n + 1)),
            _ => Some((at, 1)),
        };
        max = max.max(opened.map_or(0, |(_, n)| n));
    }
    max
}

/// Delegates to `B`, counting its refusals and charges in [`Lookups`].
#[derive(Debug)]
pub(crate) struct CountingBudget<B> {
    inner: B,
    lookups: Arc<Lookups>,
}

impl<B> CountingBudget<B> {
    pub(crate) fn new(inner: B, lookups: Arc<Lookups>) -> Self {
        Self { inner, lookups }
    }
}

impl<B: FailureBudget> FailureBudget for CountingBudget<B> {
    fn exhausted(&self, client: IpAddr) -> Option<Duration> {
        let wait = self.inner.exhausted(client);
        if wait.is_some() {
            self.lookups.refused.fetch_add(1, Ordering::Relaxed);
        }
        wait
    }

    fn charge(&self, client: IpAddr) {
        self.lookups.charged.fetch_add(1, Ordering::Relaxed);
        self.inner.charge(client);
    }

    fn reserve(&self, client: IpAddr) -> Result<bool, Duration> {
        let reserved = self.inner.reserve(client);
        if reserved.is_err() {
            self.lookups.refused.fetch_add(1, Ordering::Relaxed);
        }
        reserved
    }

    fn settle(&self, client: IpAddr, failed: bool) {
        if failed {
            self.lookups.charged.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.settle(client, failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lookups_per_budget_window() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        // A window opens at 0 s (3 lookups), the next at 70 s (2), the next at 130 s (4).
        let started: Vec<Instant> = [0, 10, 59, 70, 129, 130, 131, 150, 189]
            .into_iter()
            .map(at)
            .collect();
        assert_eq!(max_per_window(&started, Duration::from_secs(60)), 4);
        assert_eq!(max_per_window(&started, Duration::from_secs(1000)), 9);
        assert_eq!(max_per_window(&[], Duration::from_secs(60)), 0);
    }
}
