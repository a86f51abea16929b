//! The metrics of webhook delivery, through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! Install the application's recorder before [`Webhooks::spawn`](crate::Webhooks::spawn):
//! the workers take their series from it when they start, and register each at zero.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | [`keyward_webhook_deliveries_total`](DELIVERIES) | counter | `outcome` | `delivered`: events an endpoint accepted; `failed`: attempts that failed (each retry counts); `given_up`: events dropped after the retry window |
//! | [`keyward_webhook_delivery_duration_seconds`](DELIVERY_DURATION) | histogram | | each attempt, from sending to the answer's status (or the failure) |
//! | [`keyward_webhook_lag_seconds`](LAG) | gauge | `endpoint` | age of the event an endpoint's worker is delivering; 0 once it has caught up. `endpoint` is the endpoint's id (see [`endpoint_id`](crate::endpoint_id)), never its URL |

use ::metrics::{Counter, Gauge, Histogram, Unit};

/// Counter of deliveries, by [`OUTCOME`].
pub const DELIVERIES: &str = "keyward_webhook_deliveries_total";
/// Histogram of delivery attempts in seconds.
pub const DELIVERY_DURATION: &str = "keyward_webhook_delivery_duration_seconds";
/// Gauge of the age in seconds of the event being delivered, by [`ENDPOINT`].
pub const LAG: &str = "keyward_webhook_lag_seconds";

/// Every metric name, in the order of the table above.
pub const NAMES: [&str; 3] = [DELIVERIES, DELIVERY_DURATION, LAG];

/// The label of [`DELIVERIES`].
pub const OUTCOME: &str = "outcome";
/// The label of [`LAG`].
pub const ENDPOINT: &str = "endpoint";

/// The values of [`OUTCOME`].
pub const OUTCOMES: [&str; 3] = ["delivered", "failed", "given_up"];

/// One worker's series.
#[derive(Debug, Clone)]
pub(crate) struct WorkerMetrics {
    pub(crate) delivered: Counter,
    pub(crate) failed: Counter,
    pub(crate) given_up: Counter,
    pub(crate) duration: Histogram,
    pub(crate) lag: Gauge,
}

impl WorkerMetrics {
    /// Takes the series of the endpoint `endpoint` from the installed recorder.
    pub(crate) fn register(endpoint: &str) -> Self {
        ::metrics::describe_counter!(
            DELIVERIES,
            Unit::Count,
            "Webhook events delivered or given up, and failed attempts"
        );
        ::metrics::describe_histogram!(
            DELIVERY_DURATION,
            Unit::Seconds,
            "Duration of webhook delivery attempts"
        );
        ::metrics::describe_gauge!(
            LAG,
            Unit::Seconds,
            "Age of the webhook event being delivered; 0 when caught up"
        );
        let outcome = |value: &'static str| ::metrics::counter!(DELIVERIES, OUTCOME => value);
        let metrics = Self {
            delivered: outcome(OUTCOMES[0]),
            failed: outcome(OUTCOMES[1]),
            given_up: outcome(OUTCOMES[2]),
            duration: ::metrics::histogram!(DELIVERY_DURATION),
            lag: ::metrics::gauge!(LAG, ENDPOINT => endpoint.to_owned()),
        };
        // So that every series shows (at zero) before the first delivery.
        metrics.delivered.increment(0);
        metrics.failed.increment(0);
        metrics.given_up.increment(0);
        metrics
    }
}
