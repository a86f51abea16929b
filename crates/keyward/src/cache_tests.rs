//! Unit tests of the verification cache and its per-thread memo.

use std::sync::mpsc;

use chrono::Utc;
use keyward_core::{NewKey, ScopeCatalog, TokenFormat, TokenHasher};

use super::*;
use crate::usage::UsageRecorder;

/// A cache with `ttl`, an entry for a new key of `owner`, and its digest.
fn cached(ttl: Duration, owner: &str) -> (VerifyCache, TokenDigest, KeyId) {
    let cache = VerifyCache::new(&CacheConfig::default().ttl(ttl), Duration::ZERO).unwrap();
    let (digest, id) = insert(&cache, owner);
    (cache, digest, id)
}

fn insert(cache: &VerifyCache, owner: &str) -> (TokenDigest, KeyId) {
    let hasher = TokenHasher::sha256();
    let issued = NewKey::personal("k", owner)
        .scopes(["*"])
        .issue(
            &ScopeCatalog::builder().build().unwrap(),
            &TokenFormat::new("books").unwrap(),
            &hasher,
            Utc::now(),
        )
        .unwrap();
    let digest = hasher.digest(&issued.token);
    let id = issued.record.id;
    let entry = Arc::new(Entry {
        usage: UsageRecorder::new().counter(id),
        record: issued.record,
        grant: Grant::Unresolved,
        loaded_at: Instant::now(),
    });
    cache.insert(digest, entry, cache.epoch());
    (digest, id)
}

/// The id of the key `cache` holds fresh for `digest`.
fn fresh(cache: &VerifyCache, digest: &TokenDigest) -> Option<KeyId> {
    match cache.lookup(digest, |entry| entry.record.id) {
        Lookup::Fresh(id) => Some(id),
        Lookup::Stale(_) | Lookup::Absent => None,
    }
}

#[test]
fn the_memo_answers_until_an_invalidation() {
    let (cache, digest, id) = cached(Duration::from_secs(60), "alice");
    // The first lookup reads the shared cache and takes a memo, the second reads the memo.
    assert_eq!(fresh(&cache, &digest), Some(id));
    assert_eq!(fresh(&cache, &digest), Some(id));
    cache.invalidate_key(id);
    assert_eq!(fresh(&cache, &digest), None);

    let (digest, id) = insert(&cache, "alice");
    assert_eq!(fresh(&cache, &digest), Some(id));
    cache.invalidate_owner("alice");
    assert_eq!(fresh(&cache, &digest), None);

    let (digest, id) = insert(&cache, "bob");
    assert_eq!(fresh(&cache, &digest), Some(id));
    cache.invalidate_all();
    assert_eq!(fresh(&cache, &digest), None);
}

#[test]
fn the_memo_ends_with_the_ttl() {
    let (cache, digest, id) = cached(Duration::from_millis(1), "alice");
    let _ = fresh(&cache, &digest);
    std::thread::sleep(Duration::from_millis(20));
    // Past the TTL neither the memo nor the shared cache answers.
    assert_ne!(fresh(&cache, &digest), Some(id));
}

#[test]
fn two_caches_do_not_share_memos() {
    let (first, digest, id) = cached(Duration::from_secs(60), "alice");
    assert_eq!(fresh(&first, &digest), Some(id));
    let second = VerifyCache::new(&CacheConfig::default(), Duration::ZERO).unwrap();
    assert_eq!(fresh(&second, &digest), None);
}

#[test]
fn another_thread_stops_using_its_memo_once_an_invalidation_returns() {
    let (cache, digest, id) = cached(Duration::from_secs(60), "alice");
    let cache = Arc::new(cache);
    let (ask, asked) = mpsc::channel::<()>();
    let (answer, answers) = mpsc::channel::<Option<KeyId>>();
    let reader = std::thread::spawn({
        let cache = Arc::clone(&cache);
        move || {
            for () in asked {
                answer.send(fresh(&cache, &digest)).unwrap();
            }
        }
    });
    for _ in 0..3 {
        ask.send(()).unwrap();
        assert_eq!(answers.recv().unwrap(), Some(id));
    }
    cache.invalidate_key(id);
    ask.send(()).unwrap();
    assert_eq!(answers.recv().unwrap(), None);
    drop(ask);
    reader.join().unwrap();
}

#[test]
fn a_stale_entry_is_not_memoized() {
    let cache = VerifyCache::new(
        &CacheConfig::default().ttl(Duration::from_millis(1)),
        Duration::from_secs(60),
    )
    .unwrap();
    let (digest, _) = insert(&cache, "alice");
    std::thread::sleep(Duration::from_millis(20));
    for _ in 0..2 {
        assert!(matches!(cache.lookup(&digest, |_| ()), Lookup::Stale(_)));
    }
}

#[test]
fn the_presence_map_never_hides_a_cached_key() {
    // A capacity of 1 gives the smallest map (4 096 bits), rebuilt every 512 bits set: 2 000
    // inserts rebuild it a few times while the cache evicts.
    let cache = VerifyCache::new(&CacheConfig::default().capacity(1), Duration::ZERO).unwrap();
    let mut digests = Vec::new();
    for _ in 0..2_000 {
        let (digest, _) = insert(&cache, "alice");
        digests.push(digest);
        if cache.positive.contains_key(digest.as_bytes()) {
            assert!(fresh(&cache, &digest).is_some(), "a cached key is found");
        }
    }
    let held: Vec<_> = digests
        .iter()
        .filter(|digest| cache.positive.contains_key(digest.as_bytes()))
        .collect();
    assert!(!held.is_empty());
    for digest in held {
        assert!(fresh(&cache, digest).is_some(), "a cached key is found");
    }
    cache.invalidate_all();
    assert!(digests.iter().all(|digest| fresh(&cache, digest).is_none()));
    let (digest, id) = insert(&cache, "alice");
    assert_eq!(
        fresh(&cache, &digest),
        Some(id),
        "cached again after a clear"
    );
}
