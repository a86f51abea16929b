//! A spy store: counts every call to the store it wraps and can be told to fail, to stall or
//! to answer lookups slowly.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use keyward::core::{ChangeBatch, ChangeCursor, ChangeRecord, ChangeStream, ConsumerLease};
use keyward::core::{DailyUsage, KeyUpdate, SecretRotation, TokenDigest, UsageUpdate};
use keyward::{EventContext, EventPage, EventQuery};
use keyward::{KeyId, KeyRecord, KeyStore, ListQuery, MemoryStore, Page, StoreError};

/// Wraps a store (a [`MemoryStore`] unless told otherwise), counting every call in
/// [`Counts`]; it can be told to [`fail`](Self::fail) (every call answers "unavailable"), to
/// [`stall`](Self::stall) (lookups and usage writes wait, like a database that accepts
/// connections and never answers) and to [`delay_finds`](Self::delay_finds).
///
/// Clones share the inner store, the counts and the switches.
///
/// # Example
///
/// ```
/// use keyward::KeyStore;
/// use keyward_test_support::CountingStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = CountingStore::new();
/// store.fail(true);
/// let id = keyward::KeyId::new();
/// assert!(store.get(id).await.unwrap_err().is_unavailable());
/// store.fail(false);
/// assert_eq!(store.get(id).await.unwrap(), None);
/// assert_eq!(store.counts.total(), 2);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CountingStore<S = MemoryStore> {
    /// The store every call goes to.
    pub inner: S,
    /// What was called, shared by every clone.
    pub counts: Arc<Counts>,
    failing: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
    find_delay_ms: Arc<AtomicU64>,
}

/// The calls a [`CountingStore`] has seen.
#[derive(Debug, Default)]
pub struct Counts {
    find: AtomicUsize,
    record_usage: AtomicUsize,
    usage_updates: AtomicUsize,
    usage_days: AtomicUsize,
    writes: AtomicUsize,
    reads: AtomicUsize,
    owner_changes: AtomicUsize,
    change_reads: AtomicUsize,
    /// When each lookup started, if the store was asked to keep it.
    find_times: Option<Mutex<Vec<Instant>>>,
}

impl Counts {
    /// Calls to [`KeyStore::find_by_digest`].
    pub fn find(&self) -> usize {
        self.find.load(Ordering::SeqCst)
    }

    /// Calls to [`KeyStore::record_usage`].
    pub fn usage_writes(&self) -> usize {
        self.record_usage.load(Ordering::SeqCst)
    }

    /// Key updates in those calls (one row each).
    pub fn usage_updates(&self) -> usize {
        self.usage_updates.load(Ordering::SeqCst)
    }

    /// Calls to [`KeyStore::usage_days`].
    pub fn usage_days(&self) -> usize {
        self.usage_days.load(Ordering::SeqCst)
    }

    /// Calls that change keys: insert, update, revoke, delete, replace the secret, refresh.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Calls to [`KeyStore::get`] and [`KeyStore::list`].
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// Calls to [`KeyStore::owner_changed`].
    pub fn owner_changes(&self) -> usize {
        self.owner_changes.load(Ordering::SeqCst)
    }

    /// Calls to [`KeyStore::changes_since`] (the handle's change-log polls, which run on a
    /// timer and are therefore left out of [`total`](Self::total)).
    pub fn change_reads(&self) -> usize {
        self.change_reads.load(Ordering::SeqCst)
    }

    /// Every call of any method but [`changes_since`](KeyStore::changes_since).
    pub fn total(&self) -> usize {
        self.find()
            + self.usage_writes()
            + self.usage_days()
            + self.writes()
            + self.reads()
            + self.owner_changes()
    }

    /// When each lookup started, oldest first: empty unless the store was built with
    /// [`CountingStore::timing_finds`].
    pub fn find_times(&self) -> Vec<Instant> {
        self.find_times.as_ref().map_or_else(Vec::new, |times| {
            times.lock().unwrap_or_else(PoisonError::into_inner).clone()
        })
    }

    fn count(counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingStore {
    /// A spy on a new, empty [`MemoryStore`].
    #[must_use]
    pub fn new() -> Self {
        Self::wrapping(MemoryStore::new())
    }
}

impl Default for CountingStore {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> CountingStore<S> {
    /// A spy on `inner`.
    pub fn wrapping(inner: S) -> Self {
        Self {
            inner,
            counts: Arc::default(),
            failing: Arc::default(),
            stalled: Arc::default(),
            find_delay_ms: Arc::default(),
        }
    }

    /// Also keeps when each lookup started ([`Counts::find_times`]); with new counts, so call
    /// it before handing out clones.
    #[must_use]
    pub fn timing_finds(mut self) -> Self {
        self.counts = Arc::new(Counts {
            find_times: Some(Mutex::default()),
            ..Counts::default()
        });
        self
    }

    /// From now on every call fails as unavailable (`true`), or goes through again (`false`).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// From now on lookups and usage writes wait until `stall(false)` (a store that accepts
    /// connections and never answers).
    pub fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }

    /// Lookups take `delay` before answering.
    pub fn delay_finds(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.find_delay_ms.store(millis, Ordering::SeqCst);
    }

    async fn wait(&self) {
        while self.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::unavailable(std::io::Error::other(
                "connection refused",
            )))
        } else {
            Ok(())
        }
    }
}

impl<S: KeyStore> KeyStore for CountingStore<S> {
    async fn insert(&self, record: KeyRecord, by: &EventContext) -> Result<(), StoreError> {
        Counts::count(&self.counts.writes);
        self.check()?;
        self.inner.insert(record, by).await
    }

    async fn find_by_digest(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        Counts::count(&self.counts.find);
        if let Some(times) = &self.counts.find_times {
            times
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Instant::now());
        }
        self.wait().await;
        let delay = self.find_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.check()?;
        self.inner.find_by_digest(digest, now).await
    }

    async fn get(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Counts::count(&self.counts.reads);
        self.check()?;
        self.inner.get(id).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        Counts::count(&self.counts.reads);
        self.check()?;
        self.inner.list(query).await
    }

    async fn update(
        &self,
        id: KeyId,
        update: &KeyUpdate,
        now: DateTime<Utc>,
        by: &EventContext,
    ) -> Result<KeyRecord, StoreError> {
        Counts::count(&self.counts.writes);
        self.check()?;
        self.inner.update(id, update, now, by).await
    }

    async fn revoke(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
        by: &EventContext,
    ) -> Result<KeyRecord, StoreError> {
        Counts::count(&self.counts.writes);
        self.check()?;
        self.inner.revoke(id, now, by).await
    }

    async fn delete(&self, id: KeyId, by: &EventContext) -> Result<(), StoreError> {
        Counts::count(&self.counts.writes);
        self.check()?;
        self.inner.delete(id, by).await
    }

    async fn replace_secret(
        &self,
        id: KeyId,
        rotation: &SecretRotation,
        now: DateTime<Utc>,
        by: &EventContext,
    ) -> Result<KeyRecord, StoreError> {
        Counts::count(&self.counts.writes);
        self.check()?;
        self.inner.replace_secret(id, rotation, now, by).await
    }

    async fn refresh(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
        by: &EventContext,
    ) -> Result<KeyRecord, StoreError> {
        Counts::count(&self.counts.writes);
        self.check()?;
        self.inner.refresh(id, now, by).await
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        Counts::count(&self.counts.record_usage);
        self.counts
            .usage_updates
            .fetch_add(batch.len(), Ordering::SeqCst);
        self.wait().await;
        self.check()?;
        self.inner.record_usage(batch).await
    }

    async fn usage_days(&self, id: KeyId, since: NaiveDate) -> Result<Vec<DailyUsage>, StoreError> {
        Counts::count(&self.counts.usage_days);
        self.check()?;
        self.inner.usage_days(id, since).await
    }

    fn changes(&self) -> Option<ChangeStream> {
        self.inner.changes()
    }

    async fn changes_since(
        &self,
        after: Option<ChangeCursor>,
        limit: usize,
    ) -> Result<Option<ChangeBatch>, StoreError> {
        Counts::count(&self.counts.change_reads);
        self.check()?;
        self.inner.changes_since(after, limit).await
    }

    async fn owner_changed(&self, owner: &str) -> Result<(), StoreError> {
        Counts::count(&self.counts.owner_changes);
        self.check()?;
        self.inner.owner_changed(owner).await
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        Counts::count(&self.counts.reads);
        self.check()?;
        self.inner.events(query).await
    }

    async fn expiry_notices(
        &self,
        now: DateTime<Utc>,
        window: TimeDelta,
        by: &EventContext,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        Counts::count(&self.counts.writes);
        self.check()?;
        self.inner.expiry_notices(now, window, by).await
    }

    async fn record_event(
        &self,
        id: KeyId,
        kind: keyward::ChangeKind,
        detail: &serde_json::Value,
        by: &EventContext,
    ) -> Result<bool, StoreError> {
        Counts::count(&self.counts.writes);
        self.check()?;
        self.inner.record_event(id, kind, detail, by).await
    }

    async fn lease_consumer(
        &self,
        lease: &ConsumerLease,
        now: DateTime<Utc>,
    ) -> Result<Option<Option<u64>>, StoreError> {
        self.check()?;
        self.inner.lease_consumer(lease, now).await
    }

    async fn save_consumer(
        &self,
        lease: &ConsumerLease,
        position: u64,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.save_consumer(lease, position).await
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn owner_changes_reach_the_inner_feed() {
        let store = CountingStore::new();
        let mut feed = store.changes().expect("a memory store has a feed");
        store.owner_changed("alice").await.unwrap();
        assert_eq!(
            feed.next().await,
            Some(keyward::core::KeyChange::Owner("alice".into()))
        );
        assert_eq!(store.counts.owner_changes(), 1);
        store.fail(true);
        assert!(store.owner_changed("alice").await.is_err());
    }

    #[tokio::test]
    async fn find_times_are_kept_when_asked() {
        let store = CountingStore::new().timing_finds();
        let token = keyward::TokenFormat::new("books").unwrap().generate();
        let digest = keyward::core::TokenHasher::sha256().digest(&token);
        store.find_by_digest(&digest, Utc::now()).await.unwrap();
        assert_eq!(store.counts.find_times().len(), 1);
        let plain = CountingStore::new();
        plain.find_by_digest(&digest, Utc::now()).await.unwrap();
        assert!(plain.counts.find_times().is_empty());
        assert_eq!(plain.counts.find(), 1);
    }
}
