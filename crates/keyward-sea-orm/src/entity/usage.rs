//! The `keyward_key_usage` table: how often each key was used on each day (UTC).
//!
//! One row per key and day with uses; the store adds to `count` in the same transaction
//! that adds to the key's `usage_count`, and deletes a key's rows with the key. `key_id` has
//! the encoding of `keyward_keys.id`, `day` is a date (text `YYYY-MM-DD` on SQLite).

use sea_orm::entity::prelude::*;

/// The uses of one key on one day.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "keyward_key_usage")]
pub struct Model {
    /// The key's id (`keyward_keys.id`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_id: Uuid,
    /// The day, in UTC.
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: Date,
    /// Requests on that day.
    pub count: i64,
}

/// The table has no declared relations: rows of a deleted key are deleted by the store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
