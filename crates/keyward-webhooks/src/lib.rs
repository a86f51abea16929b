//! Signed webhooks for keyward's key events.
//!
//! Every change a [`KeyStore`] makes is a key event in its change log (created, updated,
//! enabled, disabled, revoked, deleted, regenerated, refreshed, expiring_soon, expired,
//! leaked, rate_limited). [`Webhooks`] POSTs each of them as JSON ([`WebhookPayload`]) to
//! every configured endpoint, signed as the [Standard Webhooks](https://www.standardwebhooks.com)
//! spec says ([`WebhookSecret::sign`]):
//!
//! * `webhook-id`: `msg_<event id>`, the same on every retry of one event, so receivers can
//!   drop duplicates;
//! * `webhook-timestamp`: the attempt's time, in seconds since the Unix epoch;
//! * `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed
//!   with the endpoint's `whsec_` secret.
//!
//! Delivery runs in background tasks, one per endpoint, reading the store's change log where
//! it last stopped: never on a request's path, so a dead endpoint slows nothing.
//!
//! * **At least once, in order.** Each endpoint gets its events in the log's order. An event
//!   is retried (backoff from 1 s doubling to 10 min) until the endpoint answers 2xx; any
//!   other answer (3xx, 4xx including 410, 5xx), a timeout or a connection error is retried.
//!   An event still failing once it is older than the retry window (24 h) is given up: logged
//!   at error level with its `webhook-id`, counted, and the next one is sent. The endpoint's
//!   position is saved in the store after every event, so a restart continues where the last
//!   run stopped; the events sent just before it stopped may be sent again.
//! * **New endpoints start now.** An endpoint the store has not seen gets the events from
//!   its first start on, not the history.
//! * **One sender per endpoint.** With several instances of the application on one
//!   database, each endpoint's worker holds a lease in the store, renewed as it works; the
//!   other instances' workers wait, and take over within a lease (30 s) when the holder
//!   stops or dies. A graceful [`shutdown`](WebhooksHandle::shutdown) hands the lease over
//!   at once.
//!
//! The store must keep a change log and durable readers: [`MemoryStore`](keyward_core::MemoryStore)
//! (for tests) and `keyward-sea-orm`'s `SeaOrmStore` do.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use keyward_core::MemoryStore;
//! use keyward_webhooks::{WebhookSecret, Webhooks};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
//! let webhooks = Webhooks::new(store.clone())
//!     .endpoint("https://hooks.example.com/keys", secret)?
//!     .retry_window(Duration::from_secs(6 * 60 * 60))
//!     .spawn()?;
//! // ... serve; then, when stopping:
//! webhooks.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_core::{Clock, ConsumerLease, KeyStore, SystemClock};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod metrics;
mod payload;
mod secret;
mod worker;

pub use payload::WebhookPayload;
pub use secret::{
    MAX_SECRET_BYTES, MIN_SECRET_BYTES, SECRET_PREFIX, SecretError, WEBHOOK_ID, WEBHOOK_SIGNATURE,
    WEBHOOK_TIMESTAMP, WebhookSecret,
};

use crate::worker::{Settings, Worker};

/// The default of [`Webhooks::retry_window`]: a day.
pub const DEFAULT_RETRY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// The default first wait of [`Webhooks::backoff`].
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The default longest wait of [`Webhooks::backoff`].
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(10 * 60);
/// The default of [`Webhooks::poll_interval`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The default of [`Webhooks::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The default of [`Webhooks::lease_duration`].
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(30);

/// Why webhooks could not be configured or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// An endpoint's URL is not an absolute `http` or `https` URL.
    #[error("webhook endpoint URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// [`spawn`](Webhooks::spawn) was called outside a Tokio runtime.
    #[error("webhooks must be spawned from within a Tokio runtime")]
    NoRuntime,
    /// The HTTP client could not be built.
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// The id of the endpoint at `url` in logs, metrics and the store: the first 16 hex digits
/// of the SHA-256 of the URL. Its durable reader is named `webhook:<id>`.
///
/// # Example
///
/// ```
/// let id = keyward_webhooks::endpoint_id("https://hooks.example.com/keys");
/// assert_eq!(id.len(), 16);
/// ```
#[must_use]
pub fn endpoint_id(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone)]
struct Endpoint {
    url: reqwest::Url,
    secret: WebhookSecret,
}

/// The webhook endpoints of a store, and how events are delivered to them. Configure, then
/// [`spawn`](Self::spawn).
#[derive(Debug, Clone)]
#[must_use]
pub struct Webhooks<S> {
    store: S,
    endpoints: Vec<Endpoint>,
    settings: Settings,
}

impl<S: KeyStore + Clone> Webhooks<S> {
    /// Webhooks for the events of `store` (the application's key store, or a clone of it),
    /// with no endpoint yet and every setting at its default.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward_core::MemoryStore;
    /// use keyward_webhooks::Webhooks;
    ///
    /// let webhooks = Webhooks::new(MemoryStore::new());
    /// # let _ = webhooks;
    /// ```
    pub fn new(store: S) -> Self {
        Self {
            store,
            endpoints: Vec::new(),
            settings: Settings {
                retry_window: DEFAULT_RETRY_WINDOW,
                backoff_min: DEFAULT_BACKOFF_MIN,
                backoff_max: DEFAULT_BACKOFF_MAX,
                poll_interval: DEFAULT_POLL_INTERVAL,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
                lease_duration: DEFAULT_LEASE_DURATION,
                clock: Arc::new(SystemClock),
            },
        }
    }

    /// Adds an endpoint: every key event is POSTed to `url`, signed with `secret`. Several
    /// endpoints each get every event, each at its own pace. An endpoint is known by its URL:
    /// changing the URL makes a new endpoint, which starts from the newest event.
    ///
    /// # Errors
    ///
    /// [`WebhookError::InvalidUrl`] unless `url` is an absolute `http` or `https` URL.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward_core::MemoryStore;
    /// use keyward_webhooks::{WebhookSecret, Webhooks};
    ///
    /// let webhooks = Webhooks::new(MemoryStore::new())
    ///     .endpoint("https://hooks.example.com/keys", WebhookSecret::generate())?
    ///     .endpoint("https://audit.example.com/in", WebhookSecret::generate())?;
    /// assert!(Webhooks::new(MemoryStore::new()).endpoint("ftp://x", WebhookSecret::generate()).is_err());
    /// # Ok::<(), keyward_webhooks::WebhookError>(())
    /// ```
    pub fn endpoint(mut self, url: &str, secret: WebhookSecret) -> Result<Self, WebhookError> {
        let invalid = |reason: &str| WebhookError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|err| invalid(&err.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if parsed.host_str().is_none() {
            return Err(invalid("it has no host"));
        }
        self.endpoints.push(Endpoint {
            url: parsed,
            secret,
        });
        Ok(self)
    }

    /// How long an event is retried (default 24 hours): an event whose delivery fails when it
    /// is older than this is given up, logged at error level with its `webhook-id`, and the
    /// next one is sent.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward_core::MemoryStore;
    /// use keyward_webhooks::Webhooks;
    ///
    /// let webhooks = Webhooks::new(MemoryStore::new()).retry_window(Duration::from_secs(3600));
    /// # let _ = webhooks;
    /// ```
    pub fn retry_window(mut self, window: Duration) -> Self {
        self.settings.retry_window = window;
        self
    }

    /// The waits between attempts of one event (default 1 s, doubling up to 10 minutes).
    /// The same waits apply when the store fails.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward_core::MemoryStore;
    /// use keyward_webhooks::Webhooks;
    ///
    /// let webhooks = Webhooks::new(MemoryStore::new())
    ///     .backoff(Duration::from_secs(5), Duration::from_secs(300));
    /// # let _ = webhooks;
    /// ```
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.settings.backoff_min = min.max(Duration::from_millis(1));
        self.settings.backoff_max = max.max(self.settings.backoff_min);
        self
    }

    /// How often the change log is read for new events once every event has been sent
    /// (default 1 s); also how often a waiting instance asks for the lease.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward_core::MemoryStore;
    /// use keyward_webhooks::Webhooks;
    ///
    /// let webhooks = Webhooks::new(MemoryStore::new()).poll_interval(Duration::from_millis(500));
    /// # let _ = webhooks;
    /// ```
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.settings.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long one attempt may take, from connecting to the answer's status (default 10 s);
    /// a slower one fails and is retried.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward_core::MemoryStore;
    /// use keyward_webhooks::Webhooks;
    ///
    /// let webhooks = Webhooks::new(MemoryStore::new()).request_timeout(Duration::from_secs(5));
    /// # let _ = webhooks;
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.request_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long an instance's hold on an endpoint lasts unless renewed (default 30 s); it is
    /// renewed every third of it while the instance works. When an instance dies, another
    /// takes over the endpoint within this long. Keep it well above the
    /// [request timeout](Self::request_timeout).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward_core::MemoryStore;
    /// use keyward_webhooks::Webhooks;
    ///
    /// let webhooks = Webhooks::new(MemoryStore::new()).lease_duration(Duration::from_secs(60));
    /// # let _ = webhooks;
    /// ```
    pub fn lease_duration(mut self, duration: Duration) -> Self {
        self.settings.lease_duration = duration.max(Duration::from_millis(30));
        self
    }

    /// The clock that judges how old an event is, against the [retry
    /// window](Self::retry_window) (default the system clock). Leases and the
    /// `webhook-timestamp` header always use the system's time.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward_core::{ManualClock, MemoryStore};
    /// use keyward_webhooks::Webhooks;
    ///
    /// let clock = ManualClock::new(chrono::Utc::now());
    /// let webhooks = Webhooks::new(MemoryStore::new()).clock(clock.clone());
    /// # let _ = webhooks;
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.settings.clock = Arc::new(clock);
        self
    }

    /// Starts one delivery task per endpoint on the current Tokio runtime. Install the
    /// metrics recorder first (see [`metrics`]).
    ///
    /// # Errors
    ///
    /// [`WebhookError::NoRuntime`] outside a Tokio runtime; [`WebhookError::Client`] when
    /// the HTTP client cannot be built.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward_core::MemoryStore;
    /// use keyward_webhooks::{WebhookSecret, Webhooks};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), keyward_webhooks::WebhookError> {
    /// let webhooks = Webhooks::new(MemoryStore::new())
    ///     .endpoint("http://127.0.0.1:9/hooks", WebhookSecret::generate())?
    ///     .spawn()?;
    /// webhooks.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn spawn(self) -> Result<WebhooksHandle, WebhookError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WebhookError::NoRuntime)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.settings.request_timeout)
            .connect_timeout(self.settings.request_timeout)
            .user_agent(concat!("keyward-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(WebhookError::Client)?;
        let (stop, stopped) = watch::channel(false);
        let ready = Arc::new(watch::Sender::new(0));
        let tasks = self
            .endpoints
            .into_iter()
            .map(|endpoint| {
                let id = endpoint_id(endpoint.url.as_str());
                let worker = Worker {
                    store: self.store.clone(),
                    client: client.clone(),
                    lease: ConsumerLease {
                        name: format!("webhook:{id}"),
                        holder: uuid::Uuid::now_v7().to_string(),
                        duration: self.settings.lease_duration,
                    },
                    metrics: metrics::WorkerMetrics::register(&id),
                    url: endpoint.url,
                    secret: endpoint.secret,
                    settings: self.settings.clone(),
                    stop: stopped.clone(),
                    renewed: Instant::now(),
                    ready: ready.clone(),
                    counted: false,
                };
                runtime.spawn(worker.run())
            })
            .collect();
        Ok(WebhooksHandle { stop, ready, tasks })
    }
}

/// The running delivery tasks. [`shutdown`](Self::shutdown) stops them; dropping the handle
/// aborts them.
#[derive(Debug)]
pub struct WebhooksHandle {
    stop: watch::Sender<bool>,
    ready: Arc<watch::Sender<usize>>,
    tasks: Vec<JoinHandle<()>>,
}

impl WebhooksHandle {
    /// Completes once every endpoint's worker has made its first attempt at the store: it
    /// knows where it starts (a new endpoint: the newest event, so every event made after
    /// this completes is sent), or another instance holds the endpoint, or the store failed
    /// (and it retries). Await it before serving when the first events after a start
    /// matter.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward_core::MemoryStore;
    /// use keyward_webhooks::{WebhookSecret, Webhooks};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), keyward_webhooks::WebhookError> {
    /// let webhooks = Webhooks::new(MemoryStore::new())
    ///     .endpoint("http://127.0.0.1:9/hooks", WebhookSecret::generate())?
    ///     .spawn()?;
    /// webhooks.ready().await;
    /// webhooks.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ready(&self) {
        let workers = self.tasks.len();
        let mut ready = self.ready.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = ready.wait_for(|count| *count >= workers).await;
    }

    /// Stops every delivery task and hands each endpoint's lease over, so that another
    /// instance can take over at once. An attempt in flight is abandoned: its event is sent
    /// again by whichever instance delivers next.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            if let Err(err) = task.await {
                if err.is_panic() {
                    tracing::error!(error = %err, "a webhook delivery task panicked");
                }
            }
        }
    }
}

impl Drop for WebhooksHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
