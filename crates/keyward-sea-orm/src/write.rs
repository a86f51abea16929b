//! The statements of a change: locking the key's row, writing the columns that changed, and
//! PostgreSQL's notification.

use keyward_core::{KeyId, StoreError};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    DbBackend, EntityTrait, Iterable, ModelTrait, QueryFilter, QuerySelect, Statement,
};

use crate::CHANGE_CHANNEL;
use crate::entity::{ActiveModel, Column, Entity, Model};
use crate::error::db_error;

/// Reads a row so that no other writer can change it before this transaction ends.
pub(crate) async fn lock_row(
    txn: &DatabaseTransaction,
    id: KeyId,
) -> Result<Option<Model>, StoreError> {
    let uuid = *id.as_uuid();
    let find = Entity::find_by_id(uuid);
    let find = if txn.get_database_backend() == DbBackend::Sqlite {
        // SQLite has no row locks. Writing first takes the database's write lock (waiting for
        // other writers as configured), so the row cannot change between the read and the
        // write-back, and the transaction never fails to upgrade from reader to writer.
        Entity::update_many()
            .col_expr(Column::Id, Expr::col(Column::Id).into())
            .filter(Column::Id.eq(uuid))
            .exec(txn)
            .await
            .map_err(db_error)?;
        find
    } else {
        find.lock_exclusive()
    };
    find.one(txn).await.map_err(db_error)
}

/// Columns only the usage recorder writes.
fn is_usage_column(column: Column) -> bool {
    matches!(
        column,
        Column::UsageCount | Column::LastUsedAt | Column::LastUsedIp
    )
}

/// Writes the columns in which `after` differs from `before`; returns whether there were any.
pub(crate) async fn write_changes(
    txn: &DatabaseTransaction,
    before: &Model,
    after: &Model,
) -> Result<bool, StoreError> {
    let mut changes = ActiveModel::new();
    let mut changed = false;
    for column in Column::iter().filter(|c| !matches!(c, Column::Id) && !is_usage_column(*c)) {
        let value = after.get(column);
        if before.get(column) != value {
            changes.set(column, value);
            changed = true;
        }
    }
    if changed {
        Entity::update_many()
            .set(changes)
            .filter(Column::Id.eq(before.id))
            .exec(txn)
            .await
            .map_err(db_error)?;
    }
    Ok(changed)
}

/// On PostgreSQL, queues `NOTIFY keyward_key_changes, '<id>'`; it is delivered when (and only
/// if) the transaction commits.
pub(crate) async fn notify(txn: &DatabaseTransaction, id: KeyId) -> Result<(), StoreError> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANGE_CHANNEL.into(), id.to_string().into()],
        ))
        .await
        .map_err(db_error)?;
    }
    Ok(())
}
