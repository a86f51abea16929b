//! The caller model: sessions from the application's `Callers` and keys pass the same guards,
//! a key is bounded by what its owner holds now, sessions may not write from another site,
//! and a failing user lookup is 503.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::*;
use http::Request;
use http::request::Parts;
use keyward::{
    CallerError, Callers, Keyward, ManualClock, MemoryStore, NewKey, ScopeSet, TokenFormat, User,
};

/// Users in a shared map, read on every call, and sessions named by a `session=<user id>`
/// cookie. Counts its lookups and can be told to fail.
#[derive(Debug, Clone, Default)]
struct People {
    users: Arc<Mutex<HashMap<String, User>>>,
    user_lookups: Arc<AtomicUsize>,
    session_lookups: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

impl People {
    /// `alice` may write books, `bob` may only read them.
    fn new() -> Self {
        let people = Self::default();
        people.set("alice", &["books:write"]);
        people.set("bob", &["books:read"]);
        people
    }

    /// Gives user `id` the scopes `scopes` (creating the user).
    fn set(&self, id: &str, scopes: &[&str]) {
        let user = User::new(id, id.to_uppercase(), ScopeSet::parse(scopes).unwrap());
        self.users.lock().unwrap().insert(id.to_owned(), user);
    }

    fn user_lookups(&self) -> usize {
        self.user_lookups.load(Ordering::SeqCst)
    }

    fn session_lookups(&self) -> usize {
        self.session_lookups.load(Ordering::SeqCst)
    }

    fn find(&self, id: &str) -> Result<Option<User>, CallerError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(CallerError::msg("the user database is down"));
        }
        Ok(self.users.lock().unwrap().get(id).cloned())
    }
}

impl Callers for People {
    async fn session(&self, parts: &Parts) -> Result<Option<User>, CallerError> {
        self.session_lookups.fetch_add(1, Ordering::SeqCst);
        let cookie = parts.headers.get("cookie").and_then(|c| c.to_str().ok());
        match cookie.and_then(|c| c.strip_prefix("session=")) {
            Some(id) => self.find(id),
            None if self.failing.load(Ordering::SeqCst) => {
                Err(CallerError::msg("the session store is down"))
            }
            None => Ok(None),
        }
    }

    async fn user(&self, id: &str) -> Result<Option<User>, CallerError> {
        self.user_lookups.fetch_add(1, Ordering::SeqCst);
        self.find(id)
    }
}

/// A keyward on `store` with `people` as its callers.
fn keyward_with(store: impl keyward::KeyStore, people: &People) -> Keyward {
    let clock = ManualClock::new(t0());
    builder(store, &clock)
        .callers(people.clone())
        .build()
        .unwrap()
}

/// The test routes behind an optional layer, so that the guards answer for themselves.
fn guarded(keyward: &Keyward) -> Router {
    routes().layer(keyward.layer().optional())
}

/// A request signed in as `user`, with extra headers.
fn session(method: &str, uri: &str, user: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("cookie", format!("session={user}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

/// A request with key `token`, with extra headers.
fn keyed(method: &str, uri: &str, token: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

fn post(uri: &str) -> Request<Body> {
    Request::post(uri).body(Body::empty()).unwrap()
}

/// `/write` with a personal key of alice: 200 or 403, as her current grants say.
/// A personal key of alice's holding `books:write`: its id and token.
async fn alice_writer(keyward: &Keyward) -> (keyward::KeyId, String) {
    issue(
        keyward,
        NewKey::personal("writer", "alice").scopes(["books:write"]),
    )
    .await
}

async fn alice_writes(app: &Router, token: &str) -> Reply {
    send(app, keyed("POST", "/write", token, &[])).await
}

fn assert_insufficient(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 403, "{what}: {}", reply.text);
    assert_eq!(reply.error(), "insufficient_scope", "{what}");
    assert_eq!(reply.json["scope"], "books:write", "{what}");
    assert!(
        reply
            .challenge()
            .is_some_and(|c| c.contains("scope=\"books:write\"")),
        "{what}: {:?}",
        reply.challenge()
    );
}

#[tokio::test]
async fn a_session_and_a_key_pass_the_same_scope_guards() {
    let people = People::new();
    let keyward = keyward_with(MemoryStore::new(), &people);
    let app = guarded(&keyward);
    let (writer_id, writer) = alice_writer(&keyward).await;
    let (_, reader) = issue(
        &keyward,
        NewKey::personal("reader", "alice").scopes(["books:read"]),
    )
    .await;

    for route in ["/write", "/typed-write"] {
        let by_session = send(&app, session("POST", route, "alice", &[])).await;
        assert_eq!(by_session.status, 200, "alice's session on {route}");
        let by_key = send(&app, keyed("POST", route, &writer, &[])).await;
        assert_eq!(by_key.status, 200, "alice's writing key on {route}");

        let reply = send(&app, session("POST", route, "bob", &[])).await;
        assert_insufficient(&reply, &format!("bob's session on {route}"));
        let reply = send(&app, keyed("POST", route, &reader, &[])).await;
        assert_insufficient(&reply, &format!("alice's reading key on {route}"));

        let nobody = send(&app, post(route)).await;
        assert_eq!(nobody.status, 401, "nobody on {route}");
        assert_eq!(nobody.error(), "missing_credential");
        assert!(nobody.challenge().unwrap().starts_with("Bearer realm="));
    }

    // The typed route hands the handler the caller it checked.
    let typed = send(&app, session("POST", "/typed-write", "alice", &[])).await;
    assert_eq!(typed.text, "session:alice");
    let typed = send(&app, keyed("POST", "/typed-write", &writer, &[])).await;
    assert_eq!(typed.text, writer_id.to_string());
}

#[tokio::test]
async fn a_session_role_change_applies_on_the_next_request() {
    let people = People::new();
    let keyward = keyward_with(MemoryStore::new(), &people);
    let app = guarded(&keyward);

    let reply = send(&app, session("POST", "/write", "bob", &[])).await;
    assert_insufficient(&reply, "bob reads only");

    people.set("bob", &["books:write"]);
    let reply = send(&app, session("POST", "/write", "bob", &[])).await;
    assert_eq!(reply.status, 200, "bob promoted: {}", reply.text);
    assert_eq!(
        reply.json["scopes"],
        serde_json::json!(["books:read", "books:write"]),
        "a session's scopes are expanded by the catalog"
    );

    people.set("bob", &["books:read"]);
    let reply = send(&app, session("POST", "/write", "bob", &[])).await;
    assert_insufficient(&reply, "bob demoted again");

    people.users.lock().unwrap().remove("bob");
    let reply = send(&app, session("POST", "/write", "bob", &[])).await;
    assert_eq!(reply.status, 401, "a deleted user's session is nobody");
}

#[tokio::test]
async fn a_demoted_owner_keeps_cached_grants_until_invalidate_owner() {
    let people = People::new();
    let keyward = keyward_with(MemoryStore::new(), &people);
    let app = guarded(&keyward);
    let (_, token) = alice_writer(&keyward).await;
    assert_eq!(alice_writes(&app, &token).await.status, 200);

    people.set("alice", &["books:read"]);
    assert_eq!(
        alice_writes(&app, &token).await.status,
        200,
        "the owner's grants are cached with the key"
    );

    keyward.invalidate_owner("alice").await.unwrap();
    let reply = alice_writes(&app, &token).await;
    assert_insufficient(&reply, "alice demoted, then invalidated");
    let read = send(&app, keyed("GET", "/principal", &token, &[])).await;
    assert_eq!(read.status, 200, "the key still reads: {}", read.text);
}

#[tokio::test]
async fn a_demotion_reaches_another_instance_through_the_change_feed() {
    let people = People::new();
    let store = MemoryStore::new();
    let first = keyward_with(store.clone(), &people);
    let second = keyward_with(store, &people);
    let app = guarded(&second);
    let (_, token) = alice_writer(&first).await;
    assert_eq!(alice_writes(&app, &token).await.status, 200);

    people.set("alice", &["books:read"]);
    assert_eq!(
        alice_writes(&app, &token).await.status,
        200,
        "the second instance has alice's grants cached"
    );
    first.invalidate_owner("alice").await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let reply = alice_writes(&app, &token).await;
        if reply.status == 403 {
            assert_insufficient(&reply, "alice demoted on the other instance");
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(
            Instant::now() < deadline,
            "the demotion never reached the second instance"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_cross_site_session_write_is_refused() {
    let people = People::new();
    let keyward = keyward_with(MemoryStore::new(), &people);
    let app = guarded(&keyward);
    let from_another_site: [&[(&str, &str)]; 2] = [
        &[("sec-fetch-site", "cross-site")],
        &[
            ("host", "books.example"),
            ("origin", "https://evil.example"),
        ],
    ];
    for route in ["/write", "/typed-write"] {
        for headers in from_another_site {
            let reply = send(&app, session("POST", route, "alice", headers)).await;
            assert_eq!(reply.status, 403, "{route} {headers:?}: {}", reply.text);
            assert_eq!(reply.error(), "cross_site_request", "{route} {headers:?}");
        }
    }
}

#[tokio::test]
async fn a_cross_site_session_read_and_a_same_origin_session_write_pass() {
    let people = People::new();
    let keyward = keyward_with(MemoryStore::new(), &people);
    let app = guarded(&keyward);

    let read = send(
        &app,
        session(
            "GET",
            "/principal",
            "alice",
            &[
                ("sec-fetch-site", "cross-site"),
                ("host", "books.example"),
                ("origin", "https://evil.example"),
            ],
        ),
    )
    .await;
    assert_eq!(read.status, 200, "a cross-site read: {}", read.text);
    assert_eq!(read.text, "session:alice");

    let same_origin: [&[(&str, &str)]; 3] = [
        &[],
        &[("sec-fetch-site", "same-origin")],
        &[
            ("sec-fetch-site", "same-origin"),
            ("host", "books.example"),
            ("origin", "https://books.example"),
        ],
    ];
    for headers in same_origin {
        let reply = send(&app, session("POST", "/write", "alice", headers)).await;
        assert_eq!(reply.status, 200, "{headers:?}: {}", reply.text);
    }
}

#[tokio::test]
async fn a_key_may_write_from_another_site() {
    let people = People::new();
    let keyward = keyward_with(MemoryStore::new(), &people);
    let app = guarded(&keyward);
    let (_, token) = alice_writer(&keyward).await;
    for route in ["/write", "/typed-write"] {
        let reply = send(
            &app,
            keyed(
                "POST",
                route,
                &token,
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("host", "books.example"),
                    ("origin", "https://evil.example"),
                ],
            ),
        )
        .await;
        assert_eq!(reply.status, 200, "{route}: {}", reply.text);
    }
}

#[tokio::test]
async fn required_mode_admits_a_session_and_refuses_nobody() {
    let people = People::new();
    let keyward = keyward_with(MemoryStore::new(), &people);
    let app = app(&keyward);

    let echoed = send(&app, session("GET", "/echo", "alice", &[])).await;
    assert_eq!(echoed.status, 200, "{}", echoed.text);
    assert_eq!(echoed.json["key_id"], serde_json::Value::Null);
    assert_eq!(
        echoed.json["scopes"],
        serde_json::json!(["books:read", "books:write"])
    );
    let me = send(&app, session("GET", "/principal", "alice", &[])).await;
    assert_eq!(me.text, "session:alice");
    let write = send(&app, session("POST", "/write", "alice", &[])).await;
    assert_eq!(write.status, 200, "{}", write.text);

    for request in [
        get_with("/echo", &[]),
        session("GET", "/echo", "mallory", &[]),
    ] {
        let reply = send(&app, request).await;
        assert_eq!(reply.status, 401, "{}", reply.text);
        assert_eq!(reply.error(), "missing_credential");
        assert!(reply.challenge().unwrap().starts_with("Bearer realm="));
    }
}

#[tokio::test]
async fn deferred_refusals_leave_public_routes_open_and_guarded_routes_closed() {
    let people = People::new();
    let keyward = keyward_with(MemoryStore::new(), &people);
    let public = || routes().route("/public", get(|| async { "public" }));
    let deferring = public().layer(keyward.layer().defer_refusals());
    let refusing = public().layer(keyward.layer().optional());

    let (revoked_id, revoked) = issue(
        &keyward,
        NewKey::personal("old", "alice").scopes(["books:write"]),
    )
    .await;
    keyward.revoke(revoked_id).await.unwrap();
    let unknown = TokenFormat::new("books").unwrap().generate();
    let stale = [
        ("unknown", unknown.expose_secret()),
        ("revoked", revoked.as_str()),
        ("malformed", "books_not-a-token"),
    ];

    for (what, token) in stale {
        let reply = send(&deferring, bearer("/public", token)).await;
        assert_eq!(reply.status, 200, "{what} key on a public route");
        assert_eq!(reply.text, "public");

        for request in [
            bearer("/principal", token),
            keyed("POST", "/write", token, &[]),
            keyed("POST", "/typed-write", token, &[]),
        ] {
            let uri = request.uri().to_string();
            let reply = send(&deferring, request).await;
            assert_eq!(reply.status, 401, "{what} key on {uri}: {}", reply.text);
            assert_eq!(reply.error(), "invalid_token", "{what} on {uri}");
            let challenge = reply.challenge().unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer realm=") && challenge.contains("invalid_token"),
                "{what} on {uri}: {challenge}"
            );
        }

        let reply = send(&refusing, bearer("/public", token)).await;
        assert_eq!(
            reply.status, 401,
            "without deferring, a {what} key is refused even on a public route"
        );
        assert_eq!(reply.error(), "invalid_token");
    }
}

#[tokio::test]
async fn a_failing_session_lookup_is_503_with_retry_after() {
    let people = People::new();
    let keyward = keyward_with(MemoryStore::new(), &people);
    people.failing.store(true, Ordering::SeqCst);
    let optional = guarded(&keyward);
    let required = app(&keyward);

    for (app, mode) in [(&optional, "optional"), (&required, "required")] {
        for request in [
            session("GET", "/principal", "alice", &[]),
            session("POST", "/write", "alice", &[]),
            session("POST", "/typed-write", "alice", &[]),
            get_with("/principal", &[]),
        ] {
            let uri = request.uri().to_string();
            let reply = send(app, request).await;
            assert_eq!(reply.status, 503, "{mode} {uri}: {}", reply.text);
            assert_eq!(reply.error(), "temporarily_unavailable");
            assert!(
                reply.headers.contains_key("retry-after"),
                "{mode} {uri}: no Retry-After"
            );
        }
    }
}

#[tokio::test]
async fn a_cache_hit_asks_neither_the_store_nor_the_users_and_a_session_never_asks_the_store() {
    let people = People::new();
    let store = CountingStore::new();
    let keyward = keyward_with(store.clone(), &people);
    let app = guarded(&keyward);
    let (_, token) = alice_writer(&keyward).await;

    assert_eq!(alice_writes(&app, &token).await.status, 200);
    assert_eq!(store.counts.find(), 1, "a miss reads the store once");
    assert_eq!(people.user_lookups(), 1, "a miss looks the owner up once");

    let stored = store.counts.total();
    for _ in 0..10 {
        assert_eq!(alice_writes(&app, &token).await.status, 200);
    }
    assert_eq!(store.counts.total(), stored, "hits must not call the store");
    assert_eq!(people.user_lookups(), 1, "hits must not look the owner up");
    assert_eq!(
        people.session_lookups(),
        0,
        "a key's request has no session"
    );

    let reply = send(&app, session("POST", "/write", "alice", &[])).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        store.counts.total(),
        stored,
        "a session must not call the store"
    );
    assert_eq!(people.session_lookups(), 1, "a session is looked up once");
    assert_eq!(people.user_lookups(), 1);

    let public = routes()
        .route("/public", get(|| async { "public" }))
        .layer(keyward.layer().optional());
    let reply = send(&public, get_with("/public", &[("cookie", "session=alice")])).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        people.session_lookups(),
        1,
        "a route that needs no caller does not ask the session"
    );
}
