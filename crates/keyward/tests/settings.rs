//! The application's settings, recorded in the store for the command line.

use std::time::Duration;

use keyward::{KeyStore, Keyward, MemoryStore, ScopeCatalog};
use keyward_core::TokenHasher;
use keyward_sea_orm::SeaOrmStore;
use keyward_test_support::Logs;
use tokio::time::{Instant, sleep};

const DEADLINE: Duration = Duration::from_secs(10);

fn catalog() -> ScopeCatalog {
    ScopeCatalog::builder()
        .scope("books:read", "See the book catalog")
        .scope("books:write", "Add and change books")
        .implies("books:write", "books:read")
        .build()
        .expect("catalog")
}

#[tokio::test]
async fn settings_are_recorded_when_the_tasks_start() {
    let store = MemoryStore::new();
    let keyward = Keyward::builder(store.clone())
        .prefix("books")
        .accept_prefix("jelu")
        .catalog(catalog())
        .build()
        .expect("build");
    let deadline = Instant::now() + DEADLINE;
    let recorded = loop {
        if let Some(settings) = store.settings().await.expect("settings") {
            break settings;
        }
        assert!(Instant::now() < deadline, "no settings recorded");
        sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(recorded.prefix, "books");
    assert_eq!(recorded.accepted_prefixes, ["books", "jelu"]);
    let described: Vec<(&str, &str)> = recorded
        .scopes
        .iter()
        .map(|s| (s.name.as_str(), s.description.as_str()))
        .collect();
    assert!(described.contains(&("books:read", "See the book catalog")));
    assert!(described.contains(&(
        "keys:admin",
        "Manage every user's API keys and service keys"
    )));
    assert_eq!(recorded.catalog().expect("a valid catalog"), catalog());
    assert_eq!(recorded.pepper_fingerprint, None);
    let mut expected = keyward.app_settings();
    expected.recorded_at = recorded.recorded_at;
    assert_eq!(recorded, expected);
}

#[tokio::test]
async fn the_pepper_is_recorded_only_as_its_fingerprint() {
    let store = MemoryStore::new();
    let keyward = Keyward::builder(store.clone())
        .prefix("books")
        .pepper(b"a pepper of the application".to_vec())
        .build()
        .expect("build");
    keyward.record_settings().await.expect("record");
    let recorded = store.settings().await.expect("read").expect("recorded");
    assert_eq!(
        recorded.pepper_fingerprint,
        TokenHasher::hmac(b"a pepper of the application").pepper_fingerprint()
    );
    let json = serde_json::to_string(&recorded).expect("json");
    assert!(!json.contains("pepper of"), "{json}");
}

#[tokio::test]
async fn a_store_that_cannot_record_is_a_warning_not_a_failure() {
    let logs = Logs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber(tracing::Level::WARN));
    // No migrations: the settings table does not exist.
    let store = SeaOrmStore::connect("sqlite::memory:")
        .await
        .expect("connect");
    let keyward = Keyward::builder(store)
        .prefix("books")
        .build()
        .expect("the application starts");
    let deadline = Instant::now() + DEADLINE;
    while !logs
        .text()
        .contains("could not record the application's settings")
    {
        assert!(Instant::now() < deadline, "no warning: {}", logs.text());
        sleep(Duration::from_millis(5)).await;
    }
    assert!(keyward.record_settings().await.is_err());
}
