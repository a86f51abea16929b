//! Per-key rate limits (requests per minute), with GCRA: governor's in memory by default, or a
//! shared [`RateLimiter`] (Redis, through `keyward-redis`) for limits that hold across instances.

use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter as Gcra};
use keyward_core::{Clock, KeyId, SystemClock};
use moka::sync::Cache;

use crate::config::KeywardBuilder;
use crate::rejection::AuthError;
use crate::verify::Admitted;

/// Decides whether a request with a rate-limited key may go on: a key's `rate_limit` is a
/// number of requests per minute, with a burst of the same size (GCRA).
///
/// keyward asks its limiter only for keys that have a limit; keys without one never reach it.
/// The default is [`LocalRateLimiter`], in memory, so each instance counts on its own. A
/// limiter shared by several instances (`keyward_redis::RedisRateLimiter`) makes the limit
/// hold for the whole cluster; plug it in with
/// [`KeywardBuilder::rate_limiter`].
///
/// `check` is on the request path: it should answer within a few milliseconds, and when its
/// shared state cannot be reached it decides locally rather than fail (there is no error to
/// return: a request is never refused because a limiter is unwell).
///
/// # Example
///
/// ```
/// use std::num::NonZeroU32;
/// use keyward::{KeyId, RateDecision, RateLimiter};
///
/// /// Lets everything through, saying so in the headers.
/// #[derive(Debug)]
/// struct Unlimited;
///
/// impl RateLimiter for Unlimited {
///     async fn check(&self, _key: KeyId, per_minute: NonZeroU32) -> RateDecision {
///         RateDecision::Allowed {
///             limit: per_minute.get(),
///             remaining: per_minute.get(),
///             reset: std::time::Duration::ZERO,
///         }
///     }
/// }
///
/// let keyward = keyward::Keyward::builder(keyward::MemoryStore::new())
///     .prefix("books")
///     .rate_limiter(Unlimited)
///     .build()?;
/// # let _ = keyward;
/// # Ok::<(), keyward::ConfigError>(())
/// ```
pub trait RateLimiter: fmt::Debug + Send + Sync + 'static {
    /// Takes one request from the allowance of `key`, limited to `per_minute`.
    fn check(
        &self,
        key: KeyId,
        per_minute: NonZeroU32,
    ) -> impl Future<Output = RateDecision> + Send;
}

/// What a [`RateLimiter`] decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateDecision {
    /// The request may go on; the values fill the `RateLimit-*` headers.
    Allowed {
        /// The limit, requests per minute.
        limit: u32,
        /// Requests left in the burst after this one.
        remaining: u32,
        /// How long until the full burst is available again.
        reset: Duration,
    },
    /// Too many requests: 429 with `Retry-After`.
    Limited {
        /// The limit, requests per minute.
        limit: u32,
        /// How long until one more request is allowed.
        retry_after: Duration,
    },
}

impl RateDecision {
    fn into_state(self) -> Result<RateState, Exceeded> {
        match self {
            Self::Allowed {
                limit,
                remaining,
                reset,
            } => Ok(RateState {
                limit,
                remaining,
                reset: reset
                    .as_millis()
                    .div_ceil(1000)
                    .try_into()
                    .unwrap_or(u64::MAX),
            }),
            Self::Limited { limit, retry_after } => Err(Exceeded { limit, retry_after }),
        }
    }
}

/// Governor reads time from the injected clock, so tests move time instead of sleeping.
#[derive(Debug, Clone)]
struct KeywardClock(Arc<dyn Clock>);

impl GovernorClock for KeywardClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        let now = self.0.now();
        let nanos = now.timestamp_nanos_opt().unwrap_or(i64::MAX).max(0);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
    }
}

type Limiter = Gcra<NotKeyed, InMemoryState, KeywardClock, StateInformationMiddleware>;

#[derive(Debug)]
struct KeyLimiter {
    per_minute: NonZeroU32,
    limiter: Limiter,
}

/// The outcome of a rate-limited request, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateState {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    /// Seconds until the full quota is available again.
    pub(crate) reset: u64,
}

/// Too many requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exceeded {
    pub(crate) limit: u32,
    pub(crate) retry_after: Duration,
}

/// The in-memory [`RateLimiter`] (governor's GCRA), and the default: each instance counts on
/// its own, so with several instances a key gets its limit once per instance. Its
/// [`check_now`](Self::check_now) decides without waiting, which also makes it the fallback
/// of a shared limiter whose store cannot be reached.
///
/// # Example
///
/// ```
/// use std::num::NonZeroU32;
/// use keyward::{KeyId, LocalRateLimiter, RateDecision};
///
/// let limiter = LocalRateLimiter::new();
/// let key = KeyId::new();
/// let per_minute = NonZeroU32::new(2).unwrap();
/// assert!(matches!(limiter.check_now(key, per_minute), RateDecision::Allowed { remaining: 1, .. }));
/// assert!(matches!(limiter.check_now(key, per_minute), RateDecision::Allowed { remaining: 0, .. }));
/// assert!(matches!(limiter.check_now(key, per_minute), RateDecision::Limited { limit: 2, .. }));
/// ```
#[derive(Debug, Clone)]
pub struct LocalRateLimiter {
    clock: KeywardClock,
    limiters: Cache<KeyId, Arc<KeyLimiter>>,
}

impl Default for LocalRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalRateLimiter {
    /// A limiter on the system clock.
    #[must_use]
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// A limiter reading time from `clock` (tests move a [`ManualClock`](crate::ManualClock)).
    #[must_use]
    pub fn with_clock(clock: impl Clock) -> Self {
        Self::on(Arc::new(clock))
    }

    fn on(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock: KeywardClock(clock),
            // A bucket idle for a minute is full again, so forgetting it loses nothing.
            limiters: Cache::builder()
                .time_to_idle(Duration::from_secs(120))
                .max_capacity(1_000_000)
                .build(),
        }
    }

    /// Takes one request from the allowance of `key`, without waiting.
    pub fn check_now(&self, key: KeyId, per_minute: NonZeroU32) -> RateDecision {
        match self.decide(key, per_minute) {
            Ok(state) => RateDecision::Allowed {
                limit: state.limit,
                remaining: state.remaining,
                reset: Duration::from_secs(state.reset),
            },
            Err(exceeded) => RateDecision::Limited {
                limit: exceeded.limit,
                retry_after: exceeded.retry_after,
            },
        }
    }

    fn decide(&self, id: KeyId, per_minute: NonZeroU32) -> Result<RateState, Exceeded> {
        let limiter = match self.limiters.get(&id) {
            Some(limiter) if limiter.per_minute == per_minute => limiter,
            _ => {
                let fresh = Arc::new(KeyLimiter {
                    per_minute,
                    limiter: Gcra::direct_with_clock(
                        Quota::per_minute(per_minute),
                        self.clock.clone(),
                    )
                    .with_middleware::<StateInformationMiddleware>(),
                });
                self.limiters.insert(id, Arc::clone(&fresh));
                fresh
            }
        };
        let limit = per_minute.get();
        match limiter.limiter.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = u64::from(limit.saturating_sub(remaining));
                Ok(RateState {
                    limit,
                    remaining,
                    reset: (used * 60).div_ceil(u64::from(limit)),
                })
            }
            Err(not_until) => Err(Exceeded {
                limit,
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
        }
    }
}

impl RateLimiter for LocalRateLimiter {
    async fn check(&self, key: KeyId, per_minute: NonZeroU32) -> RateDecision {
        self.check_now(key, per_minute)
    }
}

type Decision = Pin<Box<dyn Future<Output = RateDecision> + Send>>;

/// [`RateLimiter`] with a boxed future, so the handle can hold any limiter.
trait DynRateLimiter: fmt::Debug + Send + Sync + 'static {
    fn check(&self, key: KeyId, per_minute: NonZeroU32) -> Decision;
}

impl<T: RateLimiter> DynRateLimiter for Arc<T> {
    fn check(&self, key: KeyId, per_minute: NonZeroU32) -> Decision {
        let limiter = Arc::clone(self);
        Box::pin(async move { RateLimiter::check(&*limiter, key, per_minute).await })
    }
}

/// A shared limiter given to the builder.
#[derive(Clone)]
pub(crate) struct SharedLimiter(Arc<dyn DynRateLimiter>);

impl fmt::Debug for SharedLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The handle's limiter: the local one, decided at once, or a shared one, awaited.
#[derive(Debug)]
pub(crate) enum RateLimits {
    Local(LocalRateLimiter),
    Shared(SharedLimiter),
}

/// A rate limit being checked: decided already (the local limiter), or waiting for a shared
/// limiter's answer. Keys without a limit have none, so they never pay for the wait.
pub(crate) enum RateCheck {
    Done(RateState),
    Pending(Decision),
}

impl fmt::Debug for RateCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Done(state) => f.debug_tuple("Done").field(state).finish(),
            Self::Pending(_) => f.write_str("Pending"),
        }
    }
}

impl RateCheck {
    /// The state, when it is known without waiting.
    pub(crate) fn state(self) -> Option<RateState> {
        match self {
            Self::Done(state) => Some(state),
            Self::Pending(_) => None,
        }
    }

    pub(crate) fn is_pending(&self) -> bool {
        matches!(self, Self::Pending(_))
    }
}

impl RateLimits {
    pub(crate) fn new(clock: Arc<dyn Clock>, shared: Option<SharedLimiter>) -> Self {
        match shared {
            Some(shared) => Self::Shared(shared),
            None => Self::Local(LocalRateLimiter::on(clock)),
        }
    }

    pub(crate) fn check(&self, id: KeyId, per_minute: NonZeroU32) -> Result<RateCheck, Exceeded> {
        match self {
            Self::Local(local) => local.decide(id, per_minute).map(RateCheck::Done),
            Self::Shared(shared) => Ok(RateCheck::Pending(shared.0.check(id, per_minute))),
        }
    }
}

/// Waits for a shared limiter's answer, if the admitted request has one coming.
pub(crate) async fn settle(admitted: Result<Admitted, AuthError>) -> Result<Admitted, AuthError> {
    let mut admitted = admitted?;
    if !is_pending(&admitted) {
        return Ok(admitted);
    }
    if let Some(RateCheck::Pending(decision)) = admitted.rate.take() {
        let state = decision.await.into_state().map_err(|exceeded| {
            if let Some(pending) = &admitted.pending_use {
                pending.note_rate_limited(exceeded.limit);
            }
            AuthError::RateLimited {
                limit: exceeded.limit,
                retry_after: exceeded.retry_after,
            }
        })?;
        admitted.rate = Some(RateCheck::Done(state));
    }
    if let Some(pending) = admitted.pending_use.take() {
        pending.record();
    }
    Ok(admitted)
}

/// Whether `admitted` waits for a shared limiter.
pub(crate) fn is_pending(admitted: &Admitted) -> bool {
    admitted.rate.as_ref().is_some_and(RateCheck::is_pending)
}

impl KeywardBuilder {
    /// Where keys' `rate_limit` is counted; see [`RateLimiter`]. Default: [`LocalRateLimiter`],
    /// per instance. A shared limiter (`keyward_redis::RedisRateLimiter`) holds the limit for
    /// a whole cluster; it is asked only for keys that have a limit, so the others pay nothing
    /// for it.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, LocalRateLimiter, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .rate_limiter(LocalRateLimiter::new())
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn rate_limiter(mut self, limiter: impl RateLimiter) -> Self {
        self.rate_limiter = Some(SharedLimiter(Arc::new(Arc::new(limiter))));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::ManualClock;

    #[test]
    fn allows_the_quota_then_refuses_until_a_cell_returns() {
        let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let limits = LocalRateLimiter::with_clock(clock.clone());
        let id = KeyId::new();
        let per_minute = NonZeroU32::new(3).unwrap();
        let states: Vec<_> = (0..3)
            .map(|_| limits.decide(id, per_minute).unwrap())
            .collect();
        assert_eq!(
            states.iter().map(|s| s.remaining).collect::<Vec<_>>(),
            [2, 1, 0]
        );
        let exceeded = limits.decide(id, per_minute).unwrap_err();
        assert_eq!(exceeded.limit, 3);
        assert_eq!(exceeded.retry_after, Duration::from_secs(20));
        clock.advance(chrono::TimeDelta::seconds(20));
        assert!(limits.decide(id, per_minute).is_ok());
        // A changed limit starts a fresh bucket.
        assert!(limits.decide(id, NonZeroU32::new(10).unwrap()).is_ok());
    }

    /// A limiter that answers later, as a shared one does.
    #[derive(Debug)]
    struct Later(LocalRateLimiter);

    impl RateLimiter for Later {
        async fn check(&self, key: KeyId, per_minute: NonZeroU32) -> RateDecision {
            tokio::task::yield_now().await;
            self.0.check_now(key, per_minute)
        }
    }

    #[tokio::test]
    async fn a_shared_limiter_is_awaited_on_hits_and_misses() {
        use axum::body::Body;
        use tower::ServiceExt;

        let keyward = crate::Keyward::builder(keyward_core::MemoryStore::new())
            .prefix("books")
            .rate_limiter(Later(LocalRateLimiter::new()))
            .build()
            .unwrap();
        let issued = keyward
            .create(
                keyward_core::NewKey::service("ci")
                    .scopes(["keys:read"])
                    .rate_limit(3),
            )
            .await
            .unwrap();
        let bearer = format!("Bearer {}", issued.token.expose_secret());
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .layer(keyward.layer());
        // A miss, then cache hits: each waits for the limiter's answer.
        for (status, remaining) in [(200, "2"), (200, "1")] {
            let request = http::Request::get("/")
                .header("authorization", &bearer)
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), status);
            assert_eq!(response.headers()["ratelimit-remaining"], remaining);
        }
        assert!(
            keyward
                .verify(issued.token.expose_secret(), None)
                .await
                .is_ok()
        );
        let request = http::Request::get("/")
            .header("authorization", &bearer)
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "20");
        // Three requests were allowed and counted; the refused one is not a use.
        let pending = keyward
            .pending_usage(issued.record.id)
            .expect("uses counted");
        assert_eq!(pending.count, 3);
    }
}
