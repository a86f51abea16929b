//! The store on SQLite: in memory and in a file.
#![cfg(feature = "sqlite")]

mod common;

use keyward_core::{KeyStore, StoreErrorKind};
use keyward_sea_orm::SeaOrmStore;
use keyward_test_support::{TempDir, TestDatabase};
use sea_orm::ConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};

/// A fresh in-memory database. Every connection to `sqlite::memory:` opens a database of its
/// own, so the pool holds exactly one.
async fn memory_store() -> Option<SeaOrmStore> {
    let mut options = ConnectOptions::new("sqlite::memory:");
    options.max_connections(1).sqlx_logging(false);
    Some(
        SeaOrmStore::connect_and_migrate(options)
            .await
            .expect("in-memory SQLite"),
    )
}

/// A fresh database file, with several pooled connections so that writers really contend;
/// in WAL mode, as an application with more than one connection should use it. The file
/// stays until a later run removes it: the conformance suite has no teardown.
async fn file_store() -> Option<SeaOrmStore> {
    let db = TestDatabase::sqlite();
    let mut options = db.options();
    options.max_connections(4).map_sqlx_sqlite_opts(|sqlite| {
        sqlite
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
    });
    let store = SeaOrmStore::connect_and_migrate(options)
        .await
        .expect("SQLite file");
    db.keep();
    Some(store)
}

mod memory {
    keyward_core::conformance_tests!(super::memory_store);
}

mod file {
    keyward_core::conformance_tests!(super::file_store);
}

#[tokio::test]
async fn migrations_run_twice_and_leave_the_host_history_alone() {
    let mut options = ConnectOptions::new("sqlite::memory:");
    options.max_connections(1).sqlx_logging(false);
    let db = sea_orm::Database::connect(options).await.expect("connect");
    common::migrations_leave_host_history_alone(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_survives_concurrent_changes() {
    common::usage_survives_concurrent_changes(file_store().await.expect("store")).await;
}

#[tokio::test]
async fn batch_with_repeated_key() {
    common::batch_with_repeated_key(memory_store().await.expect("store")).await;
}

#[tokio::test]
async fn microseconds_round_trip() {
    common::microseconds_round_trip(file_store().await.expect("store")).await;
}

#[tokio::test]
async fn corrupt_rows_are_errors() {
    common::corrupt_rows_are_errors(memory_store().await.expect("store")).await;
}

#[tokio::test]
async fn missing_table_is_unavailable() {
    common::missing_table_is_unavailable(memory_store().await.expect("store")).await;
}

#[tokio::test]
async fn event_failure_leaves_no_change() {
    common::event_failure_leaves_no_change(file_store().await.expect("store")).await;
}

#[tokio::test]
async fn unreachable_file_is_unavailable() {
    let dir = TempDir::new();
    let missing = dir.path().join("no-such-dir").join("keys.db");
    let err = SeaOrmStore::connect(format!("sqlite://{}?mode=rw", missing.display()))
        .await
        .expect_err("no such file");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
}

#[tokio::test]
async fn sqlite_has_no_change_feed() {
    let store = memory_store().await.expect("store");
    assert!(store.changes().is_none());
    assert!(store.feed_application_name().is_none());
}

#[tokio::test]
async fn nothing_is_created_before_migrate() {
    let mut options = ConnectOptions::new("sqlite::memory:");
    options.max_connections(1).sqlx_logging(false);
    let store = SeaOrmStore::connect(options).await.expect("connect");
    let err = store
        .list(&keyward_core::ListQuery::default())
        .await
        .expect_err("no table yet");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    keyward_sea_orm::migrate(store.connection())
        .await
        .expect("migrate");
    assert!(
        store
            .list(&keyward_core::ListQuery::default())
            .await
            .expect("list")
            .keys
            .is_empty()
    );
}
