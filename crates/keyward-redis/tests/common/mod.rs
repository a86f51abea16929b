//! Helpers of the Redis tests: the server to use, a private server to restart, instances.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyward::{KeyStore, Keyward};
use keyward_redis::Redis;

/// The variable naming the Redis server of the tests.
pub const REDIS_URL: &str = "KEYWARD_TEST_REDIS_URL";

/// The Redis of [`REDIS_URL`]; `None`, after saying so, when the variable is unset.
///
/// # Panics
///
/// When it is set but Redis does not answer.
pub async fn redis_url() -> Option<String> {
    let Ok(url) = std::env::var(REDIS_URL) else {
        eprintln!("skipped: {REDIS_URL} is not set");
        return None;
    };
    let client = redis::Client::open(url.as_str()).expect("a valid KEYWARD_TEST_REDIS_URL");
    let mut connection = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .unwrap_or_else(|_| panic!("{REDIS_URL}={url}: no answer"))
    .unwrap_or_else(|err| panic!("{REDIS_URL}={url} is unreachable: {err}"));
    let pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .unwrap_or_else(|err| panic!("{REDIS_URL}={url} does not answer PING: {err}"));
    assert_eq!(pong, "PONG");
    Some(url)
}

/// A namespace no other test run uses.
pub fn namespace(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("keyward-test:{test}:{}:{nanos}", std::process::id())
}

/// A direct connection for looking at what the parts wrote.
pub async fn inspect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

/// Waits until `subscribers` connections listen on `channel`.
pub async fn wait_subscribed(url: &str, channel: &str, subscribers: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(client) = redis::Client::open(url) {
            if let Ok(Ok(mut connection)) = tokio::time::timeout(
                Duration::from_millis(500),
                client.get_multiplexed_async_connection(),
            )
            .await
            {
                let counts: redis::RedisResult<(String, usize)> = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(channel)
                    .query_async(&mut connection)
                    .await;
                if counts.is_ok_and(|(_, n)| n >= subscribers) {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{subscribers} subscribers on {channel} not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A keyward instance with all three Redis parts; the failure budget syncs every 50 ms.
pub fn instance(store: impl KeyStore, redis: &Redis, budget: u32) -> Keyward {
    Keyward::builder(store)
        .prefix("books")
        .rate_limiter(redis.rate_limiter())
        .change_feed(redis.change_feed())
        .failure_budget(keyward_redis::RedisFailureBudget::with_sync_interval(
            redis,
            budget,
            Duration::from_secs(3600),
            Duration::from_millis(50),
        ))
        .build()
        .expect("a valid configuration")
}

/// A `redis-server` of the test's own, on a free port, without persistence.
pub struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one and waits until it answers.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(namespace("redis").replace(':', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.run().await;
        server
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url()).unwrap();
        loop {
            if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut connection).await;
                if pong.is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}
