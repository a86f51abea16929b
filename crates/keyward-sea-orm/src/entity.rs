//! The `keyward_keys` table as a SeaORM entity.
//!
//! The store reads and writes keys through this entity; it is public so that applications can
//! join their own tables against it or inspect keys with SeaORM. Change keys through
//! [`SeaOrmStore`](crate::SeaOrmStore) rather than by writing rows directly: the store keeps
//! the usage counters exact and sends change notifications.
//!
//! Column encodings, identical on every backend:
//!
//! * `id`: the UUID v7 (`uuid` on PostgreSQL, `binary(16)` on MySQL, a 16-byte blob on SQLite),
//!   so ordering by id is ordering by creation time.
//! * `digest`, `previous_digest`: the 32 digest bytes.
//! * timestamps: UTC with microsecond precision.
//! * `lifetime_micros`: the refresh duration in microseconds.
//! * `scopes`, `allowed_ips`: JSON arrays of strings; `metadata`: JSON; all as text, so the
//!   stored JSON is exactly what the application gave.
//! * `last_used_ip`: the address in its textual form.
//!
//! The daily use counts of each key are in [`usage`] (`keyward_key_usage`), the change log in
//! [`change`] (`keyward_changes`).

use sea_orm::entity::prelude::*;

pub mod change;
pub mod usage;

/// One stored key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "keyward_keys")]
pub struct Model {
    /// Public handle, a UUID v7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Digest of the current token (32 bytes), unique.
    #[sea_orm(column_type = "Binary(32)", unique)]
    pub digest: Vec<u8>,
    /// Digest of the previous token during a rolling regenerate.
    #[sea_orm(column_type = "Binary(32)", nullable)]
    pub previous_digest: Option<Vec<u8>>,
    /// The previous token is accepted strictly before this instant.
    pub previous_valid_until: Option<DateTimeUtc>,
    /// Name people recognise.
    pub name: String,
    /// `personal` or `service`.
    pub kind: String,
    /// The application's user id; null for service keys.
    pub owner: Option<String>,
    /// JSON array of scope strings.
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    /// `{prefix}_…{last 4}` of the current token.
    pub hint: String,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Last change through a management operation.
    pub updated_at: DateTimeUtc,
    /// Expiry; null = never.
    pub expires_at: Option<DateTimeUtc>,
    /// Refresh duration in microseconds; null for never-expiring keys.
    pub lifetime_micros: Option<i64>,
    /// Last recorded use.
    pub last_used_at: Option<DateTimeUtc>,
    /// Client address of the last recorded use.
    pub last_used_ip: Option<String>,
    /// Authenticated requests so far.
    pub usage_count: i64,
    /// `false` = disabled.
    pub active: bool,
    /// Who disabled the key, while it is disabled.
    pub disabled_by: Option<String>,
    /// Revocation time.
    pub revoked_at: Option<DateTimeUtc>,
    /// JSON array of allowed networks (CIDR strings); empty = any.
    #[sea_orm(column_type = "Text")]
    pub allowed_ips: String,
    /// Requests per minute, if limited.
    pub rate_limit: Option<i64>,
    /// The application's JSON.
    #[sea_orm(column_type = "Text")]
    pub metadata: String,
}

/// The table has no relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
