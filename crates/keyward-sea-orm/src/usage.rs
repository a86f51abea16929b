//! Usage writes and reads: the counters on `keyward_keys` and the daily counts in
//! `keyward_key_usage`, written together in one transaction.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use keyward_core::{DailyUsage, KeyId, StoreError, UsageUpdate};
use sea_orm::sea_query::{Expr, InsertStatement, OnConflict, Query, UpdateStatement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder,
};

use crate::entity::{Column, Entity, usage};
use crate::error::{corrupt, db_error};
use crate::row::micros;

/// Usage of one key, merged over a batch.
pub(crate) struct MergedUsage {
    count: u64,
    last_used_at: DateTime<Utc>,
    last_used_ip: Option<IpAddr>,
    /// Uses per UTC day of each update's latest use.
    days: BTreeMap<NaiveDate, u64>,
}

/// Merges a batch by key, in id order so that concurrent batches lock rows in the same order
/// and cannot deadlock each other.
pub(crate) fn merge(batch: &[UsageUpdate]) -> BTreeMap<KeyId, MergedUsage> {
    let mut merged: BTreeMap<KeyId, MergedUsage> = BTreeMap::new();
    for usage in batch {
        let entry = merged.entry(usage.id).or_insert(MergedUsage {
            count: 0,
            last_used_at: usage.last_used_at,
            last_used_ip: usage.last_used_ip,
            days: BTreeMap::new(),
        });
        entry.count = entry.count.saturating_add(usage.count);
        if entry.last_used_at <= usage.last_used_at {
            entry.last_used_at = usage.last_used_at;
            entry.last_used_ip = usage.last_used_ip;
        }
        if usage.count > 0 {
            let day = entry
                .days
                .entry(usage.last_used_at.date_naive())
                .or_default();
            *day = day.saturating_add(usage.count);
        }
    }
    merged
}

/// Writes a batch: per key (in id order) its counters, then its daily counts (in day order),
/// all in one transaction so that a recorder that retries a failed batch never counts twice.
pub(crate) async fn record(
    txn: &DatabaseTransaction,
    batch: &[UsageUpdate],
) -> Result<(), StoreError> {
    let backend = txn.get_database_backend();
    for (id, usage) in &merge(batch) {
        txn.execute(backend.build(&counter_statement(*id, usage)))
            .await
            .map_err(db_error)?;
        for (day, count) in &usage.days {
            txn.execute(backend.build(&day_statement(*id, *day, *count)))
                .await
                .map_err(db_error)?;
        }
    }
    Ok(())
}

/// Adds to the counter in the database (never read-modify-write), and moves `last_used_*`
/// only forwards.
///
/// MySQL evaluates `SET` assignments left to right against already updated columns, so the
/// address is assigned before the time it is compared with.
fn counter_statement(id: KeyId, usage: &MergedUsage) -> UpdateStatement {
    let count = stored_count(usage.count);
    let at = micros(usage.last_used_at);
    let newer = || {
        Condition::any()
            .add(Expr::col(Column::LastUsedAt).is_null())
            .add(Expr::col(Column::LastUsedAt).lte(at))
    };
    let ip = usage.last_used_ip.map(|ip| ip.to_string());
    Query::update()
        .table(Entity)
        .value(Column::UsageCount, Expr::col(Column::UsageCount).add(count))
        .value(
            Column::LastUsedIp,
            Expr::case(newer(), Expr::val(ip)).finally(Expr::col(Column::LastUsedIp)),
        )
        .value(
            Column::LastUsedAt,
            Expr::case(newer(), Expr::val(at)).finally(Expr::col(Column::LastUsedAt)),
        )
        .and_where(Expr::col(Column::Id).eq(*id.as_uuid()))
        .to_owned()
}

/// Adds `count` to the key's row for `day`, creating it, and only if the key exists (an
/// unknown id is skipped, as for the counters):
///
/// `INSERT INTO keyward_key_usage (key_id, day, count) SELECT id, day, count FROM keyward_keys
/// WHERE id = … ON CONFLICT (key_id, day) DO UPDATE SET count = keyward_key_usage.count + …`,
/// which MySQL spells `ON DUPLICATE KEY UPDATE`. The key's row, updated just before in the
/// same transaction, is locked, so two flushes of one key never race for a new day's row.
fn day_statement(id: KeyId, day: NaiveDate, count: u64) -> InsertStatement {
    let count = stored_count(count);
    let existing = Query::select()
        .column(Column::Id)
        .expr(Expr::val(day))
        .expr(Expr::val(count))
        .from(Entity)
        .and_where(Expr::col(Column::Id).eq(*id.as_uuid()))
        .to_owned();
    Query::insert()
        .into_table(usage::Entity)
        .columns([
            usage::Column::KeyId,
            usage::Column::Day,
            usage::Column::Count,
        ])
        .select_from(existing)
        .expect("the select names as many columns as the insert")
        .on_conflict(
            OnConflict::columns([usage::Column::KeyId, usage::Column::Day])
                .value(
                    usage::Column::Count,
                    // Qualified: PostgreSQL finds a bare `count` ambiguous with `excluded`.
                    Expr::col((usage::Entity, usage::Column::Count)).add(count),
                )
                .to_owned(),
        )
        .to_owned()
}

fn stored_count(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// The daily counts of key `id` on `since` and later, oldest first.
pub(crate) async fn days(
    db: &DatabaseConnection,
    id: KeyId,
    since: NaiveDate,
) -> Result<Vec<DailyUsage>, StoreError> {
    usage::Entity::find()
        .filter(usage::Column::KeyId.eq(*id.as_uuid()))
        .filter(usage::Column::Day.gte(since))
        .order_by_asc(usage::Column::Day)
        .all(db)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|row| {
            let count = u64::try_from(row.count).map_err(|e| corrupt(id, "usage count", e))?;
            Ok(DailyUsage {
                date: row.day,
                count,
            })
        })
        .collect()
}

/// Deletes the daily counts of key `id`, in the transaction that deletes the key.
pub(crate) async fn delete(txn: &DatabaseTransaction, id: KeyId) -> Result<(), StoreError> {
    usage::Entity::delete_many()
        .filter(usage::Column::KeyId.eq(*id.as_uuid()))
        .exec(txn)
        .await
        .map_err(db_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use sea_orm::DbBackend;

    use super::*;

    #[test]
    fn a_batch_merges_by_key_and_by_day() {
        let (a, b) = (KeyId::new(), KeyId::new());
        let t0: DateTime<Utc> = "2026-03-01T23:59:59Z".parse().unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let update = |id, count, at, last_used_ip| UsageUpdate {
            id,
            count,
            last_used_at: at,
            last_used_ip,
        };
        let merged = merge(&[
            update(a, 2, t0, ip("10.0.0.1")),
            update(b, 1, t0, None),
            update(a, 3, t0 + TimeDelta::seconds(2), ip("10.0.0.2")),
            update(a, 4, t0 - TimeDelta::seconds(5), ip("10.0.0.3")),
        ]);
        let a_usage = &merged[&a];
        assert_eq!(a_usage.count, 9);
        assert_eq!(a_usage.last_used_at, t0 + TimeDelta::seconds(2));
        assert_eq!(a_usage.last_used_ip, ip("10.0.0.2"));
        let days: Vec<_> = a_usage
            .days
            .iter()
            .map(|(d, c)| (d.to_string(), *c))
            .collect();
        assert_eq!(days, [("2026-03-01".into(), 6), ("2026-03-02".into(), 3)]);
        assert_eq!(merged[&b].days.len(), 1);
    }

    #[test]
    fn day_statements_add_to_existing_rows_on_every_backend() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let statement = day_statement(KeyId::new(), day, 12);
        let sql = |backend: DbBackend| backend.build(&statement).sql;
        let postgres = sql(DbBackend::Postgres);
        assert!(postgres.contains(r#"ON CONFLICT ("key_id", "day") DO UPDATE SET "count" = "keyward_key_usage"."count" + $"#), "{postgres}");
        assert!(postgres.contains(r#"SELECT "id""#), "{postgres}");
        let mysql = sql(DbBackend::MySql);
        assert!(
            mysql.contains("ON DUPLICATE KEY UPDATE `count` = `keyward_key_usage`.`count` + ?"),
            "{mysql}"
        );
        let sqlite = sql(DbBackend::Sqlite);
        assert!(
            sqlite.contains("WHERE") && sqlite.contains("ON CONFLICT"),
            "{sqlite}"
        );
    }
}
