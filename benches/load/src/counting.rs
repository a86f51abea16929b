//! A [`KeyStore`] wrapper that counts usage writes and store lookups, and a
//! [`FailureBudget`] wrapper that counts what the budget decided.

use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keyward::FailureBudget;
use keyward::core::{
    ChangeStream, KeyId, KeyRecord, KeyStore, KeyUpdate, ListQuery, Page, SecretRotation,
    StoreError, TokenDigest, UsageUpdate,
};

/// Usage writes seen by a [`CountingStore`].
#[derive(Debug, Default)]
pub(crate) struct UsageWrites {
    /// Calls to [`KeyStore::record_usage`].
    pub(crate) calls: AtomicU64,
    /// Key updates in those calls (one row each).
    pub(crate) updates: AtomicU64,
}

/// Store lookups and failure-budget decisions, for the forged-token scenarios.
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    /// When each [`KeyStore::find_by_digest`] call started.
    started: Mutex<Vec<Instant>>,
    /// Failed verifications charged to a client's budget (each answered 401).
    pub(crate) charged: AtomicU64,
    /// Requests refused because their client's budget was spent (each answered 429).
    pub(crate) refused: AtomicU64,
}

impl Lookups {
    fn record(&self) {
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Instant::now());
    }

    /// Lookups so far.
    pub(crate) fn total(&self) -> usize {
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The most lookups in one budget window, with windows opened as a fixed-window budget
    /// opens them: each at the first lookup after the previous window ended. With one failing
    /// client and no valid keys missing the cache, this is the client's lookups per window.
    pub(crate) fn max_per_window(&self, window: Duration) -> usize {
        let started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        let mut max = 0;
        let mut opened: Option<(Instant, usize)> = None;
        for &at in started.iter() {
            opened = match opened {
                Some((start, n)) if at.duration_since(start) < window => Some((start, n + 1)),
                _ => Some((at, 1)),
            };
            max = max.max(opened.map_or(0, |(_, n)| n));
        }
        max
    }

    /// `lookups=<n> charged=<n> refused=<n>`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "lookups={} charged={} refused={}",
            self.total(),
            self.charged.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

/// Delegates to `S`, counting [`KeyStore::record_usage`] calls and their updates, and, when
/// given [`Lookups`], the [`KeyStore::find_by_digest`] calls.
#[derive(Debug)]
pub(crate) struct CountingStore<S> {
    inner: S,
    writes: Arc<UsageWrites>,
    lookups: Option<Arc<Lookups>>,
}

impl<S> CountingStore<S> {
    pub(crate) fn new(inner: S, writes: Arc<UsageWrites>) -> Self {
        Self {
            inner,
            writes,
            lookups: None,
        }
    }

    /// Also records every lookup in `lookups`.
    pub(crate) fn counting_lookups(mut self, lookups: Arc<Lookups>) -> Self {
        self.lookups = Some(lookups);
        self
    }
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
}

impl<S: KeyStore> KeyStore for CountingStore<S> {
    fn insert(&self, record: KeyRecord) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.insert(record)
    }

    fn find_by_digest(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send {
        if let Some(lookups) = &self.lookups {
            lookups.record();
        }
        self.inner.find_by_digest(digest, now)
    }

    fn get(&self, id: KeyId) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send {
        self.inner.get(id)
    }

    fn list(&self, query: &ListQuery) -> impl Future<Output = Result<Page, StoreError>> + Send {
        self.inner.list(query)
    }

    fn update(
        &self,
        id: KeyId,
        update: &KeyUpdate,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send {
        self.inner.update(id, update, now)
    }

    fn revoke(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send {
        self.inner.revoke(id, now)
    }

    fn delete(&self, id: KeyId) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.delete(id)
    }

    fn replace_secret(
        &self,
        id: KeyId,
        rotation: &SecretRotation,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send {
        self.inner.replace_secret(id, rotation, now)
    }

    fn refresh(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send {
        self.inner.refresh(id, now)
    }

    fn record_usage(
        &self,
        batch: &[UsageUpdate],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.writes.calls.fetch_add(1, Ordering::Relaxed);
        self.writes
            .updates
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.inner.record_usage(batch)
    }

    fn changes(&self) -> Option<ChangeStream> {
        self.inner.changes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lookups_per_budget_window() {
        let lookups = Lookups::default();
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        // A window opens at 0 s (3 lookups), the next at 70 s (2), the next at 130 s (4).
        for secs in [0, 10, 59, 70, 129, 130, 131, 150, 189] {
            lookups.started.lock().unwrap().push(at(secs));
        }
        assert_eq!(lookups.total(), 9);
        assert_eq!(lookups.max_per_window(Duration::from_secs(60)), 4);
        assert_eq!(lookups.max_per_window(Duration::from_secs(1000)), 9);
        assert_eq!(
            Lookups::default().max_per_window(Duration::from_secs(60)),
            0
        );
    }
}
