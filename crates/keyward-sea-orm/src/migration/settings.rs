//! Creates `keyward_settings`, where the application records its settings for the command
//! line.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use crate::settings::Settings;

/// Creates `keyward_settings` (if it does not exist yet): one row per named setting, its
/// value JSON text.
#[derive(Debug, Clone, Copy)]
pub(super) struct CreateSettings;

impl MigrationName for CreateSettings {
    fn name(&self) -> &'static str {
        "m20261125_000001_create_keyward_settings"
    }
}

// The trait is declared with `&SchemaManager` and `async_trait` needs the same spelling.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateSettings {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let mut table = Table::create();
        table
            .table(Settings::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(Settings::Name)
                    .string_len(64)
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new(Settings::Value).text().not_null())
            .col(super::timestamp(backend, Settings::UpdatedAt).not_null());
        if backend == DbBackend::MySql {
            // Scope descriptions are any Unicode text, whatever the database's default is.
            table.character_set("utf8mb4").collate("utf8mb4_bin");
        }
        manager.create_table(table).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Settings::Table).if_exists().to_owned())
            .await
    }
}
