//! The store on PostgreSQL, including the LISTEN/NOTIFY change feed.
//!
//! Runs when `KEYWARD_TEST_POSTGRES_URL` names a server (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`); every test gets a database of its own.
#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use keyward_core::conformance::{personal_key, t0};
use keyward_core::{ChangeStream, KeyChange, KeyId, KeyStore};
use keyward_test_support::TestDatabase;
use sea_orm::{ConnectionTrait, Statement};
use tokio::time::{Instant, timeout_at};

common::server_tests!(TestDatabase::postgres, "postgres://postgres", "postgres");

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
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let first = common::store(&db).await;
    let second = common::store(&db).await;
    let mut feed = second.changes().expect("PostgreSQL has a change feed");
    listening(&mut feed).await;

    let (record, _) = personal_key("alice", 0);
    first
        .insert(record.clone(), &keyward_core::EventContext::system())
        .await
        .expect("insert");
    first
        .revoke(record.id, t0(), &keyward_core::EventContext::system())
        .await
        .expect("revoke");
    let deadline = Instant::now() + Duration::from_secs(1);
    wait_for(&mut feed, deadline, "the revoke", changed(record.id)).await;
    drop(feed);
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_feed_survives_a_dropped_listen_connection() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let first = common::store(&db).await;
    let second = common::store(&db).await;
    let mut feed = second.changes().expect("PostgreSQL has a change feed");
    listening(&mut feed).await;

    let name = second
        .feed_application_name()
        .expect("a feed connection name");
    let terminated = db
        .connect()
        .await
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
    first
        .insert(record.clone(), &keyward_core::EventContext::system())
        .await
        .expect("insert");
    first
        .revoke(record.id, t0(), &keyward_core::EventContext::system())
        .await
        .expect("revoke");
    let deadline = Instant::now() + Duration::from_secs(5);
    wait_for(&mut feed, deadline, "the revoke", changed(record.id)).await;
    drop(feed);
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_change_is_notified_to_other_instances() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let first = common::store(&db).await;
    let second = common::store(&db).await;
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
    first
        .insert(record.clone(), &keyward_core::EventContext::system())
        .await
        .expect("insert");
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
            "disable" => drop(
                first
                    .update(id, &disable, day(1), &keyward_core::EventContext::system())
                    .await
                    .expect(step),
            ),
            "enable" => drop(
                first
                    .update(id, &enable, day(2), &keyward_core::EventContext::system())
                    .await
                    .expect(step),
            ),
            "refresh" => drop(
                first
                    .refresh(id, day(3), &keyward_core::EventContext::system())
                    .await
                    .expect(step),
            ),
            "regenerate" => drop(
                first
                    .replace_secret(id, &rotation, day(4), &keyward_core::EventContext::system())
                    .await
                    .expect(step),
            ),
            "revoke" => drop(
                first
                    .revoke(id, day(5), &keyward_core::EventContext::system())
                    .await
                    .expect(step),
            ),
            _ => first
                .delete(id, &keyward_core::EventContext::system())
                .await
                .expect(step),
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
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolled_back_change_is_not_notified() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let first = common::store(&db).await;
    let second = common::store(&db).await;
    let mut feed = second.changes().expect("PostgreSQL has a change feed");
    listening(&mut feed).await;

    let (record, _) = personal_key("alice", 0);
    first
        .insert(record.clone(), &keyward_core::EventContext::system())
        .await
        .expect("insert");
    first
        .revoke(record.id, t0(), &keyward_core::EventContext::system())
        .await
        .expect("revoke");
    wait_for(
        &mut feed,
        Instant::now() + Duration::from_secs(1),
        "the revoke",
        changed(record.id),
    )
    .await;
    // Refreshing a revoked key fails inside its transaction: nothing may be announced.
    first
        .refresh(record.id, t0(), &keyward_core::EventContext::system())
        .await
        .expect_err("revoked");
    let (marker, _) = personal_key("bob", 1);
    first
        .insert(marker.clone(), &keyward_core::EventContext::system())
        .await
        .expect("insert");
    first
        .revoke(marker.id, t0(), &keyward_core::EventContext::system())
        .await
        .expect("revoke");
    // Notifications arrive in commit order.
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
    db.remove().await;
}
