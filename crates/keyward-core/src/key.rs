//! The key record and the rules that change it: revoke, refresh, regenerate.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::digest::{TokenDigest, TokenHasher};
use crate::lifetime::{GracePeriod, MAX_LIFETIME};
use crate::scope::ScopeSet;
use crate::token::{KeyHint, Token, TokenFormat};

/// A key's public handle: a UUID v7, so ids sort by creation time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(Uuid);

impl KeyId {
    /// A fresh time-ordered id.
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps a stored UUID.
    #[must_use]
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID.
    #[must_use]
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for KeyId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for KeyId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl From<Uuid> for KeyId {
    fn from(value: Uuid) -> Self {
        Self(value)
    }
}

/// Whom a key acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Acts for its owner; its effective scopes are its scopes ∩ what the owner holds now.
    #[default]
    Personal,
    /// No user: server-to-server. Created by admins only.
    Service,
}

impl KeyKind {
    /// `"personal"` or `"service"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Personal => "personal",
            Self::Service => "service",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "personal" => Ok(Self::Personal),
            "service" => Ok(Self::Service),
            _ => Err(UnknownKind),
        }
    }
}

/// A key kind other than `personal` or `service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a key kind is \"personal\" or \"service\"")]
pub struct UnknownKind;

/// The secret a key had before a rolling regenerate, still accepted until `valid_until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviousSecret {
    /// Digest of the old token.
    pub digest: TokenDigest,
    /// The old token is accepted strictly before this instant.
    pub valid_until: DateTime<Utc>,
}

/// A stored API key. Holds the digest of its token, never the token.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// Public handle.
    pub id: KeyId,
    /// A name people recognise, 1–100 characters.
    pub name: String,
    /// Personal or service.
    pub kind: KeyKind,
    /// The application's user id; `None` for service keys.
    pub owner: Option<String>,
    /// The scopes granted to the key.
    pub scopes: ScopeSet,
    /// `{prefix}_…{last 4}` of the current token.
    pub hint: KeyHint,
    /// Digest of the current token.
    pub digest: TokenDigest,
    /// The previous token during a rolling regenerate.
    pub previous: Option<PreviousSecret>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change through the management operations.
    pub updated_at: DateTime<Utc>,
    /// Expiry; `None` = never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The duration a refresh extends the key by; `None` for never-expiring keys.
    pub lifetime: Option<TimeDelta>,
    /// When the key was last used, as recorded by the usage recorder.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The client address of the last use.
    pub last_used_ip: Option<IpAddr>,
    /// How many requests the key has authenticated.
    pub usage_count: u64,
    /// `false` = disabled; can be re-enabled.
    pub active: bool,
    /// Who disabled the key (a user id, or `key:<id>` for a service key); `None` while it is
    /// enabled. Someone other than this user needs `keys:admin` to enable it again.
    pub disabled_by: Option<String>,
    /// Set on revoke; a revoked key never works again.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Client addresses allowed to use the key; empty = any.
    pub allowed_ips: Vec<IpNet>,
    /// Requests per minute, if limited.
    pub rate_limit: Option<NonZeroU32>,
    /// Free JSON for the application.
    pub metadata: serde_json::Value,
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
    /// Who disables the key (with `active: Some(false)`), recorded on it.
    pub disabled_by: Option<String>,
    /// New allowed networks.
    pub allowed_ips: Option<Vec<IpNet>>,
    /// New rate limit; `Some(None)` removes it.
    pub rate_limit: Option<Option<NonZeroU32>>,
    /// New metadata.
    pub metadata: Option<serde_json::Value>,
}

/// A management operation that the key's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The key is revoked; it can be listed and deleted, nothing else.
    #[error("the key is revoked")]
    Revoked,
    /// The key is disabled; enable it first.
    #[error("the key is disabled")]
    Inactive,
    /// The key never expires, so there is nothing to refresh.
    #[error("the key never expires, so it cannot be refreshed")]
    NeverExpires,
    /// The record's lifetime is zero or negative, so a refresh would not extend it. keyward
    /// never creates such a record; one written by other means can still be listed,
    /// regenerated, revoked and deleted.
    #[error("the key's lifetime is not positive, so it cannot be refreshed")]
    InvalidLifetime,
    /// The new expiry would lie beyond the latest instant a `DateTime<Utc>` holds (only a
    /// clock within [`MAX_LIFETIME_DAYS`](crate::MAX_LIFETIME_DAYS) days of it gets
    /// there).
    #[error("the new expiry would be out of range")]
    ExpiryOutOfRange,
}

impl KeyRecord {
    /// Whether the key has been revoked.
    #[must_use]
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Whether the key is expired at `now` (expiry exactly now counts as expired).
    #[must_use]
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether `digest` is the current secret, or the previous one inside its grace period.
    #[must_use]
    pub fn matches(&self, digest: &TokenDigest, now: DateTime<Utc>) -> bool {
        self.digest == *digest
            || self
                .previous
                .is_some_and(|p| p.digest == *digest && now < p.valid_until)
    }

    /// Revokes the key at `now`; revoking twice keeps the first time.
    pub fn revoke(&mut self, now: DateTime<Utc>) {
        if self.revoked_at.is_none() {
            self.revoked_at = Some(now);
            self.previous = None;
            self.updated_at = now;
        }
    }

    /// Extends the expiry to `now + lifetime`.
    ///
    /// A lifetime above [`MAX_LIFETIME`] (a record written before the bound, or by other
    /// means) is capped at it, in the record too, so every refreshed key expires at most
    /// [`MAX_LIFETIME_DAYS`](crate::MAX_LIFETIME_DAYS) days from `now`. On an error
    /// the record is unchanged.
    ///
    /// # Errors
    ///
    /// [`RuleError::Revoked`], [`RuleError::Inactive`], [`RuleError::NeverExpires`],
    /// [`RuleError::InvalidLifetime`] for a lifetime that is not positive, or
    /// [`RuleError::ExpiryOutOfRange`] when `now + lifetime` is not representable.
    pub fn refresh(&mut self, now: DateTime<Utc>) -> Result<(), RuleError> {
        self.ensure_mutable()?;
        if !self.active {
            return Err(RuleError::Inactive);
        }
        let lifetime = self.lifetime.ok_or(RuleError::NeverExpires)?;
        if lifetime <= TimeDelta::zero() {
            return Err(RuleError::InvalidLifetime);
        }
        let lifetime = lifetime.min(MAX_LIFETIME);
        let expires_at = now
            .checked_add_signed(lifetime)
            .ok_or(RuleError::ExpiryOutOfRange)?;
        self.expires_at = Some(expires_at);
        self.lifetime = Some(lifetime);
        self.updated_at = now;
        Ok(())
    }

    /// Installs a new secret. With a grace period in the rotation, the old secret keeps working
    /// until it ends; any older previous secret stops at once.
    ///
    /// # Errors
    ///
    /// [`RuleError::Revoked`].
    pub fn rotate(
        &mut self,
        rotation: &SecretRotation,
        now: DateTime<Utc>,
    ) -> Result<(), RuleError> {
        self.ensure_mutable()?;
        self.previous = rotation
            .previous_valid_until
            .map(|valid_until| PreviousSecret {
                digest: self.digest,
                valid_until,
            });
        self.digest = rotation.digest;
        self.hint = rotation.hint.clone();
        self.updated_at = now;
        Ok(())
    }

    /// Applies validated changes.
    ///
    /// # Errors
    ///
    /// [`RuleError::Revoked`]: a revoked key stays as it was revoked.
    pub fn apply(&mut self, update: &KeyUpdate, now: DateTime<Utc>) -> Result<(), RuleError> {
        self.ensure_mutable()?;
        if let Some(name) = &update.name {
            self.name.clone_from(name);
        }
        if let Some(scopes) = &update.scopes {
            self.scopes.clone_from(scopes);
        }
        if let Some(active) = update.active {
            if active != self.active {
                self.disabled_by = if active {
                    None
                } else {
                    update.disabled_by.clone()
                };
            }
            self.active = active;
        }
        if let Some(ips) = &update.allowed_ips {
            self.allowed_ips.clone_from(ips);
        }
        if let Some(rate_limit) = update.rate_limit {
            self.rate_limit = rate_limit;
        }
        if let Some(metadata) = &update.metadata {
            self.metadata.clone_from(metadata);
        }
        self.updated_at = now;
        Ok(())
    }

    /// Fails with [`RuleError::Revoked`] for a revoked key.
    ///
    /// # Errors
    ///
    /// [`RuleError::Revoked`].
    pub fn ensure_mutable(&self) -> Result<(), RuleError> {
        if self.is_revoked() {
            Err(RuleError::Revoked)
        } else {
            Ok(())
        }
    }

    /// The public view of the record, as the management API shows it.
    #[must_use]
    pub fn view(&self) -> KeyView {
        KeyView {
            id: self.id,
            name: self.name.clone(),
            kind: self.kind,
            owner: self.owner.clone(),
            scopes: self.scopes.to_strings(),
            hint: self.hint.as_str().to_owned(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            last_used_ip: self.last_used_ip,
            usage_count: self.usage_count,
            active: self.active,
            disabled_by: self.disabled_by.clone(),
            revoked_at: self.revoked_at,
            allowed_ips: self.allowed_ips.iter().map(ToString::to_string).collect(),
            rate_limit: self.rate_limit.map(NonZeroU32::get),
            metadata: self.metadata.clone(),
        }
    }
}

/// The key object of the management API: every public field of a record, never the token
/// nor its digest. Times are RFC 3339 in UTC. With the `openapi` feature its schema is named
/// `KeyObject`, as the management API calls it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = KeyObject))]
pub struct KeyView {
    /// Public handle, a UUID v7.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: KeyId,
    /// Name.
    pub name: String,
    /// Personal or service.
    pub kind: KeyKind,
    /// Owner's user id; `null` for service keys.
    pub owner: Option<String>,
    /// Granted scopes, sorted.
    pub scopes: Vec<String>,
    /// `{prefix}_…{last 4}`.
    #[cfg_attr(feature = "openapi", schema(example = "books_…x7Qa"))]
    pub hint: String,
    /// Creation time (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Expiry; `null` = never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Client address of the last use.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_used_ip: Option<IpAddr>,
    /// Number of authenticated requests.
    pub usage_count: u64,
    /// `false` = disabled.
    pub active: bool,
    /// Who disabled the key, while it is disabled.
    pub disabled_by: Option<String>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Allowed client networks; empty = any.
    pub allowed_ips: Vec<String>,
    /// Requests per minute.
    pub rate_limit: Option<u32>,
    /// Application data.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: serde_json::Value,
}

/// A new secret for an existing key, ready to hand to [`KeyStore::replace_secret`].
///
/// [`KeyStore::replace_secret`]: crate::KeyStore::replace_secret
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRotation {
    /// Digest of the new token.
    pub digest: TokenDigest,
    /// Hint of the new token.
    pub hint: KeyHint,
    /// Until when the old token keeps working; `None` = it stops at once.
    pub previous_valid_until: Option<DateTime<Utc>>,
}

impl SecretRotation {
    /// Generates a new token and the rotation that installs it.
    ///
    /// With a grace period the old token keeps working until `now + grace`. A grace period
    /// that would end beyond the latest instant a `DateTime<Utc>` holds ends at that instant
    /// instead (only a clock within a day of it gets there), so it is never longer than asked.
    #[must_use]
    pub fn generate(
        format: &TokenFormat,
        hasher: &TokenHasher,
        grace: Option<GracePeriod>,
        now: DateTime<Utc>,
    ) -> (Self, Token) {
        let token = format.generate();
        let rotation = Self {
            digest: hasher.digest(&token),
            hint: token.hint(),
            previous_valid_until: grace.filter(|g| !g.is_zero()).map(|g| {
                now.checked_add_signed(g.as_time_delta())
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
            }),
        };
        (rotation, token)
    }
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
