//! The storage contract every key store implements.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use futures_core::Stream;
use serde::{Deserialize, Serialize};

use crate::change_log::{ChangeBatch, ChangeCursor, ChangeRecord};
use crate::digest::TokenDigest;
use crate::event::{EventContext, EventPage, EventQuery};
use crate::key::KeyUpdate;
use crate::key::{KeyId, KeyRecord, RuleError, SecretRotation};
use crate::settings::AppSettings;

/// Largest page a store returns from [`KeyStore::list`].
pub const MAX_PAGE_SIZE: usize = 1000;
/// Page size when the caller gives none.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// The class of a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// No key with that id.
    NotFound,
    /// The operation conflicts with the key's state or with another key (duplicate id or
    /// digest, refresh of a never-expiring key, change to a revoked key).
    Conflict,
    /// The store refused the input (a value it cannot represent, a bad cursor).
    InvalidInput,
    /// The store could not be reached or failed; callers answer 503, never "no".
    Unavailable,
}

/// A failed store operation. Keeps the underlying error as its source.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl StoreError {
    /// An error of `kind` with a message.
    #[must_use]
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// No key with `id`.
    #[must_use]
    pub fn not_found(id: KeyId) -> Self {
        Self::new(StoreErrorKind::NotFound, format!("no key with id {id}"))
    }

    /// A conflict.
    #[must_use]
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Conflict, message)
    }

    /// Input the store cannot accept.
    #[must_use]
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::InvalidInput, message)
    }

    /// The store is unreachable or failing, caused by `source`.
    #[must_use]
    pub fn unavailable(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::new(StoreErrorKind::Unavailable, "the key store is unavailable").with_source(source)
    }

    /// The class of error.
    #[must_use]
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The message, without the source.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether this is [`StoreErrorKind::NotFound`].
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.kind == StoreErrorKind::NotFound
    }

    /// Whether this is [`StoreErrorKind::Unavailable`].
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        self.kind == StoreErrorKind::Unavailable
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

impl From<RuleError> for StoreError {
    fn from(err: RuleError) -> Self {
        Self::conflict(err.to_string()).with_source(err)
    }
}

/// Where a listing continues: the id of the last key of the previous page.
///
/// Listings are newest first by id (UUID v7), so keys created while a client pages through
/// appear before its cursor and never shift the pages it has yet to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListCursor(KeyId);

impl ListCursor {
    /// The cursor after `id`.
    #[must_use]
    pub const fn after(id: KeyId) -> Self {
        Self(id)
    }

    /// The id the next page starts after.
    #[must_use]
    pub const fn key_id(&self) -> KeyId {
        self.0
    }
}

impl fmt::Display for ListCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_uuid().simple())
    }
}

/// A cursor that is not one this crate wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not valid")]
pub struct InvalidCursor;

impl FromStr for ListCursor {
    type Err = InvalidCursor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<KeyId>().map(Self).map_err(|_| InvalidCursor)
    }
}

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only keys of this owner; `None` = every key.
    pub owner: Option<String>,
    /// Also list revoked keys.
    pub include_revoked: bool,
    /// Page size, clamped to 1..=[`MAX_PAGE_SIZE`].
    pub limit: usize,
    /// Continue after this cursor.
    pub cursor: Option<ListCursor>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            owner: None,
            include_revoked: false,
            limit: DEFAULT_PAGE_SIZE,
            cursor: None,
        }
    }
}

impl ListQuery {
    /// The limit a store should apply.
    #[must_use]
    pub fn effective_limit(&self) -> usize {
        self.limit.clamp(1, MAX_PAGE_SIZE)
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Keys, newest first.
    pub keys: Vec<KeyRecord>,
    /// Present when more keys may follow.
    pub next_cursor: Option<ListCursor>,
}

impl Page {
    /// Builds a page from up to `limit + 1` fetched records: the extra one only signals that
    /// another page exists.
    #[must_use]
    pub fn from_overfetch(mut keys: Vec<KeyRecord>, limit: usize) -> Self {
        let more = keys.len() > limit;
        keys.truncate(limit);
        let next_cursor = if more {
            keys.last().map(|k| ListCursor::after(k.id))
        } else {
            None
        };
        Self { keys, next_cursor }
    }
}

/// Usage of one key since the last flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageUpdate {
    /// The key.
    pub id: KeyId,
    /// Requests to add to `usage_count`.
    pub count: u64,
    /// Time of the latest of those requests.
    pub last_used_at: DateTime<Utc>,
    /// Client address of the latest of those requests.
    pub last_used_ip: Option<IpAddr>,
}

/// The uses of one key on one day (UTC), as [`KeyStore::usage_days`] returns them.
///
/// A flush is attributed to the day of its latest use: the uses of a flush that spans
/// midnight (at most one flush interval, a few seconds) all count on the later day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyUsage {
    /// The day, in UTC.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date, example = "2026-11-23"))]
    pub date: NaiveDate,
    /// Requests on that day.
    #[cfg_attr(feature = "openapi", schema(example = 12))]
    pub count: u64,
}

/// A notification from a store's change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyChange {
    /// This key changed (revoked, deleted, updated, disabled, regenerated): drop cached copies.
    Changed(KeyId),
    /// What this user holds changed (a new role, a deleted account): drop the cached copies
    /// of their keys, so their grants are read again.
    Owner(String),
    /// Notifications may have been lost (a reconnect, a lagging reader): drop every cached key.
    Resync,
}

/// A stream of [`KeyChange`]s.
pub type ChangeStream = Pin<Box<dyn Stream<Item = KeyChange> + Send + 'static>>;

/// Where keys live. Implemented by [`MemoryStore`](crate::MemoryStore) and by the database
/// stores; every implementation passes the [conformance suite](crate::conformance).
///
/// Methods that change a key return the record as stored afterwards. Unknown ids answer
/// [`StoreErrorKind::NotFound`]; a change a revoked key does not allow answers
/// [`StoreErrorKind::Conflict`].
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a new key.
    ///
    /// Fails with [`StoreErrorKind::Conflict`] if the id or digest already exists.
    fn insert(
        &self,
        record: KeyRecord,
        context: &EventContext,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Finds the key whose current secret has `digest`, or whose previous secret has it and is
    /// still inside its grace period at `now`. One indexed lookup.
    fn find_by_digest(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send;

    /// The key with `id`, revoked or not.
    fn get(&self, id: KeyId) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send;

    /// A page of keys, newest first.
    fn list(&self, query: &ListQuery) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// Applies validated changes (see [`KeyRecord::apply`]).
    fn update(
        &self,
        id: KeyId,
        update: &KeyUpdate,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send;

    /// Revokes the key (idempotent: a second revoke keeps the first time).
    fn revoke(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send;

    /// Deletes the key permanently.
    fn delete(
        &self,
        id: KeyId,
        context: &EventContext,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Installs a new secret (see [`KeyRecord::rotate`]).
    fn replace_secret(
        &self,
        id: KeyId,
        rotation: &SecretRotation,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send;

    /// Extends the expiry by the key's lifetime (see [`KeyRecord::refresh`]).
    fn refresh(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send;

    /// Adds each update's count to its key's `usage_count` and keeps the latest
    /// `last_used_at`/`last_used_ip`. Exact under concurrent calls; unknown ids are skipped.
    ///
    /// In the same write (one transaction on SQL stores) each count is also added to the key's
    /// daily bucket for the UTC date of the update's `last_used_at` (see
    /// [`usage_days`](Self::usage_days)): a flush attributes all its uses to the day of its
    /// latest use, so when flushes run every few seconds at most one interval's uses land on
    /// the next day.
    fn record_usage(
        &self,
        batch: &[UsageUpdate],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The daily use counts of key `id` on `since` and later (UTC dates), oldest first. Only
    /// days with uses are listed; an unknown (or deleted) key has none. Deleting a key deletes
    /// its daily counts.
    fn usage_days(
        &self,
        id: KeyId,
        since: NaiveDate,
    ) -> impl Future<Output = Result<Vec<DailyUsage>, StoreError>> + Send;

    /// A feed of changed key ids for cache invalidation across instances, if the store has
    /// one: a push that makes invalidation immediate. The default is `None`: caches then rely
    /// on the [change log](Self::changes_since) if the store keeps one, else on their TTL.
    fn changes(&self) -> Option<ChangeStream> {
        None
    }

    /// The changes recorded after `after`, oldest first, at most `limit` of them (clamped to
    /// `1..=`[`MAX_CHANGE_BATCH`](crate::MAX_CHANGE_BATCH)), for stores that keep a change
    /// log; `None` for those that do not (the default).
    ///
    /// Every successful change made through the store appends exactly one
    /// [`ChangeRecord`](crate::ChangeRecord), in the same write as the change itself:
    /// [`insert`](Self::insert) (created), [`update`](Self::update) (updated),
    /// [`revoke`](Self::revoke) (revoked), [`delete`](Self::delete) (deleted),
    /// [`replace_secret`](Self::replace_secret) (regenerated), [`refresh`](Self::refresh)
    /// (refreshed) and [`owner_changed`](Self::owner_changed) (owner). A failed call and a
    /// call that changes nothing (a second revoke) append nothing. Instances poll this to
    /// drop the keys others changed from their caches.
    ///
    /// With `after = None` the answer has no changes and the cursor of the newest one (the
    /// head), so a new reader starts from now. When old rows have been pruned past `after`,
    /// the batch is [`truncated`](ChangeBatch::truncated): the reader drops everything it
    /// cached. One indexed read, whatever the number of keys.
    fn changes_since(
        &self,
        after: Option<ChangeCursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Option<ChangeBatch>, StoreError>> + Send {
        let _ = (after, limit);
        async { Ok(None) }
    }

    /// Tells every instance that what `owner` holds changed, through the change feed where
    /// the store has one ([`KeyChange::Owner`]) and the change log where it keeps one. The
    /// default does nothing: without either, other instances see the change when their cache
    /// TTL ends.
    fn owner_changed(&self, owner: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = owner;
        async { Ok(()) }
    }

    /// Records the settings of the application using this store (its prefixes, scope catalog
    /// and pepper fingerprint), replacing those recorded before, so that tools sharing the
    /// store (the `keyward` command line) issue keys the application accepts. The default
    /// records nothing.
    fn record_settings(
        &self,
        settings: &AppSettings,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = settings;
        async { Ok(()) }
    }

    /// The settings last [recorded](Self::record_settings); `None` before any application
    /// has recorded them, and always with the default.
    fn settings(&self) -> impl Future<Output = Result<Option<AppSettings>, StoreError>> + Send {
        async { Ok(None) }
    }

    /// The key events of the [change log](Self::changes_since) that pass `query`'s filters,
    /// newest first, one page at a time; owner changes are not key events and never listed.
    /// Stores without a change log list none (the default).
    fn events(
        &self,
        query: &EventQuery,
    ) -> impl Future<Output = Result<EventPage, StoreError>> + Send {
        let _ = query;
        async { Ok(EventPage::from_overfetch(Vec::new(), 1)) }
    }

    /// Records the expiry notices due at `now` and returns them: an
    /// [`ExpiringSoon`](crate::ChangeKind::ExpiringSoon) event for each live key whose expiry
    /// is less than `window` away, and an [`Expired`](crate::ChangeKind::Expired) event for
    /// each key (not revoked) whose expiry has passed, each at most once per key and expiry
    /// value (a refreshed key gets new notices for its new expiry). Each notice is claimed in
    /// the store together with its event, so instances sweeping at the same time record it
    /// once between them: the returned events are those this call recorded. At most
    /// [`MAX_PAGE_SIZE`] per call. The default records none.
    fn expiry_notices(
        &self,
        now: DateTime<Utc>,
        window: TimeDelta,
        context: &EventContext,
    ) -> impl Future<Output = Result<Vec<ChangeRecord>, StoreError>> + Send {
        let _ = (now, window, context);
        async { Ok(Vec::new()) }
    }

    /// Records an event of `kind` about key `id` that changes nothing stored (a notice such as
    /// [`RateLimited`](crate::ChangeKind::RateLimited)), with the key's owner, by `context`,
    /// with `detail`. `false` when no key has `id`. Stores without a change log record
    /// nothing (the default).
    fn record_event(
        &self,
        id: KeyId,
        kind: crate::ChangeKind,
        detail: &serde_json::Value,
        context: &EventContext,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (id, kind, detail, context);
        async { Ok(false) }
    }

    /// Takes (or renews) the lease of a reader of the event log that must run on one
    /// instance at a time and survive restarts, such as a webhook endpoint's delivery:
    /// `Some(position)` when `lease.holder` now holds it until `now + lease.duration`, with
    /// the position last [saved](Self::save_consumer) (`None` for a new reader);
    /// `None` while another holder's lease runs. The default has no durable readers: it
    /// answers [`StoreErrorKind::Unavailable`].
    fn lease_consumer(
        &self,
        lease: &ConsumerLease,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Option<u64>>, StoreError>> + Send {
        let _ = (lease, now);
        async {
            Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "this store keeps no event readers",
            ))
        }
    }

    /// Saves the position of the reader `lease.name` if `lease.holder` still holds its lease;
    /// `false` when it does not (another instance took over).
    fn save_consumer(
        &self,
        lease: &ConsumerLease,
        position: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (lease, position);
        async {
            Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "this store keeps no event readers",
            ))
        }
    }
}

/// A durable reader of the event log and the instance leasing it (see
/// [`KeyStore::lease_consumer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerLease {
    /// The reader, e.g. `webhook:<endpoint>`; at most 255 bytes.
    pub name: String,
    /// The instance asking, unique per process.
    pub holder: String,
    /// How long a lease lasts unless renewed.
    pub duration: std::time::Duration,
}
