//! The store behind a type-erased, object-safe trait, so that `Keyward` has no type parameter.
//!
//! Boxing a future costs one allocation; it is paid only on a cache miss or a management call.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use keyward_core::{
    AppSettings, ChangeBatch, ChangeCursor, ChangeRecord, ChangeStream, DailyUsage, EventContext,
    EventPage, EventQuery, KeyId, KeyRecord, KeyStore, KeyUpdate, ListQuery, Page, SecretRotation,
    StoreError, TokenDigest, UsageUpdate,
};

pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

pub(crate) trait DynStore: Send + Sync + 'static {
    fn insert<'a>(&'a self, record: KeyRecord, by: &'a EventContext) -> StoreFuture<'a, ()>;
    fn find_by_digest<'a>(
        &'a self,
        digest: &'a TokenDigest,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, Option<KeyRecord>>;
    fn get(&self, id: KeyId) -> StoreFuture<'_, Option<KeyRecord>>;
    fn list<'a>(&'a self, query: &'a ListQuery) -> StoreFuture<'a, Page>;
    fn update<'a>(
        &'a self,
        id: KeyId,
        update: &'a KeyUpdate,
        now: DateTime<Utc>,
        by: &'a EventContext,
    ) -> StoreFuture<'a, KeyRecord>;
    fn revoke<'a>(
        &'a self,
        id: KeyId,
        now: DateTime<Utc>,
        by: &'a EventContext,
    ) -> StoreFuture<'a, KeyRecord>;
    fn delete<'a>(&'a self, id: KeyId, by: &'a EventContext) -> StoreFuture<'a, ()>;
    fn replace_secret<'a>(
        &'a self,
        id: KeyId,
        rotation: &'a SecretRotation,
        now: DateTime<Utc>,
        by: &'a EventContext,
    ) -> StoreFuture<'a, KeyRecord>;
    fn refresh<'a>(
        &'a self,
        id: KeyId,
        now: DateTime<Utc>,
        by: &'a EventContext,
    ) -> StoreFuture<'a, KeyRecord>;
    fn record_usage<'a>(&'a self, batch: &'a [UsageUpdate]) -> StoreFuture<'a, ()>;
    fn usage_days(&self, id: KeyId, since: NaiveDate) -> StoreFuture<'_, Vec<DailyUsage>>;
    fn changes(&self) -> Option<ChangeStream>;
    fn changes_since(
        &self,
        after: Option<ChangeCursor>,
        limit: usize,
    ) -> StoreFuture<'_, Option<ChangeBatch>>;
    fn owner_changed<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, ()>;
    fn record_settings<'a>(&'a self, settings: &'a AppSettings) -> StoreFuture<'a, ()>;
    fn events<'a>(&'a self, query: &'a EventQuery) -> StoreFuture<'a, EventPage>;
    fn record_event<'a>(
        &'a self,
        id: KeyId,
        kind: keyward_core::ChangeKind,
        detail: &'a serde_json::Value,
        by: &'a EventContext,
    ) -> StoreFuture<'a, bool>;
    fn expiry_notices<'a>(
        &'a self,
        now: DateTime<Utc>,
        window: TimeDelta,
        by: &'a EventContext,
    ) -> StoreFuture<'a, Vec<ChangeRecord>>;
}

impl<S: KeyStore> DynStore for S {
    fn insert<'a>(&'a self, record: KeyRecord, by: &'a EventContext) -> StoreFuture<'a, ()> {
        Box::pin(KeyStore::insert(self, record, by))
    }

    fn find_by_digest<'a>(
        &'a self,
        digest: &'a TokenDigest,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(KeyStore::find_by_digest(self, digest, now))
    }

    fn get(&self, id: KeyId) -> StoreFuture<'_, Option<KeyRecord>> {
        Box::pin(KeyStore::get(self, id))
    }

    fn list<'a>(&'a self, query: &'a ListQuery) -> StoreFuture<'a, Page> {
        Box::pin(KeyStore::list(self, query))
    }

    fn update<'a>(
        &'a self,
        id: KeyId,
        update: &'a KeyUpdate,
        now: DateTime<Utc>,
        by: &'a EventContext,
    ) -> StoreFuture<'a, KeyRecord> {
        Box::pin(KeyStore::update(self, id, update, now, by))
    }

    fn revoke<'a>(
        &'a self,
        id: KeyId,
        now: DateTime<Utc>,
        by: &'a EventContext,
    ) -> StoreFuture<'a, KeyRecord> {
        Box::pin(KeyStore::revoke(self, id, now, by))
    }

    fn delete<'a>(&'a self, id: KeyId, by: &'a EventContext) -> StoreFuture<'a, ()> {
        Box::pin(KeyStore::delete(self, id, by))
    }

    fn replace_secret<'a>(
        &'a self,
        id: KeyId,
        rotation: &'a SecretRotation,
        now: DateTime<Utc>,
        by: &'a EventContext,
    ) -> StoreFuture<'a, KeyRecord> {
        Box::pin(KeyStore::replace_secret(self, id, rotation, now, by))
    }

    fn refresh<'a>(
        &'a self,
        id: KeyId,
        now: DateTime<Utc>,
        by: &'a EventContext,
    ) -> StoreFuture<'a, KeyRecord> {
        Box::pin(KeyStore::refresh(self, id, now, by))
    }

    fn record_usage<'a>(&'a self, batch: &'a [UsageUpdate]) -> StoreFuture<'a, ()> {
        Box::pin(KeyStore::record_usage(self, batch))
    }

    fn usage_days(&self, id: KeyId, since: NaiveDate) -> StoreFuture<'_, Vec<DailyUsage>> {
        Box::pin(KeyStore::usage_days(self, id, since))
    }

    fn changes(&self) -> Option<ChangeStream> {
        KeyStore::changes(self)
    }

    fn changes_since(
        &self,
        after: Option<ChangeCursor>,
        limit: usize,
    ) -> StoreFuture<'_, Option<ChangeBatch>> {
        Box::pin(KeyStore::changes_since(self, after, limit))
    }

    fn owner_changed<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(KeyStore::owner_changed(self, owner))
    }

    fn record_settings<'a>(&'a self, settings: &'a AppSettings) -> StoreFuture<'a, ()> {
        Box::pin(KeyStore::record_settings(self, settings))
    }

    fn events<'a>(&'a self, query: &'a EventQuery) -> StoreFuture<'a, EventPage> {
        Box::pin(KeyStore::events(self, query))
    }

    fn record_event<'a>(
        &'a self,
        id: KeyId,
        kind: keyward_core::ChangeKind,
        detail: &'a serde_json::Value,
        by: &'a EventContext,
    ) -> StoreFuture<'a, bool> {
        Box::pin(KeyStore::record_event(self, id, kind, detail, by))
    }

    fn expiry_notices<'a>(
        &'a self,
        now: DateTime<Utc>,
        window: TimeDelta,
        by: &'a EventContext,
    ) -> StoreFuture<'a, Vec<ChangeRecord>> {
        Box::pin(KeyStore::expiry_notices(self, now, window, by))
    }
}
