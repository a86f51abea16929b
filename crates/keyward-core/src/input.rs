//! What a caller asks for when creating or changing a key, and its validation.
//!
//! Every check reports the field it concerns, so an HTTP layer can answer 422 naming it.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;

use chrono::{DateTime, TimeDelta, Utc};
use ipnet::IpNet;

use crate::catalog::ScopeCatalog;
use crate::digest::TokenHasher;
use crate::key::{KeyId, KeyKind, KeyRecord};
use crate::scope::ScopeSet;
use crate::token::{Token, TokenFormat};

/// Longest key name, in characters.
pub const NAME_MAX_CHARS: usize = 100;
/// Longest owner id, in bytes.
pub const OWNER_MAX_LEN: usize = 255;
/// The expiry presets, in days.
pub const EXPIRY_PRESET_DAYS: [u32; 5] = [7, 30, 60, 90, 180];
/// The default expiry, in days.
pub const DEFAULT_EXPIRY_DAYS: u32 = 30;
/// Longest grace period of a rolling regenerate, in seconds (one day).
pub const MAX_GRACE_SECONDS: u32 = 86_400;
/// Longest lifetime of a key, in days (about ten years).
///
/// A custom expiry ([`Expiry::At`]) lies at most this far from its creation, and a refresh
/// extends a key by at most this much, whatever lifetime its record holds. Bounding it keeps
/// every expiry far from the ends of what `DateTime<Utc>` and the stores can represent.
pub const MAX_LIFETIME_DAYS: u32 = 3650;
/// [`MAX_LIFETIME_DAYS`] as a `TimeDelta`.
#[allow(clippy::cast_lossless)] // `i64::from` is not available in a constant.
pub const MAX_LIFETIME: TimeDelta = TimeDelta::days(MAX_LIFETIME_DAYS as i64);
/// Largest metadata document, serialized, in bytes.
pub const METADATA_MAX_BYTES: usize = 16 * 1024;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name as the API spells it, e.g. `name` or `allowed_ips`.
    pub field: &'static str,
    /// What is wrong, safe to show to the caller.
    pub message: String,
}

/// Input that failed validation: every invalid field with a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    errors: Vec<FieldError>,
}

impl ValidationError {
    /// An error about a single field.
    #[must_use]
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldError {
                field,
                message: message.into(),
            }],
        }
    }

    /// Every invalid field, in the order checked.
    #[must_use]
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// The first invalid field.
    #[must_use]
    pub fn first_field(&self) -> &'static str {
        self.errors.first().map_or("", |e| e.field)
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(FieldError {
            field,
            message: message.into(),
        });
    }

    fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, ValidationError> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(ValidationError { errors: self.0 })
        }
    }
}

/// When a new key expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// After one of the presets (7, 30, 60, 90 or 180 days).
    InDays(u32),
    /// Never.
    Never,
    /// At a chosen instant, which must lie in the future and at most [`MAX_LIFETIME_DAYS`]
    /// days (3650) from the creation: the expiry `now + MAX_LIFETIME` itself is accepted, a
    /// microsecond later is not. The key's lifetime, used by refresh, is the time between.
    At(DateTime<Utc>),
}

impl Default for Expiry {
    fn default() -> Self {
        Self::InDays(DEFAULT_EXPIRY_DAYS)
    }
}

/// A grace period for a rolling regenerate: at most one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GracePeriod(u32);

impl GracePeriod {
    /// Validates a grace period in seconds.
    ///
    /// # Errors
    ///
    /// A [`ValidationError`] on `grace_seconds` above 86400.
    pub fn from_secs(seconds: u32) -> Result<Self, ValidationError> {
        if seconds > MAX_GRACE_SECONDS {
            return Err(ValidationError::field(
                "grace_seconds",
                format!("must be at most {MAX_GRACE_SECONDS} seconds (one day)"),
            ));
        }
        Ok(Self(seconds))
    }

    /// The length in seconds.
    #[must_use]
    pub const fn as_secs(self) -> u32 {
        self.0
    }

    /// Whether the old secret stops at once.
    #[must_use]
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The length as a `TimeDelta`.
    #[must_use]
    pub fn as_time_delta(self) -> TimeDelta {
        TimeDelta::seconds(i64::from(self.0))
    }
}

/// A request to create a key.
///
/// # Example
///
/// ```
/// use chrono::Utc;
/// use keyward_core::{Expiry, NewKey, ScopeCatalog, TokenFormat, TokenHasher};
///
/// let catalog = ScopeCatalog::builder().scope("books:read", "Read books").build()?;
/// let issued = NewKey::personal("Backup Script", "alice")
///     .scopes(["books:read"])
///     .expiry(Expiry::InDays(90))
///     .allowed_ips(["10.0.0.0/8"])
///     .issue(&catalog, &TokenFormat::new("books")?, &TokenHasher::sha256(), Utc::now())?;
///
/// assert_eq!(issued.record.name, "Backup Script");
/// assert!(issued.token.expose_secret().starts_with("books_"));
///
/// let err = NewKey::personal("", "alice").scopes(["books:read"])
///     .issue(&catalog, &TokenFormat::new("books")?, &TokenHasher::sha256(), Utc::now())
///     .unwrap_err();
/// assert_eq!(err.first_field(), "name");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    /// Name, 1–100 characters.
    pub name: String,
    /// Personal (needs an owner) or service (has none).
    pub kind: KeyKind,
    /// The owner's user id for a personal key.
    pub owner: Option<String>,
    /// Scopes from the catalog; at least one.
    pub scopes: Vec<String>,
    /// When the key expires; 30 days by default.
    pub expiry: Expiry,
    /// IPs or CIDRs allowed to use the key; empty = any.
    pub allowed_ips: Vec<String>,
    /// Requests per minute; must be above zero.
    pub rate_limit: Option<u32>,
    /// Free JSON for the application; `null` by default.
    pub metadata: serde_json::Value,
}

impl NewKey {
    /// A personal key acting for `owner`.
    #[must_use]
    pub fn personal(name: impl Into<String>, owner: impl Into<String>) -> Self {
        Self::new(name, KeyKind::Personal, Some(owner.into()))
    }

    /// A service key, with no owner.
    #[must_use]
    pub fn service(name: impl Into<String>) -> Self {
        Self::new(name, KeyKind::Service, None)
    }

    fn new(name: impl Into<String>, kind: KeyKind, owner: Option<String>) -> Self {
        Self {
            name: name.into(),
            kind,
            owner,
            scopes: Vec::new(),
            expiry: Expiry::default(),
            allowed_ips: Vec::new(),
            rate_limit: None,
            metadata: serde_json::Value::Null,
        }
    }

    /// Sets the scopes.
    #[must_use]
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the expiry.
    #[must_use]
    pub fn expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// Sets the allowed client networks.
    #[must_use]
    pub fn allowed_ips<I, S>(mut self, ips: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_ips = ips.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the rate limit in requests per minute.
    #[must_use]
    pub fn rate_limit(mut self, per_minute: u32) -> Self {
        self.rate_limit = Some(per_minute);
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// Validates every field and, if all are valid, creates the record and its token.
    ///
    /// # Errors
    ///
    /// A [`ValidationError`] listing every invalid field.
    pub fn issue(
        self,
        catalog: &ScopeCatalog,
        format: &TokenFormat,
        hasher: &TokenHasher,
        now: DateTime<Utc>,
    ) -> Result<IssuedKey, ValidationError> {
        let mut errors = Errors::default();
        let name = check_name(&self.name, &mut errors);
        match (self.kind, &self.owner) {
            (KeyKind::Personal, None) => errors.push("owner", "a personal key needs an owner"),
            (KeyKind::Personal, Some(owner)) => check_owner(owner, &mut errors),
            (KeyKind::Service, Some(_)) => errors.push("owner", "a service key has no owner"),
            (KeyKind::Service, None) => {}
        }
        let scopes = check_scopes(catalog, &self.scopes, &mut errors);
        let (expires_at, lifetime) = check_expiry(self.expiry, now, &mut errors);
        let allowed_ips = check_ips(&self.allowed_ips, &mut errors);
        let rate_limit = check_rate_limit(self.rate_limit, &mut errors);
        check_metadata(&self.metadata, &mut errors);
        let metadata = self.metadata;
        let (kind, owner) = (self.kind, self.owner);
        errors.finish(|| {
            let token = format.generate();
            let record = KeyRecord {
                id: KeyId::new(),
                name,
                kind,
                owner,
                scopes,
                hint: token.hint(),
                digest: hasher.digest(&token),
                previous: None,
                created_at: now,
                updated_at: now,
                expires_at,
                lifetime,
                last_used_at: None,
                last_used_ip: None,
                usage_count: 0,
                active: true,
                revoked_at: None,
                allowed_ips,
                rate_limit,
                metadata,
            };
            IssuedKey { record, token }
        })
    }
}

/// A newly created key and its token, which is shown to its owner once and never stored.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// The record to insert into the store.
    pub record: KeyRecord,
    /// The token; `Debug` redacts it.
    pub token: Token,
}

/// A request to change a key: each `Some` field is changed.
///
/// # Example
///
/// ```
/// use keyward_core::{KeyChanges, ScopeCatalog};
///
/// let catalog = ScopeCatalog::builder().build()?;
/// let changes = KeyChanges { name: Some("Nightly backup".into()), ..KeyChanges::default() };
/// assert!(changes.validate(&catalog).is_ok());
///
/// let bad = KeyChanges { rate_limit: Some(Some(0)), ..KeyChanges::default() };
/// assert_eq!(bad.validate(&catalog).unwrap_err().first_field(), "rate_limit");
/// # Ok::<(), keyward_core::ScopeError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyChanges {
    /// New name.
    pub name: Option<String>,
    /// New scopes.
    pub scopes: Option<Vec<String>>,
    /// Enable or disable.
    pub active: Option<bool>,
    /// New allowed networks.
    pub allowed_ips: Option<Vec<String>>,
    /// New rate limit; `Some(None)` removes it.
    pub rate_limit: Option<Option<u32>>,
    /// New metadata.
    pub metadata: Option<serde_json::Value>,
}

impl KeyChanges {
    /// Validates every present field.
    ///
    /// # Errors
    ///
    /// A [`ValidationError`] listing every invalid field.
    pub fn validate(self, catalog: &ScopeCatalog) -> Result<KeyUpdate, ValidationError> {
        let mut errors = Errors::default();
        let name = self.name.as_deref().map(|n| check_name(n, &mut errors));
        let scopes = self
            .scopes
            .as_deref()
            .map(|s| check_scopes(catalog, s, &mut errors));
        let allowed_ips = self
            .allowed_ips
            .as_deref()
            .map(|ips| check_ips(ips, &mut errors));
        let rate_limit = self.rate_limit.map(|r| check_rate_limit(r, &mut errors));
        if let Some(metadata) = &self.metadata {
            check_metadata(metadata, &mut errors);
        }
        errors.finish(|| KeyUpdate {
            name,
            scopes,
            active: self.active,
            allowed_ips,
            rate_limit,
            metadata: self.metadata,
        })
    }
}

/// Validated changes, applied with [`KeyRecord::apply`] or [`KeyStore::update`].
///
/// [`KeyStore::update`]: crate::KeyStore::update
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyUpdate {
    /// New name.
    pub name: Option<String>,
    /// New scopes.
    pub scopes: Option<ScopeSet>,
    /// Enable or disable.
    pub active: Option<bool>,
    /// New allowed networks.
    pub allowed_ips: Option<Vec<IpNet>>,
    /// New rate limit; `Some(None)` removes it.
    pub rate_limit: Option<Option<NonZeroU32>>,
    /// New metadata.
    pub metadata: Option<serde_json::Value>,
}

/// The expiry and lifetime of a new key created at `now`; `(None, None)` for a key that never
/// expires or an invalid expiry (reported in `errors`).
fn check_expiry(
    expiry: Expiry,
    now: DateTime<Utc>,
    errors: &mut Errors,
) -> (Option<DateTime<Utc>>, Option<TimeDelta>) {
    match expiry {
        Expiry::Never => (None, None),
        Expiry::InDays(days) if EXPIRY_PRESET_DAYS.contains(&days) => {
            let lifetime = TimeDelta::days(i64::from(days));
            match now.checked_add_signed(lifetime) {
                Some(at) => (Some(at), Some(lifetime)),
                None => {
                    // Only a clock within days of the end of time gets here.
                    errors.push("expires_in_days", "the expiry would be out of range");
                    (None, None)
                }
            }
        }
        Expiry::InDays(_) => {
            errors.push(
                "expires_in_days",
                "must be one of 7, 30, 60, 90, 180 or null (never)",
            );
            (None, None)
        }
        Expiry::At(at) if at <= now => {
            errors.push("expires_at", "must lie in the future");
            (None, None)
        }
        Expiry::At(at) => {
            // Both instants are representable, so their distance is too; `now + MAX_LIFETIME`
            // might not be.
            let lifetime = at.signed_duration_since(now);
            if lifetime > MAX_LIFETIME {
                errors.push(
                    "expires_at",
                    format!("must be at most {MAX_LIFETIME_DAYS} days from now"),
                );
                (None, None)
            } else {
                (Some(at), Some(lifetime))
            }
        }
    }
}

fn check_name(name: &str, errors: &mut Errors) -> String {
    let trimmed = name.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        errors.push("name", "must not be empty");
    } else if chars > NAME_MAX_CHARS {
        errors.push(
            "name",
            format!("must be at most {NAME_MAX_CHARS} characters"),
        );
    } else if trimmed.chars().any(char::is_control) {
        errors.push("name", "must not contain control characters");
    }
    trimmed.to_owned()
}

fn check_owner(owner: &str, errors: &mut Errors) {
    if owner.is_empty() || owner.len() > OWNER_MAX_LEN {
        errors.push("owner", format!("must be 1 to {OWNER_MAX_LEN} bytes long"));
    }
}

fn check_scopes(catalog: &ScopeCatalog, scopes: &[String], errors: &mut Errors) -> ScopeSet {
    if scopes.is_empty() {
        errors.push("scopes", "a key needs at least one scope");
        return ScopeSet::new();
    }
    match catalog.parse_set(scopes) {
        Ok(set) => set,
        Err(err) => {
            errors.push("scopes", err.to_string());
            ScopeSet::new()
        }
    }
}

/// Parses `allowed_ips` entries: a plain address becomes a host network.
fn check_ips(ips: &[String], errors: &mut Errors) -> Vec<IpNet> {
    let mut nets = Vec::with_capacity(ips.len());
    for raw in ips {
        let raw = raw.trim();
        match raw.parse::<IpNet>() {
            Ok(net) => nets.push(net.trunc()),
            Err(_) => match raw.parse::<IpAddr>() {
                Ok(addr) => nets.push(IpNet::from(addr)),
                Err(_) => errors.push(
                    "allowed_ips",
                    format!("{raw:?} is neither an IP address nor a CIDR network"),
                ),
            },
        }
    }
    nets
}

fn check_rate_limit(rate_limit: Option<u32>, errors: &mut Errors) -> Option<NonZeroU32> {
    let limit = rate_limit?;
    let checked = NonZeroU32::new(limit);
    if checked.is_none() {
        errors.push(
            "rate_limit",
            "must be a number of requests per minute above 0",
        );
    }
    checked
}

fn check_metadata(metadata: &serde_json::Value, errors: &mut Errors) {
    if !(metadata.is_object() || metadata.is_null()) {
        errors.push("metadata", "must be a JSON object or null");
    } else if serde_json::to_vec(metadata).map_or(0, |v| v.len()) > METADATA_MAX_BYTES {
        errors.push(
            "metadata",
            format!("must be at most {METADATA_MAX_BYTES} bytes"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenFormat;
    use crate::clock::extremes;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    fn catalog() -> ScopeCatalog {
        ScopeCatalog::builder()
            .scope("books:read", "Read")
            .build()
            .unwrap()
    }

    fn issue(new: NewKey) -> Result<IssuedKey, ValidationError> {
        new.issue(
            &catalog(),
            &TokenFormat::new("books").unwrap(),
            &TokenHasher::sha256(),
            now(),
        )
    }

    fn fields(err: &ValidationError) -> Vec<&'static str> {
        err.errors().iter().map(|e| e.field).collect()
    }

    #[test]
    fn defaults_to_thirty_days() {
        let key = issue(NewKey::personal("k", "u").scopes(["books:read"]))
            .unwrap()
            .record;
        assert_eq!(key.expires_at, Some(now() + TimeDelta::days(30)));
        assert_eq!(key.lifetime, Some(TimeDelta::days(30)));
        assert!(key.active);
    }

    #[test]
    fn presets_and_never() {
        for days in EXPIRY_PRESET_DAYS {
            let key = issue(
                NewKey::service("k")
                    .scopes(["books:read"])
                    .expiry(Expiry::InDays(days)),
            )
            .unwrap()
            .record;
            assert_eq!(
                key.expires_at,
                Some(now() + TimeDelta::days(i64::from(days)))
            );
        }
        let key = issue(NewKey::service("k").scopes(["*"]).expiry(Expiry::Never))
            .unwrap()
            .record;
        assert_eq!((key.expires_at, key.lifetime), (None, None));
        let err = issue(
            NewKey::service("k")
                .scopes(["*"])
                .expiry(Expiry::InDays(31)),
        )
        .unwrap_err();
        assert_eq!(fields(&err), ["expires_in_days"]);
    }

    #[test]
    fn custom_expiry_must_be_in_the_future() {
        let at = now() + TimeDelta::hours(5);
        let key = issue(NewKey::service("k").scopes(["*"]).expiry(Expiry::At(at)))
            .unwrap()
            .record;
        assert_eq!(key.lifetime, Some(TimeDelta::hours(5)));
        for past in [now(), now() - TimeDelta::seconds(1)] {
            let err =
                issue(NewKey::service("k").scopes(["*"]).expiry(Expiry::At(past))).unwrap_err();
            assert_eq!(fields(&err), ["expires_at"]);
        }
    }

    #[test]
    fn custom_expiry_is_at_most_the_longest_lifetime() {
        let at = |nudge| Expiry::At(now() + MAX_LIFETIME + nudge);
        for nudge in [
            TimeDelta::seconds(-1),
            TimeDelta::microseconds(-1),
            TimeDelta::zero(),
        ] {
            let key = issue(NewKey::service("k").scopes(["*"]).expiry(at(nudge)))
                .unwrap()
                .record;
            assert_eq!(key.lifetime, Some(MAX_LIFETIME + nudge));
        }
        for nudge in [TimeDelta::microseconds(1), TimeDelta::seconds(1)] {
            let err = issue(NewKey::service("k").scopes(["*"]).expiry(at(nudge))).unwrap_err();
            assert_eq!(fields(&err), ["expires_at"]);
            assert!(err.to_string().contains("3650 days"), "{err}");
        }
        // What chrono's serde accepts, beyond any RFC 3339 year.
        for far in ["+262142-12-31T23:59:59Z", "+10000-01-01T00:00:00Z"] {
            let far: DateTime<Utc> = far.parse().unwrap();
            let err =
                issue(NewKey::service("k").scopes(["*"]).expiry(Expiry::At(far))).unwrap_err();
            assert_eq!(fields(&err), ["expires_at"]);
        }
        assert_eq!(MAX_LIFETIME, TimeDelta::days(i64::from(MAX_LIFETIME_DAYS)));
    }

    #[test]
    fn name_length_is_counted_in_characters() {
        assert!(issue(NewKey::service("é".repeat(100)).scopes(["*"])).is_ok());
        let err = issue(NewKey::service("é".repeat(101)).scopes(["*"])).unwrap_err();
        assert_eq!(fields(&err), ["name"]);
        let err = issue(NewKey::service("   ").scopes(["*"])).unwrap_err();
        assert_eq!(fields(&err), ["name"]);
        let err = issue(NewKey::service("a\u{0}b").scopes(["*"])).unwrap_err();
        assert_eq!(fields(&err), ["name"]);
    }

    #[test]
    fn reports_every_bad_field() {
        let err = issue(NewKey {
            name: String::new(),
            kind: KeyKind::Service,
            owner: Some("bob".into()),
            scopes: vec!["books:delete".into()],
            expiry: Expiry::InDays(1),
            allowed_ips: vec!["10.0.0.0/33".into()],
            rate_limit: Some(0),
            metadata: serde_json::json!([1]),
        })
        .unwrap_err();
        assert_eq!(
            fields(&err),
            [
                "name",
                "owner",
                "scopes",
                "expires_in_days",
                "allowed_ips",
                "rate_limit",
                "metadata"
            ]
        );
        assert!(err.to_string().contains("books:delete"));
        assert!(err.to_string().contains("10.0.0.0/33"));
    }

    #[test]
    fn personal_keys_need_owners() {
        let mut new = NewKey::personal("k", "u").scopes(["*"]);
        new.owner = None;
        assert_eq!(fields(&issue(new).unwrap_err()), ["owner"]);
    }

    #[test]
    fn ips_and_cidrs() {
        let key = issue(NewKey::service("k").scopes(["*"]).allowed_ips([
            "192.168.1.7",
            "10.1.2.3/8",
            "2001:db8::/32",
            "::1",
        ]))
        .unwrap()
        .record;
        let shown: Vec<String> = key.allowed_ips.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["192.168.1.7/32", "10.0.0.0/8", "2001:db8::/32", "::1/128"]
        );
    }

    #[test]
    fn grace_is_at_most_a_day() {
        assert!(GracePeriod::from_secs(86_400).is_ok());
        assert_eq!(
            GracePeriod::from_secs(86_401).unwrap_err().first_field(),
            "grace_seconds"
        );
    }

    #[test]
    fn changes_validate_each_present_field() {
        let update = KeyChanges {
            name: Some(" New ".into()),
            rate_limit: Some(None),
            ..KeyChanges::default()
        }
        .validate(&catalog())
        .unwrap();
        assert_eq!(update.name.as_deref(), Some("New"));
        assert_eq!(update.rate_limit, Some(None));
        let err = KeyChanges {
            scopes: Some(vec![]),
            allowed_ips: Some(vec!["nope".into()]),
            ..KeyChanges::default()
        }
        .validate(&catalog())
        .unwrap_err();
        assert_eq!(fields(&err), ["scopes", "allowed_ips"]);
    }

    fn issue_at(expiry: Expiry, at: DateTime<Utc>) -> Result<IssuedKey, ValidationError> {
        NewKey::service("k").scopes(["*"]).expiry(expiry).issue(
            &catalog(),
            &TokenFormat::new("books").unwrap(),
            &TokenHasher::sha256(),
            at,
        )
    }

    proptest! {
        /// A custom expiry is accepted exactly when it lies in `(now, now + MAX_LIFETIME]`,
        /// whatever the two instants; the key then expires there, not before.
        #[test]
        fn custom_expiry_is_bounded_at_any_instant(
            now in extremes::instant(),
            at in extremes::instant(),
        ) {
            let result = issue_at(Expiry::At(at), now);
            let distance = at.signed_duration_since(now);
            let valid = distance > TimeDelta::zero() && distance <= MAX_LIFETIME;
            match result {
                Ok(issued) => {
                    prop_assert!(valid);
                    let key = issued.record;
                    prop_assert_eq!(key.expires_at, Some(at));
                    prop_assert_eq!(key.lifetime, Some(distance));
                    prop_assert!(!key.is_expired(now));
                }
                Err(err) => {
                    prop_assert!(!valid);
                    prop_assert_eq!(fields(&err), ["expires_at"]);
                }
            }
        }

        /// A preset expiry at any instant: `now + days`, or a field error when that is out
        /// of range.
        #[test]
        fn preset_expiry_never_panics(
            now in extremes::instant(),
            days in prop::sample::select(EXPIRY_PRESET_DAYS.to_vec()),
        ) {
            let lifetime = TimeDelta::days(i64::from(days));
            match (issue_at(Expiry::InDays(days), now), now.checked_add_signed(lifetime)) {
                (Ok(issued), Some(end)) => {
                    prop_assert_eq!(issued.record.expires_at, Some(end));
                    prop_assert_eq!(issued.record.lifetime, Some(lifetime));
                }
                (Err(err), None) => prop_assert_eq!(fields(&err), ["expires_in_days"]),
                (result, end) => prop_assert!(false, "{result:?} for an end of {end:?}"),
            }
        }
    }
}
