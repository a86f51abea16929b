//! The change log in `keyward_changes`: appending a row inside each change's transaction,
//! reading it with one indexed query, and pruning old rows.
//!
//! # Reading without missing a row
//!
//! Sequence numbers are taken when a row is inserted, but transactions commit in their own
//! order: on PostgreSQL and MySQL, row 8 may become visible after row 9 was read. A reader that
//! only asked for `seq > 9` would never see 8. So the reader's [`ChangeCursor`] keeps every
//! number below its highest that it has not seen (a gap), with the time it noticed it, and
//! each read asks for them too:
//!
//! ```sql
//! WHERE seq >= <lowest gap> AND (seq > <highest> OR seq IN (<gaps>)) ORDER BY seq LIMIT n
//! ```
//!
//! (just `WHERE seq > <highest>` without gaps: a range on the primary key either way). A gap
//! is given up after [`CHANGE_GAP_WINDOW`](keyward_core::CHANGE_GAP_WINDOW), since a number
//! taken by a transaction that rolled back never appears. The row is appended as the last
//! statement before the commit, so the time between taking a number and committing it is the
//! commit itself; only a commit that takes longer than the window is missed by the poll (the
//! instance that made it has dropped the key already, PostgreSQL's `NOTIFY` still reports it,
//! and the cache TTL bounds the rest). On SQLite writers take turns, so there are no gaps.
//!
//! # Pruning
//!
//! Rows older than the store's retention (90 days by default) are deleted by the store
//! itself, at most once a minute, after a read. Pruning deletes every row below a boundary
//! (the oldest row young enough to keep, or else the newest row, which is always kept), so
//! what remains is every row from the oldest kept one on. A reader whose cursor is below the
//! row before that may have missed pruned rows: its batch says
//! [`truncated`](ChangeBatch::truncated) and it drops its whole cache.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use keyward_core::{
    Actor, ChangeBatch, ChangeCursor, ChangeKind, ChangeRecord, EventContext, KeyId, KeyRecord,
    StoreError, StoreErrorKind, effective_change_limit, event_detail,
};
use sea_orm::sea_query::{Alias, Expr, Func, Query, SelectStatement, SimpleExpr};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryResult,
};

use crate::entity::change::{ActiveModel, Column, Entity};
use crate::error::db_error;
use crate::row::micros;

/// How long change rows are kept unless the store is told otherwise.
/// Ninety days: the log is also the audit trail (`GET /events`) and the source of webhooks,
/// which retry for a day.
pub const DEFAULT_CHANGE_RETENTION: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// How often at most a store prunes old rows.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The change log settings and pruning state shared by the clones of one store.
#[derive(Debug)]
pub(crate) struct ChangeLog {
    retention: Duration,
    last_prune: Mutex<Option<Instant>>,
}

impl ChangeLog {
    pub(crate) fn new(retention: Duration) -> Self {
        Self {
            retention,
            last_prune: Mutex::new(None),
        }
    }

    pub(crate) fn retention(&self) -> Duration {
        self.retention
    }

    /// Whether a prune is due now; if so, counts it as done, so that concurrent readers do
    /// not all prune.
    fn prune_due(&self) -> bool {
        let mut last = self
            .last_prune
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// One row to append: a key event, or an owner change.
#[derive(Debug)]
pub(crate) struct EventRow {
    key_id: Option<KeyId>,
    owner: Option<String>,
    kind: ChangeKind,
    actor: Option<String>,
    client_ip: Option<String>,
    detail: Option<String>,
}

impl EventRow {
    /// The event of a change of `kind` to `after` (from `before`) by `context`; the kind and
    /// detail are those [`event_detail`] gives.
    pub(crate) fn change(
        kind: ChangeKind,
        before: Option<&KeyRecord>,
        after: &KeyRecord,
        context: &EventContext,
    ) -> Self {
        let (kind, detail) = event_detail(kind, before, after, context);
        Self::key(after, kind, context, &detail)
    }

    /// An event of `kind` about `record` by `context`, with `detail`.
    pub(crate) fn key(
        record: &KeyRecord,
        kind: ChangeKind,
        context: &EventContext,
        detail: &serde_json::Value,
    ) -> Self {
        Self {
            key_id: Some(record.id),
            owner: record.owner.clone(),
            kind,
            actor: Some(context.actor.to_string()),
            client_ip: context.client_ip.map(|ip| ip.to_string()),
            detail: (!detail.is_null()).then(|| detail.to_string()),
        }
    }

    /// A change to what `owner` holds.
    pub(crate) fn owner(owner: &str) -> Self {
        Self {
            key_id: None,
            owner: Some(owner.to_owned()),
            kind: ChangeKind::Owner,
            actor: None,
            client_ip: None,
            detail: None,
        }
    }
}

/// Appends one row in `txn`; the last statement before the commit.
pub(crate) async fn append(txn: &DatabaseTransaction, row: EventRow) -> Result<(), StoreError> {
    Entity::insert(active(row))
        .exec_without_returning(txn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Appends one row in `txn` and gives its sequence number.
pub(crate) async fn append_returning(
    txn: &DatabaseTransaction,
    row: EventRow,
) -> Result<u64, StoreError> {
    let inserted = Entity::insert(active(row))
        .exec(txn)
        .await
        .map_err(db_error)?;
    u64::try_from(inserted.last_insert_id).map_err(|e| {
        StoreError::new(StoreErrorKind::Unavailable, "a negative sequence number").with_source(e)
    })
}

fn active(row: EventRow) -> ActiveModel {
    ActiveModel {
        seq: ActiveValue::NotSet,
        key_id: ActiveValue::Set(row.key_id.map(|id| *id.as_uuid())),
        owner: ActiveValue::Set(row.owner),
        kind: ActiveValue::Set(row.kind.as_str().to_owned()),
        changed_at: ActiveValue::Set(micros(Utc::now())),
        actor: ActiveValue::Set(row.actor),
        client_ip: ActiveValue::Set(row.client_ip),
        detail: ActiveValue::Set(row.detail),
    }
}

/// The one query of a read: the rows after `after` and its gaps, in order, with the oldest
/// sequence number kept (an uncorrelated subquery on the primary key, evaluated once).
pub(crate) fn read_statement(after: &ChangeCursor, limit: usize) -> SelectStatement {
    let oldest = Query::select()
        .expr(Func::min(Expr::col(Column::Seq)))
        .from(Entity)
        .to_owned();
    let mut select = Query::select();
    select
        .columns([
            Column::Seq,
            Column::KeyId,
            Column::Owner,
            Column::Kind,
            Column::ChangedAt,
            Column::Actor,
            Column::ClientIp,
            Column::Detail,
        ])
        .expr_as(
            SimpleExpr::SubQuery(None, Box::new(oldest.into_sub_query_statement())),
            Alias::new("oldest"),
        )
        .from(Entity)
        .order_by(Column::Seq, sea_orm::Order::Asc)
        .limit(u64::try_from(limit + 1).unwrap_or(u64::MAX));
    let above = Expr::col(Column::Seq).gt(stored(after.seq()));
    if after.gaps().len() == 0 {
        select.and_where(above);
    } else {
        let gaps: Vec<i64> = after.gaps().map(stored).collect();
        select
            .and_where(Expr::col(Column::Seq).gte(stored(after.lowest_needed())))
            .and_where(above.or(Expr::col(Column::Seq).is_in(gaps)));
    }
    select
}

fn stored(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Reads the changes after `after` (see the module documentation), then prunes if due.
pub(crate) async fn read(
    db: &DatabaseConnection,
    log: &ChangeLog,
    after: Option<ChangeCursor>,
    limit: usize,
) -> Result<ChangeBatch, StoreError> {
    let Some(after) = after else {
        return Ok(ChangeBatch::head(head(db).await?));
    };
    let limit = effective_change_limit(limit);
    let backend = db.get_database_backend();
    let rows = db
        .query_all(backend.build(&read_statement(&after, limit)))
        .await
        .map_err(db_error)?;
    let more = rows.len() > limit;
    let mut oldest = None;
    let mut changes = Vec::with_capacity(rows.len().min(limit));
    for row in rows.iter().take(limit) {
        oldest = row.try_get::<Option<i64>>("", "oldest").map_err(db_error)?;
        changes.push(decode(row)?);
    }
    // No rows means nothing after the cursor exists now: the newest row is never pruned, so
    // any pruned row above the cursor would have left a newer one to read.
    let truncated = oldest
        .and_then(|oldest| u64::try_from(oldest).ok())
        .is_some_and(|oldest| oldest > after.seq().saturating_add(1));
    let cursor = after.advance(changes.iter().map(|c| c.seq), Instant::now());
    if log.prune_due() {
        if let Err(err) = prune(db, log.retention).await {
            tracing::warn!(error = %err, "keyward could not prune old change-log rows");
        }
    }
    Ok(ChangeBatch::new(changes, cursor)
        .truncated(truncated)
        .more(more))
}

/// The newest sequence number, 0 for an empty log.
async fn head(db: &DatabaseConnection) -> Result<u64, StoreError> {
    let newest = newest(db).await?;
    Ok(newest.and_then(|seq| u64::try_from(seq).ok()).unwrap_or(0))
}

async fn newest(db: &DatabaseConnection) -> Result<Option<i64>, StoreError> {
    let select = Query::select()
        .expr_as(Func::max(Expr::col(Column::Seq)), Alias::new("newest"))
        .from(Entity)
        .to_owned();
    let backend = db.get_database_backend();
    let row = db
        .query_one(backend.build(&select))
        .await
        .map_err(db_error)?;
    match row {
        Some(row) => row.try_get::<Option<i64>>("", "newest").map_err(db_error),
        None => Ok(None),
    }
}

/// Deletes the rows older than `retention`, keeping the newest row whatever its age.
pub(crate) async fn prune(db: &DatabaseConnection, retention: Duration) -> Result<u64, StoreError> {
    let Some(newest) = newest(db).await? else {
        return Ok(0);
    };
    // A retention too long to subtract from now keeps everything.
    let Some(cutoff) = TimeDelta::from_std(retention)
        .ok()
        .and_then(|retention| Utc::now().checked_sub_signed(retention))
    else {
        return Ok(0);
    };
    let backend = db.get_database_backend();
    let young = Query::select()
        .expr_as(Func::min(Expr::col(Column::Seq)), Alias::new("young"))
        .from(Entity)
        .and_where(Expr::col(Column::ChangedAt).gte(micros(cutoff)))
        .to_owned();
    let young = db
        .query_one(backend.build(&young))
        .await
        .map_err(db_error)?
        .map(|row| row.try_get::<Option<i64>>("", "young"))
        .transpose()
        .map_err(db_error)?
        .flatten();
    let boundary = young.unwrap_or(newest).min(newest);
    let deleted = Entity::delete_many()
        .filter(Column::Seq.lt(boundary))
        .exec(db)
        .await
        .map_err(db_error)?;
    if deleted.rows_affected > 0 {
        tracing::debug!(
            rows = deleted.rows_affected,
            "keyward pruned the change log"
        );
    }
    Ok(deleted.rows_affected)
}

/// A row of the log as a [`ChangeRecord`].
pub(crate) fn decode(row: &QueryResult) -> Result<ChangeRecord, StoreError> {
    let get_err = |column: &str, err: sea_orm::DbErr| {
        StoreError::new(
            StoreErrorKind::Unavailable,
            format!("a change-log row has an unreadable {column} column"),
        )
        .with_source(err)
    };
    let seq: i64 = row.try_get("", "seq").map_err(|e| get_err("seq", e))?;
    let key_id: Option<uuid::Uuid> = row
        .try_get("", "key_id")
        .map_err(|e| get_err("key_id", e))?;
    let owner: Option<String> = row.try_get("", "owner").map_err(|e| get_err("owner", e))?;
    let kind: String = row.try_get("", "kind").map_err(|e| get_err("kind", e))?;
    let at: DateTime<Utc> = row
        .try_get("", "changed_at")
        .map_err(|e| get_err("changed_at", e))?;
    let actor: Option<String> = row.try_get("", "actor").map_err(|e| get_err("actor", e))?;
    let client_ip: Option<String> = row
        .try_get("", "client_ip")
        .map_err(|e| get_err("client_ip", e))?;
    let detail: Option<String> = row
        .try_get("", "detail")
        .map_err(|e| get_err("detail", e))?;
    let seq = u64::try_from(seq).map_err(|e| {
        StoreError::new(
            StoreErrorKind::Unavailable,
            "a change-log row has a negative seq",
        )
        .with_source(e)
    })?;
    // A kind written by a newer version still names the key (or owner) that changed, which
    // is all a cache needs.
    let kind = kind.parse().unwrap_or(ChangeKind::Updated);
    let mut record = match key_id {
        Some(id) => ChangeRecord::key(seq, KeyId::from_uuid(id), owner, kind, at),
        None => ChangeRecord::owner(seq, owner.unwrap_or_default(), at),
    };
    // Unreadable actors, addresses or details (written by hand, or by a newer version) are
    // left out rather than failing the read: the log must stay readable for the caches.
    record.actor = actor.and_then(|actor| actor.parse::<Actor>().ok());
    record.client_ip = client_ip.and_then(|ip| ip.parse().ok());
    record.detail = detail
        .and_then(|detail| serde_json::from_str(&detail).ok())
        .unwrap_or(serde_json::Value::Null);
    Ok(record)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use keyward_test_support::TestDatabase;
    use sea_orm::sea_query::{MysqlQueryBuilder, PostgresQueryBuilder, SqliteQueryBuilder};
    use sea_orm::{DbBackend, Statement};

    use super::*;

    /// Rows in the log when the plans are checked: enough that a scan would cost more than
    /// the index for every planner.
    const ROWS: i64 = 20_000;

    async fn fill(db: &DatabaseConnection) {
        crate::migrate(db).await.expect("migrate");
        let at = micros(Utc::now());
        for chunk in 0..ROWS / 1000 {
            let rows = (0..1000).map(|n| ActiveModel {
                seq: ActiveValue::NotSet,
                key_id: ActiveValue::Set(Some(uuid::Uuid::now_v7())),
                owner: ActiveValue::Set(Some(format!("user{}", chunk * 1000 + n))),
                kind: ActiveValue::Set("updated".to_owned()),
                changed_at: ActiveValue::Set(at),
                actor: ActiveValue::Set(None),
                client_ip: ActiveValue::Set(None),
                detail: ActiveValue::Set(None),
            });
            Entity::insert_many(rows)
                .exec_without_returning(db)
                .await
                .expect("insert");
        }
        let analyze = match db.get_database_backend() {
            DbBackend::MySql => "ANALYZE TABLE keyward_changes",
            DbBackend::Postgres => "ANALYZE keyward_changes",
            DbBackend::Sqlite => "ANALYZE",
        };
        db.execute_unprepared(analyze).await.expect("analyze");
    }

    /// The plan of a read after `cursor`, one string per plan row.
    async fn plan(db: &DatabaseConnection, cursor: &ChangeCursor) -> Vec<String> {
        let select = read_statement(cursor, 100);
        let backend = db.get_database_backend();
        let (sql, explain) = match backend {
            DbBackend::MySql => (select.to_string(MysqlQueryBuilder), "EXPLAIN"),
            DbBackend::Postgres => (select.to_string(PostgresQueryBuilder), "EXPLAIN"),
            DbBackend::Sqlite => (select.to_string(SqliteQueryBuilder), "EXPLAIN QUERY PLAN"),
        };
        let rows = db
            .query_all(Statement::from_string(backend, format!("{explain} {sql}")))
            .await
            .expect("explain");
        rows.iter()
            .map(|row| match backend {
                DbBackend::Postgres => row.try_get::<String>("", "QUERY PLAN").expect("plan"),
                DbBackend::Sqlite => row.try_get::<String>("", "detail").expect("plan"),
                DbBackend::MySql => {
                    let text = |column: &str| {
                        row.try_get::<Option<String>>("", column)
                            .ok()
                            .flatten()
                            .unwrap_or_default()
                    };
                    format!(
                        "table={} type={} key={} extra={}",
                        text("table"),
                        text("type"),
                        text("key"),
                        text("Extra")
                    )
                }
            })
            .collect()
    }

    /// A cursor near the end of the log, with gaps or without.
    fn cursors() -> [ChangeCursor; 2] {
        let seq = u64::try_from(ROWS - 10).expect("positive");
        let plain = ChangeCursor::at(seq);
        let gapped = ChangeCursor::at(seq - 20).advance([seq - 15, seq], Instant::now());
        assert!(gapped.gaps().len() > 0);
        [plain, gapped]
    }

    fn assert_indexed(backend: DbBackend, plan: &[String]) {
        let all = plan.join("\n");
        match backend {
            DbBackend::Sqlite => {
                assert!(
                    plan.iter().all(|row| !row.starts_with("SCAN")),
                    "no scan: {all}"
                );
                assert!(all.contains("USING INTEGER PRIMARY KEY"), "{all}");
            }
            DbBackend::Postgres => {
                assert!(!all.contains("Seq Scan"), "no scan: {all}");
                assert!(all.contains("keyward_changes_pkey"), "{all}");
            }
            DbBackend::MySql => {
                let main = plan
                    .iter()
                    .find(|row| row.starts_with("table=keyward_changes "))
                    .unwrap_or_else(|| panic!("a row for the table: {all}"));
                assert!(main.contains("type=range"), "a range: {all}");
                assert!(main.contains("key=PRIMARY"), "on the primary key: {all}");
                assert!(
                    plan.iter().all(|row| !row.contains("type=ALL")),
                    "no scan: {all}"
                );
            }
        }
    }

    async fn reads_use_the_primary_key(db: TestDatabase) {
        let connection = db.connect().await;
        fill(&connection).await;
        let backend = connection.get_database_backend();
        for cursor in cursors() {
            let plan = plan(&connection, &cursor).await;
            eprintln!(
                "{backend:?} plan with {} gaps:\n{}",
                cursor.gaps().len(),
                plan.join("\n")
            );
            assert_indexed(backend, &plan);
        }
        connection.close().await.expect("close");
        db.remove().await;
    }

    /// Pruning keeps the newest row, and a cursor below the kept rows is told the log no
    /// longer reaches back.
    async fn pruning_is_reported(db: TestDatabase) {
        use keyward_core::KeyStore;

        let store = crate::SeaOrmStore::connect_and_migrate(db.options())
            .await
            .expect("store");
        let start = store
            .changes_since(None, 10)
            .await
            .expect("head")
            .expect("a log")
            .cursor;
        for owner in ["a", "b", "c"] {
            store.owner_changed(owner).await.expect("owner changed");
        }
        assert_eq!(store.prune_changes().await.expect("prune"), 0, "all young");
        let never = store.clone().change_retention(Duration::MAX);
        assert_eq!(never.prune_changes().await.expect("prune"), 0);
        let all = store.clone().change_retention(Duration::ZERO);
        assert_eq!(
            all.prune_changes().await.expect("prune"),
            2,
            "the newest stays"
        );
        let read = |cursor: ChangeCursor| {
            let store = store.clone();
            async move {
                store
                    .changes_since(Some(cursor), 10)
                    .await
                    .expect("read")
                    .expect("a log")
            }
        };
        let behind = read(start.clone()).await;
        assert!(behind.truncated, "rows after the cursor were pruned");
        assert_eq!(behind.changes.len(), 1);
        let newest = behind.changes[0].seq;
        assert!(!read(ChangeCursor::at(newest - 1)).await.truncated);
        let caught_up = read(behind.cursor).await;
        assert!(!caught_up.truncated && caught_up.changes.is_empty());
        store.connection().clone().close().await.expect("close");
        db.remove().await;
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_pruning_is_reported() {
        pruning_is_reported(TestDatabase::sqlite()).await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_pruning_is_reported() {
        if let Some(db) = TestDatabase::postgres().await {
            pruning_is_reported(db).await;
        }
    }

    #[cfg(feature = "mysql")]
    #[tokio::test]
    async fn mysql_pruning_is_reported() {
        if let Some(db) = TestDatabase::mysql().await {
            pruning_is_reported(db).await;
        }
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_reads_use_the_primary_key() {
        reads_use_the_primary_key(TestDatabase::sqlite()).await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_reads_use_the_primary_key() {
        if let Some(db) = TestDatabase::postgres().await {
            reads_use_the_primary_key(db).await;
        }
    }

    #[cfg(feature = "mysql")]
    #[tokio::test]
    async fn mysql_reads_use_the_primary_key() {
        if let Some(db) = TestDatabase::mysql().await {
            reads_use_the_primary_key(db).await;
        }
    }
}
