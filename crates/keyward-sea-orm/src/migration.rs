//! Schema migrations: keyward's tables (`keyward_keys`, `keyward_key_usage`,
//! `keyward_settings`, `keyward_changes`, `keyward_notices`, `keyward_consumers`), with their history either apart from the
//! application's or in it.
//!
//! # Kept apart (the default)
//!
//! [`migrate`](crate::migrate) (or [`Migrator`] with SeaORM's `MigratorTrait`, for example
//! to roll back in a test) records keyward's migrations in their own table,
//! `keyward_migrations`, so that the application's migrator (`seaql_migrations`) never sees,
//! applies or rolls back them.
//!
//! # In the application's own `Migrator`
//!
//! An application that runs every schema change through one migrator (`sea-orm-cli migrate`,
//! a deploy step) adds keyward's steps, from [`migrations`], to its list:
//!
//! ```
//! use sea_orm_migration::prelude::*;
//!
//! /// The application's migrator, keyward's steps included.
//! struct Migrator;
//!
//! impl MigratorTrait for Migrator {
//!     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
//!         let mut migrations: Vec<Box<dyn MigrationTrait>> = vec![Box::new(CreateBooks)];
//!         migrations.extend(keyward_sea_orm::migration::migrations());
//!         migrations
//!     }
//! }
//!
//! /// One of the application's own migrations.
//! struct CreateBooks;
//!
//! impl MigrationName for CreateBooks {
//!     fn name(&self) -> &str {
//!         "m20250101_000001_create_books"
//!     }
//! }
//!
//! #[async_trait::async_trait]
//! impl MigrationTrait for CreateBooks {
//!     async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
//!         let table = Table::create()
//!             .table(Alias::new("books"))
//!             .if_not_exists()
//!             .col(ColumnDef::new(Alias::new("id")).integer().not_null().primary_key())
//!             .to_owned();
//!         manager.create_table(table).await
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let db = sea_orm::Database::connect("sqlite::memory:").await?;
//! Migrator::up(&db, None).await?;
//! // Every keyward step is idempotent, so keyward's own migrate still works beside it.
//! keyward_sea_orm::migrate(&db).await?;
//! let store = keyward_sea_orm::SeaOrmStore::new(db);
//! # use keyward_core::{KeyStore, ListQuery};
//! assert!(store.list(&ListQuery::default()).await?.keys.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every step creates only what is missing (`CREATE TABLE IF NOT EXISTS`, indexes and columns
//! after checking for them), so a database migrated both ways, or first one way and then the
//! other, is fine.
//!
//! # `fresh`, `refresh` and `reset` delete every key
//!
//! SeaORM's `Migrator::fresh` drops **every table in the database**, keyward's included, then
//! runs the application's list again. With keyward's steps in that list, keyward's tables come
//! back empty; with keyward's history kept apart, they do not come back at all (and neither
//! does `keyward_migrations`) until [`migrate`](crate::migrate) runs again. Either way every
//! key is gone, and with it every token the application's users hold. `refresh` and `reset`
//! roll back the application's list: with keyward's steps in it, that drops keyward's tables
//! too. Use these commands on development and test databases only.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DynIden;

use crate::entity::Column;

mod changes;
mod events;
mod settings;
mod usage_days;

/// Name of the table that records which keyward migrations ran.
pub const MIGRATION_TABLE: &str = "keyward_migrations";

/// keyward's migrator: every schema change the store needs, in order.
///
/// # Example
///
/// ```
/// use keyward_sea_orm::migration::Migrator;
/// use sea_orm_migration::MigratorTrait;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// Migrator::up(&db, None).await?;
/// assert!(Migrator::get_pending_migrations(&db).await?.is_empty());
/// # Ok::<(), sea_orm::DbErr>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations()
    }

    fn migration_table_name() -> DynIden {
        Alias::new(MIGRATION_TABLE).into_iden()
    }
}

/// keyward's migrations, in order, for an application that adds them to its own
/// `Migrator` (see [the module documentation](self)): they are then recorded in the
/// application's history, under names that contain `keyward`.
///
/// Each one creates only what is missing, so [`migrate`](crate::migrate) may run on the same
/// database as well.
#[must_use]
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(CreateKeys),
        Box::new(AddDisabledBy),
        Box::new(usage_days::CreateKeyUsage),
        Box::new(settings::CreateSettings),
        Box::new(changes::CreateChanges),
        Box::new(events::AddEventColumns),
        Box::new(events::CreateNoticesAndConsumers),
    ]
}

/// Creates `keyward_keys` and its indexes.
#[derive(Debug, Clone, Copy)]
struct CreateKeys;

impl MigrationName for CreateKeys {
    fn name(&self) -> &'static str {
        "m20260101_000001_create_keyward_keys"
    }
}

#[derive(DeriveIden)]
enum Keys {
    #[sea_orm(iden = "keyward_keys")]
    Table,
}

const KEYS_TABLE: &str = "keyward_keys";
const DISABLED_BY: &str = "disabled_by";

/// A timestamp column with microsecond precision on every backend.
fn timestamp(backend: DbBackend, column: impl IntoIden) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    match backend {
        // MySQL's TIMESTAMP ends in 2038 and both keep whole seconds unless told otherwise.
        DbBackend::MySql => def.custom(Alias::new("DATETIME(6)")),
        // PostgreSQL's timestamptz keeps microseconds; SQLite stores RFC 3339 text.
        DbBackend::Postgres | DbBackend::Sqlite => def.timestamp_with_time_zone(),
    };
    def
}

/// Creates the index `name` on `keyward_keys` unless the table has one of that name:
/// MySQL has no `CREATE INDEX IF NOT EXISTS`.
async fn create_index_once(
    manager: &SchemaManager<'_>,
    name: &str,
    mut index: IndexCreateStatement,
) -> Result<(), DbErr> {
    if manager.has_index(KEYS_TABLE, name).await? {
        return Ok(());
    }
    manager
        .create_index(
            index
                .if_not_exists()
                .name(name)
                .table(Keys::Table)
                .to_owned(),
        )
        .await
}

// The trait is declared with `&SchemaManager` and `async_trait` needs the same spelling.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateKeys {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let mut table = Table::create();
        table
            .table(Keys::Table)
            .if_not_exists()
            .col(ColumnDef::new(Column::Id).uuid().not_null().primary_key())
            .col(ColumnDef::new(Column::Digest).binary_len(32).not_null())
            .col(ColumnDef::new(Column::PreviousDigest).binary_len(32).null())
            .col(timestamp(backend, Column::PreviousValidUntil).null())
            .col(ColumnDef::new(Column::Name).string_len(255).not_null())
            .col(ColumnDef::new(Column::Kind).string_len(16).not_null())
            .col(ColumnDef::new(Column::Owner).string_len(255).null())
            .col(ColumnDef::new(Column::Scopes).text().not_null())
            .col(ColumnDef::new(Column::Hint).string_len(64).not_null())
            .col(timestamp(backend, Column::CreatedAt).not_null())
            .col(timestamp(backend, Column::UpdatedAt).not_null())
            .col(timestamp(backend, Column::ExpiresAt).null())
            .col(ColumnDef::new(Column::LifetimeMicros).big_integer().null())
            .col(timestamp(backend, Column::LastUsedAt).null())
            .col(ColumnDef::new(Column::LastUsedIp).string_len(64).null())
            .col(
                ColumnDef::new(Column::UsageCount)
                    .big_integer()
                    .not_null()
                    .default(0),
            )
            .col(ColumnDef::new(Column::Active).boolean().not_null())
            .col(timestamp(backend, Column::RevokedAt).null())
            .col(ColumnDef::new(Column::AllowedIps).text().not_null())
            .col(ColumnDef::new(Column::RateLimit).big_integer().null())
            .col(ColumnDef::new(Column::Metadata).text().not_null());
        if backend == DbBackend::MySql {
            // Names and owners compare byte for byte, as they do in memory, and hold any
            // Unicode text whatever the database's default character set is.
            table.character_set("utf8mb4").collate("utf8mb4_bin");
        }
        manager.create_table(table).await?;

        create_index_once(
            manager,
            "keyward_keys_digest_key",
            Index::create().col(Column::Digest).unique().to_owned(),
        )
        .await?;
        create_index_once(
            manager,
            "keyward_keys_previous_digest_idx",
            Index::create().col(Column::PreviousDigest).to_owned(),
        )
        .await?;
        // Listing one owner's keys, newest first, walks this index in order.
        create_index_once(
            manager,
            "keyward_keys_owner_id_idx",
            Index::create()
                .col(Column::Owner)
                .col(Column::Id)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Keys::Table).if_exists().to_owned())
            .await
    }
}

/// Adds `disabled_by`: who disabled a key, so that only an administrator enables a key an
/// administrator disabled.
#[derive(Debug, Clone, Copy)]
struct AddDisabledBy;

impl MigrationName for AddDisabledBy {
    fn name(&self) -> &'static str {
        "m20261123_000001_add_keyward_keys_disabled_by"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for AddDisabledBy {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.has_column(KEYS_TABLE, DISABLED_BY).await? {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Keys::Table)
                    .add_column(ColumnDef::new(Column::DisabledBy).string_len(255).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column(KEYS_TABLE, DISABLED_BY).await? {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Keys::Table)
                    .drop_column(Column::DisabledBy)
                    .to_owned(),
            )
            .await
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    /// Every step creates only what is missing, so a database migrated through keyward's
    /// migrator and through an application's (which both record the steps) stays fine.
    #[tokio::test]
    async fn every_step_runs_again_on_a_migrated_database() {
        let db = sea_orm::Database::connect("sqlite::memory:")
            .await
            .expect("connect");
        Migrator::up(&db, None).await.expect("migrate");
        let manager = SchemaManager::new(&db);
        for step in migrations() {
            step.up(&manager)
                .await
                .unwrap_or_else(|err| panic!("{} again: {err}", step.name()));
        }
    }
}
