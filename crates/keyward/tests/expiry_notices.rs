//! Expiry notices with several instances: each instance sweeps, each notice is recorded once,
//! on a SQLite file, PostgreSQL and MariaDB (the server backends when configured).

use std::time::Duration;

use chrono::TimeDelta;
use keyward::{
    ChangeKind, EventQuery, Expiry, KeyStore, Keyward, ManualClock, NewKey, ScopeCatalog,
};
use keyward_sea_orm::SeaOrmStore;
use keyward_test_support::TestDatabase;

fn instance(store: impl KeyStore, clock: &ManualClock) -> Keyward {
    Keyward::builder(store)
        .prefix("books")
        .catalog(
            ScopeCatalog::builder()
                .scope("books:read", "Read books")
                .build()
                .expect("catalog"),
        )
        .clock(clock.clone())
        .expiry_notices(Some(Duration::from_secs(7 * 24 * 60 * 60)))
        .build()
        .expect("valid configuration")
}

async fn two_instances_record_each_notice_once(db: TestDatabase) {
    let clock = ManualClock::new(chrono::Utc::now());
    let first = SeaOrmStore::connect_and_migrate(db.options())
        .await
        .expect("connect");
    let second = SeaOrmStore::connect_and_migrate(db.options())
        .await
        .expect("connect");
    let a = instance(first, &clock);
    let b = instance(second, &clock);
    let month = a
        .create(
            NewKey::personal("monthly", "alice")
                .scopes(["books:read"])
                .expiry(Expiry::InDays(30)),
        )
        .await
        .expect("create")
        .record;
    let never = a
        .create(
            NewKey::personal("forever", "alice")
                .scopes(["books:read"])
                .expiry(Expiry::Never),
        )
        .await
        .expect("create")
        .record;

    // Nothing is due on the first day.
    assert!(a.sweep_expiry_notices().await.expect("sweep").is_empty());
    // Day 25: the key is inside the window; both instances sweep at the same moment, many
    // times over.
    clock.advance(TimeDelta::days(25));
    let mut recorded = Vec::new();
    for _ in 0..5 {
        let (x, y) = tokio::join!(a.sweep_expiry_notices(), b.sweep_expiry_notices());
        recorded.extend(x.expect("sweep"));
        recorded.extend(y.expect("sweep"));
    }
    assert_eq!(
        recorded.len(),
        1,
        "one notice between two instances: {recorded:?}"
    );
    assert_eq!(recorded[0].kind, ChangeKind::ExpiringSoon);
    assert_eq!(recorded[0].key_id, Some(month.id));
    // Day 31: expired, once.
    clock.advance(TimeDelta::days(6));
    let (x, y) = tokio::join!(a.sweep_expiry_notices(), b.sweep_expiry_notices());
    let expired: Vec<_> = x
        .expect("sweep")
        .into_iter()
        .chain(y.expect("sweep"))
        .collect();
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0].kind, ChangeKind::Expired);

    let events = b
        .events(&EventQuery::new().key(month.id))
        .await
        .expect("events")
        .events;
    let kinds: Vec<ChangeKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::Expired,
            ChangeKind::ExpiringSoon,
            ChangeKind::Created
        ]
    );
    assert_eq!(events[1].detail["name"], "monthly");
    let quiet = b
        .events(&EventQuery::new().key(never.id))
        .await
        .expect("events")
        .events;
    assert_eq!(quiet.len(), 1, "a key that never expires gets no notice");
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_sqlite_file() {
    two_instances_record_each_notice_once(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres() {
    let Some(db) = TestDatabase::postgres().await else {
        eprintln!("skipped: KEYWARD_TEST_POSTGRES_URL is not set");
        return;
    };
    two_instances_record_each_notice_once(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_mariadb() {
    let Some(db) = TestDatabase::mysql().await else {
        eprintln!("skipped: KEYWARD_TEST_MYSQL_URL is not set");
        return;
    };
    two_instances_record_each_notice_once(db).await;
}
