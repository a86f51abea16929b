//! Who is calling: the verified key, as handlers see it.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::key::{KeyId, KeyKind, KeyRecord};
use crate::scope::{ScopeSet, TypedScope};

/// The verified caller of a request: a key, whom it acts for, and what it may do right now.
///
/// Cloning is cheap (one reference count). The scopes are the *effective* ones: the key's
/// scopes with their implications, bounded by what the owner holds now for a personal key.
///
/// # Example
///
/// ```
/// use keyward_core::{KeyId, KeyKind, Principal, ScopeSet};
///
/// let principal = Principal::new(
///     KeyId::new(),
///     "Backup Script",
///     KeyKind::Personal,
///     Some("alice".to_owned()),
///     ScopeSet::parse(["books:*"])?,
///     None,
/// );
/// assert!(principal.has_scope("books:write"));
/// assert!(!principal.has_scope("reviews:read"));
/// assert_eq!(principal.owner(), Some("alice"));
/// # Ok::<(), keyward_core::ScopeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(Arc<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    key_id: KeyId,
    name: String,
    kind: KeyKind,
    owner: Option<String>,
    scopes: ScopeSet,
    expires_at: Option<DateTime<Utc>>,
    previous_token: bool,
}

impl Principal {
    /// Builds a principal from its parts.
    #[must_use]
    pub fn new(
        key_id: KeyId,
        name: impl Into<String>,
        kind: KeyKind,
        owner: Option<String>,
        scopes: ScopeSet,
        expires_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self(Arc::new(Inner {
            key_id,
            name: name.into(),
            kind,
            owner,
            scopes,
            expires_at,
            previous_token: false,
        }))
    }

    /// Marks the principal as authenticated by the key's previous token, which a regenerate
    /// replaced and which works only until its grace period ends.
    #[must_use]
    pub fn with_previous_token(mut self, previous: bool) -> Self {
        Arc::make_mut(&mut self.0).previous_token = previous;
        self
    }

    /// Whether the request presented the key's previous token (in its grace period). Such a
    /// token still works, but may not manage keys: it could otherwise end its own
    /// replacement.
    #[must_use]
    pub fn is_previous_token(&self) -> bool {
        self.0.previous_token
    }

    /// The principal of `record` with the given effective scopes.
    #[must_use]
    pub fn from_record(record: &KeyRecord, effective_scopes: ScopeSet) -> Self {
        Self::new(
            record.id,
            record.name.clone(),
            record.kind,
            record.owner.clone(),
            effective_scopes,
            record.expires_at,
        )
    }

    /// The key's id.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.0.key_id
    }

    /// The key's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Personal or service.
    #[must_use]
    pub fn kind(&self) -> KeyKind {
        self.0.kind
    }

    /// The user the key acts for; `None` for a service key.
    #[must_use]
    pub fn owner(&self) -> Option<&str> {
        self.0.owner.as_deref()
    }

    /// The effective scopes.
    #[must_use]
    pub fn scopes(&self) -> &ScopeSet {
        &self.0.scopes
    }

    /// The key's expiry; `None` = never.
    #[must_use]
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }

    /// Whether the principal may act with `scope` (wildcards honoured; malformed → `false`).
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.allows_str(scope)
    }

    /// Whether the principal may act with the typed scope `S`.
    #[must_use]
    pub fn has<S: TypedScope>(&self) -> bool {
        self.has_scope(S::NAME)
    }
}
