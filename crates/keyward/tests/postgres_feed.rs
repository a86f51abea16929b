//! Two `Keyward` instances on one PostgreSQL store: a revoke through one is enforced by the
//! other within a second, and so is a user's demotion announced through one, through the
//! store's LISTEN/NOTIFY change feed.
//!
//! Runs when `KEYWARD_TEST_POSTGRES_URL` names a server (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`), in a database of its own; skipped when
//! unset, failing when set but unreachable.

mod common;

use std::time::{Duration, Instant};

use common::{bearer, send};
use keyward::{Keyward, NewKey};
use keyward_sea_orm::{ConnectOptions, SeaOrmStore};
use keyward_test_support::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_through_one_instance_is_enforced_by_the_other_within_a_second() {
    in_fresh_database(run).await;
}

/// Runs `test` with connection options for a database of its own, then removes it.
async fn in_fresh_database<F: Future<Output = ()> + Send + 'static>(
    test: impl FnOnce(ConnectOptions) -> F,
) {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let mut options = db.options();
    options
        .max_connections(4)
        .connect_timeout(Duration::from_secs(5));
    db.remove_after(test(options)).await;
}

async fn run(options: ConnectOptions) {
    let store_a = SeaOrmStore::connect_and_migrate(options.clone())
        .await
        .expect("connect and migrate");
    let store_b = SeaOrmStore::connect(options).await.expect("connect");
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

/// The users of the demotion test: alice holds what the shared cell says, now.
#[derive(Clone)]
struct Users(std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>);

impl keyward::Callers for Users {
    async fn user(&self, id: &str) -> Result<Option<keyward::User>, keyward::CallerError> {
        let grants = self.0.lock().expect("users").clone();
        let scopes = keyward::ScopeSet::parse(grants).map_err(keyward::CallerError::new)?;
        Ok((id == "alice").then(|| keyward::User::new(id, "Alice", scopes)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demotion_announced_on_one_instance_reaches_the_other_within_a_second() {
    in_fresh_database(demote).await;
}

async fn demote(options: ConnectOptions) {
    let users = Users(std::sync::Arc::new(std::sync::Mutex::new(vec![
        "books:write",
    ])));
    let store_a = SeaOrmStore::connect_and_migrate(options.clone())
        .await
        .expect("connect and migrate");
    let store_b = SeaOrmStore::connect(options).await.expect("connect");
    let clock = keyward::ManualClock::new(common::t0());
    let a = common::builder(store_a, &clock)
        .callers(users.clone())
        .build()
        .unwrap();
    let b = common::builder(store_b, &clock)
        .callers(users.clone())
        .build()
        .unwrap();
    let app_b = common::app(&b);
    let issued = a
        .create(NewKey::personal("laptop", "alice").scopes(["books:write"]))
        .await
        .unwrap();
    let token = issued.token.expose_secret().to_owned();
    let write = || {
        let mut request = bearer("/write", &token);
        *request.method_mut() = http::Method::POST;
        request
    };
    // Cached on instance B with alice's grants.
    assert_eq!(send(&app_b, write()).await.status, 200);
    assert_eq!(send(&app_b, write()).await.status, 200);

    *users.0.lock().expect("users") = vec!["books:read"];
    let announced_at = Instant::now();
    a.invalidate_owner("alice").await.unwrap();
    loop {
        let status = send(&app_b, write()).await.status;
        if status == 403 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            announced_at.elapsed() < Duration::from_secs(1),
            "instance B still used alice's old grants after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}
