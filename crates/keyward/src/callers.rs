//! The application's people: who is signed in on a request, what a user holds now, and who
//! the users are.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use http::request::Parts;
use keyward_core::ScopeSet;

/// A person the application knows: an id (what keys name as their owner), a display name, and
/// the scopes the person's role grants now.
///
/// # Example
///
/// ```
/// use keyward::{ScopeSet, User};
///
/// let alice = User::new("u-17", "Alice", ScopeSet::parse(["books:write"])?);
/// assert_eq!(alice.id, "u-17");
/// # Ok::<(), keyward::core::ScopeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The id keys name as their owner.
    pub id: String,
    /// What people see: a login name or a full name.
    pub name: String,
    /// What the user's role grants now; implications are applied by the catalog.
    pub scopes: ScopeSet,
}

impl User {
    /// A user.
    #[must_use]
    pub fn new(id: impl Into<String>, name: impl Into<String>, scopes: ScopeSet) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            scopes,
        }
    }
}

/// The application's people, as keyward sees them: implement it once and give it to
/// [`KeywardBuilder::callers`](crate::KeywardBuilder::callers).
///
/// * [`session`](Self::session) turns a request's session (a cookie, usually) into the signed-in
///   [`User`]. keyward asks it only for a request that presents no API key, and only when a
///   guard or extractor needs the caller, so public routes never pay for it. Sessions then pass
///   the same guards as keys ([`Principal`](crate::Principal),
///   [`RequireScope`](crate::RequireScope), [`require_scopes`](crate::require_scopes), the
///   admin router), with one extra rule: a session may not make a state-changing request from
///   another site (403).
/// * [`user`](Self::user) says what a key's owner holds now. A personal key never does more than
///   its owner: its effective scopes are its own scopes ∩ the owner's. The answer is cached with
///   the key until the key changes, the cache TTL passes or the application calls
///   [`Keyward::invalidate_owner`](crate::Keyward::invalidate_owner).
///   `Ok(None)` means the user is gone: their keys stop working (401).
/// * [`users`](Self::users) lists the users with display names, for the management page's owner
///   picker and to show names instead of ids; `Ok(None)` (the default) when the application
///   does not list its users.
///
/// An error from any of them is a 503, never a 401 or 403: a user database that is down does
/// not turn callers away as if they had no rights.
///
/// # Example
///
/// ```
/// use http::request::Parts;
/// use keyward::{CallerError, Callers, ScopeSet, User};
///
/// /// Users in a table; sessions in a signed cookie (both simplified here).
/// #[derive(Clone)]
/// struct People;
///
/// fn find(id: &str) -> Option<User> {
///     let scopes = match id {
///         "alice" => ScopeSet::parse(["books:write"]).ok()?,
///         _ => return None,
///     };
///     Some(User::new(id, "Alice Liddell", scopes))
/// }
///
/// impl Callers for People {
///     async fn session(&self, parts: &Parts) -> Result<Option<User>, CallerError> {
///         let cookie = parts.headers.get("cookie").and_then(|c| c.to_str().ok());
///         Ok(cookie.and_then(|c| c.strip_prefix("session=")).and_then(find))
///     }
///
///     async fn user(&self, id: &str) -> Result<Option<User>, CallerError> {
///         Ok(find(id))
///     }
/// }
/// # let _ = keyward::Keyward::builder(keyward::MemoryStore::new()).callers(People);
/// ```
pub trait Callers: Send + Sync + 'static {
    /// The person signed in on this request, if any. The default: nobody (keys only).
    fn session(
        &self,
        parts: &Parts,
    ) -> impl Future<Output = Result<Option<User>, CallerError>> + Send {
        let _ = parts;
        async { Ok(None) }
    }

    /// The user `id` as of now; `None` if there is no such user any more.
    fn user(&self, id: &str) -> impl Future<Output = Result<Option<User>, CallerError>> + Send;

    /// Every user, for owner pickers and display names; `None` (the default) when the
    /// application does not list them.
    fn users(&self) -> impl Future<Output = Result<Option<Vec<User>>, CallerError>> + Send {
        async { Ok(None) }
    }
}

/// The application's user lookup failed (its database is down, a remote call timed out, …):
/// answered 503.
#[derive(Debug, thiserror::Error)]
#[error("the user lookup failed: {message}")]
pub struct CallerError {
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl CallerError {
    /// A failure with a message.
    #[must_use]
    pub fn msg(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A failure caused by `source`.
    #[must_use]
    pub fn new(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        let source = source.into();
        Self {
            message: source.to_string(),
            source: Some(source),
        }
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, CallerError>> + Send + 'a>>;

/// The object-safe form keyward stores.
pub(crate) trait DynCallers: Send + Sync + 'static {
    fn session<'a>(&'a self, parts: &'a Parts) -> Boxed<'a, Option<User>>;
    fn user<'a>(&'a self, id: &'a str) -> Boxed<'a, Option<User>>;
    fn users(&self) -> Boxed<'_, Option<Vec<User>>>;
}

impl<C: Callers> DynCallers for C {
    fn session<'a>(&'a self, parts: &'a Parts) -> Boxed<'a, Option<User>> {
        Box::pin(Callers::session(self, parts))
    }

    fn user<'a>(&'a self, id: &'a str) -> Boxed<'a, Option<User>> {
        Box::pin(Callers::user(self, id))
    }

    fn users(&self) -> Boxed<'_, Option<Vec<User>>> {
        Box::pin(Callers::users(self))
    }
}

impl fmt::Debug for dyn DynCallers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Callers")
    }
}

impl crate::KeywardBuilder {
    /// The application's people ([`Callers`]): the session behind a request without a key,
    /// what a key's owner holds now (a personal key never does more than its owner), and the
    /// list of users for the management page. Without it only keys are callers, and a
    /// personal key keeps its own scopes.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{CallerError, Callers, Keyward, MemoryStore, ScopeSet, User};
    ///
    /// struct Users;
    ///
    /// impl Callers for Users {
    ///     async fn user(&self, id: &str) -> Result<Option<User>, CallerError> {
    ///         // Look the user up in the application's database here.
    ///         let scopes = ScopeSet::parse(["*"]).map_err(CallerError::new)?;
    ///         Ok((id == "alice").then(|| User::new(id, "Alice", scopes)))
    ///     }
    /// }
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .callers(Users)
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn callers(mut self, callers: impl Callers) -> Self {
        self.callers = Some(Box::new(callers));
        self
    }
}
