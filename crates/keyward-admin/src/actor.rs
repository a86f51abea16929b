//! Who is calling the management routes: a keyward key or the application's own session.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use keyward::{AuthError, Keyward};
use keyward_core::scope::KEYS_ADMIN;
use keyward_core::{KeyId, KeyKind, Scope, ScopeSet};

use crate::error::AdminError;

/// The caller of a management route, as the routes authorize it.
///
/// An actor is either a keyward key (built from the request's [`Principal`](keyward::Principal))
/// or a person signed in through the application's own sessions (returned by an
/// [`ActorSource`]). What it may do:
///
/// * read routes need `keys:read`, changes need `keys:write` in [`grants`](Self::grants);
/// * without `keys:admin` it sees and changes only the keys whose owner is its
///   [`user_id`](Self::user_id) — another owner's key answers 404 — and creates only personal
///   keys for itself;
/// * with `keys:admin` it sees every key, filters by owner, creates service keys and keys for
///   other owners;
/// * it never creates or widens a key beyond its own grants, nor obtains a token for one
///   (regenerate) that holds more than its grants: 403 `insufficient_scope` naming the scope.
///
/// A service key has no user: it manages keys only with `keys:admin`.
///
/// # Example
///
/// ```
/// use keyward_admin::Actor;
/// use keyward_core::ScopeSet;
///
/// let person = Actor::user("alice", ScopeSet::parse(["keys:write", "books:read"])?);
/// assert_eq!(person.user_id(), Some("alice"));
/// assert!(!person.is_admin());
///
/// let admin = Actor::user("root", ScopeSet::parse(["*"])?);
/// assert!(admin.is_admin());
/// assert!(Actor::user("bob", ScopeSet::new()).admin(true).is_admin());
/// # Ok::<(), keyward_core::ScopeError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Actor {
    user_id: Option<String>,
    grants: ScopeSet,
    via: Via,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Via {
    Session,
    Key { id: KeyId, kind: KeyKind },
}

impl Actor {
    /// A person signed in through the application: `user_id` and the scopes the person holds
    /// (the catalog's implications are applied when checking).
    #[must_use]
    pub fn user(user_id: impl Into<String>, grants: ScopeSet) -> Self {
        Self {
            user_id: Some(user_id.into()),
            grants,
            via: Via::Session,
        }
    }

    /// Grants or withdraws `keys:admin`: an administrator manages every owner's keys.
    #[must_use]
    pub fn admin(mut self, admin: bool) -> Self {
        let scope = Scope::parse(KEYS_ADMIN).expect("keys:admin is a valid scope");
        if admin {
            self.grants.insert(scope);
        } else {
            self.grants = self
                .grants
                .iter()
                .filter(|s| **s != scope)
                .cloned()
                .collect();
        }
        self
    }

    /// The actor of a request authenticated by a keyward key: the key's owner (none for a
    /// service key) and its effective scopes.
    #[must_use]
    pub fn from_principal(principal: &keyward_core::Principal) -> Self {
        Self {
            user_id: principal.owner().map(str::to_owned),
            grants: principal.scopes().clone(),
            via: Via::Key {
                id: principal.key_id(),
                kind: principal.kind(),
            },
        }
    }

    /// The actor with the catalog's implications applied to its grants.
    fn expanded(mut self, catalog: &keyward_core::ScopeCatalog) -> Self {
        self.grants = catalog.expand(&self.grants);
        self
    }

    /// The user the actor acts for; `None` for a service key.
    #[must_use]
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// The scopes the actor holds.
    #[must_use]
    pub fn grants(&self) -> &ScopeSet {
        &self.grants
    }

    /// Whether the actor holds `keys:admin`.
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.grants.allows_str(KEYS_ADMIN)
    }

    /// The key the actor authenticated with, if it is a key.
    #[must_use]
    pub fn key_id(&self) -> Option<KeyId> {
        match self.via {
            Via::Key { id, .. } => Some(id),
            Via::Session => None,
        }
    }

    /// Whether the actor signed in through the application's session.
    #[must_use]
    pub fn is_session(&self) -> bool {
        self.via == Via::Session
    }
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Actor")
            .field("user_id", &self.user_id)
            .field("grants", &self.grants)
            .field("via", &self.via)
            .finish()
    }
}

/// How an actor appears in audit events: `user:alice`, `key:{id} (user:alice)` or
/// `key:{id} (service)`.
impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.via, &self.user_id) {
            (Via::Session, Some(user)) => write!(f, "user:{user}"),
            (Via::Session, None) => f.write_str("session"),
            (Via::Key { id, .. }, Some(user)) => write!(f, "key:{id} (user:{user})"),
            (Via::Key { id, kind }, None) => write!(f, "key:{id} ({kind})"),
        }
    }
}

/// Which credential decides the actor when a request carries both a keyward key and a
/// session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precedence {
    /// A presented key wins; the session is asked only when there is no key. The default: a
    /// key is the more specific statement of who acts, and scripts never carry sessions.
    #[default]
    KeyFirst,
    /// The session wins; the key is used only when there is no session.
    SessionFirst,
}

/// The application's own sign-in, as the management routes see it.
///
/// Implement it for an application that signs people in with sessions, and hand it to
/// [`router_with`](crate::router_with). Return `Ok(None)` when the request carries no session;
/// the routes then fall back to the keyward key (or answer 401). Return an error when the
/// session lookup itself failed: the routes answer with it (use
/// [`AdminError::Unavailable`] for a session store that is down) rather than treating the
/// caller as anonymous.
///
/// # Example
///
/// ```
/// use http::request::Parts;
/// use keyward_admin::{Actor, ActorSource, AdminError};
/// use keyward_core::ScopeSet;
///
/// /// Sessions carried in a signed cookie, looked up elsewhere in the application.
/// #[derive(Clone, Debug)]
/// struct Sessions;
///
/// impl ActorSource for Sessions {
///     async fn actor(&self, parts: &mut Parts) -> Result<Option<Actor>, AdminError> {
///         let Some(cookie) = parts.headers.get("cookie") else { return Ok(None) };
///         // A real application verifies the cookie and loads the user and their role.
///         if cookie.as_bytes() == b"session=alice" {
///             let grants = ScopeSet::parse(["keys:write", "books:write"]).expect("valid");
///             return Ok(Some(Actor::user("alice", grants)));
///         }
///         Ok(None)
///     }
/// }
/// # let _ = keyward_admin::router_with::<keyward::Keyward, _>(Sessions);
/// ```
pub trait ActorSource: Send + Sync + 'static {
    /// The signed-in person of this request, if any.
    fn actor(
        &self,
        parts: &mut Parts,
    ) -> impl Future<Output = Result<Option<Actor>, AdminError>> + Send;

    /// Which credential wins when a request carries both; [`Precedence::KeyFirst`] unless
    /// overridden.
    fn precedence(&self) -> Precedence {
        Precedence::KeyFirst
    }
}

/// The actor source of [`router`](crate::router): keyward keys only, no sessions.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeysOnly;

impl ActorSource for KeysOnly {
    async fn actor(&self, _parts: &mut Parts) -> Result<Option<Actor>, AdminError> {
        Ok(None)
    }
}

type ActorFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<Actor>, AdminError>> + Send + 'a>>;

/// Object-safe form of [`ActorSource`], so the handlers need no type parameter.
trait DynActorSource: Send + Sync {
    fn actor<'a>(&'a self, parts: &'a mut Parts) -> ActorFuture<'a>;
    fn precedence(&self) -> Precedence;
}

impl<A: ActorSource> DynActorSource for A {
    fn actor<'a>(&'a self, parts: &'a mut Parts) -> ActorFuture<'a> {
        Box::pin(ActorSource::actor(self, parts))
    }

    fn precedence(&self) -> Precedence {
        ActorSource::precedence(self)
    }
}

/// The router's actor source, stored in the request extensions by the router's own layer.
#[derive(Clone)]
pub(crate) struct Sessions(Arc<dyn DynActorSource>);

impl Sessions {
    pub(crate) fn new(source: impl ActorSource) -> Self {
        Self(Arc::new(source))
    }
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("precedence", &self.0.precedence())
            .finish_non_exhaustive()
    }
}

/// The request's keyward key, if the layer verified one.
pub(crate) fn principal(parts: &Parts) -> Option<keyward_core::Principal> {
    parts
        .extensions
        .get::<keyward::Principal>()
        .map(|p| p.clone().into_inner())
}

/// Extractor: the actor of the request, or 401.
#[derive(Debug, Clone)]
pub(crate) struct CurrentActor(pub(crate) Actor);

impl<S> FromRequestParts<S> for CurrentActor
where
    Keyward: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let key = principal(parts).map(|p| Actor::from_principal(&p));
        let sessions = parts.extensions.get::<Sessions>().cloned();
        let actor = match (sessions, key) {
            (None, key) => key,
            (Some(sessions), Some(key)) if sessions.0.precedence() == Precedence::KeyFirst => {
                Some(key)
            }
            (Some(sessions), key) => sessions
                .0
                .actor(parts)
                .await
                .map_err(IntoResponse::into_response)?
                .or(key),
        };
        let Some(actor) = actor else {
            return Err(missing_credential(state));
        };
        let actor = actor.expanded(Keyward::from_ref(state).catalog());
        if actor.is_session() && !parts.method.is_safe() && is_cross_site(parts) {
            return Err(AdminError::Forbidden {
                detail: "a session may change keys only from pages of the same origin".into(),
            }
            .into_response());
        }
        Ok(Self(actor))
    }
}

/// Whether a request is a cross-site one, so that a session cookie must not authorize it:
/// browsers send `Sec-Fetch-Site`, and `Origin` on every cross-origin request.
fn is_cross_site(parts: &Parts) -> bool {
    if let Some(site) = parts.headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return true;
        }
    }
    let Some(origin) = parts.headers.get(http::header::ORIGIN) else {
        return false;
    };
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(http::uri::Authority::as_str));
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.parse::<http::Uri>().ok())
        .and_then(|u| u.authority().map(|a| a.as_str().to_owned()));
    match (host, origin_host) {
        (Some(host), Some(origin_host)) => !host.eq_ignore_ascii_case(&origin_host),
        _ => true,
    }
}

/// Extractor: the keyward key that authenticates the request (not a session), or 401.
#[derive(Debug, Clone)]
pub(crate) struct PresentingKey(pub(crate) keyward_core::Principal);

impl<S> FromRequestParts<S> for PresentingKey
where
    Keyward: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        principal(parts)
            .map(Self)
            .ok_or_else(|| missing_credential(state))
    }
}

/// The 401 keyward answers for a request without a credential: the application's realm and
/// response hook apply.
fn missing_credential<S>(state: &S) -> Response
where
    Keyward: FromRef<S>,
{
    Keyward::from_ref(state).error_response(&AuthError::MissingCredential)
}
