//! Floods: concurrent misses on one key share a lookup; forged tokens from one client spend
//! its failure budget and then cost no store work; other clients are not affected.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use common::*;
use http::{Request, StatusCode};
use keyward::{Bulkhead, CacheConfig, LocalFailureBudget, ManualClock, NewKey, TokenFormat};

fn clock() -> ManualClock {
    ManualClock::new(t0())
}

/// Well-formed tokens with valid check digits that no key has.
fn forged(n: usize) -> Vec<String> {
    let format = TokenFormat::new("books").unwrap();
    (0..n)
        .map(|_| format.generate().expose_secret().to_owned())
        .collect()
}

/// Sends every request at once and gives their statuses, in order.
async fn concurrently(
    app: &Arc<Router>,
    requests: impl IntoIterator<Item = Request<Body>>,
) -> Vec<StatusCode> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let app = Arc::clone(app);
            tokio::spawn(async move { send(&app, request).await.status })
        })
        .collect();
    let mut statuses = Vec::with_capacity(tasks.len());
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_burst_on_one_key_makes_one_lookup() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock).build().unwrap();
    let app = Arc::new(app(&keyward));
    let (_, token) = issue(&keyward, NewKey::service("busy").scopes(["books:read"])).await;
    store.delay_finds(Duration::from_millis(100));

    let statuses = concurrently(&app, (0..1000).map(|_| bearer("/echo", &token))).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(
        store.counts.find(),
        1,
        "1000 concurrent misses, one store lookup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_without_a_cache_also_share_a_lookup() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock)
        .cache(CacheConfig::disabled())
        .build()
        .unwrap();
    let app = Arc::new(app(&keyward));
    let (_, token) = issue(&keyward, NewKey::service("busy").scopes(["books:read"])).await;
    store.delay_finds(Duration::from_millis(200));
    let statuses = concurrently(&app, (0..100).map(|_| bearer("/echo", &token))).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert!(
        store.counts.find() < 10,
        "{} lookups for 100 concurrent requests",
        store.counts.find()
    );
}

#[tokio::test]
async fn forged_tokens_spend_the_clients_budget_then_cost_nothing() {
    let store = CountingStore::new();
    let clock = clock();
    // The default budget: 30 failures per minute per client.
    let keyward = builder(store.clone(), &clock).build().unwrap();
    let app = app(&keyward);
    let (_, good) = issue(&keyward, NewKey::service("good").scopes(["books:read"])).await;
    let attacker = "198.51.100.7:40000";
    let neighbour = "203.0.113.9:50000";
    assert_eq!(
        send(&app, with_peer(bearer("/echo", &good), neighbour))
            .await
            .status,
        200
    );
    let before = store.counts.find();

    let mut refused = 0;
    for (i, token) in forged(1000).iter().enumerate() {
        let reply = send(&app, with_peer(bearer("/echo", token), attacker)).await;
        match reply.status {
            StatusCode::UNAUTHORIZED => assert!(refused == 0, "401 after a 429 at {i}"),
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                assert_eq!(reply.error(), "too_many_failures");
                let wait: u64 = reply.headers["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&wait), "Retry-After {wait}");
                assert!(!reply.text.contains(token.as_str()));
            }
            other => panic!("unexpected {other}"),
        }
        if i % 50 == 0 {
            let reply = send(&app, with_peer(bearer("/echo", &good), neighbour)).await;
            assert_eq!(reply.status, 200, "another client is not affected");
        }
    }
    assert_eq!(refused, 1000 - 30);
    let lookups = store.counts.find() - before;
    assert!(lookups <= 30, "{lookups} store lookups, budget 30");
    // The attacker's own valid, cached key still works.
    assert_eq!(
        send(&app, with_peer(bearer("/echo", &good), attacker))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_flood_costs_at_most_the_budget_in_lookups() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock).build().unwrap();
    let app = Arc::new(app(&keyward));
    // Slow lookups: many of the flood's requests are in flight when the budget runs out.
    store.delay_finds(Duration::from_millis(20));
    let attacker = "198.51.100.7:40000";
    let tokens = forged(1000);
    let mut statuses = Vec::new();
    for wave in tokens.chunks(64) {
        let wave = wave
            .iter()
            .map(|token| with_peer(bearer("/echo", token), attacker));
        statuses.extend(concurrently(&app, wave).await);
    }
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let too_many = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(unauthorized + too_many, 1000, "only 401 and 429");
    assert_eq!(unauthorized, 30, "one 401 per unit of the budget");
    assert!(
        store.counts.find() <= 30,
        "{} store lookups, budget 30",
        store.counts.find()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_burst_from_one_client_takes_one_unit() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock)
        .failure_budget(LocalFailureBudget::new(1, Duration::from_secs(60)))
        .build()
        .unwrap();
    let app = Arc::new(app(&keyward));
    let (_, token) = issue(&keyward, NewKey::service("busy").scopes(["books:read"])).await;
    store.delay_finds(Duration::from_millis(100));
    let client = "203.0.113.9:50000";
    // A budget of one: the lookup holds the only unit, and the other 199 requests share it.
    let burst = (0..200).map(|_| with_peer(bearer("/echo", &token), client));
    let statuses = concurrently(&app, burst).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(store.counts.find(), 1);
    // The unit came back: the client's whole budget is left for a bad token.
    let reply = send(&app, with_peer(bearer("/echo", &forged(1)[0]), client)).await;
    assert_eq!(reply.status, 401);
    let reply = send(&app, with_peer(bearer("/echo", &forged(1)[0]), client)).await;
    assert_eq!(reply.status, 429);
}

#[tokio::test]
async fn revoked_and_expired_tokens_spend_the_budget_too() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock)
        .failure_budget(LocalFailureBudget::new(3, Duration::from_secs(60)))
        .build()
        .unwrap();
    let app = app(&keyward);
    let (id, revoked) = issue(&keyward, NewKey::service("revoked").scopes(["books:read"])).await;
    keyward.revoke(id).await.unwrap();
    let client = "198.51.100.7:1";
    for _ in 0..3 {
        let reply = send(&app, with_peer(bearer("/echo", &revoked), client)).await;
        assert_eq!(reply.status, 401);
    }
    // Spent: the next token that is not cached costs no lookup.
    let calls = store.counts.find();
    let reply = send(&app, with_peer(bearer("/echo", &forged(1)[0]), client)).await;
    assert_eq!(reply.status, 429);
    assert_eq!(store.counts.find(), calls);
    // Garbage (wrong check digits) is refused without charging or any store work.
    let other = "198.51.100.8:1";
    for _ in 0..10 {
        let reply = send(&app, with_peer(bearer("/echo", "books_garbage"), other)).await;
        assert_eq!(reply.status, 401);
    }
    let reply = send(&app, with_peer(bearer("/echo", &forged(1)[0]), other)).await;
    assert_eq!(
        reply.status, 401,
        "malformed tokens did not spend the budget"
    );
}

#[tokio::test]
async fn the_budget_is_renewed_after_its_window() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock)
        .failure_budget(LocalFailureBudget::new(5, Duration::from_secs(1)))
        .build()
        .unwrap();
    let app = app(&keyward);
    let client = "198.51.100.7:1";
    let tokens = forged(100);
    let mut next = tokens.iter();
    for _ in 0..5 {
        let reply = send(
            &app,
            with_peer(bearer("/echo", next.next().unwrap()), client),
        )
        .await;
        assert_eq!(reply.status, 401);
    }
    let reply = send(
        &app,
        with_peer(bearer("/echo", next.next().unwrap()), client),
    )
    .await;
    assert_eq!(reply.status, 429);
    let spent_at = store.counts.find();

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = send(
            &app,
            with_peer(bearer("/echo", next.next().unwrap()), client),
        )
        .await;
        if reply.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(reply.status, 429);
        assert!(Instant::now() < deadline, "the budget was never renewed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        store.counts.find(),
        spent_at + 1,
        "renewed: looked up again"
    );
}

#[tokio::test]
async fn without_a_budget_every_forged_token_is_looked_up() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock)
        .without_failure_budget()
        .build()
        .unwrap();
    let app = app(&keyward);
    for token in forged(50) {
        let reply = send(&app, with_peer(bearer("/echo", &token), "198.51.100.7:1")).await;
        assert_eq!(reply.status, 401);
    }
    assert_eq!(store.counts.find(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_bulkhead_a_miss_waits_briefly_then_gets_503() {
    let store = CountingStore::new();
    let clock = clock();
    let keyward = builder(store.clone(), &clock)
        .bulkhead(Bulkhead::new(2).wait(Duration::from_millis(50)))
        .without_failure_budget()
        .build()
        .unwrap();
    let app = Arc::new(app(&keyward));
    store.delay_finds(Duration::from_millis(500));
    let requests: Vec<_> = forged(10)
        .into_iter()
        .map(|token| {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                let started = Instant::now();
                let status = send(&app, bearer("/echo", &token)).await.status;
                (status, started.elapsed())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        let (status, elapsed) = request.await.unwrap();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(elapsed < Duration::from_millis(400), "waited {elapsed:?}");
        }
        statuses.push(status);
    }
    let unknown = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let busy = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!((unknown, busy), (2, 8), "{statuses:?}");
    assert_eq!(store.counts.find(), 2);
}
