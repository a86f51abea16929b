//! Schema migrations, tracked in their own table (`keyward_migrations`).
//!
//! The host application's SeaORM migrations live in `seaql_migrations`; keyward's history is
//! kept apart so that neither migrator ever sees, applies or rolls back the other's steps.
//! Run them with [`migrate`](crate::migrate), or through [`Migrator`] with SeaORM's
//! `MigratorTrait` (for example to roll back in a test).

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DynIden;

use crate::entity::Column;

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
        vec![Box::new(CreateKeys), Box::new(AddDisabledBy)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new(MIGRATION_TABLE).into_iden()
    }
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

/// A timestamp column with microsecond precision on every backend.
fn timestamp(backend: DbBackend, column: Column) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    match backend {
        // MySQL's TIMESTAMP ends in 2038 and both keep whole seconds unless told otherwise.
        DbBackend::MySql => def.custom(Alias::new("DATETIME(6)")),
        // PostgreSQL's timestamptz keeps microseconds; SQLite stores RFC 3339 text.
        DbBackend::Postgres | DbBackend::Sqlite => def.timestamp_with_time_zone(),
    };
    def
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

        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("keyward_keys_digest_key")
                    .table(Keys::Table)
                    .col(Column::Digest)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("keyward_keys_previous_digest_idx")
                    .table(Keys::Table)
                    .col(Column::PreviousDigest)
                    .to_owned(),
            )
            .await?;
        // Listing one owner's keys, newest first, walks this index in order.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("keyward_keys_owner_id_idx")
                    .table(Keys::Table)
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
