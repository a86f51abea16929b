//! A [`KeyStore`] wrapper that counts usage writes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
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

/// Delegates to `S`, counting [`KeyStore::record_usage`] calls and their updates.
#[derive(Debug)]
pub(crate) struct CountingStore<S> {
    inner: S,
    writes: Arc<UsageWrites>,
}

impl<S> CountingStore<S> {
    pub(crate) fn new(inner: S, writes: Arc<UsageWrites>) -> Self {
        Self { inner, writes }
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
