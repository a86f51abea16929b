//! Key events: who changed a key, from where, and what changed.
//!
//! Every change a store makes is recorded as a [`ChangeRecord`] in its change log, in the same
//! write as the change (see [`KeyStore::changes_since`](crate::KeyStore::changes_since)). The
//! caller says who acts through an [`EventContext`]; the store adds what changed
//! ([`event_detail`]). The log is at once the audit trail (`GET /events`, `keyward events`), the
//! source of webhooks and what other instances read to drop changed keys from their caches.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::change_log::{ChangeKind, ChangeRecord};
use crate::key::{KeyId, KeyRecord};
use crate::store::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Actor {
    /// A person signed in to the application, by user id.
    User(String),
    /// An API key, by id: a key managing keys through the admin router.
    Key(KeyId),
    /// An operator with the `keyward` command line.
    Cli,
    /// keyward itself or the application's own code: expiry notices, leak response, a
    /// change made without a person behind it.
    System,
}

impl Actor {
    /// A user of the application.
    #[must_use]
    pub fn user(id: impl Into<String>) -> Self {
        Self::User(id.into())
    }
}

impl fmt::Display for Actor {
    /// `user:<id>`, `key:<id>`, `cli` or `system`: the form stored and shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Key(id) => write!(f, "key:{id}"),
            Self::Cli => f.write_str("cli"),
            Self::System => f.write_str("system"),
        }
    }
}

/// A stored actor this version cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown actor {0:?}")]
pub struct UnknownActor(pub String);

impl FromStr for Actor {
    type Err = UnknownActor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownActor(s.to_owned());
        match s.split_once(':') {
            Some(("user", id)) if !id.is_empty() => Ok(Self::User(id.to_owned())),
            Some(("key", id)) => id.parse().map(Self::Key).map_err(|_| unknown()),
            None if s == "cli" => Ok(Self::Cli),
            None if s == "system" => Ok(Self::System),
            _ => Err(unknown()),
        }
    }
}

/// A leaked token being acted on: its revocation (or disabling) is recorded as a
/// [`Leaked`](ChangeKind::Leaked) event with these details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    /// Who reported it: `github`, `scan`, …
    pub source: String,
    /// Where the token was found, when the report says.
    pub url: Option<String>,
}

impl Leak {
    /// A leak reported by `source`, found at `url`.
    #[must_use]
    pub fn new(source: impl Into<String>, url: Option<String>) -> Self {
        Self {
            source: source.into(),
            url,
        }
    }
}

/// Who makes a change and from where; recorded with the change's event.
///
/// # Example
///
/// ```
/// use keyward_core::{Actor, EventContext};
///
/// let by = EventContext::new(Actor::user("alice")).client_ip("203.0.113.7".parse().ok());
/// assert_eq!(by.actor.to_string(), "user:alice");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventContext {
    /// Who acts.
    pub actor: Actor,
    /// The address the request came from, as keyward computes it (trusted proxies honoured).
    pub client_ip: Option<IpAddr>,
    /// Set when the change responds to a leaked token.
    pub leak: Option<Leak>,
}

impl EventContext {
    /// A change by `actor`, address unknown.
    #[must_use]
    pub const fn new(actor: Actor) -> Self {
        Self {
            actor,
            client_ip: None,
            leak: None,
        }
    }

    /// A change by keyward or the application itself.
    #[must_use]
    pub const fn system() -> Self {
        Self::new(Actor::System)
    }

    /// A change by an operator with the command line.
    #[must_use]
    pub const fn cli() -> Self {
        Self::new(Actor::Cli)
    }

    /// The address the request came from.
    #[must_use]
    pub fn client_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.client_ip = ip;
        self
    }

    /// Marks the change as the response to a leaked token.
    #[must_use]
    pub fn leaked(mut self, leak: Leak) -> Self {
        self.leak = Some(leak);
        self
    }
}

impl From<Actor> for EventContext {
    fn from(actor: Actor) -> Self {
        Self::new(actor)
    }
}

fn time(at: DateTime<Utc>) -> Value {
    Value::String(at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn opt_time(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, time)
}

/// The fields of a key an event shows before and after a change; never the secret, its
/// digest or the metadata's content (only that it changed).
fn shown_fields(record: &KeyRecord) -> [(&'static str, Value); 8] {
    [
        ("name", json!(record.name)),
        (
            "scopes",
            json!(
                record
                    .scopes
                    .iter()
                    .map(crate::Scope::as_str)
                    .collect::<Vec<_>>()
            ),
        ),
        ("active", json!(record.active)),
        ("expires_at", opt_time(record.expires_at)),
        (
            "allowed_ips",
            json!(
                record
                    .allowed_ips
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
        ),
        (
            "rate_limit",
            json!(record.rate_limit.map(std::num::NonZeroU32::get)),
        ),
        ("metadata", record.metadata.clone()),
        ("revoked_at", opt_time(record.revoked_at)),
    ]
}

/// The kind and detail of the event a store records for a change of a key from `before` to
/// `after` by `context`, where the change itself is of `kind`:
///
/// - an update that only enables or disables the key is [`Enabled`](ChangeKind::Enabled) or
///   [`Disabled`](ChangeKind::Disabled);
/// - a revocation or disabling in response to a [`Leak`] is [`Leaked`](ChangeKind::Leaked),
///   its detail naming the source, the URL and the action;
/// - the detail of an update or refresh lists the changed `fields` with their values `from`
///   and `to` (metadata only by name); of a creation, the key's name, kind, scopes and
///   expiry; of a regeneration, the end of the old secret's grace period; of a deletion, the
///   key's name.
///
/// Never a secret: tokens, digests and hints are not part of any detail.
#[must_use]
pub fn event_detail(
    kind: ChangeKind,
    before: Option<&KeyRecord>,
    after: &KeyRecord,
    context: &EventContext,
) -> (ChangeKind, Value) {
    let mut detail = Map::new();
    let mut kind = kind;
    match kind {
        ChangeKind::Created => {
            detail.insert("name".into(), json!(after.name));
            detail.insert("kind".into(), json!(after.kind.to_string()));
            for (field, value) in shown_fields(after) {
                if matches!(field, "scopes" | "expires_at") {
                    detail.insert(field.into(), value);
                }
            }
        }
        ChangeKind::Deleted => {
            detail.insert("name".into(), json!(after.name));
        }
        ChangeKind::Regenerated => {
            let grace = after.previous.map(|previous| previous.valid_until);
            detail.insert("previous_valid_until".into(), opt_time(grace));
        }
        _ => {
            if let Some(before) = before {
                let (fields, from, to) = changed_fields(before, after);
                if kind == ChangeKind::Updated && fields == ["active"] {
                    kind = if after.active {
                        ChangeKind::Enabled
                    } else {
                        ChangeKind::Disabled
                    };
                }
                if !fields.is_empty() {
                    detail.insert("fields".into(), json!(fields));
                    detail.insert("from".into(), Value::Object(from));
                    detail.insert("to".into(), Value::Object(to));
                }
            }
        }
    }
    if let Some(leak) = &context.leak {
        if matches!(
            kind,
            ChangeKind::Revoked | ChangeKind::Disabled | ChangeKind::Updated
        ) {
            let action = if kind == ChangeKind::Revoked {
                "revoked"
            } else {
                "disabled"
            };
            kind = ChangeKind::Leaked;
            detail.insert("action".into(), json!(action));
            detail.insert("source".into(), json!(leak.source));
            detail.insert("url".into(), json!(leak.url));
        }
    }
    (kind, Value::Object(detail))
}

/// The names of the shown fields that differ, with their old and new values.
fn changed_fields(
    before: &KeyRecord,
    after: &KeyRecord,
) -> (Vec<&'static str>, Map<String, Value>, Map<String, Value>) {
    let mut fields = Vec::new();
    let mut from = Map::new();
    let mut to = Map::new();
    for ((field, old), (_, new)) in shown_fields(before).into_iter().zip(shown_fields(after)) {
        if old == new {
            continue;
        }
        fields.push(field);
        if field != "metadata" {
            from.insert(field.into(), old);
            to.insert(field.into(), new);
        }
    }
    (fields, from, to)
}

/// The detail of an [`ExpiringSoon`](ChangeKind::ExpiringSoon) or
/// [`Expired`](ChangeKind::Expired) notice: the key's name and expiry.
#[must_use]
pub fn notice_detail(record: &KeyRecord) -> Value {
    json!({ "name": record.name, "expires_at": opt_time(record.expires_at) })
}

/// How long after a key's expiry its [`Expired`](ChangeKind::Expired) notice is still
/// recorded: a sweep looks back this far only, so its work does not grow with every key that
/// ever expired, and a first deployment does not announce old expiries.
pub const EXPIRED_NOTICE_LOOKBACK: TimeDelta = TimeDelta::days(30);

/// The expiry notice key `record` (expiring at `expires_at`) is due at `now`, if any:
/// [`Expired`](ChangeKind::Expired) once the expiry passed (unless revoked; at most
/// [`EXPIRED_NOTICE_LOOKBACK`] after it),
/// [`ExpiringSoon`](ChangeKind::ExpiringSoon) inside the window (if active and not revoked).
/// Shared by the stores so that all decide alike.
#[must_use]
pub fn notice_due(
    record: &KeyRecord,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
    window: TimeDelta,
) -> Option<ChangeKind> {
    if record.is_revoked() {
        None
    } else if expires_at <= now {
        let recent = now
            .checked_sub_signed(EXPIRED_NOTICE_LOOKBACK)
            .is_none_or(|since| expires_at > since);
        recent.then_some(ChangeKind::Expired)
    } else if record.active
        && now
            .checked_add_signed(window)
            .is_none_or(|edge| expires_at <= edge)
    {
        Some(ChangeKind::ExpiringSoon)
    } else {
        None
    }
}

/// Which events [`KeyStore::events`](crate::KeyStore::events) lists: newest first, only
/// events of keys (not the owner changes of the log), filtered by every field that is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventQuery {
    /// Only this key's events.
    pub key_id: Option<KeyId>,
    /// Only events of this owner's keys.
    pub owner: Option<String>,
    /// Only events of this kind.
    pub kind: Option<ChangeKind>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events older than this one (the `next_cursor` of the previous page).
    pub before: Option<u64>,
    /// Page size; clamped to `1..=`[`MAX_PAGE_SIZE`], default [`DEFAULT_PAGE_SIZE`].
    pub limit: Option<usize>,
}

impl EventQuery {
    /// Every event, newest first, one default page.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Only key `id`'s events.
    #[must_use]
    pub fn key(mut self, id: KeyId) -> Self {
        self.key_id = Some(id);
        self
    }

    /// Only events of `owner`'s keys.
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Only events of this kind.
    #[must_use]
    pub fn kind(mut self, kind: ChangeKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Only events at or after `since`.
    #[must_use]
    pub fn since(mut self, since: DateTime<Utc>) -> Self {
        self.since = Some(since);
        self
    }

    /// The page after the one that ended with event `seq`.
    #[must_use]
    pub fn before(mut self, seq: u64) -> Self {
        self.before = Some(seq);
        self
    }

    /// At most `limit` events.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The page size a store applies.
    #[must_use]
    pub fn effective_limit(&self) -> usize {
        self.limit
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE)
    }

    /// Whether `event` passes the filters (for stores that filter in memory).
    #[must_use]
    pub fn matches(&self, event: &ChangeRecord) -> bool {
        event.key_id.is_some()
            && self.key_id.is_none_or(|id| event.key_id == Some(id))
            && self
                .owner
                .as_ref()
                .is_none_or(|o| event.owner.as_ref() == Some(o))
            && self.kind.is_none_or(|k| event.kind == k)
            && self.since.is_none_or(|since| event.at >= since)
            && self.before.is_none_or(|before| event.seq < before)
    }
}

/// A page of events, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventPage {
    /// The events.
    pub events: Vec<ChangeRecord>,
    /// Pass as [`EventQuery::before`] for the next page; `None` on the last.
    pub next_cursor: Option<u64>,
}

impl EventPage {
    /// A page from `events` newest first, fetched with one more than `limit`: the extra one
    /// only says that another page follows.
    #[must_use]
    pub fn from_overfetch(mut events: Vec<ChangeRecord>, limit: usize) -> Self {
        let next_cursor = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|event| event.seq)
        } else {
            None
        };
        Self {
            events,
            next_cursor,
        }
    }
}

/// A key event as the management API, the command line and webhooks show it. Times are RFC
/// 3339 in UTC. With the `openapi` feature its schema is named `KeyEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = KeyEvent))]
pub struct EventView {
    /// The event's position in the log, as a string; increases with every change.
    #[cfg_attr(feature = "openapi", schema(example = "1042"))]
    pub id: String,
    /// What happened: `created`, `updated`, `enabled`, `disabled`, `revoked`, `deleted`,
    /// `regenerated`, `refreshed`, `expiring_soon`, `expired`, `leaked` or `rate_limited`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(example = "revoked"))]
    pub kind: String,
    /// The key.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub key_id: Option<KeyId>,
    /// The key's owner; `null` for a service key.
    pub owner: Option<String>,
    /// Who acted: `user:<id>`, `key:<id>`, `cli` or `system`; `null` when not recorded.
    #[cfg_attr(feature = "openapi", schema(example = "user:alice"))]
    pub actor: Option<String>,
    /// The address the change came from, when known.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "203.0.113.7"))]
    pub client_ip: Option<IpAddr>,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What changed (`fields`, with their values `from` and `to`), or the event's own details;
    /// never a secret.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: Value,
}

impl ChangeRecord {
    /// The event as the management API shows it.
    #[must_use]
    pub fn view(&self) -> EventView {
        EventView {
            id: self.seq.to_string(),
            kind: self.kind.as_str().to_owned(),
            key_id: self.key_id,
            owner: self.owner.clone(),
            actor: self.actor.as_ref().map(ToString::to_string),
            client_ip: self.client_ip,
            at: self.at,
            detail: if self.detail.is_null() {
                Value::Object(Map::new())
            } else {
                self.detail.clone()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_notices_look_back_thirty_days_only() {
        let now = Utc::now();
        let issued = crate::NewKey::service("ci")
            .scopes(["*"])
            .issue(
                &crate::ScopeCatalog::builder().build().unwrap(),
                &crate::TokenFormat::new("books").unwrap(),
                &crate::TokenHasher::sha256(),
                now,
            )
            .unwrap();
        let record = issued.record;
        let week = TimeDelta::days(7);
        let due = |expires_at| notice_due(&record, expires_at, now, week);
        assert_eq!(due(now - TimeDelta::days(29)), Some(ChangeKind::Expired));
        assert_eq!(due(now - EXPIRED_NOTICE_LOOKBACK), None);
        assert_eq!(
            due(now + TimeDelta::days(6)),
            Some(ChangeKind::ExpiringSoon)
        );
        assert_eq!(due(now + TimeDelta::days(8)), None);
        assert_eq!(due(DateTime::<Utc>::MIN_UTC), None, "no overflow");
        assert_eq!(due(DateTime::<Utc>::MAX_UTC), None);
    }

    #[test]
    fn actors_round_trip_through_their_names() {
        let id = KeyId::new();
        for actor in [
            Actor::user("alice:x"),
            Actor::Key(id),
            Actor::Cli,
            Actor::System,
        ] {
            assert_eq!(actor.to_string().parse::<Actor>(), Ok(actor));
        }
        for bad in ["", "user:", "key:nope", "root", "cli:x"] {
            assert!(bad.parse::<Actor>().is_err(), "{bad}");
        }
    }
}
