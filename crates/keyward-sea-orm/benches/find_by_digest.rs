//! Find-by-digest latency with 1 000 and with 1 000 000 stored keys, on SQLite (a file) and,
//! when `KEYWARD_TEST_POSTGRES_URL` is set, on PostgreSQL (a fresh schema, dropped afterwards).
//!
//! Lookups go for existing keys, rotating through 1 000 of them, so every iteration is the
//! middleware's cache-miss path: one indexed query that finds a row.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]
// Built with neither SQLite nor PostgreSQL (e.g. MySQL only), the bench only reports skips.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, unused_imports)
)]

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use keyward_core::conformance::personal_key;
use keyward_core::{KeyStore, TokenDigest, TokenHasher};
use keyward_sea_orm::SeaOrmStore;
use keyward_sea_orm::entity::{ActiveModel, Entity, Model};
use sea_orm::{ConnectOptions, EntityTrait, TransactionTrait};
use tokio::runtime::Runtime;

const SIZES: [(usize, &str); 2] = [(1_000, "1k"), (1_000_000, "1M")];
/// Keys looked up during a measurement; the rest of the table is filler.
const PROBES: usize = 1_000;
/// Rows per INSERT statement: 21 columns stay below every backend's parameter limit.
const ROWS_PER_INSERT: usize = 1_000;
/// INSERT statements per transaction.
const INSERTS_PER_TRANSACTION: usize = 50;

/// A filler row: realistic, random 32-byte digests under fresh UUID v7 ids.
fn filler(template: &Model) -> Model {
    Model {
        id: uuid::Uuid::now_v7(),
        digest: rand::random::<[u8; 32]>().to_vec(),
        ..template.clone()
    }
}

/// Stores `filler_rows` rows with multi-row INSERTs, then `PROBES` keys through the store;
/// returns the digests of those keys.
async fn fill(store: &SeaOrmStore, filler_rows: usize) -> Vec<TokenDigest> {
    let started = Instant::now();
    // The filler copies a row as the store writes it, with its own id and digest.
    let (record, _) = personal_key("bench", 0);
    store
        .insert(record.clone(), &keyward_core::EventContext::system())
        .await
        .expect("insert");
    let template = Entity::find_by_id(*record.id.as_uuid())
        .one(store.connection())
        .await
        .expect("read the row back")
        .expect("the row exists");
    Entity::delete_by_id(template.id)
        .exec(store.connection())
        .await
        .expect("delete the template");
    let db = store.connection();
    let mut left = filler_rows;
    while left > 0 {
        let txn = db.begin().await.expect("begin");
        for _ in 0..INSERTS_PER_TRANSACTION {
            let rows = left.min(ROWS_PER_INSERT);
            if rows == 0 {
                break;
            }
            Entity::insert_many((0..rows).map(|_| ActiveModel::from(filler(&template))))
                .exec_without_returning(&txn)
                .await
                .expect("insert filler rows");
            left -= rows;
        }
        txn.commit().await.expect("commit");
    }
    let hasher = TokenHasher::sha256();
    let mut digests = Vec::with_capacity(PROBES);
    for i in 0..PROBES {
        let (record, token) = personal_key("bench", i64::try_from(i).expect("small"));
        store
            .insert(record, &keyward_core::EventContext::system())
            .await
            .expect("insert a probe key");
        digests.push(hasher.digest(&token));
    }
    eprintln!(
        "stored {} keys in {:.1} s",
        filler_rows + PROBES,
        started.elapsed().as_secs_f64()
    );
    digests
}

/// Measures every prepared size back to back, so that the figures compared share conditions.
fn measure(
    c: &mut Criterion,
    runtime: &Runtime,
    backend: &str,
    prepared: &[(&str, SeaOrmStore, Vec<TokenDigest>)],
) {
    let mut group = c.benchmark_group(format!("find_by_digest/{backend}"));
    group.measurement_time(Duration::from_secs(10));
    let now = Utc::now() - TimeDelta::days(1);
    for (label, store, digests) in prepared {
        let mut next = 0;
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.to_async(runtime).iter(|| {
                next = (next + 1) % digests.len();
                let digest = digests[next];
                async move {
                    let found = store.find_by_digest(&digest, now).await.expect("find");
                    assert!(found.is_some(), "a stored key");
                }
            });
        });
    }
    group.finish();
}

#[cfg(feature = "sqlite")]
fn sqlite(c: &mut Criterion) {
    use sea_orm::ConnectionTrait;

    let runtime = Runtime::new().expect("runtime");
    let dir = std::env::temp_dir()
        .join("keyward-sea-orm-bench")
        .join(uuid::Uuid::now_v7().simple().to_string());
    let mut prepared = Vec::new();
    for (size, label) in SIZES {
        let path = dir.join(label);
        std::fs::create_dir_all(&path).expect("temporary directory");
        let url = format!("sqlite://{}?mode=rwc", path.join("keys.db").display());
        let (store, digests) = runtime.block_on(async {
            // `connect` gives a SQLite file WAL mode and a few connections by default.
            let mut options = ConnectOptions::new(url);
            options.sqlx_logging(false);
            let store = SeaOrmStore::connect_and_migrate(options)
                .await
                .expect("SQLite file");
            let digests = fill(&store, size - PROBES).await;
            // Move the bulk load out of the write-ahead log, as a running application's
            // checkpoints would have done.
            store
                .connection()
                .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
                .await
                .expect("checkpoint");
            (store, digests)
        });
        prepared.push((label, store, digests));
    }
    measure(c, &runtime, "sqlite", &prepared);
    for (_, store, _) in prepared {
        runtime
            .block_on(store.connection().clone().close())
            .expect("close");
    }
    std::fs::remove_dir_all(&dir).expect("remove the temporary databases");
}

#[cfg(not(feature = "sqlite"))]
fn sqlite(_: &mut Criterion) {
    eprintln!("skipped SQLite: built without the `sqlite` feature");
}

#[cfg(feature = "postgres")]
fn postgres(c: &mut Criterion) {
    use sea_orm::{ConnectionTrait, Database};

    let Some(url) = std::env::var("KEYWARD_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        eprintln!("skipped PostgreSQL: KEYWARD_TEST_POSTGRES_URL is not set");
        return;
    };
    let runtime = Runtime::new().expect("runtime");
    let admin = runtime
        .block_on(Database::connect(url.clone()))
        .expect("PostgreSQL");
    let mut schemas = Vec::new();
    let mut prepared = Vec::new();
    for (size, label) in SIZES {
        let schema = format!("keyward_bench_{}", uuid::Uuid::now_v7().simple());
        let (store, digests) = runtime.block_on(async {
            admin
                .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
                .await
                .expect("create a schema");
            let mut options = ConnectOptions::new(url.clone());
            options
                .set_schema_search_path(schema.clone())
                .sqlx_logging(false);
            let store = SeaOrmStore::connect_and_migrate(options)
                .await
                .expect("connect and migrate");
            let digests = fill(&store, size - PROBES).await;
            // Fresh statistics, as autovacuum would have gathered on a table this size.
            store
                .connection()
                .execute_unprepared("VACUUM ANALYZE keyward_keys")
                .await
                .expect("analyze");
            (store, digests)
        });
        schemas.push(schema);
        prepared.push((label, store, digests));
    }
    measure(c, &runtime, "postgres", &prepared);
    runtime.block_on(async {
        for (_, store, _) in prepared {
            store.connection().clone().close().await.expect("close");
        }
        for schema in schemas {
            admin
                .execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .expect("drop the schema");
        }
    });
}

#[cfg(not(feature = "postgres"))]
fn postgres(_: &mut Criterion) {
    eprintln!("skipped PostgreSQL: built without the `postgres` feature");
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
