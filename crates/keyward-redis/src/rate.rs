//! The cluster-wide rate limiter: GCRA in one Lua script on Redis server time.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use keyward::{KeyId, LocalRateLimiter, RateDecision, RateLimiter};
use redis::Script;
use redis::aio::ConnectionManager;

use crate::Redis;
use crate::health::Health;

/// GCRA (virtual scheduling) on the server's clock, so the instances' clocks do not matter.
/// KEYS[1]: the key's theoretical arrival time, in microseconds. ARGV[1]: the emission
/// interval (µs per request); ARGV[2]: the burst. Returns {allowed, remaining, µs}: µs is the
/// time until the burst is full again when allowed, until the next request is when refused.
const GCRA: &str = r"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, allow_at - now}
end
local full_in = new_tat - now
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(full_in / 1000) + 1)
return {1, burst - math.ceil(full_in / interval), full_in}
";

/// A [`RateLimiter`] whose counts live in Redis, so a key's `rate_limit` holds for all the
/// instances together: GCRA (the algorithm of keyward's in-memory limiter: a burst of the
/// limit, then one request per `60 s / limit`) in one atomic Lua script on the Redis server's
/// time, one round trip per request of a key that has a limit.
///
/// When Redis errs or takes longer than the [timeout](Redis::timeout), the request is decided
/// by an in-memory [`LocalRateLimiter`] instead (so each instance allows the limit on its own
/// during an outage), one warning is logged, and Redis is tried again at most four times a
/// second until it answers.
///
/// # Example
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = keyward_redis::Redis::connect("redis://127.0.0.1:6379", "books").await?;
/// let keys = keyward::Keyward::builder(keyward::MemoryStore::new())
///     .prefix("books")
///     .rate_limiter(redis.rate_limiter())
///     .build()?;
/// # let _ = keys;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisRateLimiter {
    shared: Arc<Shared>,
}

struct Shared {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    script: Script,
    local: LocalRateLimiter,
    health: Health,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.shared.prefix)
            .field("redis_down", &self.shared.health.is_down())
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    pub(crate) fn new(redis: &Redis) -> Self {
        Self {
            shared: Arc::new(Shared {
                connection: redis.connection.clone(),
                prefix: redis.key("rate:"),
                timeout: redis.timeout,
                script: Script::new(GCRA),
                local: LocalRateLimiter::new(),
                health: Health::new("rate limiter"),
            }),
        }
    }

    async fn ask(&self, key: KeyId, per_minute: NonZeroU32) -> Result<RateDecision, String> {
        let shared = &*self.shared;
        let limit = per_minute.get();
        let interval = 60_000_000 / u64::from(limit);
        let mut connection = shared.connection.clone();
        let mut invocation = shared.script.key(format!("{}{key}", shared.prefix));
        invocation.arg(interval.max(1)).arg(limit);
        let answer: (u8, u32, u64) =
            tokio::time::timeout(shared.timeout, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| format!("no answer within {:?}", shared.timeout))?
                .map_err(|err| err.to_string())?;
        let (allowed, remaining, micros) = answer;
        let micros = Duration::from_micros(micros);
        Ok(if allowed == 1 {
            RateDecision::Allowed {
                limit,
                remaining: remaining.min(limit),
                reset: micros,
            }
        } else {
            RateDecision::Limited {
                limit,
                retry_after: micros,
            }
        })
    }
}

impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: KeyId, per_minute: NonZeroU32) -> RateDecision {
        let shared = &*self.shared;
        if shared.health.should_try() {
            match self.ask(key, per_minute).await {
                Ok(decision) => {
                    shared.health.succeeded();
                    return decision;
                }
                Err(err) => shared.health.failed(&err),
            }
        }
        shared.local.check_now(key, per_minute)
    }
}
