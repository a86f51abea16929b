//! The cost of one change-log read with a million keys and a million changes in a SQLite
//! file. Ignored by default (filling takes a while); run it with
//! `cargo test -p keyward-sea-orm --test change_log_scale -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use chrono::Utc;
use keyward_core::{KeyStore, conformance::personal_key};
use keyward_sea_orm::SeaOrmStore;
use keyward_test_support::TestDatabase;
use sea_orm::ConnectionTrait;

const ROWS: u32 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fills a million keys; run on demand"]
async fn one_read_with_a_million_keys_and_changes() {
    let db = TestDatabase::sqlite();
    let store = SeaOrmStore::connect_and_migrate(db.url())
        .await
        .expect("store");
    let connection = store.connection();
    let started = Instant::now();
    connection
        .execute_unprepared(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) \
             INSERT INTO keyward_keys (id, digest, name, kind, owner, scopes, hint, created_at, \
             updated_at, usage_count, active, allowed_ips, metadata) \
             SELECT randomblob(16), randomblob(32), 'k' || i, 'personal', 'user' || (i % 1000), \
             '[]', 'books_...', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 0, 1, '[]', '{{}}' \
             FROM n"
        ))
        .await
        .expect("fill keys");
    connection
        .execute_unprepared(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) \
             INSERT INTO keyward_changes (key_id, owner, kind, changed_at) \
             SELECT randomblob(16), 'user' || (i % 1000), 'updated', '{}' FROM n",
            Utc::now().to_rfc3339()
        ))
        .await
        .expect("fill changes");
    connection
        .execute_unprepared("ANALYZE")
        .await
        .expect("analyze");
    eprintln!(
        "filled {ROWS} keys and {ROWS} changes in {:?}",
        started.elapsed()
    );

    let head = store
        .changes_since(None, 100)
        .await
        .expect("head")
        .expect("a log")
        .cursor;
    for n in 0..3 {
        let (record, _) = personal_key("alice", n);
        store
            .insert(record, &keyward_core::EventContext::system())
            .await
            .expect("insert");
    }
    let mut times = Vec::new();
    let mut cursor = head;
    for _ in 0..200 {
        let started = Instant::now();
        let batch = store
            .changes_since(Some(cursor.clone()), 1000)
            .await
            .expect("read")
            .expect("a log");
        times.push(started.elapsed());
        assert!(!batch.truncated);
        if times.len() == 1 {
            assert_eq!(batch.changes.len(), 3);
        }
        cursor = batch.cursor;
    }
    times.sort();
    let median = times[times.len() / 2];
    let p99 = times[times.len() * 99 / 100];
    eprintln!("one read: median {median:?}, p99 {p99:?}");
    assert!(median < Duration::from_millis(5), "median {median:?}");
    db.remove().await;
}
