//! Following the store's change log: a task reads what changed since its last read, every
//! [`change_poll_interval`](crate::KeywardBuilder::change_poll_interval), and drops those keys
//! from the cache.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use keyward_core::{ChangeBatch, ChangeCursor, ChangeKind, StoreError, StoreErrorKind};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::KeywardBuilder;
use crate::handle::Inner;

/// The default interval between two reads of the store's change log.
pub const DEFAULT_CHANGE_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Changes read at most per query; a longer backlog is read in several queries at once.
const POLL_BATCH: usize = 1000;

/// How long one read may take before it is abandoned until the next interval.
const POLL_TIMEOUT: Duration = Duration::from_secs(5);

impl KeywardBuilder {
    /// How often the handle reads the store's change log, to drop from its cache the keys
    /// that other instances (or the `keyward` command line) changed. Default
    /// [`DEFAULT_CHANGE_POLL_INTERVAL`], 500 ms: a revoke anywhere is refused everywhere within
    /// about that time, on every store that keeps a log (the database stores, on SQLite,
    /// PostgreSQL and MySQL alike, and [`MemoryStore`](crate::MemoryStore)).
    ///
    /// Each read is one indexed query whatever the number of keys. It runs in a background
    /// task (started with the others, ended by [`Keyward::shutdown`](crate::Keyward::shutdown)),
    /// only when the cache is on and the store keeps a log. A read that fails (the store is
    /// down) is tried again at the next interval and continues where the last one stopped,
    /// so only the keys changed meanwhile are dropped; if the store pruned the rows in
    /// between, the whole cache is. A change feed's reconnect (PostgreSQL `LISTEN`) triggers
    /// a read at once instead of dropping the cache. Zero turns the reads off: other
    /// instances' changes then reach this one through a change feed or when the cache TTL
    /// ends.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .change_poll_interval(Duration::from_millis(250))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn change_poll_interval(mut self, interval: Duration) -> Self {
        self.change_poll_interval = interval;
        self
    }
}

/// The poll task's state, owned by the handle.
#[derive(Debug)]
pub(crate) struct ChangePoll {
    interval: Duration,
    /// Wakes the task for a read now (a change feed reconnected).
    wake: Arc<Notify>,
    /// Whether the task follows the log: it has a cursor and the store keeps a log. Until
    /// then a feed's resync drops the cache as it always did.
    following: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ChangePoll {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            wake: Arc::new(Notify::new()),
            following: AtomicBool::new(false),
            task: Mutex::new(None),
        }
    }

    fn task(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.task.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the task on `runtime`, when the cache is on and reads are not turned off.
    pub(crate) fn start(inner: &Arc<Inner>, runtime: &tokio::runtime::Handle) {
        let poll = &inner.change_poll;
        if inner.cache.is_none() || poll.interval.is_zero() {
            return;
        }
        let task = runtime.spawn(poll_loop(
            Arc::downgrade(inner),
            poll.interval,
            Arc::clone(&poll.wake),
        ));
        *poll.task() = Some(task);
    }

    /// Ends the task.
    pub(crate) fn stop(&self) {
        self.following.store(false, Ordering::Release);
        if let Some(task) = self.task().take() {
            task.abort();
        }
    }
}

impl Drop for ChangePoll {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a change feed's [`Resync`](keyward_core::KeyChange::Resync) does: notifications may
/// have been lost, so read the change log at once when it is followed (it holds every change
/// the notifications would have reported); drop the whole cache when it is not.
pub(crate) fn resync(inner: &Inner) {
    if inner.change_poll.following.load(Ordering::Acquire) {
        tracing::debug!("keyward change feed: resync, reading the change log");
        inner.change_poll.wake.notify_one();
    } else if let Some(cache) = &inner.cache {
        tracing::debug!("keyward change feed: resync, dropping the cache");
        cache.invalidate_all();
    }
}

async fn poll_loop(inner: Weak<Inner>, period: Duration, wake: Arc<Notify>) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reader = Reader::default();
    loop {
        // Waits without holding the handle, so that dropping it ends the task.
        tokio::select! {
            _ = interval.tick() => {}
            () = wake.notified() => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        if !reader.read(&inner).await {
            tracing::debug!("the key store keeps no change log; not polling it");
            return;
        }
    }
}

/// Where the task stands in the log, and whether its last read failed.
#[derive(Debug, Default)]
struct Reader {
    cursor: Option<ChangeCursor>,
    /// The last read failed (logged once until one succeeds).
    failing: bool,
    /// A read failed before the first cursor was known: keys cached meanwhile were not
    /// followed.
    blind: bool,
}

impl Reader {
    /// Reads until the log is exhausted or a read fails; `false` when the store keeps no log.
    async fn read(&mut self, inner: &Inner) -> bool {
        loop {
            let read = tokio::time::timeout(
                POLL_TIMEOUT,
                inner.store.changes_since(self.cursor.clone(), POLL_BATCH),
            )
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    "reading the change log did not finish in time",
                ))
            });
            let batch = match read {
                Ok(Some(batch)) => batch,
                Ok(None) => return false,
                Err(err) => {
                    self.failed(&err);
                    return true;
                }
            };
            if self.failing {
                self.failing = false;
                tracing::info!("keyward reads the change log again; catching up");
            }
            let more = batch.more;
            self.apply(inner, batch);
            inner.change_poll.following.store(true, Ordering::Release);
            if !more {
                return true;
            }
        }
    }

    fn failed(&mut self, err: &StoreError) {
        if self.cursor.is_none() {
            self.blind = true;
        }
        if self.failing {
            tracing::debug!(error = %err, "keyward still cannot read the change log");
        } else {
            self.failing = true;
            tracing::warn!(
                error = %err,
                "keyward cannot read the change log; will retry and catch up"
            );
        }
    }

    fn apply(&mut self, inner: &Inner, batch: ChangeBatch) {
        let Some(cache) = &inner.cache else { return };
        let first = self.cursor.is_none();
        self.cursor = Some(batch.cursor);
        if batch.truncated || (first && std::mem::take(&mut self.blind)) {
            tracing::warn!("keyward missed part of the change log; dropping the cache");
            cache.invalidate_all();
            return;
        }
        for change in batch.changes {
            match (change.kind, change.key_id, change.owner) {
                // A new key is in no cache, and its digest in no negative cache; a notice
                // (expiring soon, expired, rate limited) changes nothing stored; a row
                // without key or owner names nothing to drop.
                (ChangeKind::Created, _, _) | (_, None, None) => {}
                (kind, _, _) if !kind.invalidates() => {}
                (_, Some(id), _) => {
                    tracing::trace!(key_id = %id, seq = change.seq, "keyward change log: key changed");
                    cache.invalidate_key(id);
                }
                (_, None, Some(owner)) => {
                    tracing::trace!(%owner, seq = change.seq, "keyward change log: owner changed");
                    cache.invalidate_owner(&owner);
                }
            }
        }
    }
}
