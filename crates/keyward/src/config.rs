//! Configuring a [`Keyward`]: the builder and its errors.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::Response;
use ipnet::IpNet;
use keyward_core::{
    Clock, KeyStore, ScopeCatalog, SystemClock, TokenFormat, TokenHasher, TypedScope,
};
use zeroize::Zeroizing;

use crate::budget::{FailureBudget, LocalFailureBudget};
use crate::cache::CacheConfig;
use crate::cache::VerifyCache;
use crate::callers::DynCallers;
use crate::circuit::Circuit;
use crate::circuit::CircuitBreaker;
use crate::handle::{Inner, Keyward};
use crate::lookup::Bulkhead;
use crate::lookup::Lookups;
use crate::problem::Problem;
use crate::rate::RateLimits;
use crate::rejection::{AuthError, ErrorResponder};
use crate::source::{CredentialSource, Sources};
use crate::store::DynStore;
use crate::usage::UsageRecorder;

/// The default interval between usage flushes.
pub const DEFAULT_USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// The default deadline of a store lookup on the request path.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(1);

/// A configuration [`KeywardBuilder::build`] refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No token prefix was configured.
    #[error("a token prefix is needed: call .prefix(\"myapp\")")]
    MissingPrefix,
    /// A prefix does not match `[a-z][a-z0-9]{1,15}`.
    #[error(transparent)]
    InvalidPrefix(#[from] keyward_core::PrefixError),
    /// The pepper is empty.
    #[error("the pepper must not be empty")]
    EmptyPepper,
    /// A credential source cannot be used.
    #[error("invalid credential sources: {0}")]
    InvalidSource(String),
    /// The realm contains a quote, a backslash or a control character.
    #[error("the realm must be printable ASCII without quotes or backslashes")]
    InvalidRealm,
    /// The usage flush interval is zero.
    #[error("the usage flush interval must be above zero")]
    InvalidFlushInterval,
    /// The store timeout is zero.
    #[error("the store timeout must be above zero")]
    InvalidStoreTimeout,
    /// A typed scope the routes use is not in the catalog: no key could ever pass its guard.
    #[error("the typed scope {type_name} = {scope:?} is not in the scope catalog")]
    UnknownScope {
        /// The type's name.
        type_name: &'static str,
        /// Its scope string.
        scope: &'static str,
    },
}

/// Configures a [`Keyward`]; made by [`Keyward::builder`].
#[must_use]
pub struct KeywardBuilder {
    store: Arc<dyn DynStore>,
    prefix: Option<String>,
    accepted: Vec<String>,
    catalog: Option<ScopeCatalog>,
    pepper: Option<Zeroizing<Vec<u8>>>,
    sources: Vec<CredentialSource>,
    hide_credentials: bool,
    cache: CacheConfig,
    trusted_proxies: Vec<IpNet>,
    pub(crate) callers: Option<Box<dyn DynCallers>>,
    clock: Arc<dyn Clock>,
    usage_flush_interval: Duration,
    realm: Option<String>,
    error_response: Option<ErrorResponder>,
    rate_limits: bool,
    pub(crate) store_timeout: Duration,
    pub(crate) circuit_breaker: CircuitBreaker,
    pub(crate) stale_if_error: Duration,
    pub(crate) bulkhead: Bulkhead,
    pub(crate) budget: Option<Arc<dyn FailureBudget>>,
    pub(crate) rate_limiter: Option<crate::rate::SharedLimiter>,
    pub(crate) change_feed: Option<Arc<dyn crate::feed::ChangeFeed>>,
    pub(crate) change_poll_interval: Duration,
    /// How long before expiry `expiring_soon` is recorded; `None`: no notices.
    pub(crate) expiry_notice_window: Option<Duration>,
    /// Typed scopes the routes use: (type name, scope).
    used_scopes: Vec<(&'static str, &'static str)>,
}

impl fmt::Debug for KeywardBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeywardBuilder")
            .field("prefix", &self.prefix)
            .field("accepted", &self.accepted)
            .field("peppered", &self.pepper.is_some())
            .field("sources", &self.sources)
            .field("hide_credentials", &self.hide_credentials)
            .field("cache", &self.cache)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("callers", &self.callers.is_some())
            .field("clock", &self.clock)
            .field("usage_flush_interval", &self.usage_flush_interval)
            .field("realm", &self.realm)
            .field("rate_limits", &self.rate_limits)
            .field("store_timeout", &self.store_timeout)
            .field("circuit_breaker", &self.circuit_breaker)
            .field("stale_if_error", &self.stale_if_error)
            .field("bulkhead", &self.bulkhead)
            .field("failure_budget", &self.budget)
            .field("rate_limiter", &self.rate_limiter)
            .field("change_feed", &self.change_feed)
            .field("change_poll_interval", &self.change_poll_interval)
            .field("expiry_notice_window", &self.expiry_notice_window)
            .field("used_scopes", &self.used_scopes)
            .finish_non_exhaustive()
    }
}

impl Keyward {
    /// Starts configuring keyward on `store`; see [`KeywardBuilder`].
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn builder(store: impl KeyStore) -> KeywardBuilder {
        KeywardBuilder::new(store)
    }
}

impl KeywardBuilder {
    fn new(store: impl KeyStore) -> Self {
        Self {
            store: Arc::new(store),
            prefix: None,
            accepted: Vec::new(),
            catalog: None,
            pepper: None,
            sources: CredentialSource::defaults(),
            hide_credentials: true,
            cache: CacheConfig::default(),
            trusted_proxies: Vec::new(),
            callers: None,
            clock: Arc::new(SystemClock),
            usage_flush_interval: DEFAULT_USAGE_FLUSH_INTERVAL,
            realm: None,
            error_response: None,
            rate_limits: true,
            store_timeout: DEFAULT_STORE_TIMEOUT,
            circuit_breaker: CircuitBreaker::default(),
            stale_if_error: Duration::ZERO,
            bulkhead: Bulkhead::default(),
            budget: Some(Arc::new(LocalFailureBudget::default())),
            rate_limiter: None,
            change_feed: None,
            change_poll_interval: crate::changes::DEFAULT_CHANGE_POLL_INTERVAL,
            expiry_notice_window: Some(crate::notices::DEFAULT_EXPIRY_NOTICE_WINDOW),
            used_scopes: Vec::new(),
        }
    }

    /// The prefix of the tokens this application issues (`books` → `books_…`); required.
    /// It must match `[a-z][a-z0-9]{1,15}`.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
    /// assert_eq!(keyward.token_format().issuing_prefix().as_str(), "books");
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Also accepts tokens with another prefix, e.g. after renaming the application. New
    /// tokens always get [`prefix`](Self::prefix).
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .accept_prefix("library")
    ///     .build()?;
    /// assert_eq!(keyward.token_format().accepted_prefixes().len(), 2);
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn accept_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.accepted.push(prefix.into());
        self
    }

    /// The application's scopes. Without one, only the management scopes (`keys:read`,
    /// `keys:write`, `keys:admin`) exist.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore, ScopeCatalog};
    ///
    /// let catalog = ScopeCatalog::builder()
    ///     .scope("books:read", "Read books")
    ///     .scope("books:write", "Change books")
    ///     .implies("books:write", "books:read")
    ///     .build()?;
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .catalog(catalog)
    ///     .build()?;
    /// assert!(keyward.catalog().parse_scope("books:write").is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn catalog(mut self, catalog: ScopeCatalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Stores `HMAC-SHA256(pepper, token)` instead of `SHA-256(token)`, so a stolen database
    /// alone does not allow checking guesses. Every instance must use the same pepper, and
    /// changing it invalidates every key.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let pepper = std::env::var("KEYWARD_PEPPER").unwrap_or_else(|_| "dev-only pepper".into());
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .pepper(pepper)
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn pepper(mut self, pepper: impl Into<Vec<u8>>) -> Self {
        self.pepper = Some(Zeroizing::new(pepper.into()));
        self
    }

    /// Where requests carry their key. Default: `Authorization: Bearer`,
    /// `Authorization: Token` and `X-Api-Key`; a query parameter only when listed here.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{CredentialSource, Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .sources([
    ///         CredentialSource::bearer(),
    ///         CredentialSource::header("x-api-key"),
    ///         CredentialSource::query("api_key"),
    ///         CredentialSource::header("x-emby-token"),
    ///     ])
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn sources(mut self, sources: impl IntoIterator<Item = CredentialSource>) -> Self {
        self.sources = sources.into_iter().collect();
        self
    }

    /// Whether the credential header and query parameter are removed from the request the
    /// inner service sees, so access logs and handlers never see a token. Default `true`.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .hide_credentials(false) // a proxy behind us needs the header
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn hide_credentials(mut self, hide: bool) -> Self {
        self.hide_credentials = hide;
        self
    }

    /// The verification cache; see [`CacheConfig`].
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward::{CacheConfig, Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .cache(CacheConfig::default().ttl(Duration::from_secs(30)))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn cache(mut self, cache: CacheConfig) -> Self {
        self.cache = cache;
        self
    }

    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers are believed; see
    /// [`ClientIp`](crate::ClientIp). Default: none, so the socket peer is the client.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .trusted_proxies(["10.0.0.0/8".parse::<ipnet::IpNet>()?, "::1/128".parse()?])
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trusted_proxies<I, N>(mut self, proxies: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<IpNet>,
    {
        self.trusted_proxies = proxies.into_iter().map(|n| n.into().trunc()).collect();
        self
    }

    /// The clock for expiry, grace periods, rate limits and usage times. Default: the
    /// system clock; tests inject a [`ManualClock`](crate::ManualClock).
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, ManualClock, MemoryStore};
    ///
    /// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse()?);
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .clock(clock.clone())
    ///     .build()?;
    /// assert_eq!(keyward.now().to_rfc3339(), "2026-01-01T00:00:00+00:00");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How often counted usage is written to the store, one update per key. Default 10 s.
    /// [`Keyward::shutdown`] writes what is left.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .usage_flush_interval(Duration::from_secs(5))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn usage_flush_interval(mut self, interval: Duration) -> Self {
        self.usage_flush_interval = interval;
        self
    }

    /// The realm of the `WWW-Authenticate` challenges. Default: the prefix.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .realm("Books API")
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Customises every problem response under the layer: the hook receives the refusal's
    /// reason (`None` for a problem keyward did not refuse itself: the admin router's errors,
    /// a [`Json`](crate::Json) rejection, a [`Problem`] a handler returned) and the default
    /// problem (status, headers, body), and returns the response to send. So an application
    /// has one error shape, whichever part answered.
    ///
    /// # Example
    ///
    /// ```
    /// use axum::response::IntoResponse;
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .error_response(|reason, problem| {
    ///         let problem = problem.member("docs", "https://books.example/docs/api-keys");
    ///         match reason {
    ///             Some(error) => problem.detail(error.to_string()).into_response(),
    ///             None => problem.into_response(),
    ///         }
    ///     })
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn error_response<F>(mut self, hook: F) -> Self
    where
        F: Fn(Option<&AuthError>, Problem) -> Response + Send + Sync + 'static,
    {
        self.error_response = Some(Arc::new(hook));
        self
    }

    /// Whether keys' `rate_limit` is enforced (429 when exceeded). Default `true`; turn it
    /// off when a gateway in front enforces limits.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .rate_limits(false)
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn rate_limits(mut self, enabled: bool) -> Self {
        self.rate_limits = enabled;
        self
    }

    /// Declares that routes use the typed scope `T` (`RequireScope<T>`): [`build`](Self::build)
    /// fails naming it when the catalog does not hold it, so a typo in a scope string is found
    /// at start, not by a request that can never pass. Building the catalog from the same types
    /// ([`ScopeCatalogBuilder::typed`](keyward_core::ScopeCatalogBuilder::typed)) avoids
    /// writing the string twice in the first place.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{ConfigError, Keyward, MemoryStore, ScopeCatalog, scopes};
    ///
    /// scopes! {
    ///     /// Read system settings.
    ///     pub SystemRead = "system:reed"; // a typo
    /// }
    ///
    /// let catalog = ScopeCatalog::builder().scope("system:read", "Read system settings").build()?;
    /// let builder = Keyward::builder(MemoryStore::new()).prefix("books").catalog(catalog);
    /// let built = builder.uses_scope::<SystemRead>().build();
    /// assert!(matches!(built, Err(ConfigError::UnknownScope { scope: "system:reed", .. })));
    /// # Ok::<(), keyward::core::ScopeError>(())
    /// ```
    pub fn uses_scope<T: TypedScope>(mut self) -> Self {
        self.used_scopes.push((std::any::type_name::<T>(), T::NAME));
        self
    }

    /// Checks the configuration and builds the handle. Inside a Tokio runtime this also
    /// starts the usage flush task and, when the store has a change feed, the task that
    /// applies it to the cache; otherwise they start with the first request.
    ///
    /// The handle takes its [metrics](crate::metrics) from the recorder installed now:
    /// install the application's recorder first.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming what is wrong.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{ConfigError, Keyward, MemoryStore};
    ///
    /// let err = Keyward::builder(MemoryStore::new()).build().unwrap_err();
    /// assert!(matches!(err, ConfigError::MissingPrefix));
    /// ```
    pub fn build(self) -> Result<Keyward, ConfigError> {
        let prefix = self.prefix.ok_or(ConfigError::MissingPrefix)?;
        let mut format = TokenFormat::new(prefix.as_str())?;
        for accepted in &self.accepted {
            format = format.accept(accepted.as_str())?;
        }
        let hasher = match &self.pepper {
            Some(pepper) if pepper.is_empty() => return Err(ConfigError::EmptyPepper),
            Some(pepper) => TokenHasher::hmac(pepper.as_slice()),
            None => TokenHasher::sha256(),
        };
        let sources = Sources::compile(&self.sources).map_err(ConfigError::InvalidSource)?;
        let realm = self.realm.unwrap_or(prefix);
        if realm
            .bytes()
            .any(|b| !(b' '..=b'~').contains(&b) || b == b'"' || b == b'\\')
        {
            return Err(ConfigError::InvalidRealm);
        }
        if self.usage_flush_interval.is_zero() {
            return Err(ConfigError::InvalidFlushInterval);
        }
        if self.store_timeout.is_zero() {
            return Err(ConfigError::InvalidStoreTimeout);
        }
        let catalog = match self.catalog {
            Some(catalog) => catalog,
            None => ScopeCatalog::builder()
                .build()
                .expect("the management scopes form a valid catalog"),
        };
        for &(type_name, scope) in &self.used_scopes {
            let known = catalog.parse_scope(scope).is_ok();
            if !known {
                return Err(ConfigError::UnknownScope { type_name, scope });
            }
        }
        let inner = Inner {
            prerendered: Inner::prerender(&realm, self.error_response.is_some()),
            cache: VerifyCache::new(&self.cache, self.stale_if_error),
            rate_limits: self
                .rate_limits
                .then(|| RateLimits::new(Arc::clone(&self.clock), self.rate_limiter)),
            store: self.store,
            catalog,
            format,
            hasher,
            clock: self.clock,
            callers: self.callers,
            sources,
            hide_credentials: self.hide_credentials,
            trusted_proxies: self.trusted_proxies,
            realm,
            error_response: self.error_response,
            usage: UsageRecorder::new(),
            usage_flush_interval: self.usage_flush_interval,
            store_timeout: self.store_timeout,
            circuit: Circuit::new(self.circuit_breaker),
            metrics: crate::metrics::Metrics::new(),
            lookups: Lookups::new(self.bulkhead),
            budget: self.budget,
            change_feed: self.change_feed,
            change_poll: crate::changes::ChangePoll::new(self.change_poll_interval),
            expiry_sweep: crate::notices::ExpirySweep::new(self.expiry_notice_window),
            tasks_started: AtomicBool::new(false),
            tasks: Mutex::default(),
            settings_lock: tokio::sync::Mutex::default(),
        };
        let keyward = Keyward::from_inner(inner);
        keyward.start_tasks();
        Ok(keyward)
    }
}
