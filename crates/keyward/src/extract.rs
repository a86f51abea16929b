//! Axum extractors: `Principal`, `Option<Principal>` and `RequireScope<T>`.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use keyward_core::TypedScope;

use crate::handle::Keyward;
use crate::principal::Principal;
use crate::rejection::AuthError;

/// Put into the request extensions by the layer, so extractors and guards answer with the
/// application's realm and response hook, and can tell "no credential" from "no layer".
#[derive(Clone, Debug)]
pub(crate) struct LayerContext(pub(crate) Keyward);

/// The refusal of a keyward extractor or scope guard: the reason, and the response already
/// rendered with the application's realm and [hook](crate::KeywardBuilder::error_response).
pub struct AuthRejection(Box<(AuthError, Response)>);

impl AuthRejection {
    pub(crate) fn new(parts: &http::Extensions, error: AuthError) -> Self {
        let response = match parts.get::<LayerContext>() {
            Some(LayerContext(keyward)) => keyward.inner.respond(&error),
            None => {
                // No layer, so no realm configured: say which layer is missing.
                tracing::error!("{}", AuthError::LayerMissing);
                AuthError::LayerMissing.to_problem("api").into_response()
            }
        };
        Self(Box::new((error, response)))
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

/// The principal in `extensions`, or why there is none.
pub(crate) fn principal_of(extensions: &http::Extensions) -> Result<Principal, AuthRejection> {
    if let Some(principal) = extensions.get::<Principal>() {
        return Ok(principal.clone());
    }
    let error = if extensions.get::<LayerContext>().is_some() {
        // Optional mode and no credential.
        AuthError::MissingCredential
    } else {
        AuthError::LayerMissing
    };
    Err(AuthRejection::new(extensions, error))
}

/// Requires a verified key: 401 without one (a route behind an
/// [optional](crate::KeywardLayer::optional) layer), 500 naming the layer when the route
/// has no keyward layer at all.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        principal_of(&parts.extensions)
    }
}

/// `None` when the request carries no credential (optional mode); still 500 when the route
/// has no keyward layer, since that is a mistake in the application.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Some(principal.clone()));
        }
        if parts.extensions.get::<LayerContext>().is_some() {
            Ok(None)
        } else {
            Err(AuthRejection::new(
                &parts.extensions,
                AuthError::LayerMissing,
            ))
        }
    }
}

/// An extractor that requires the typed scope `T` and gives the [`Principal`]: 403
/// `insufficient_scope` when the key lacks it. A misspelt scope type does not compile.
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
///     format!("created by key {}", auth.key_id())
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
        let principal = principal_of(&parts.extensions)?;
        if principal.has::<T>() {
            Ok(Self {
                principal,
                _scope: PhantomData,
            })
        } else {
            Err(AuthRejection::new(
                &parts.extensions,
                AuthError::InsufficientScope {
                    scope: T::NAME.into(),
                },
            ))
        }
    }
}
