//! The conformance checks of usage counting and the change feed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use futures_util::StreamExt;

use super::{catalog, format, insert, must_get, personal_key, t0};
use crate::{KeyChange, KeyChanges, KeyStore, SecretRotation, TokenHasher, UsageUpdate};

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

/// 8 tasks × 1000 single increments on one key sum to exactly 8000.
pub async fn record_usage_concurrently<S: KeyStore>(store: S) {
    let (record, _) = personal_key("alice", 0);
    insert(&store, &record).await;
    let store = Arc::new(store);
    let id = record.id;
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..1000 {
                    let update = UsageUpdate {
                        id,
                        count: 1,
                        last_used_at: t0() + TimeDelta::seconds(task * 1000 + i),
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
    assert_eq!(stored.last_used_at, Some(t0() + TimeDelta::seconds(7999)));
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
                    .update(record.id, &disable, t0())
                    .await
                    .expect("update");
            }
            1 => {
                store
                    .replace_secret(record.id, &rotation, t0())
                    .await
                    .expect("rotate");
            }
            2 => {
                store.revoke(record.id, t0()).await.expect("revoke");
            }
            _ => store.delete(record.id).await.expect("delete"),
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
