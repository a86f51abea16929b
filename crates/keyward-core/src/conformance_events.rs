//! The conformance checks of key events ([`KeyStore::events`]), expiry notices
//! ([`KeyStore::expiry_notices`]) and durable readers ([`KeyStore::lease_consumer`]). A store
//! that keeps no change log passes the first two trivially.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::json;

use super::{catalog, format, insert, issue, personal_key, t0};
use crate::{
    Actor, ChangeKind, ChangeRecord, ConsumerLease, EventContext, EventQuery, Expiry, KeyChanges,
    KeyId, KeyStore, Leak, NewKey, SecretRotation, TokenHasher,
};

async fn keeps_log<S: KeyStore>(store: &S) -> bool {
    store
        .changes_since(None, 1)
        .await
        .expect("read the head")
        .is_some()
}

/// Every event of `query`, read in pages of `limit`, newest first.
async fn all_events<S: KeyStore>(store: &S, query: EventQuery, limit: usize) -> Vec<ChangeRecord> {
    let mut events = Vec::new();
    let mut query = query.limit(limit);
    for _ in 0..100 {
        let page = store.events(&query).await.expect("list events");
        assert!(page.events.len() <= limit);
        events.extend(page.events);
        match page.next_cursor {
            Some(cursor) => query = query.before(cursor),
            None => return events,
        }
    }
    panic!("the events never ended");
}

fn kinds(events: &[ChangeRecord]) -> Vec<ChangeKind> {
    events.iter().map(|e| e.kind).collect()
}

fn changes(changes: KeyChanges) -> crate::KeyUpdate {
    changes.validate(&catalog()).expect("valid")
}

/// Each change records its actor, client address and what changed (never a secret):
/// enabling and disabling are events of their own, a revocation in response to a leak is
/// `leaked` with its source and URL, and a deleted key's events stay listed.
pub async fn events_record_actor_and_detail<S: KeyStore>(store: S) {
    if !keeps_log(&store).await {
        return;
    }
    let ip = "203.0.113.7".parse().ok();
    let alice = EventContext::new(Actor::user("alice")).client_ip(ip);
    let (record, token) = personal_key("alice", 0);
    let id = record.id;
    store.insert(record.clone(), &alice).await.expect("insert");
    let admin_key = EventContext::new(Actor::Key(KeyId::new()));
    let rename = changes(KeyChanges {
        name: Some("renamed".into()),
        scopes: Some(vec!["books:write".into()]),
        ..KeyChanges::default()
    });
    store
        .update(id, &rename, t0(), &admin_key)
        .await
        .expect("rename");
    let disable = changes(KeyChanges {
        active: Some(false),
        disabled_by: Some("alice".into()),
        ..KeyChanges::default()
    });
    store
        .update(id, &disable, t0(), &alice)
        .await
        .expect("disable");
    let enable = changes(KeyChanges {
        active: Some(true),
        ..KeyChanges::default()
    });
    store
        .update(id, &enable, t0(), &EventContext::cli())
        .await
        .expect("enable");
    let later = t0() + TimeDelta::days(2);
    store.refresh(id, later, &alice).await.expect("refresh");
    let (rotation, new_token) =
        SecretRotation::generate(&format(), &TokenHasher::sha256(), None, t0());
    store
        .replace_secret(id, &rotation, t0(), &alice)
        .await
        .expect("regenerate");
    let leak = EventContext::system().leaked(Leak::new(
        "github",
        Some("https://github.com/o/r/blob/x".into()),
    ));
    store.revoke(id, t0(), &leak).await.expect("revoke");
    store.delete(id, &alice).await.expect("delete");

    let events = all_events(&store, EventQuery::new().key(id), 100).await;
    assert_eq!(
        kinds(&events),
        [
            ChangeKind::Deleted,
            ChangeKind::Leaked,
            ChangeKind::Regenerated,
            ChangeKind::Refreshed,
            ChangeKind::Enabled,
            ChangeKind::Disabled,
            ChangeKind::Updated,
            ChangeKind::Created,
        ],
        "newest first, one event per change"
    );
    for event in &events {
        assert_eq!(event.key_id, Some(id));
        assert_eq!(event.owner.as_deref(), Some("alice"));
        let text = event.detail.to_string();
        for secret in [token.expose_secret(), new_token.expose_secret()] {
            assert!(!text.contains(secret), "no token in {text}");
        }
        assert!(
            !text.contains(&record.digest.to_hex()),
            "no digest in {text}"
        );
    }
    let [
        deleted,
        leaked,
        _,
        refreshed,
        enabled,
        disabled,
        updated,
        created,
    ] = &events[..]
    else {
        unreachable!("eight events");
    };
    assert_eq!(created.actor, Some(Actor::user("alice")));
    assert_eq!(created.client_ip, ip);
    assert_eq!(created.detail["name"], json!("key of alice"));
    assert_eq!(created.detail["scopes"], json!(["books:read"]));
    assert_eq!(updated.actor, admin_key.actor.clone().into());
    assert_eq!(updated.client_ip, None);
    assert_eq!(updated.detail["fields"], json!(["name", "scopes"]));
    assert_eq!(updated.detail["from"]["name"], json!("key of alice"));
    assert_eq!(updated.detail["to"]["scopes"], json!(["books:write"]));
    assert_eq!(disabled.detail["fields"], json!(["active"]));
    assert_eq!(enabled.actor, Some(Actor::Cli));
    assert_eq!(refreshed.detail["fields"], json!(["expires_at"]));
    assert_eq!(leaked.actor, Some(Actor::System));
    assert_eq!(leaked.detail["action"], json!("revoked"));
    assert_eq!(leaked.detail["source"], json!("github"));
    assert_eq!(leaked.detail["url"], json!("https://github.com/o/r/blob/x"));
    assert_eq!(deleted.detail["name"], json!("renamed"));
}

/// Events filter by key, owner, kind and time; pages are stable and together list each event
/// once; owner changes are not listed.
pub async fn events_filter_and_paginate<S: KeyStore>(store: S) {
    if !keeps_log(&store).await {
        return;
    }
    let start = Utc::now() - TimeDelta::seconds(5);
    let by = EventContext::system();
    let mut ids = Vec::new();
    for (n, owner) in ["ann", "bob", "ann", "bob", "ann"].into_iter().enumerate() {
        let (record, _) = personal_key(owner, i64::try_from(n).expect("small"));
        insert(&store, &record).await;
        ids.push((record.id, owner));
    }
    store.owner_changed("ann").await.expect("owner change");
    for &(id, _) in &ids[..3] {
        store.revoke(id, t0(), &by).await.expect("revoke");
    }
    let everything = all_events(&store, EventQuery::new(), 1000).await;
    assert_eq!(
        everything.len(),
        8,
        "five created, three revoked, no owner change"
    );
    assert!(
        everything.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );
    for limit in [1, 2, 3, 7] {
        let paged = all_events(&store, EventQuery::new(), limit).await;
        assert_eq!(paged, everything, "pages of {limit}");
    }
    let ann = all_events(&store, EventQuery::new().owner("ann"), 2).await;
    assert_eq!(ann.len(), 5, "three created, two revoked");
    assert!(ann.iter().all(|e| e.owner.as_deref() == Some("ann")));
    let revoked = all_events(&store, EventQuery::new().kind(ChangeKind::Revoked), 2).await;
    assert_eq!(revoked.len(), 3);
    let bob_revoked = EventQuery::new().owner("bob").kind(ChangeKind::Revoked);
    assert_eq!(all_events(&store, bob_revoked, 10).await.len(), 1);
    let one = all_events(&store, EventQuery::new().key(ids[4].0), 10).await;
    assert_eq!(kinds(&one), [ChangeKind::Created]);
    assert_eq!(
        all_events(&store, EventQuery::new().since(start), 10)
            .await
            .len(),
        8
    );
    let future = Utc::now() + TimeDelta::hours(1);
    assert!(
        all_events(&store, EventQuery::new().since(future), 10)
            .await
            .is_empty()
    );
}

/// Expiry notices are recorded once per key and expiry, even when instances sweep at the same
/// time: `expiring_soon` inside the window for live keys, `expired` after the expiry (not for
/// revoked keys); a refresh makes the new expiry due again.
pub async fn expiry_notices_once<S: KeyStore>(store: S) {
    if !keeps_log(&store).await {
        return;
    }
    let window = TimeDelta::days(7);
    let by = EventContext::system();
    let soon = issue(
        NewKey::personal("soon", "ann")
            .scopes(["books:read"])
            .expiry(Expiry::InDays(7)),
        0,
    )
    .0;
    let later = issue(
        NewKey::personal("later", "ann")
            .scopes(["books:read"])
            .expiry(Expiry::InDays(90)),
        0,
    )
    .0;
    let never = issue(
        NewKey::personal("never", "ann")
            .scopes(["books:read"])
            .expiry(Expiry::Never),
        0,
    )
    .0;
    let revoked = issue(
        NewKey::personal("gone", "ann")
            .scopes(["books:read"])
            .expiry(Expiry::InDays(7)),
        0,
    )
    .0;
    for record in [&soon, &later, &never, &revoked] {
        insert(&store, record).await;
    }
    store.revoke(revoked.id, t0(), &by).await.expect("revoke");
    let now = t0() + TimeDelta::days(1);
    let sweeps =
        futures_util::future::join_all((0..4).map(|_| store.expiry_notices(now, window, &by)))
            .await;
    let recorded: Vec<ChangeRecord> = sweeps
        .into_iter()
        .flat_map(|sweep| sweep.expect("sweep"))
        .collect();
    assert_eq!(
        kinds(&recorded),
        [ChangeKind::ExpiringSoon],
        "one notice among four sweeps"
    );
    assert_eq!(recorded[0].key_id, Some(soon.id));
    assert_eq!(recorded[0].actor, Some(Actor::System));
    assert_eq!(recorded[0].detail["name"], json!("soon"));
    assert!(
        store
            .expiry_notices(now, window, &by)
            .await
            .expect("sweep")
            .is_empty()
    );

    let after = t0() + TimeDelta::days(8);
    let expired = store
        .expiry_notices(after, window, &by)
        .await
        .expect("sweep");
    assert_eq!(kinds(&expired), [ChangeKind::Expired]);
    assert_eq!(expired[0].key_id, Some(soon.id));
    assert!(
        store
            .expiry_notices(after, window, &by)
            .await
            .expect("sweep")
            .is_empty()
    );

    // `later` expires on day 90; a refresh on day 85 moves it to day 175.
    let day = |n| t0() + TimeDelta::days(n);
    let noticed = store
        .expiry_notices(day(85), window, &by)
        .await
        .expect("sweep");
    assert_eq!(kinds(&noticed), [ChangeKind::ExpiringSoon]);
    store
        .refresh(later.id, day(85), &by)
        .await
        .expect("refresh");
    assert!(
        store
            .expiry_notices(day(86), window, &by)
            .await
            .expect("sweep")
            .is_empty()
    );
    let again = store
        .expiry_notices(day(170), window, &by)
        .await
        .expect("sweep");
    assert_eq!(
        kinds(&again),
        [ChangeKind::ExpiringSoon],
        "due again for the new expiry"
    );
    let listed = all_events(&store, EventQuery::new().kind(ChangeKind::ExpiringSoon), 10).await;
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed[0].seq, again[0].seq,
        "a sweep returns the events as stored"
    );
    assert_eq!(listed[2].seq, recorded[0].seq);
}

/// A notice about a key (`rate_limited`) is recorded with the key's owner and detail; an
/// unknown key records nothing.
pub async fn record_event_names_owner<S: KeyStore>(store: S) {
    if !keeps_log(&store).await {
        return;
    }
    let (record, _) = personal_key("ann", 0);
    insert(&store, &record).await;
    let detail = json!({ "limit_per_minute": 60 });
    let by = EventContext::system();
    assert!(
        store
            .record_event(record.id, ChangeKind::RateLimited, &detail, &by)
            .await
            .expect("record")
    );
    assert!(
        !store
            .record_event(KeyId::new(), ChangeKind::RateLimited, &detail, &by)
            .await
            .expect("record")
    );
    let events = all_events(&store, EventQuery::new().kind(ChangeKind::RateLimited), 10).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].key_id, Some(record.id));
    assert_eq!(events[0].owner.as_deref(), Some("ann"));
    assert_eq!(events[0].detail, detail);
    assert_eq!(events[0].actor, Some(Actor::System));
}

/// A durable reader is leased to one holder at a time, keeps its saved position, and passes
/// to another holder when its lease runs out.
pub async fn consumer_leases<S: KeyStore>(store: S) {
    let lease = |holder: &str| ConsumerLease {
        name: format!("webhook:{}", KeyId::new()),
        holder: holder.to_owned(),
        duration: Duration::from_secs(30),
    };
    let first = lease("instance-1");
    let now = Utc::now();
    let Ok(taken) = store.lease_consumer(&first, now).await else {
        return;
    };
    assert_eq!(taken, Some(None), "a new reader has no position");
    let second = ConsumerLease {
        holder: "instance-2".into(),
        ..first.clone()
    };
    assert_eq!(
        store.lease_consumer(&second, now).await.expect("lease"),
        None
    );
    assert!(store.save_consumer(&first, 41).await.expect("save"));
    assert!(
        !store.save_consumer(&second, 99).await.expect("save"),
        "not the holder"
    );
    assert_eq!(
        store
            .lease_consumer(&first, now + TimeDelta::seconds(10))
            .await
            .expect("renew"),
        Some(Some(41))
    );
    let expired = now + TimeDelta::seconds(45);
    assert_eq!(
        store
            .lease_consumer(&second, expired)
            .await
            .expect("take over"),
        Some(Some(41))
    );
    assert!(
        !store.save_consumer(&first, 42).await.expect("save"),
        "lost the lease"
    );
    assert!(store.save_consumer(&second, 42).await.expect("save"));
    let other = lease("instance-1");
    assert_eq!(
        store.lease_consumer(&other, now).await.expect("lease"),
        Some(None),
        "readers are apart"
    );
}
