//! `GET /events`: the key events, the audit trail of who changed which key, when and from
//! where.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use keyward::{ChangeKind, EventQuery, Json, Keyward, Problem};
use keyward_core::KeyId;

use crate::access::{Operation, authorize};
use crate::actor::CurrentActor;
use crate::error::AdminError;
use crate::model::{EventList, ProblemBody};
use crate::routes::PAGE_LIMIT;

/// Lists key events, newest first: those of the caller's own keys, or with `keys:admin` of
/// every owner's.
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    params(
        ("key" = Option<String>, Query, format = Uuid, description = "Only this key's events."),
        ("type" = Option<String>, Query, description = "Only events of this type: created, updated, enabled, disabled, revoked, deleted, regenerated, refreshed, expiring_soon, expired, leaked or rate_limited."),
        ("since" = Option<DateTime<Utc>>, Query, description = "Only events at or after this time (RFC 3339)."),
        ("owner" = Option<String>, Query, description = "Only events of this owner's keys. Another owner than the caller needs `keys:admin`."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100; default 100."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "One page of events, newest first", body = EventList),
        (status = 401, description = "No key and no session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks `keys:read`, or `keys:admin` for `owner`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list_events(
    State(keys): State<Keyward>,
    CurrentActor(actor): CurrentActor,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<EventList>, AdminError> {
    let (mut query, owner) = parse(query)?;
    query.owner = authorize(
        &actor,
        Operation::List {
            owner: owner.as_deref(),
        },
    )?
    .owner();
    let page = keys.events(&query).await?;
    Ok(Json(EventList {
        events: page
            .events
            .iter()
            .map(keyward::ChangeRecord::view)
            .collect(),
        next_cursor: page.next_cursor.map(|seq| seq.to_string()),
    }))
}

/// The query's filters, and the owner asked for.
fn parse(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<(EventQuery, Option<String>), AdminError> {
    let pairs = crate::query::pairs(query)?;
    let mut query = EventQuery::new().limit(PAGE_LIMIT);
    let mut owner = None;
    for (name, value) in pairs {
        match name.as_str() {
            "key" => {
                let id: KeyId = value
                    .parse()
                    .map_err(|_| AdminError::field("key", "is not a key id"))?;
                query = query.key(id);
            }
            "type" => {
                let kind: ChangeKind = value
                    .parse()
                    .ok()
                    .filter(|kind| *kind != ChangeKind::Owner)
                    .ok_or_else(|| {
                        AdminError::field("type", format!("must be one of {}", types()))
                    })?;
                query = query.kind(kind);
            }
            "since" => {
                let since = DateTime::parse_from_rfc3339(&value).map_err(|_| {
                    AdminError::field(
                        "since",
                        "must be an RFC 3339 time, e.g. 2026-11-23T00:00:00Z",
                    )
                })?;
                query = query.since(since.with_timezone(&Utc));
            }
            "owner" => owner = Some(value),
            "limit" => query = query.limit(crate::query::page_limit(&value)?),
            "cursor" => {
                let before: u64 = value.parse().map_err(|_| {
                    AdminError::field("cursor", "is not a cursor this API returned")
                })?;
                query = query.before(before);
            }
            _ => {
                return Err(AdminError::from(Problem::invalid(
                    &name,
                    "unknown query parameter; expected key, type, since, owner, limit or cursor",
                )));
            }
        }
    }
    Ok((query, owner))
}

/// The event types, comma-separated.
fn types() -> String {
    ChangeKind::ALL
        .iter()
        .filter(|kind| **kind != ChangeKind::Owner)
        .map(|kind| kind.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(query: &str) -> Result<(EventQuery, Option<String>), AdminError> {
        let uri: http::Uri = format!("/events?{query}").parse().unwrap();
        parse(Query::try_from_uri(&uri))
    }

    #[test]
    fn filters_are_read_and_bad_ones_named() {
        let id = KeyId::new();
        let (query, owner) = parsed(&format!(
            "key={id}&type=revoked&since=2026-11-01T00:00:00Z&owner=ann&limit=5&cursor=42"
        ))
        .unwrap();
        assert_eq!(query.key_id, Some(id));
        assert_eq!(query.kind, Some(ChangeKind::Revoked));
        assert_eq!(query.limit, Some(5));
        assert_eq!(query.before, Some(42));
        assert_eq!(owner.as_deref(), Some("ann"));
        for (bad, field) in [
            ("key=nope", "key"),
            ("type=owner", "type"),
            ("type=exploded", "type"),
            ("since=yesterday", "since"),
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("cursor=-1", "cursor"),
            ("colour=red", "colour"),
        ] {
            let err = parsed(bad).expect_err(bad);
            assert!(format!("{err:?}").contains(field), "{bad}: {err:?}");
        }
    }
}
