//! The reference app when things go wrong: slow clients are cut off after the header
//! deadline, database failures in its own handlers answer 503 with `Retry-After`, and on a
//! SQLite file reads go on while a write transaction is open.

use std::time::{Duration, Instant};

use keyward_examples::books;
use keyward_test_support::{Http, Reply, TestDatabase};
use keyward_tests::{READER_PASSWORD, config, login, start};
use sea_orm::sqlx::{self, Row};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (end of stream or reset): whether it did
/// before `deadline`.
async fn closed_by_server(stream: &mut (impl AsyncReadExt + Unpin), deadline: Instant) -> bool {
    let mut buf = [0_u8; 1024];
    loop {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await;
        match read {
            Err(_elapsed) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // Whatever the server says before closing (an error response) is fine.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_disconnected_after_the_header_read_timeout() {
    let db = TestDatabase::sqlite();
    let mut config = config(db.url());
    config.header_read_timeout = Duration::from_secs(1);
    let app = books::start(config).await.expect("the app starts");

    // A client that connects and says nothing.
    let started = Instant::now();
    let mut silent = TcpStream::connect(app.addr).await.expect("connect");
    assert!(
        closed_by_server(&mut silent, started + Duration::from_secs(5)).await,
        "a silent client was not disconnected"
    );
    let silent_for = started.elapsed();

    // A client that sends part of its headers, then stops.
    let started = Instant::now();
    let mut partial = TcpStream::connect(app.addr).await.expect("connect");
    partial
        .write_all(b"GET /api/v1/books HTTP/1.1\r\nHost: books\r\nX-Api-Key: books_")
        .await
        .expect("send part of the headers");
    assert!(
        closed_by_server(&mut partial, started + Duration::from_secs(5)).await,
        "a client with half-sent headers was not disconnected"
    );
    let partial_for = started.elapsed();

    // A client that keeps sending, one header byte every 100 ms: progress does not extend
    // the deadline.
    let started = Instant::now();
    let (mut reader, mut writer) = TcpStream::connect(app.addr)
        .await
        .expect("connect")
        .into_split();
    let trickle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut sent = writer
            .write_all(b"GET /api/v1/books HTTP/1.1\r\nHost: books\r\nX-Slow: ")
            .await;
        while sent.is_ok() {
            tick.tick().await;
            sent = writer.write_all(b"a").await;
        }
    });
    assert!(
        closed_by_server(&mut reader, started + Duration::from_secs(5)).await,
        "a client trickling its headers was not disconnected"
    );
    let trickle_for = started.elapsed();
    trickle.abort();

    for (client, held) in [
        ("silent", silent_for),
        ("partial", partial_for),
        ("trickling", trickle_for),
    ] {
        assert!(
            held >= Duration::from_millis(900),
            "the {client} client was cut off after {held:?}, before the 1 s timeout"
        );
    }

    // Whole requests are served as before.
    let mut reader = login(&app, "reader", READER_PASSWORD).await;
    assert_eq!(reader.get("/api/v1/books", &[]).await.status, 200);
    app.stop().await.expect("a clean stop");
}

fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {:?}", reply.json);
    let retry_after: u64 = reply
        .header("retry-after")
        .parse()
        .unwrap_or_else(|_| panic!("{what}: a Retry-After in seconds"));
    assert!(retry_after > 0, "{what}: Retry-After {retry_after}");
    assert_eq!(
        reply.header("content-type"),
        "application/problem+json",
        "{what}"
    );
    assert_eq!(reply.json["status"], 503, "{what}: {:?}", reply.json);
    assert_eq!(
        reply.json["error"], "temporarily_unavailable",
        "{what}: {:?}",
        reply.json
    );
}

/// A connection of its own to the app's database, as an operator's tool would have.
async fn second_connection(url: &str) -> DatabaseConnection {
    Database::connect(url).await.expect("a second connection")
}

/// Takes the app's tables away under it, then gives them back.
async fn tables_gone(url: &str) {
    let app = start(url).await;
    let mut reader = login(&app, "reader", READER_PASSWORD).await;
    let token = app
        .first_start
        .clone()
        .expect("first start")
        .bootstrap_token;
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    let book = json!({ "title": "Emma", "author": "Jane Austen" });
    let created = reader.post("/api/v1/books", &[], &book).await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    // The key is verified and cached while the database is whole.
    assert_eq!(reader.get("/api/v1/books", &auth).await.status, 200);

    // The books table goes away under the running app.
    let operator = second_connection(url).await;
    operator
        .execute_unprepared("ALTER TABLE books_books RENAME TO books_books_away")
        .await
        .expect("rename");
    assert_unavailable(&reader.get("/api/v1/books", &[]).await, "list books");
    assert_unavailable(&reader.get("/api/v1/books/1", &[]).await, "get a book");
    assert_unavailable(
        &reader.post("/api/v1/books", &[], &book).await,
        "create a book",
    );
    assert_unavailable(
        &reader
            .send(
                http::Method::PATCH,
                "/api/v1/books/1",
                &[],
                Some(&json!({ "title": "Persuasion" })),
            )
            .await,
        "update a book",
    );
    assert_unavailable(
        &reader
            .send(http::Method::DELETE, "/api/v1/books/1", &[], None)
            .await,
        "delete a book",
    );
    assert_unavailable(
        &reader
            .post("/api/v1/import", &[], &json!({ "books": [book] }))
            .await,
        "import",
    );
    assert_unavailable(
        &reader
            .post(
                "/api/v1/reading-events",
                &[],
                &json!({ "book_id": 1, "kind": "started" }),
            )
            .await,
        "record reading",
    );
    assert_unavailable(
        &reader
            .get("/api/v1/metadata?isbn=978-0-306-40615-7", &[])
            .await,
        "metadata",
    );
    assert_unavailable(
        &Http::new(app.addr).get("/api/v1/books", &auth).await,
        "list books with a key",
    );

    // So do the users: logging in cannot check a password.
    operator
        .execute_unprepared("ALTER TABLE books_users RENAME TO books_users_away")
        .await
        .expect("rename");
    let mut anonymous = Http::new(app.addr);
    assert_unavailable(
        &anonymous
            .post(
                "/login",
                &[],
                &json!({ "username": "reader", "password": READER_PASSWORD }),
            )
            .await,
        "login",
    );

    // Once the tables are back, so is the service, with nothing restarted.
    for (away, table) in [
        ("books_books_away", "books_books"),
        ("books_users_away", "books_users"),
    ] {
        operator
            .execute_unprepared(&format!("ALTER TABLE {away} RENAME TO {table}"))
            .await
            .expect("rename back");
    }
    let listed = reader.get("/api/v1/books", &[]).await;
    assert_eq!(listed.status, 200, "{:?}", listed.json);
    assert_eq!(listed.json["books"][0]["title"], "Emma");
    login(&app, "reader", READER_PASSWORD).await;
    assert_eq!(anonymous.get("/api/v1/books", &auth).await.status, 200);
    operator.close().await.ok();
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tables_answer_503_with_retry_after_on_sqlite() {
    let db = TestDatabase::sqlite();
    tables_gone(db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tables_answer_503_with_retry_after_on_postgres() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    tables_gone(db.url()).await;
    db.remove().await;
}

/// What a PostgreSQL restart does to a query in flight: its connection is terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_mid_query_answers_503_on_postgres() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let app = start(db.url()).await;
    let reader = login(&app, "reader", READER_PASSWORD).await;

    // A lock holds the next read inside the database, where its connection can be cut.
    let operator = second_connection(db.url()).await;
    let lock = operator.begin().await.expect("begin");
    lock.execute_unprepared("LOCK TABLE books_books IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let pending = tokio::spawn({
        let mut reader = reader.clone();
        async move { reader.get("/api/v1/books", &[]).await }
    });
    let terminate = Statement::from_string(
        DbBackend::Postgres,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock' \
         AND pid <> pg_backend_pid()",
    );
    // Generous: on a busy machine the request may take a while to reach the database.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let terminated: i64 = lock
            .query_one(terminate.clone())
            .await
            .expect("terminate")
            .expect("a row")
            .try_get_by_index(0)
            .expect("a count");
        if terminated > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the read never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = tokio::time::timeout(Duration::from_secs(15), pending)
        .await
        .expect("the cut read answers")
        .expect("the request task");
    assert_unavailable(&reply, "a read whose connection was reset");

    // The pool replaces the connection: the next read succeeds, nothing restarted.
    lock.rollback().await.expect("release the lock");
    let mut reader = reader;
    assert_eq!(reader.get("/api/v1/books", &[]).await.status, 200);
    operator.close().await.ok();
    app.stop().await.expect("a clean stop");
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pool_answers_503_with_retry_after() {
    let db = TestDatabase::sqlite();
    let app = start(db.url()).await;
    let mut reader = login(&app, "reader", READER_PASSWORD).await;
    app.db.clone().close().await.expect("close the pool");
    assert_unavailable(&reader.get("/api/v1/books", &[]).await, "list books");
    assert_unavailable(
        &Http::new(app.addr)
            .post(
                "/login",
                &[],
                &json!({ "username": "reader", "password": READER_PASSWORD }),
            )
            .await,
        "login",
    );
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_runs_in_wal_mode_with_several_connections() {
    let db = TestDatabase::sqlite();
    let app = start(db.url()).await;
    let pool = app.db.get_sqlite_connection_pool();
    assert!(
        pool.options().get_max_connections() > 1,
        "the pool may open {} connection(s)",
        pool.options().get_max_connections()
    );
    // Two connections at once, each in WAL mode with the settings that go with it.
    let (first, second) = tokio::time::timeout(Duration::from_secs(5), async {
        let first = pool.acquire().await.expect("a connection");
        let second = pool.acquire().await.expect("a second connection at once");
        (first, second)
    })
    .await
    .expect("two connections within 5 s");
    for mut connection in [first, second] {
        let mode: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut *connection)
            .await
            .expect("journal mode")
            .get(0);
        assert_eq!(mode, "wal");
        let synchronous: i64 = sqlx::query("PRAGMA synchronous")
            .fetch_one(&mut *connection)
            .await
            .expect("synchronous")
            .get(0);
        assert_eq!(synchronous, 1, "synchronous=NORMAL");
        let busy_timeout: i64 = sqlx::query("PRAGMA busy_timeout")
            .fetch_one(&mut *connection)
            .await
            .expect("busy timeout")
            .get(0);
        assert!(busy_timeout >= 1000, "busy_timeout {busy_timeout} ms");
    }
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_on_while_a_write_transaction_is_open() {
    let db = TestDatabase::sqlite();
    let app = start(db.url()).await;
    let mut reader = login(&app, "reader", READER_PASSWORD).await;
    let token = app
        .first_start
        .clone()
        .expect("first start")
        .bootstrap_token;
    let bearer = format!("Bearer {token}");
    let created = reader
        .post(
            "/api/v1/books",
            &[],
            &json!({ "title": "Emma", "author": "Jane Austen" }),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);

    // A long write holds one of the app's own connections and the database's write lock;
    // EXCLUSIVE would also shut readers out, were the database not in WAL mode.
    let mut writer = app
        .db
        .get_sqlite_connection_pool()
        .acquire()
        .await
        .expect("a connection");
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut *writer)
        .await
        .expect("begin");
    sqlx::query("UPDATE books_books SET title = 'Persuasion'")
        .execute(&mut *writer)
        .await
        .expect("update");

    // Reads answer at once (well within the 5 s a reader would otherwise wait for the lock),
    // from the last committed state.
    let within = Duration::from_secs(2);
    for auth in [&[][..], &[("authorization", bearer.as_str())][..]] {
        let listed = tokio::time::timeout(within, reader.get("/api/v1/books", auth))
            .await
            .expect("a read answers while the write is open");
        assert_eq!(listed.status, 200, "{:?}", listed.json);
        assert_eq!(listed.json["books"][0]["title"], "Emma");
    }
    let me = tokio::time::timeout(
        within,
        Http::new(app.addr).get("/api/v1/tokens/self", &[("authorization", bearer.as_str())]),
    )
    .await
    .expect("key management reads answer while the write is open");
    assert_eq!(me.status, 200, "{:?}", me.json);

    sqlx::query("COMMIT")
        .execute(&mut *writer)
        .await
        .expect("commit");
    drop(writer);
    let listed = reader.get("/api/v1/books", &[]).await;
    assert_eq!(listed.json["books"][0]["title"], "Persuasion");
    app.stop().await.expect("a clean stop");
}
