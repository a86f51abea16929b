//! `keyward_settings`: what the application records about itself, one JSON value per name.

use keyward_core::{AppSettings, StoreError, StoreErrorKind};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DeriveIden};

use crate::error::db_error;
use crate::row::micros;

/// The table and its columns.
#[derive(DeriveIden)]
pub(crate) enum Settings {
    #[sea_orm(iden = "keyward_settings")]
    Table,
    /// What the row holds; the application's settings are under [`APP`].
    Name,
    /// JSON text.
    Value,
    /// When the value was written.
    UpdatedAt,
}

/// The row of [`AppSettings`].
const APP: &str = "app";

/// Writes `settings`, replacing the previous ones, in one statement.
pub(crate) async fn record(
    db: &DatabaseConnection,
    settings: &AppSettings,
) -> Result<(), StoreError> {
    let value = serde_json::to_string(settings).map_err(|err| {
        StoreError::invalid_input("the settings cannot be written as JSON").with_source(err)
    })?;
    let upsert = Query::insert()
        .into_table(Settings::Table)
        .columns([Settings::Name, Settings::Value, Settings::UpdatedAt])
        .values_panic([
            APP.into(),
            value.into(),
            micros(settings.recorded_at).into(),
        ])
        .on_conflict(
            OnConflict::column(Settings::Name)
                .update_columns([Settings::Value, Settings::UpdatedAt])
                .to_owned(),
        )
        .to_owned();
    db.execute(db.get_database_backend().build(&upsert))
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The settings last written; `None` before any.
pub(crate) async fn read(db: &DatabaseConnection) -> Result<Option<AppSettings>, StoreError> {
    let select = Query::select()
        .column(Settings::Value)
        .from(Settings::Table)
        .and_where(Expr::col(Settings::Name).eq(APP))
        .to_owned();
    let Some(row) = db
        .query_one(db.get_database_backend().build(&select))
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let value: String = row.try_get("", "value").map_err(db_error)?;
    serde_json::from_str(&value).map(Some).map_err(|err| {
        StoreError::new(
            StoreErrorKind::Unavailable,
            "the recorded application settings are unreadable",
        )
        .with_source(err)
    })
}
