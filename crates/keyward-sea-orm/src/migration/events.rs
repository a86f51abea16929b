//! Makes the change log the event log: `keyward_changes` gains the actor, the client address
//! and the detail of each change; `keyward_notices` claims expiry notices and
//! `keyward_consumers` keeps the durable readers of the log (webhook deliveries).

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use crate::entity::Column as KeyColumn;
use crate::entity::change::Column;
use crate::events::{Consumers, Notices};

const CHANGES_TABLE: &str = "keyward_changes";
const EXPIRES_AT_INDEX: &str = "keyward_keys_expires_at_idx";

#[derive(DeriveIden)]
enum Changes {
    #[sea_orm(iden = "keyward_changes")]
    Table,
}

/// Adds `actor`, `client_ip` and `detail` to `keyward_changes` (each only if missing).
#[derive(Debug, Clone, Copy)]
pub(super) struct AddEventColumns;

impl MigrationName for AddEventColumns {
    fn name(&self) -> &'static str {
        "m20261201_000001_add_keyward_changes_event_columns"
    }
}

// The trait is declared with `&SchemaManager` and `async_trait` needs the same spelling.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for AddEventColumns {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            (
                "actor",
                ColumnDef::new(Column::Actor)
                    .string_len(320)
                    .null()
                    .to_owned(),
            ),
            (
                "client_ip",
                ColumnDef::new(Column::ClientIp)
                    .string_len(64)
                    .null()
                    .to_owned(),
            ),
            (
                "detail",
                ColumnDef::new(Column::Detail).text().null().to_owned(),
            ),
        ];
        for (name, mut column) in columns {
            if manager.has_column(CHANGES_TABLE, name).await? {
                continue;
            }
            manager
                .alter_table(
                    Table::alter()
                        .table(Changes::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, column) in [
            ("detail", Column::Detail),
            ("client_ip", Column::ClientIp),
            ("actor", Column::Actor),
        ] {
            if manager.has_column(CHANGES_TABLE, name).await? {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Changes::Table)
                            .drop_column(column)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

/// Creates `keyward_notices` and `keyward_consumers` (if they do not exist yet).
#[derive(Debug, Clone, Copy)]
pub(super) struct CreateNoticesAndConsumers;

impl MigrationName for CreateNoticesAndConsumers {
    fn name(&self) -> &'static str {
        "m20261201_000002_create_keyward_notices_and_consumers"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateNoticesAndConsumers {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let mut notices = Table::create();
        notices
            .table(Notices::Table)
            .if_not_exists()
            // The type of `keyward_keys.id` on every backend.
            .col(ColumnDef::new(Notices::KeyId).uuid().not_null())
            .col(ColumnDef::new(Notices::Kind).string_len(32).not_null())
            .col(super::timestamp(backend, Notices::ExpiresAt).not_null())
            .primary_key(
                Index::create()
                    .col(Notices::KeyId)
                    .col(Notices::Kind)
                    .col(Notices::ExpiresAt),
            );
        let mut consumers = Table::create();
        consumers
            .table(Consumers::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(Consumers::Name)
                    .string_len(255)
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new(Consumers::Position).big_integer().null())
            .col(ColumnDef::new(Consumers::Holder).string_len(255).not_null())
            .col(super::timestamp(backend, Consumers::LeaseUntil).not_null());
        if backend == DbBackend::MySql {
            notices.character_set("utf8mb4").collate("utf8mb4_bin");
            consumers.character_set("utf8mb4").collate("utf8mb4_bin");
        }
        manager.create_table(notices).await?;
        manager.create_table(consumers).await?;
        // The expiry sweep reads keys by expiry, once a minute on every instance.
        super::create_index_once(
            manager,
            EXPIRES_AT_INDEX,
            Index::create().col(KeyColumn::ExpiresAt).to_owned(),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.has_index("keyward_keys", EXPIRES_AT_INDEX).await? {
            manager
                .drop_index(
                    Index::drop()
                        .name(EXPIRES_AT_INDEX)
                        .table(Alias::new("keyward_keys"))
                        .to_owned(),
                )
                .await?;
        }
        for table in [Notices::Table.into_iden(), Consumers::Table.into_iden()] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
