//! The tower layer, its service and its response future.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http::Request;
use http::header::{HeaderName, HeaderValue};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;
use tracing::field::{Empty, display};

use crate::extract::{self, Verdict, required_caller};
use crate::handle::Keyward;
use crate::handle::{Inner, hooked};
use crate::ip::client_ip;
use crate::problem::Unhooked;
use crate::rate::{self, RateCheck, RateState};
use crate::rejection::{AuthError, ErrorResponder};
use crate::source::Conflict;
use crate::verify::{Admitted, Step};

impl Keyward {
    /// The layer that verifies requests: add it to a `Router` (`.layer(keyward.layer())`),
    /// outside the routes whose handlers take a [`Principal`](crate::Principal) or are guarded by scopes.
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
            mode: Mode::Required,
        }
    }
}

/// Verifies API keys in front of a service; made by [`Keyward::layer`].
///
/// In the default (required) mode a request without a credential is answered 401. In
/// [optional](Self::optional) mode it passes through without a [`Principal`](crate::Principal).
#[derive(Clone, Debug)]
#[must_use]
pub struct KeywardLayer {
    keyward: Keyward,
    mode: Mode,
}

/// What the layer does with a request it cannot verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No credential: 401 (unless the application's session signs the caller in).
    Required,
    /// No credential: on without a caller; a refused credential: answered.
    Optional,
    /// No credential or a refused one: on without a caller; guards answer.
    Deferring,
}

impl KeywardLayer {
    /// Lets requests without any credential through, without a [`Principal`](crate::Principal), so that other
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
        if self.mode == Mode::Required {
            self.mode = Mode::Optional;
        }
        self
    }

    /// Optional mode, and a credential that is refused (unknown, expired, revoked, a store
    /// that is down, ...) does not stop the request either: it goes on without a caller, and
    /// the first guard or extractor that needs the caller answers with the refusal (401
    /// `invalid_token`, 503, ...). Routes without a guard (a login form, a health check) stay
    /// reachable for a client that always sends its key, even a stale one.
    ///
    /// # Example
    ///
    /// ```
    /// use axum::{Router, routing::{get, post}};
    /// use keyward::{Keyward, MemoryStore, Principal};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
    /// let app: Router = Router::new()
    ///     .route("/login", post(|| async { "signed in" }))      // reachable with any key
    ///     .route("/me", get(|p: Principal| async move { p.name().to_owned() })) // 401 with a stale key
    ///     .layer(keyward.layer().defer_refusals());
    /// # let _ = app;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn defer_refusals(mut self) -> Self {
        self.mode = Mode::Deferring;
        self
    }
}

impl<S> Layer<S> for KeywardLayer {
    type Service = KeywardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeywardService {
            inner,
            keyward: self.keyward.clone(),
            mode: self.mode,
        }
    }
}

/// The service made by [`KeywardLayer`].
#[derive(Clone)]
pub struct KeywardService<S> {
    inner: S,
    keyward: Keyward,
    mode: Mode,
}

impl<S> fmt::Debug for KeywardService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeywardService")
            .field("keyward", &self.keyward)
            .field("mode", &self.mode)
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
        let token = match inner.sources.take(&mut req, inner.hide_credentials) {
            Ok(Some(token)) => token,
            Ok(None) => return self.anonymous(req, ip),
            Err(Conflict) => {
                let err = AuthError::ConflictingCredentials;
                inner.metrics.refused(&err);
                return self.refuse(req, ip, err);
            }
        };
        // Asked first: a disabled span still costs its fields' records, which `tracing`
        // offers the `log` crate when a dependency turns its `log` feature on.
        let span = if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug_span!("keyward.verify", key_id = Empty, outcome = Empty)
        } else {
            tracing::Span::none()
        };
        let step = if span.is_disabled() {
            inner.start(token.as_str(), ip)
        } else {
            span.in_scope(|| inner.start(token.as_str(), ip))
        };
        drop(token);
        match step {
            Step::Done(Ok(admitted)) if !rate::is_pending(&admitted) => {
                record(inner, &span, Ok(&admitted));
                let rate = admitted.rate.and_then(RateCheck::state);
                self.with(&mut req, ip, Verdict::Caller(admitted.principal));
                ResponseFuture::inner(self.inner.call(req), rate, self.hook())
            }
            Step::Done(Ok(admitted)) => {
                // A cached key with a limit kept by a shared limiter: wait for its answer.
                let this = self.take_ready();
                ResponseFuture::boxed(async move {
                    let result = rate::settle(Ok(admitted)).instrument(span.clone()).await;
                    record(&this.keyward.inner, &span, result.as_ref());
                    this.answer(req, ip, result).await
                })
            }
            Step::Done(Err(err)) => {
                record(inner, &span, Err(&err));
                self.refuse(req, ip, err)
            }
            Step::Miss(miss) => {
                let this = self.take_ready();
                ResponseFuture::boxed(async move {
                    let result = this
                        .keyward
                        .inner
                        .finish(miss)
                        .then(rate::settle)
                        .instrument(span.clone())
                        .await;
                    record(&this.keyward.inner, &span, result.as_ref());
                    this.answer(req, ip, result).await
                })
            }
        }
    }
}

impl<S> KeywardService<S> {
    /// This service, with the inner service that was made ready; `self` keeps a fresh clone.
    fn take_ready(&mut self) -> Self
    where
        S: Clone,
    {
        let clone = self.inner.clone();
        Self {
            inner: std::mem::replace(&mut self.inner, clone),
            keyward: self.keyward.clone(),
            mode: self.mode,
        }
    }

    /// The application's error hook, if it has one.
    fn hook(&self) -> Option<ErrorResponder> {
        self.keyward.inner.error_response.clone()
    }

    /// Leaves in `req`'s extensions what extractors and guards need (in place: a request is
    /// large to move).
    fn with<B>(&self, req: &mut Request<B>, ip: Option<IpAddr>, verdict: Verdict) {
        req.extensions_mut().insert(extract::Context {
            keyward: self.keyward.clone(),
            ip,
            verdict,
        });
    }
}

/// What the inner service of a [`KeywardService`] must be.
trait InnerService<ReqBody>:
    Service<
        Request<ReqBody>,
        Response = Response<Self::Body>,
        Future: Send + 'static,
        Error: Send + 'static,
    > + Clone
    + Send
    + 'static
{
    type Body: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static;
}

impl<S, ReqBody, ResBody> InnerService<ReqBody> for S
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Body = ResBody;
}

impl<S> KeywardService<S> {
    /// A request without a credential: on to the inner service in optional mode (the session
    /// is asked later, if a guard needs the caller); in required mode, only with a session.
    fn anonymous<ReqBody: Send + 'static>(
        &mut self,
        mut req: Request<ReqBody>,
        ip: Option<IpAddr>,
    ) -> ResponseFuture<S::Future, S::Error>
    where
        S: InnerService<ReqBody>,
    {
        if self.mode != Mode::Required {
            self.with(&mut req, ip, Verdict::Anonymous);
            return ResponseFuture::inner(self.inner.call(req), None, self.hook());
        }
        if self.keyward.inner.callers.is_none() {
            let err = AuthError::MissingCredential;
            self.keyward.inner.metrics.refused(&err);
            return ResponseFuture::reject(self.keyward.inner.respond(&err));
        }
        let mut this = self.take_ready();
        ResponseFuture::boxed(async move {
            this.with(&mut req, ip, Verdict::Anonymous);
            let (mut parts, body) = req.into_parts();
            if let Err(rejection) = required_caller(&mut parts).await {
                this.keyward.inner.metrics.refused(rejection.error());
                return Ok(rejection.into_response());
            }
            let response = this.inner.call(Request::from_parts(parts, body)).await?;
            Ok(finish_response(response, None, this.hook().as_ref()))
        })
    }

    /// A refused credential: answered at once, or passed on when refusals are deferred.
    fn refuse<ReqBody>(
        &mut self,
        mut req: Request<ReqBody>,
        ip: Option<IpAddr>,
        error: AuthError,
    ) -> ResponseFuture<S::Future, S::Error>
    where
        S: InnerService<ReqBody>,
    {
        if self.mode == Mode::Deferring {
            self.with(&mut req, ip, Verdict::Refused(Arc::new(error)));
            ResponseFuture::inner(self.inner.call(req), None, self.hook())
        } else {
            ResponseFuture::reject(self.keyward.inner.respond(&error))
        }
    }

    /// The end of a verification that had to read the store.
    async fn answer<ReqBody>(
        mut self,
        mut req: Request<ReqBody>,
        ip: Option<IpAddr>,
        result: Result<Admitted, AuthError>,
    ) -> Result<Response, S::Error>
    where
        S: InnerService<ReqBody>,
    {
        let (verdict, rate) = match result {
            Ok(admitted) => (
                Verdict::Caller(admitted.principal),
                admitted.rate.and_then(RateCheck::state),
            ),
            Err(err) if self.mode == Mode::Deferring => (Verdict::Refused(Arc::new(err)), None),
            Err(err) => return Ok(self.keyward.inner.respond(&err)),
        };
        self.with(&mut req, ip, verdict);
        let response = self.inner.call(req).await?;
        Ok(finish_response(response, rate, self.hook().as_ref()))
    }
}

/// Counts the outcome and records it in the verification's span. An accepted key costs
/// nothing more when no subscriber wants the span.
fn record(inner: &Inner, span: &tracing::Span, result: Result<&Admitted, &AuthError>) {
    inner.metrics.verified(result);
    match result {
        Ok(_) if span.is_disabled() => {}
        Ok(admitted) => {
            if let Some(key_id) = admitted.principal.key_id() {
                span.record("key_id", display(key_id));
            }
            span.record("outcome", "ok");
            tracing::trace!(parent: span, "api key accepted");
        }
        Err(err) => {
            span.record("outcome", err.outcome());
            tracing::debug!(parent: span, status = err.status().as_u16(), "api key refused");
        }
    }
}

/// The inner service's response, through the application's hook when it is a problem the hook
/// has not seen, with the key's rate limit headers.
fn finish_response<B>(
    response: Response<B>,
    rate: Option<RateState>,
    hook: Option<&ErrorResponder>,
) -> Response
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut response = response.map(Body::new);
    if let Some(hook) = hook {
        if let Some(Unhooked(problem)) = response.extensions_mut().remove::<Unhooked>() {
            response = hooked(hook, None, problem);
        }
    }
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
        Inner { #[pin] future: F, rate: Option<RateState>, hook: Option<ErrorResponder> },
        Miss { future: MissFuture<E> },
        Reject { response: Option<Response> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    fn inner(future: F, rate: Option<RateState>, hook: Option<ErrorResponder>) -> Self {
        Self {
            kind: Kind::Inner { future, rate, hook },
        }
    }

    fn boxed(future: impl Future<Output = Result<Response, E>> + Send + 'static) -> Self {
        Self {
            kind: Kind::Miss {
                future: Box::pin(future),
            },
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
            KindProj::Inner { future, rate, hook } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(finish_response(response, *rate, hook.as_ref())))
            }
            KindProj::Miss { future } => future.as_mut().poll(cx),
            KindProj::Reject { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}
