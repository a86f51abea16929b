//! A Redis restart during load: no 5xx, local fallback while it is down, the limiter and the
//! feed back within 5 s of its return, then a revoke reaches the other instance within 1 s.
//! Runs a private `redis-server` on a free port when `KEYWARD_TEST_REDIS_URL` is set (the
//! variable says Redis tests should run; the server is the test's own, so it can be killed).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{PrivateRedis, inspect, instance, namespace, redis_url, wait_subscribed};
use keyward::{AuthError, Keyward, NewKey};
use keyward_redis::Redis;
use keyward_test_support::TestDatabase;

/// Counts of one instance's answers under load.
#[derive(Default)]
struct Load {
    admitted: AtomicU32,
    limited: AtomicU32,
    slowest_ms: AtomicU32,
}

fn hammer(
    keyward: Keyward,
    token: Arc<str>,
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            match keyward.verify(&token, None).await {
                Ok(_) => load.admitted.fetch_add(1, Ordering::Relaxed),
                Err(AuthError::RateLimited { .. }) => load.limited.fetch_add(1, Ordering::Relaxed),
                Err(other) => panic!(
                    "a request failed while Redis restarted: {other} ({})",
                    other.status()
                ),
            };
            let took = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
            load.slowest_ms.fetch_max(took, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_during_load() {
    if redis_url().await.is_none() {
        return;
    }
    let mut server = PrivateRedis::start().await;
    let url = server.url();
    let ns = namespace("restart");
    let db = TestDatabase::sqlite();
    let first = keyward_sea_orm::SeaOrmStore::connect(db.url().to_owned())
        .await
        .unwrap();
    keyward_sea_orm::migrate(first.connection()).await.unwrap();
    let second = keyward_sea_orm::SeaOrmStore::connect(db.url().to_owned())
        .await
        .unwrap();
    let redis_a = Redis::connect(&url, ns.clone()).await.unwrap();
    let redis_b = Redis::connect(&url, ns.clone()).await.unwrap();
    let (a, b) = (
        instance(first, &redis_a, 30),
        instance(second, &redis_b, 30),
    );
    let channel = redis_a.change_feed().channel().to_owned();
    wait_subscribed(&url, &channel, 2, Duration::from_secs(5)).await;

    // 60 a minute: the burst is spent at once under load, then one request a second.
    let limited = a
        .create(NewKey::service("limited").scopes(["*"]).rate_limit(60))
        .await
        .unwrap();
    let token: Arc<str> = limited.token.expose_secret().into();
    let rate_key = format!("{ns}:rate:{}", limited.record.id);
    let stop = Arc::new(AtomicBool::new(false));
    let loads = [Arc::new(Load::default()), Arc::new(Load::default())];
    let tasks = [
        hammer(
            a.clone(),
            Arc::clone(&token),
            Arc::clone(&loads[0]),
            Arc::clone(&stop),
        ),
        hammer(
            b.clone(),
            Arc::clone(&token),
            Arc::clone(&loads[1]),
            Arc::clone(&stop),
        ),
    ];
    tokio::time::sleep(Duration::from_secs(1)).await;
    let shared_before: u32 = loads
        .iter()
        .map(|l| l.admitted.load(Ordering::Relaxed))
        .sum();
    assert!(
        (60..=62).contains(&shared_before),
        "the shared limit admitted {shared_before} in the first second, expected the burst of 60"
    );

    server.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during: Vec<u32> = loads
        .iter()
        .map(|l| l.admitted.load(Ordering::Relaxed))
        .collect();
    // Each instance falls back to its own limiter, with a fresh burst of 60.
    assert!(
        during[0] >= 50 && during[1] >= 50,
        "no local fallback while Redis was down: {during:?} admitted"
    );
    let slowest: Vec<u32> = loads
        .iter()
        .map(|l| l.slowest_ms.load(Ordering::Relaxed))
        .collect();
    eprintln!("while Redis was down: admitted {during:?}; slowest answers {slowest:?} ms");

    server.restart().await;
    let back = Instant::now();
    let mut redis = inspect(&url).await;
    loop {
        let exists: bool = redis::cmd("EXISTS")
            .arg(&rate_key)
            .query_async(&mut redis)
            .await
            .unwrap();
        if exists {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "the limiter did not use Redis again within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let limiter_back = back.elapsed();
    wait_subscribed(
        &url,
        &channel,
        2,
        Duration::from_secs(5).saturating_sub(back.elapsed()),
    )
    .await;
    let feed_back = back.elapsed();
    eprintln!("after Redis returned: limiter back in {limiter_back:?}, feed in {feed_back:?}");
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("no request failed");
    }

    let issued = a
        .create(NewKey::service("revoked").scopes(["*"]))
        .await
        .unwrap();
    let other = issued.token.expose_secret().to_owned();
    b.verify(&other, None)
        .await
        .expect("usable, and now cached");
    let revoked = Instant::now();
    a.revoke(issued.record.id).await.unwrap();
    loop {
        match b.verify(&other, None).await {
            Err(AuthError::InvalidToken(_)) => break,
            Ok(_) => assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "the revoke did not reach the other instance within 1 s"
            ),
            Err(other) => panic!("unexpected refusal: {other}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "after the restart a revoke reached the other instance in {:?}",
        revoked.elapsed()
    );
    a.shutdown().await;
    b.shutdown().await;
}
