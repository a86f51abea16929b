//! Usage counting: exact, batched, never written on the request path.

mod common;

use std::time::Duration;

use common::*;
use keyward::{KeyStore, ManualClock, NewKey};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_requests_from_fifty_tasks_count_exactly_after_shutdown() {
    let clock = ManualClock::new(t0());
    let store = CountingStore::new();
    let keyward = builder(store.clone(), &clock)
        .usage_flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let app = app(&keyward);
    let (id, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    let writes_before = store.counts.writes();

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let app = app.clone();
            let token = token.clone();
            tokio::spawn(async move {
                for _ in 0..200 {
                    let reply =
                        send(&app, with_peer(bearer("/echo", &token), "192.0.2.7:1000")).await;
                    assert_eq!(reply.status, 200);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    assert_eq!(
        store.counts.usage_writes(),
        0,
        "usage was written on the request path"
    );
    assert_eq!(
        store.counts.writes(),
        writes_before,
        "a request wrote to the store"
    );
    assert_eq!(store.inner.get(id).await.unwrap().unwrap().usage_count, 0);

    keyward.shutdown().await;
    let record = store.inner.get(id).await.unwrap().unwrap();
    assert_eq!(record.usage_count, 10_000);
    assert_eq!(record.last_used_at, Some(t0()));
    assert_eq!(record.last_used_ip, Some("192.0.2.7".parse().unwrap()));
    assert_eq!(
        store.counts.usage_writes(),
        1,
        "one batch for the whole run"
    );
}

#[tokio::test]
async fn the_background_task_flushes_every_interval() {
    let clock = ManualClock::new(t0());
    let store = CountingStore::new();
    let keyward = builder(store.clone(), &clock)
        .usage_flush_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let app = app(&keyward);
    let (id, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    for _ in 0..3 {
        assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if store.inner.get(id).await.unwrap().unwrap().usage_count == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "usage never flushed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    keyward.shutdown().await;
    assert_eq!(store.inner.get(id).await.unwrap().unwrap().usage_count, 3);
}

#[tokio::test]
async fn a_failed_flush_keeps_the_counts() {
    let clock = ManualClock::new(t0());
    let store = CountingStore::new();
    let keyward = builder(store.clone(), &clock)
        .usage_flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let app = app(&keyward);
    let (id, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    for _ in 0..5 {
        assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    }
    store.fail(true);
    assert!(keyward.flush_usage().await.is_err());
    store.fail(false);
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    keyward.shutdown().await;
    assert_eq!(store.inner.get(id).await.unwrap().unwrap().usage_count, 6);
}
