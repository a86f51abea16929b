//! SeaORM key store for keyward: SQLite (the default), PostgreSQL and MySQL/MariaDB.
//!
//! [`SeaOrmStore`] implements keyward's `KeyStore` on a SeaORM [`DatabaseConnection`]. Keys
//! live in one table, `keyward_keys`, created by [`migrate`]; keyward records its migrations
//! in its own table, `keyward_migrations`, so they never mix with the application's. An
//! application that runs one migrator for everything adds [`migration::migrations`] to its
//! own list instead (see [`migration`]).
//!
//! # Quick start
//!
//! ```
//! use keyward_core::{KeyStore, ListQuery};
//! use keyward_sea_orm::SeaOrmStore;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! // e.g. "sqlite://keys.db?mode=rwc", "postgres://…" or "mysql://…"
//! let store = SeaOrmStore::connect("sqlite::memory:").await?;
//! // Constructors never touch the schema: migrate explicitly, once, at start-up or deploy.
//! keyward_sea_orm::migrate(store.connection()).await?;
//!
//! let page = store.list(&ListQuery::default()).await?;
//! assert!(page.keys.is_empty());
//! # Ok::<(), keyward_core::StoreError>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Backends
//!
//! Enable the one you use with a feature: `sqlite` (on by default), `postgres`, `mysql`
//! (MySQL and MariaDB). Every backend keeps timestamps to the microsecond, counts usage
//! exactly under concurrent flushes, and finds a key by digest with one indexed query.
//!
//! On a SQLite file, [`SeaOrmStore::connect`] opens a pool of 4 connections in WAL mode
//! (`synchronous=NORMAL`, a 5 s `busy_timeout`) unless your options set `max_connections`,
//! so key lookups never queue behind a write; SeaORM on its own would pool one connection.
//! In-memory databases keep SeaORM's single connection, since each connection to
//! `sqlite::memory:` is a database of its own.
//!
//! # The change log
//!
//! On every backend each change (create, update, revoke, delete, regenerate, refresh, and
//! `owner_changed`) appends a row to `keyward_changes` in the same transaction, with a
//! monotonic sequence number. `KeyStore::changes_since` reads the rows after a cursor with one
//! query on the primary key, whatever the number of keys or changes; keyward's handle polls it
//! (every 500 ms by default) and drops changed keys from its cache, so a revoke made by any
//! process, the `keyward` command line included, reaches every instance within a second on
//! SQLite, PostgreSQL and MySQL alike. Rows older than
//! [`change_retention`](SeaOrmStore::change_retention) (90 days by default: the log is also the audit trail) are pruned by
//! the store; a reader that fell behind the pruned rows is told to drop its whole cache.
//!
//! On PostgreSQL the store also has a change feed that makes this immediate: every change
//! sends `NOTIFY keyward_key_changes, '<key id>'` inside its transaction, and
//! `KeyStore::changes` listens on a dedicated connection, reconnecting promptly (retries
//! every 0.1 to 1 s, each within 1 s) and yielding `KeyChange::Resync` whenever notifications
//! may have been missed (first when it starts listening); keyward then reads the change log
//! at once instead of dropping its cache. Each stream holds one connection of its own, outside the
//! pool, named by [`SeaOrmStore::feed_application_name`] in `pg_stat_activity`.
//!
//! # Errors
//!
//! Operations fail with keyward's `StoreError`. Connection, pool and statement failures are
//! `Unavailable` (the middleware answers 503), duplicate ids or digests are `Conflict`,
//! unknown ids `NotFound`; the SeaORM error is kept as the source.

mod changes;
mod digest_query;
pub mod entity;
mod error;
mod events;
#[cfg(feature = "postgres")]
mod feed;
pub mod migration;
mod row;
mod settings;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod usage;
mod write;

pub use changes::DEFAULT_CHANGE_RETENTION;
pub use sea_orm::{ConnectOptions, DatabaseConnection};
pub use store::SeaOrmStore;

use keyward_core::StoreError;

/// The PostgreSQL notification channel of the change feed; each payload is a key id.
pub const CHANGE_CHANNEL: &str = "keyward_key_changes";

/// Starts the payload of a [`CHANGE_CHANNEL`] notification that says what a user holds
/// changed (`owner:<user id>`); other payloads are key ids.
pub const OWNER_PREFIX: &str = "owner:";
use sea_orm_migration::MigratorTrait;

/// Creates or updates keyward's tables. Safe to run on every start: applied migrations are
/// recorded in `keyward_migrations` and skipped.
///
/// # Example
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// keyward_sea_orm::migrate(&db).await?;
/// keyward_sea_orm::migrate(&db).await?; // nothing left to do
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`StoreErrorKind::Unavailable`](keyward_core::StoreErrorKind::Unavailable) when the
/// database cannot be reached or refuses a statement; the SeaORM error is the source.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), StoreError> {
    migration::Migrator::up(db, None)
        .await
        .map_err(error::db_error)
}
