//! The verification cache: positive entries by digest, a small negative cache, and an index
//! from key id to digests so a key can be dropped by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use keyward_core::{KeyId, KeyRecord, TokenDigest};
use moka::sync::Cache;

use crate::hot;
use crate::presence::Presence;
use crate::principal::Principal;
use crate::usage::KeyUsage;

/// How keyward caches verified keys.
///
/// A positive entry holds the key record and the principal built from it (effective scopes
/// included), so a cache hit costs no store or owner lookup; the key's policy (revocation,
/// expiry, grace period, IP allow-list) is still evaluated on every request against the
/// cached record. The negative cache remembers digests the store does not know, so a flood
/// of well-formed but unknown tokens reaches the store once per digest per TTL.
///
/// Changes made through the [`Keyward`](crate::Keyward) handle and changes announced by the
/// store's change feed drop entries at once; changes made elsewhere (another instance, the
/// command line) and read from the store's change log within the
/// [poll interval](crate::KeywardBuilder::change_poll_interval) (500 ms by default); the TTL
/// bounds staleness for stores with neither.
///
/// In front of the shared cache each thread keeps a memo of the last few dozen keys it found
/// there (at most 64 per thread), so that a cache hit costs little more than a thread-local
/// array lookup. The memo follows the cache: an invalidation ends it at once, and so does the
/// TTL. A bitmap of the cached digests (16 bits per key of capacity, from 512 bytes to 2 MiB)
/// turns away a token the cache does not hold, a forged one in a flood most of all, with one
/// memory load instead of a miss in the shared cache.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use keyward::CacheConfig;
///
/// let config = CacheConfig::default()
///     .ttl(Duration::from_secs(30))
///     .capacity(50_000)
///     .negative_ttl(Duration::from_secs(2))
///     .negative_capacity(10_000);
/// # let _ = config;
/// let no_cache = CacheConfig::disabled();
/// # let _ = no_cache;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct CacheConfig {
    enabled: bool,
    ttl: Duration,
    capacity: u64,
    negative_ttl: Duration,
    negative_capacity: u64,
}

impl Default for CacheConfig {
    /// Positive entries for 60 s (10 000 keys), unknown digests for 5 s (10 000 digests).
    fn default() -> Self {
        Self {
            enabled: true,
            ttl: Duration::from_secs(60),
            capacity: 10_000,
            negative_ttl: Duration::from_secs(5),
            negative_capacity: 10_000,
        }
    }
}

impl CacheConfig {
    /// No caching: every request reads the store (and looks up key owners).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// How long a verified key is kept.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How many verified keys are kept.
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// How long an unknown digest is remembered; zero turns the negative cache off.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// How many unknown digests are remembered; zero turns the negative cache off.
    pub fn negative_capacity(mut self, capacity: u64) -> Self {
        self.negative_capacity = capacity;
        self
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled && !self.ttl.is_zero() && self.capacity > 0
    }
}

/// A verified key as cached.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) record: KeyRecord,
    pub(crate) grant: Grant,
    /// The key's usage counter.
    pub(crate) usage: Arc<KeyUsage>,
    /// When the store was read.
    pub(crate) loaded_at: Instant,
}

/// What the key may do, as resolved when it was loaded.
#[derive(Debug)]
pub(crate) enum Grant {
    /// The principal with its effective scopes.
    Resolved(Principal),
    /// The owner no longer exists.
    OwnerGone,
    /// The key was unusable when loaded, so its owner was not looked up.
    Unresolved,
}

/// What the cache holds for a digest.
pub(crate) enum Lookup<R> {
    /// A fresh entry, and what was made of it.
    Fresh(R),
    /// Older than the TTL but inside the `stale_if_error` window: reload, and use it only if
    /// the store fails.
    Stale(Arc<Entry>),
    Absent,
}

/// A digest's bytes. Lookups compare them plainly: a digest of a 238-bit secret gives a timing
/// observer nothing to steer towards a token, and a hash map's own probing is not constant time
/// anyway. (`TokenDigest`'s own equality stays constant-time.)
type Key = [u8; 32];

/// Digests are uniform already, and the negative cache fills only as fast as the failure budget
/// lets store lookups through: a fast seeded hash is enough.
pub(crate) type Hasher = foldhash::fast::RandomState;

#[derive(Debug)]
pub(crate) struct VerifyCache {
    /// Names this cache's entries in the per-thread memo ([`hot`]).
    id: u64,
    positive: Cache<Key, Arc<Entry>, Hasher>,
    /// Which digests `positive` may hold: a digest it cannot hold skips it.
    presence: Presence,
    /// How long an entry is used without asking the store again (the TTL).
    fresh_for: Duration,
    /// Whether entries are kept past their TTL, for `stale_if_error`.
    keeps_stale: bool,
    negative: Option<Cache<Key, (), Hasher>>,
    /// Key id → digests cached for it. Inserts and invalidations take this lock, so an entry
    /// read from the store before an invalidation is never inserted after it.
    index: Mutex<HashMap<KeyId, Vec<Key>>>,
    /// Bumped by every invalidation before and after it removes entries: a store lookup that
    /// started before the first bump does not insert, and a memo of an entry read before the
    /// second is not used ([`hot`]).
    epoch: AtomicU64,
}

impl VerifyCache {
    /// A cache per `config`; entries are kept `stale_if_error` past their TTL, to stand in
    /// while the store fails.
    pub(crate) fn new(config: &CacheConfig, stale_if_error: Duration) -> Option<Self> {
        if !config.is_enabled() {
            return None;
        }
        let negative =
            (!config.negative_ttl.is_zero() && config.negative_capacity > 0).then(|| {
                Cache::builder()
                    .time_to_live(config.negative_ttl)
                    .max_capacity(config.negative_capacity)
                    .build_with_hasher(Hasher::default())
            });
        Some(Self {
            id: hot::id(),
            positive: Cache::builder()
                .time_to_live(config.ttl.saturating_add(stale_if_error))
                .max_capacity(config.capacity)
                .build_with_hasher(Hasher::default()),
            presence: Presence::new(config.capacity),
            fresh_for: config.ttl,
            keeps_stale: !stale_if_error.is_zero(),
            negative,
            index: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        })
    }

    /// The key cached for `digest`: `use_fresh` applied to it if it is fresh. This thread's
    /// memo of the entry ([`hot`]) answers first.
    pub(crate) fn lookup<R>(
        &self,
        digest: &TokenDigest,
        use_fresh: impl Fn(&Entry) -> R,
    ) -> Lookup<R> {
        let key = digest.as_bytes();
        // Loaded before the shared cache is read, so that an invalidation running meanwhile
        // outdates the memo taken below.
        let epoch = self.epoch.load(Ordering::Acquire);
        if let Some(result) = hot::with(self.id, epoch, key, &use_fresh) {
            return Lookup::Fresh(result);
        }
        if !self.presence.may_hold(key) {
            return Lookup::Absent;
        }
        let Some(entry) = self.positive.get(key) else {
            return Lookup::Absent;
        };
        match entry.loaded_at.checked_add(self.fresh_for) {
            Some(until) if self.keeps_stale && until <= Instant::now() => Lookup::Stale(entry),
            fresh_until => {
                if let Some(until) = fresh_until {
                    hot::remember(self.id, epoch, key, until, &entry);
                }
                Lookup::Fresh(use_fresh(&entry))
            }
        }
    }

    /// Whether the store recently said no key has `digest`.
    pub(crate) fn is_unknown(&self, digest: &TokenDigest) -> bool {
        self.negative
            .as_ref()
            .is_some_and(|negative| negative.contains_key(digest.as_bytes()))
    }

    /// The epoch to pass to [`insert`](Self::insert) after reading the store.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<KeyId, Vec<Key>>> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, digest: TokenDigest, entry: Arc<Entry>, epoch: u64) {
        let id = entry.record.id;
        let mut index = self.lock();
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        let key = *digest.as_bytes();
        let keys = index.entry(id).or_default();
        keys.retain(|k| self.positive.contains_key(k));
        if !keys.contains(&key) {
            keys.push(key);
        }
        let rebuild = self.presence.insert(&key);
        self.positive.insert(key, entry);
        if rebuild {
            let held: Vec<Key> = self.positive.iter().map(|(key, _)| *key).collect();
            self.presence.rebuild(&held);
        }
    }

    pub(crate) fn insert_unknown(&self, digest: TokenDigest, epoch: u64) {
        if let Some(negative) = &self.negative {
            let _index = self.lock();
            if self.epoch.load(Ordering::Acquire) == epoch {
                negative.insert(*digest.as_bytes(), ());
            }
        }
    }

    /// Drops every cached digest of `id`.
    pub(crate) fn invalidate_key(&self, id: KeyId) {
        let keys = {
            let mut index = self.lock();
            self.epoch.fetch_add(1, Ordering::AcqRel);
            index.remove(&id)
        };
        for key in keys.unwrap_or_default() {
            self.positive.invalidate(&key);
        }
        self.outdate_memos();
    }

    /// The second bump of an invalidation (see [`epoch`](Self::epoch)): memos of entries read
    /// before the entries were removed are not used again.
    fn outdate_memos(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Forgets that `digest` was unknown (a key with it was just created).
    pub(crate) fn forget_unknown(&self, digest: &TokenDigest) {
        let _index = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(negative) = &self.negative {
            negative.invalidate(digest.as_bytes());
        }
    }

    /// Drops every cached key of `owner`.
    pub(crate) fn invalidate_owner(&self, owner: &str) {
        let _index = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for (key, entry) in &self.positive {
            if entry.record.owner.as_deref() == Some(owner) {
                self.positive.invalidate(&*key);
            }
        }
        self.outdate_memos();
    }

    pub(crate) fn invalidate_all(&self) {
        let mut index = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        index.clear();
        self.positive.invalidate_all();
        self.presence.rebuild(&[]);
        if let Some(negative) = &self.negative {
            negative.invalidate_all();
        }
        self.outdate_memos();
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
