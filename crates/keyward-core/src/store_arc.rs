//! [`KeyStore`] for `Arc<S>`: a shared store is a store.

use std::future::Future;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::change_log::{ChangeBatch, ChangeCursor, ChangeRecord};
use crate::digest::TokenDigest;
use crate::event::{EventContext, EventPage, EventQuery};
use crate::key::{KeyId, KeyRecord, KeyUpdate, SecretRotation};
use crate::settings::AppSettings;
use crate::store::{
    ChangeStream, ConsumerLease, DailyUsage, KeyStore, ListQuery, Page, StoreError, UsageUpdate,
};

impl<S: KeyStore + ?Sized> KeyStore for std::sync::Arc<S> {
    fn insert(
        &self,
        record: KeyRecord,
        context: &EventContext,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).insert(record, context)
    }

    fn find_by_digest(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send {
        (**self).find_by_digest(digest, now)
    }

    fn get(&self, id: KeyId) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send {
        (**self).get(id)
    }

    fn list(&self, query: &ListQuery) -> impl Future<Output = Result<Page, StoreError>> + Send {
        (**self).list(query)
    }

    fn update(
        &self,
        id: KeyId,
        update: &KeyUpdate,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send {
        (**self).update(id, update, now, context)
    }

    fn revoke(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send {
        (**self).revoke(id, now, context)
    }

    fn delete(
        &self,
        id: KeyId,
        context: &EventContext,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).delete(id, context)
    }

    fn replace_secret(
        &self,
        id: KeyId,
        rotation: &SecretRotation,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send {
        (**self).replace_secret(id, rotation, now, context)
    }

    fn refresh(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send {
        (**self).refresh(id, now, context)
    }

    fn record_usage(
        &self,
        batch: &[UsageUpdate],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record_usage(batch)
    }

    fn usage_days(
        &self,
        id: KeyId,
        since: NaiveDate,
    ) -> impl Future<Output = Result<Vec<DailyUsage>, StoreError>> + Send {
        (**self).usage_days(id, since)
    }

    fn changes(&self) -> Option<ChangeStream> {
        (**self).changes()
    }

    fn changes_since(
        &self,
        after: Option<ChangeCursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Option<ChangeBatch>, StoreError>> + Send {
        (**self).changes_since(after, limit)
    }

    fn owner_changed(&self, owner: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).owner_changed(owner)
    }

    fn record_settings(
        &self,
        settings: &AppSettings,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record_settings(settings)
    }

    fn settings(&self) -> impl Future<Output = Result<Option<AppSettings>, StoreError>> + Send {
        (**self).settings()
    }

    fn events(
        &self,
        query: &EventQuery,
    ) -> impl Future<Output = Result<EventPage, StoreError>> + Send {
        (**self).events(query)
    }

    fn expiry_notices(
        &self,
        now: DateTime<Utc>,
        window: TimeDelta,
        context: &EventContext,
    ) -> impl Future<Output = Result<Vec<ChangeRecord>, StoreError>> + Send {
        (**self).expiry_notices(now, window, context)
    }

    fn record_event(
        &self,
        id: KeyId,
        kind: crate::ChangeKind,
        detail: &serde_json::Value,
        context: &EventContext,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).record_event(id, kind, detail, context)
    }

    fn lease_consumer(
        &self,
        lease: &ConsumerLease,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Option<u64>>, StoreError>> + Send {
        (**self).lease_consumer(lease, now)
    }

    fn save_consumer(
        &self,
        lease: &ConsumerLease,
        position: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).save_consumer(lease, position)
    }
}
