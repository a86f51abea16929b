//! Two `Keyward` instances on one database, each with a connection pool of its own (the
//! second stands for another process): a change made through the other instance, or
//! directly in the store as the command line makes it, is refused by the first within a
//! second through the change log, on a SQLite file, PostgreSQL and MariaDB; after an outage
//! the first catches up without dropping its cache; a pruned log makes it drop the cache.
//!
//! PostgreSQL and MariaDB run when `KEYWARD_TEST_POSTGRES_URL` / `KEYWARD_TEST_MYSQL_URL` name
//! a server, each test in a database of its own; skipped when unset, failing when set but
//! unreachable.

use std::time::{Duration, Instant};

use chrono::Utc;
use keyward::{AuthError, InvalidToken, KeyStore, Keyward, NewKey};
use keyward_sea_orm::{ConnectOptions, SeaOrmStore};
use keyward_test_support::{CountingStore, FaultProxy, TestDatabase, issue};

/// How long a change may take to reach the other instance.
const WITHIN: Duration = Duration::from_secs(1);

/// The store of the instance under test: counted, so the test sees whether cached keys
/// still hit.
type Watched = CountingStore<SeaOrmStore>;

fn instance(store: impl KeyStore) -> Keyward {
    Keyward::builder(store)
        .prefix("books")
        .build()
        .expect("valid configuration")
}

/// Connection options for a server database; a SQLite file is opened by URL so that it gets
/// the store's defaults for files (WAL, a busy timeout).
fn options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    if url.starts_with("sqlite:") {
        return options;
    }
    options
        .sqlx_logging(false)
        .max_connections(4)
        .connect_timeout(Duration::from_secs(1))
        .acquire_timeout(Duration::from_secs(1));
    options
}

async fn store(url: &str) -> SeaOrmStore {
    SeaOrmStore::connect_and_migrate(options(url))
        .await
        .expect("connect and migrate")
}

/// Verifies `token` on `keyward` until it is refused as revoked; fails after [`WITHIN`]
/// measured from `since`. Returns how long it took.
async fn refused_within(keyward: &Keyward, token: &str, since: Instant) -> Duration {
    loop {
        match keyward.verify(token, None).await {
            Err(AuthError::InvalidToken(InvalidToken::Revoked)) => return since.elapsed(),
            Ok(_) => {}
            Err(other) => panic!("unexpected refusal: {other:?}"),
        }
        assert!(
            since.elapsed() < WITHIN,
            "the other instance's revoke was not enforced within {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Verifies `token` twice on `keyward`, so that it is cached.
async fn cache(keyward: &Keyward, token: &str) {
    for _ in 0..2 {
        keyward.verify(token, None).await.expect("a usable key");
    }
}

/// Whether verifying `token` is answered from the cache (no store lookup).
async fn hits(keyward: &Keyward, store: &Watched, token: &str) -> bool {
    let before = store.counts.find();
    keyward.verify(token, None).await.expect("a usable key");
    store.counts.find() == before
}

async fn revokes_reach_the_other_instance(db: TestDatabase) {
    let url = db.url().to_owned();
    let a_store = CountingStore::wrapping(store(&url).await);
    let a = instance(a_store.clone());
    let b = instance(store(&url).await);
    let cli = store(&url).await;

    let (first, first_token) = issue(&b, NewKey::service("first").scopes(["keys:read"])).await;
    let (second, second_token) = issue(&b, NewKey::service("second").scopes(["keys:read"])).await;
    let (_, other_token) = issue(&b, NewKey::service("other").scopes(["keys:read"])).await;
    for token in [&first_token, &second_token, &other_token] {
        cache(&a, token).await;
        assert!(hits(&a, &a_store, token).await, "cached on A");
    }

    let revoked_at = Instant::now();
    b.revoke(first).await.expect("revoke through B");
    let took = refused_within(&a, &first_token, revoked_at).await;
    eprintln!(
        "{}: revoke through another instance refused after {took:?}",
        backend(&url)
    );

    let revoked_at = Instant::now();
    cli.revoke(second, Utc::now(), &keyward_core::EventContext::system())
        .await
        .expect("revoke in the store");
    let took = refused_within(&a, &second_token, revoked_at).await;
    eprintln!(
        "{}: revoke in the store refused after {took:?}",
        backend(&url)
    );

    assert!(
        hits(&a, &a_store, &other_token).await,
        "an unchanged key stays cached"
    );
    assert!(a_store.counts.change_reads() > 0);
    a.shutdown().await;
    b.shutdown().await;
    db.remove().await;
}

fn backend(url: &str) -> &str {
    url.split(':').next().unwrap_or(url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_revokes_reach_the_other_instance_within_a_second() {
    revokes_reach_the_other_instance(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revokes_reach_the_other_instance_within_a_second() {
    if let Some(db) = TestDatabase::postgres().await {
        revokes_reach_the_other_instance(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_revokes_reach_the_other_instance_within_a_second() {
    if let Some(db) = TestDatabase::mysql().await {
        revokes_reach_the_other_instance(db).await;
    }
}

/// A's connection to the database is cut for `outage`; right after it returns, B revokes a
/// key that A has cached: A refuses it within a second, and its other cached keys still hit.
/// `pool_defaults`: A's pool has SeaORM's default timeouts rather than short ones.
async fn catches_up_after_an_outage(db: TestDatabase, outage: Duration, pool_defaults: bool) {
    let proxy = FaultProxy::in_front_of(db.url())
        .await
        .expect("a proxy in front of the database");
    let a_url = proxy.rewrite_url(db.url());
    let a_store = if pool_defaults {
        SeaOrmStore::connect_and_migrate(a_url.as_str())
            .await
            .expect("connect and migrate")
    } else {
        store(&a_url).await
    };
    let a_store = CountingStore::wrapping(a_store);
    let a = instance(a_store.clone());
    let b = instance(store(db.url()).await);

    let (revoked, revoked_token) =
        issue(&b, NewKey::service("revoked").scopes(["keys:read"])).await;
    let (_, kept_token) = issue(&b, NewKey::service("kept").scopes(["keys:read"])).await;
    cache(&a, &revoked_token).await;
    cache(&a, &kept_token).await;
    // A has read the log past the creations.
    let reads = a_store.counts.change_reads();
    while a_store.counts.change_reads() < reads + 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    proxy.cut();
    tokio::time::sleep(outage).await;
    proxy.restore();
    let revoked_at = Instant::now();
    b.revoke(revoked).await.expect("revoke through B");
    let took = refused_within(&a, &revoked_token, revoked_at).await;
    eprintln!(
        "{}: revoke after a {outage:?} outage refused after {took:?}",
        backend(db.url())
    );
    assert!(
        hits(&a, &a_store, &kept_token).await,
        "A caught up from its cursor instead of dropping its whole cache"
    );
    a.shutdown().await;
    b.shutdown().await;
    drop(proxy);
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_catches_up_after_an_outage() {
    if let Some(db) = TestDatabase::postgres().await {
        catches_up_after_an_outage(db, Duration::from_secs(3), false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_catches_up_after_an_outage() {
    if let Some(db) = TestDatabase::mysql().await {
        catches_up_after_an_outage(db, Duration::from_secs(3), false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 40 s outage; run on demand"]
async fn postgres_catches_up_after_a_long_outage_with_default_pool_settings() {
    if let Some(db) = TestDatabase::postgres().await {
        catches_up_after_an_outage(db, Duration::from_secs(40), true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 40 s outage; run on demand"]
async fn mariadb_catches_up_after_a_long_outage_with_default_pool_settings() {
    if let Some(db) = TestDatabase::mysql().await {
        catches_up_after_an_outage(db, Duration::from_secs(40), true).await;
    }
}

/// On a SQLite file (no proxy to cut), A's store fails every call for 3 s instead; the same
/// holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_catches_up_after_failing_reads() {
    let db = TestDatabase::sqlite();
    let a_store = CountingStore::wrapping(store(db.url()).await);
    let a = instance(a_store.clone());
    let b = instance(store(db.url()).await);
    let (revoked, revoked_token) =
        issue(&b, NewKey::service("revoked").scopes(["keys:read"])).await;
    let (_, kept_token) = issue(&b, NewKey::service("kept").scopes(["keys:read"])).await;
    cache(&a, &revoked_token).await;
    cache(&a, &kept_token).await;

    a_store.fail(true);
    let failed = a_store.counts.change_reads();
    b.revoke(revoked).await.expect("revoke through B");
    while a_store.counts.change_reads() < failed + 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a_store.fail(false);
    let back = Instant::now();
    refused_within(&a, &revoked_token, back).await;
    assert!(hits(&a, &a_store, &kept_token).await, "no full resync");
    a.shutdown().await;
    b.shutdown().await;
}

/// A cannot read the log while B makes changes and the log is pruned past A's cursor: A
/// drops its whole cache when it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_log_makes_the_instance_drop_its_cache() {
    let db = TestDatabase::sqlite();
    let a_store = CountingStore::wrapping(store(db.url()).await);
    let a = instance(a_store.clone());
    let b = instance(store(db.url()).await);
    let pruner = store(db.url()).await.change_retention(Duration::ZERO);
    let (first, first_token) = issue(&b, NewKey::service("first").scopes(["keys:read"])).await;
    let (second, _) = issue(&b, NewKey::service("second").scopes(["keys:read"])).await;
    let (_, kept_token) = issue(&b, NewKey::service("kept").scopes(["keys:read"])).await;
    cache(&a, &first_token).await;
    cache(&a, &kept_token).await;
    let reads = a_store.counts.change_reads();
    while a_store.counts.change_reads() < reads + 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    a_store.fail(true);
    b.revoke(first).await.expect("revoke");
    b.revoke(second).await.expect("revoke");
    assert!(
        pruner.prune_changes().await.expect("prune") > 0,
        "rows were pruned"
    );
    a_store.fail(false);
    let back = Instant::now();
    refused_within(&a, &first_token, back).await;
    assert!(
        !hits(&a, &a_store, &kept_token).await,
        "the whole cache was dropped"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// The poll task ends with `shutdown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_the_polling() {
    let db = TestDatabase::sqlite();
    let a_store = CountingStore::wrapping(store(db.url()).await);
    let a = Keyward::builder(a_store.clone())
        .prefix("books")
        .change_poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let start = a_store.counts.change_reads();
    while a_store.counts.change_reads() < start + 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.shutdown().await;
    let after = a_store.counts.change_reads();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        a_store.counts.change_reads(),
        after,
        "no reads after shutdown"
    );
}
