//! Store lookups on the request path: at most a few at once (the bulkhead), one per digest
//! however many requests miss on it at the same time (shared lookups).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use keyward_core::{StoreError, StoreErrorKind, TokenDigest};
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

use crate::cache::Entry;
use crate::callers::CallerError;
use crate::rejection::{AuthError, InvalidToken};

/// How many store lookups one instance runs at once, and how long a cache miss waits for a
/// free slot before it is answered 503.
///
/// A flood of cache misses (forged tokens from many addresses, a cold start under load) then
/// queues in memory for a moment instead of piling onto the database's connection pool. The
/// default is 32 lookups at once and a wait of 250 ms; concurrent misses on the same token
/// share one lookup and take one slot.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use keyward::{Bulkhead, Keyward, MemoryStore};
///
/// let keyward = Keyward::builder(MemoryStore::new())
///     .prefix("books")
///     .bulkhead(Bulkhead::new(8).wait(Duration::from_millis(100)))
///     .build()?;
/// # let _ = keyward;
/// # Ok::<(), keyward::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Bulkhead {
    max_concurrent: usize,
    wait: Duration,
}

impl Default for Bulkhead {
    fn default() -> Self {
        Self {
            max_concurrent: 32,
            wait: Duration::from_millis(250),
        }
    }
}

impl Bulkhead {
    /// At most `max_concurrent` lookups at once (at least 1).
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            max_concurrent: max_concurrent.clamp(1, Semaphore::MAX_PERMITS),
            ..Self::default()
        }
    }

    /// How long a miss waits for a free slot.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
}

/// Why a lookup gave no entry. Shared between the requests of one lookup, so it is cheap to
/// clone; each request turns it into its own [`AuthError`].
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The store does not know the digest.
    Unknown,
    /// The store failed, timed out, or is not being asked (circuit open, bulkhead full).
    Store(Arc<StoreError>),
    /// The owner lookup failed.
    Callers(Arc<CallerError>),
}

impl Failure {
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::Store(Arc::new(StoreError::new(
            StoreErrorKind::Unavailable,
            message,
        )))
    }

    /// Whether a cached entry may stand in (`stale_if_error`).
    pub(crate) fn is_outage(&self) -> bool {
        !matches!(self, Self::Unknown)
    }

    pub(crate) fn to_error(&self) -> AuthError {
        match self {
            Self::Unknown => AuthError::InvalidToken(InvalidToken::Unknown),
            Self::Store(err) => {
                AuthError::StoreUnavailable(StoreError::new(err.kind(), err.message()))
            }
            Self::Callers(err) => AuthError::CallersFailed(CallerError::msg(err.to_string())),
        }
    }
}

pub(crate) type Loaded = Result<Arc<Entry>, Failure>;

/// The bulkhead and the lookups in flight.
#[derive(Debug)]
pub(crate) struct Lookups {
    slots: Semaphore,
    wait: Duration,
    rejections: ::metrics::Counter,
    in_flight: Mutex<HashMap<TokenDigest, Arc<OnceCell<Loaded>>>>,
}

impl Lookups {
    pub(crate) fn new(bulkhead: Bulkhead) -> Self {
        Self {
            slots: Semaphore::new(bulkhead.max_concurrent),
            wait: bulkhead.wait,
            rejections: crate::metrics::bulkhead_rejections(),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TokenDigest, Arc<OnceCell<Loaded>>>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A bulkhead slot, waiting at most the configured time.
    pub(crate) async fn slot(&self) -> Result<SemaphorePermit<'_>, Failure> {
        match tokio::time::timeout(self.wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.rejections.increment(1);
                Err(Failure::unavailable("too many key lookups at once"))
            }
        }
    }

    /// Runs `load` for `digest`, or waits for the lookup of another request already running
    /// for it and shares its result. A `load` that does not start (`Err`, its request may not
    /// look up) leaves the next waiting request to run its own.
    pub(crate) async fn share<F, Fut, E>(&self, digest: &TokenDigest, load: F) -> Result<Loaded, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, E>>,
    {
        let cell = Arc::clone(self.lock().entry(*digest).or_default());
        let guard = Leave {
            lookups: self,
            digest,
            cell: &cell,
        };
        let loaded = cell.get_or_try_init(load).await.cloned();
        drop(guard);
        loaded
    }
}

/// Removes a finished (or abandoned) lookup from the map.
struct Leave<'a> {
    lookups: &'a Lookups,
    digest: &'a TokenDigest,
    cell: &'a Arc<OnceCell<Loaded>>,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.lookups.lock();
        if let Some(current) = in_flight.get(self.digest) {
            // Finished: later requests look again. Abandoned by every request: forget it.
            let alone = Arc::strong_count(self.cell) <= 2;
            if Arc::ptr_eq(current, self.cell) && (self.cell.initialized() || alone) {
                in_flight.remove(self.digest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_lookups_of_one_digest_share_one_call() {
        let lookups = Arc::new(Lookups::new(Bulkhead::default()));
        let calls = Arc::new(AtomicUsize::new(0));
        let digest = TokenDigest::from_bytes([7; 32]);
        let (release, released) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (lookups, calls, mut released) =
                    (Arc::clone(&lookups), Arc::clone(&calls), released.clone());
                tokio::spawn(async move {
                    lookups
                        .share(&digest, || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            let _ = released.wait_for(|r| *r).await;
                            Ok::<Loaded, ()>(Err(Failure::Unknown))
                        })
                        .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        for task in tasks {
            assert!(matches!(task.await.unwrap(), Ok(Err(Failure::Unknown))));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(lookups.lock().is_empty(), "finished lookups are forgotten");
    }

    #[tokio::test]
    async fn an_abandoned_lookup_is_forgotten() {
        let lookups = Lookups::new(Bulkhead::default());
        let digest = TokenDigest::from_bytes([9; 32]);
        let pending = lookups.share(&digest, std::future::pending::<Result<Loaded, ()>>);
        assert!(
            tokio::time::timeout(Duration::from_millis(10), pending)
                .await
                .is_err()
        );
        assert!(lookups.lock().is_empty());
    }

    #[tokio::test]
    async fn the_bulkhead_refuses_after_its_wait() {
        let lookups = Lookups::new(Bulkhead::new(1).wait(Duration::from_millis(10)));
        let held = lookups.slot().await.unwrap();
        assert!(matches!(lookups.slot().await, Err(Failure::Store(_))));
        drop(held);
        assert!(lookups.slot().await.is_ok());
    }
}
