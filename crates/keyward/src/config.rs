//! Configuring a [`Keyward`]: the builder and its errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use ipnet::IpNet;
use keyward_core::{Clock, KeyStore, ScopeCatalog, SystemClock, TokenFormat, TokenHasher};
use zeroize::Zeroizing;

use crate::budget::{FailureBudget, LocalFailureBudget};
use crate::cache::CacheConfig;
use crate::circuit::CircuitBreaker;
use crate::handle::{Inner, Keyward};
use crate::lookup::Bulkhead;
use crate::problem::Problem;
use crate::rejection::AuthError;
use crate::resolver::{DynResolver, OwnerResolver};
use crate::source::{CredentialSource, Sources};
use crate::store::DynStore;

/// The default interval between usage flushes.
pub const DEFAULT_USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// The default deadline of a store lookup on the request path.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(1);

/// Turns a refusal into the response the client sees; see
/// [`KeywardBuilder::error_response`].
pub(crate) type ErrorResponder = Arc<dyn Fn(&AuthError, Problem) -> Response + Send + Sync>;

/// A configuration [`KeywardBuilder::build`] refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No token prefix was configured.
    #[error("a token prefix is needed: call .prefix(\"myapp\")")]
    MissingPrefix,
    /// A prefix does not match `[a-z][a-z0-9]{1,15}`.
    #[error(transparent)]
    InvalidPrefix(#[from] keyward_core::token::PrefixError),
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
    resolver: Option<Box<dyn DynResolver>>,
    clock: Arc<dyn Clock>,
    usage_flush_interval: Duration,
    realm: Option<String>,
    error_response: Option<ErrorResponder>,
    rate_limits: bool,
    store_timeout: Duration,
    circuit_breaker: CircuitBreaker,
    stale_if_error: Duration,
    bulkhead: Bulkhead,
    budget: Option<Arc<dyn FailureBudget>>,
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
            .field("resolver", &self.resolver.is_some())
            .field("clock", &self.clock)
            .field("usage_flush_interval", &self.usage_flush_interval)
            .field("realm", &self.realm)
            .field("rate_limits", &self.rate_limits)
            .field("store_timeout", &self.store_timeout)
            .field("circuit_breaker", &self.circuit_breaker)
            .field("stale_if_error", &self.stale_if_error)
            .field("bulkhead", &self.bulkhead)
            .field("failure_budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl KeywardBuilder {
    pub(crate) fn new(store: impl KeyStore) -> Self {
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
            resolver: None,
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

    /// The [`OwnerResolver`] that bounds personal keys by what their owner holds now.
    /// Without one a personal key keeps its own scopes.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore, ScopeSet, resolver_fn};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .resolver(resolver_fn(|owner: String| async move {
    ///         // Look the user up in the application's database here.
    ///         Ok((owner == "alice").then(|| ScopeSet::parse(["*"]).expect("valid")))
    ///     }))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn resolver(mut self, resolver: impl OwnerResolver) -> Self {
        self.resolver = Some(Box::new(resolver));
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

    /// Customises refusals: the hook receives the reason and the default problem (status,
    /// headers, body) and returns the response to send. Used by the layer, the extractors
    /// and the scope guards.
    ///
    /// # Example
    ///
    /// ```
    /// use axum::response::IntoResponse;
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .error_response(|error, problem| {
    ///         problem
    ///             .member("docs", "https://books.example/docs/api-keys")
    ///             .detail(format!("{error}"))
    ///             .into_response()
    ///     })
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn error_response<F>(mut self, hook: F) -> Self
    where
        F: Fn(&AuthError, Problem) -> Response + Send + Sync + 'static,
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

    /// The deadline of every store lookup on the request path (the owner resolver included).
    /// Past it the request is answered 503 with `Retry-After`, never left hanging. Default 1 s.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .store_timeout(Duration::from_millis(500))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// When to stop asking a failing store; see [`CircuitBreaker`]. Default: open after 5
    /// consecutive failures, probe again after 500 ms.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{CircuitBreaker, Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .circuit_breaker(CircuitBreaker::default().failure_threshold(10))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.circuit_breaker = breaker;
        self
    }

    /// Keeps cache entries for `window` past their TTL and uses them while the store fails
    /// (error, timeout, open circuit), so keys that were in use keep working through a longer
    /// outage. Policy (revocation, expiry, allow-list) is still checked against the cached
    /// record; a change made through keyward or announced by the change feed still drops the
    /// entry at once. Off (zero) by default: staleness is then bounded by the TTL.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .stale_if_error(Duration::from_secs(600))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// How many store lookups run at once; see [`Bulkhead`]. Default 32, waiting 250 ms.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Bulkhead, Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .bulkhead(Bulkhead::new(16))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn bulkhead(mut self, bulkhead: Bulkhead) -> Self {
        self.bulkhead = bulkhead;
        self
    }

    /// How many bad tokens a client may present before it is refused 429 without store
    /// work; see [`FailureBudget`]. Default: [`LocalFailureBudget::default`], 30 per minute
    /// per client address.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward::{Keyward, LocalFailureBudget, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .failure_budget(LocalFailureBudget::new(60, Duration::from_secs(60)))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn failure_budget(mut self, budget: impl FailureBudget) -> Self {
        self.budget = Some(Arc::new(budget));
        self
    }

    /// Turns the failure budget off: every bad token is looked up (bounded only by the
    /// negative cache and the bulkhead). For tests, or behind a gateway that limits clients.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .without_failure_budget()
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok::<(), keyward::ConfigError>(())
    /// ```
    pub fn without_failure_budget(mut self) -> Self {
        self.budget = None;
        self
    }

    /// Checks the configuration and builds the handle. Inside a Tokio runtime this also
    /// starts the usage flush task and, when the store has a change feed, the task that
    /// applies it to the cache; otherwise they start with the first request.
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
        let inner = Inner::new(crate::handle::Parts {
            store: self.store,
            catalog,
            format,
            hasher,
            clock: self.clock,
            cache: self.cache,
            resolver: self.resolver,
            sources,
            hide_credentials: self.hide_credentials,
            trusted_proxies: self.trusted_proxies,
            realm,
            error_response: self.error_response,
            rate_limits: self.rate_limits,
            usage_flush_interval: self.usage_flush_interval,
            store_timeout: self.store_timeout,
            circuit_breaker: self.circuit_breaker,
            stale_if_error: self.stale_if_error,
            bulkhead: self.bulkhead,
            budget: self.budget,
        });
        let keyward = Keyward::from_inner(inner);
        keyward.start_tasks();
        Ok(keyward)
    }
}
