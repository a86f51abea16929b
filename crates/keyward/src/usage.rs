//! Usage counted in memory and written to the store in batches.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use keyward_core::{DailyUsage, KeyId, KeyRecord, UsageUpdate, ValidationError};

use crate::handle::Keyward;
use crate::manage::ManageError;

/// Uses of one key since the last flush. The cache entry of the key holds it, so counting a
/// request on a cache hit is two atomic operations and a lock no other key shares.
#[derive(Debug)]
pub(crate) struct KeyUsage {
    count: AtomicU64,
    /// Microseconds since the epoch of the latest use; `i64::MIN` when none is pending.
    last_used: AtomicI64,
    /// Microseconds since the epoch of the earliest pending use, for the flush lag;
    /// `i64::MAX` when unknown (the latest use then stands in).
    first_used: AtomicI64,
    last_ip: Mutex<Option<IpAddr>>,
    /// [`fingerprint`] of `last_ip`, so that an unchanged address takes no lock.
    last_ip_seen: AtomicU64,
    /// The limit of a rate-limit refusal to record as an event at the next flush; 0: none.
    limited: AtomicU64,
    /// Microseconds since the epoch of the last refusal noted, so that one event at most is
    /// recorded per key and [`RATE_LIMITED_EVERY`].
    limited_noted: AtomicI64,
}

/// At most one `rate_limited` event per key in this time.
pub(crate) const RATE_LIMITED_EVERY: TimeDelta = TimeDelta::minutes(1);

impl KeyUsage {
    fn new() -> Self {
        Self {
            count: AtomicU64::new(0),
            last_used: AtomicI64::new(i64::MIN),
            first_used: AtomicI64::new(i64::MAX),
            last_ip: Mutex::new(None),
            last_ip_seen: AtomicU64::new(fingerprint(None)),
            limited: AtomicU64::new(0),
            limited_noted: AtomicI64::new(i64::MIN),
        }
    }

    /// Puts back a refusal whose event could not be written, for the next flush.
    pub(crate) fn keep_rate_limited(&self, limit: u32) {
        self.limited
            .store(u64::from(limit.max(1)), Ordering::Release);
    }

    /// Notes that a request was refused for the key's rate limit of `limit` per minute at
    /// `at`: the first refusal in [`RATE_LIMITED_EVERY`] becomes a `rate_limited` event at the
    /// next flush. Later ones cost one atomic load.
    pub(crate) fn note_rate_limited(&self, limit: u32, at: DateTime<Utc>) {
        let micros = at.timestamp_micros();
        let noted = self.limited_noted.load(Ordering::Relaxed);
        let every = RATE_LIMITED_EVERY.num_microseconds().unwrap_or(i64::MAX);
        if noted != i64::MIN && micros.saturating_sub(noted) < every {
            return;
        }
        if self
            .limited_noted
            .compare_exchange(noted, micros, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.limited
                .store(u64::from(limit.max(1)), Ordering::Release);
        }
    }

    /// Counts `count` uses, the latest at `at` from `ip`. A client that keeps its address
    /// costs two atomic operations and two comparisons, no lock.
    pub(crate) fn record(&self, count: u64, at: DateTime<Utc>, ip: Option<IpAddr>) {
        self.count.fetch_add(count, Ordering::Relaxed);
        let micros = at.timestamp_micros();
        // A plain load first: after the first use of a flush interval no write is needed.
        if self.first_used.load(Ordering::Relaxed) > micros {
            self.first_used.fetch_min(micros, Ordering::Relaxed);
        }
        if self.last_used.fetch_max(micros, Ordering::Relaxed) <= micros {
            let seen = fingerprint(ip);
            if self.last_ip_seen.swap(seen, Ordering::Relaxed) != seen {
                *self.last_ip.lock().unwrap_or_else(PoisonError::into_inner) = ip;
            }
        }
    }

    /// Takes the pending uses, if any, with the time of the earliest (in microseconds).
    fn take(&self, id: KeyId) -> Option<(UsageUpdate, i64)> {
        let count = self.count.swap(0, Ordering::AcqRel);
        if count == 0 {
            return None;
        }
        let first = self.first_used.swap(i64::MAX, Ordering::Relaxed);
        let update = self.update(id, count);
        Some((update, first.min(update.last_used_at.timestamp_micros())))
    }

    /// The pending uses, if any, leaving them pending.
    fn peek(&self, id: KeyId) -> Option<UsageUpdate> {
        let count = self.count.load(Ordering::Acquire);
        (count > 0).then(|| self.update(id, count))
    }

    fn update(&self, id: KeyId, count: u64) -> UsageUpdate {
        let micros = self.last_used.load(Ordering::Relaxed);
        UsageUpdate {
            id,
            count,
            last_used_at: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
            last_used_ip: *self.last_ip.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

/// A short stand-in for an address: equal addresses give equal fingerprints, and different
/// ones almost never do (a collision only keeps the previous address as the last one seen).
fn fingerprint(ip: Option<IpAddr>) -> u64 {
    match ip {
        None => 0,
        Some(IpAddr::V4(v4)) => 1 << 32 | u64::from(v4.to_bits()),
        Some(IpAddr::V6(v6)) => {
            let bits = v6.to_bits();
            // Both halves matter: /64 prefixes are shared, interface ids repeat.
            (bits as u64 ^ (bits >> 64) as u64).rotate_left(1) | 1 << 63
        }
    }
}

/// Per-key request counts since the last flush. A request never writes to the store; a
/// flush writes one update per key.
///
/// Memory is bounded by the number of keys that were used: a key's counter is one entry
/// however many requests it serves and however long the store refuses the flush.
///
/// Uses a flush has taken stay visible to [`peek`](Self::peek) until their write ends: they
/// are either still counted here (pending or being written) or written, never both and never
/// neither, as far as this recorder can tell.
#[derive(Debug, Default)]
pub(crate) struct UsageRecorder {
    state: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    keys: HashMap<KeyId, Arc<KeyUsage>>,
    /// Uses taken by writes that have not ended, by key, with the number of their write.
    writing: HashMap<KeyId, Vec<(u64, UsageUpdate)>>,
    next_write: u64,
}

impl Counters {
    fn counter(&mut self, id: KeyId) -> &Arc<KeyUsage> {
        self.keys
            .entry(id)
            .or_insert_with(|| Arc::new(KeyUsage::new()))
    }
}

impl UsageRecorder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counter of `id`, shared by every cache entry of the key.
    pub(crate) fn counter(&self, id: KeyId) -> Arc<KeyUsage> {
        Arc::clone(self.lock().counter(id))
    }

    /// Takes everything counted so far for one write, and forgets the counters no cache entry
    /// holds. The uses stay visible to [`peek`](Self::peek) until the write is
    /// [`written`](UsageWrite::written), or dropped, which puts them back.
    pub(crate) fn start_write(&self) -> UsageWrite<'_> {
        let mut state = self.lock();
        let number = state.next_write;
        state.next_write = state.next_write.wrapping_add(1);
        let mut batch = Vec::new();
        let mut oldest = None::<i64>;
        state.keys.retain(|id, usage| {
            // Asked before taking: a counter only this map holds gets no more uses (a new
            // holder needs the lock held here), so once taken it is empty for good. Asked
            // after, a holder could count a use and let go in between, and the use be lost.
            let held = Arc::strong_count(usage) > 1;
            // Pairs with the release of the last other holder's drop, so its uses are seen.
            std::sync::atomic::fence(Ordering::Acquire);
            match usage.take(*id) {
                Some((update, first)) => {
                    batch.push(update);
                    oldest = Some(oldest.map_or(first, |oldest| oldest.min(first)));
                    true
                }
                None => held || usage.limited.load(Ordering::Acquire) != 0,
            }
        });
        for update in &batch {
            state
                .writing
                .entry(update.id)
                .or_default()
                .push((number, *update));
        }
        UsageWrite {
            recorder: self,
            number,
            batch,
            oldest,
            written: false,
        }
    }

    /// Ends write `number`: its uses are no longer in flight, and unless they were written
    /// they are counted again for the next flush, so that nothing is lost (nor the time of
    /// the oldest, `oldest`).
    fn end_write(&self, number: u64, batch: &[UsageUpdate], oldest: Option<i64>, written: bool) {
        let mut state = self.lock();
        for update in batch {
            if let Some(writes) = state.writing.get_mut(&update.id) {
                writes.retain(|(n, _)| *n != number);
                if writes.is_empty() {
                    state.writing.remove(&update.id);
                }
            }
            if !written {
                let usage = state.counter(update.id);
                usage.record(update.count, update.last_used_at, update.last_used_ip);
                if let Some(oldest) = oldest {
                    usage.first_used.fetch_min(oldest, Ordering::Relaxed);
                }
            }
        }
    }

    /// The uses of `id` not yet written to the store: those counted since the last flush and
    /// those of a write still in progress, merged (their count added up, the latest use
    /// kept). Leaves them where they are.
    pub(crate) fn peek(&self, id: KeyId) -> Option<UsageUpdate> {
        let state = self.lock();
        let writing = state
            .writing
            .get(&id)
            .into_iter()
            .flatten()
            .map(|(_, u)| *u);
        let pending = state.keys.get(&id).and_then(|usage| usage.peek(id));
        writing.chain(pending).reduce(|mut merged, update| {
            merge(&mut merged, &update);
            merged
        })
    }

    /// When the earliest use counted since the last flush was made, over every key.
    pub(crate) fn oldest(&self) -> Option<DateTime<Utc>> {
        let state = self.lock();
        let oldest = state
            .keys
            .values()
            .filter(|usage| usage.count.load(Ordering::Relaxed) > 0)
            .map(|usage| {
                let first = usage.first_used.load(Ordering::Relaxed);
                first.min(usage.last_used.load(Ordering::Relaxed))
            })
            .min()?;
        DateTime::from_timestamp_micros(oldest)
    }

    /// Takes the rate-limit refusals noted since the last call: key and limit per minute.
    pub(crate) fn take_rate_limited(&self) -> Vec<(KeyId, u32)> {
        let state = self.lock();
        state
            .keys
            .iter()
            .filter_map(|(id, usage)| {
                let limit = usage.limited.swap(0, Ordering::AcqRel);
                (limit != 0).then(|| (*id, u32::try_from(limit).unwrap_or(u32::MAX)))
            })
            .collect()
    }

    /// Uses counted and not yet written, over every key.
    pub(crate) fn pending(&self) -> u64 {
        let state = self.lock();
        let counted: u64 = state
            .keys
            .values()
            .map(|usage| usage.count.load(Ordering::Relaxed))
            .sum();
        let writing: u64 = state
            .writing
            .values()
            .flatten()
            .map(|(_, update)| update.count)
            .sum();
        counted.saturating_add(writing)
    }
}

/// Adds `update` to `merged`, keeping the later use (the later one in order on a tie).
pub(crate) fn merge(merged: &mut UsageUpdate, update: &UsageUpdate) {
    merged.count = merged.count.saturating_add(update.count);
    if update.last_used_at >= merged.last_used_at {
        merged.last_used_at = update.last_used_at;
        merged.last_used_ip = update.last_used_ip;
    }
}

/// The uses one flush took from the [`UsageRecorder`], while it writes them. Dropped
/// without [`written`](Self::written) (a failed or abandoned write) it counts them again.
#[derive(Debug)]
pub(crate) struct UsageWrite<'a> {
    recorder: &'a UsageRecorder,
    number: u64,
    batch: Vec<UsageUpdate>,
    /// Microseconds since the epoch of the earliest use in `batch`.
    oldest: Option<i64>,
    written: bool,
}

impl UsageWrite<'_> {
    /// One update per key.
    pub(crate) fn batch(&self) -> &[UsageUpdate] {
        &self.batch
    }

    /// The store has the uses: they are no longer pending.
    pub(crate) fn written(mut self) {
        self.written = true;
    }
}

impl Drop for UsageWrite<'_> {
    fn drop(&mut self) {
        if !self.batch.is_empty() {
            self.recorder
                .end_write(self.number, &self.batch, self.oldest, self.written);
        }
    }
}

/// The most days [`Keyward::usage_days`] answers for: a year, leap or not.
const MAX_USAGE_DAYS: u32 = 366;

impl Keyward {
    /// The uses of key `id` that this instance has counted and not yet written to the store:
    /// those since the last flush and those of a flush still writing, as one update (their
    /// count added up, the latest use with its client address). `None` when there are none.
    ///
    /// Usage is written in batches every
    /// [flush interval](crate::KeywardBuilder::usage_flush_interval), so a record read from
    /// the store lags behind by up to that long; add this to show a key as used the moment it
    /// was, as [`include_pending_usage`](Self::include_pending_usage) does. Only this
    /// instance's uses are known here: other instances' appear when they flush.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore, NewKey};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keyward = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
    /// let issued = keyward.create(NewKey::service("ci").scopes(["*"])).await?;
    /// keyward.verify(issued.token.expose_secret(), None).await?;
    ///
    /// let pending = keyward.pending_usage(issued.record.id).expect("one use");
    /// assert_eq!(pending.count, 1);
    /// let mut record = keyward.get(issued.record.id).await?;
    /// assert_eq!(record.usage_count, 0, "not flushed yet");
    /// keyward.include_pending_usage(&mut record);
    /// assert_eq!(record.usage_count, 1);
    ///
    /// keyward.flush_usage().await?;
    /// assert_eq!(keyward.pending_usage(issued.record.id), None);
    /// assert_eq!(keyward.get(issued.record.id).await?.usage_count, 1);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn pending_usage(&self, id: KeyId) -> Option<UsageUpdate> {
        self.inner.usage.peek(id)
    }

    /// Adds the key's [pending usage](Self::pending_usage) to `record`, as read from the
    /// store: its count to `usage_count`, and its latest use to `last_used_at` and
    /// `last_used_ip` when it is later than the stored one. The management API shows every
    /// key this way.
    ///
    /// A record read while a flush of the same key commits may, for that one read, show that
    /// flush's uses twice or not at all; the next read is exact again.
    pub fn include_pending_usage(&self, record: &mut KeyRecord) {
        let Some(pending) = self.pending_usage(record.id) else {
            return;
        };
        record.usage_count = record.usage_count.saturating_add(pending.count);
        if record
            .last_used_at
            .is_none_or(|at| at <= pending.last_used_at)
        {
            record.last_used_at = Some(pending.last_used_at);
            record.last_used_ip = pending.last_used_ip;
        }
    }

    /// The daily use counts of key `id` over the last `days` days (1 to 366) ending today,
    /// oldest first: one entry per day, zeros included, dates in UTC by the handle's
    /// [clock](Self::now). The uses not yet written ([`pending_usage`](Self::pending_usage))
    /// count on the day of their latest use, as the flush that writes them will count them.
    ///
    /// Whether the caller may see the key is the caller's decision; an unknown key has only
    /// zeros.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore, NewKey};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keyward = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
    /// let issued = keyward.create(NewKey::service("ci").scopes(["*"])).await?;
    /// keyward.verify(issued.token.expose_secret(), None).await?;
    /// keyward.flush_usage().await?;
    /// keyward.verify(issued.token.expose_secret(), None).await?;
    ///
    /// let days = keyward.usage_days(issued.record.id, 30).await?;
    /// assert_eq!(days.len(), 30);
    /// let today = days.last().expect("30 days");
    /// assert_eq!(today.date, keyward.now().date_naive());
    /// assert_eq!(today.count, 2, "one written, one pending");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ManageError::Validation`] naming `days` when it is 0 or above 366, or the store's
    /// error.
    pub async fn usage_days(&self, id: KeyId, days: u32) -> Result<Vec<DailyUsage>, ManageError> {
        if !(1..=MAX_USAGE_DAYS).contains(&days) {
            return Err(ValidationError::field(
                "days",
                format!("must be a number from 1 to {MAX_USAGE_DAYS}"),
            )
            .into());
        }
        let today = self.now().date_naive();
        let first = today
            .checked_sub_days(Days::new(u64::from(days - 1)))
            .unwrap_or(NaiveDate::MIN);
        let stored = self
            .inner
            .store
            .usage_days(id, first)
            .await
            .map_err(|err| ManageError::from_store(err, Some(id)))?;
        let mut series: Vec<DailyUsage> = first
            .iter_days()
            .take_while(|date| *date <= today)
            .map(|date| DailyUsage { date, count: 0 })
            .collect();
        let mut add = |date: NaiveDate, count: u64| {
            let offset = (date - first).num_days();
            if let Some(day) = usize::try_from(offset).ok().and_then(|i| series.get_mut(i)) {
                day.count = day.count.saturating_add(count);
            }
        };
        for day in stored {
            add(day.date, day.count);
        }
        if let Some(pending) = self.pending_usage(id) {
            add(pending.last_used_at.date_naive(), pending.count);
        }
        Ok(series)
    }
}

#[cfg(test)]
#[path = "usage_tests.rs"]
mod tests;
