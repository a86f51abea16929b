//! The reference app's settings, read from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use keyward_webhooks::WebhookSecret;

use super::AppError;

/// The default of [`Config::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The default of [`Config::expiry_notice_days`].
pub const DEFAULT_EXPIRY_NOTICE_DAYS: u64 = 7;

/// Where the app listens and what it stores in.
#[derive(Debug, Clone)]
pub struct Config {
    /// `BOOKS_ADDR`, default `127.0.0.1:3000`.
    pub addr: SocketAddr,
    /// `DATABASE_URL`, default `sqlite://books.db?mode=rwc`.
    pub database_url: String,
    /// `BOOKS_ADMIN_PASSWORD`; generated on first start when absent.
    pub admin_password: Option<String>,
    /// `BOOKS_READER_PASSWORD`; generated on first start when absent.
    pub reader_password: Option<String>,
    /// `BOOKS_PEPPER`: HMAC pepper for key digests (keep it stable).
    pub pepper: Option<String>,
    /// `BOOKS_TRUSTED_PROXIES`: comma separated CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How often usage counts are written.
    pub usage_flush_interval: Duration,
    /// `BOOKS_HEADER_READ_TIMEOUT_SECS`, default 10 s: a connection whose request line and
    /// headers have not all arrived this long after it opened (or after its previous response)
    /// is closed. This also closes idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// `BOOKS_REDIS_URL`, e.g. `redis://127.0.0.1:6379`: for several instances of the app on
    /// one database. With it, keys' rate limits hold for all the instances together, a change
    /// made on one instance drops the key from every instance's cache at once, and the failure
    /// budget of a client address is counted for all of them (keys and channel under
    /// [`redis_namespace`](Self::redis_namespace)). The app does not start when Redis cannot be reached at start; once started,
    /// a Redis outage only makes each instance count on its own until Redis is back. Without
    /// it, each instance keeps its own limits and budget, and learns of the others' changes
    /// from the database's change log.
    pub redis_url: Option<String>,
    /// `BOOKS_REDIS_NAMESPACE`, default `books`: the prefix of the app's Redis keys and
    /// channel. Instances of one deployment share it; two deployments on one Redis need two.
    pub redis_namespace: String,
    /// `BOOKS_GITHUB_SCANNING_KEYS`: a file holding GitHub's secret-scanning public keys, as
    /// `https://api.github.com/meta/public_keys/secret_scanning` serves them. With it, GitHub
    /// reports keys it finds in public places to `POST /api/v1/tokens/leaks/github`, and they
    /// are revoked; without it that route answers 404.
    pub github_scanning_keys: Option<std::path::PathBuf>,
    /// `BOOKS_WEBHOOK_URL` with `BOOKS_WEBHOOK_SECRET` (`whsec_<base64>`): every key event
    /// (created, revoked, leaked, expiring_soon, …) is POSTed there as JSON, signed as the
    /// Standard Webhooks spec says, at least once and in order, retried for a day, across
    /// restarts; with several instances on one database, one of them sends. Delivery never
    /// slows a request. Off unless both are set.
    pub webhook: Option<WebhookEndpoint>,
    /// `BOOKS_EXPIRY_NOTICE_DAYS`, default 7: how many days before a key's expiry the event
    /// `expiring_soon` is recorded (`expired` follows when it passes); 0 turns expiry
    /// notices off.
    pub expiry_notice_days: u64,
}

/// Where key events are sent ([`Config::webhook`]).
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    /// The URL events are POSTed to.
    pub url: String,
    /// The secret they are signed with.
    pub secret: WebhookSecret,
}

impl Config {
    /// A configuration for `database_url` with every other setting at its default.
    #[must_use]
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            database_url: database_url.into(),
            admin_password: None,
            reader_password: None,
            pepper: None,
            trusted_proxies: Vec::new(),
            usage_flush_interval: keyward::DEFAULT_USAGE_FLUSH_INTERVAL,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            redis_url: None,
            redis_namespace: "books".into(),
            github_scanning_keys: None,
            webhook: None,
            expiry_notice_days: DEFAULT_EXPIRY_NOTICE_DAYS,
        }
    }

    /// Reads the environment.
    ///
    /// # Errors
    ///
    /// A malformed `BOOKS_ADDR`, `BOOKS_TRUSTED_PROXIES`, `BOOKS_HEADER_READ_TIMEOUT_SECS`,
    /// `BOOKS_WEBHOOK_SECRET` or `BOOKS_EXPIRY_NOTICE_DAYS`, or only one of
    /// `BOOKS_WEBHOOK_URL` and `BOOKS_WEBHOOK_SECRET`.
    pub fn from_env() -> Result<Self, AppError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut config =
            Self::new(var("DATABASE_URL").unwrap_or_else(|| "sqlite://books.db?mode=rwc".into()));
        if let Some(addr) = var("BOOKS_ADDR") {
            config.addr = addr
                .parse()
                .map_err(|_| AppError::Config(format!("BOOKS_ADDR {addr:?} is not host:port")))?;
        }
        config.admin_password = var("BOOKS_ADMIN_PASSWORD");
        config.reader_password = var("BOOKS_READER_PASSWORD");
        config.pepper = var("BOOKS_PEPPER");
        config.redis_url = var("BOOKS_REDIS_URL");
        config.github_scanning_keys = var("BOOKS_GITHUB_SCANNING_KEYS").map(Into::into);
        if let Some(namespace) = var("BOOKS_REDIS_NAMESPACE") {
            config.redis_namespace = namespace;
        }
        if let Some(proxies) = var("BOOKS_TRUSTED_PROXIES") {
            config.trusted_proxies = proxies
                .split(',')
                .map(|p| {
                    p.trim().parse().map_err(|_| {
                        AppError::Config(format!("BOOKS_TRUSTED_PROXIES: {p:?} is not a CIDR"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(secs) = var("BOOKS_HEADER_READ_TIMEOUT_SECS") {
            config.header_read_timeout = secs
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&secs| secs > 0)
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    AppError::Config(format!(
                        "BOOKS_HEADER_READ_TIMEOUT_SECS {secs:?} is not a whole number of seconds above 0"
                    ))
                })?;
        }
        config.webhook = match (var("BOOKS_WEBHOOK_URL"), var("BOOKS_WEBHOOK_SECRET")) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(AppError::Config(
                    "BOOKS_WEBHOOK_SECRET must be set with BOOKS_WEBHOOK_URL".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(AppError::Config(
                    "BOOKS_WEBHOOK_URL must be set with BOOKS_WEBHOOK_SECRET".into(),
                ));
            }
            (Some(url), Some(secret)) => Some(WebhookEndpoint {
                url,
                secret: secret
                    .parse()
                    .map_err(|err| AppError::Config(format!("BOOKS_WEBHOOK_SECRET: {err}")))?,
            }),
        };
        if let Some(days) = var("BOOKS_EXPIRY_NOTICE_DAYS") {
            config.expiry_notice_days = days
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&days| days <= MAX_EXPIRY_NOTICE_DAYS)
                .ok_or_else(|| {
                    AppError::Config(format!(
                        "BOOKS_EXPIRY_NOTICE_DAYS {days:?} is not a whole number of days from 0 to {MAX_EXPIRY_NOTICE_DAYS}"
                    ))
                })?;
        }
        Ok(config)
    }

    /// The expiry notice window for keyward: `None` when notices are off.
    #[must_use]
    pub fn expiry_notice_window(&self) -> Option<Duration> {
        (self.expiry_notice_days > 0)
            .then(|| Duration::from_secs(self.expiry_notice_days.saturating_mul(24 * 60 * 60)))
    }
}

/// The largest `BOOKS_EXPIRY_NOTICE_DAYS`: keys live at most ten years.
pub const MAX_EXPIRY_NOTICE_DAYS: u64 = 3650;
