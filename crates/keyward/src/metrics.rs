//! The metrics keyward records, through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! keyward records to whatever recorder the application installs (for Prometheus,
//! `metrics-exporter-prometheus`); without one, recording costs next to nothing.
//!
//! **Install the recorder before [`build`](crate::KeywardBuilder::build).** The handle takes
//! its counters, gauges and histograms from the recorder once, when it is built, so that a
//! request only increments them (no name or label lookup on a cache hit). A handle built
//! before the recorder was installed records nowhere, for good.
//!
//! Every metric is registered when the handle is built, so each series appears (at zero)
//! before the first request. Several handles in one process share the series.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | [`keyward_verifications_total`](VERIFICATIONS) | counter | `outcome` | credentials the layer (or [`Keyward::verify`](crate::Keyward::verify)) decided on, and requests it refused for lacking one; `outcome` is one of [`OUTCOMES`] |
//! | [`keyward_cache_hits_total`](CACHE_HITS) | counter | | well-formed tokens found fresh in the cache |
//! | [`keyward_cache_misses_total`](CACHE_MISSES) | counter | | well-formed tokens not in the cache, or only past their TTL |
//! | [`keyward_cache_negative_hits_total`](CACHE_NEGATIVE_HITS) | counter | | misses the negative cache answered: a digest the store recently did not know |
//! | [`keyward_cache_stale_served_total`](CACHE_STALE_SERVED) | counter | | entries past their TTL used because the store failed (`stale_if_error`) |
//! | [`keyward_store_lookup_duration_seconds`](STORE_LOOKUP_DURATION) | histogram | `result` | store lookups by digest on a cache miss; `result` is one of [`LOOKUP_RESULTS`] |
//! | [`keyward_circuit_state`](CIRCUIT_STATE) | gauge | | the [circuit breaker](crate::CircuitBreaker): 0 closed, 1 open, 2 half-open (a probe is out) |
//! | [`keyward_circuit_transitions_total`](CIRCUIT_TRANSITIONS) | counter | `to` | changes of the circuit's state; `to` is `open`, `half_open` or `closed` |
//! | [`keyward_circuit_refusals_total`](CIRCUIT_REFUSALS) | counter | | lookups not made because the circuit was open |
//! | [`keyward_bulkhead_rejections_total`](BULKHEAD_REJECTIONS) | counter | | misses answered 503 because every [bulkhead](crate::Bulkhead) slot stayed taken |
//! | [`keyward_failure_budget_refusals_total`](FAILURE_BUDGET_REFUSALS) | counter | | requests refused 429 because the client's [failure budget](crate::FailureBudget) was spent |
//! | [`keyward_rate_limit_refusals_total`](RATE_LIMIT_REFUSALS) | counter | | requests refused 429 by a key's rate limit |
//! | [`keyward_usage_flush_duration_seconds`](USAGE_FLUSH_DURATION) | histogram | | usage writes (one per flush that had uses to write) |
//! | [`keyward_usage_flush_failures_total`](USAGE_FLUSH_FAILURES) | counter | | flushes that did not write their uses (kept for the next one) |
//! | [`keyward_usage_pending_uses`](USAGE_PENDING) | gauge | | uses counted and not yet written, after the latest flush |
//! | [`keyward_usage_flush_lag_seconds`](USAGE_FLUSH_LAG) | gauge | | age of the oldest unwritten use when the latest flush started; 0 when there was none |
//!
//! The `outcome` of a verification is the name its `keyward.verify` tracing span carries:
//! the body's `error` member (`ip_not_allowed`, `rate_limited`, ...), except that a refused
//! token (`invalid_token` in the body) says why (`unknown`, `revoked`, `expired`, ...).
//!
//! # Example
//!
//! ```
//! use keyward::{Keyward, MemoryStore, metrics};
//!
//! # fn main() -> Result<(), keyward::ConfigError> {
//! // Install the recorder first (e.g. `PrometheusBuilder::new().install_recorder()`), then:
//! let keyward = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
//! assert_eq!(metrics::VERIFICATIONS, "keyward_verifications_total");
//! assert!(metrics::OUTCOMES.contains(&"unknown"));
//! # let _ = keyward;
//! # Ok(())
//! # }
//! ```

use ::metrics::{Counter, Gauge, Histogram, Unit};

use crate::rejection::{AuthError, InvalidToken};
use crate::verify::Admitted;

/// Counter of verifications, by [`OUTCOME`].
pub const VERIFICATIONS: &str = "keyward_verifications_total";
/// Counter of fresh cache hits.
pub const CACHE_HITS: &str = "keyward_cache_hits_total";
/// Counter of cache misses (no entry, or one past its TTL).
pub const CACHE_MISSES: &str = "keyward_cache_misses_total";
/// Counter of misses answered by the negative cache.
pub const CACHE_NEGATIVE_HITS: &str = "keyward_cache_negative_hits_total";
/// Counter of stale entries used while the store failed.
pub const CACHE_STALE_SERVED: &str = "keyward_cache_stale_served_total";
/// Histogram of store lookups in seconds, by [`RESULT`].
pub const STORE_LOOKUP_DURATION: &str = "keyward_store_lookup_duration_seconds";
/// Gauge of the circuit breaker's state: 0 closed, 1 open, 2 half-open.
pub const CIRCUIT_STATE: &str = "keyward_circuit_state";
/// Counter of the circuit's state changes, by [`TO`].
pub const CIRCUIT_TRANSITIONS: &str = "keyward_circuit_transitions_total";
/// Counter of lookups refused while the circuit was open.
pub const CIRCUIT_REFUSALS: &str = "keyward_circuit_refusals_total";
/// Counter of misses refused because the bulkhead stayed full.
pub const BULKHEAD_REJECTIONS: &str = "keyward_bulkhead_rejections_total";
/// Counter of requests refused because the client's failure budget was spent.
pub const FAILURE_BUDGET_REFUSALS: &str = "keyward_failure_budget_refusals_total";
/// Counter of requests refused by a key's rate limit.
pub const RATE_LIMIT_REFUSALS: &str = "keyward_rate_limit_refusals_total";
/// Histogram of usage writes in seconds.
pub const USAGE_FLUSH_DURATION: &str = "keyward_usage_flush_duration_seconds";
/// Counter of usage flushes that failed.
pub const USAGE_FLUSH_FAILURES: &str = "keyward_usage_flush_failures_total";
/// Gauge of uses counted and not yet written.
pub const USAGE_PENDING: &str = "keyward_usage_pending_uses";
/// Gauge of the age in seconds of the oldest unwritten use when the latest flush started.
pub const USAGE_FLUSH_LAG: &str = "keyward_usage_flush_lag_seconds";

/// Every metric name, in the order of the table above.
pub const NAMES: [&str; 16] = [
    VERIFICATIONS,
    CACHE_HITS,
    CACHE_MISSES,
    CACHE_NEGATIVE_HITS,
    CACHE_STALE_SERVED,
    STORE_LOOKUP_DURATION,
    CIRCUIT_STATE,
    CIRCUIT_TRANSITIONS,
    CIRCUIT_REFUSALS,
    BULKHEAD_REJECTIONS,
    FAILURE_BUDGET_REFUSALS,
    RATE_LIMIT_REFUSALS,
    USAGE_FLUSH_DURATION,
    USAGE_FLUSH_FAILURES,
    USAGE_PENDING,
    USAGE_FLUSH_LAG,
];

/// The label of [`VERIFICATIONS`].
pub const OUTCOME: &str = "outcome";
/// The label of [`STORE_LOOKUP_DURATION`].
pub const RESULT: &str = "result";
/// The label of [`CIRCUIT_TRANSITIONS`]: the state entered.
pub const TO: &str = "to";

/// The values of [`OUTCOME`].
pub const OUTCOMES: [&str; 15] = [
    "ok",
    "missing_credential",
    "malformed",
    "unknown",
    "superseded",
    "revoked",
    "inactive",
    "expired",
    "owner_gone",
    "invalid_request",
    "ip_not_allowed",
    "cross_site_request",
    "rate_limited",
    "too_many_failures",
    "temporarily_unavailable",
];

/// The values of [`RESULT`].
pub const LOOKUP_RESULTS: [&str; 4] = ["found", "not_found", "error", "timeout"];

/// The index in [`OUTCOMES`] of a refusal; `None` for errors no verification gives.
fn outcome_index(error: &AuthError) -> Option<usize> {
    Some(match error {
        AuthError::MissingCredential => 1,
        AuthError::InvalidToken(reason) => match reason {
            InvalidToken::Malformed => 2,
            InvalidToken::Unknown => 3,
            InvalidToken::Superseded => 4,
            InvalidToken::Revoked => 5,
            InvalidToken::Inactive => 6,
            InvalidToken::Expired => 7,
            InvalidToken::OwnerGone => 8,
        },
        AuthError::ConflictingCredentials => 9,
        AuthError::IpNotAllowed => 10,
        AuthError::CrossSiteSession => 11,
        AuthError::RateLimited { .. } => 12,
        AuthError::TooManyFailures { .. } => 13,
        AuthError::StoreUnavailable(_) | AuthError::CallersFailed(_) => 14,
        AuthError::InsufficientScope { .. } | AuthError::LayerMissing => return None,
    })
}

/// How a store lookup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LookupResult {
    Found = 0,
    NotFound = 1,
    Error = 2,
    Timeout = 3,
}

/// The handles of the request path and the usage flush, taken once when the handle is built.
#[derive(Debug)]
pub(crate) struct Metrics {
    verifications: [Counter; OUTCOMES.len()],
    pub(crate) cache_hits: Counter,
    pub(crate) cache_misses: Counter,
    pub(crate) cache_negative_hits: Counter,
    pub(crate) cache_stale_served: Counter,
    lookups: [Histogram; LOOKUP_RESULTS.len()],
    budget_refusals: Counter,
    rate_limit_refusals: Counter,
    pub(crate) flush_duration: Histogram,
    pub(crate) flush_failures: Counter,
    pub(crate) pending_uses: Gauge,
    pub(crate) flush_lag: Gauge,
}

impl Metrics {
    /// Describes every metric to the installed recorder and takes the handles.
    pub(crate) fn new() -> Self {
        describe();
        Self {
            verifications: OUTCOMES
                .map(|outcome| ::metrics::counter!(VERIFICATIONS, OUTCOME => outcome)),
            cache_hits: ::metrics::counter!(CACHE_HITS),
            cache_misses: ::metrics::counter!(CACHE_MISSES),
            cache_negative_hits: ::metrics::counter!(CACHE_NEGATIVE_HITS),
            cache_stale_served: ::metrics::counter!(CACHE_STALE_SERVED),
            lookups: LOOKUP_RESULTS
                .map(|result| ::metrics::histogram!(STORE_LOOKUP_DURATION, RESULT => result)),
            budget_refusals: ::metrics::counter!(FAILURE_BUDGET_REFUSALS),
            rate_limit_refusals: ::metrics::counter!(RATE_LIMIT_REFUSALS),
            flush_duration: ::metrics::histogram!(USAGE_FLUSH_DURATION),
            flush_failures: ::metrics::counter!(USAGE_FLUSH_FAILURES),
            pending_uses: ::metrics::gauge!(USAGE_PENDING),
            flush_lag: ::metrics::gauge!(USAGE_FLUSH_LAG),
        }
    }

    /// Counts an accepted credential.
    #[inline]
    pub(crate) fn accepted(&self) {
        self.verifications[0].increment(1);
    }

    /// Counts a refusal by its outcome.
    pub(crate) fn refused(&self, error: &AuthError) {
        let Some(index) = outcome_index(error) else {
            return;
        };
        self.verifications[index].increment(1);
        match error {
            AuthError::RateLimited { .. } => self.rate_limit_refusals.increment(1),
            AuthError::TooManyFailures { .. } => self.budget_refusals.increment(1),
            _ => {}
        }
    }

    /// Counts a verification's outcome.
    #[inline]
    pub(crate) fn verified(&self, result: Result<&Admitted, &AuthError>) {
        match result {
            Ok(_) => self.accepted(),
            Err(error) => self.refused(error),
        }
    }

    /// Records a store lookup that took `seconds`.
    pub(crate) fn lookup(&self, result: LookupResult, seconds: f64) {
        self.lookups[result as usize].record(seconds);
    }
}

/// The handles of the circuit breaker.
#[derive(Debug)]
pub(crate) struct CircuitMetrics {
    state: Gauge,
    to_closed: Counter,
    to_open: Counter,
    to_half_open: Counter,
    pub(crate) refusals: Counter,
}

/// A state of the circuit, as [`CIRCUIT_STATE`] shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitMetrics {
    /// The handles, with the state gauge at closed.
    pub(crate) fn new() -> Self {
        let metrics = Self {
            state: ::metrics::gauge!(CIRCUIT_STATE),
            to_closed: ::metrics::counter!(CIRCUIT_TRANSITIONS, TO => "closed"),
            to_open: ::metrics::counter!(CIRCUIT_TRANSITIONS, TO => "open"),
            to_half_open: ::metrics::counter!(CIRCUIT_TRANSITIONS, TO => "half_open"),
            refusals: ::metrics::counter!(CIRCUIT_REFUSALS),
        };
        metrics.state.set(0.0);
        metrics
    }

    /// The circuit entered `state`.
    pub(crate) fn entered(&self, state: CircuitState) {
        let (value, transitions) = match state {
            CircuitState::Closed => (0.0, &self.to_closed),
            CircuitState::Open => (1.0, &self.to_open),
            CircuitState::HalfOpen => (2.0, &self.to_half_open),
        };
        self.state.set(value);
        transitions.increment(1);
    }
}

/// The counter of bulkhead rejections.
pub(crate) fn bulkhead_rejections() -> Counter {
    ::metrics::counter!(BULKHEAD_REJECTIONS)
}

/// Describes every metric to the installed recorder, once per handle (recorders keep the
/// latest description).
fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        VERIFICATIONS,
        Unit::Count,
        "API-key verifications by outcome (ok, or why the request was refused)"
    );
    describe_counter!(
        CACHE_HITS,
        Unit::Count,
        "Tokens found fresh in the verification cache"
    );
    describe_counter!(
        CACHE_MISSES,
        Unit::Count,
        "Tokens not in the verification cache, or only past their TTL"
    );
    describe_counter!(
        CACHE_NEGATIVE_HITS,
        Unit::Count,
        "Cache misses answered by the negative cache (a digest the store did not know)"
    );
    describe_counter!(
        CACHE_STALE_SERVED,
        Unit::Count,
        "Cache entries past their TTL used because the store failed"
    );
    describe_histogram!(
        STORE_LOOKUP_DURATION,
        Unit::Seconds,
        "Key store lookups by digest on a cache miss, by result"
    );
    describe_gauge!(
        CIRCUIT_STATE,
        "Key store circuit breaker: 0 closed, 1 open, 2 half-open"
    );
    describe_counter!(
        CIRCUIT_TRANSITIONS,
        Unit::Count,
        "Circuit breaker state changes, by the state entered"
    );
    describe_counter!(
        CIRCUIT_REFUSALS,
        Unit::Count,
        "Key lookups refused because the circuit was open"
    );
    describe_counter!(
        BULKHEAD_REJECTIONS,
        Unit::Count,
        "Cache misses refused because every lookup slot stayed taken"
    );
    describe_counter!(
        FAILURE_BUDGET_REFUSALS,
        Unit::Count,
        "Requests refused because the client presented too many bad tokens"
    );
    describe_counter!(
        RATE_LIMIT_REFUSALS,
        Unit::Count,
        "Requests refused by a key's rate limit"
    );
    describe_histogram!(
        USAGE_FLUSH_DURATION,
        Unit::Seconds,
        "Usage writes to the key store"
    );
    describe_counter!(
        USAGE_FLUSH_FAILURES,
        Unit::Count,
        "Usage flushes that failed; their uses are kept for the next one"
    );
    describe_gauge!(
        USAGE_PENDING,
        Unit::Count,
        "Uses counted and not yet written, after the latest flush"
    );
    describe_gauge!(
        USAGE_FLUSH_LAG,
        Unit::Seconds,
        "Age of the oldest unwritten use when the latest flush started"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::{StoreError, StoreErrorKind};

    #[test]
    fn outcome_labels_are_the_span_outcomes() {
        let errors = [
            AuthError::MissingCredential,
            AuthError::InvalidToken(InvalidToken::Malformed),
            AuthError::InvalidToken(InvalidToken::Unknown),
            AuthError::InvalidToken(InvalidToken::Superseded),
            AuthError::InvalidToken(InvalidToken::Revoked),
            AuthError::InvalidToken(InvalidToken::Inactive),
            AuthError::InvalidToken(InvalidToken::Expired),
            AuthError::InvalidToken(InvalidToken::OwnerGone),
            AuthError::ConflictingCredentials,
            AuthError::IpNotAllowed,
            AuthError::CrossSiteSession,
            AuthError::RateLimited {
                limit: 1,
                retry_after: std::time::Duration::from_secs(1),
            },
            AuthError::TooManyFailures {
                retry_after: std::time::Duration::from_secs(1),
            },
            AuthError::StoreUnavailable(StoreError::new(StoreErrorKind::Unavailable, "down")),
        ];
        for (n, error) in errors.iter().enumerate() {
            let index = outcome_index(error).expect("a verification outcome");
            assert_eq!(index, n + 1);
            assert_eq!(OUTCOMES[index], error.outcome());
        }
        assert_eq!(OUTCOMES[0], "ok");
        assert_eq!(outcome_index(&AuthError::LayerMissing), None);
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for name in NAMES {
            assert!(name.starts_with("keyward_"), "{name}");
            let counter = name.ends_with("_total");
            let seconds = name.ends_with("_seconds");
            assert!(!(counter && seconds), "{name}");
        }
        let mut sorted = NAMES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), NAMES.len());
    }
}
