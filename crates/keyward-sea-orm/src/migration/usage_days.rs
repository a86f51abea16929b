//! Creates `keyward_key_usage`, the daily use counts of each key.

use sea_orm_migration::prelude::*;

use crate::entity::usage::Column;

/// Creates `keyward_key_usage` (if it does not exist yet): one row per key and UTC day,
/// keyed by both.
#[derive(Debug, Clone, Copy)]
pub(super) struct CreateKeyUsage;

impl MigrationName for CreateKeyUsage {
    fn name(&self) -> &'static str {
        "m20261124_000001_create_keyward_key_usage"
    }
}

#[derive(DeriveIden)]
enum KeyUsage {
    #[sea_orm(iden = "keyward_key_usage")]
    Table,
}

// The trait is declared with `&SchemaManager` and `async_trait` needs the same spelling.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateKeyUsage {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(KeyUsage::Table)
                    .if_not_exists()
                    // The type of `keyward_keys.id` on every backend.
                    .col(ColumnDef::new(Column::KeyId).uuid().not_null())
                    .col(ColumnDef::new(Column::Day).date().not_null())
                    .col(ColumnDef::new(Column::Count).big_integer().not_null())
                    .primary_key(Index::create().col(Column::KeyId).col(Column::Day))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(KeyUsage::Table).if_exists().to_owned())
            .await
    }
}
