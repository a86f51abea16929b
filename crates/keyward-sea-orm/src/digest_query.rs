//! The lookup by digest, the one query on a request's path: its SQL is written once per store
//! instead of on every cache miss (SeaQuery quoting ~20 column names and formatting the
//! statement cost about a tenth of a miss's CPU on SQLite).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keyward_core::TokenDigest;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QueryTrait, Select, Statement, Value, Values,
};

use crate::entity::{Column, Entity};

/// `digest = ? OR (previous_digest = ? AND previous_valid_until > ?)`, written for one
/// backend.
#[derive(Debug, Clone)]
pub(crate) struct DigestQuery {
    backend: DbBackend,
    sql: Arc<str>,
}

impl DigestQuery {
    /// The query for `db`'s backend. (A disconnected connection answers every query with an
    /// error, so which backend its never-sent SQL is written for does not matter.)
    pub(crate) fn for_connection(db: &DatabaseConnection) -> Self {
        let backend = match db {
            DatabaseConnection::Disconnected => DbBackend::Sqlite,
            connected => connected.get_database_backend(),
        };
        Self::new(backend)
    }

    fn new(backend: DbBackend) -> Self {
        let written = select(&[0; 32], DateTime::UNIX_EPOCH).build(backend);
        Self {
            backend,
            sql: written.sql.into(),
        }
    }

    /// The statement for `digest` at `now`: the SQL written once, with these values.
    pub(crate) fn statement(&self, digest: &TokenDigest, now: DateTime<Utc>) -> Statement {
        let bytes = digest.as_bytes().to_vec();
        // In the order `select` binds them.
        let values = vec![
            Value::from(bytes.clone()),
            Value::from(bytes),
            Value::from(now),
        ];
        Statement::from_sql_and_values(self.backend, &*self.sql, Values(values))
    }
}

/// The query as SeaQuery builds it.
fn select(digest: &[u8], now: DateTime<Utc>) -> Select<Entity> {
    Entity::find().filter(
        Condition::any()
            .add(Column::Digest.eq(digest.to_vec()))
            .add(
                Condition::all()
                    .add(Column::PreviousDigest.eq(digest.to_vec()))
                    .add(Column::PreviousValidUntil.gt(now)),
            ),
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_written_statement_is_what_seaquery_builds_on_every_backend() {
        let digest = TokenDigest::from_bytes(std::array::from_fn(|i| u8::try_from(i * 7).unwrap()));
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 23, 59, 58).unwrap()
            + chrono::TimeDelta::microseconds(123_456);
        for backend in [DbBackend::Sqlite, DbBackend::Postgres, DbBackend::MySql] {
            let expected = select(digest.as_bytes(), now).build(backend);
            let written = DigestQuery::new(backend).statement(&digest, now);
            assert_eq!(written.sql, expected.sql, "{backend:?}");
            assert_eq!(written.values, expected.values, "{backend:?}");
            assert_eq!(written.db_backend, expected.db_backend);
        }
    }
}
