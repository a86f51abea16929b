//! Usage counted in memory and written to the store in batches.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use keyward_core::{KeyId, UsageUpdate};

const SHARDS: usize = 16;

/// Per-key request counts since the last flush, in shards so that concurrent requests on
/// different keys rarely share a lock. A request never writes to the store; a flush writes one
/// update per key.
#[derive(Debug)]
pub(crate) struct UsageRecorder {
    shards: [Mutex<HashMap<KeyId, Pending>>; SHARDS],
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    count: u64,
    last_used_at: DateTime<Utc>,
    last_used_ip: Option<IpAddr>,
}

impl UsageRecorder {
    pub(crate) fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }

    fn shard(&self, id: KeyId) -> MutexGuard<'_, HashMap<KeyId, Pending>> {
        // UUID v7 ends in random bits.
        let index = (id.as_uuid().as_u128() % SHARDS as u128) as usize;
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `count` uses of `id`, the latest at `at` from `ip`.
    pub(crate) fn record(&self, id: KeyId, count: u64, at: DateTime<Utc>, ip: Option<IpAddr>) {
        let mut shard = self.shard(id);
        match shard.get_mut(&id) {
            Some(pending) => {
                pending.count += count;
                if at >= pending.last_used_at {
                    pending.last_used_at = at;
                    pending.last_used_ip = ip;
                }
            }
            None => {
                shard.insert(
                    id,
                    Pending {
                        count,
                        last_used_at: at,
                        last_used_ip: ip,
                    },
                );
            }
        }
    }

    /// Takes everything counted so far.
    pub(crate) fn drain(&self) -> Vec<UsageUpdate> {
        let mut batch = Vec::new();
        for shard in &self.shards {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            batch.extend(taken.into_iter().map(|(id, p)| UsageUpdate {
                id,
                count: p.count,
                last_used_at: p.last_used_at,
                last_used_ip: p.last_used_ip,
            }));
        }
        batch
    }

    /// Puts back a batch whose write failed, so that nothing is lost.
    pub(crate) fn restore(&self, batch: &[UsageUpdate]) {
        for update in batch {
            self.record(
                update.id,
                update.count,
                update.last_used_at,
                update.last_used_ip,
            );
        }
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
        recorder.record(a, 1, t0, None);
        recorder.record(a, 1, t0 + chrono::TimeDelta::seconds(5), Some(ip));
        recorder.record(a, 1, t0 + chrono::TimeDelta::seconds(1), None);
        recorder.record(b, 1, t0, None);
        let mut batch = recorder.drain();
        batch.sort_by_key(|u| u.id);
        let a_update = batch.iter().find(|u| u.id == a).unwrap();
        assert_eq!(a_update.count, 3);
        assert_eq!(a_update.last_used_ip, Some(ip));
        assert_eq!(a_update.last_used_at, t0 + chrono::TimeDelta::seconds(5));
        assert!(recorder.drain().is_empty());
        recorder.restore(&batch);
        recorder.record(a, 1, t0, None);
        let again = recorder.drain();
        assert_eq!(again.iter().find(|u| u.id == a).unwrap().count, 4);
        assert_eq!(again.iter().find(|u| u.id == b).unwrap().count, 1);
    }
}
