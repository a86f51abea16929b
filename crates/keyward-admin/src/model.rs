//! The JSON bodies of the management routes, with their OpenAPI schemas.

use chrono::{DateTime, Datelike, Utc};
use keyward_core::{CatalogEntry, DailyUsage, KeyKind, KeyView};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// A key as the management API shows it: core's [`KeyView`] (schema `KeyObject`).
pub type KeyObject = KeyView;

/// A new key and its token, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IssuedKeyBody {
    /// The key.
    pub key: KeyObject,
    /// The token. It is not stored and cannot be shown again.
    #[schema(example = "books_<46 letters and digits, shown once>")]
    pub token: String,
}

/// One page of keys, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    /// The keys of this page.
    pub keys: Vec<KeyObject>,
    /// Pass as `cursor` to read the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A key event (schema `KeyEvent`): core's [`EventView`](keyward_core::EventView).
pub type EventObject = keyward_core::EventView;

/// One page of key events, newest first (`GET /events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    /// The events of this page.
    pub events: Vec<EventObject>,
    /// Pass as `cursor` to read the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A key's daily use counts (`GET /keys/{id}/usage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageHistory {
    /// One entry per day (UTC), oldest first, ending today; a day without uses counts 0.
    /// Uses not yet written to the store count too, on the day of their latest use.
    #[schema(example = json!([{"date": "2026-11-22", "count": 0}, {"date": "2026-11-23", "count": 12}]))]
    pub days: Vec<DailyUsage>,
}

/// The application's scope catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScopeList {
    /// Every scope a key can hold, sorted by name.
    pub scopes: Vec<ScopeEntry>,
}

/// One scope of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScopeEntry {
    /// `resource:action`.
    #[schema(example = "books:read")]
    pub name: String,
    /// What it allows.
    pub description: String,
}

impl From<CatalogEntry> for ScopeEntry {
    fn from(entry: CatalogEntry) -> Self {
        Self {
            name: entry.scope.to_string(),
            description: entry.description,
        }
    }
}

/// The application's users (`GET /users`), for the owner picker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    /// Every user the application lists, sorted by name.
    pub users: Vec<UserEntry>,
}

/// One of the application's users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserEntry {
    /// The id keys name as their owner.
    #[schema(example = "u-17")]
    pub id: String,
    /// What people see.
    #[schema(example = "Alice")]
    pub name: String,
    /// What the user's role grants now, implications included: a key of theirs can hold
    /// only these.
    #[schema(example = json!(["books:read", "books:write"]))]
    pub scopes: Vec<String>,
}

/// The key that authenticated the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SelfKey {
    /// The key.
    pub key: KeyObject,
    /// What the key may do right now: its scopes with their implications, bounded by what its
    /// owner holds.
    pub effective_scopes: Vec<String>,
}

/// The body of `POST /keys`. Unknown members are refused (422 naming them).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A name people recognise, 1–100 characters.
    #[serde(default)]
    #[schema(required = true, value_type = String, example = "Backup Script")]
    pub name: Option<String>,
    /// Scopes from the catalog, at least one; only scopes the caller holds.
    #[serde(default)]
    #[schema(required = true, value_type = Vec<String>, example = json!(["books:read", "books:write"]))]
    pub scopes: Option<Vec<String>>,
    /// Days until expiry: 7, 30, 60, 90 or 180; `null` = never. Absent: 30, unless
    /// `expires_at` is given.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, example = 30)]
    pub expires_in_days: Option<Option<u32>>,
    /// A custom expiry instead of `expires_in_days`: an RFC 3339 date-time with a four-digit
    /// year (0000 to 9999, in UTC), in the future and at most 3650 days
    /// (`MAX_LIFETIME_DAYS`) from now; later is refused with 422. The key's lifetime, which a
    /// refresh extends it by, is the time from now until then.
    #[serde(default, deserialize_with = "rfc3339")]
    #[schema(example = "2027-01-31T00:00:00Z")]
    pub expires_at: Option<DateTime<Utc>>,
    /// IP addresses or CIDR networks allowed to use the key; empty or absent = any.
    #[serde(default)]
    pub allowed_ips: Option<Vec<String>>,
    /// `personal` (default) or `service` (administrators only).
    #[serde(default)]
    pub kind: Option<KeyKind>,
    /// The owner of a personal key; absent = the caller. Another owner needs `keys:admin`.
    #[serde(default)]
    pub owner: Option<String>,
    /// Requests per minute, above 0; absent or `null` = unlimited.
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// Free JSON object for the application.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// The body of `PATCH /keys/{id}`: every member is optional; absent members stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    /// New name, 1–100 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String)]
    pub name: Option<Option<String>>,
    /// New scopes from the catalog, only scopes the caller holds.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<String>)]
    pub scopes: Option<Option<Vec<String>>>,
    /// `false` disables the key, `true` enables it again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool)]
    pub active: Option<Option<bool>>,
    /// New allowed networks; `[]` = any.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<String>)]
    pub allowed_ips: Option<Option<Vec<String>>>,
    /// New rate limit in requests per minute; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub rate_limit: Option<Option<u32>>,
    /// New metadata (a JSON object, or `null`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<serde_json::Value>>,
}

/// The body of `POST /keys/{id}/regenerate`; the whole body may be omitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegenerateRequest {
    /// Keep the old token working for this many seconds (at most 86400) for a rolling
    /// change; absent or 0 = the old token stops at once.
    #[serde(default)]
    #[schema(maximum = 86400, example = 3600)]
    pub grace_seconds: Option<u32>,
}

/// An RFC 9457 problem document; every error of these routes is one
/// (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProblemBody {
    /// The problem type; `about:blank`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    #[serde(default)]
    pub detail: Option<String>,
    /// Machine-readable code: `unauthorized`, `invalid_token`, `insufficient_scope`,
    /// `forbidden`, `not_found`, `conflict`, `validation_failed`, `malformed_body`,
    /// `unsupported_media_type`, `temporarily_unavailable`.
    pub error: String,
    /// For `insufficient_scope`: the scope the caller lacks.
    #[serde(default)]
    pub scope: Option<String>,
    /// For `validation_failed`: the first invalid field.
    #[serde(default)]
    pub field: Option<String>,
    /// For `validation_failed`: every invalid field with a message.
    #[serde(default)]
    pub errors: Option<Vec<FieldProblem>>,
}

/// One invalid field of a 422 problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldProblem {
    /// The member's name as the request spells it.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Deserializes an optional RFC 3339 date-time strictly: a four-digit year and an explicit
/// offset, and an instant whose UTC year is still four digits, so that every stored time is
/// written back as RFC 3339. chrono's own `Deserialize` also takes `+262142-12-31T23:59:59Z`.
fn rfc3339<'de, D>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    const EXPECTED: &str =
        "must be an RFC 3339 date-time with a four-digit year, like 2027-01-31T00:00:00Z";
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
        .filter(|at| (0..=9999).contains(&at.year()))
        .map(Some)
        .ok_or_else(|| D::Error::custom(EXPECTED))
}

/// Deserializes a member that is present, so `Some(None)` means an explicit `null` and `None`
/// (through `#[serde(default)]`) means absent.
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
