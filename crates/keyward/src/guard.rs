//! `require_scopes([...])`: a route layer that guards by scope strings.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::response::{IntoResponse, Response};
use http::Request;
use keyward_core::Scope;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::extract::{insufficient, known_caller, required_caller};
use crate::principal::Principal;

/// A layer that lets a request through only if its [`Principal`](crate::Principal) holds every
/// one of `scopes`: 403 `insufficient_scope` naming them otherwise, 401 without a principal
/// (optional mode), 500 when the keyward layer is missing. Use it with `route_layer`, or on a
/// single handler or method router with `.layer(...)`.
///
/// # Panics
///
/// If a scope is malformed (`"books"`, `"Books:Read"`): the list is part of the program, so a
/// typo is caught when the router is built, not by a request. Scopes are not checked against
/// the catalog here; for compile-time checked names use [`RequireScope`](crate::RequireScope).
///
/// # Example
///
/// ```
/// use axum::{Router, routing::{get, post}};
/// use keyward::{Keyward, MemoryStore, require_scopes};
///
/// let keyward = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
/// let app: Router = Router::new()
///     .route("/books", post(|| async { "created" }))
///     .route_layer(require_scopes(["books:write"]))
///     .route("/health", get(|| async { "ok" }))
///     .layer(keyward.layer().optional());
/// # let _ = app;
/// # Ok::<(), keyward::ConfigError>(())
/// ```
pub fn require_scopes<I, S>(scopes: I) -> RequireScopesLayer
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let scopes: Vec<Scope> = scopes
        .into_iter()
        .map(|s| Scope::parse(s.as_ref()).unwrap_or_else(|err| panic!("require_scopes: {err}")))
        .collect();
    assert!(
        !scopes.is_empty(),
        "require_scopes: give at least one scope"
    );
    let names = scopes
        .iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    RequireScopesLayer {
        required: Arc::new(Required { scopes, names }),
    }
}

#[derive(Debug)]
struct Required {
    scopes: Vec<Scope>,
    /// Space separated, for the challenge's `scope` attribute.
    names: String,
}

/// The layer made by [`require_scopes`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RequireScopesLayer {
    required: Arc<Required>,
}

impl<S> Layer<S> for RequireScopesLayer {
    type Service = RequireScopes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopes {
            inner,
            required: Arc::clone(&self.required),
        }
    }
}

/// The service made by [`RequireScopesLayer`].
#[derive(Clone)]
pub struct RequireScopes<S> {
    inner: S,
    required: Arc<Required>,
}

impl<S> fmt::Debug for RequireScopes<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopes")
            .field("scopes", &self.required.names)
            .finish_non_exhaustive()
    }
}

impl Required {
    /// `None` if `principal` holds every required scope, else the refusal.
    fn refuse(&self, principal: &Principal, extensions: &http::Extensions) -> Option<Response> {
        if self.scopes.iter().all(|s| principal.scopes().allows(s)) {
            None
        } else {
            let scope = Cow::Owned(self.names.clone());
            Some(insufficient(extensions, scope).into_response())
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopes<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let state = match known_caller(req.extensions()) {
            Some(Ok(principal)) => match self.required.refuse(&principal, req.extensions()) {
                None => GuardState::Inner {
                    future: self.inner.call(req),
                },
                Some(response) => GuardState::Refused {
                    response: Some(response),
                },
            },
            Some(Err(rejection)) => GuardState::Refused {
                response: Some(rejection.into_response()),
            },
            // A request without a key: ask the application's session first.
            None => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                GuardState::Session {
                    future: Box::pin(guard_session(inner, Arc::clone(&self.required), req)),
                }
            }
        };
        GuardFuture { state }
    }
}

async fn guard_session<S, ReqBody, ResBody>(
    mut inner: S,
    required: Arc<Required>,
    req: Request<ReqBody>,
) -> Result<Response, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let (mut parts, body) = req.into_parts();
    let principal = match required_caller(&mut parts).await {
        Ok(principal) => principal,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    if let Some(response) = required.refuse(&principal, &parts.extensions) {
        return Ok(response);
    }
    let response = inner.call(Request::from_parts(parts, body)).await?;
    Ok(response.map(Body::new))
}

type SessionFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

pin_project! {
    /// The response future of [`RequireScopes`].
    pub struct GuardFuture<F, E> {
        #[pin]
        state: GuardState<F, E>,
    }
}

pin_project! {
    #[project = GuardProj]
    enum GuardState<F, E> {
        Inner { #[pin] future: F },
        Session { future: SessionFuture<E> },
        Refused { response: Option<Response> },
    }
}

impl<F, E> fmt::Debug for GuardFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            GuardState::Inner { .. } => "inner",
            GuardState::Session { .. } => "session",
            GuardState::Refused { .. } => "refused",
        };
        f.debug_struct("GuardFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, B, E> Future for GuardFuture<F, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            GuardProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(Body::new)))
            }
            GuardProj::Session { future } => future.as_mut().poll(cx),
            GuardProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("GuardFuture polled after completion"))),
        }
    }
}
