//! Creates `keyward_changes`, the change log.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use crate::entity::change::Column;

/// The name of the index that pruning by age uses.
const CHANGED_AT_INDEX: &str = "keyward_changes_changed_at_idx";
const CHANGES_TABLE: &str = "keyward_changes";

/// Creates `keyward_changes` (if it does not exist yet): a monotonic `seq` primary key (the
/// backend's auto-increment), then the key, its owner, the kind of change and its time, and
/// an index on the time for pruning.
#[derive(Debug, Clone, Copy)]
pub(super) struct CreateChanges;

impl MigrationName for CreateChanges {
    fn name(&self) -> &'static str {
        "m20261126_000001_create_keyward_changes"
    }
}

#[derive(DeriveIden)]
enum Changes {
    #[sea_orm(iden = "keyward_changes")]
    Table,
}

// The trait is declared with `&SchemaManager` and `async_trait` needs the same spelling.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateChanges {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let mut table = Table::create();
        table
            .table(Changes::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(Column::Seq)
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            // The type of `keyward_keys.id` on every backend.
            .col(ColumnDef::new(Column::KeyId).uuid().null())
            .col(ColumnDef::new(Column::Owner).string_len(255).null())
            .col(ColumnDef::new(Column::Kind).string_len(32).not_null())
            .col(super::timestamp(backend, Column::ChangedAt).not_null());
        if backend == DbBackend::MySql {
            // Owners compare byte for byte and hold any Unicode text, as in `keyward_keys`.
            table.character_set("utf8mb4").collate("utf8mb4_bin");
        }
        manager.create_table(table).await?;
        // MySQL has no `CREATE INDEX IF NOT EXISTS`.
        if manager.has_index(CHANGES_TABLE, CHANGED_AT_INDEX).await? {
            return Ok(());
        }
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(CHANGED_AT_INDEX)
                    .table(Changes::Table)
                    .col(Column::ChangedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Changes::Table).if_exists().to_owned())
            .await
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};
    use sea_orm_migration::MigratorTrait;

    use super::*;

    #[tokio::test]
    async fn sequence_numbers_are_never_reused() {
        let db = sea_orm::Database::connect("sqlite::memory:")
            .await
            .expect("connect");
        crate::migration::Migrator::up(&db, None)
            .await
            .expect("migrate");
        let sql = db
            .query_one(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT sql FROM sqlite_master WHERE name = 'keyward_changes'",
            ))
            .await
            .expect("schema")
            .expect("a row")
            .try_get_by_index::<String>(0)
            .expect("text");
        assert!(
            sql.to_ascii_lowercase().contains("autoincrement"),
            "sequence numbers are never reused: {sql}"
        );
    }
}
