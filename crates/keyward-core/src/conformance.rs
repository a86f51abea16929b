//! The conformance suite every [`KeyStore`] must pass (feature `test-util`).
//!
//! Each check is a public async function taking a fresh, empty store. The
//! [`conformance_tests!`](crate::conformance_tests) macro turns them into one `#[tokio::test]`
//! per check, so a store crate runs the whole suite with one line:
//!
//! ```ignore
//! async fn store() -> Option<MyStore> {
//!     // `None` skips every test, e.g. when the backend's URL is not configured.
//!     Some(MyStore::connect("...").await.unwrap())
//! }
//! keyward_core::conformance_tests!(store);
//! ```
//!
//! The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features among its
//! dev-dependencies. Stores must keep timestamps to the microsecond: the checks use whole
//! seconds, so any store that keeps at least that passes.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    EventContext, Expiry, GracePeriod, KeyChanges, KeyRecord, KeyStore, ListCursor, ListQuery,
    NewKey, ScopeCatalog, SecretRotation, StoreErrorKind, Token, TokenFormat, TokenHasher,
};

#[path = "conformance_changes.rs"]
mod changes;
#[path = "conformance_events.rs"]
mod events;
#[path = "conformance_usage.rs"]
mod usage;
pub use changes::{change_log, change_log_pages, change_log_skips_failures};
pub use events::{
    consumer_leases, events_filter_and_paginate, events_record_actor_and_detail,
    expiry_notices_once, record_event_names_owner,
};
pub use usage::{
    change_feed, record_usage, record_usage_concurrently, usage_days, usage_days_deleted,
};

/// A fixed instant the checks count from.
#[must_use]
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("2026-01-01 is representable")
}

fn catalog() -> ScopeCatalog {
    ScopeCatalog::builder()
        .scope("books:read", "Read books")
        .scope("books:write", "Write books")
        .implies("books:write", "books:read")
        .build()
        .expect("the test catalog is valid")
}

fn format() -> TokenFormat {
    TokenFormat::new("test").expect("valid prefix")
}

/// A new personal key for `owner`, created at `t0() + offset` seconds.
#[must_use]
pub fn personal_key(owner: &str, offset: i64) -> (KeyRecord, Token) {
    issue(
        NewKey::personal(format!("key of {owner}"), owner)
            .scopes(["books:read"])
            .metadata(serde_json::json!({ "team": "backup", "n": offset })),
        offset,
    )
}

fn issue(new: NewKey, offset: i64) -> (KeyRecord, Token) {
    let issued = new
        .issue(
            &catalog(),
            &format(),
            &TokenHasher::sha256(),
            t0() + TimeDelta::seconds(offset),
        )
        .expect("valid test key");
    (issued.record, issued.token)
}

fn digest(token: &Token) -> crate::TokenDigest {
    TokenHasher::sha256().digest(token)
}

async fn insert<S: KeyStore>(store: &S, record: &KeyRecord) {
    store
        .insert(record.clone(), &EventContext::system())
        .await
        .expect("insert");
}

async fn must_get<S: KeyStore>(store: &S, record: &KeyRecord) -> KeyRecord {
    store
        .get(record.id)
        .await
        .expect("get")
        .expect("the key exists")
}

/// Every field survives a round trip through the store.
pub async fn insert_and_get<S: KeyStore>(store: S) {
    let (personal, _) = personal_key("alice", 0);
    let (service, _) = issue(
        NewKey::service("deploy bot ✓")
            .scopes(["books:*", "keys:admin"])
            .expiry(Expiry::Never)
            .allowed_ips(["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"])
            .rate_limit(120),
        1,
    );
    insert(&store, &personal).await;
    insert(&store, &service).await;
    assert_eq!(must_get(&store, &personal).await, personal);
    assert_eq!(must_get(&store, &service).await, service);
    assert!(store.get(crate::KeyId::new()).await.expect("get").is_none());
}

/// A duplicate id or digest is a conflict.
pub async fn insert_conflicts<S: KeyStore>(store: S) {
    let (record, _) = personal_key("alice", 0);
    insert(&store, &record).await;
    let err = store
        .insert(record.clone(), &EventContext::system())
        .await
        .expect_err("duplicate id");
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
    let (mut other, _) = personal_key("bob", 1);
    other.digest = record.digest;
    let err = store
        .insert(other, &EventContext::system())
        .await
        .expect_err("duplicate digest");
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
}

/// Lookup by the current digest, and nothing for an unknown one.
pub async fn find_by_digest<S: KeyStore>(store: S) {
    let (record, token) = personal_key("alice", 0);
    let (other, _) = personal_key("bob", 1);
    insert(&store, &record).await;
    insert(&store, &other).await;
    let found = store
        .find_by_digest(&digest(&token), t0())
        .await
        .expect("find");
    assert_eq!(found, Some(record));
    let unknown = digest(&format().generate());
    assert_eq!(
        store.find_by_digest(&unknown, t0()).await.expect("find"),
        None
    );
}

/// The previous secret is found only inside its grace period.
pub async fn find_previous_in_grace<S: KeyStore>(store: S) {
    let (record, old) = personal_key("alice", 0);
    insert(&store, &record).await;
    let grace = GracePeriod::from_secs(600).expect("valid grace");
    let (rotation, new) =
        SecretRotation::generate(&format(), &TokenHasher::sha256(), Some(grace), t0());
    let rotated = store
        .replace_secret(record.id, &rotation, t0(), &EventContext::system())
        .await
        .expect("rotate");
    assert_eq!(rotated.hint, new.hint());
    let end = t0() + TimeDelta::seconds(600);
    for at in [t0(), end - TimeDelta::seconds(1)] {
        let found = store.find_by_digest(&digest(&old), at).await.expect("find");
        assert_eq!(
            found.map(|k| k.id),
            Some(record.id),
            "old token inside grace"
        );
    }
    assert_eq!(
        store
            .find_by_digest(&digest(&old), end)
            .await
            .expect("find"),
        None
    );
    let found = store
        .find_by_digest(&digest(&new), end)
        .await
        .expect("find");
    assert_eq!(found.map(|k| k.id), Some(record.id));
}

/// Newest first, owner filter, revoked keys only on request.
pub async fn list_filters<S: KeyStore>(store: S) {
    let (a1, _) = personal_key("alice", 0);
    let (b1, _) = personal_key("bob", 1);
    let (a2, _) = personal_key("alice", 2);
    for r in [&a1, &b1, &a2] {
        insert(&store, r).await;
    }
    store
        .revoke(a1.id, t0(), &EventContext::system())
        .await
        .expect("revoke");

    let all = store
        .list(&ListQuery {
            include_revoked: true,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    let ids: Vec<_> = all.keys.iter().map(|k| k.id).collect();
    assert_eq!(ids, [a2.id, b1.id, a1.id], "newest first");
    assert_eq!(all.next_cursor, None);

    let live = store.list(&ListQuery::default()).await.expect("list");
    let ids: Vec<_> = live.keys.iter().map(|k| k.id).collect();
    assert_eq!(ids, [a2.id, b1.id], "revoked keys hidden by default");

    let alice = store
        .list(&ListQuery {
            owner: Some("alice".into()),
            include_revoked: true,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    let ids: Vec<_> = alice.keys.iter().map(|k| k.id).collect();
    assert_eq!(ids, [a2.id, a1.id]);

    let nobody = store
        .list(&ListQuery {
            owner: Some("carol".into()),
            ..ListQuery::default()
        })
        .await
        .expect("list");
    assert!(nobody.keys.is_empty());
}

/// Paging visits every key once, and keys added meanwhile do not shift later pages.
pub async fn list_pagination_is_stable<S: KeyStore>(store: S) {
    let mut created = Vec::new();
    for i in 0..25 {
        let (record, _) = personal_key("alice", i);
        insert(&store, &record).await;
        created.push(record.id);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<ListCursor> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list(&ListQuery {
                limit: 10,
                cursor,
                ..ListQuery::default()
            })
            .await
            .expect("list");
        assert!(page.keys.len() <= 10);
        seen.extend(page.keys.iter().map(|k| k.id));
        pages += 1;
        // Keys created while paging must not appear in, or disturb, the remaining pages.
        let (extra, _) = personal_key("alice", 100 + pages);
        insert(&store, &extra).await;
        match page.next_cursor {
            Some(next) => {
                let reparsed: ListCursor = next.to_string().parse().expect("cursor round trip");
                cursor = Some(reparsed);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    created.reverse();
    assert_eq!(seen, created, "every key once, newest first");

    let huge = store
        .list(&ListQuery {
            limit: usize::MAX,
            ..ListQuery::default()
        })
        .await
        .expect("limit is clamped");
    assert_eq!(huge.keys.len(), 28);
}

/// Validated changes are applied; usage fields are left alone; revoked keys do not change.
pub async fn update<S: KeyStore>(store: S) {
    let (record, _) = personal_key("alice", 0);
    insert(&store, &record).await;
    let changes = KeyChanges {
        name: Some("renamed".into()),
        scopes: Some(vec!["books:write".into()]),
        active: Some(false),
        disabled_by: Some("root".into()),
        allowed_ips: Some(vec!["::1".into()]),
        rate_limit: Some(Some(30)),
        metadata: Some(serde_json::json!({ "x": [1, 2] })),
    }
    .validate(&catalog())
    .expect("valid changes");
    let at = t0() + TimeDelta::seconds(5);
    let updated = store
        .update(record.id, &changes, at, &EventContext::system())
        .await
        .expect("update");
    assert_eq!(updated.name, "renamed");
    assert!(updated.scopes.allows_str("books:write"));
    assert!(!updated.active);
    assert_eq!(
        updated.disabled_by.as_deref(),
        Some("root"),
        "who disabled it"
    );
    assert_eq!(
        updated.allowed_ips,
        ["::1/128".parse::<ipnet::IpNet>().expect("net")]
    );
    assert_eq!(updated.rate_limit.map(std::num::NonZeroU32::get), Some(30));
    assert_eq!(updated.metadata, serde_json::json!({ "x": [1, 2] }));
    assert_eq!(updated.updated_at, at);
    assert_eq!(must_get(&store, &record).await, updated);

    let clear = KeyChanges {
        rate_limit: Some(None),
        ..KeyChanges::default()
    }
    .validate(&catalog())
    .expect("valid");
    let cleared = store
        .update(record.id, &clear, at, &EventContext::system())
        .await
        .expect("update");
    assert_eq!(cleared.rate_limit, None);
    assert_eq!(cleared.name, "renamed", "absent fields unchanged");
    assert_eq!(
        cleared.disabled_by.as_deref(),
        Some("root"),
        "still disabled"
    );
    let enable = KeyChanges {
        active: Some(true),
        ..KeyChanges::default()
    }
    .validate(&catalog())
    .expect("valid");
    let enabled = store
        .update(record.id, &enable, at, &EventContext::system())
        .await
        .expect("update");
    assert!(enabled.active);
    assert_eq!(
        enabled.disabled_by, None,
        "enabling forgets who disabled it"
    );
    assert_eq!(must_get(&store, &record).await, enabled);

    let missing = store
        .update(crate::KeyId::new(), &clear, at, &EventContext::system())
        .await
        .expect_err("missing");
    assert_eq!(missing.kind(), StoreErrorKind::NotFound);

    store
        .revoke(record.id, at, &EventContext::system())
        .await
        .expect("revoke");
    let err = store
        .update(record.id, &clear, at, &EventContext::system())
        .await
        .expect_err("revoked");
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
}

/// Revoke keeps the record, is idempotent, and the key is still found (to say "revoked").
pub async fn revoke<S: KeyStore>(store: S) {
    let (record, token) = personal_key("alice", 0);
    insert(&store, &record).await;
    let at = t0() + TimeDelta::seconds(9);
    let revoked = store
        .revoke(record.id, at, &EventContext::system())
        .await
        .expect("revoke");
    assert_eq!(revoked.revoked_at, Some(at));
    let again = store
        .revoke(record.id, at + TimeDelta::hours(1), &EventContext::system())
        .await
        .expect("revoke again");
    assert_eq!(
        again.revoked_at,
        Some(at),
        "the first revocation time stays"
    );
    let found = store
        .find_by_digest(&digest(&token), at)
        .await
        .expect("find");
    assert_eq!(found.and_then(|k| k.revoked_at), Some(at));
    let err = store
        .revoke(crate::KeyId::new(), at, &EventContext::system())
        .await
        .expect_err("missing");
    assert_eq!(err.kind(), StoreErrorKind::NotFound);
}

/// Delete removes the key and its digests.
pub async fn delete<S: KeyStore>(store: S) {
    let (record, token) = personal_key("alice", 0);
    let (other, _) = personal_key("alice", 1);
    insert(&store, &record).await;
    insert(&store, &other).await;
    store
        .delete(record.id, &EventContext::system())
        .await
        .expect("delete");
    assert!(store.get(record.id).await.expect("get").is_none());
    assert!(
        store
            .find_by_digest(&digest(&token), t0())
            .await
            .expect("find")
            .is_none()
    );
    let err = store
        .delete(record.id, &EventContext::system())
        .await
        .expect_err("second delete");
    assert_eq!(err.kind(), StoreErrorKind::NotFound);
    assert!(
        store.get(other.id).await.expect("get").is_some(),
        "others untouched"
    );
}

/// A regenerate without grace stops the old secret at once; revoked keys cannot regenerate.
pub async fn replace_secret<S: KeyStore>(store: S) {
    let (record, old) = personal_key("alice", 0);
    insert(&store, &record).await;
    let (rotation, new) = SecretRotation::generate(&format(), &TokenHasher::sha256(), None, t0());
    let rotated = store
        .replace_secret(record.id, &rotation, t0(), &EventContext::system())
        .await
        .expect("rotate");
    assert_eq!(rotated.digest, digest(&new));
    assert_eq!(rotated.previous, None);
    assert_eq!(
        (rotated.name.as_str(), &rotated.scopes),
        (record.name.as_str(), &record.scopes)
    );
    assert_eq!(rotated.expires_at, record.expires_at);
    assert!(
        store
            .find_by_digest(&digest(&old), t0())
            .await
            .expect("find")
            .is_none()
    );
    let found = store
        .find_by_digest(&digest(&new), t0())
        .await
        .expect("find");
    assert_eq!(found.map(|k| k.id), Some(record.id));

    // A second rolling rotation retires the first previous secret.
    let grace = GracePeriod::from_secs(60).expect("grace");
    let (second, newest) =
        SecretRotation::generate(&format(), &TokenHasher::sha256(), Some(grace), t0());
    store
        .replace_secret(record.id, &second, t0(), &EventContext::system())
        .await
        .expect("rotate");
    let (third, _) = SecretRotation::generate(&format(), &TokenHasher::sha256(), Some(grace), t0());
    store
        .replace_secret(record.id, &third, t0(), &EventContext::system())
        .await
        .expect("rotate");
    assert!(
        store
            .find_by_digest(&digest(&new), t0())
            .await
            .expect("find")
            .is_none()
    );
    assert!(
        store
            .find_by_digest(&digest(&newest), t0())
            .await
            .expect("find")
            .is_some()
    );

    let err = store
        .replace_secret(
            crate::KeyId::new(),
            &rotation,
            t0(),
            &EventContext::system(),
        )
        .await
        .expect_err("missing");
    assert_eq!(err.kind(), StoreErrorKind::NotFound);
    store
        .revoke(record.id, t0(), &EventContext::system())
        .await
        .expect("revoke");
    let (late, _) = SecretRotation::generate(&format(), &TokenHasher::sha256(), None, t0());
    let err = store
        .replace_secret(record.id, &late, t0(), &EventContext::system())
        .await
        .expect_err("revoked");
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
}

/// Refresh sets `expires_at = now + lifetime`; never-expiring keys conflict; a stored
/// lifetime above [`MAX_LIFETIME`](crate::MAX_LIFETIME) is capped, and the store keeps
/// the capped one.
pub async fn refresh<S: KeyStore>(store: S) {
    let (record, _) = personal_key("alice", 0);
    let (mut long, _) = personal_key("alice", 2);
    long.lifetime = Some(TimeDelta::days(365 * 5000));
    let (never, _) = issue(
        NewKey::service("forever")
            .scopes(["*"])
            .expiry(Expiry::Never),
        1,
    );
    insert(&store, &record).await;
    insert(&store, &never).await;
    let later = t0() + TimeDelta::days(20);
    let refreshed = store
        .refresh(record.id, later, &EventContext::system())
        .await
        .expect("refresh");
    assert_eq!(refreshed.expires_at, Some(later + TimeDelta::days(30)));
    assert_eq!(
        must_get(&store, &record).await.expires_at,
        refreshed.expires_at
    );
    insert(&store, &long).await;
    let refreshed = store
        .refresh(long.id, later, &EventContext::system())
        .await
        .expect("refresh");
    let capped = crate::MAX_LIFETIME;
    assert_eq!(refreshed.expires_at, Some(later + capped));
    assert_eq!(refreshed.lifetime, Some(capped));
    let stored = must_get(&store, &long).await;
    assert_eq!(
        (stored.expires_at, stored.lifetime),
        (refreshed.expires_at, Some(capped))
    );
    let err = store
        .refresh(never.id, later, &EventContext::system())
        .await
        .expect_err("never expires");
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
    let err = store
        .refresh(crate::KeyId::new(), later, &EventContext::system())
        .await
        .expect_err("missing");
    assert_eq!(err.kind(), StoreErrorKind::NotFound);
}

/// Generates one `#[tokio::test]` per conformance check for the store made by `$make`, an
/// async function returning `Option<S>` (`None` skips, e.g. when a backend is not configured).
///
/// The calling crate needs `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@each $make;
            insert_and_get, insert_conflicts, find_by_digest, find_previous_in_grace,
            list_filters, list_pagination_is_stable, update, revoke, delete, replace_secret,
            refresh, record_usage, record_usage_concurrently, usage_days, usage_days_deleted,
            change_feed, change_log, change_log_skips_failures, change_log_pages,
            events_record_actor_and_detail, events_filter_and_paginate, expiry_notices_once,
            consumer_leases, record_event_names_owner);
    };
    (@each $make:path; $($check:ident),+) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                match $make().await {
                    Some(store) => $crate::conformance::$check(store).await,
                    None => eprintln!(
                        "skipped {}: the store under test is not configured",
                        stringify!($check)
                    ),
                }
            }
        )+
    };
}
