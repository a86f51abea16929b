//! The verified caller, as handlers receive it: a key or a signed-in person.

use std::fmt;
use std::sync::Arc;

use keyward_core::{KeyId, ScopeSet, TypedScope};

use crate::callers::User;

/// The verified caller of a request: an API key, or a person signed in through the
/// application's session ([`Callers`](crate::Callers)). Both pass the same guards with the same
/// rules; [`caller`](Self::caller) tells which it is.
///
/// Handlers take it as an extractor (`principal: Principal`, or `Option<Principal>` on routes
/// that also serve anonymous callers); cloning is cheap.
///
/// # Example
///
/// ```
/// use keyward::{Caller, Principal};
///
/// async fn whoami(principal: Principal) -> String {
///     let who = match principal.caller() {
///         Caller::Key(key) => format!("key {} of {}", key.name(), key.owner().unwrap_or("a service")),
///         Caller::Session(user) => format!("{}, signed in", user.name),
///     };
///     format!("{who}; may write books: {}", principal.has_scope("books:write"))
/// }
/// # let _ = whoami;
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Principal(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Key(keyward_core::Principal),
    Session(Arc<User>),
}

/// Which kind of caller a [`Principal`] is; see [`Principal::caller`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller<'a> {
    /// An API key: its id, name, kind, owner and effective scopes.
    Key(&'a keyward_core::Principal),
    /// A person signed in through the application's session, with the scopes of their role
    /// (implications applied).
    Session(&'a User),
}

impl Principal {
    /// A key's principal (also `From<keyward_core::Principal>`).
    pub(crate) fn key(principal: keyward_core::Principal) -> Self {
        Self(Repr::Key(principal))
    }

    /// The principal of a signed-in person. keyward makes these from
    /// [`Callers::session`](crate::Callers::session), with the scopes expanded by the catalog;
    /// build one yourself only in tests.
    #[must_use]
    pub fn session(user: User) -> Self {
        Self(Repr::Session(Arc::new(user)))
    }

    /// The key or the person.
    #[must_use]
    pub fn caller(&self) -> Caller<'_> {
        match &self.0 {
            Repr::Key(key) => Caller::Key(key),
            Repr::Session(user) => Caller::Session(user),
        }
    }

    /// The key, when a key authenticated the request.
    #[must_use]
    pub fn as_key(&self) -> Option<&keyward_core::Principal> {
        match &self.0 {
            Repr::Key(key) => Some(key),
            Repr::Session(_) => None,
        }
    }

    /// The key's id, when a key authenticated the request.
    #[must_use]
    pub fn key_id(&self) -> Option<KeyId> {
        self.as_key().map(keyward_core::Principal::key_id)
    }

    /// Who acts, for the event log: the key (by id), or the signed-in person (by user id).
    ///
    /// ```
    /// use keyward::{Actor, Principal, ScopeSet, User};
    ///
    /// let principal = Principal::session(User::new("alice", "Alice", ScopeSet::new()));
    /// assert_eq!(principal.actor(), Actor::user("alice"));
    /// ```
    #[must_use]
    pub fn actor(&self) -> keyward_core::Actor {
        match &self.0 {
            Repr::Key(key) => keyward_core::Actor::Key(key.key_id()),
            Repr::Session(user) => keyward_core::Actor::User(user.id.clone()),
        }
    }

    /// Whether a signed-in session (not a key) authenticated the request.
    #[must_use]
    pub fn is_session(&self) -> bool {
        matches!(self.0, Repr::Session(_))
    }

    /// The user the request acts for: the key's owner, or the signed-in person; `None` for a
    /// service key.
    #[must_use]
    pub fn user_id(&self) -> Option<&str> {
        match &self.0 {
            Repr::Key(key) => key.owner(),
            Repr::Session(user) => Some(&user.id),
        }
    }

    /// The key's name, or the person's display name.
    #[must_use]
    pub fn name(&self) -> &str {
        match &self.0 {
            Repr::Key(key) => key.name(),
            Repr::Session(user) => &user.name,
        }
    }

    /// What the caller may do now: a key's effective scopes (bounded by its owner's), or the
    /// person's role.
    #[must_use]
    pub fn scopes(&self) -> &ScopeSet {
        match &self.0 {
            Repr::Key(key) => key.scopes(),
            Repr::Session(user) => &user.scopes,
        }
    }

    /// Whether the caller may act with `scope` (wildcards honoured; malformed → `false`).
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().allows_str(scope)
    }

    /// Whether the caller may act with the typed scope `S`.
    #[must_use]
    pub fn has<S: TypedScope>(&self) -> bool {
        self.has_scope(S::NAME)
    }
}

impl From<keyward_core::Principal> for Principal {
    fn from(principal: keyward_core::Principal) -> Self {
        Self::key(principal)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Key(key) => f.debug_tuple("Key").field(key).finish(),
            Repr::Session(user) => f.debug_tuple("Session").field(user).finish(),
        }
    }
}

/// How the caller appears in logs and audit records: `user:alice`, `key:{id} (user:alice)` or
/// `key:{id} (service)`.
impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Session(user) => write!(f, "user:{}", user.id),
            Repr::Key(key) => match key.owner() {
                Some(owner) => write!(f, "key:{} (user:{owner})", key.key_id()),
                None => write!(f, "key:{} ({})", key.key_id(), key.kind()),
            },
        }
    }
}
