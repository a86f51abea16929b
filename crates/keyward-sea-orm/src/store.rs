//! [`SeaOrmStore`]: the [`KeyStore`] on a SeaORM connection.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use keyward_core::{
    AppSettings, ChangeBatch, ChangeCursor, ChangeKind, ChangeRecord, ChangeStream, ConsumerLease,
    DailyUsage, EventContext, EventPage, EventQuery, KeyId, KeyRecord, KeyStore, KeyUpdate,
    ListQuery, Page, RuleError, SecretRotation, StoreError, TokenDigest, UsageUpdate,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
    TransactionTrait,
};

use crate::CHANGE_CHANNEL;
#[cfg(feature = "postgres")]
use crate::OWNER_PREFIX;
use crate::changes::EventRow;
use crate::digest_query::DigestQuery;
use crate::entity::{ActiveModel, Column, Entity};
use crate::error::db_error;
use crate::row::{from_model, to_model};
use crate::write::{lock_row, notify, write_changes};

/// A [`KeyStore`] on SQLite, PostgreSQL or MySQL/MariaDB through SeaORM.
///
/// Cloning is cheap: clones share the connection pool. The schema is not created by the
/// constructors; run [`migrate`](crate::migrate) once (at deployment or start-up) first.
///
/// Every change is recorded in the change log (`keyward_changes`, read with
/// [`KeyStore::changes_since`]), which other instances poll to drop cached keys within a
/// second, on every backend. On PostgreSQL every change is also announced with `NOTIFY` and
/// [`KeyStore::changes`] returns a feed that makes it immediate.
///
/// On a SQLite file, [`connect`](Self::connect) opens the database in WAL mode with several
/// connections, so that reads never wait for a writer and writers queue briefly instead of
/// failing with "database is locked". To choose the pool yourself, set `max_connections`:
///
/// ```
/// use keyward_sea_orm::SeaOrmStore;
/// use sea_orm::ConnectOptions;
/// use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
///
/// async fn open() -> Result<SeaOrmStore, keyward_core::StoreError> {
///     let mut options = ConnectOptions::new("sqlite://keys.db?mode=rwc");
///     options.max_connections(16).map_sqlx_sqlite_opts(|sqlite| {
///         sqlite
///             .journal_mode(SqliteJournalMode::Wal)
///             .synchronous(SqliteSynchronous::Normal)
///     });
///     SeaOrmStore::connect_and_migrate(options).await
/// }
/// ```
///
/// # Example
///
/// ```
/// use chrono::Utc;
/// use keyward_core::{EventContext, KeyStore, NewKey, ScopeCatalog, TokenFormat, TokenHasher};
/// use keyward_sea_orm::SeaOrmStore;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let store = SeaOrmStore::connect("sqlite::memory:").await?;
/// keyward_sea_orm::migrate(store.connection()).await?;
///
/// let catalog = ScopeCatalog::builder().scope("books:read", "Read books").build()?;
/// let hasher = TokenHasher::sha256();
/// let issued = NewKey::personal("Backup Script", "alice")
///     .scopes(["books:read"])
///     .issue(&catalog, &TokenFormat::new("books")?, &hasher, Utc::now())?;
/// store.insert(issued.record.clone(), &EventContext::system()).await?;
///
/// let found = store.find_by_digest(&hasher.digest(&issued.token), Utc::now()).await?;
/// assert_eq!(found.map(|key| key.id), Some(issued.record.id));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SeaOrmStore {
    db: DatabaseConnection,
    by_digest: DigestQuery,
    change_log: std::sync::Arc<crate::changes::ChangeLog>,
    #[cfg(feature = "postgres")]
    feed: Option<std::sync::Arc<crate::feed::PgFeed>>,
}

impl SeaOrmStore {
    /// A store on an open connection. Does not touch the schema; see [`migrate`](crate::migrate).
    ///
    /// # Example
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// keyward_sea_orm::migrate(&db).await?;
    /// let store = keyward_sea_orm::SeaOrmStore::new(db);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn new(db: DatabaseConnection) -> Self {
        #[cfg(feature = "postgres")]
        let feed = match &db {
            DatabaseConnection::SqlxPostgresPoolConnection(_) => Some(crate::feed::PgFeed::new(
                &db.get_postgres_connection_pool().connect_options(),
            )),
            _ => None,
        };
        Self {
            by_digest: DigestQuery::for_connection(&db),
            db,
            change_log: std::sync::Arc::new(crate::changes::ChangeLog::new(
                crate::changes::DEFAULT_CHANGE_RETENTION,
            )),
            #[cfg(feature = "postgres")]
            feed,
        }
    }

    /// Connects to `options` (a URL such as `sqlite://keys.db?mode=rwc`,
    /// `postgres://…` or `mysql://…`, or SeaORM [`ConnectOptions`]).
    ///
    /// Only connects: call [`migrate`](crate::migrate) with [`connection`](Self::connection)
    /// before the first use, or use [`connect_and_migrate`](Self::connect_and_migrate).
    ///
    /// # SQLite
    ///
    /// SeaORM alone pools a single SQLite connection, so every read waits for every write. For
    /// a database file that is opened for writing and whose options leave `max_connections`
    /// unset, `connect` instead opens a pool of 4 connections, each with
    /// `journal_mode=WAL` (readers go on while one writer writes; the setting stays with the
    /// file), `synchronous=NORMAL` (the usual pairing with WAL: a power cut may undo the last
    /// commits but never corrupts the file; a crashed process loses nothing) and a 5 s
    /// `busy_timeout` (a writer waits for the other writer instead of failing), and without
    /// sqlx's ping of a connection each time the pool hands it out (`test_before_acquire`:
    /// a connection to a file in the same process cannot have hung up). Options that
    /// set `max_connections` are used exactly as given, including any
    /// [`map_sqlx_sqlite_opts`](ConnectOptions::map_sqlx_sqlite_opts); so are in-memory
    /// databases (`sqlite::memory:`, `mode=memory`), where each connection would open a
    /// database of its own, and read-only or immutable files.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward_sea_orm::SeaOrmStore;
    /// use sea_orm::{ConnectionTrait, DbBackend, Statement};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("keyward-doc-{}", uuid::Uuid::now_v7()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("keys.db");
    /// let store = SeaOrmStore::connect(format!("sqlite://{}?mode=rwc", path.display())).await?;
    ///
    /// let pool = store.connection().get_sqlite_connection_pool();
    /// assert_eq!(pool.options().get_max_connections(), 4);
    /// assert!(!pool.options().get_test_before_acquire());
    /// let mode = store
    ///     .connection()
    ///     .query_one(Statement::from_string(DbBackend::Sqlite, "PRAGMA journal_mode"))
    ///     .await?
    ///     .expect("a row")
    ///     .try_get_by_index::<String>(0)?;
    /// assert_eq!(mode, "wal");
    /// # store.connection().clone().close().await?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::Unavailable`](keyward_core::StoreErrorKind::Unavailable) when the
    /// database cannot be reached or the URL is not understood.
    pub async fn connect(options: impl Into<ConnectOptions>) -> Result<Self, StoreError> {
        let options = options.into();
        #[cfg(feature = "sqlite")]
        let options = crate::sqlite::sqlite_file_defaults(options);
        let db = Database::connect(options).await.map_err(db_error)?;
        Ok(Self::new(db))
    }

    /// Connects to `options` and brings the schema up to date.
    ///
    /// # Example
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// use keyward_core::{KeyStore, ListQuery};
    ///
    /// let store = keyward_sea_orm::SeaOrmStore::connect_and_migrate("sqlite::memory:").await?;
    /// assert!(store.list(&ListQuery::default()).await?.keys.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect) and [`migrate`](crate::migrate).
    pub async fn connect_and_migrate(
        options: impl Into<ConnectOptions>,
    ) -> Result<Self, StoreError> {
        let store = Self::connect(options).await?;
        crate::migrate(store.connection()).await?;
        Ok(store)
    }

    /// The underlying connection pool, e.g. for [`migrate`](crate::migrate).
    #[must_use]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// How long rows of the change log (`keyward_changes`) are kept; default
    /// [`DEFAULT_CHANGE_RETENTION`](crate::DEFAULT_CHANGE_RETENTION), 90 days: the rows are
    /// also the key events of the audit trail and what webhooks deliver. The store
    /// deletes older rows itself, at most once a minute, when the log is read; the newest row
    /// is always kept. An instance that could not read the log for longer than this drops
    /// its whole cache when it can again.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward_sea_orm::SeaOrmStore;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let store = SeaOrmStore::connect_and_migrate("sqlite::memory:")
    ///     .await?
    ///     .change_retention(Duration::from_secs(6 * 60 * 60));
    /// assert_eq!(store.change_retention_period(), Duration::from_secs(6 * 60 * 60));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn change_retention(mut self, retention: std::time::Duration) -> Self {
        self.change_log = std::sync::Arc::new(crate::changes::ChangeLog::new(retention));
        self
    }

    /// How long rows of the change log are kept (see
    /// [`change_retention`](Self::change_retention)).
    #[must_use]
    pub fn change_retention_period(&self) -> std::time::Duration {
        self.change_log.retention()
    }

    /// Deletes the change-log rows older than the retention now, keeping the newest row;
    /// returns how many were deleted. The store also does this by itself, at most once a
    /// minute, when the log is read.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::Unavailable`](keyward_core::StoreErrorKind::Unavailable) when the
    /// database fails.
    pub async fn prune_changes(&self) -> Result<u64, StoreError> {
        crate::changes::prune(&self.db, self.change_log.retention()).await
    }

    /// The `application_name` of the change feed's listening connections on PostgreSQL, so
    /// they can be told apart in `pg_stat_activity`; `None` on other backends.
    #[must_use]
    pub fn feed_application_name(&self) -> Option<&str> {
        #[cfg(feature = "postgres")]
        if let Some(feed) = &self.feed {
            return Some(feed.application_name());
        }
        None
    }

    async fn begin(&self) -> Result<DatabaseTransaction, StoreError> {
        self.db.begin().await.map_err(db_error)
    }

    /// Reads the key under a write lock, applies `change`, writes back only the columns that
    /// changed, notifies, and returns the record as stored.
    ///
    /// Usage columns are never written here, so a usage flush running at the same time is
    /// neither lost nor overwritten.
    async fn modify(
        &self,
        id: KeyId,
        kind: ChangeKind,
        context: &EventContext,
        change: impl FnOnce(&mut KeyRecord) -> Result<(), RuleError> + Send,
    ) -> Result<KeyRecord, StoreError> {
        let txn = self.begin().await?;
        let before = lock_row(&txn, id)
            .await?
            .ok_or_else(|| StoreError::not_found(id))?;
        let old = from_model(before.clone())?;
        let mut record = old.clone();
        change(&mut record)?;
        let after = to_model(&record)?;
        let changed = write_changes(&txn, &before, &after).await?;
        if changed {
            notify(&txn, id).await?;
            let event = EventRow::change(kind, Some(&old), &record, context);
            crate::changes::append(&txn, event).await?;
        }
        txn.commit().await.map_err(db_error)?;
        if changed {
            self.announce(id);
        }
        from_model(after)
    }

    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_self))]
    fn announce(&self, id: KeyId) {
        #[cfg(feature = "postgres")]
        if let Some(feed) = &self.feed {
            feed.announce(id);
        }
        #[cfg(not(feature = "postgres"))]
        let _ = id;
    }
}

impl KeyStore for SeaOrmStore {
    async fn insert(&self, record: KeyRecord, context: &EventContext) -> Result<(), StoreError> {
        let model = to_model(&record)?;
        let txn = self.begin().await?;
        Entity::insert(ActiveModel::from(model).reset_all())
            .exec_without_returning(&txn)
            .await
            .map_err(db_error)?;
        let event = EventRow::change(ChangeKind::Created, None, &record, context);
        crate::changes::append(&txn, event).await?;
        txn.commit().await.map_err(db_error)
    }

    async fn find_by_digest(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let rows = Entity::find()
            .from_raw_sql(self.by_digest.statement(digest, now))
            .all(&self.db)
            .await
            .map_err(db_error)?;
        for row in rows {
            let record = from_model(row)?;
            if record.matches(digest, now) {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    async fn get(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Entity::find_by_id(*id.as_uuid())
            .one(&self.db)
            .await
            .map_err(db_error)?
            .map(from_model)
            .transpose()
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.effective_limit();
        let mut select = Entity::find()
            .order_by_desc(Column::Id)
            .limit(u64::try_from(limit + 1).unwrap_or(u64::MAX));
        if let Some(owner) = &query.owner {
            select = select.filter(Column::Owner.eq(owner.as_str()));
        }
        if !query.include_revoked {
            select = select.filter(Column::RevokedAt.is_null());
        }
        if let Some(cursor) = query.cursor {
            select = select.filter(Column::Id.lt(*cursor.key_id().as_uuid()));
        }
        let keys = select
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(from_model)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(keys, limit))
    }

    async fn update(
        &self,
        id: KeyId,
        update: &KeyUpdate,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> Result<KeyRecord, StoreError> {
        self.modify(id, ChangeKind::Updated, context, |record| {
            record.apply(update, now)
        })
        .await
    }

    async fn revoke(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> Result<KeyRecord, StoreError> {
        self.modify(id, ChangeKind::Revoked, context, |record| {
            record.revoke(now);
            Ok(())
        })
        .await
    }

    async fn delete(&self, id: KeyId, context: &EventContext) -> Result<(), StoreError> {
        let txn = self.begin().await?;
        let row = lock_row(&txn, id)
            .await?
            .ok_or_else(|| StoreError::not_found(id))?;
        let record = from_model(row)?;
        crate::usage::delete(&txn, id).await?;
        crate::events::delete_notices(&txn, id).await?;
        Entity::delete_by_id(*id.as_uuid())
            .exec(&txn)
            .await
            .map_err(db_error)?;
        let event = EventRow::change(ChangeKind::Deleted, None, &record, context);
        crate::changes::append(&txn, event).await?;
        notify(&txn, id).await?;
        txn.commit().await.map_err(db_error)?;
        self.announce(id);
        Ok(())
    }

    async fn replace_secret(
        &self,
        id: KeyId,
        rotation: &SecretRotation,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> Result<KeyRecord, StoreError> {
        self.modify(id, ChangeKind::Regenerated, context, |record| {
            record.rotate(rotation, now)
        })
        .await
    }

    async fn refresh(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
        context: &EventContext,
    ) -> Result<KeyRecord, StoreError> {
        self.modify(id, ChangeKind::Refreshed, context, |record| {
            record.refresh(now)
        })
        .await
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let txn = self.begin().await?;
        crate::usage::record(&txn, batch).await?;
        txn.commit().await.map_err(db_error)
    }

    async fn usage_days(&self, id: KeyId, since: NaiveDate) -> Result<Vec<DailyUsage>, StoreError> {
        crate::usage::days(&self.db, id, since).await
    }

    fn changes(&self) -> Option<ChangeStream> {
        #[cfg(feature = "postgres")]
        if let Some(feed) = &self.feed {
            return feed.subscribe();
        }
        None
    }

    async fn changes_since(
        &self,
        after: Option<ChangeCursor>,
        limit: usize,
    ) -> Result<Option<ChangeBatch>, StoreError> {
        crate::changes::read(&self.db, &self.change_log, after, limit)
            .await
            .map(Some)
    }

    async fn owner_changed(&self, owner: &str) -> Result<(), StoreError> {
        let txn = self.begin().await?;
        crate::changes::append(&txn, EventRow::owner(owner)).await?;
        #[cfg(feature = "postgres")]
        if self.feed.is_some() {
            txn.execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [
                    CHANGE_CHANNEL.into(),
                    format!("{OWNER_PREFIX}{owner}").into(),
                ],
            ))
            .await
            .map_err(db_error)?;
        }
        txn.commit().await.map_err(db_error)?;
        #[cfg(feature = "postgres")]
        if let Some(feed) = &self.feed {
            feed.announce_owner(owner);
        }
        Ok(())
    }

    async fn record_settings(&self, settings: &AppSettings) -> Result<(), StoreError> {
        crate::settings::record(&self.db, settings).await
    }

    async fn settings(&self) -> Result<Option<AppSettings>, StoreError> {
        crate::settings::read(&self.db).await
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        crate::events::list(&self.db, query).await
    }

    async fn expiry_notices(
        &self,
        now: DateTime<Utc>,
        window: TimeDelta,
        context: &EventContext,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let mut recorded = Vec::new();
        for (record, kind) in crate::events::notices_due(&self.db, now, window).await? {
            let txn = self.begin().await?;
            if let Some(event) = crate::events::record_notice(txn, &record, kind, context).await? {
                recorded.push(event);
            }
        }
        Ok(recorded)
    }

    async fn record_event(
        &self,
        id: KeyId,
        kind: ChangeKind,
        detail: &serde_json::Value,
        context: &EventContext,
    ) -> Result<bool, StoreError> {
        let Some(record) = self.get(id).await? else {
            return Ok(false);
        };
        let txn = self.begin().await?;
        crate::changes::append(&txn, EventRow::key(&record, kind, context, detail)).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn lease_consumer(
        &self,
        lease: &ConsumerLease,
        now: DateTime<Utc>,
    ) -> Result<Option<Option<u64>>, StoreError> {
        let txn = self.begin().await?;
        let leased = crate::events::lease(&txn, lease, now).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(leased)
    }

    async fn save_consumer(
        &self,
        lease: &ConsumerLease,
        position: u64,
    ) -> Result<bool, StoreError> {
        crate::events::save(&self.db, lease, position).await
    }
}
