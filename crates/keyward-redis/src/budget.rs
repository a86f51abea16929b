//! The cluster-wide failure budget: counted locally at once, summed in Redis in the background.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keyward::{FailureBudget, LocalFailureBudget};
use redis::aio::ConnectionManager;

use crate::Redis;
use crate::health::Health;

/// The default interval between two syncs with Redis.
const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(200);

/// How long a sync may take.
const SYNC_TIMEOUT: Duration = Duration::from_secs(1);

/// A [`FailureBudget`] shared by the instances through Redis: a client address may present at
/// most `limit` bad tokens per window to the whole cluster, not `limit` to each instance.
///
/// Both trait methods stay local and lock-free of Redis, as keyward requires: failures are
/// counted at once by an in-memory [`LocalFailureBudget`] and queued; a background task sends
/// the queued charges every 200 ms (one pipeline: `INCRBY` and `EXPIRE` per client and window)
/// and reads back the cluster's totals for the clients it knows, so a client that spent its
/// budget on other instances is refused here too within about one sync interval. The shared
/// windows are fixed, aligned on the Unix epoch (minute by minute by default); the local
/// budget keeps its own. IPv6 clients are counted per /64, as keyward does.
///
/// While Redis is down each instance counts alone (one warning per outage), and the queued
/// charges of that time are dropped.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use keyward_redis::{Redis, RedisFailureBudget};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = Redis::connect("redis://127.0.0.1:6379", "books").await?;
/// let keys = keyward::Keyward::builder(keyward::MemoryStore::new())
///     .prefix("books")
///     .failure_budget(RedisFailureBudget::new(&redis, 60, Duration::from_secs(60)))
///     .build()?;
/// # let _ = keys;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisFailureBudget {
    shared: Arc<Shared>,
}

struct Shared {
    local: LocalFailureBudget,
    limit: u32,
    window: Duration,
    prefix: String,
    /// Charges not yet sent, per client bucket.
    pending: Mutex<HashMap<IpAddr, u32>>,
    /// The cluster's totals as last read: bucket → (window number, failures).
    totals: RwLock<HashMap<IpAddr, (u64, u32)>>,
}

impl fmt::Debug for RedisFailureBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFailureBudget")
            .field("limit", &self.shared.limit)
            .field("window", &self.shared.window)
            .field("prefix", &self.shared.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisFailureBudget {
    /// At most `limit` failures per client address per `window` (at least one second) for
    /// the whole cluster, synced every 200 ms. Must be called inside a Tokio runtime: it
    /// starts the sync task, which ends when the last clone is dropped.
    #[must_use]
    pub fn new(redis: &Redis, limit: u32, window: Duration) -> Self {
        Self::with_sync_interval(redis, limit, window, DEFAULT_SYNC_INTERVAL)
    }

    /// As [`new`](Self::new), syncing every `interval` (at least 10 ms).
    #[must_use]
    pub fn with_sync_interval(
        redis: &Redis,
        limit: u32,
        window: Duration,
        interval: Duration,
    ) -> Self {
        let window = Duration::from_secs(window.as_secs().max(1));
        let shared = Arc::new(Shared {
            local: LocalFailureBudget::new(limit, window),
            limit,
            window,
            prefix: redis.key("budget:"),
            pending: Mutex::default(),
            totals: RwLock::default(),
        });
        tokio::spawn(sync_loop(
            Arc::downgrade(&shared),
            redis.connection.clone(),
            interval.max(Duration::from_millis(10)),
        ));
        Self { shared }
    }
}

impl FailureBudget for RedisFailureBudget {
    fn exhausted(&self, client: IpAddr) -> Option<Duration> {
        let shared = &*self.shared;
        shared
            .local
            .exhausted(client)
            .or_else(|| shared.spent_in_cluster(client))
    }

    fn charge(&self, client: IpAddr) {
        self.shared.local.charge(client);
        self.shared.queue(client);
    }

    /// Units are taken from the local budget, so this instance's lookups in flight count at
    /// once; the cluster learns of the failures they end in.
    fn reserve(&self, client: IpAddr) -> Result<bool, Duration> {
        let shared = &*self.shared;
        match shared.spent_in_cluster(client) {
            Some(wait) => Err(wait),
            None => shared.local.reserve(client),
        }
    }

    fn settle(&self, client: IpAddr, failed: bool) {
        self.shared.local.settle(client, failed);
        if failed {
            self.shared.queue(client);
        }
    }
}

impl Shared {
    /// Whether the cluster's total for `client`, as last read, spent the budget.
    fn spent_in_cluster(&self, client: IpAddr) -> Option<Duration> {
        let (window, into) = self.window_now();
        let totals = self.totals.read().unwrap_or_else(PoisonError::into_inner);
        match totals.get(&bucket(client)) {
            Some(&(seen, failures)) if seen == window && failures >= self.limit.max(1) => {
                Some(self.window.saturating_sub(into))
            }
            _ => None,
        }
    }

    /// Queues one failure of `client` for the next sync.
    fn queue(&self, client: IpAddr) {
        *self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(bucket(client))
            .or_default() += 1;
    }

    /// The current shared window's number and how far into it we are.
    fn window_now(&self) -> (u64, Duration) {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = self.window.as_secs();
        let number = since_epoch.as_secs() / secs;
        let into = since_epoch.saturating_sub(Duration::from_secs(number * secs));
        (number, into)
    }

    /// Sends the queued charges and reads back the totals of every client seen this window.
    async fn sync(&self, connection: &mut ConnectionManager) -> redis::RedisResult<()> {
        let charges: Vec<(IpAddr, u32)> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        let (window, _) = self.window_now();
        let known: Vec<IpAddr> = {
            let mut totals = self.totals.write().unwrap_or_else(PoisonError::into_inner);
            totals.retain(|_, (seen, _)| *seen == window);
            totals
                .keys()
                .filter(|ip| !charges.iter().any(|(charged, _)| charged == *ip))
                .copied()
                .collect()
        };
        if charges.is_empty() && known.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (ip, count) in &charges {
            let key = format!("{}{window}:{ip}", self.prefix);
            pipe.incr(&key, *count)
                .expire(
                    &key,
                    i64::try_from(self.window.as_secs() * 2).unwrap_or(i64::MAX),
                )
                .ignore();
        }
        for ip in &known {
            pipe.get(format!("{}{window}:{ip}", self.prefix));
        }
        let answers: Vec<Option<u32>> = pipe.query_async(connection).await?;
        let mut totals = self.totals.write().unwrap_or_else(PoisonError::into_inner);
        for (ip, failures) in charges.iter().map(|(ip, _)| ip).chain(&known).zip(answers) {
            totals.insert(*ip, (window, failures.unwrap_or(0)));
        }
        Ok(())
    }
}

async fn sync_loop(shared: Weak<Shared>, mut connection: ConnectionManager, period: Duration) {
    let health = Health::new("failure budget");
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if !health.should_try() {
            shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            continue;
        }
        match tokio::time::timeout(SYNC_TIMEOUT, shared.sync(&mut connection)).await {
            Ok(Ok(())) => health.succeeded(),
            Ok(Err(err)) => health.failed(&err),
            Err(_) => health.failed(&"no answer within 1 s"),
        }
    }
}

/// The address a budget is kept for: the address itself, or its /64 for IPv6.
fn bucket(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_ipv6_per_slash_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(bucket(ip("2001:db8:1:2::1")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(bucket(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
