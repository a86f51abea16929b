//! A key refused for its rate limit is a `rate_limited` event: the first refusal per key and
//! minute, written with the usage at the next flush, never on the request path.

use chrono::TimeDelta;
use keyward::{
    AuthError, ChangeKind, EventQuery, Keyward, ManualClock, MemoryStore, NewKey, ScopeCatalog,
};
use keyward_test_support::CountingStore;

#[tokio::test]
async fn the_first_refusal_per_minute_is_recorded_at_the_flush() {
    let clock = ManualClock::new(chrono::Utc::now());
    let store = CountingStore::wrapping(MemoryStore::new());
    let keyward = Keyward::builder(store.clone())
        .prefix("books")
        .catalog(
            ScopeCatalog::builder()
                .scope("books:read", "Read")
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .build()
        .unwrap();
    let issued = keyward
        .create(
            NewKey::personal("limited", "alice")
                .scopes(["books:read"])
                .rate_limit(2),
        )
        .await
        .unwrap();
    let token = issued.token.expose_secret();
    let id = issued.record.id;
    let rate_limited = || async {
        keyward
            .events(&EventQuery::new().key(id).kind(ChangeKind::RateLimited))
            .await
            .unwrap()
            .events
    };

    let writes = store.counts.writes();
    let mut refused = 0;
    for _ in 0..10 {
        match keyward.verify(token, None).await {
            Ok(_) => {}
            Err(AuthError::RateLimited { .. }) => refused += 1,
            Err(other) => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(refused, 8);
    assert_eq!(
        store.counts.writes(),
        writes,
        "no write on the request path"
    );
    assert!(rate_limited().await.is_empty(), "written at the flush");

    keyward.flush_usage().await.unwrap();
    let events = rate_limited().await;
    assert_eq!(events.len(), 1, "one event for eight refusals");
    assert_eq!(events[0].owner.as_deref(), Some("alice"));
    assert_eq!(events[0].detail["limit_per_minute"], 2);

    // More refusals in the same minute: no new event.
    keyward
        .verify(token, None)
        .await
        .expect_err("still limited");
    keyward.flush_usage().await.unwrap();
    assert_eq!(rate_limited().await.len(), 1);

    // A minute later the limit admits again; once spent, the next refusal is a new event.
    clock.advance(TimeDelta::seconds(61));
    for _ in 0..3 {
        let _ = keyward.verify(token, None).await;
    }
    keyward.flush_usage().await.unwrap();
    assert_eq!(rate_limited().await.len(), 2);
}
