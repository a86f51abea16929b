//! The store on MySQL/MariaDB.
//!
//! Runs when `KEYWARD_TEST_MYSQL_URL` names a server (e.g. `mysql://root@127.0.0.1:3306/test`);
//! every store gets a database of its own.
#![cfg(feature = "mysql")]

mod common;

use std::time::Duration;

use keyward_core::KeyStore;
use keyward_sea_orm::SeaOrmStore;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

const URL_VAR: &str = "KEYWARD_TEST_MYSQL_URL";

/// Databases left behind by runs that failed before cleaning up are dropped after this long.
const STALE_AFTER: Duration = Duration::from_secs(3600);

fn url() -> Option<String> {
    let url = std::env::var(URL_VAR).ok().filter(|url| !url.is_empty());
    if url.is_none() {
        eprintln!("skipped: {URL_VAR} is not set");
    }
    url
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// A database of its own for one test, so parallel tests and runs never see each other's keys.
struct TestDatabase {
    url: String,
    name: String,
    admin: DatabaseConnection,
}

impl TestDatabase {
    /// `None` when no server is configured; panics when one is configured but unreachable.
    async fn create() -> Option<Self> {
        let url = url()?;
        let mut options = ConnectOptions::new(url.clone());
        options
            .max_connections(2)
            .connect_timeout(Duration::from_secs(5))
            .sqlx_logging(false);
        let admin = Database::connect(options)
            .await
            .unwrap_or_else(|err| panic!("{URL_VAR} is set but MySQL is unreachable: {err}"));
        drop_stale_databases(&admin).await;
        let name = format!("keyward_test_{}", uuid::Uuid::now_v7().simple());
        // Deliberately not utf8mb4: the migration must not depend on the database default.
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name} CHARACTER SET latin1"))
            .await
            .expect("create a database");
        Some(Self {
            url: with_database(&url, &name),
            name,
            admin,
        })
    }

    fn options(&self) -> ConnectOptions {
        let mut options = ConnectOptions::new(self.url.clone());
        options.max_connections(8).sqlx_logging(false);
        options
    }

    async fn store(&self) -> SeaOrmStore {
        SeaOrmStore::connect_and_migrate(self.options())
            .await
            .expect("connect and migrate")
    }

    async fn drop(self) {
        self.admin
            .execute_unprepared(&format!("DROP DATABASE {}", self.name))
            .await
            .expect("drop the database");
    }
}

/// Drops test databases older than [`STALE_AFTER`]; their names carry their UUID v7 time.
async fn drop_stale_databases(admin: &DatabaseConnection) {
    let rows = admin
        .query_all(Statement::from_string(
            admin.get_database_backend(),
            "SELECT schema_name AS name FROM information_schema.schemata \
             WHERE schema_name LIKE 'keyward\\_test\\_%'",
        ))
        .await
        .expect("list test databases");
    for row in rows {
        let name: String = row.try_get("", "name").expect("name");
        let created = name
            .strip_prefix("keyward_test_")
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .and_then(|id| id.get_timestamp())
            .map(|ts| std::time::UNIX_EPOCH + Duration::from_secs(ts.to_unix().0));
        let stale = created
            .and_then(|at| at.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if stale {
            // Another run may be dropping it at the same moment.
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
                .await;
        }
    }
}

/// The conformance factory. The database stays until a later run sweeps it: the suite takes
/// the store by value and has no teardown.
async fn store() -> Option<SeaOrmStore> {
    let database = TestDatabase::create().await?;
    Some(database.store().await)
}

keyward_core::conformance_tests!(store);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_run_twice_and_leave_the_host_history_alone() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let db = Database::connect(database.options())
        .await
        .expect("connect");
    common::migrations_leave_host_history_alone(&db).await;
    database.drop().await;
}

common::store_checks!(TestDatabase;
    usage_survives_concurrent_changes,
    batch_with_repeated_key,
    microseconds_round_trip,
    corrupt_rows_are_errors,
    missing_table_is_unavailable,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_port_is_unavailable() {
    common::closed_port_is_unavailable("mysql://root", "test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_has_no_change_feed() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let store = database.store().await;
    assert!(store.changes().is_none());
    database.drop().await;
}

#[test]
fn database_is_replaced_in_urls() {
    assert_eq!(
        with_database("mysql://root@127.0.0.1:3306/test", "kw"),
        "mysql://root@127.0.0.1:3306/kw"
    );
    assert_eq!(
        with_database("mysql://u:p@db/test?ssl-mode=disabled", "kw"),
        "mysql://u:p@db/kw?ssl-mode=disabled"
    );
    assert_eq!(with_database("mysql://root@db", "kw"), "mysql://root@db/kw");
}
