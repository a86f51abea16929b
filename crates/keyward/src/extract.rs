//! Axum extractors: `Principal`, `Option<Principal>`, `RequireScope<T>` and `ClientIp`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::Extensions;
use http::request::Parts;
use keyward_core::TypedScope;

use crate::handle::Keyward;
use crate::ip::ClientIp;
use crate::principal::Principal;
use crate::rejection::AuthError;

/// What the layer leaves in the request extensions: one value, so a verified request costs
/// one insert. Extractors and guards read it to answer with the application's realm and
/// hook, and to tell "no credential" from "no layer".
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) keyward: Keyward,
    pub(crate) ip: Option<IpAddr>,
    pub(crate) verdict: Verdict,
}

#[derive(Clone)]
pub(crate) enum Verdict {
    /// A verified key, or a session already looked up.
    Caller(Principal),
    /// No credential; the application's session is asked when a guard needs the caller.
    Anonymous,
    /// No credential and no session.
    Nobody,
    /// The credential was refused and the layer [defers refusals](crate::KeywardLayer::defer_refusals).
    Refused(Arc<AuthError>),
}

/// The refusal of a keyward extractor or scope guard: the reason, and the response already
/// rendered with the application's realm and [hook](crate::KeywardBuilder::error_response).
pub struct AuthRejection(Box<(Arc<AuthError>, Response)>);

impl AuthRejection {
    pub(crate) fn new(keyward: Option<&Keyward>, error: impl Into<Arc<AuthError>>) -> Self {
        let error = error.into();
        let response = match keyward {
            Some(keyward) => keyward.inner.respond(&error),
            None => {
                // No layer, so no realm configured: say which layer is missing.
                tracing::error!("{}", AuthError::LayerMissing);
                AuthError::LayerMissing.to_problem("api").into_response()
            }
        };
        Self(Box::new((error, response)))
    }

    fn layer_missing() -> Self {
        Self::new(None, AuthError::LayerMissing)
    }

    /// Why the request was refused.
    #[must_use]
    pub fn error(&self) -> &AuthError {
        &self.0.0
    }
}

impl fmt::Debug for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRejection")
            .field("error", &self.0.0)
            .field("status", &self.0.1.status())
            .finish()
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.0, f)
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.0.1
    }
}

/// The caller of a request: the verified key, else the application's session (looked up
/// once per request, then kept in the extensions); `Ok(None)` for nobody.
pub(crate) async fn caller(parts: &mut Parts) -> Result<Option<Principal>, AuthRejection> {
    let Some(context) = parts.extensions.get::<Context>() else {
        return Err(AuthRejection::layer_missing());
    };
    let keyward = match &context.verdict {
        Verdict::Caller(principal) => return Ok(Some(principal.clone())),
        Verdict::Nobody => return Ok(None),
        Verdict::Refused(error) => {
            return Err(AuthRejection::new(
                Some(&context.keyward),
                Arc::clone(error),
            ));
        }
        Verdict::Anonymous => context.keyward.clone(),
    };
    let session = keyward
        .inner
        .session(parts)
        .await
        .map_err(|error| AuthRejection::new(Some(&keyward), error))?;
    if let Some(context) = parts.extensions.get_mut::<Context>() {
        context.verdict = session.clone().map_or(Verdict::Nobody, Verdict::Caller);
    }
    Ok(session)
}

/// The caller when it is known without asking the application's session: `None` when the
/// session must be asked.
pub(crate) fn known_caller(extensions: &Extensions) -> Option<Result<Principal, AuthRejection>> {
    let Some(context) = extensions.get::<Context>() else {
        return Some(Err(AuthRejection::layer_missing()));
    };
    let keyward = Some(&context.keyward);
    match &context.verdict {
        Verdict::Caller(principal) => Some(Ok(principal.clone())),
        Verdict::Nobody => Some(Err(AuthRejection::new(
            keyward,
            AuthError::MissingCredential,
        ))),
        Verdict::Refused(error) => Some(Err(AuthRejection::new(keyward, Arc::clone(error)))),
        Verdict::Anonymous => None,
    }
}

/// The refusal for a caller who lacks `scope`.
pub(crate) fn insufficient(extensions: &Extensions, scope: Cow<'static, str>) -> AuthRejection {
    let keyward = extensions.get::<Context>().map(|c| &c.keyward);
    AuthRejection::new(keyward, AuthError::InsufficientScope { scope })
}

impl Principal {
    /// The caller the layer verified (a key), or the session a guard or extractor already
    /// looked up, for code that sees the request rather than extracting from it (a tower
    /// middleware). Handlers take [`Principal`] or `Option<Principal>` as an extractor instead,
    /// which also asks the application's session.
    #[must_use]
    pub fn from_extensions(extensions: &Extensions) -> Option<&Self> {
        match &extensions.get::<Context>()?.verdict {
            Verdict::Caller(principal) => Some(principal),
            _ => None,
        }
    }
}

/// The caller, or 401.
pub(crate) async fn required_caller(parts: &mut Parts) -> Result<Principal, AuthRejection> {
    caller(parts).await?.ok_or_else(|| {
        let keyward = parts.extensions.get::<Context>().map(|c| &c.keyward);
        AuthRejection::new(keyward, AuthError::MissingCredential)
    })
}

/// Requires a caller, a key or a session: 401 without one (a route behind an
/// [optional](crate::KeywardLayer::optional) layer), 500 naming the layer when the route
/// has no keyward layer at all.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        required_caller(parts).await
    }
}

/// `None` when the request has no caller (no credential and no session); still 500 when the
/// route has no keyward layer, since that is a mistake in the application, and still the
/// refusal when the layer [defers refusals](crate::KeywardLayer::defer_refusals).
impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        caller(parts).await
    }
}

/// The client address, for handlers: absent when the server provides no `ConnectInfo`.
impl<S: Send + Sync> OptionalFromRequestParts<S> for ClientIp {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match parts.extensions.get::<Context>() {
            Some(context) => Ok(context.ip.map(ClientIp)),
            None => Err(AuthRejection::layer_missing()),
        }
    }
}

/// An extractor that requires the typed scope `T` and gives the [`Principal`]: 403
/// `insufficient_scope` when the caller (a key or a session) lacks it, 401 without a caller.
/// A misspelt scope type does not compile.
///
/// # Example
///
/// ```
/// use keyward::{RequireScope, scopes};
///
/// scopes! {
///     /// Change the book collection.
///     pub BooksWrite = "books:write";
/// }
///
/// async fn create_book(auth: RequireScope<BooksWrite>) -> String {
///     format!("created by {}", auth.name())
/// }
/// # let _ = create_book;
/// ```
pub struct RequireScope<T> {
    principal: Principal,
    _scope: PhantomData<fn() -> T>,
}

impl<T> RequireScope<T> {
    /// The verified caller.
    #[must_use]
    pub fn into_principal(self) -> Principal {
        self.principal
    }
}

impl<T> Deref for RequireScope<T> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<T> Clone for RequireScope<T> {
    fn clone(&self) -> Self {
        Self {
            principal: self.principal.clone(),
            _scope: PhantomData,
        }
    }
}

impl<T: TypedScope> fmt::Debug for RequireScope<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScope")
            .field("scope", &T::NAME)
            .field("principal", &self.principal)
            .finish()
    }
}

impl<S: Send + Sync, T: TypedScope> FromRequestParts<S> for RequireScope<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal = required_caller(parts).await?;
        if principal.has::<T>() {
            Ok(Self {
                principal,
                _scope: PhantomData,
            })
        } else {
            Err(insufficient(&parts.extensions, T::NAME.into()))
        }
    }
}
