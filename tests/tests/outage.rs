//! Store outages on the real databases: keyward on PostgreSQL and MariaDB, reached through a
//! fault proxy that stalls and cuts the connections, serving a real axum server.
//!
//! During each fault a cache miss answers 503 with `Retry-After` within the store deadline
//! (never a hang, never 401 or 500), a cached key keeps answering 200, and within a second of
//! the database coming back a key never seen before answers 200, without restarting anything.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use keyward::{CircuitBreaker, Keyward, NewKey, ScopeCatalog};
use keyward_sea_orm::SeaOrmStore;
use keyward_test_support::{FaultProxy, Http, TestDatabase, TestServer};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tokio::time::{Instant, timeout};

const STORE_TIMEOUT: Duration = Duration::from_secs(1);
const OPEN_FOR: Duration = Duration::from_millis(200);
/// Room for a shared, loaded machine; what matters is "about the deadline", not the pool's
/// 10 or 30 s.
const SLACK: Duration = Duration::from_millis(500);
/// The promise: service returns within a second of the database.
const RECOVERY: Duration = Duration::from_secs(1);
/// A bound on any one request, so that a hang fails the test instead of holding it.
const REQUEST_LIMIT: Duration = Duration::from_secs(15);
/// How long each fault lasts: long enough to open the circuit and see probes go out and
/// fail (in a stall, the first misses wait for the deadline one after another).
const FAULT_FOR: Duration = Duration::from_secs(4);
/// The pace of requests during a fault.
const PACE: Duration = Duration::from_millis(25);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stall_and_cut() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    run(db, "PostgreSQL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_stall_and_cut() {
    let Some(db) = TestDatabase::mysql().await else {
        return;
    };
    run(db, "MariaDB").await;
}

/// Runs the scenario, then removes the database whether it passed or not.
async fn run(db: TestDatabase, backend: &'static str) {
    let url = db.url().to_owned();
    db.remove_after(outage(url, backend)).await;
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Stall,
    Cut,
}

/// A key's name (for messages) and its `Authorization` header.
struct Key {
    name: &'static str,
    bearer: String,
}

async fn outage(url: String, backend: &'static str) {
    let proxy = FaultProxy::in_front_of(&url).await.expect("a fault proxy");
    let store = SeaOrmStore::connect_and_migrate(proxy.rewrite_url(&url))
        .await
        .expect("the store connects through the proxy");
    let catalog = ScopeCatalog::builder()
        .scope("items:read", "Read items")
        .build()
        .expect("a catalog");
    let keyward = Keyward::builder(store.clone())
        .prefix("outage")
        .catalog(catalog)
        .store_timeout(STORE_TIMEOUT)
        .circuit_breaker(
            CircuitBreaker::default()
                .failure_threshold(3)
                .open_for(OPEN_FOR),
        )
        .build()
        .expect("a valid configuration");
    if let Some(feed) = store.feed_application_name() {
        // The feed drops the whole cache when it starts listening: warm the cache after that.
        feed_listening(&url, feed).await;
    }

    let mut keys = Vec::new();
    for name in ["A", "stall B", "stall C", "cut B", "cut C"] {
        let issued = keyward
            .create(NewKey::service(name).scopes(["items:read"]))
            .await
            .expect("create a key");
        keys.push(Key {
            name,
            bearer: format!("Bearer {}", issued.token.expose_secret()),
        });
    }
    let [cached, stall_miss, stall_fresh, cut_miss, cut_fresh] = &keys[..] else {
        unreachable!("five keys");
    };

    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(keyward.layer());
    let server = TestServer::start(app).await;
    let mut client = Client {
        http: Http::new(server.addr()),
        backend,
    };

    let reply = client.get(cached).await.0;
    assert_eq!(reply, StatusCode::OK, "{backend}: A before any fault");
    let accepted = proxy.accepted();
    assert!(accepted > 0, "the store goes through the proxy");

    for (fault, miss, fresh) in [
        (Fault::Stall, stall_miss, stall_fresh),
        (Fault::Cut, cut_miss, cut_fresh),
    ] {
        client.fault(&proxy, fault, cached, miss, fresh).await;
    }
    assert!(
        proxy.accepted() > accepted,
        "{backend}: the pool opened new connections after the cut, on its own"
    );

    drop(server);
    keyward.shutdown().await;
}

/// Waits until the PostgreSQL change feed named `application_name` is listening.
async fn feed_listening(url: &str, application_name: &str) {
    let db = Database::connect(url).await.expect("a direct connection");
    let query = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE application_name = $1 AND state = 'idle' AND query LIKE 'LISTEN%'",
        [application_name.into()],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = db
            .query_one(query.clone())
            .await
            .expect("read pg_stat_activity")
            .expect("one row");
        if row.try_get::<i64>("", "n").expect("a count") > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the change feed listens in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.close().await.ok();
}

struct Client {
    http: Http,
    backend: &'static str,
}

impl Client {
    /// Sends `GET /` with `key`; every answer for a valid key is 200 or 503, never a refusal
    /// or a server error.
    async fn get(&mut self, key: &Key) -> (StatusCode, Option<u64>, Duration) {
        let backend = self.backend;
        let started = Instant::now();
        let reply = timeout(
            REQUEST_LIMIT,
            self.http
                .get("/", &[("authorization", key.bearer.as_str())]),
        )
        .await
        .unwrap_or_else(|_| panic!("{backend}: key {} hung for {REQUEST_LIMIT:?}", key.name));
        let elapsed = started.elapsed();
        assert!(
            reply.status == StatusCode::OK || reply.status == StatusCode::SERVICE_UNAVAILABLE,
            "{backend}: key {} is valid, yet got {} {}",
            key.name,
            reply.status,
            reply.json
        );
        let retry_after = reply.header("retry-after").parse().ok();
        (reply.status, retry_after, elapsed)
    }

    /// One fault: misses answer 503 in time while the cached key answers 200, then a fresh
    /// miss answers 200 within [`RECOVERY`] of the restore.
    async fn fault(
        &mut self,
        proxy: &FaultProxy,
        fault: Fault,
        cached: &Key,
        miss: &Key,
        fresh: &Key,
    ) {
        let backend = self.backend;
        assert_eq!(self.get(cached).await.0, StatusCode::OK);
        match fault {
            Fault::Stall => proxy.stall(),
            Fault::Cut => proxy.cut(),
        }

        let started = Instant::now();
        let mut latencies = Vec::new();
        while started.elapsed() < FAULT_FOR {
            let (status, retry_after, elapsed) = self.get(miss).await;
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{backend} {fault:?}: a miss while the store is down"
            );
            assert!(
                retry_after.is_some_and(|seconds| seconds > 0),
                "{backend} {fault:?}: 503 with Retry-After, got {retry_after:?}"
            );
            assert!(
                elapsed <= STORE_TIMEOUT + SLACK,
                "{backend} {fault:?}: the 503 took {elapsed:?}, past the {STORE_TIMEOUT:?} deadline"
            );
            latencies.push(elapsed);
            assert_eq!(
                self.get(cached).await.0,
                StatusCode::OK,
                "{backend} {fault:?}: a cached key keeps working"
            );
            tokio::time::sleep(PACE).await;
        }

        proxy.restore();
        let restored = Instant::now();
        let mut polls = 0;
        let recovered = loop {
            polls += 1;
            let (status, _, _) = self.get(fresh).await;
            let since = restored.elapsed();
            if status == StatusCode::OK {
                break since;
            }
            assert!(
                since <= RECOVERY,
                "{backend} {fault:?}: still 503 {since:?} after the restore"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(
            recovered <= RECOVERY,
            "{backend} {fault:?}: recovered after {recovered:?}"
        );
        assert_eq!(self.get(miss).await.0, StatusCode::OK);
        assert_eq!(self.get(cached).await.0, StatusCode::OK);

        let waited: Vec<u128> = latencies
            .iter()
            .filter(|elapsed| **elapsed >= STORE_TIMEOUT / 2)
            .map(Duration::as_millis)
            .collect();
        latencies.sort();
        eprintln!(
            "{backend} {fault:?}: {} misses, all 503; median {} ms, max {} ms; \
             {} waited for the deadline ({waited:?} ms); 200 again {} ms after restore \
             ({polls} polls)",
            latencies.len(),
            latencies[latencies.len() / 2].as_millis(),
            latencies.last().map_or(0, Duration::as_millis),
            waited.len(),
            recovered.as_millis()
        );
    }
}
