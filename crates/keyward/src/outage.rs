//! The builder's settings for failure and abuse: the store deadline, the circuit breaker,
//! stale entries while the store fails, the bulkhead and the failure budget.

use std::sync::Arc;
use std::time::Duration;

use crate::budget::FailureBudget;
use crate::circuit::CircuitBreaker;
use crate::config::KeywardBuilder;
use crate::lookup::Bulkhead;

impl KeywardBuilder {
    /// The deadline of every store lookup on the request path (the owner and session lookups included).
    /// Past it the request is answered 503 with `Retry-After`, never left hanging. Default 1 s.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .store_timeout(Duration::from_millis(500))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// When to stop asking a failing store; see [`CircuitBreaker`]. Default: open after 5
    /// consecutive failures, probe again after 500 ms.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{CircuitBreaker, Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .circuit_breaker(CircuitBreaker::default().failure_threshold(10))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.circuit_breaker = breaker;
        self
    }

    /// Keeps cache entries for `window` past their TTL and uses them while the store fails
    /// (error, timeout, open circuit), so keys that were in use keep working through a longer
    /// outage. Policy (revocation, expiry, allow-list) is still checked against the cached
    /// record; a change made through keyward or announced by the change feed still drops the
    /// entry at once. Off (zero) by default: staleness is then bounded by the TTL.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .stale_if_error(Duration::from_secs(600))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// How many store lookups run at once; see [`Bulkhead`]. Default 32, waiting 250 ms.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Bulkhead, Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .bulkhead(Bulkhead::new(16))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn bulkhead(mut self, bulkhead: Bulkhead) -> Self {
        self.bulkhead = bulkhead;
        self
    }

    /// How many bad tokens a client may present before it is refused 429 without store
    /// work; see [`FailureBudget`]. Default: [`LocalFailureBudget::default`](crate::LocalFailureBudget::default), 30 per minute
    /// per client address.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward::{Keyward, LocalFailureBudget, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .failure_budget(LocalFailureBudget::new(60, Duration::from_secs(60)))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn failure_budget(mut self, budget: impl FailureBudget) -> Self {
        self.budget = Some(Arc::new(budget));
        self
    }

    /// Turns the failure budget off: every bad token is looked up (bounded only by the
    /// negative cache and the bulkhead). For tests, or behind a gateway that limits clients.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .without_failure_budget()
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn without_failure_budget(mut self) -> Self {
        self.budget = None;
        self
    }
}
