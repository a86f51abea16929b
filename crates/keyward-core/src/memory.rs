//! An in-process [`KeyStore`] for tests, demos and single-process tools.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use tokio::sync::broadcast;

use crate::change_log::{
    ChangeBatch, ChangeCursor, ChangeKind, ChangeRecord, effective_change_limit,
};
use crate::digest::TokenDigest;
use crate::event::{EventContext, EventPage, EventQuery, event_detail, notice_detail, notice_due};
use crate::key::KeyUpdate;
use crate::key::{KeyId, KeyRecord, SecretRotation};
use crate::settings::AppSettings;
use crate::store::{
    ChangeStream, ConsumerLease, DailyUsage, KeyChange, KeyStore, ListQuery, MAX_PAGE_SIZE, Page,
    StoreError, UsageUpdate,
};

/// Keys in memory, lost when the process ends. Clones share the same keys.
///
/// It has a change feed and a change log (the last
/// [`DEFAULT_CHANGE_LOG_CAPACITY`](Self::DEFAULT_CHANGE_LOG_CAPACITY) changes), so several
/// verifiers sharing one `MemoryStore` see each other's changes as a database-backed
/// deployment would.
///
/// # Example
///
/// ```
/// use chrono::Utc;
/// use keyward_core::{EventContext, KeyStore, MemoryStore, NewKey, ScopeCatalog, TokenFormat, TokenHasher};
///
/// # tokio_test(async {
/// let store = MemoryStore::new();
/// let hasher = TokenHasher::sha256();
/// let issued = NewKey::service("ci")
///     .scopes(["*"])
///     .issue(&ScopeCatalog::builder().build()?, &TokenFormat::new("books")?, &hasher, Utc::now())?;
/// store.insert(issued.record.clone(), &EventContext::system()).await?;
///
/// let found = store.find_by_digest(&hasher.digest(&issued.token), Utc::now()).await?;
/// assert_eq!(found.map(|k| k.id), Some(issued.record.id));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// # fn tokio_test<F: std::future::Future>(f: F) -> F::Output {
/// #     futures_util::FutureExt::now_or_never(f).expect("MemoryStore never waits")
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStore {
    state: Arc<RwLock<State>>,
    feed: broadcast::Sender<KeyChange>,
}

#[derive(Debug, Default)]
struct State {
    keys: BTreeMap<KeyId, KeyRecord>,
    by_digest: HashMap<TokenDigest, KeyId>,
    by_previous: HashMap<TokenDigest, KeyId>,
    /// Uses per key and UTC day.
    daily: BTreeMap<(KeyId, NaiveDate), u64>,
    /// The application's settings, as last recorded.
    settings: Option<AppSettings>,
    /// The newest changes, oldest first, with consecutive sequence numbers.
    log: VecDeque<ChangeRecord>,
    /// The sequence number of the newest change ever appended.
    last_seq: u64,
    /// How many changes `log` keeps.
    log_capacity: usize,
    /// The expiry notices recorded: key, kind and the expiry they were for.
    notices: HashSet<(KeyId, ChangeKind, DateTime<Utc>)>,
    /// Durable readers of the log: position, holder and end of lease.
    consumers: HashMap<String, Consumer>,
}

#[derive(Debug, Clone)]
struct Consumer {
    position: Option<u64>,
    holder: String,
    until: DateTime<Utc>,
}

impl State {
    fn index(&mut self, record: &KeyRecord) {
        self.by_digest.insert(record.digest, record.id);
        if let Some(previous) = record.previous {
            self.by_previous.insert(previous.digest, record.id);
        }
    }

    /// Appends the event of a change to `after` (from `before`) by `context`.
    fn append_event(
        &mut self,
        kind: ChangeKind,
        before: Option<&KeyRecord>,
        after: &KeyRecord,
        context: &EventContext,
    ) -> ChangeRecord {
        let (kind, detail) = event_detail(kind, before, after, context);
        self.append_key_event(after, kind, context, detail)
    }

    fn append_key_event(
        &mut self,
        record: &KeyRecord,
        kind: ChangeKind,
        context: &EventContext,
        detail: serde_json::Value,
    ) -> ChangeRecord {
        self.last_seq += 1;
        let event = ChangeRecord::key(
            self.last_seq,
            record.id,
            record.owner.clone(),
            kind,
            Utc::now(),
        )
        .by(context, detail);
        self.push(event.clone());
        event
    }

    /// Appends a change to what `owner` holds.
    fn append_owner(&mut self, owner: &str) {
        self.last_seq += 1;
        let record = ChangeRecord::owner(self.last_seq, owner, Utc::now());
        self.push(record);
    }

    /// Appends one change, dropping the oldest beyond the capacity.
    fn push(&mut self, record: ChangeRecord) {
        self.log.push_back(record);
        while self.log.len() > self.log_capacity.max(1) {
            self.log.pop_front();
        }
    }

    fn unindex(&mut self, record: &KeyRecord) {
        self.by_digest.remove(&record.digest);
        if let Some(previous) = record.previous {
            self.by_previous.remove(&previous.digest);
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        let (feed, _) = broadcast::channel(1024);
        Self {
            state: Arc::new(RwLock::new(State {
                log_capacity: Self::DEFAULT_CHANGE_LOG_CAPACITY,
                ..State::default()
            })),
            feed,
        }
    }

    /// How many changes the change log keeps unless told otherwise.
    pub const DEFAULT_CHANGE_LOG_CAPACITY: usize = 10_000;

    /// Keeps only the newest `capacity` changes (at least one) in the change log: a reader
    /// whose cursor is older is told the log no longer reaches back.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward_core::MemoryStore;
    ///
    /// let store = MemoryStore::new().change_log_capacity(100);
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn change_log_capacity(self, capacity: usize) -> Self {
        let mut state = self.write();
        state.log_capacity = capacity.max(1);
        while state.log.len() > state.log_capacity {
            state.log.pop_front();
        }
        drop(state);
        self
    }

    /// Number of stored keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().keys.len()
    }

    /// Whether the store is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn notify(&self, id: KeyId) {
        // No receivers is fine: nobody caches.
        let _ = self.feed.send(KeyChange::Changed(id));
    }

    /// Changes one key under the write lock, re-indexing its digests and logging the change
    /// as `kind` if the key changed, then notifies.
    fn modify(
        &self,
        id: KeyId,
        kind: ChangeKind,
        context: &EventContext,
        change: impl FnOnce(&mut KeyRecord) -> Result<(), StoreError>,
    ) -> Result<KeyRecord, StoreError> {
        let mut state = self.write();
        let mut record = state
            .keys
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::not_found(id))?;
        change(&mut record)?;
        if let Some(old) = state.keys.get(&id).cloned() {
            state.unindex(&old);
            if old != record {
                state.append_event(kind, Some(&old), &record, context);
            }
        }
        state.index(&record);
        state.keys.insert(id, record.clone());
        drop(state);
        self.notify(id);
        Ok(record)
    }
}

impl KeyStore for MemoryStore {
    async fn insert(&self, record: KeyRecord, context: &EventContext) -> Result<(), StoreError> {
        let mut state = self.write();
        if state.keys.contains_key(&record.id) {
            Err(StoreError::conflict(format!(
                "a key with id {} exists",
                record.id
            )))
        } else if state.by_digest.contains_key(&record.digest)
            || state.by_previous.contains_key(&record.digest)
        {
            Err(StoreError::conflict("a key with this digest exists"))
        } else {
            state.index(&record);
            state.append_event(ChangeKind::Created, None, &record, context);
            state.keys.insert(record.id, record);
            Ok(())
        }
    }

    async fn find_by_digest(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let state = self.read();
        let found = state
            .by_digest
            .get(digest)
            .or_else(|| state.by_previous.get(digest))
            .and_then(|id| state.keys.get(id))
            .filter(|record| record.matches(digest, now))
            .cloned();
        Ok(found)
    }

    async fn get(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.read().keys.get(&id).cloned())
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.effective_limit();
        let state = self.read();
        let upper = query.cursor.map_or(std::ops::Bound::Unbounded, |c| {
            std::ops::Bound::Excluded(c.key_id())
        });
        let keys: Vec<KeyRecord> = state
            .keys
            .range((std::ops::Bound::Unbounded, upper))
            .rev()
            .map(|(_, record)| record)
            .filter(|r| query.include_revoked || !r.is_revoked())
            .filter(|r| query.owner.is_none() || r.owner == query.owner)
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(Page::from_overfetch(keys, limit))
    }

    async fn update(
        &self,
        id: KeyId,
        update: &KeyUpdate,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> Result<KeyRecord, StoreError> {
        self.modify(id, ChangeKind::Updated, context, |r| {
            r.apply(update, now).map_err(Into::into)
        })
    }

    async fn revoke(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> Result<KeyRecord, StoreError> {
        self.modify(id, ChangeKind::Revoked, context, |r| {
            r.revoke(now);
            Ok(())
        })
    }

    async fn delete(&self, id: KeyId, context: &EventContext) -> Result<(), StoreError> {
        let mut state = self.write();
        match state.keys.remove(&id) {
            Some(record) => {
                state.unindex(&record);
                state.append_event(ChangeKind::Deleted, None, &record, context);
                state.daily.retain(|(key, _), _| *key != id);
                drop(state);
                self.notify(id);
                Ok(())
            }
            None => Err(StoreError::not_found(id)),
        }
    }

    async fn replace_secret(
        &self,
        id: KeyId,
        rotation: &SecretRotation,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> Result<KeyRecord, StoreError> {
        self.modify(id, ChangeKind::Regenerated, context, |r| {
            r.rotate(rotation, now).map_err(Into::into)
        })
    }

    async fn refresh(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> Result<KeyRecord, StoreError> {
        self.modify(id, ChangeKind::Refreshed, context, |r| {
            r.refresh(now).map_err(Into::into)
        })
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        let mut state = self.write();
        for usage in batch {
            let Some(record) = state.keys.get_mut(&usage.id) else {
                continue;
            };
            record.usage_count = record.usage_count.saturating_add(usage.count);
            if record
                .last_used_at
                .is_none_or(|at| at <= usage.last_used_at)
            {
                record.last_used_at = Some(usage.last_used_at);
                record.last_used_ip = usage.last_used_ip;
            }
            if usage.count > 0 {
                let day = state
                    .daily
                    .entry((usage.id, usage.last_used_at.date_naive()))
                    .or_default();
                *day = day.saturating_add(usage.count);
            }
        }
        Ok(())
    }

    async fn usage_days(&self, id: KeyId, since: NaiveDate) -> Result<Vec<DailyUsage>, StoreError> {
        Ok(self
            .read()
            .daily
            .range((id, since)..=(id, NaiveDate::MAX))
            .map(|(&(_, date), &count)| DailyUsage { date, count })
            .collect())
    }

    fn changes(&self) -> Option<ChangeStream> {
        let receiver = self.feed.subscribe();
        Some(Box::pin(futures_util::stream::unfold(
            receiver,
            |mut receiver| async move {
                match receiver.recv().await {
                    Ok(change) => Some((change, receiver)),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        Some((KeyChange::Resync, receiver))
                    }
                    Err(broadcast::error::RecvError::Closed) => None,
                }
            },
        )))
    }

    async fn changes_since(
        &self,
        after: Option<ChangeCursor>,
        limit: usize,
    ) -> Result<Option<ChangeBatch>, StoreError> {
        let state = self.read();
        let Some(after) = after else {
            return Ok(Some(ChangeBatch::head(state.last_seq)));
        };
        let limit = effective_change_limit(limit);
        // Sequence numbers are consecutive: the log reaches back to `after` when it still
        // holds the change right after it (or nothing happened since).
        let truncated = state
            .log
            .front()
            .is_some_and(|oldest| oldest.seq > after.seq().saturating_add(1));
        let first = state
            .log
            .partition_point(|change| change.seq <= after.seq());
        let changes: Vec<ChangeRecord> = state.log.range(first..).take(limit).cloned().collect();
        let more = state.log.len() - first > changes.len();
        let cursor = ChangeCursor::at(changes.last().map_or(after.seq(), |c| c.seq));
        Ok(Some(
            ChangeBatch::new(changes, cursor)
                .truncated(truncated)
                .more(more),
        ))
    }

    fn owner_changed(&self, owner: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.write().append_owner(owner);
        let _ = self.feed.send(KeyChange::Owner(owner.to_owned()));
        async { Ok(()) }
    }

    async fn record_settings(&self, settings: &AppSettings) -> Result<(), StoreError> {
        self.write().settings = Some(settings.clone());
        Ok(())
    }

    async fn settings(&self) -> Result<Option<AppSettings>, StoreError> {
        Ok(self.read().settings.clone())
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let limit = query.effective_limit();
        let events = self
            .read()
            .log
            .iter()
            .rev()
            .filter(|event| query.matches(event))
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(EventPage::from_overfetch(events, limit))
    }

    async fn expiry_notices(
        &self,
        now: DateTime<Utc>,
        window: TimeDelta,
        context: &EventContext,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let mut state = self.write();
        let due: Vec<(KeyRecord, ChangeKind, DateTime<Utc>)> = state
            .keys
            .values()
            .filter_map(|record| {
                let expires_at = record.expires_at?;
                let kind = notice_due(record, expires_at, now, window)?;
                let claimed = state.notices.contains(&(record.id, kind, expires_at));
                (!claimed).then(|| (record.clone(), kind, expires_at))
            })
            .take(MAX_PAGE_SIZE)
            .collect();
        let mut recorded = Vec::with_capacity(due.len());
        for (record, kind, expires_at) in due {
            state.notices.insert((record.id, kind, expires_at));
            recorded.push(state.append_key_event(&record, kind, context, notice_detail(&record)));
        }
        Ok(recorded)
    }

    async fn record_event(
        &self,
        id: KeyId,
        kind: ChangeKind,
        detail: &serde_json::Value,
        context: &EventContext,
    ) -> Result<bool, StoreError> {
        let mut state = self.write();
        let Some(record) = state.keys.get(&id).cloned() else {
            return Ok(false);
        };
        state.append_key_event(&record, kind, context, detail.clone());
        Ok(true)
    }

    async fn lease_consumer(
        &self,
        lease: &ConsumerLease,
        now: DateTime<Utc>,
    ) -> Result<Option<Option<u64>>, StoreError> {
        let until = now
            .checked_add_signed(TimeDelta::from_std(lease.duration).unwrap_or(TimeDelta::MAX))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut state = self.write();
        let consumer = state
            .consumers
            .entry(lease.name.clone())
            .or_insert_with(|| Consumer {
                position: None,
                holder: lease.holder.clone(),
                until,
            });
        if consumer.holder != lease.holder && consumer.until > now {
            return Ok(None);
        }
        consumer.holder.clone_from(&lease.holder);
        consumer.until = until;
        Ok(Some(consumer.position))
    }

    async fn save_consumer(
        &self,
        lease: &ConsumerLease,
        position: u64,
    ) -> Result<bool, StoreError> {
        let mut state = self.write();
        match state.consumers.get_mut(&lease.name) {
            Some(consumer) if consumer.holder == lease.holder => {
                consumer.position = Some(position);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
