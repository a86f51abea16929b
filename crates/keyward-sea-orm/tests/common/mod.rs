//! Checks shared by the backend test files, beyond the core conformance suite.

// Each backend's test file uses the checks that apply to it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use keyward_core::conformance::{personal_key, t0};
use keyward_core::{KeyChanges, KeyStore, ScopeCatalog, StoreErrorKind, UsageUpdate};
use keyward_sea_orm::SeaOrmStore;
use keyward_sea_orm::entity::{Column, Entity};
use keyward_test_support::TestDatabase;
use sea_orm::sea_query::{Alias, Expr, Table};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
};
use sea_orm_migration::prelude::*;

/// What every database server runs, each test on a fresh database made by `$create`
/// (`TestDatabase::postgres` or `TestDatabase::mysql`; `None` from it means the server is not
/// configured): the core conformance suite, keyward's migrations beside a host's own, and the
/// checks of this module. `$scheme_and_user` and `$path` make the URL of a closed port.
#[allow(unused_macros)] // the SQLite file builds its stores differently
macro_rules! server_tests {
    ($create:path, $scheme_and_user:literal, $path:literal) => {
        /// The conformance factory.
        async fn store() -> Option<keyward_sea_orm::SeaOrmStore> {
            common::kept_store($create).await
        }

        keyward_core::conformance_tests!(store);

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn migrations_run_twice_and_leave_the_host_history_alone() {
            let Some(db) = $create().await else {
                return;
            };
            common::migrations_leave_host_history_alone(&db.connect().await).await;
            db.remove().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn closed_port_is_unavailable() {
            common::closed_port_is_unavailable($scheme_and_user, $path).await;
        }

        common::server_tests!(@checks $create;
            usage_survives_concurrent_changes,
            batch_with_repeated_key,
            microseconds_round_trip,
            corrupt_rows_are_errors,
            missing_table_is_unavailable,
            event_failure_leaves_no_change,
        );
    };
    (@checks $create:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let Some(db) = $create().await else {
                    return;
                };
                common::$check(common::store(&db).await).await;
                db.remove().await;
            }
        )+
    };
}
#[allow(unused_imports)]
pub(crate) use server_tests;

/// A store (a pool of its own) on `db`, migrated.
pub(crate) async fn store(db: &TestDatabase) -> SeaOrmStore {
    SeaOrmStore::connect_and_migrate(db.options())
        .await
        .expect("connect and migrate")
}

/// The conformance factory: a store on a fresh database made by `create`. The database stays
/// until a later run removes it: the suite takes the store by value and has no teardown.
pub(crate) async fn kept_store<F>(create: impl FnOnce() -> F) -> Option<SeaOrmStore>
where
    F: Future<Output = Option<TestDatabase>>,
{
    let db = create().await?;
    let store = store(&db).await;
    db.keep();
    Some(store)
}

/// A host application's own migrations, recorded in SeaORM's default `seaql_migrations`.
struct HostMigrator;

impl MigratorTrait for HostMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateBooks)]
    }
}

struct CreateBooks;

impl MigrationName for CreateBooks {
    fn name(&self) -> &'static str {
        "m20250101_000001_create_host_books"
    }
}

// The trait is declared with `&SchemaManager` and `async_trait` needs the same spelling.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateBooks {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("host_books"))
                    .col(
                        ColumnDef::new(Alias::new("id"))
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("host_books")).to_owned())
            .await
    }
}

async fn versions(db: &DatabaseConnection, table: &str) -> Vec<(String, i64)> {
    let rows = db
        .query_all(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT version, applied_at FROM {table} ORDER BY version"),
        ))
        .await
        .expect("read migration history");
    rows.iter()
        .map(|row| {
            (
                row.try_get::<String>("", "version").expect("version"),
                row.try_get::<i64>("", "applied_at").expect("applied_at"),
            )
        })
        .collect()
}

/// keyward's migrations run twice without error, keep their own history, and leave the host
/// application's `seaql_migrations` exactly as it was.
pub(crate) async fn migrations_leave_host_history_alone(db: &DatabaseConnection) {
    HostMigrator::up(db, None).await.expect("host migrations");
    let host_before = versions(db, "seaql_migrations").await;
    assert_eq!(host_before.len(), 1);

    keyward_sea_orm::migrate(db).await.expect("first migrate");
    let ours = versions(db, "keyward_migrations").await;
    keyward_sea_orm::migrate(db).await.expect("second migrate");

    assert_eq!(versions(db, "seaql_migrations").await, host_before);
    assert_eq!(versions(db, "keyward_migrations").await, ours);
    assert_eq!(
        ours.len(),
        keyward_sea_orm::migration::Migrator::migrations().len(),
        "{ours:?}"
    );
    assert!(
        ours.iter().all(|(name, _)| name.contains("keyward")),
        "{ours:?}"
    );
    assert!(
        HostMigrator::get_pending_migrations(db)
            .await
            .expect("host status")
            .is_empty(),
        "the host's migrator still sees only its own history"
    );
    let store = SeaOrmStore::new(db.clone());
    let (record, _) = personal_key("alice", 0);
    store
        .insert(record.clone(), &keyward_core::EventContext::system())
        .await
        .expect("the table exists");
    assert_eq!(store.get(record.id).await.expect("get"), Some(record));
}

/// Updates and usage flushes racing on one key lose neither the counts nor the update.
pub(crate) async fn usage_survives_concurrent_changes(store: SeaOrmStore) {
    let (record, _) = personal_key("alice", 0);
    store
        .insert(record.clone(), &keyward_core::EventContext::system())
        .await
        .expect("insert");
    let store = Arc::new(store);
    let catalog = ScopeCatalog::builder()
        .scope("books:read", "Read books")
        .build()
        .expect("catalog");
    let updates = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for i in 0..100 {
                let change = KeyChanges {
                    name: Some(format!("name {i}")),
                    ..KeyChanges::default()
                }
                .validate(&catalog)
                .expect("valid");
                store
                    .update(
                        record.id,
                        &change,
                        t0() + TimeDelta::seconds(i),
                        &keyward_core::EventContext::system(),
                    )
                    .await
                    .expect("update");
            }
        })
    };
    let usage = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for i in 0..200 {
                let update = UsageUpdate {
                    id: record.id,
                    count: 2,
                    last_used_at: t0() + TimeDelta::seconds(i),
                    last_used_ip: Some("192.0.2.1".parse().expect("ip")),
                };
                store.record_usage(&[update]).await.expect("usage");
            }
        })
    };
    updates.await.expect("updates");
    usage.await.expect("usage");
    let stored = store.get(record.id).await.expect("get").expect("exists");
    assert_eq!(stored.usage_count, 400);
    assert_eq!(stored.name, "name 99");
    assert_eq!(stored.last_used_at, Some(t0() + TimeDelta::seconds(199)));
}

/// A batch naming one key twice counts both and keeps the later use.
pub(crate) async fn batch_with_repeated_key(store: SeaOrmStore) {
    let (a, _) = personal_key("alice", 0);
    let (b, _) = personal_key("bob", 1);
    store
        .insert(a.clone(), &keyward_core::EventContext::system())
        .await
        .expect("insert");
    store
        .insert(b.clone(), &keyward_core::EventContext::system())
        .await
        .expect("insert");
    let at = |s| t0() + TimeDelta::seconds(s);
    let ip = |s: &str| Some(s.parse().expect("ip"));
    store
        .record_usage(&[
            UsageUpdate {
                id: a.id,
                count: 3,
                last_used_at: at(20),
                last_used_ip: ip("10.0.0.2"),
            },
            UsageUpdate {
                id: b.id,
                count: 1,
                last_used_at: at(5),
                last_used_ip: None,
            },
            UsageUpdate {
                id: a.id,
                count: 4,
                last_used_at: at(10),
                last_used_ip: ip("10.0.0.1"),
            },
        ])
        .await
        .expect("usage");
    let a = store.get(a.id).await.expect("get").expect("exists");
    assert_eq!(
        (a.usage_count, a.last_used_at, a.last_used_ip),
        (7, Some(at(20)), ip("10.0.0.2"))
    );
    let b = store.get(b.id).await.expect("get").expect("exists");
    assert_eq!((b.usage_count, b.last_used_ip), (1, None));
}

/// A row the store cannot read back is an error for every reader, not a panic or a "no".
pub(crate) async fn corrupt_rows_are_errors(store: SeaOrmStore) {
    let (record, token) = personal_key("alice", 0);
    store
        .insert(record.clone(), &keyward_core::EventContext::system())
        .await
        .expect("insert");
    Entity::update_many()
        .col_expr(Column::Scopes, Expr::value("{not json"))
        .filter(Column::Id.eq(*record.id.as_uuid()))
        .exec(store.connection())
        .await
        .expect("corrupt the row");
    let err = store.get(record.id).await.expect_err("corrupt scopes");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    assert!(err.message().contains("scopes"), "{}", err.message());
    let digest = keyward_core::TokenHasher::sha256().digest(&token);
    let err = store
        .find_by_digest(&digest, t0())
        .await
        .expect_err("corrupt");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    let err = store
        .list(&keyward_core::ListQuery::default())
        .await
        .expect_err("corrupt");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    let err = store
        .revoke(record.id, t0(), &keyward_core::EventContext::system())
        .await
        .expect_err("corrupt");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
}

/// Without its table the store fails as unavailable, never as "no such key".
pub(crate) async fn missing_table_is_unavailable(store: SeaOrmStore) {
    let db = store.connection();
    db.execute(db.get_database_backend().build(Table::drop().table(Entity)))
        .await
        .expect("drop the table");
    let (record, token) = personal_key("alice", 0);
    let digest = keyward_core::TokenHasher::sha256().digest(&token);
    let err = store
        .find_by_digest(&digest, t0())
        .await
        .expect_err("no table");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    assert!(
        std::error::Error::source(&err).is_some(),
        "the database error is kept"
    );
    let err = store.get(record.id).await.expect_err("no table");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    let err = store
        .insert(record, &keyward_core::EventContext::system())
        .await
        .expect_err("no table");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
}

/// A change whose event cannot be written is not made: with the event table gone (the
/// injected failure, after the change's own statements), creating, changing, revoking and
/// deleting all fail and leave the key as it was.
pub(crate) async fn event_failure_leaves_no_change(store: SeaOrmStore) {
    let by = keyward_core::EventContext::system();
    let (record, _) = personal_key("alice", 0);
    store.insert(record.clone(), &by).await.expect("insert");
    let db = store.connection();
    db.execute(
        db.get_database_backend()
            .build(Table::drop().table(Alias::new("keyward_changes"))),
    )
    .await
    .expect("drop the event table");
    let (other, _) = personal_key("bob", 1);
    let err = store
        .insert(other.clone(), &by)
        .await
        .expect_err("no event table");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    assert_eq!(
        store.get(other.id).await.expect("get"),
        None,
        "no key without its event"
    );
    let rename = KeyChanges {
        name: Some("renamed".into()),
        ..KeyChanges::default()
    }
    .validate(
        &ScopeCatalog::builder()
            .scope("books:read", "Read")
            .build()
            .expect("catalog"),
    )
    .expect("valid");
    store
        .update(record.id, &rename, t0(), &by)
        .await
        .expect_err("update");
    store
        .revoke(record.id, t0(), &by)
        .await
        .expect_err("revoke");
    store
        .refresh(record.id, t0() + TimeDelta::days(1), &by)
        .await
        .expect_err("refresh");
    store.delete(record.id, &by).await.expect_err("delete");
    let after = store
        .get(record.id)
        .await
        .expect("get")
        .expect("still there");
    assert_eq!(after, record, "nothing changed");
}

/// A store pointed at a port nobody listens on is unavailable, both when connecting and,
/// with a lazy pool, on first use.
pub(crate) async fn closed_port_is_unavailable(scheme_and_user: &str, path: &str) {
    // Bind an ephemeral port and close it again: nothing listens there afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("an ephemeral port")
        .port();
    let url = format!("{scheme_and_user}@127.0.0.1:{port}/{path}");
    let mut options = ConnectOptions::new(url);
    options
        .connect_timeout(Duration::from_secs(1))
        .acquire_timeout(Duration::from_secs(1))
        .sqlx_logging(false);
    let err = SeaOrmStore::connect(options.clone())
        .await
        .expect_err("nothing listens");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);

    options.connect_lazy(true);
    let store = SeaOrmStore::connect(options).await.expect("a lazy pool");
    let (record, _) = personal_key("alice", 0);
    let err = store.get(record.id).await.expect_err("nothing listens");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    let err = store
        .record_usage(&[UsageUpdate {
            id: record.id,
            count: 1,
            last_used_at: t0(),
            last_used_ip: None,
        }])
        .await
        .expect_err("nothing listens");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
}

/// Timestamps keep their microseconds on every backend.
pub(crate) async fn microseconds_round_trip(store: SeaOrmStore) {
    let (mut record, _) = personal_key("alice", 0);
    let micros = |n| t0() + TimeDelta::microseconds(n);
    record.created_at = micros(123_456);
    record.updated_at = micros(999_999);
    record.expires_at = Some(micros(86_400_000_001));
    record.lifetime = Some(TimeDelta::microseconds(86_399_876_545));
    store
        .insert(record.clone(), &keyward_core::EventContext::system())
        .await
        .expect("insert");
    assert_eq!(
        store.get(record.id).await.expect("get"),
        Some(record.clone())
    );
    let used = micros(5_000_007);
    store
        .record_usage(&[UsageUpdate {
            id: record.id,
            count: 1,
            last_used_at: used,
            last_used_ip: None,
        }])
        .await
        .expect("usage");
    // One microsecond earlier must not win over the stored time.
    store
        .record_usage(&[UsageUpdate {
            id: record.id,
            count: 1,
            last_used_at: used - TimeDelta::microseconds(1),
            last_used_ip: Some("192.0.2.9".parse().expect("ip")),
        }])
        .await
        .expect("usage");
    let stored = store.get(record.id).await.expect("get").expect("exists");
    assert_eq!(
        (stored.last_used_at, stored.last_used_ip),
        (Some(used), None)
    );
    let refreshed = store
        .refresh(record.id, micros(7), &keyward_core::EventContext::system())
        .await
        .expect("refresh");
    assert_eq!(refreshed.expires_at, Some(micros(86_399_876_552)));
    assert_eq!(store.get(record.id).await.expect("get"), Some(refreshed));
}
