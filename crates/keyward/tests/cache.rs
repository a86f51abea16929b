//! The cache: what reaches the store, and invalidation through the handle and the feed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use keyward::{GracePeriod, KeyChanges, ManualClock, MemoryStore, NewKey};

#[tokio::test]
async fn a_cache_hit_calls_the_store_zero_times() {
    let clock = ManualClock::new(t0());
    let store = CountingStore::new();
    let keyward = builder(store.clone(), &clock).build().unwrap();
    let app = app(&keyward);
    let (_, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;

    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    assert_eq!(store.counts.find(), 1, "the first request is a miss");
    let before = store.counts.total();
    for _ in 0..100 {
        assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    }
    assert_eq!(
        store.counts.total(),
        before,
        "cache hits must not call the store"
    );
}

#[tokio::test]
async fn garbage_and_wrong_checksums_never_reach_the_store_or_the_negative_cache() {
    let clock = ManualClock::new(t0());
    let store = CountingStore::new();
    let keyward = builder(store.clone(), &clock).build().unwrap();
    let app = app(&keyward);
    let (_, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    let before = store.counts.total();
    let mut wrong = token.clone().into_bytes();
    wrong[10] = if wrong[10] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    for bad in ["x", "books_abc", wrong.as_str(), &"z".repeat(10_000)] {
        for _ in 0..3 {
            let reply = send(&app, bearer("/echo", bad)).await;
            assert_eq!(reply.status, 401);
        }
    }
    assert_eq!(store.counts.total(), before, "garbage reached the store");

    // An unknown but well-formed token reaches the store once, then the negative cache.
    let unknown = keyward::TokenFormat::new("books").unwrap().generate();
    for _ in 0..5 {
        assert_eq!(
            send(&app, bearer("/echo", unknown.expose_secret()))
                .await
                .status,
            401
        );
    }
    assert_eq!(store.counts.find(), 1);
}

#[tokio::test]
async fn revoke_through_the_handle_fails_the_next_request_without_waiting() {
    let clock = ManualClock::new(t0());
    let store = CountingStore::new();
    let keyward = builder(store.clone(), &clock).build().unwrap();
    let app = app(&keyward);
    let (id, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    keyward.revoke(id).await.unwrap();
    let reply = send(&app, bearer("/echo", &token)).await;
    assert_eq!(reply.status, 401);
    assert!(reply.challenge().unwrap().contains("revoked"));
}

#[tokio::test]
async fn handle_changes_apply_at_once() {
    let clock = ManualClock::new(t0());
    let keyward = builder(MemoryStore::new(), &clock).build().unwrap();
    let app = app(&keyward);
    let (id, token) = issue(&keyward, NewKey::service("ci").scopes(["books:write"])).await;
    let mut write = bearer("/write", &token);
    *write.method_mut() = http::Method::POST;
    assert_eq!(send(&app, write).await.status, 200);

    // Scope change.
    let changes = KeyChanges {
        scopes: Some(vec!["books:read".into()]),
        ..KeyChanges::default()
    };
    keyward.update(id, changes).await.unwrap();
    let mut write = bearer("/write", &token);
    *write.method_mut() = http::Method::POST;
    assert_eq!(send(&app, write).await.status, 403);

    // Regenerate without grace: the old token stops at once, the new one works.
    let issued = keyward.regenerate(id, None).await.unwrap();
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 401);
    let new_token = issued.token.expose_secret().to_owned();
    assert_eq!(send(&app, bearer("/echo", &new_token)).await.status, 200);

    // Regenerate with grace: the previous token works until the grace period ends.
    let grace = GracePeriod::from_secs(60).unwrap();
    let newest = keyward.regenerate(id, Some(grace)).await.unwrap();
    assert_eq!(send(&app, bearer("/echo", &new_token)).await.status, 200);
    clock.advance(chrono::TimeDelta::seconds(60));
    assert_eq!(send(&app, bearer("/echo", &new_token)).await.status, 401);
    assert_eq!(
        send(&app, bearer("/echo", newest.token.expose_secret()))
            .await
            .status,
        200
    );

    // Delete.
    keyward.delete(id).await.unwrap();
    assert_eq!(
        send(&app, bearer("/echo", newest.token.expose_secret()))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn another_instance_on_the_same_store_sees_changes_through_the_feed() {
    let clock = ManualClock::new(t0());
    let store = MemoryStore::new();
    let first = builder(store.clone(), &clock).build().unwrap();
    let second = builder(store, &clock).build().unwrap();
    let app = app(&second);
    let (id, token) = issue(&first, NewKey::service("ci").scopes(["books:read"])).await;
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    first.revoke(id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = send(&app, bearer("/echo", &token)).await.status;
        if status == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revoke never reached the other instance"
        );
        tokio::task::yield_now().await;
    }
}
