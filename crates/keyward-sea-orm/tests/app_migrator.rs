//! keyward's migrations inside an application's own `Migrator`, beside keyward's own
//! `migrate`, and the recorded application settings: on SQLite, and on PostgreSQL and
//! MariaDB/MySQL when their test servers are configured.

use chrono::{TimeDelta, Utc};
use keyward_core::conformance::personal_key;
use keyward_core::{AppSettings, KeyStore, ScopeCatalog, TokenFormat, TokenHasher};
use keyward_sea_orm::SeaOrmStore;
use keyward_test_support::TestDatabase;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use sea_orm_migration::prelude::*;

/// An application's migrator with keyward's steps after its own.
struct AppMigrator;

impl MigratorTrait for AppMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations: Vec<Box<dyn MigrationTrait>> = vec![Box::new(CreateShelves)];
        migrations.extend(keyward_sea_orm::migration::migrations());
        migrations
    }
}

struct CreateShelves;

impl MigrationName for CreateShelves {
    fn name(&self) -> &'static str {
        "m20250101_000001_create_app_shelves"
    }
}

// The trait is declared with `&SchemaManager` and `async_trait` needs the same spelling.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateShelves {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("app_shelves"))
                    .if_not_exists()
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
            .drop_table(Table::drop().table(Alias::new("app_shelves")).to_owned())
            .await
    }
}

fn settings(prefix: &str, description: &str) -> AppSettings {
    let catalog = ScopeCatalog::builder()
        .scope("books:read", description)
        .scope("books:write", "Add and change books")
        .implies("books:write", "books:read")
        .build()
        .expect("catalog");
    let format = TokenFormat::new(prefix).expect("prefix");
    AppSettings::new(&format, &catalog, &TokenHasher::hmac(b"pepper"), Utc::now())
}

/// A key goes in and comes back, and settings are recorded and read: the schema works.
async fn assert_schema_works(db: &DatabaseConnection, owner: &str) {
    let store = SeaOrmStore::new(db.clone());
    let (record, _) = personal_key(owner, 0);
    store
        .insert(record.clone(), &keyward_core::EventContext::system())
        .await
        .expect("insert");
    assert_eq!(store.get(record.id).await.expect("get"), Some(record));
    let recorded = settings("books", "See the book catalog");
    store.record_settings(&recorded).await.expect("record");
    let read = store.settings().await.expect("read").expect("recorded");
    assert_eq!(read.prefix, "books");
}

async fn count(db: &DatabaseConnection, table: &str) -> i64 {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .expect("count")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("n")
}

async fn app_migrator_then_migrate(db: &DatabaseConnection) {
    AppMigrator::up(db, None).await.expect("the app's migrator");
    assert!(
        AppMigrator::get_pending_migrations(db)
            .await
            .expect("status")
            .is_empty()
    );
    keyward_sea_orm::migrate(db)
        .await
        .expect("keyward's migrate on a schema the app's migrator made");
    keyward_sea_orm::migrate(db).await.expect("and again");
    assert_schema_works(db, "alice").await;

    AppMigrator::fresh(db)
        .await
        .expect("fresh with keyward's steps");
    assert_eq!(
        count(db, "keyward_keys").await,
        0,
        "fresh deletes every key"
    );
    assert_schema_works(db, "bob").await;
    keyward_sea_orm::migrate(db)
        .await
        .expect("keyward's migrate after fresh");
    assert_eq!(count(db, "keyward_keys").await, 1);
}

async fn migrate_then_app_migrator(db: &DatabaseConnection) {
    keyward_sea_orm::migrate(db).await.expect("keyward first");
    AppMigrator::up(db, None)
        .await
        .expect("the app's migrator over keyward's tables");
    assert_schema_works(db, "carol").await;
}

async fn settings_are_replaced(store: &SeaOrmStore) {
    assert_eq!(store.settings().await.expect("read"), None);
    store
        .record_settings(&settings("jelu", "old"))
        .await
        .expect("first");
    let mut newer = settings("books", "Voir le catalogue — 📚");
    newer.recorded_at = Utc::now() + TimeDelta::seconds(1);
    store.record_settings(&newer).await.expect("second");
    let read = store.settings().await.expect("read").expect("recorded");
    assert_eq!(read.prefix, "books");
    assert_eq!(read.pepper_fingerprint, newer.pepper_fingerprint);
    assert!(
        read.scopes
            .iter()
            .any(|s| s.description == "Voir le catalogue — 📚"),
        "{read:?}"
    );
    assert_eq!(
        read.catalog().expect("catalog"),
        newer.catalog().expect("catalog")
    );
    assert_eq!(count(store.connection(), "keyward_settings").await, 1);
}

macro_rules! backend_tests {
    ($name:ident, $create:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn app_migrator_then_keyward_migrate_then_fresh() {
                let Some(db) = $create else { return };
                app_migrator_then_migrate(&db.connect().await).await;
                db.remove().await;
            }

            #[tokio::test]
            async fn keyward_migrate_then_app_migrator() {
                let Some(db) = $create else { return };
                migrate_then_app_migrator(&db.connect().await).await;
                db.remove().await;
            }

            #[tokio::test]
            async fn recorded_settings_are_replaced() {
                let Some(db) = $create else { return };
                let store = SeaOrmStore::connect_and_migrate(db.options())
                    .await
                    .expect("store");
                settings_are_replaced(&store).await;
                db.remove().await;
            }
        }
    };
}

#[cfg(feature = "sqlite")]
backend_tests!(sqlite, Some(TestDatabase::sqlite()));
#[cfg(feature = "postgres")]
backend_tests!(postgres, TestDatabase::postgres().await);
#[cfg(feature = "mysql")]
backend_tests!(mysql, TestDatabase::mysql().await);
