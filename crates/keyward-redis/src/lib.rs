//! Redis for keyward clusters: when an application runs several instances behind a load
//! balancer, this crate makes their limits and caches agree.
//!
//! - [`RedisRateLimiter`]: a key's `rate_limit` holds for the whole cluster (GCRA in one
//!   atomic Lua script on Redis server time, one round trip per request of a limited key;
//!   keys without a limit never touch Redis).
//! - [`RedisChangeFeed`]: every change made through keyward on one instance (revoke, delete,
//!   update, regenerate, refresh, `invalidate_owner`) drops the cached key on the others at
//!   once, over pub/sub.
//! - [`RedisFailureBudget`]: the failure budget of each client address is counted for the
//!   cluster, so a flood of forged tokens spread over the instances is bounded as a whole.
//!
//! # Quick start
//!
//! ```no_run
//! use keyward::{Keyward, MemoryStore};
//! use keyward_redis::Redis;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::connect("redis://127.0.0.1:6379", "books").await?;
//! let keys = Keyward::builder(MemoryStore::new())
//!     .prefix("books")
//!     .rate_limiter(redis.rate_limiter())
//!     .change_feed(redis.change_feed())
//!     .failure_budget(redis.failure_budget())
//!     .build()?;
//! # let _ = keys;
//! # Ok(())
//! # }
//! ```
//!
//! # When Redis is down
//!
//! Nothing fails because of Redis. Each part notices the outage (a command that errs or takes
//! longer than [`Redis::timeout`], 50 ms by default), logs one warning, and works locally
//! until Redis answers again: limits are counted by each instance's in-memory limiter, the
//! failure budget by each instance, and the feed is quiet (the store's change log and the
//! cache TTL still bound staleness). The connection is re-established in the background; when
//! Redis is back the parts use it again within a second and log that, and the feed
//! resubscribes and tells the cache to resync, since changes may have been missed meanwhile.
//!
//! All keys and the channel are under the namespace given to [`Redis::connect`], so several
//! applications (or test runs) can share one Redis.

mod budget;
mod feed;
mod health;
mod rate;

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use budget::RedisFailureBudget;
pub use feed::RedisChangeFeed;
pub use rate::RedisRateLimiter;

/// The default deadline of a Redis command on the request path.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// A failure to reach Redis when connecting.
#[derive(Debug, thiserror::Error)]
#[error("could not connect to Redis: {source}")]
pub struct ConnectError {
    #[source]
    source: redis::RedisError,
}

/// A connection to Redis shared by the three parts, and their namespace.
///
/// Cloning is cheap; the parts made from it share its connection (a
/// [`ConnectionManager`], which reconnects by itself).
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    connection: ConnectionManager,
    namespace: String,
    timeout: Duration,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Connects to the Redis at `url` (`redis://host:port/db`, `rediss://` for TLS is not
    /// built in), with every key and channel under `namespace` (e.g. the application's name).
    /// Must be called inside a Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] when the URL is invalid or Redis does not answer now; once connected,
    /// outages are handled without errors (see the [crate docs](crate)).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), keyward_redis::ConnectError> {
    /// let redis = keyward_redis::Redis::connect("redis://127.0.0.1:6379", "books").await?;
    /// assert_eq!(redis.namespace(), "books");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(
        url: impl AsRef<str>,
        namespace: impl Into<String>,
    ) -> Result<Self, ConnectError> {
        let client = redis::Client::open(url.as_ref()).map_err(|source| ConnectError { source })?;
        // A few quick attempts per reconnect: callers never wait for it (they fall back at
        // their own deadline), and the next command starts another one.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_factor(50)
            .set_max_delay(500)
            .set_connection_timeout(Duration::from_millis(500))
            .set_response_timeout(Duration::from_secs(2));
        let connection = tokio::time::timeout(
            Duration::from_secs(5),
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "no answer within 5 s",
            )))
        })
        .map_err(|source| ConnectError { source })?;
        Ok(Self {
            client,
            connection,
            namespace: namespace.into(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets the deadline of a Redis command on the request path (the rate limit check),
    /// past which the local fallback decides. Default [`DEFAULT_TIMEOUT`], 50 ms.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The namespace of every key and channel.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The cluster-wide rate limiter, for
    /// [`KeywardBuilder::rate_limiter`](keyward::KeywardBuilder::rate_limiter).
    #[must_use]
    pub fn rate_limiter(&self) -> RedisRateLimiter {
        RedisRateLimiter::new(self)
    }

    /// The change feed, for
    /// [`KeywardBuilder::change_feed`](keyward::KeywardBuilder::change_feed).
    #[must_use]
    pub fn change_feed(&self) -> RedisChangeFeed {
        RedisChangeFeed::new(self)
    }

    /// The cluster-wide failure budget with keyward's default allowance (30 failures per
    /// client address per minute), for
    /// [`KeywardBuilder::failure_budget`](keyward::KeywardBuilder::failure_budget). Must be
    /// called inside a Tokio runtime (it starts the task that syncs the counts).
    #[must_use]
    pub fn failure_budget(&self) -> RedisFailureBudget {
        RedisFailureBudget::new(self, 30, Duration::from_secs(60))
    }

    /// `namespace:suffix`.
    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.namespace)
    }
}
