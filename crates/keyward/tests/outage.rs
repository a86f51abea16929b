//! A store that stalls or fails: deadlines, the circuit breaker, cached keys through the
//! outage, stale entries on request, and usage kept until the store returns.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use keyward::{CacheConfig, CircuitBreaker, KeyStore, ManualClock, NewKey};

fn clock() -> ManualClock {
    ManualClock::new(t0())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_answers_misses_503_within_the_deadline() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock)
        .store_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let app = app(&keyward);
    let (_, cached) = issue(&keyward, NewKey::service("cached").scopes(["books:read"])).await;
    let (_, cold) = issue(&keyward, NewKey::service("cold").scopes(["books:read"])).await;
    assert_eq!(send(&app, bearer("/echo", &cached)).await.status, 200);

    store.stall(true);
    let started = Instant::now();
    let reply = send(&app, bearer("/echo", &cold)).await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.error(), "temporarily_unavailable");
    assert!(reply.headers.contains_key("retry-after"));
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(1100),
        "answered after {elapsed:?}"
    );
    assert!(!reply.text.contains(&cold));
    // A cached key does not wait for the store.
    let started = Instant::now();
    assert_eq!(send(&app, bearer("/echo", &cached)).await.status, 200);
    assert!(started.elapsed() < Duration::from_millis(100));
    store.stall(false);
    assert_eq!(send(&app, bearer("/echo", &cold)).await.status, 200);
}

#[tokio::test]
async fn an_open_circuit_answers_misses_at_once_without_the_store() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock)
        .circuit_breaker(
            CircuitBreaker::default()
                .failure_threshold(3)
                .open_for(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    let app = app(&keyward);
    let (_, cached) = issue(&keyward, NewKey::service("cached").scopes(["books:read"])).await;
    let (revoked_id, revoked) =
        issue(&keyward, NewKey::service("revoked").scopes(["books:read"])).await;
    let (cached_revoked_id, cached_revoked) = issue(
        &keyward,
        NewKey::service("seen, then revoked").scopes(["books:read"]),
    )
    .await;
    assert_eq!(send(&app, bearer("/echo", &cached)).await.status, 200);
    assert_eq!(
        send(&app, bearer("/echo", &cached_revoked)).await.status,
        200
    );
    keyward.revoke(revoked_id).await.unwrap();
    keyward.revoke(cached_revoked_id).await.unwrap();
    assert_eq!(
        send(&app, bearer("/echo", &cached_revoked)).await.status,
        401
    );
    let cold: Vec<String> = cold_tokens(&keyward, 5).await;

    store.fail(true);
    let before = store.counts.find();
    for token in &cold[..3] {
        let reply = send(&app, bearer("/echo", token)).await;
        assert_eq!(reply.status, 503);
        assert!(reply.headers.contains_key("retry-after"));
    }
    assert_eq!(
        store.counts.find(),
        before + 3,
        "three failures open the circuit"
    );

    let opened = store.counts.find();
    for _ in 0..20 {
        for token in cold.iter().chain([&revoked]) {
            let reply = send(&app, bearer("/echo", token)).await;
            assert_eq!(
                reply.status, 503,
                "a miss while open is 503, never 200 or 401"
            );
            assert!(reply.headers.contains_key("retry-after"));
        }
        assert_eq!(send(&app, bearer("/echo", &cached)).await.status, 200);
        // 401 while its revoked record is cached, 503 once the change feed dropped it.
        let status = send(&app, bearer("/echo", &cached_revoked)).await.status;
        assert!(matches!(status.as_u16(), 401 | 503), "{status}");
    }
    assert_eq!(
        store.counts.find(),
        opened,
        "no store call while the circuit is open"
    );
}

/// Creates `n` keys and returns their tokens.
async fn cold_tokens(keyward: &keyward::Keyward, n: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for i in 0..n {
        let new = NewKey::service(format!("cold {i}")).scopes(["books:read"]);
        tokens.push(issue(keyward, new).await.1);
    }
    tokens
}

#[tokio::test]
async fn the_first_successful_probe_closes_the_circuit() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock)
        .circuit_breaker(
            CircuitBreaker::default()
                .failure_threshold(1)
                .open_for(Duration::from_millis(200)),
        )
        .build()
        .unwrap();
    let app = app(&keyward);
    let tokens = cold_tokens(&keyward, 3).await;

    store.fail(true);
    assert_eq!(send(&app, bearer("/echo", &tokens[0])).await.status, 503);
    store.fail(false);
    // Open: refused without asking, although the store is back.
    let calls = store.counts.find();
    assert_eq!(send(&app, bearer("/echo", &tokens[1])).await.status, 503);
    assert_eq!(store.counts.find(), calls);

    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = send(&app, bearer("/echo", &tokens[1])).await.status;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "the circuit never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.counts.find(), calls + 1, "one probe closed it");
    // Closed: the next miss goes to the store at once.
    assert_eq!(send(&app, bearer("/echo", &tokens[2])).await.status, 200);
    assert_eq!(store.counts.find(), calls + 2);
}

#[tokio::test]
async fn a_failed_probe_opens_the_circuit_again() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock)
        .circuit_breaker(
            CircuitBreaker::default()
                .failure_threshold(1)
                .open_for(Duration::from_millis(100)),
        )
        .build()
        .unwrap();
    let app = app(&keyward);
    let tokens = cold_tokens(&keyward, 1).await;
    store.fail(true);
    assert_eq!(send(&app, bearer("/echo", &tokens[0])).await.status, 503);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let calls = store.counts.find();
    assert_eq!(send(&app, bearer("/echo", &tokens[0])).await.status, 503);
    assert_eq!(store.counts.find(), calls + 1, "the probe asked the store");
    assert_eq!(send(&app, bearer("/echo", &tokens[0])).await.status, 503);
    assert_eq!(
        store.counts.find(),
        calls + 1,
        "and the circuit opened again"
    );
}

#[tokio::test]
async fn stale_entries_stand_in_only_while_the_store_fails() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock)
        .cache(CacheConfig::default().ttl(Duration::from_millis(50)))
        .stale_if_error(Duration::from_secs(60))
        .build()
        .unwrap();
    let app = app(&keyward);
    let (_, token) = issue(&keyward, NewKey::service("stale").scopes(["books:read"])).await;
    let (_, never_seen) = issue(&keyward, NewKey::service("cold").scopes(["books:read"])).await;
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(80)).await;

    // Past the TTL with a healthy store: reloaded.
    let calls = store.counts.find();
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    assert_eq!(store.counts.find(), calls + 1);
    tokio::time::sleep(Duration::from_millis(80)).await;

    store.fail(true);
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    assert_eq!(send(&app, bearer("/echo", &never_seen)).await.status, 503);
}

#[tokio::test]
async fn without_stale_if_error_an_expired_entry_is_not_used() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock)
        .cache(CacheConfig::default().ttl(Duration::from_millis(50)))
        .build()
        .unwrap();
    let app = app(&keyward);
    let (_, token) = issue(
        &keyward,
        NewKey::service("fresh only").scopes(["books:read"]),
    )
    .await;
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(80)).await;
    store.fail(true);
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 503);
}

#[tokio::test]
async fn usage_is_kept_while_the_store_fails_and_written_once() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock).build().unwrap();
    let app = app(&keyward);
    let (id, token) = issue(&keyward, NewKey::service("counted").scopes(["books:read"])).await;
    for _ in 0..7 {
        assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    }
    store.fail(true);
    assert!(keyward.flush_usage().await.is_err());
    assert!(keyward.flush_usage().await.is_err());
    for _ in 0..3 {
        assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    }
    store.fail(false);
    keyward.flush_usage().await.unwrap();
    keyward.flush_usage().await.unwrap();
    let record = store.inner.get(id).await.unwrap().unwrap();
    assert_eq!(
        record.usage_count, 10,
        "nothing lost, nothing counted twice"
    );
}
