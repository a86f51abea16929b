//! The store behind a type-erased, object-safe trait, so that `Keyward` has no type parameter.
//!
//! Boxing a future costs one allocation; it is paid only on a cache miss or a management call.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, NaiveDate, Utc};
use keyward_core::DailyUsage;
use keyward_core::{
    AppSettings, ChangeBatch, ChangeCursor, ChangeStream, KeyId, KeyRecord, KeyStore, KeyUpdate,
    ListQuery, Page, SecretRotation, StoreError, TokenDigest, UsageUpdate,
};

pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

pub(crate) trait DynStore: Send + Sync + 'static {
    fn insert(&self, record: KeyRecord) -> StoreFuture<'_, ()>;
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
    ) -> StoreFuture<'a, KeyRecord>;
    fn revoke(&self, id: KeyId, now: DateTime<Utc>) -> StoreFuture<'_, KeyRecord>;
    fn delete(&self, id: KeyId) -> StoreFuture<'_, ()>;
    fn replace_secret<'a>(
        &'a self,
        id: KeyId,
        rotation: &'a SecretRotation,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, KeyRecord>;
    fn refresh(&self, id: KeyId, now: DateTime<Utc>) -> StoreFuture<'_, KeyRecord>;
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
}

impl<S: KeyStore> DynStore for S {
    fn insert(&self, record: KeyRecord) -> StoreFuture<'_, ()> {
        Box::pin(KeyStore::insert(self, record))
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
    ) -> StoreFuture<'a, KeyRecord> {
        Box::pin(KeyStore::update(self, id, update, now))
    }

    fn revoke(&self, id: KeyId, now: DateTime<Utc>) -> StoreFuture<'_, KeyRecord> {
        Box::pin(KeyStore::revoke(self, id, now))
    }

    fn delete(&self, id: KeyId) -> StoreFuture<'_, ()> {
        Box::pin(KeyStore::delete(self, id))
    }

    fn replace_secret<'a>(
        &'a self,
        id: KeyId,
        rotation: &'a SecretRotation,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, KeyRecord> {
        Box::pin(KeyStore::replace_secret(self, id, rotation, now))
    }

    fn refresh(&self, id: KeyId, now: DateTime<Utc>) -> StoreFuture<'_, KeyRecord> {
        Box::pin(KeyStore::refresh(self, id, now))
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
}
