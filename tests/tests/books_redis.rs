//! Three processes of the reference app on one MariaDB database with `BOOKS_REDIS_URL`: a
//! key's rate limit holds for the three together, and a revoke on one instance is refused by
//! the other two within a second. Runs when `KEYWARD_TEST_REDIS_URL` and
//! `KEYWARD_TEST_MYSQL_URL` are set; fails when Redis is set but unreachable (the app then
//! refuses to start).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyward_test_support::{Http, TestDatabase};
use keyward_tests::{ADMIN_PASSWORD, READER_PASSWORD, sign_in_at};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// One process of the reference app, killed when dropped.
struct Process {
    addr: SocketAddr,
    child: Child,
}

impl Process {
    /// Starts the app on the database at `url` with Redis, on a free port, and waits until it
    /// says where it listens.
    async fn start(url: &str, redis_url: &str, namespace: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_books"))
            .env("DATABASE_URL", url)
            .env("BOOKS_ADDR", "127.0.0.1:0")
            .env("BOOKS_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("BOOKS_READER_PASSWORD", READER_PASSWORD)
            .env("BOOKS_REDIS_URL", redis_url)
            .env("BOOKS_REDIS_NAMESPACE", namespace)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the app's binary runs");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("the app's output") {
                if let Some(addr) = line.strip_prefix("books listening on http://") {
                    return addr.parse().expect("an address");
                }
            }
            panic!("the app stopped before listening (is Redis reachable?)");
        })
        .await
        .expect("the app listens within 30 s");
        // Keep reading its output, so that the app never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { addr, child }
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Three processes on one database and one Redis namespace. They start one after the other:
/// the first creates the schema and the users.
async fn cluster(redis_url: &str, db: &TestDatabase) -> Vec<Process> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let namespace = format!("books-test:{}:{nanos}", std::process::id());
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(Process::start(db.url(), redis_url, &namespace).await);
    }
    apps
}

async fn create_key(admin: &mut Http, name: &str, rate_limit: Option<u32>) -> (String, String) {
    let created = admin
        .post(
            "/api/v1/tokens/keys",
            &[],
            &json!({ "name": name, "scopes": ["books:read"], "rate_limit": rate_limit }),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    (
        created.json["key"]["id"].as_str().unwrap().to_owned(),
        created.json["token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_limits_and_revokes() {
    let Ok(redis_url) = std::env::var("KEYWARD_TEST_REDIS_URL") else {
        eprintln!("skipped: KEYWARD_TEST_REDIS_URL is not set");
        return;
    };
    let Some(db) = TestDatabase::mysql().await else {
        return;
    };
    let apps = cluster(&redis_url, &db).await;
    let (mut admin, _) = sign_in_at(apps[0].addr, "admin", ADMIN_PASSWORD).await;
    let mut clients: Vec<Http> = apps.iter().map(|app| Http::new(app.addr)).collect();

    // 30 a minute: 60 requests spread over the three instances within a second admit the
    // burst of 30 once, not 30 per instance.
    let (_, limited) = create_key(&mut admin, "limited", Some(30)).await;
    let bearer = format!("Bearer {limited}");
    let (mut admitted, mut refused) = (0, 0);
    for attempt in 0..60 {
        let reply = clients[attempt % 3]
            .get("/api/v1/books", &[("authorization", bearer.as_str())])
            .await;
        match reply.status.as_u16() {
            200 => admitted += 1,
            429 => {
                assert!(!reply.header("retry-after").is_empty());
                refused += 1;
            }
            status => panic!("unexpected {status}: {:?}", reply.json),
        }
    }
    eprintln!("limit 30/min over three instances: {admitted} admitted, {refused} refused");
    assert!(
        (30..=31).contains(&admitted),
        "{admitted} admitted: the limit is not shared"
    );

    // A key used on every instance (so cached by each) is revoked on the first.
    let (id, token) = create_key(&mut admin, "revoked", None).await;
    let bearer = format!("Bearer {token}");
    for client in &mut clients {
        let reply = client
            .get("/api/v1/books", &[("authorization", bearer.as_str())])
            .await;
        assert_eq!(reply.status, 200);
    }
    let revoked = admin
        .post(&format!("/api/v1/tokens/keys/{id}/revoke"), &[], &json!({}))
        .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.json);
    let at = Instant::now();
    for (n, client) in clients.iter_mut().enumerate().skip(1) {
        loop {
            let reply = client
                .get("/api/v1/books", &[("authorization", bearer.as_str())])
                .await;
            if reply.status == 401 {
                break;
            }
            assert_eq!(reply.status, 200, "{:?}", reply.json);
            assert!(
                at.elapsed() < Duration::from_secs(1),
                "instance {} still accepts the revoked key after {:?}",
                n + 1,
                at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    eprintln!(
        "the revoke was refused by the two other instances after {:?}",
        at.elapsed()
    );
    for app in apps {
        app.stop().await;
    }
    db.remove().await;
}
