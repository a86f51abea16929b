//! Key events read from the change log (`GET /events`), the expiry notices claimed in
//! `keyward_notices`, and the durable readers of the log in `keyward_consumers`.

use chrono::{DateTime, TimeDelta, Utc};
use keyward_core::{
    ChangeKind, ChangeRecord, ConsumerLease, EXPIRED_NOTICE_LOOKBACK, EventContext, EventPage,
    EventQuery, KeyId, KeyRecord, MAX_PAGE_SIZE, StoreError, notice_detail, notice_due,
};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    DeriveIden, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr,
};

use crate::changes::EventRow;
use crate::entity::change::{Column as EventColumn, Entity as Events};
use crate::entity::{Column as KeyColumn, Entity as Keys};
use crate::error::db_error;
use crate::row::{from_model, micros};

/// `keyward_notices`: one row per expiry notice recorded, claimed by its primary key.
#[derive(DeriveIden)]
pub(crate) enum Notices {
    #[sea_orm(iden = "keyward_notices")]
    Table,
    /// The key, encoded as `keyward_keys.id`.
    KeyId,
    /// `expiring_soon` or `expired`.
    Kind,
    /// The expiry the notice was for: a refresh makes a new one due.
    ExpiresAt,
}

/// `keyward_consumers`: the position and lease of each durable reader of the log.
#[derive(DeriveIden)]
pub(crate) enum Consumers {
    #[sea_orm(iden = "keyward_consumers")]
    Table,
    /// The reader's name, e.g. `webhook:<endpoint>`.
    Name,
    /// The last sequence number it saved; null before the first save.
    Position,
    /// The instance holding the lease.
    Holder,
    /// When the lease ends unless renewed.
    LeaseUntil,
}

/// A page of key events, newest first: one range read on the primary key, filtered.
pub(crate) async fn list(
    db: &DatabaseConnection,
    query: &EventQuery,
) -> Result<EventPage, StoreError> {
    let limit = query.effective_limit();
    let mut select = Events::find()
        .filter(EventColumn::KeyId.is_not_null())
        .order_by_desc(EventColumn::Seq)
        .limit(u64::try_from(limit + 1).unwrap_or(u64::MAX));
    if let Some(id) = query.key_id {
        select = select.filter(EventColumn::KeyId.eq(*id.as_uuid()));
    }
    if let Some(owner) = &query.owner {
        select = select.filter(EventColumn::Owner.eq(owner.as_str()));
    }
    if let Some(kind) = query.kind {
        select = select.filter(EventColumn::Kind.eq(kind.as_str()));
    }
    if let Some(since) = query.since {
        select = select.filter(EventColumn::ChangedAt.gte(micros(since)));
    }
    if let Some(before) = query.before {
        select = select.filter(EventColumn::Seq.lt(i64::try_from(before).unwrap_or(i64::MAX)));
    }
    let backend = db.get_database_backend();
    let rows = db
        .query_all(backend.build(&sea_orm::QueryTrait::into_query(select)))
        .await
        .map_err(db_error)?;
    let events = rows
        .iter()
        .map(crate::changes::decode)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EventPage::from_overfetch(events, limit))
}

/// No notice of `kind` exists yet for the key's current expiry.
fn unclaimed(kind: ChangeKind) -> sea_orm::sea_query::SimpleExpr {
    let claimed = Query::select()
        .expr(Expr::val(1))
        .from(Notices::Table)
        .and_where(Expr::col((Notices::Table, Notices::KeyId)).equals((Keys, KeyColumn::Id)))
        .and_where(Expr::col((Notices::Table, Notices::Kind)).eq(kind.as_str()))
        .and_where(
            Expr::col((Notices::Table, Notices::ExpiresAt)).equals((Keys, KeyColumn::ExpiresAt)),
        )
        .to_owned();
    Expr::exists(claimed).not()
}

/// The keys with an expiry notice due at `now` and not yet claimed, at most
/// [`MAX_PAGE_SIZE`] of each kind.
pub(crate) async fn notices_due(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    window: TimeDelta,
) -> Result<Vec<(KeyRecord, ChangeKind)>, StoreError> {
    let edge = now
        .checked_add_signed(window)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let limit = u64::try_from(MAX_PAGE_SIZE).unwrap_or(u64::MAX);
    let since = now
        .checked_sub_signed(EXPIRED_NOTICE_LOOKBACK)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let expired = Condition::all()
        .add(KeyColumn::ExpiresAt.lte(micros(now)))
        .add(KeyColumn::ExpiresAt.gt(micros(since)))
        .add(unclaimed(ChangeKind::Expired));
    let soon = Condition::all()
        .add(KeyColumn::ExpiresAt.gt(micros(now)))
        .add(KeyColumn::ExpiresAt.lte(micros(edge)))
        .add(KeyColumn::Active.eq(true))
        .add(unclaimed(ChangeKind::ExpiringSoon));
    let mut due = Vec::new();
    for condition in [expired, soon] {
        let rows = Keys::find()
            .filter(KeyColumn::RevokedAt.is_null())
            .filter(condition)
            .order_by_asc(KeyColumn::ExpiresAt)
            .limit(limit)
            .all(db)
            .await
            .map_err(db_error)?;
        for row in rows {
            let record = from_model(row)?;
            let Some(expires_at) = record.expires_at else {
                continue;
            };
            if let Some(kind) = notice_due(&record, expires_at, now, window) {
                due.push((record, kind));
            }
        }
    }
    Ok(due)
}

/// Claims the notice of `kind` for key `id` expiring at `expires_at`: `false` when it exists
/// already (another sweep recorded it, or is recording it and committed first).
async fn claim_notice(
    txn: &DatabaseTransaction,
    id: KeyId,
    kind: ChangeKind,
    expires_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let insert = Query::insert()
        .into_table(Notices::Table)
        .columns([Notices::KeyId, Notices::Kind, Notices::ExpiresAt])
        .values_panic([
            (*id.as_uuid()).into(),
            kind.as_str().into(),
            micros(expires_at).into(),
        ])
        .to_owned();
    let backend = txn.get_database_backend();
    match txn.execute(backend.build(&insert)).await {
        Ok(_) => Ok(true),
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Ok(false)
        }
        Err(err) => Err(db_error(err)),
    }
}

/// Claims the expiry notice of `kind` for `record`'s current expiry and records its event, in
/// `txn`, committed here; `None` when another sweep claimed it first.
pub(crate) async fn record_notice(
    txn: DatabaseTransaction,
    record: &KeyRecord,
    kind: ChangeKind,
    context: &EventContext,
) -> Result<Option<ChangeRecord>, StoreError> {
    let Some(expires_at) = record.expires_at else {
        return Ok(None);
    };
    if !claim_notice(&txn, record.id, kind, expires_at).await? {
        txn.rollback().await.map_err(db_error)?;
        return Ok(None);
    }
    let detail = notice_detail(record);
    let row = EventRow::key(record, kind, context, &detail);
    let seq = crate::changes::append_returning(&txn, row).await?;
    txn.commit().await.map_err(db_error)?;
    let event = ChangeRecord::key(seq, record.id, record.owner.clone(), kind, Utc::now())
        .by(context, detail);
    Ok(Some(event))
}

/// Deletes the notices of key `id` (with the key).
pub(crate) async fn delete_notices(txn: &DatabaseTransaction, id: KeyId) -> Result<(), StoreError> {
    let delete = Query::delete()
        .from_table(Notices::Table)
        .and_where(Expr::col(Notices::KeyId).eq(*id.as_uuid()))
        .to_owned();
    let backend = txn.get_database_backend();
    txn.execute(backend.build(&delete))
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The lease of reader `lease.name` (see [`KeyStore::lease_consumer`](keyward_core::KeyStore::lease_consumer)),
/// taken or renewed in `txn`.
pub(crate) async fn lease(
    txn: &DatabaseTransaction,
    lease: &ConsumerLease,
    now: DateTime<Utc>,
) -> Result<Option<Option<u64>>, StoreError> {
    let until = TimeDelta::from_std(lease.duration)
        .ok()
        .and_then(|duration| now.checked_add_signed(duration))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let backend = txn.get_database_backend();
    let by_name = || Expr::col(Consumers::Name).eq(lease.name.as_str());
    if backend == DbBackend::Sqlite {
        // Writing first takes SQLite's write lock, so the row cannot change before the update.
        let touch = Query::update()
            .table(Consumers::Table)
            .value(Consumers::Name, Expr::col(Consumers::Name))
            .and_where(by_name())
            .to_owned();
        txn.execute(backend.build(&touch)).await.map_err(db_error)?;
    }
    let mut read = Query::select();
    read.columns([
        Consumers::Position,
        Consumers::Holder,
        Consumers::LeaseUntil,
    ])
    .from(Consumers::Table)
    .and_where(by_name());
    if backend != DbBackend::Sqlite {
        read.lock_exclusive();
    }
    let row = txn
        .query_one(backend.build(&read))
        .await
        .map_err(db_error)?;
    let Some(row) = row else {
        let insert = Query::insert()
            .into_table(Consumers::Table)
            .columns([Consumers::Name, Consumers::Holder, Consumers::LeaseUntil])
            .values_panic([
                lease.name.as_str().into(),
                lease.holder.as_str().into(),
                micros(until).into(),
            ])
            .to_owned();
        return match txn.execute(backend.build(&insert)).await {
            Ok(_) => Ok(Some(None)),
            // Another instance created it at the same moment: its lease runs.
            Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Ok(None)
            }
            Err(err) => Err(db_error(err)),
        };
    };
    let position: Option<i64> = row.try_get("", "position").map_err(db_error)?;
    let holder: String = row.try_get("", "holder").map_err(db_error)?;
    let lease_until: DateTime<Utc> = row.try_get("", "lease_until").map_err(db_error)?;
    if holder != lease.holder && lease_until > now {
        return Ok(None);
    }
    let renew = Query::update()
        .table(Consumers::Table)
        .value(Consumers::Holder, lease.holder.as_str())
        .value(Consumers::LeaseUntil, micros(until))
        .and_where(by_name())
        .to_owned();
    txn.execute(backend.build(&renew)).await.map_err(db_error)?;
    Ok(Some(position.and_then(|p| u64::try_from(p).ok())))
}

/// Saves reader `lease.name`'s position if `lease.holder` holds it.
pub(crate) async fn save(
    db: &DatabaseConnection,
    lease: &ConsumerLease,
    position: u64,
) -> Result<bool, StoreError> {
    let backend = db.get_database_backend();
    let update = Query::update()
        .table(Consumers::Table)
        .value(
            Consumers::Position,
            i64::try_from(position).unwrap_or(i64::MAX),
        )
        .and_where(Expr::col(Consumers::Name).eq(lease.name.as_str()))
        .and_where(Expr::col(Consumers::Holder).eq(lease.holder.as_str()))
        .to_owned();
    let updated = db.execute(backend.build(&update)).await.map_err(db_error)?;
    if updated.rows_affected() > 0 {
        return Ok(true);
    }
    // MySQL counts only rows whose values changed: saving the same position again is 0.
    let holder = Query::select()
        .column(Consumers::Holder)
        .from(Consumers::Table)
        .and_where(Expr::col(Consumers::Name).eq(lease.name.as_str()))
        .to_owned();
    let row = db
        .query_one(backend.build(&holder))
        .await
        .map_err(db_error)?;
    match row {
        Some(row) => Ok(row.try_get::<String>("", "holder").map_err(db_error)? == lease.holder),
        None => Ok(false),
    }
}
