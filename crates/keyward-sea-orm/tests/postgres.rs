//! The store on PostgreSQL, including the LISTEN/NOTIFY change feed.
//!
//! Runs when `KEYWARD_TEST_POSTGRES_URL` names a server (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`); every store gets a schema of its own.
#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use keyward_core::conformance::{personal_key, t0};
use keyward_core::{ChangeStream, KeyChange, KeyId, KeyStore};
use keyward_sea_orm::SeaOrmStore;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use tokio::time::{Instant, timeout_at};

const URL_VAR: &str = "KEYWARD_TEST_POSTGRES_URL";

/// Schemas left behind by runs that failed before cleaning up are dropped after this long.
const STALE_AFTER: Duration = Duration::from_secs(3600);

fn url() -> Option<String> {
    let url = std::env::var(URL_VAR).ok().filter(|url| !url.is_empty());
    if url.is_none() {
        eprintln!("skipped: {URL_VAR} is not set");
    }
    url
}

/// A schema of its own for one test, so parallel tests and runs never see each other's keys.
struct Schema {
    url: String,
    name: String,
    admin: DatabaseConnection,
}

impl Schema {
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
            .unwrap_or_else(|err| panic!("{URL_VAR} is set but PostgreSQL is unreachable: {err}"));
        drop_stale_schemas(&admin).await;
        let name = format!("keyward_test_{}", uuid::Uuid::now_v7().simple());
        admin
            .execute_unprepared(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create a schema");
        Some(Self { url, name, admin })
    }

    fn options(&self) -> ConnectOptions {
        let mut options = ConnectOptions::new(self.url.clone());
        options
            .set_schema_search_path(self.name.clone())
            .max_connections(8)
            .sqlx_logging(false);
        options
    }

    /// A store instance (a pool of its own) on this schema, migrated.
    async fn store(&self) -> SeaOrmStore {
        SeaOrmStore::connect_and_migrate(self.options())
            .await
            .expect("connect and migrate")
    }

    async fn drop(self) {
        self.admin
            .execute_unprepared(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .expect("drop the schema");
    }
}

/// Drops test schemas older than [`STALE_AFTER`]; their names carry their UUID v7 time.
async fn drop_stale_schemas(admin: &DatabaseConnection) {
    let rows = admin
        .query_all(Statement::from_string(
            admin.get_database_backend(),
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'keyward\\_test\\_%'",
        ))
        .await
        .expect("list test schemas");
    for row in rows {
        let name: String = row.try_get("", "nspname").expect("name");
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
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .await;
        }
    }
}

/// The conformance factory. The schema stays until a later run sweeps it: the suite takes
/// the store by value and has no teardown.
async fn store() -> Option<SeaOrmStore> {
    let schema = Schema::create().await?;
    Some(schema.store().await)
}

keyward_core::conformance_tests!(store);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_run_twice_and_leave_the_host_history_alone() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let db = Database::connect(schema.options()).await.expect("connect");
    common::migrations_leave_host_history_alone(&db).await;
    schema.drop().await;
}

common::store_checks!(Schema;
    usage_survives_concurrent_changes,
    batch_with_repeated_key,
    microseconds_round_trip,
    corrupt_rows_are_errors,
    missing_table_is_unavailable,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_port_is_unavailable() {
    common::closed_port_is_unavailable("postgres://postgres", "postgres").await;
}

/// Waits until `feed` yields an item `wanted` accepts, or panics at `deadline`.
async fn wait_for(
    feed: &mut ChangeStream,
    deadline: Instant,
    what: &str,
    wanted: impl Fn(KeyChange) -> bool,
) {
    use futures_util::StreamExt;
    let found = timeout_at(deadline, async {
        while let Some(change) = feed.next().await {
            if wanted(change) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "the feed did not report {what} in time");
}

async fn listening(feed: &mut ChangeStream) {
    // The first item says the feed is listening: nothing sent before it can be relied on.
    wait_for(
        feed,
        Instant::now() + Duration::from_secs(10),
        "that it listens",
        |c| c == KeyChange::Resync,
    )
    .await;
}

fn changed(id: KeyId) -> impl Fn(KeyChange) -> bool {
    move |c| c == KeyChange::Changed(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_instance_sees_a_revoke_within_a_second() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let first = schema.store().await;
    let second = schema.store().await;
    let mut feed = second.changes().expect("PostgreSQL has a change feed");
    listening(&mut feed).await;

    let (record, _) = personal_key("alice", 0);
    first.insert(record.clone()).await.expect("insert");
    first.revoke(record.id, t0()).await.expect("revoke");
    let deadline = Instant::now() + Duration::from_secs(1);
    wait_for(&mut feed, deadline, "the revoke", changed(record.id)).await;
    drop(feed);
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_feed_survives_a_dropped_listen_connection() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let first = schema.store().await;
    let second = schema.store().await;
    let mut feed = second.changes().expect("PostgreSQL has a change feed");
    listening(&mut feed).await;

    let name = second
        .feed_application_name()
        .expect("a feed connection name");
    let terminated = schema
        .admin
        .query_all(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity \
             WHERE application_name = $1",
            [name.into()],
        ))
        .await
        .expect("terminate the listening connection");
    assert_eq!(terminated.len(), 1, "exactly one listening connection");

    // After a drop the feed says it may have missed changes, once it listens again.
    listening(&mut feed).await;
    let (record, _) = personal_key("alice", 0);
    first.insert(record.clone()).await.expect("insert");
    first.revoke(record.id, t0()).await.expect("revoke");
    let deadline = Instant::now() + Duration::from_secs(5);
    wait_for(&mut feed, deadline, "the revoke", changed(record.id)).await;
    drop(feed);
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_change_is_notified_to_other_instances() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let first = schema.store().await;
    let second = schema.store().await;
    let mut feed = second.changes().expect("PostgreSQL has a change feed");
    listening(&mut feed).await;

    let catalog = keyward_core::ScopeCatalog::builder()
        .scope("books:read", "Read books")
        .build()
        .expect("catalog");
    let disable = keyward_core::KeyChanges {
        active: Some(false),
        ..keyward_core::KeyChanges::default()
    }
    .validate(&catalog)
    .expect("valid");
    let enable = keyward_core::KeyChanges {
        active: Some(true),
        ..keyward_core::KeyChanges::default()
    }
    .validate(&catalog)
    .expect("valid");
    let format = keyward_core::TokenFormat::new("test").expect("prefix");
    let (rotation, _) = keyward_core::SecretRotation::generate(
        &format,
        &keyward_core::TokenHasher::sha256(),
        None,
        t0(),
    );
    let (record, _) = personal_key("alice", 0);
    first.insert(record.clone()).await.expect("insert");
    let id = record.id;
    // A change that changes nothing is not announced, so every step happens a day later.
    let day = |n| t0() + chrono::TimeDelta::days(n);
    for step in [
        "disable",
        "enable",
        "refresh",
        "regenerate",
        "revoke",
        "delete",
    ] {
        match step {
            "disable" => drop(first.update(id, &disable, day(1)).await.expect(step)),
            "enable" => drop(first.update(id, &enable, day(2)).await.expect(step)),
            "refresh" => drop(first.refresh(id, day(3)).await.expect(step)),
            "regenerate" => drop(
                first
                    .replace_secret(id, &rotation, day(4))
                    .await
                    .expect(step),
            ),
            "revoke" => drop(first.revoke(id, day(5)).await.expect(step)),
            _ => first.delete(id).await.expect(step),
        }
        wait_for(
            &mut feed,
            Instant::now() + Duration::from_secs(1),
            step,
            changed(id),
        )
        .await;
    }
    drop(feed);
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolled_back_change_is_not_notified() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let first = schema.store().await;
    let second = schema.store().await;
    let mut feed = second.changes().expect("PostgreSQL has a change feed");
    listening(&mut feed).await;

    let (record, _) = personal_key("alice", 0);
    first.insert(record.clone()).await.expect("insert");
    first.revoke(record.id, t0()).await.expect("revoke");
    wait_for(
        &mut feed,
        Instant::now() + Duration::from_secs(1),
        "the revoke",
        changed(record.id),
    )
    .await;
    // Refreshing a revoked key fails inside its transaction: nothing may be announced.
    first.refresh(record.id, t0()).await.expect_err("revoked");
    let (marker, _) = personal_key("bob", 1);
    first.insert(marker.clone()).await.expect("insert");
    first.revoke(marker.id, t0()).await.expect("revoke");
    // Notifications arrive in commit order; other tests' keys share the channel.
    use futures_util::StreamExt;
    let outcome = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(change) = feed.next().await {
            if change == KeyChange::Changed(record.id) {
                return Err("the failed refresh was announced");
            }
            if change == KeyChange::Changed(marker.id) {
                return Ok(());
            }
        }
        Err("the feed ended")
    })
    .await;
    assert_eq!(outcome, Ok(Ok(())));
    drop(feed);
    schema.drop().await;
}
