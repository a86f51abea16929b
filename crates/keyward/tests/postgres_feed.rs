//! Two `Keyward` instances on one PostgreSQL store: a revoke through one is enforced by the
//! other within a second, through the store's LISTEN/NOTIFY change feed.
//!
//! Runs when `KEYWARD_TEST_POSTGRES_URL` names a server (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`), in a schema of its own; skipped when unset,
//! failing when set but unreachable.

mod common;

use std::time::{Duration, Instant};

use common::{bearer, send};
use keyward::{Keyward, NewKey};
use keyward_sea_orm::{ConnectOptions, SeaOrmStore};
use sea_orm::{ConnectionTrait, Database};

const URL_VAR: &str = "KEYWARD_TEST_POSTGRES_URL";

fn options(url: &str, schema: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .set_schema_search_path(schema.to_owned())
        .max_connections(4)
        .connect_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_through_one_instance_is_enforced_by_the_other_within_a_second() {
    let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) else {
        eprintln!("skipped: {URL_VAR} is not set");
        return;
    };
    let admin = Database::connect(url.as_str())
        .await
        .unwrap_or_else(|err| panic!("{URL_VAR} is set but PostgreSQL is unreachable: {err}"));
    let schema = format!("keyward_mw_{}", uuid::Uuid::now_v7().simple());
    admin
        .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create a schema");

    let result = tokio::spawn({
        let (url, schema) = (url.clone(), schema.clone());
        async move { run(&url, &schema).await }
    })
    .await;

    admin
        .execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop the schema");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

async fn run(url: &str, schema: &str) {
    let store_a = SeaOrmStore::connect_and_migrate(options(url, schema))
        .await
        .expect("connect and migrate");
    let store_b = SeaOrmStore::connect(options(url, schema))
        .await
        .expect("connect");
    let a = Keyward::builder(store_a).prefix("books").build().unwrap();
    let b = Keyward::builder(store_b).prefix("books").build().unwrap();
    let app_b = common::app(&b);

    let issued = a
        .create(NewKey::service("ci").scopes(["keys:read"]))
        .await
        .unwrap();
    let token = issued.token.expose_secret().to_owned();
    // Cached on instance B.
    assert_eq!(send(&app_b, bearer("/echo", &token)).await.status, 200);
    assert_eq!(send(&app_b, bearer("/echo", &token)).await.status, 200);

    // The key is in B's cache, so only the notification can make B refuse it before the
    // cache TTL (60 s) ends.
    let revoked_at = Instant::now();
    a.revoke(issued.record.id).await.unwrap();
    loop {
        let status = send(&app_b, bearer("/echo", &token)).await.status;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "instance B still accepted the revoked key after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}
