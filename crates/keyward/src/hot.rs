//! A per-thread memo in front of the verification cache: the entries a thread last found fresh
//! there, by digest.
//!
//! A hit costs a thread-local array lookup and a digest comparison: the shared cache's own
//! bookkeeping on every read (a concurrent hash table, a log of reads for its eviction policy,
//! its expiry clock) is skipped, and no reference count is touched, so threads serving the
//! same key share no cache line.
//!
//! Every slot carries the [epoch](crate::cache::VerifyCache::epoch) of the cache it was read
//! from; an invalidation moves the epoch after removing entries from the shared cache, so a
//! memo taken before (or during) an invalidation is never used after it. A slot also ends when
//! its entry stops being fresh. The shared cache evicting an entry for room does not end its
//! memo: the entry is still right until it is invalidated or its TTL passes.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::cache::Entry;

/// Slots per thread; a digest's first byte picks its slot (digests are uniform).
const SLOTS: usize = 64;

struct Slot {
    /// The [`id`] of the cache the entry was read from.
    cache: u64,
    epoch: u64,
    digest: [u8; 32],
    fresh_until: Instant,
    entry: Arc<Entry>,
}

thread_local! {
    static MEMO: RefCell<[Option<Slot>; SLOTS]> =
        const { RefCell::new([const { None }; SLOTS]) };
}

/// A number no other cache in this process has, for its slots.
pub(crate) fn id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn slot(digest: &[u8; 32]) -> usize {
    usize::from(digest[0]) % SLOTS
}

/// Runs `f` on the entry this thread remembers for `digest` from cache `cache` at `epoch`,
/// if it is still fresh. The clock is read only for a remembered digest.
pub(crate) fn with<R>(
    cache: u64,
    epoch: u64,
    digest: &[u8; 32],
    f: impl Fn(&Entry) -> R,
) -> Option<R> {
    MEMO.try_with(|memo| {
        let memo = memo.try_borrow().ok()?;
        match &memo[slot(digest)] {
            Some(slot)
                if slot.cache == cache
                    && slot.epoch == epoch
                    && slot.digest == *digest
                    && Instant::now() < slot.fresh_until =>
            {
                Some(f(&slot.entry))
            }
            _ => None,
        }
    })
    .ok()
    .flatten()
}

/// Remembers `entry`, read from cache `cache` at `epoch` (loaded before the read), fresh until
/// `fresh_until`.
pub(crate) fn remember(
    cache: u64,
    epoch: u64,
    digest: &[u8; 32],
    fresh_until: Instant,
    entry: &Arc<Entry>,
) {
    let _ = MEMO.try_with(|memo| {
        if let Ok(mut memo) = memo.try_borrow_mut() {
            memo[slot(digest)] = Some(Slot {
                cache,
                epoch,
                digest: *digest,
                fresh_until,
                entry: Arc::clone(entry),
            });
        }
    });
}
