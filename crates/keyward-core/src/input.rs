//! What a caller asks for when creating or changing a key, and its validation.
//!
//! Every check reports the field it concerns, so an HTTP layer can answer 422 naming it.

use std::net::IpAddr;
use std::num::NonZeroU32;

use chrono::{DateTime, TimeDelta, Utc};
use ipnet::IpNet;

use crate::catalog::ScopeCatalog;
use crate::digest::TokenHasher;
use crate::key::{KeyId, KeyKind, KeyRecord, KeyUpdate};
use crate::lifetime::{EXPIRY_PRESET_DAYS, Expiry, MAX_LIFETIME, MAX_LIFETIME_DAYS};
use crate::scope::ScopeSet;
use crate::token::{Token, TokenFormat};
use crate::validation::{Errors, ValidationError};

/// Longest key name, in characters.
pub const NAME_MAX_CHARS: usize = 100;
/// Longest owner id, in bytes.
pub const OWNER_MAX_LEN: usize = 255;
/// Largest metadata document, serialized, in bytes.
pub const METADATA_MAX_BYTES: usize = 16 * 1024;

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
                disabled_by: None,
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
    /// Who disables the key (with `active: Some(false)`), recorded on it.
    pub disabled_by: Option<String>,
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
            disabled_by: self.disabled_by,
            allowed_ips,
            rate_limit,
            metadata: self.metadata,
        })
    }
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
#[path = "input_tests.rs"]
mod tests;
