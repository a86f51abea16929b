//! The conformance checks of usage counting and the change feed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use futures_util::StreamExt;

use super::{catalog, format, insert, must_get, personal_key, t0};
use crate::{
    DailyUsage, EventContext, KeyChange, KeyChanges, KeyId, KeyStore, SecretRotation, TokenHasher,
    UsageUpdate,
};

/// Usage adds up, keeps the latest use, and skips unknown ids.
pub async fn record_usage<S: KeyStore>(store: S) {
    let (a, _) = personal_key("alice", 0);
    let (b, _) = personal_key("bob", 1);
    insert(&store, &a).await;
    insert(&store, &b).await;
    let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
    let late = t0() + TimeDelta::seconds(100);
    store
        .record_usage(&[
            UsageUpdate {
                id: a.id,
                count: 5,
                last_used_at: late,
                last_used_ip: ip("10.0.0.1"),
            },
            UsageUpdate {
                id: b.id,
                count: 1,
                last_used_at: late,
                last_used_ip: ip("::1"),
            },
            UsageUpdate {
                id: crate::KeyId::new(),
                count: 9,
                last_used_at: late,
                last_used_ip: None,
            },
        ])
        .await
        .expect("usage");
    // An older batch arriving late adds its count but does not move last_used_* back.
    store
        .record_usage(&[UsageUpdate {
            id: a.id,
            count: 2,
            last_used_at: late - TimeDelta::seconds(50),
            last_used_ip: ip("10.0.0.2"),
        }])
        .await
        .expect("usage");
    let a = must_get(&store, &a).await;
    assert_eq!(a.usage_count, 7);
    assert_eq!(a.last_used_at, Some(late));
    assert_eq!(a.last_used_ip, ip("10.0.0.1"));
    let b = must_get(&store, &b).await;
    assert_eq!((b.usage_count, b.last_used_ip), (1, ip("::1")));
    store
        .record_usage(&[])
        .await
        .expect("an empty batch is fine");
}

/// 8 tasks × 1000 single increments on one key sum to exactly 8000, and to exactly 4000 on
/// each of the two days they span.
pub async fn record_usage_concurrently<S: KeyStore>(store: S) {
    let (record, _) = personal_key("alice", 0);
    insert(&store, &record).await;
    let store = Arc::new(store);
    let id = record.id;
    // The first half of the uses falls on the day before t0.
    let start = t0() - TimeDelta::seconds(4000);
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..1000 {
                    let update = UsageUpdate {
                        id,
                        count: 1,
                        last_used_at: start + TimeDelta::seconds(task * 1000 + i),
                        last_used_ip: None,
                    };
                    store.record_usage(&[update]).await.expect("usage");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let stored = store.get(record.id).await.expect("get").expect("exists");
    assert_eq!(stored.usage_count, 8000);
    assert_eq!(stored.last_used_at, Some(start + TimeDelta::seconds(7999)));
    let days = store
        .usage_days(record.id, day(-1))
        .await
        .expect("usage days");
    assert_eq!(days, [daily(-1, 4000), daily(0, 4000)]);
}

/// The UTC date `offset` days after t0's.
fn day(offset: i64) -> NaiveDate {
    (t0() + TimeDelta::days(offset)).date_naive()
}

fn daily(offset: i64, count: u64) -> DailyUsage {
    DailyUsage {
        date: day(offset),
        count,
    }
}

fn used(id: KeyId, count: u64, at: DateTime<Utc>) -> UsageUpdate {
    UsageUpdate {
        id,
        count,
        last_used_at: at,
        last_used_ip: None,
    }
}

/// Each update's count lands on the UTC day of its latest use: flushes of one day add up,
/// other days stay apart (also within one batch), unknown ids leave nothing, and `since`
/// leaves out the days before it.
pub async fn usage_days<S: KeyStore>(store: S) {
    let (a, _) = personal_key("alice", 0);
    let (b, _) = personal_key("bob", 1);
    insert(&store, &a).await;
    insert(&store, &b).await;
    let ghost = KeyId::new();
    let at = |seconds: i64| t0() + TimeDelta::seconds(seconds);
    let days_of = |id: KeyId, since: NaiveDate| {
        let store = &store;
        async move { store.usage_days(id, since).await.expect("usage days") }
    };
    assert!(days_of(a.id, day(-1)).await.is_empty(), "no uses yet");
    store
        .record_usage(&[
            used(a.id, 3, at(10)),
            used(b.id, 1, at(20)),
            used(ghost, 9, at(0)),
        ])
        .await
        .expect("usage");
    assert_eq!(days_of(a.id, day(0)).await, [daily(0, 3)]);
    // A second flush the same day adds up, up to its last second.
    store
        .record_usage(&[used(a.id, 4, at(86_399))])
        .await
        .expect("usage");
    // One batch with two days of the same key keeps them apart.
    store
        .record_usage(&[
            used(a.id, 2, at(86_401)),
            used(a.id, 5, at(3 * 86_400 + 3600)),
        ])
        .await
        .expect("usage");
    // A late flush of an earlier day counts on its own day.
    store
        .record_usage(&[used(a.id, 1, at(30))])
        .await
        .expect("usage");
    let all = [daily(0, 8), daily(1, 2), daily(3, 5)];
    assert_eq!(days_of(a.id, day(-30)).await, all);
    assert_eq!(days_of(a.id, day(0)).await, all);
    assert_eq!(days_of(a.id, day(1)).await, all[1..]);
    assert_eq!(days_of(a.id, day(2)).await, all[2..]);
    assert!(days_of(a.id, day(4)).await.is_empty());
    assert_eq!(days_of(b.id, day(0)).await, [daily(0, 1)]);
    assert!(
        days_of(ghost, day(-1)).await.is_empty(),
        "an unknown id is skipped"
    );
    assert_eq!(must_get(&store, &a).await.usage_count, 15);
}

/// Deleting a key deletes its daily counts and no other key's.
pub async fn usage_days_deleted<S: KeyStore>(store: S) {
    let (a, _) = personal_key("alice", 0);
    let (b, _) = personal_key("bob", 1);
    insert(&store, &a).await;
    insert(&store, &b).await;
    let at = t0() + TimeDelta::seconds(60);
    store
        .record_usage(&[used(a.id, 2, at), used(b.id, 3, at)])
        .await
        .expect("usage");
    store
        .delete(a.id, &EventContext::system())
        .await
        .expect("delete");
    assert!(
        store
            .usage_days(a.id, day(-1))
            .await
            .expect("usage days")
            .is_empty()
    );
    assert_eq!(
        store.usage_days(b.id, day(-1)).await.expect("usage days"),
        [daily(0, 3)]
    );
}

/// A store with a change feed reports revoke, update, regenerate and delete.
pub async fn change_feed<S: KeyStore>(store: S) {
    let Some(mut feed) = store.changes() else {
        return;
    };
    let (record, _) = personal_key("alice", 0);
    insert(&store, &record).await;
    let disable = KeyChanges {
        active: Some(false),
        ..KeyChanges::default()
    }
    .validate(&catalog())
    .expect("valid");
    let (rotation, _) = SecretRotation::generate(&format(), &TokenHasher::sha256(), None, t0());
    for step in 0..4 {
        match step {
            0 => {
                store
                    .update(record.id, &disable, t0(), &EventContext::system())
                    .await
                    .expect("update");
            }
            1 => {
                store
                    .replace_secret(record.id, &rotation, t0(), &EventContext::system())
                    .await
                    .expect("rotate");
            }
            2 => {
                store
                    .revoke(record.id, t0(), &EventContext::system())
                    .await
                    .expect("revoke");
            }
            _ => store
                .delete(record.id, &EventContext::system())
                .await
                .expect("delete"),
        }
        let change = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match feed.next().await {
                    Some(KeyChange::Changed(id)) if id == record.id => return true,
                    Some(_) => {}
                    None => return false,
                }
            }
        })
        .await;
        assert_eq!(
            change,
            Ok(true),
            "step {step}: the feed reported the change"
        );
    }
}
