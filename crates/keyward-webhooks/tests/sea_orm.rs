//! A sender restarted on a database-backed store continues where it stopped: on a SQLite
//! file, and on PostgreSQL and MariaDB when `KEYWARD_TEST_POSTGRES_URL` /
//! `KEYWARD_TEST_MYSQL_URL` are set (skipped otherwise).

mod common;

use keyward::{Keyward, ScopeCatalog};
use keyward_sea_orm::SeaOrmStore;
use keyward_test_support::TestDatabase;

async fn restart_on(db: TestDatabase) {
    let store = SeaOrmStore::connect_and_migrate(db.options())
        .await
        .expect("connect");
    let keyward = Keyward::builder(store.clone())
        .prefix("books")
        .catalog(
            ScopeCatalog::builder()
                .scope("books:read", "Read books")
                .build()
                .expect("catalog"),
        )
        .build()
        .expect("valid configuration");
    common::bounded(common::restart_continues(&keyward, store)).await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_a_sqlite_file() {
    restart_on(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_postgres() {
    if let Some(db) = TestDatabase::postgres().await {
        restart_on(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_mariadb() {
    if let Some(db) = TestDatabase::mysql().await {
        restart_on(db).await;
    }
}
