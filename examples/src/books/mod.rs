//! A small Jelu-like book tracker that shows every keyward feature.
//!
//! * people log in (`POST /login`) and get a session cookie; scripts use API keys, sent as
//!   `Authorization: Bearer`, `Authorization: Token`, `X-Api-Key` or `?api_key=`;
//! * every route under `/api/v1` is guarded by a scope from the catalog; a personal key's
//!   scopes are bounded by its owner's role on every request;
//! * people manage their keys at `/api/v1/tokens` (JSON) and `/settings/tokens` (page);
//! * users, books and keys share one database: SQLite by default, PostgreSQL or MySQL through
//!   `DATABASE_URL`. A SQLite file runs in WAL mode with several connections, so reads never
//!   queue behind a write;
//! * a database failure in the app's own handlers answers 503 with `Retry-After`, as keyward
//!   does for its store, never 500;
//! * the server closes connections whose request headers do not arrive within
//!   [`Config::header_read_timeout`], so slow clients cannot hold connections forever;
//! * `GET /metrics` shows keyward's metrics in the Prometheus text format, for the
//!   operator's scraper (no key needed; see [`metrics`]);
//! * with `BOOKS_WEBHOOK_URL` and `BOOKS_WEBHOOK_SECRET`, every key event is POSTed to that
//!   URL, signed as the Standard Webhooks spec says (see [`Config::webhook`]).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use keyward::{CredentialSource, Keyward, NewKey, Problem, ScopeCatalog, StoreErrorKind};
use keyward_sea_orm::SeaOrmStore;
use keyward_webhooks::{Webhooks, WebhooksHandle};
use sea_orm::{ConnectOptions, DatabaseConnection, DbErr};
use tokio::net::TcpListener;

pub mod api;
pub mod auth;
mod config;
pub mod db;
pub mod metrics;
pub mod program;
mod server;

pub use config::{
    Config, DEFAULT_EXPIRY_NOTICE_DAYS, DEFAULT_HEADER_READ_TIMEOUT, MAX_EXPIRY_NOTICE_DAYS,
    WebhookEndpoint,
};

/// How long a request waits for a pooled database connection before it is answered 503: an
/// unreachable database costs a client this long, not the pool's default 30 s.
const DATABASE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// `Retry-After` of the app's 503s, in seconds (keyward's own 503s say the same).
const RETRY_AFTER_SECS: u64 = 5;

/// Why the app failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// The key store failed.
    #[error("key store error: {0}")]
    Store(#[from] keyward::StoreError),
    /// keyward rejected its configuration.
    #[error("keyward configuration: {0}")]
    Keyward(#[from] keyward::ConfigError),
    /// Key management failed.
    #[error("key management: {0}")]
    Manage(#[from] keyward::ManageError),
    /// Serving failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    /// Something else went wrong.
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    /// The status this error answers with: 503 when the database or the key store failed
    /// (an outage, a restart, a dropped connection: worth a retry), the key management status
    /// for a management error, and 500 only for what retrying cannot fix.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Database(err) if !is_bug(err) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(err) if err.kind() == StoreErrorKind::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Manage(err) => err.status(),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Database errors that no retry can fix: the app read or wrote something its own code got
/// wrong. Everything else (connections refused, reset or timed out, statements the database
/// refused) is the database's state, which changes.
fn is_bug(err: &DbErr) -> bool {
    matches!(
        err,
        DbErr::TryIntoErr { .. }
            | DbErr::ConvertFromU64(_)
            | DbErr::UnpackInsertId
            | DbErr::UpdateGetPrimaryKey
            | DbErr::AttrNotSet(_)
            | DbErr::Type(_)
            | DbErr::Json(_)
    )
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Manage(err) = self {
            return err.into_response();
        }
        let error = &self as &dyn std::error::Error;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error, "request failed: the database is unavailable");
            Problem::new(status, "temporarily_unavailable")
                .detail("the database is unavailable; try again shortly")
                .header(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS))
                .into_response()
        } else {
            tracing::error!(error, "request failed");
            Problem::new(status, "internal_error")
                .detail("the request could not be completed")
                .into_response()
        }
    }
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The app's database (also the key store's).
    pub db: DatabaseConnection,
    /// The keyward handle.
    pub keyward: Keyward,
    /// Logged-in sessions.
    pub sessions: auth::Sessions,
}

impl axum::extract::FromRef<AppState> for Keyward {
    fn from_ref(state: &AppState) -> Self {
        state.keyward.clone()
    }
}

/// The scopes of the book tracker; `*:write` implies `*:read` for each resource.
///
/// # Panics
///
/// Never: the catalog is fixed and valid.
#[must_use]
pub fn catalog() -> ScopeCatalog {
    ScopeCatalog::builder()
        .scope("books:read", "See the book catalog")
        .scope("books:write", "Add, change and delete books")
        .scope("reading:read", "See your reading history")
        .scope("reading:write", "Record what you read")
        .scope("reviews:read", "Read reviews")
        .scope("reviews:write", "Write reviews")
        .scope("lists:read", "See your reading lists")
        .scope("lists:write", "Change your reading lists")
        .scope("import:write", "Import books in bulk")
        .scope("metadata:read", "Look books up by ISBN")
        .scope(auth::USERS_ADMIN, "Change users' roles")
        .implies("books:write", "books:read")
        .implies("reading:write", "reading:read")
        .implies("reviews:write", "reviews:read")
        .implies("lists:write", "lists:read")
        .build()
        .expect("the books catalog is valid")
}

/// What the first start created, shown once.
#[derive(Debug, Clone)]
pub struct FirstStart {
    /// The admin's password.
    pub admin_password: String,
    /// The reader's password.
    pub reader_password: String,
    /// A personal key of the admin with every scope.
    pub bootstrap_token: String,
}

/// The assembled application.
#[derive(Debug)]
pub struct App {
    /// The router, ready to serve with `ConnectInfo<SocketAddr>`.
    pub router: Router,
    /// The keyward handle (flush usage with [`Keyward::shutdown`] when stopping).
    pub keyward: Keyward,
    /// The database connection.
    pub db: DatabaseConnection,
    /// Set on the first start with an empty database.
    pub first_start: Option<FirstStart>,
    /// The webhook delivery tasks, when [`Config::webhook`] is set.
    pub webhooks: Option<WebhooksHandle>,
}

impl App {
    /// Connects, migrates, creates the first users and key on an empty database, and builds
    /// the router.
    ///
    /// # Errors
    ///
    /// Database, migration or configuration failures.
    pub async fn new(config: &Config) -> Result<Self, AppError> {
        let github_keys = config
            .github_scanning_keys
            .as_deref()
            .map(|path| {
                std::fs::read_to_string(path)
                    .map_err(|err| err.to_string())
                    .and_then(|json| {
                        keyward_admin::GitHubScanningKeys::from_json(&json)
                            .map_err(|err| err.to_string())
                    })
                    .map_err(|err| {
                        AppError::Config(format!(
                            "BOOKS_GITHUB_SCANNING_KEYS {}: {err}",
                            path.display()
                        ))
                    })
            })
            .transpose()?;
        let mut options = ConnectOptions::new(config.database_url.as_str());
        options
            .sqlx_logging(false)
            .acquire_timeout(DATABASE_ACQUIRE_TIMEOUT);
        // The pool size is left to the store: on a SQLite file that is WAL mode with several
        // connections, so reads go on while a write is in progress.
        let store = SeaOrmStore::connect(options).await?;
        let db = store.connection().clone();
        db::migrate(&db).await?;

        // Before the keyward handle is built: it takes its counters from this recorder.
        metrics::install();
        let catalog = catalog();
        let sessions = auth::Sessions::default();
        let mut admin = keyward_admin::AdminRouter::new();
        if let Some(keys) = github_keys {
            admin = admin.github_secret_scanning(keys);
        }
        let mut builder = Keyward::builder(store.clone())
            .prefix("books")
            .realm("books")
            .catalog(catalog.clone())
            .sources([
                CredentialSource::bearer(),
                CredentialSource::token(),
                CredentialSource::header("x-api-key"),
                CredentialSource::query("api_key"),
            ])
            .trusted_proxies(config.trusted_proxies.clone())
            .usage_flush_interval(config.usage_flush_interval)
            .expiry_notices(config.expiry_notice_window())
            .callers(auth::BooksCallers::new(
                db.clone(),
                sessions.clone(),
                catalog.clone(),
            ));
        if let Some(pepper) = &config.pepper {
            builder = builder.pepper(pepper.as_bytes().to_vec());
        }
        if let Some(url) = &config.redis_url {
            let redis = keyward_redis::Redis::connect(url, config.redis_namespace.as_str())
                .await
                .map_err(|err| AppError::Config(format!("BOOKS_REDIS_URL: {err}")))?;
            builder = builder
                .rate_limiter(redis.rate_limiter())
                .change_feed(redis.change_feed())
                .failure_budget(redis.failure_budget());
        }
        let keyward = builder.build()?;
        // So that the `keyward` command line knows this app's prefix, scopes and pepper
        // before anyone uses it.
        keyward.record_settings().await?;

        let first_start = if db::is_empty(&db).await? {
            Some(first_start(&db, &keyward, config).await?)
        } else {
            None
        };

        // After the metrics recorder is installed: the workers take their series from it.
        let webhooks = match &config.webhook {
            Some(endpoint) => {
                let webhooks = Webhooks::new(store)
                    .endpoint(&endpoint.url, endpoint.secret.clone())
                    .map_err(|err| AppError::Config(format!("BOOKS_WEBHOOK_URL: {err}")))?
                    .spawn()
                    .map_err(|err| AppError::Internal(err.to_string()))?;
                // A new endpoint starts from the newest event: every change made once the
                // app serves is sent.
                webhooks.ready().await;
                Some(webhooks)
            }
            None => None,
        };

        let state = AppState {
            db: db.clone(),
            keyward: keyward.clone(),
            sessions,
        };
        let router = router(state, admin);
        Ok(Self {
            router,
            keyward,
            db,
            first_start,
            webhooks,
        })
    }
}

async fn first_start(
    db: &DatabaseConnection,
    keyward: &Keyward,
    config: &Config,
) -> Result<FirstStart, AppError> {
    let admin_password = config
        .admin_password
        .clone()
        .unwrap_or_else(auth::generate_password);
    let reader_password = config
        .reader_password
        .clone()
        .unwrap_or_else(auth::generate_password);
    let admin =
        db::insert_user(db, "admin", auth::hash_password(&admin_password)?, "admin").await?;
    db::insert_user(db, "reader", auth::hash_password(&reader_password)?, "user").await?;
    let every_scope = keyward.catalog().all_scopes().to_strings();
    let issued = keyward
        .create(NewKey::personal("Bootstrap key", admin.id).scopes(every_scope))
        .await?;
    Ok(FirstStart {
        admin_password,
        reader_password,
        bootstrap_token: issued.token.expose_secret().to_owned(),
    })
}

/// The routes: login, the API, key management (`admin`) and its page, and (outside keyward's
/// layer) the metrics.
pub fn router(state: AppState, admin: keyward_admin::AdminRouter) -> Router {
    let keyward = state.keyward.clone();
    Router::new()
        .route("/", get(|| async { Redirect::to("/settings/tokens") }))
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .nest("/api/v1", api::router())
        .nest("/api/v1/tokens", admin.build())
        .route(
            "/settings/tokens",
            get(|| async { Redirect::to("/api/v1/tokens/ui") }),
        )
        .layer(keyward.layer().optional())
        .route("/metrics", get(metrics::render))
        .with_state(state)
}

/// A running app, for tests and embedding.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Set on the first start.
    pub first_start: Option<FirstStart>,
    /// The keyward handle.
    pub keyward: Keyward,
    /// The app's database connection pool.
    pub db: DatabaseConnection,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), AppError>>,
}

impl Running {
    /// Stops accepting requests, lets the ones in flight finish, and flushes usage.
    ///
    /// # Errors
    ///
    /// A server failure.
    pub async fn stop(self) -> Result<(), AppError> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| AppError::Internal(format!("server task failed: {e}")))?
    }
}

/// Starts the app on `config.addr` (use port 0 for any free port) in a background task.
///
/// # Errors
///
/// Startup failures.
pub async fn start(config: Config) -> Result<Running, AppError> {
    let app = App::new(&config).await?;
    let listener = TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let keyward = app.keyward.clone();
    let task = tokio::spawn(run(
        app.router,
        app.keyward.clone(),
        app.webhooks,
        listener,
        config.header_read_timeout,
        async {
            let _ = stopped.await;
        },
    ));
    Ok(Running {
        addr,
        first_start: app.first_start,
        keyward,
        db: app.db,
        stop,
        task,
    })
}

async fn run(
    router: Router,
    keyward: Keyward,
    webhooks: Option<WebhooksHandle>,
    listener: TcpListener,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    server::serve(listener, router, header_read_timeout, shutdown).await;
    // Requests are done: write the last usage counts, and hand the webhook endpoints over
    // to another instance (events not sent yet are sent by it, or by the next start).
    keyward.shutdown().await;
    if let Some(webhooks) = webhooks {
        webhooks.shutdown().await;
    }
    Ok(())
}

/// Runs the app until `shutdown` completes, printing the first-start credentials once.
///
/// # Errors
///
/// Startup or server failures.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let app = App::new(&config).await?;
    if let Some(first) = &app.first_start {
        match &config.admin_password {
            Some(_) => println!("user admin: password from BOOKS_ADMIN_PASSWORD"),
            None => println!("user admin password: {}", first.admin_password),
        }
        match &config.reader_password {
            Some(_) => println!("user reader: password from BOOKS_READER_PASSWORD"),
            None => println!("user reader password: {}", first.reader_password),
        }
        println!("bootstrap token: {}", first.bootstrap_token);
    }
    let listener = TcpListener::bind(config.addr).await?;
    println!("books listening on http://{}", listener.local_addr()?);
    run(
        app.router,
        app.keyward,
        app.webhooks,
        listener,
        config.header_read_timeout,
        shutdown,
    )
    .await
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests and writing usage counts");
}
