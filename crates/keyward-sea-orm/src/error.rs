//! How database errors become [`StoreError`]s.

use keyward_core::{KeyId, StoreError, StoreErrorKind};
use sea_orm::{DbErr, SqlErr};

/// Classifies a SeaORM error, keeping it as the source.
///
/// Only what is certainly the caller's business becomes `NotFound` or `Conflict`; everything
/// else (no connection, pool exhausted, a failing statement) is `Unavailable`, so that the
/// middleware answers 503 and never turns a broken store into "no such key".
pub(crate) fn db_error(err: DbErr) -> StoreError {
    if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
        return StoreError::conflict("a key with this id or digest exists").with_source(err);
    }
    match err {
        DbErr::RecordNotFound(_) => {
            StoreError::new(StoreErrorKind::NotFound, "no such key").with_source(err)
        }
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => StoreError::unavailable(err),
        _ => StoreError::new(StoreErrorKind::Unavailable, "the key store failed").with_source(err),
    }
}

/// A stored row that cannot be turned back into a key: an error, never a panic.
pub(crate) fn corrupt(
    id: KeyId,
    column: &str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        format!("the stored key {id} has an unreadable {column} column"),
    )
    .with_source(source)
}
