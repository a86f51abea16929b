//! The conformance checks of the change log ([`KeyStore::changes_since`]). A store that keeps
//! no log (answers `None`) passes them trivially.

use chrono::{TimeDelta, Utc};

use super::{catalog, format, insert, issue, personal_key, t0};
use crate::{
    ChangeCursor, ChangeKind, ChangeRecord, EventContext, Expiry, KeyChanges, KeyId, KeyStore,
    NewKey, SecretRotation, StoreErrorKind, TokenHasher,
};

/// The head of the log, or `None` when the store keeps none.
async fn head<S: KeyStore>(store: &S) -> Option<ChangeCursor> {
    let batch = store
        .changes_since(None, 10)
        .await
        .expect("read the head")?;
    assert!(batch.changes.is_empty(), "the head comes without changes");
    assert!(!batch.truncated);
    Some(batch.cursor)
}

/// Every change after `cursor`, read in batches of `limit`.
async fn read_all<S: KeyStore>(
    store: &S,
    mut cursor: ChangeCursor,
    limit: usize,
) -> (Vec<ChangeRecord>, ChangeCursor) {
    let mut changes = Vec::new();
    for _ in 0..100 {
        let batch = store
            .changes_since(Some(cursor), limit)
            .await
            .expect("read the log")
            .expect("a store that has a head keeps a log");
        assert!(!batch.truncated, "nothing was pruned");
        assert!(batch.changes.len() <= limit);
        changes.extend(batch.changes);
        cursor = batch.cursor;
        if !batch.more {
            return (changes, cursor);
        }
    }
    panic!("the log never ended");
}

fn kinds(changes: &[ChangeRecord]) -> Vec<ChangeKind> {
    changes.iter().map(|c| c.kind).collect()
}

fn rename(name: &str) -> crate::KeyUpdate {
    KeyChanges {
        name: Some(name.to_owned()),
        ..KeyChanges::default()
    }
    .validate(&catalog())
    .expect("valid")
}

/// Every change appends exactly one row of its kind, in order, with the key and its owner;
/// a change that changes nothing (a second revoke) appends none; owner changes have an owner
/// and no key.
pub async fn change_log<S: KeyStore>(store: S) {
    let Some(start) = head(&store).await else {
        return;
    };
    let before = Utc::now() - TimeDelta::seconds(5);
    let (record, _) = personal_key("alice", 0);
    let id = record.id;
    insert(&store, &record).await;
    store
        .update(id, &rename("renamed"), t0(), &EventContext::system())
        .await
        .expect("update");
    let (rotation, _) = SecretRotation::generate(&format(), &TokenHasher::sha256(), None, t0());
    store
        .replace_secret(id, &rotation, t0(), &EventContext::system())
        .await
        .expect("rotate");
    store
        .refresh(id, t0() + TimeDelta::days(1), &EventContext::system())
        .await
        .expect("refresh");
    store
        .revoke(id, t0(), &EventContext::system())
        .await
        .expect("revoke");
    store
        .revoke(id, t0(), &EventContext::system())
        .await
        .expect("a second revoke");
    store
        .delete(id, &EventContext::system())
        .await
        .expect("delete");
    store.owner_changed("bob").await.expect("owner changed");
    let after = Utc::now() + TimeDelta::seconds(5);

    let (changes, end) = read_all(&store, start.clone(), 100).await;
    assert_eq!(
        kinds(&changes),
        [
            ChangeKind::Created,
            ChangeKind::Updated,
            ChangeKind::Regenerated,
            ChangeKind::Refreshed,
            ChangeKind::Revoked,
            ChangeKind::Deleted,
            ChangeKind::Owner,
        ]
    );
    let (owner, keyed) = changes.split_last().expect("changes");
    for change in keyed {
        assert_eq!(change.key_id, Some(id), "{:?}", change.kind);
        assert_eq!(change.owner.as_deref(), Some("alice"), "{:?}", change.kind);
    }
    assert_eq!(owner.key_id, None);
    assert_eq!(owner.owner.as_deref(), Some("bob"));
    assert!(
        changes.windows(2).all(|w| w[0].seq < w[1].seq),
        "sequence numbers increase"
    );
    assert!(changes.iter().all(|c| c.seq > start.seq()));
    assert!(changes.iter().all(|c| (before..after).contains(&c.at)));
    assert_eq!(end.seq(), owner.seq);

    let now = head(&store).await.expect("a head");
    assert_eq!(now.seq(), owner.seq, "the head is the newest change");
    let (nothing, _) = read_all(&store, end, 100).await;
    assert!(nothing.is_empty(), "nothing after the last change");
}

/// A change that fails (unknown id, duplicate, a rule of the key's state) appends nothing.
pub async fn change_log_skips_failures<S: KeyStore>(store: S) {
    let Some(start) = head(&store).await else {
        return;
    };
    let (record, _) = personal_key("alice", 0);
    insert(&store, &record).await;
    let (never, _) = issue(
        NewKey::service("forever")
            .scopes(["books:read"])
            .expiry(Expiry::Never),
        1,
    );
    insert(&store, &never).await;

    let unknown = KeyId::new();
    let (rotation, _) = SecretRotation::generate(&format(), &TokenHasher::sha256(), None, t0());
    let not_found = [
        store
            .update(unknown, &rename("x"), t0(), &EventContext::system())
            .await
            .err(),
        store
            .revoke(unknown, t0(), &EventContext::system())
            .await
            .err(),
        store
            .replace_secret(unknown, &rotation, t0(), &EventContext::system())
            .await
            .err(),
        store
            .refresh(unknown, t0(), &EventContext::system())
            .await
            .err(),
        store.delete(unknown, &EventContext::system()).await.err(),
    ];
    for err in not_found {
        assert_eq!(err.map(|e| e.kind()), Some(StoreErrorKind::NotFound));
    }
    let duplicate = store
        .insert(record.clone(), &EventContext::system())
        .await
        .expect_err("duplicate");
    assert_eq!(duplicate.kind(), StoreErrorKind::Conflict);
    let never_expires = store
        .refresh(never.id, t0(), &EventContext::system())
        .await
        .expect_err("never");
    assert_eq!(never_expires.kind(), StoreErrorKind::Conflict);
    store
        .revoke(record.id, t0(), &EventContext::system())
        .await
        .expect("revoke");
    let revoked = store
        .update(record.id, &rename("x"), t0(), &EventContext::system())
        .await
        .expect_err("revoked");
    assert_eq!(revoked.kind(), StoreErrorKind::Conflict);

    let (changes, _) = read_all(&store, start, 100).await;
    assert_eq!(
        kinds(&changes),
        [
            ChangeKind::Created,
            ChangeKind::Created,
            ChangeKind::Revoked
        ]
    );
    assert_eq!(changes[0].key_id, Some(record.id));
    assert_eq!(changes[1].key_id, Some(never.id));
    assert_eq!(changes[1].owner, None, "a service key has no owner");
}

/// Reading with a small limit pages through the log with the cursor, saying when more
/// follows, and a new reader starts from the head.
pub async fn change_log_pages<S: KeyStore>(store: S) {
    let Some(start) = head(&store).await else {
        return;
    };
    let mut ids = Vec::new();
    for n in 0..5 {
        let (record, _) = personal_key("alice", n);
        insert(&store, &record).await;
        ids.push(record.id);
    }
    let first = store
        .changes_since(Some(start.clone()), 2)
        .await
        .expect("read")
        .expect("a log");
    assert_eq!(first.changes.len(), 2);
    assert!(first.more, "three more follow");
    let (paged, end) = read_all(&store, start.clone(), 2).await;
    let paged_ids: Vec<_> = paged.iter().filter_map(|c| c.key_id).collect();
    assert_eq!(paged_ids, ids);
    let (whole, whole_end) = read_all(&store, start, 1000).await;
    assert_eq!(whole, paged);
    assert_eq!(whole_end.seq(), end.seq());

    let late = head(&store).await.expect("a head");
    assert_eq!(late.seq(), end.seq());
    let (record, _) = personal_key("bob", 9);
    insert(&store, &record).await;
    let (fresh, _) = read_all(&store, late, 10).await;
    assert_eq!(fresh.len(), 1, "only what came after the head");
    assert_eq!(fresh[0].key_id, Some(record.id));
}
