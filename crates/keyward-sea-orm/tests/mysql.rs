//! The store on MySQL/MariaDB.
//!
//! Runs when `KEYWARD_TEST_MYSQL_URL` names a server (e.g. `mysql://root@127.0.0.1:3306/test`);
//! every test gets a database of its own.
#![cfg(feature = "mysql")]

mod common;

use keyward_core::KeyStore;
use keyward_test_support::TestDatabase;

common::server_tests!(TestDatabase::mysql, "mysql://root", "test");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_has_no_change_feed() {
    let Some(db) = TestDatabase::mysql().await else {
        return;
    };
    let store = common::store(&db).await;
    assert!(store.changes().is_none());
    db.remove().await;
}
