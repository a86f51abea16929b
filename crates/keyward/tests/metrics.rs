//! Metrics: each handle records to the recorder installed when it was built (here a local
//! one per test), and the request path, the circuit breaker, the failure budget, the bulkhead
//! and the usage flush say what they did.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use keyward::metrics::{self as names, LOOKUP_RESULTS, NAMES, OUTCOMES};
use keyward::{
    Bulkhead, CircuitBreaker, Keyward, KeywardBuilder, LocalFailureBudget, ManualClock, NewKey,
    TokenFormat,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// A recorder of its own for one handle, read as changes since the last reading.
struct Recorded {
    snapshotter: Snapshotter,
}

/// What the handle recorded since the last reading, by `name{label="value"}`.
struct Reading(HashMap<String, DebugValue>);

impl Reading {
    fn counter(&self, series: &str) -> u64 {
        match self.0.get(series) {
            Some(DebugValue::Counter(n)) => *n,
            other => panic!("{series} is not a counter: {other:?}"),
        }
    }

    fn outcome(&self, outcome: &str) -> u64 {
        self.counter(&format!(
            "{}{{outcome=\"{outcome}\"}}",
            names::VERIFICATIONS
        ))
    }

    fn gauge(&self, series: &str) -> f64 {
        match self.0.get(series) {
            Some(DebugValue::Gauge(value)) => value.into_inner(),
            other => panic!("{series} is not a gauge: {other:?}"),
        }
    }

    fn observations(&self, series: &str) -> Vec<f64> {
        match self.0.get(series) {
            Some(DebugValue::Histogram(values)) => values.iter().map(|v| v.into_inner()).collect(),
            other => panic!("{series} is not a histogram: {other:?}"),
        }
    }

    fn lookups(&self, result: &str) -> Vec<f64> {
        self.observations(&format!(
            "{}{{result=\"{result}\"}}",
            names::STORE_LOOKUP_DURATION
        ))
    }

    /// Every counter that moved, but those named.
    fn other_counters(&self, except: &[&str]) -> Vec<String> {
        let mut moved: Vec<String> = self
            .0
            .iter()
            .filter(|(series, value)| {
                matches!(value, DebugValue::Counter(n) if *n > 0)
                    && !except.contains(&series.as_str())
            })
            .map(|(series, _)| series.clone())
            .collect();
        moved.sort();
        moved
    }
}

impl Recorded {
    /// Builds the handle with a recorder of its own.
    fn build(builder: KeywardBuilder) -> (Keyward, Self) {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let keyward = metrics::with_local_recorder(&recorder, || builder.build().unwrap());
        (keyward, Self { snapshotter })
    }

    fn read(&self) -> Reading {
        let series = self
            .snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let mut labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
                    .collect();
                labels.sort();
                let name = if labels.is_empty() {
                    key.name().to_owned()
                } else {
                    format!("{}{{{}}}", key.name(), labels.join(","))
                };
                (name, value)
            })
            .collect();
        Reading(series)
    }
}

fn clock() -> ManualClock {
    ManualClock::new(t0())
}

/// A well-formed token with valid check digits that no key has.
fn forged() -> String {
    let format = TokenFormat::new("books").unwrap();
    format.generate().expose_secret().to_owned()
}

fn verification(outcome: &str) -> String {
    format!("{}{{outcome=\"{outcome}\"}}", names::VERIFICATIONS)
}

#[tokio::test]
async fn every_series_exists_from_the_start() {
    let (_keyward, recorded) = Recorded::build(builder(CountingStore::new(), &clock()));
    let reading = recorded.read();
    for name in NAMES {
        assert!(
            reading
                .0
                .keys()
                .any(|series| series.split('{').next() == Some(name)),
            "{name} is registered at build"
        );
    }
    for outcome in OUTCOMES {
        assert_eq!(reading.outcome(outcome), 0);
    }
    for result in LOOKUP_RESULTS {
        assert!(reading.lookups(result).is_empty());
    }
    assert_eq!(reading.gauge(names::CIRCUIT_STATE), 0.0, "closed");
}

#[tokio::test]
async fn verifications_and_the_cache_are_counted() {
    let store = CountingStore::new();
    let (keyward, recorded) = Recorded::build(builder(store.clone(), &clock()));
    let app = app(&keyward);
    let (_, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    let (_, limited) = issue(
        &keyward,
        NewKey::service("limited")
            .scopes(["books:read"])
            .rate_limit(1),
    )
    .await;
    recorded.read();

    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    let reading = recorded.read();
    assert_eq!(reading.outcome("ok"), 1);
    assert_eq!(reading.counter(names::CACHE_MISSES), 1);
    assert_eq!(reading.counter(names::CACHE_HITS), 0);
    assert_eq!(reading.lookups("found").len(), 1);

    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    let reading = recorded.read();
    assert_eq!(reading.outcome("ok"), 1);
    assert_eq!(reading.counter(names::CACHE_HITS), 1);
    assert_eq!(reading.counter(names::CACHE_MISSES), 0);
    assert!(reading.lookups("found").is_empty(), "a hit reads no store");

    let unknown = forged();
    assert_eq!(send(&app, bearer("/echo", &unknown)).await.status, 401);
    assert_eq!(send(&app, bearer("/echo", &unknown)).await.status, 401);
    let reading = recorded.read();
    assert_eq!(reading.outcome("unknown"), 2);
    assert_eq!(reading.counter(names::CACHE_MISSES), 2);
    assert_eq!(reading.counter(names::CACHE_NEGATIVE_HITS), 1);
    assert_eq!(
        reading.lookups("not_found").len(),
        1,
        "then the negative cache"
    );

    assert_eq!(
        send(&app, bearer("/echo", "books_garbage")).await.status,
        401
    );
    assert_eq!(send(&app, get_with("/echo", &[])).await.status, 401);
    let two = [
        ("authorization", format!("Bearer {token}")),
        ("x-api-key", unknown.clone()),
    ];
    let two: Vec<(&str, &str)> = two.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(send(&app, get_with("/echo", &two)).await.status, 400);
    assert_eq!(send(&app, bearer("/echo", &limited)).await.status, 200);
    assert_eq!(send(&app, bearer("/echo", &limited)).await.status, 429);
    let reading = recorded.read();
    assert_eq!(reading.outcome("malformed"), 1);
    assert_eq!(reading.outcome("missing_credential"), 1);
    assert_eq!(reading.outcome("invalid_request"), 1);
    assert_eq!(reading.outcome("ok"), 1);
    assert_eq!(reading.outcome("rate_limited"), 1);
    assert_eq!(reading.counter(names::RATE_LIMIT_REFUSALS), 1);
    assert_eq!(
        reading.counter(names::CACHE_MISSES),
        1,
        "garbage never reaches the cache"
    );
    assert_eq!(reading.counter(names::CACHE_HITS), 1);

    // `Keyward::verify` counts as the layer does.
    keyward.verify(&token, None).await.unwrap();
    assert_eq!(recorded.read().outcome("ok"), 1);
}

#[tokio::test]
async fn failure_budget_refusals_are_counted() {
    let store = CountingStore::new();
    let builder = builder(store.clone(), &clock())
        .failure_budget(LocalFailureBudget::new(2, Duration::from_secs(60)));
    let (keyward, recorded) = Recorded::build(builder);
    let app = app(&keyward);
    for expected in [401, 401, 429, 429] {
        let reply = send(
            &app,
            with_peer(bearer("/echo", &forged()), "192.0.2.7:1000"),
        )
        .await;
        assert_eq!(reply.status, expected);
    }
    let reading = recorded.read();
    assert_eq!(reading.outcome("unknown"), 2);
    assert_eq!(reading.outcome("too_many_failures"), 2);
    assert_eq!(reading.counter(names::FAILURE_BUDGET_REFUSALS), 2);
    assert_eq!(
        reading.lookups("not_found").len(),
        2,
        "refusals cost no lookup"
    );
    assert_eq!(
        reading.other_counters(&[
            &verification("unknown"),
            &verification("too_many_failures"),
            names::FAILURE_BUDGET_REFUSALS,
            names::CACHE_MISSES,
        ]),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn the_circuit_state_and_its_changes_are_recorded() {
    let store = CountingStore::new();
    let builder = builder(store.clone(), &clock()).circuit_breaker(
        CircuitBreaker::default()
            .failure_threshold(2)
            .open_for(Duration::from_secs(1)),
    );
    let (keyward, recorded) = Recorded::build(builder);
    let app = app(&keyward);
    let (_, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    recorded.read();

    store.fail(true);
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 503);
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 503);
    // Open: refused without a lookup.
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 503);
    let reading = recorded.read();
    assert_eq!(reading.gauge(names::CIRCUIT_STATE), 1.0, "open");
    let transitions = |to: &str| format!("{}{{to=\"{to}\"}}", names::CIRCUIT_TRANSITIONS);
    assert_eq!(reading.counter(&transitions("open")), 1);
    assert_eq!(reading.counter(&transitions("closed")), 0);
    assert_eq!(reading.counter(names::CIRCUIT_REFUSALS), 1);
    assert_eq!(reading.lookups("error").len(), 2);
    assert_eq!(reading.outcome("temporarily_unavailable"), 3);

    // Once the circuit lets a probe through, the store's answer closes it.
    store.fail(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while send(&app, bearer("/echo", &token)).await.status != 200 {
        assert!(Instant::now() < deadline, "the circuit never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reading = recorded.read();
    assert_eq!(reading.counter(&transitions("half_open")), 1);
    assert_eq!(reading.counter(&transitions("closed")), 1);
    assert_eq!(reading.counter(&transitions("open")), 0);
    assert_eq!(reading.gauge(names::CIRCUIT_STATE), 0.0, "closed");
    assert_eq!(reading.lookups("found").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulkhead_rejections_are_counted() {
    let store = CountingStore::new();
    let builder = builder(store.clone(), &clock())
        .store_timeout(Duration::from_secs(30))
        .bulkhead(Bulkhead::new(1).wait(Duration::from_millis(10)));
    let (keyward, recorded) = Recorded::build(builder);
    let app = Arc::new(app(&keyward));
    let (_, first) = issue(&keyward, NewKey::service("first").scopes(["books:read"])).await;
    let (_, second) = issue(&keyward, NewKey::service("second").scopes(["books:read"])).await;

    store.stall(true);
    let holder = {
        let app = Arc::clone(&app);
        tokio::spawn(async move { send(&app, bearer("/echo", &first)).await.status })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.counts.find() == 0 {
        assert!(Instant::now() < deadline, "the first lookup never started");
        tokio::task::yield_now().await;
    }
    assert_eq!(send(&app, bearer("/echo", &second)).await.status, 503);
    store.stall(false);
    assert_eq!(holder.await.unwrap(), 200);
    let reading = recorded.read();
    assert_eq!(reading.counter(names::BULKHEAD_REJECTIONS), 1);
    assert_eq!(reading.outcome("temporarily_unavailable"), 1);
    assert_eq!(reading.outcome("ok"), 1);
}

#[tokio::test]
async fn the_usage_flush_reports_its_lag_duration_failures_and_pending_uses() {
    let store = CountingStore::new();
    let clock = clock();
    let builder = builder(store.clone(), &clock).usage_flush_interval(Duration::from_secs(3600));
    let (keyward, recorded) = Recorded::build(builder);
    let (id, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;

    keyward.verify(&token, None).await.unwrap();
    clock.advance(chrono::Duration::seconds(20));
    keyward.verify(&token, None).await.unwrap();
    clock.advance(chrono::Duration::seconds(10));
    keyward.flush_usage().await.unwrap();
    let reading = recorded.read();
    assert_eq!(
        reading.gauge(names::USAGE_FLUSH_LAG),
        30.0,
        "the first use waited 30 s"
    );
    assert_eq!(reading.observations(names::USAGE_FLUSH_DURATION).len(), 1);
    assert_eq!(reading.counter(names::USAGE_FLUSH_FAILURES), 0);
    assert_eq!(reading.gauge(names::USAGE_PENDING), 0.0);

    keyward.verify(&token, None).await.unwrap();
    store.fail(true);
    clock.advance(chrono::Duration::seconds(5));
    keyward.verify(&token, None).await.unwrap();
    keyward.flush_usage().await.unwrap_err();
    let reading = recorded.read();
    assert_eq!(reading.gauge(names::USAGE_FLUSH_LAG), 5.0);
    assert_eq!(reading.counter(names::USAGE_FLUSH_FAILURES), 1);
    assert_eq!(reading.gauge(names::USAGE_PENDING), 2.0, "kept for later");

    // The uses kept from the failed write are still as old as they are.
    store.fail(false);
    clock.advance(chrono::Duration::seconds(7));
    keyward.flush_usage().await.unwrap();
    let reading = recorded.read();
    assert_eq!(reading.gauge(names::USAGE_FLUSH_LAG), 12.0);
    assert_eq!(reading.counter(names::USAGE_FLUSH_FAILURES), 0);
    assert_eq!(reading.gauge(names::USAGE_PENDING), 0.0);
    assert_eq!(keyward.get(id).await.unwrap().usage_count, 4);
}
