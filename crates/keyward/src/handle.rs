//! The `Keyward` handle: configuration, cache, usage recorder and background tasks.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use ipnet::IpNet;
use keyward_core::{
    AppSettings, Clock, KeyChange, ScopeCatalog, StoreError, TokenFormat, TokenHasher,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::budget::FailureBudget;
use crate::cache::VerifyCache;
use crate::callers::DynCallers;
use crate::circuit::Circuit;
use crate::lookup::Lookups;
use crate::problem::{Problem, Unhooked};
use crate::rate::RateLimits;
use crate::rejection::{AuthError, ErrorResponder, InvalidToken};
use crate::source::Sources;
use crate::store::DynStore;
use crate::usage::UsageRecorder;

/// The API-key handle of an application: verifies requests (through its
/// [`layer`](Self::layer)), manages keys (create, list, update, revoke, delete, regenerate,
/// refresh) and keeps the local cache coherent with both.
///
/// Cloning is cheap (one reference count) and every clone shares the same cache, usage
/// counters and background tasks, so keep one in the application state and give clones to
/// the layer and to the admin router. It has no type parameters: the store is type-erased
/// (its futures are boxed, which is paid only on a cache miss or a management call).
///
/// On graceful shutdown call [`shutdown`](Self::shutdown) so the last counted usage is
/// written.
///
/// # Example
///
/// ```
/// use keyward::{Keyward, MemoryStore, NewKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keyward = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
/// let issued = keyward
///     .create(NewKey::personal("Backup Script", "alice").scopes(["keys:read"]))
///     .await?;
/// println!("your new key, shown once: {}", issued.token.expose_secret());
///
/// let principal = keyward.verify(issued.token.expose_secret(), None).await?;
/// assert_eq!(principal.key_id(), Some(issued.record.id));
/// keyward.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Keyward {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Keyward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyward")
            .field("format", &self.inner.format)
            .field("realm", &self.inner.realm)
            .field("cache", &self.inner.cache.is_some())
            .field("callers", &self.inner.callers.is_some())
            .field("trusted_proxies", &self.inner.trusted_proxies)
            .finish_non_exhaustive()
    }
}

/// How long a usage write may take before its counts go back for the next flush.
const USAGE_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long recording the application's settings may take.
const SETTINGS_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn DynStore>,
    pub(crate) catalog: ScopeCatalog,
    pub(crate) format: TokenFormat,
    pub(crate) hasher: TokenHasher,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cache: Option<VerifyCache>,
    pub(crate) callers: Option<Box<dyn DynCallers>>,
    pub(crate) sources: Sources,
    pub(crate) hide_credentials: bool,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) realm: String,
    pub(crate) error_response: Option<ErrorResponder>,
    /// The most frequent refusals (no credential, invalid token), rendered once, so a flood
    /// of garbage costs no serialisation.
    pub(crate) prerendered: Vec<(AuthErrorKey, Prerendered)>,
    pub(crate) rate_limits: Option<RateLimits>,
    pub(crate) usage: UsageRecorder,
    pub(crate) usage_flush_interval: Duration,
    pub(crate) store_timeout: Duration,
    pub(crate) circuit: Circuit,
    /// Metric handles, taken from the recorder at build.
    pub(crate) metrics: crate::metrics::Metrics,
    pub(crate) lookups: Lookups,
    pub(crate) budget: Option<Arc<dyn FailureBudget>>,
    /// The feed shared with the other instances, if any.
    pub(crate) change_feed: Option<Arc<dyn crate::feed::ChangeFeed>>,
    /// Follows the store's change log.
    pub(crate) change_poll: crate::changes::ChangePoll,
    /// Records expiry notices.
    pub(crate) expiry_sweep: crate::notices::ExpirySweep,
    pub(crate) tasks_started: AtomicBool,
    pub(crate) tasks: Mutex<Tasks>,
    /// One settings write at a time: the one at start and the application's own do not race.
    pub(crate) settings_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthErrorKey {
    Missing,
    Invalid(InvalidToken),
    /// Rendered once; `Retry-After` is set per response.
    TooManyFailures,
}

impl AuthErrorKey {
    fn of(error: &AuthError) -> Option<Self> {
        match error {
            AuthError::MissingCredential => Some(Self::Missing),
            AuthError::InvalidToken(reason) => Some(Self::Invalid(*reason)),
            AuthError::TooManyFailures { .. } => Some(Self::TooManyFailures),
            _ => None,
        }
    }

    fn error(self) -> AuthError {
        match self {
            Self::Missing => AuthError::MissingCredential,
            Self::Invalid(reason) => AuthError::InvalidToken(reason),
            Self::TooManyFailures => AuthError::TooManyFailures {
                retry_after: Duration::from_secs(1),
            },
        }
    }
}

pub(crate) struct Prerendered {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Prerendered {
    async fn render(error: &AuthError, realm: &str) -> Self {
        let response = error.to_problem(realm).into_response();
        let (parts, body) = response.into_parts();
        let body = http_body_util::BodyExt::collect(body)
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        Self {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    fn response(&self) -> Response {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

#[derive(Default)]
pub(crate) struct Tasks {
    flush: Option<JoinHandle<()>>,
    feed: Option<JoinHandle<()>>,
    stop: Option<watch::Sender<bool>>,
    shared_feed: Option<JoinHandle<()>>,
}

impl Inner {
    /// The most frequent refusals, rendered once for `realm`; none when the application has
    /// its own hook.
    pub(crate) fn prerender(realm: &str, hook: bool) -> Vec<(AuthErrorKey, Prerendered)> {
        if hook {
            return Vec::new();
        }
        let keys = [
            AuthErrorKey::Missing,
            AuthErrorKey::Invalid(InvalidToken::Malformed),
            AuthErrorKey::Invalid(InvalidToken::Unknown),
            AuthErrorKey::TooManyFailures,
        ];
        keys.into_iter()
            .map(|key| {
                let rendered =
                    futures_util::FutureExt::now_or_never(Prerendered::render(&key.error(), realm))
                        .expect("a full body is ready at once");
                (key, rendered)
            })
            .collect()
    }

    /// The response for a refusal: the default problem, through the application's hook.
    pub(crate) fn respond(&self, error: &AuthError) -> Response {
        if let Some(key) = AuthErrorKey::of(error) {
            if let Some((_, rendered)) = self.prerendered.iter().find(|(k, _)| *k == key) {
                let mut response = rendered.response();
                if let AuthError::TooManyFailures { retry_after } = error {
                    response.headers_mut().insert(
                        http::header::RETRY_AFTER,
                        crate::rejection::seconds_header(*retry_after),
                    );
                }
                return response;
            }
        }
        let problem = error.to_problem(&self.realm);
        match &self.error_response {
            Some(hook) => hooked(hook, Some(error), problem),
            None => problem.into_response(),
        }
    }

    /// Writes the pending usage, and says how that went in the [metrics](crate::metrics).
    pub(crate) async fn flush_usage(&self) -> Result<(), StoreError> {
        let lag = self.usage.oldest().map_or(0.0, |oldest| {
            let age = self.clock.now() - oldest;
            age.to_std().unwrap_or_default().as_secs_f64()
        });
        self.metrics.flush_lag.set(lag);
        let flushed = self.write_usage().await;
        self.record_rate_limited().await;
        if flushed.is_err() {
            self.metrics.flush_failures.increment(1);
        }
        self.metrics.pending_uses.set(self.usage.pending() as f64);
        flushed
    }

    async fn write_usage(&self) -> Result<(), StoreError> {
        if self.circuit.is_open() {
            // The counts stay in memory, one entry per key, until the store answers again.
            return Err(StoreError::new(
                keyward_core::StoreErrorKind::Unavailable,
                "the key store keeps failing; usage is kept for the next flush",
            ));
        }
        // The uses stay visible (`Keyward::pending_usage`) while they are written, and go
        // back for the next flush when `write` is dropped unwritten.
        let write = self.usage.start_write();
        if write.batch().is_empty() {
            return Ok(());
        }
        // A store that does not answer must not hold the counts (or a shutdown) forever. A
        // write abandoned at its deadline is rolled back with its transaction, so the counts
        // go back for the next flush.
        let started = std::time::Instant::now();
        let written =
            tokio::time::timeout(USAGE_WRITE_TIMEOUT, self.store.record_usage(write.batch()))
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::new(
                        keyward_core::StoreErrorKind::Unavailable,
                        "the usage write did not finish in time",
                    ))
                });
        self.metrics
            .flush_duration
            .record(started.elapsed().as_secs_f64());
        written?;
        tracing::debug!(keys = write.batch().len(), "keyward usage flushed");
        write.written();
        Ok(())
    }

    pub(crate) fn app_settings(&self) -> AppSettings {
        AppSettings::new(&self.format, &self.catalog, &self.hasher, self.clock.now())
    }

    pub(crate) async fn record_settings(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.settings_lock.lock().await;
        let settings = self.app_settings();
        tokio::time::timeout(
            SETTINGS_WRITE_TIMEOUT,
            self.store.record_settings(&settings),
        )
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::new(
                keyward_core::StoreErrorKind::Unavailable,
                "recording the application's settings did not finish in time",
            ))
        })
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The application's hook applied to `problem`; its answer is final.
pub(crate) fn hooked(
    hook: &ErrorResponder,
    reason: Option<&AuthError>,
    problem: Problem,
) -> Response {
    let mut response = hook(reason, problem);
    response.extensions_mut().remove::<Unhooked>();
    response
}

impl Drop for Inner {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner);
        for task in [
            tasks.flush.take(),
            tasks.feed.take(),
            tasks.shared_feed.take(),
        ]
        .into_iter()
        .flatten()
        {
            task.abort();
        }
    }
}

impl Keyward {
    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The application's scope catalog.
    #[must_use]
    pub fn catalog(&self) -> &ScopeCatalog {
        &self.inner.catalog
    }

    /// The token format (issuing and accepted prefixes).
    #[must_use]
    pub fn token_format(&self) -> &TokenFormat {
        &self.inner.format
    }

    /// The settings [`record_settings`](Self::record_settings) writes: the prefix of new
    /// keys, every accepted prefix, the scope catalog with descriptions and the pepper's
    /// [fingerprint](keyward_core::TokenHasher::pepper_fingerprint) (never the pepper).
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
    /// let settings = keyward.app_settings();
    /// assert_eq!(settings.prefix, "books");
    /// assert!(settings.scopes.iter().any(|scope| scope.name == "keys:read"));
    /// assert_eq!(settings.pepper_fingerprint, None);
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    #[must_use]
    pub fn app_settings(&self) -> AppSettings {
        self.inner.app_settings()
    }

    /// Records the [application's settings](Self::app_settings) in the store, replacing
    /// those recorded before, so that the `keyward` command line issues keys this
    /// application accepts (its prefix, only its scopes, its pepper).
    ///
    /// The handle also records them once in the background when its tasks start (at
    /// [`build`](crate::KeywardBuilder::build) inside a Tokio runtime, or at the first
    /// request), logging a warning if that fails. Await this at start-up, after the
    /// migrations, to have them recorded before the command line is used, or to fail on a
    /// store that cannot record them.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{KeyStore, Keyward, MemoryStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = MemoryStore::new();
    /// let keyward = Keyward::builder(store.clone()).prefix("books").build()?;
    /// keyward.record_settings().await?;
    /// assert_eq!(store.settings().await?.map(|s| s.prefix).as_deref(), Some("books"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The store's error; [`Unavailable`](keyward_core::StoreErrorKind::Unavailable) when
    /// the write takes longer than 10 seconds.
    pub async fn record_settings(&self) -> Result<(), StoreError> {
        self.inner.record_settings().await
    }

    /// The current time of the configured clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The realm of the `WWW-Authenticate` challenges.
    #[must_use]
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The response keyward sends for `error`, after the application's
    /// [hook](crate::KeywardBuilder::error_response).
    #[must_use]
    pub fn error_response(&self, error: &AuthError) -> Response {
        self.inner.respond(error)
    }

    /// Verifies a token presented outside HTTP headers (a WebSocket message, a job
    /// argument) exactly as the layer does, including the cache, the owner lookup, the rate
    /// limit and usage counting. `client_ip` is checked against the key's allow-list.
    ///
    /// # Errors
    ///
    /// The [`AuthError`] the layer would answer with.
    pub async fn verify(
        &self,
        token: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<crate::Principal, AuthError> {
        self.start_tasks();
        let admitted = self.inner.verify_token(token, client_ip).await;
        let admitted = crate::rate::settle(admitted).await;
        self.inner.metrics.verified(admitted.as_ref());
        admitted.map(|admitted| admitted.principal)
    }

    /// Writes the usage counted since the last flush: one update per key. The background
    /// task calls this every [flush interval](crate::KeywardBuilder::usage_flush_interval);
    /// [`shutdown`](Self::shutdown) calls it a last time. On failure the counts are kept for
    /// the next attempt.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn flush_usage(&self) -> Result<(), StoreError> {
        self.inner.flush_usage().await
    }

    /// Graceful shutdown: stops the background tasks and writes the remaining usage. Call it
    /// after the server has stopped accepting requests (e.g. after `axum::serve(...)
    /// .with_graceful_shutdown(...)` returns); usage counted after it is written only by
    /// another [`flush_usage`](Self::flush_usage). A handle dropped without it loses the
    /// usage counted since the last flush.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(app: axum::Router, keyward: keyward::Keyward) -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// axum::serve(listener, app)
    ///     .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.ok(); })
    ///     .await?;
    /// keyward.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        let (flush, feed, stop) = {
            let mut tasks = self.inner.tasks();
            if let Some(shared_feed) = tasks.shared_feed.take() {
                shared_feed.abort();
            }
            (tasks.flush.take(), tasks.feed.take(), tasks.stop.take())
        };
        if let Some(feed) = feed {
            feed.abort();
        }
        self.inner.change_poll.stop();
        if let Some(stop) = stop {
            let _ = stop.send(true);
        }
        if let Some(flush) = flush {
            // The task finishes the flush it may be in the middle of, then ends.
            let _ = flush.await;
        }
        if let Err(err) = self.inner.flush_usage().await {
            tracing::error!(
                error = %err,
                uses = self.inner.usage.pending(),
                "keyward could not write the final usage counts; these uses are lost"
            );
        }
    }

    /// Starts the usage flush task and the change feed task once, inside a Tokio runtime.
    pub(crate) fn start_tasks(&self) {
        if self.inner.tasks_started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.tasks_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let (stop, stopped) = watch::channel(false);
        let flush = runtime.spawn(flush_loop(
            Weak::clone(&weak),
            self.inner.usage_flush_interval,
            stopped,
        ));
        let feed = match (&self.inner.cache, self.inner.store.changes()) {
            (Some(_), Some(stream)) => Some(runtime.spawn(feed_loop(weak, stream))),
            _ => None,
        };
        let mut tasks = self.inner.tasks();
        tasks.flush = Some(flush);
        tasks.feed = feed;
        tasks.stop = Some(stop);
        tasks.shared_feed = crate::feed::spawn(&self.inner, &runtime);
        drop(tasks);
        crate::changes::ChangePoll::start(&self.inner, &runtime);
        crate::notices::ExpirySweep::start(&self.inner, &runtime);
        runtime.spawn(record_settings_at_start(Arc::downgrade(&self.inner)));
    }
}

/// Records the application's settings once; a failure only costs the command line its
/// knowledge of this application, so it is logged, never raised.
async fn record_settings_at_start(inner: Weak<Inner>) {
    let Some(inner) = inner.upgrade() else { return };
    if let Err(err) = inner.record_settings().await {
        tracing::warn!(
            error = %err,
            "keyward could not record the application's settings; the keyward command line \
             will not know this application's prefix, scopes and pepper until they are recorded"
        );
    }
}

async fn flush_loop(inner: Weak<Inner>, period: Duration, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        if let Err(err) = inner.flush_usage().await {
            tracing::warn!(error = %err, "keyward could not write usage counts; will retry");
        }
    }
}

async fn feed_loop(inner: Weak<Inner>, mut changes: keyward_core::ChangeStream) {
    while let Some(change) = changes.next().await {
        let Some(inner) = inner.upgrade() else { return };
        let Some(cache) = &inner.cache else { return };
        match change {
            KeyChange::Changed(id) => {
                tracing::trace!(key_id = %id, "keyward change feed: key changed");
                cache.invalidate_key(id);
            }
            KeyChange::Owner(owner) => {
                tracing::trace!(owner = %owner, "keyward change feed: owner changed");
                cache.invalidate_owner(&owner);
            }
            _ => crate::changes::resync(&inner),
        }
    }
    if let Some(inner) = inner.upgrade() {
        tracing::warn!("keyward change feed ended; the cache now relies on its TTL");
        if let Some(cache) = &inner.cache {
            cache.invalidate_all();
        }
    }
}
