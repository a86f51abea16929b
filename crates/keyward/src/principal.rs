//! The verified caller, as handlers receive it.

use std::fmt;
use std::ops::Deref;

/// The verified caller of a request: the key, whom it acts for, and its effective scopes.
///
/// The layer puts one in the request extensions; handlers take it as an extractor
/// (`principal: Principal`, or `Option<Principal>` on routes that also serve anonymous or
/// session-authenticated callers). It dereferences to [`keyward_core::Principal`], which holds
/// the accessors (`key_id`, `owner`, `scopes`, `has_scope`, `has::<T>()`); cloning is cheap.
///
/// It is a type of this crate, rather than the core one, so that it can be an axum extractor.
///
/// # Example
///
/// ```
/// use keyward::Principal;
///
/// async fn whoami(principal: Principal) -> String {
///     format!(
///         "key {} of {}; may write books: {}",
///         principal.name(),
///         principal.owner().unwrap_or("a service"),
///         principal.has_scope("books:write"),
///     )
/// }
/// # let _ = whoami;
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Principal(keyward_core::Principal);

impl Principal {
    /// The core principal.
    #[must_use]
    pub fn into_inner(self) -> keyward_core::Principal {
        self.0
    }
}

impl Deref for Principal {
    type Target = keyward_core::Principal;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl AsRef<keyward_core::Principal> for Principal {
    fn as_ref(&self) -> &keyward_core::Principal {
        &self.0
    }
}

impl From<keyward_core::Principal> for Principal {
    fn from(principal: keyward_core::Principal) -> Self {
        Self(principal)
    }
}

impl From<Principal> for keyward_core::Principal {
    fn from(principal: Principal) -> Self {
        principal.0
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}
