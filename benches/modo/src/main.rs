//! The benchmark's modo-rs server: the trivial JSON handler behind modo-rs's
//! `auth::apikey` layer on its built-in SQLite (libsql) backend.
//!
//! A separate binary because modo-rs links its own SQLite (libsql) and keyward's SQLite
//! store links sqlx's: two copies of the `sqlite3_*` symbols must not meet in one binary.
//! It speaks the same line protocol as `loadbench serve`:
//!
//! ```text
//! modo-server <database file> [--keys N] [--touch-threshold SECONDS] [--workers N] [--count-writes]
//! ```
//!
//! prints `addr <socket address>`, one `token <token>` line per key and `ready`, serves
//! until its standard input closes, then prints `writes rows=<n>` (with `--count-writes`:
//! the `last_used_at` updates, counted by a trigger) and `stopped`.

use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use modo::auth::apikey::{ApiKeyConfig, ApiKeyLayer, ApiKeyStore, CreateKeyRequest};
use modo::db::Database;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

type BoxError = Box<dyn Error + Send + Sync>;

async fn hello() -> Json<Value> {
    Json(json!({ "message": "hello" }))
}

#[derive(Debug)]
struct Options {
    path: String,
    keys: usize,
    touch_threshold: u64,
    workers: usize,
    count_writes: bool,
}

fn parse_options() -> Result<Options, BoxError> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        path: String::new(),
        keys: 1,
        touch_threshold: ApiKeyConfig::default().touch_threshold_secs,
        workers: 1,
        count_writes: false,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--keys" => options.keys = args.next().ok_or("--keys needs a value")?.parse()?,
            "--touch-threshold" => {
                options.touch_threshold = args
                    .next()
                    .ok_or("--touch-threshold needs a value")?
                    .parse()?;
            }
            "--workers" => {
                options.workers = args.next().ok_or("--workers needs a value")?.parse()?;
            }
            "--count-writes" => options.count_writes = true,
            path if !path.starts_with("--") && options.path.is_empty() => {
                options.path = path.to_owned();
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if options.path.is_empty() {
        return Err("usage: modo-server <database file> [options]".into());
    }
    Ok(options)
}

async fn count_writes(db: &Database) -> Result<i64, BoxError> {
    let mut rows = db.conn().query("SELECT n FROM bench_writes", ()).await?;
    let row = rows.next().await?.ok_or("bench_writes is empty")?;
    Ok(row.get::<i64>(0)?)
}

async fn run(options: Options) -> Result<(), BoxError> {
    let mut config = modo::db::Config::default();
    config.path.clone_from(&options.path);
    let db = modo::db::connect(&config).await?;
    // The schema modo-rs documents for its SQLite backend.
    db.conn()
        .execute(
            "CREATE TABLE api_keys (
                id           TEXT PRIMARY KEY,
                key_hash     TEXT NOT NULL,
                tenant_id    TEXT NOT NULL,
                name         TEXT NOT NULL,
                scopes       TEXT NOT NULL DEFAULT '[]',
                expires_at   TEXT,
                last_used_at TEXT,
                created_at   TEXT NOT NULL,
                revoked_at   TEXT
            )",
            (),
        )
        .await?;
    if options.count_writes {
        db.conn()
            .execute_batch(
                "CREATE TABLE bench_writes (n INTEGER NOT NULL);
                 INSERT INTO bench_writes VALUES (0);
                 CREATE TRIGGER bench_count_writes AFTER UPDATE OF last_used_at ON api_keys
                 BEGIN UPDATE bench_writes SET n = n + 1; END;",
            )
            .await?;
    }

    let mut key_config = ApiKeyConfig::default();
    key_config.touch_threshold_secs = options.touch_threshold;
    let store = ApiKeyStore::new(db.clone(), key_config)?;
    let mut tokens = Vec::with_capacity(options.keys);
    for i in 0..options.keys {
        let created = store
            .create(&CreateKeyRequest {
                tenant_id: "bench".into(),
                name: format!("bench {i}"),
                scopes: Vec::new(),
                expires_at: None,
            })
            .await?;
        tokens.push(created.raw_token);
    }

    let app = Router::new()
        .route("/", get(hello))
        .layer(ApiKeyLayer::new(store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("addr {}", listener.local_addr()?);
    for token in &tokens {
        println!("token {token}");
    }
    println!("ready");

    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    })
    .await?;

    if options.count_writes {
        // modo-rs writes `last_used_at` from spawned tasks; wait until the count settles.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = count_writes(&db).await?;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = count_writes(&db).await?;
            if now == last || Instant::now() > deadline {
                last = now;
                break;
            }
            last = now;
        }
        println!("writes rows={last}");
    }
    println!("stopped");
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let options = parse_options()?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.workers)
        .enable_all()
        .build()?
        .block_on(run(options))
}
