//! The `keyward_changes` table: the change log every instance reads to drop the keys others
//! changed from its cache.
//!
//! One row per change, appended by the store in the transaction of the change itself. `seq`
//! is the backend's own auto-increment (`INTEGER PRIMARY KEY AUTOINCREMENT` on SQLite,
//! `bigserial` on PostgreSQL, `AUTO_INCREMENT` on MySQL); `key_id` has the encoding of
//! `keyward_keys.id` and is null for an owner change; `owner` is the key's owner or the user
//! of an owner change; `kind` is a [`ChangeKind`](keyward_core::ChangeKind) name; `actor`,
//! `client_ip` and `detail` make the row a key event (the audit trail). Rows older than the
//! store's retention are pruned by the store; the newest row is always kept.

use sea_orm::entity::prelude::*;

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "keyward_changes")]
pub struct Model {
    /// The position in the log, assigned by the database.
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// The changed key; null for an owner change.
    pub key_id: Option<Uuid>,
    /// The key's owner, or the user of an owner change.
    pub owner: Option<String>,
    /// What happened: a [`ChangeKind`](keyward_core::ChangeKind) name.
    pub kind: String,
    /// When the change was made.
    pub changed_at: DateTimeUtc,
    /// Who made it: `user:<id>`, `key:<id>`, `cli` or `system`; null on rows written before
    /// actors were recorded.
    pub actor: Option<String>,
    /// The address the change came from, in its textual form.
    pub client_ip: Option<String>,
    /// What changed, as JSON text (an object; never a secret).
    #[sea_orm(column_type = "Text")]
    pub detail: Option<String>,
}

/// The table has no declared relations: rows outlive the keys they name.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
