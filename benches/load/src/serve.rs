//! The server side: `loadbench serve <kind>` runs the trivial JSON handler behind one kind of
//! authentication, in its own process with a fixed number of Tokio workers.
//!
//! Line protocol on standard output: `addr <socket address>`, one `token <token>` per key,
//! `ready`; the server runs until its standard input closes, then prints `writes …` (with
//! `--count-writes`), `lookups …` (with `--count-lookups`) and `stopped`. A line `stats` on
//! its standard input makes it print `stats lookups=<n> charged=<n> refused=<n>` (zeros
//! without `--count-lookups`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use keyward::{
    CacheConfig, KeyStore, Keyward, LocalFailureBudget, MemoryStore, NewKey, ScopeCatalog,
};
use keyward_sea_orm::SeaOrmStore;
use keyward_test_support::{CountingStore, Counts};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncBufReadExt;

use crate::BoxError;
use crate::counting::{CountingBudget, Lookups};

/// The token the static bearer check compares against.
const STATIC_TOKEN: &str = "bench_static0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZab";

/// What stands in front of the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Nothing.
    Bare,
    /// tower-http's static bearer comparison.
    Static,
    /// keyward on [`MemoryStore`], cache on.
    KeywardMemory,
    /// keyward on SQLite, cache on.
    KeywardSqlite,
    /// keyward on SQLite, cache off.
    KeywardSqliteNoCache,
    /// keyward on PostgreSQL, cache on.
    KeywardPostgres,
    /// A hand-rolled `from_fn` check on SQLite that updates `last_used_at` on every request.
    HandRolled,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Static => "static",
            Self::KeywardMemory => "keyward-memory",
            Self::KeywardSqlite => "keyward-sqlite",
            Self::KeywardSqliteNoCache => "keyward-sqlite-nocache",
            Self::KeywardPostgres => "keyward-postgres",
            Self::HandRolled => "hand-rolled",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [
            Self::Bare,
            Self::Static,
            Self::KeywardMemory,
            Self::KeywardSqlite,
            Self::KeywardSqliteNoCache,
            Self::KeywardPostgres,
            Self::HandRolled,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }
}

#[derive(Debug)]
pub(crate) struct ServeOptions {
    kind: Kind,
    db: Option<String>,
    keys: usize,
    workers: usize,
    count_writes: bool,
    flush_interval: Option<Duration>,
    /// Believe `X-Forwarded-For` from 127.0.0.1 (keyward servers).
    trust_loopback: bool,
    /// Count store lookups and the failure budget's decisions (keyward servers).
    count_lookups: bool,
    /// The keys' rate limit per minute (keyward servers).
    rate_limit: Option<u32>,
    /// Redis for the rate limiter, the change feed and the failure budget (keyward servers).
    redis: Option<String>,
}

pub(crate) fn parse(args: &[String]) -> Result<ServeOptions, BoxError> {
    let mut args = args.iter();
    let kind = args.next().ok_or("serve needs a kind")?;
    let mut options = ServeOptions {
        kind: Kind::parse(kind).ok_or_else(|| format!("unknown server kind {kind}"))?,
        db: None,
        keys: 1,
        workers: 1,
        count_writes: false,
        flush_interval: None,
        trust_loopback: false,
        count_lookups: false,
        rate_limit: None,
        redis: None,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--db" => options.db = Some(value()?.clone()),
            "--keys" => options.keys = value()?.parse()?,
            "--workers" => options.workers = value()?.parse()?,
            "--flush-interval-ms" => {
                options.flush_interval = Some(Duration::from_millis(value()?.parse()?));
            }
            "--count-writes" => options.count_writes = true,
            "--trust-loopback" => options.trust_loopback = true,
            "--count-lookups" => options.count_lookups = true,
            "--rate-limit" => options.rate_limit = Some(value()?.parse()?),
            "--redis" => options.redis = Some(value()?.clone()),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(options)
}

/// Runs `loadbench serve …` with `args` after `serve`.
pub(crate) fn main(args: &[String]) -> Result<(), BoxError> {
    let options = parse(args)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.workers)
        .enable_all()
        .build()?
        .block_on(run(options))
}

async fn hello() -> Json<Value> {
    Json(json!({ "message": "hello" }))
}

fn handler() -> Router {
    Router::new().route("/", get(hello))
}

/// What the server must do after it stops serving.
pub(crate) enum Finish {
    Nothing,
    Keyward {
        keyward: Keyward,
        /// The spy store's counts.
        counts: Arc<Counts>,
        rows: Option<DatabaseConnection>,
        /// With `--count-lookups`: the counts and the failure budget's window.
        lookups: Option<(Arc<Lookups>, Duration)>,
    },
    HandRolled {
        db: DatabaseConnection,
    },
}

async fn run(options: ServeOptions) -> Result<(), BoxError> {
    let (app, tokens, finish) = app(&options).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("addr {}", listener.local_addr()?);
    for token in &tokens {
        println!("token {token}");
    }
    println!("ready");

    let counts = match &finish {
        Finish::Keyward {
            lookups: Some((lookups, _)),
            ..
        } => Some(Arc::clone(lookups)),
        _ => None,
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == "stats" {
                let counts = counts.as_ref().map_or_else(
                    || "lookups=0 charged=0 refused=0".to_owned(),
                    |counts| counts.describe(),
                );
                println!("stats {counts}");
            }
        }
    })
    .await?;

    match finish {
        Finish::Nothing => {}
        Finish::Keyward {
            keyward,
            counts,
            rows,
            lookups,
        } => {
            keyward.shutdown().await;
            if let Some((lookups, window)) = lookups {
                println!(
                    "lookups {} max_per_window={} window_s={}",
                    lookups.describe(),
                    lookups.max_per_window(window),
                    window.as_secs(),
                );
            }
            if options.count_writes {
                let rows = match &rows {
                    Some(db) => read_write_counter(db).await?.to_string(),
                    None => "-".to_owned(),
                };
                println!(
                    "writes rows={rows} calls={} updates={}",
                    counts.usage_writes(),
                    counts.usage_updates(),
                );
            }
        }
        Finish::HandRolled { db } => {
            if options.count_writes {
                println!("writes rows={}", read_write_counter(&db).await?);
            }
        }
    }
    println!("stopped");
    Ok(())
}

/// The server's router, the tokens its clients send, and what to do when it stops.
pub(crate) async fn app(options: &ServeOptions) -> Result<(Router, Vec<String>, Finish), BoxError> {
    Ok(match options.kind {
        Kind::Bare => (handler(), Vec::new(), Finish::Nothing),
        Kind::Static => {
            // Deprecated upstream as too basic for real use; the cheapest possible check is
            // exactly the floor this row measures.
            #[expect(deprecated)]
            let layer =
                tower_http::validate_request::ValidateRequestHeaderLayer::bearer(STATIC_TOKEN);
            (
                handler().layer(layer),
                vec![STATIC_TOKEN.to_owned()],
                Finish::Nothing,
            )
        }
        Kind::KeywardMemory => keyward_app(MemoryStore::new(), None, options).await?,
        Kind::KeywardSqlite | Kind::KeywardSqliteNoCache | Kind::KeywardPostgres => {
            let url = options.db.as_deref().ok_or("this server needs --db")?;
            let store = SeaOrmStore::connect(url).await?;
            keyward_sea_orm::migrate(store.connection()).await?;
            let connection = store.connection().clone();
            if options.count_writes {
                install_write_counter(&connection, "keyward_keys", "").await?;
            }
            keyward_app(store, Some(connection), options).await?
        }
        Kind::HandRolled => hand_rolled_app(options).await?,
    })
}

async fn keyward_app(
    store: impl KeyStore,
    rows: Option<DatabaseConnection>,
    options: &ServeOptions,
) -> Result<(Router, Vec<String>, Finish), BoxError> {
    let cache = if options.kind == Kind::KeywardSqliteNoCache {
        CacheConfig::disabled()
    } else {
        CacheConfig::default()
    };
    let catalog = ScopeCatalog::builder()
        .scope("bench:read", "Read the benchmark's handler")
        .build()?;
    let mut store = CountingStore::wrapping(store);
    if options.count_lookups {
        store = store.timing_finds();
    }
    let counts = Arc::clone(&store.counts);
    let lookups = options
        .count_lookups
        .then(|| Arc::new(Lookups::new(Arc::clone(&counts))));
    let mut builder = Keyward::builder(store)
        .prefix("bench")
        .catalog(catalog)
        .cache(cache);
    if let Some(interval) = options.flush_interval {
        builder = builder.usage_flush_interval(interval);
    }
    if options.trust_loopback {
        builder = builder.trusted_proxies([IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    }
    let lookups = match lookups {
        Some(counts) => {
            // The default budget, counted.
            let budget = LocalFailureBudget::default();
            let window = budget.window();
            builder = builder.failure_budget(CountingBudget::new(budget, Arc::clone(&counts)));
            Some((counts, window))
        }
        None => None,
    };
    if let Some(url) = &options.redis {
        let namespace = format!("keyward-bench:{}", std::process::id());
        let redis = keyward_redis::Redis::connect(url, namespace).await?;
        builder = builder
            .rate_limiter(redis.rate_limiter())
            .change_feed(redis.change_feed())
            .failure_budget(redis.failure_budget());
    }
    let keyward = builder.build()?;
    let mut tokens = Vec::with_capacity(options.keys);
    for i in 0..options.keys {
        let mut new = NewKey::service(format!("bench {i}")).scopes(["bench:read"]);
        if let Some(per_minute) = options.rate_limit {
            new = new.rate_limit(per_minute);
        }
        let issued = keyward.create(new).await?;
        tokens.push(issued.token.expose_secret().to_owned());
    }
    let app = handler().layer(keyward.layer());
    Ok((
        app,
        tokens,
        Finish::Keyward {
            keyward,
            counts,
            rows,
            lookups,
        },
    ))
}

/// Counts the rows an `UPDATE` on `table` touches, with a trigger.
async fn install_write_counter(
    db: &DatabaseConnection,
    table: &str,
    columns: &str,
) -> Result<(), BoxError> {
    for sql in [
        "CREATE TABLE bench_writes (n INTEGER NOT NULL)".to_owned(),
        "INSERT INTO bench_writes VALUES (0)".to_owned(),
        format!(
            "CREATE TRIGGER bench_count_writes AFTER UPDATE {columns} ON {table} \
             BEGIN UPDATE bench_writes SET n = n + 1; END"
        ),
    ] {
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}

async fn read_write_counter(db: &DatabaseConnection) -> Result<i64, BoxError> {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT n FROM bench_writes",
        ))
        .await?
        .ok_or("bench_writes is empty")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The naive API-key check many applications start with: look the hash up, then write
/// `last_used_at` before answering.
async fn hand_rolled_check(
    State(db): State<DatabaseConnection>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let backend = db.get_database_backend();
    let found = db
        .query_one(Statement::from_sql_and_values(
            backend,
            "SELECT id FROM api_keys WHERE key_hash = ?",
            [sha256_hex(token).into()],
        ))
        .await;
    let id: i64 = match found {
        Ok(Some(row)) => match row.try_get_by_index(0) {
            Ok(id) => id,
            Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        },
        Ok(None) => return StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    let updated = db
        .execute(Statement::from_sql_and_values(
            backend,
            "UPDATE api_keys SET last_used_at = ? WHERE id = ?",
            [i64::try_from(now).unwrap_or(i64::MAX).into(), id.into()],
        ))
        .await;
    if updated.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    next.run(request).await
}

async fn hand_rolled_app(
    options: &ServeOptions,
) -> Result<(Router, Vec<String>, Finish), BoxError> {
    let url = options.db.as_deref().ok_or("this server needs --db")?;
    let db = sea_orm::Database::connect(url).await?;
    db.execute_unprepared(
        "CREATE TABLE api_keys (
            id INTEGER PRIMARY KEY,
            key_hash TEXT NOT NULL UNIQUE,
            last_used_at INTEGER
        )",
    )
    .await?;
    if options.count_writes {
        install_write_counter(&db, "api_keys", "OF last_used_at").await?;
    }
    let mut tokens = Vec::with_capacity(options.keys);
    for i in 0..options.keys {
        let token = format!("handrolled_{i:04}_{}", sha256_hex(&format!("{i}{url}")));
        db.execute(Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO api_keys (key_hash) VALUES (?)",
            [sha256_hex(&token).into()],
        ))
        .await?;
        tokens.push(token);
    }
    let app = handler().layer(middleware::from_fn_with_state(
        db.clone(),
        hand_rolled_check,
    ));
    Ok((app, tokens, Finish::HandRolled { db }))
}
