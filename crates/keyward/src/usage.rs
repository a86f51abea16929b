//! Usage counted in memory and written to the store in batches.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use keyward_core::{KeyId, UsageUpdate};

/// Uses of one key since the last flush. The cache entry of the key holds it, so counting a
/// request on a cache hit is two atomic operations and a lock no other key shares.
#[derive(Debug)]
pub(crate) struct KeyUsage {
    count: AtomicU64,
    /// Microseconds since the epoch of the latest use; `i64::MIN` when none is pending.
    last_used: AtomicI64,
    last_ip: Mutex<Option<IpAddr>>,
    /// [`fingerprint`] of `last_ip`, so that an unchanged address takes no lock.
    last_ip_seen: AtomicU64,
}

impl KeyUsage {
    fn new() -> Self {
        Self {
            count: AtomicU64::new(0),
            last_used: AtomicI64::new(i64::MIN),
            last_ip: Mutex::new(None),
            last_ip_seen: AtomicU64::new(fingerprint(None)),
        }
    }

    /// Counts `count` uses, the latest at `at` from `ip`. A client that keeps its address
    /// costs two atomic operations and a comparison, no lock.
    pub(crate) fn record(&self, count: u64, at: DateTime<Utc>, ip: Option<IpAddr>) {
        self.count.fetch_add(count, Ordering::Relaxed);
        let micros = at.timestamp_micros();
        if self.last_used.fetch_max(micros, Ordering::Relaxed) <= micros {
            let seen = fingerprint(ip);
            if self.last_ip_seen.swap(seen, Ordering::Relaxed) != seen {
                *self.last_ip.lock().unwrap_or_else(PoisonError::into_inner) = ip;
            }
        }
    }

    /// Takes the pending uses, if any.
    fn take(&self, id: KeyId) -> Option<UsageUpdate> {
        let count = self.count.swap(0, Ordering::AcqRel);
        if count == 0 {
            return None;
        }
        let micros = self.last_used.load(Ordering::Relaxed);
        Some(UsageUpdate {
            id,
            count,
            last_used_at: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
            last_used_ip: *self.last_ip.lock().unwrap_or_else(PoisonError::into_inner),
        })
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
#[derive(Debug, Default)]
pub(crate) struct UsageRecorder {
    keys: Mutex<HashMap<KeyId, Arc<KeyUsage>>>,
}

impl UsageRecorder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<KeyId, Arc<KeyUsage>>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counter of `id`, shared by every cache entry of the key.
    pub(crate) fn counter(&self, id: KeyId) -> Arc<KeyUsage> {
        Arc::clone(
            self.lock()
                .entry(id)
                .or_insert_with(|| Arc::new(KeyUsage::new())),
        )
    }

    /// Takes everything counted so far, and forgets the counters no cache entry holds.
    pub(crate) fn drain(&self) -> Vec<UsageUpdate> {
        let mut batch = Vec::new();
        self.lock().retain(|id, usage| match usage.take(*id) {
            Some(update) => {
                batch.push(update);
                true
            }
            None => Arc::strong_count(usage) > 1,
        });
        batch
    }

    /// Puts back a batch whose write failed, so that nothing is lost.
    pub(crate) fn restore(&self, batch: &[UsageUpdate]) {
        for update in batch {
            self.counter(update.id)
                .record(update.count, update.last_used_at, update.last_used_ip);
        }
    }

    /// Uses counted and not yet written, over every key.
    pub(crate) fn pending(&self) -> u64 {
        self.lock()
            .values()
            .map(|usage| usage.count.load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_merge_and_restore() {
        let recorder = UsageRecorder::new();
        let (a, b) = (KeyId::new(), KeyId::new());
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let counter = recorder.counter(a);
        counter.record(1, t0, None);
        counter.record(1, t0 + chrono::TimeDelta::seconds(5), Some(ip));
        recorder
            .counter(a)
            .record(1, t0 + chrono::TimeDelta::seconds(1), None);
        recorder.counter(b).record(1, t0, None);
        assert_eq!(recorder.pending(), 4);
        let batch = recorder.drain();
        let a_update = batch.iter().find(|u| u.id == a).unwrap();
        assert_eq!(a_update.count, 3);
        assert_eq!(a_update.last_used_ip, Some(ip));
        assert_eq!(a_update.last_used_at, t0 + chrono::TimeDelta::seconds(5));
        assert!(recorder.drain().is_empty());
        recorder.restore(&batch);
        counter.record(1, t0, None);
        let again = recorder.drain();
        assert_eq!(again.iter().find(|u| u.id == a).unwrap().count, 4);
        assert_eq!(again.iter().find(|u| u.id == b).unwrap().count, 1);
    }

    #[test]
    fn idle_counters_are_forgotten_unless_held() {
        let recorder = UsageRecorder::new();
        let (held, idle) = (KeyId::new(), KeyId::new());
        let counter = recorder.counter(held);
        drop(recorder.counter(idle));
        assert!(recorder.drain().is_empty());
        assert_eq!(recorder.lock().len(), 1);
        counter.record(2, Utc::now(), None);
        assert_eq!(recorder.drain()[0].count, 2);
    }
}
