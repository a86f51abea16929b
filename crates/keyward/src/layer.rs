//! The tower layer, its service and its response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::response::Response;
use http::Request;
use http::header::{HeaderName, HeaderValue};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;
use tracing::field::{Empty, display};

use crate::extract::LayerContext;
use crate::handle::Keyward;
use crate::ip::{ClientIp, client_ip};
use crate::principal::Principal;
use crate::rate::RateState;
use crate::rejection::AuthError;
use crate::source::Found;
use crate::verify::{Admitted, Step};

impl Keyward {
    /// The layer that verifies requests: add it to a `Router` (`.layer(keyward.layer())`),
    /// outside the routes whose handlers take a [`Principal`] or are guarded by scopes.
    ///
    /// # Example
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use keyward::{Keyward, MemoryStore, Principal};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
    /// let app: Router = Router::new()
    ///     .route("/me", get(|p: Principal| async move { p.name().to_owned() }))
    ///     .layer(keyward.layer());
    /// # let _ = app;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn layer(&self) -> KeywardLayer {
        KeywardLayer {
            keyward: self.clone(),
            optional: false,
        }
    }
}

/// Verifies API keys in front of a service; made by [`Keyward::layer`].
///
/// In the default (required) mode a request without a credential is answered 401. In
/// [optional](Self::optional) mode it passes through without a [`Principal`].
#[derive(Clone, Debug)]
#[must_use]
pub struct KeywardLayer {
    keyward: Keyward,
    optional: bool,
}

impl KeywardLayer {
    /// Lets requests without any credential through, without a [`Principal`], so that other
    /// authentication (a session cookie) on the same routes keeps working. A credential that
    /// is present and invalid is still refused.
    ///
    /// # Example
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use keyward::{Keyward, MemoryStore, Principal};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
    /// let app: Router = Router::new()
    ///     .route("/", get(|p: Option<Principal>| async move {
    ///         p.map_or("anonymous".to_owned(), |p| p.name().to_owned())
    ///     }))
    ///     .layer(keyward.layer().optional());
    /// # let _ = app;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}

impl<S> Layer<S> for KeywardLayer {
    type Service = KeywardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeywardService {
            inner,
            keyward: self.keyward.clone(),
            optional: self.optional,
        }
    }
}

/// The service made by [`KeywardLayer`].
#[derive(Clone)]
pub struct KeywardService<S> {
    inner: S,
    keyward: Keyward,
    optional: bool,
}

impl<S> fmt::Debug for KeywardService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeywardService")
            .field("keyward", &self.keyward)
            .field("optional", &self.optional)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for KeywardService<S>
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
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        self.keyward.start_tasks();
        let inner = &*self.keyward.inner;
        let ip = client_ip(req.extensions(), req.headers(), &inner.trusted_proxies);
        let (token, found) = match inner.sources.find(&req) {
            Ok(Some(credential)) => credential,
            Ok(None) if self.optional => {
                prepare(&self.keyward, &mut req, None, ip, None);
                return ResponseFuture::inner(self.inner.call(req), None);
            }
            Ok(None) => return self.reject(&AuthError::MissingCredential),
            Err(_) => return self.reject(&AuthError::ConflictingCredentials),
        };
        let span = tracing::debug_span!("keyward.verify", key_id = Empty, outcome = Empty);
        let step = span.in_scope(|| inner.start(&token, ip));
        drop(token);
        match step {
            Step::Done(Ok(admitted)) => {
                record(&span, Ok(&admitted));
                let rate = admitted.rate;
                prepare(
                    &self.keyward,
                    &mut req,
                    Some(admitted.principal),
                    ip,
                    Some(found),
                );
                ResponseFuture::inner(self.inner.call(req), rate)
            }
            Step::Done(Err(err)) => {
                record(&span, Err(&err));
                self.reject(&err)
            }
            Step::Miss(miss) => {
                // The ready service goes into the future; this one keeps a fresh clone.
                let clone = self.inner.clone();
                let mut ready_inner = std::mem::replace(&mut self.inner, clone);
                let keyward = self.keyward.clone();
                ResponseFuture::miss(Box::pin(async move {
                    let result = keyward.inner.finish(miss).instrument(span.clone()).await;
                    record(&span, result.as_ref());
                    match result {
                        Ok(admitted) => {
                            let rate = admitted.rate;
                            prepare(
                                &keyward,
                                &mut req,
                                Some(admitted.principal),
                                ip,
                                Some(found),
                            );
                            let response = ready_inner.call(req).await?;
                            Ok(finish_response(response, rate))
                        }
                        Err(err) => Ok(keyward.inner.respond(&err)),
                    }
                }))
            }
        }
    }
}

impl<S> KeywardService<S> {
    fn reject<F, E>(&self, error: &AuthError) -> ResponseFuture<F, E> {
        ResponseFuture::reject(self.keyward.inner.respond(error))
    }
}

/// Puts what handlers need into the extensions and hides the credential.
fn prepare<B>(
    keyward: &Keyward,
    req: &mut Request<B>,
    principal: Option<Principal>,
    ip: Option<std::net::IpAddr>,
    found: Option<Found>,
) {
    let inner = &keyward.inner;
    if let (Some(found), true) = (found, inner.hide_credentials) {
        inner.sources.hide(found, req);
    }
    let extensions = req.extensions_mut();
    extensions.insert(LayerContext(keyward.clone()));
    if let Some(ip) = ip {
        extensions.insert(ClientIp(ip));
    }
    if let Some(principal) = principal {
        extensions.insert(principal);
    }
}

fn record(span: &tracing::Span, result: Result<&Admitted, &AuthError>) {
    match result {
        Ok(admitted) => {
            span.record("key_id", display(admitted.principal.key_id()));
            span.record("outcome", "ok");
            tracing::trace!(parent: span, "api key accepted");
        }
        Err(err) => {
            span.record("outcome", err.outcome());
            tracing::debug!(parent: span, status = err.status().as_u16(), "api key refused");
        }
    }
}

fn finish_response<B>(response: Response<B>, rate: Option<RateState>) -> Response
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut response = response.map(Body::new);
    if let Some(rate) = rate {
        let headers = response.headers_mut();
        headers.insert(
            HeaderName::from_static("ratelimit-limit"),
            HeaderValue::from(rate.limit),
        );
        headers.insert(
            HeaderName::from_static("ratelimit-remaining"),
            HeaderValue::from(rate.remaining),
        );
        headers.insert(
            HeaderName::from_static("ratelimit-reset"),
            HeaderValue::from(rate.reset),
        );
    }
    response
}

type MissFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

pin_project! {
    /// The response future of [`KeywardService`].
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        Inner { #[pin] future: F, rate: Option<RateState> },
        Miss { future: MissFuture<E> },
        Reject { response: Option<Response> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    fn inner(future: F, rate: Option<RateState>) -> Self {
        Self {
            kind: Kind::Inner { future, rate },
        }
    }

    fn miss(future: MissFuture<E>) -> Self {
        Self {
            kind: Kind::Miss { future },
        }
    }

    fn reject(response: Response) -> Self {
        Self {
            kind: Kind::Reject {
                response: Some(response),
            },
        }
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Miss { .. } => "verifying",
            Kind::Reject { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future, rate } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(finish_response(response, *rate)))
            }
            KindProj::Miss { future } => future.as_mut().poll(cx),
            KindProj::Reject { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}
