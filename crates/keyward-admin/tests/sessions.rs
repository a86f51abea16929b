//! Keys and the application's own sessions in one application; store failures; audit events.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use chrono::{DateTime, Utc};
use common::{MOUNT, Reply, TestApp};
use http::request::Parts;
use http::{Method, Request};
use keyward::core::{
    KeyUpdate, SecretRotation, TokenDigest, UsageUpdate,
    store::{KeyStore, ListQuery, Page, StoreError},
};
use keyward::{KeyId, KeyRecord, Keyward, MemoryStore, NewKey};
use keyward_admin::{Actor, ActorSource, AdminError, Precedence};
use keyward_core::ScopeSet;
use serde_json::json;

/// Sessions in a cookie: `session=alice` is a user, `session=root` an administrator,
/// `session=guest` holds no management scope, `session=broken` fails the lookup.
#[derive(Clone, Debug)]
struct CookieSessions {
    precedence: Precedence,
}

impl ActorSource for CookieSessions {
    async fn actor(&self, parts: &mut Parts) -> Result<Option<Actor>, AdminError> {
        let Some(cookie) = parts.headers.get("cookie").and_then(|c| c.to_str().ok()) else {
            return Ok(None);
        };
        let grants = |s: &[&str]| ScopeSet::parse(s.iter().copied()).unwrap();
        Ok(match cookie {
            "session=alice" => Some(Actor::user("alice", grants(&["keys:write", "books:read"]))),
            "session=root" => Some(Actor::user("root", grants(&["books:read"])).admin(true)),
            "session=guest" => Some(Actor::user("guest", grants(&["books:read"]))),
            "session=broken" => {
                return Err(AdminError::Unavailable {
                    detail: "the session store is down".into(),
                });
            }
            _ => None,
        })
    }

    fn precedence(&self) -> Precedence {
        self.precedence
    }
}

fn app_with(precedence: Precedence) -> TestApp {
    let mut app = TestApp::new();
    app.router = Router::new()
        .nest(
            MOUNT,
            keyward_admin::router_with(CookieSessions { precedence }),
        )
        .layer(app.keys.layer().optional())
        .with_state(app.keys.clone());
    app
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{MOUNT}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    app.call(request).await
}

fn owners(reply: &Reply) -> Vec<String> {
    reply.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["owner"].as_str().unwrap_or("-").to_owned())
        .collect()
}

#[tokio::test]
async fn sessions_and_keys_work_in_one_app() {
    let app = app_with(Precedence::KeyFirst);
    let bob = app.personal("bob", &["keys:read"]).await;
    app.personal("alice", &["books:read"]).await;
    let cookie = [("cookie", "session=alice")];

    // A session alone.
    let reply = send(&app, Method::GET, "/keys", &cookie, None)
        .await
        .expect(200);
    assert_eq!(owners(&reply), ["alice"]);
    let reply = send(
        &app,
        Method::POST,
        "/keys",
        &cookie,
        Some(json!({"name": "from the page", "scopes": ["books:read"]})),
    )
    .await
    .expect(201);
    assert_eq!(reply.json["key"]["owner"], "alice");
    // The session's own grants bound what it may create.
    let reply = send(
        &app,
        Method::POST,
        "/keys",
        &cookie,
        Some(json!({"name": "k", "scopes": ["books:write"]})),
    )
    .await
    .expect(403);
    assert_eq!(reply.json["scope"], "books:write");

    // A key alone.
    let reply = app.get("/keys", &bob.token).await.expect(200);
    assert_eq!(owners(&reply), ["bob"]);

    // Both: the key wins.
    let auth = format!("Bearer {}", bob.token);
    let both = [
        ("cookie", "session=alice"),
        ("authorization", auth.as_str()),
    ];
    let reply = send(&app, Method::GET, "/keys", &both, None)
        .await
        .expect(200);
    assert_eq!(owners(&reply), ["bob"]);

    // Administrators through a session.
    let reply = send(
        &app,
        Method::GET,
        "/keys",
        &[("cookie", "session=root")],
        None,
    )
    .await
    .expect(200);
    assert_eq!(owners(&reply).len(), 3);

    // Without management scopes, without anything, with a failing session store.
    send(
        &app,
        Method::GET,
        "/keys",
        &[("cookie", "session=guest")],
        None,
    )
    .await
    .expect(403);
    send(
        &app,
        Method::GET,
        "/keys",
        &[("cookie", "session=nobody")],
        None,
    )
    .await
    .expect(401);
    let reply = send(
        &app,
        Method::GET,
        "/keys",
        &[("cookie", "session=broken")],
        None,
    )
    .await
    .expect(503);
    assert_eq!(reply.error(), "temporarily_unavailable");

    // The self routes describe a key, which a session is not.
    send(&app, Method::GET, "/self", &cookie, None)
        .await
        .expect(401);
}

#[tokio::test]
async fn session_first_precedence() {
    let app = app_with(Precedence::SessionFirst);
    let bob = app.personal("bob", &["keys:read"]).await;
    let auth = format!("Bearer {}", bob.token);
    let both = [
        ("cookie", "session=alice"),
        ("authorization", auth.as_str()),
    ];
    let reply = send(&app, Method::GET, "/keys", &both, None)
        .await
        .expect(200);
    assert_eq!(
        owners(&reply),
        Vec::<String>::new(),
        "alice's (empty) listing"
    );
    // Without a session the key still counts.
    let reply = app.get("/keys", &bob.token).await.expect(200);
    assert_eq!(owners(&reply), ["bob"]);
}

#[tokio::test]
async fn sessions_change_keys_only_from_the_same_origin() {
    let app = app_with(Precedence::KeyFirst);
    let body = json!({"name": "k", "scopes": ["books:read"]});
    for headers in [
        vec![
            ("cookie", "session=alice"),
            ("sec-fetch-site", "cross-site"),
        ],
        vec![("cookie", "session=alice"), ("sec-fetch-site", "same-site")],
        vec![
            ("cookie", "session=alice"),
            ("host", "app.example"),
            ("origin", "https://evil.example"),
        ],
    ] {
        let reply = send(&app, Method::POST, "/keys", &headers, Some(body.clone()))
            .await
            .expect(403);
        assert_eq!(reply.error(), "forbidden");
    }
    send(
        &app,
        Method::POST,
        "/keys",
        &[
            ("cookie", "session=alice"),
            ("sec-fetch-site", "same-origin"),
            ("host", "app.example"),
            ("origin", "https://app.example"),
        ],
        Some(body.clone()),
    )
    .await
    .expect(201);
    // Reading is harmless; keys are not cookies and are never refused this way.
    send(
        &app,
        Method::GET,
        "/keys",
        &[
            ("cookie", "session=alice"),
            ("sec-fetch-site", "cross-site"),
        ],
        None,
    )
    .await
    .expect(200);
    let key = app.personal("alice", &["keys:write", "books:read"]).await;
    let auth = format!("Bearer {}", key.token);
    send(
        &app,
        Method::POST,
        "/keys",
        &[
            ("authorization", auth.as_str()),
            ("sec-fetch-site", "cross-site"),
        ],
        Some(body),
    )
    .await
    .expect(201);
}

/// A store that can be switched off.
#[derive(Clone, Default)]
struct Flaky {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::unavailable(std::io::Error::other(
                "connection refused",
            )))
        } else {
            Ok(())
        }
    }
}

impl KeyStore for Flaky {
    async fn insert(&self, record: KeyRecord) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert(record).await
    }
    async fn find_by_digest(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.check()?;
        self.inner.find_by_digest(digest, now).await
    }
    async fn get(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.check()?;
        self.inner.get(id).await
    }
    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.check()?;
        self.inner.list(query).await
    }
    async fn update(
        &self,
        id: KeyId,
        update: &KeyUpdate,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord, StoreError> {
        self.check()?;
        self.inner.update(id, update, now).await
    }
    async fn revoke(&self, id: KeyId, now: DateTime<Utc>) -> Result<KeyRecord, StoreError> {
        self.check()?;
        self.inner.revoke(id, now).await
    }
    async fn delete(&self, id: KeyId) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete(id).await
    }
    async fn replace_secret(
        &self,
        id: KeyId,
        rotation: &SecretRotation,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord, StoreError> {
        self.check()?;
        self.inner.replace_secret(id, rotation, now).await
    }
    async fn refresh(&self, id: KeyId, now: DateTime<Utc>) -> Result<KeyRecord, StoreError> {
        self.check()?;
        self.inner.refresh(id, now).await
    }
    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record_usage(batch).await
    }
}

#[tokio::test]
async fn a_failing_store_is_503_never_a_refusal() {
    let store = Flaky::default();
    let keys = Keyward::builder(store.clone())
        .prefix("books")
        .catalog(common::catalog())
        .build()
        .unwrap();
    let mut app = TestApp::new();
    app.router = Router::new()
        .nest(MOUNT, keyward_admin::router())
        .layer(keys.layer())
        .with_state(keys.clone());
    let admin = keys
        .create(NewKey::personal("admin", "root").scopes(["*"]))
        .await
        .unwrap();
    let token = admin.token.expose_secret().to_owned();
    let target = keys
        .create(NewKey::personal("t", "alice").scopes(["books:read"]))
        .await
        .unwrap()
        .record
        .id;
    // Verified once, the key is cached; then the store goes away.
    app.get("/keys", &token).await.expect(200);
    store.down.store(true, Ordering::SeqCst);

    for (method, path, body) in [
        (Method::GET, "/keys".to_owned(), None),
        (
            Method::POST,
            "/keys".to_owned(),
            Some(json!({"name": "k", "scopes": ["books:read"]})),
        ),
        (Method::GET, format!("/keys/{target}"), None),
        (
            Method::PATCH,
            format!("/keys/{target}"),
            Some(json!({"name": "n"})),
        ),
        (Method::DELETE, format!("/keys/{target}"), None),
        (Method::POST, format!("/keys/{target}/revoke"), None),
        (Method::POST, format!("/keys/{target}/regenerate"), None),
        (Method::POST, format!("/keys/{target}/refresh"), None),
        (Method::GET, "/self".to_owned(), None),
        (Method::POST, "/self/refresh".to_owned(), None),
    ] {
        let reply = app.send(method.clone(), &path, Some(&token), body).await;
        let reply = reply.expect(503);
        assert!(reply.headers.contains_key("retry-after"), "{method} {path}");
    }
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_change_is_audited_without_the_token() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:write", "books:read"]).await;
    let created = app
        .post(
            "/keys",
            &alice.token,
            json!({"name": "k", "scopes": ["books:read"]}),
        )
        .await
        .expect(201);
    let id = created.json["key"]["id"].as_str().unwrap().to_owned();
    let token = created.json["token"].as_str().unwrap().to_owned();
    app.send(
        Method::PATCH,
        &format!("/keys/{id}"),
        Some(&alice.token),
        Some(json!({"name": "n"})),
    )
    .await
    .expect(200);
    let regenerated = app
        .send(
            Method::POST,
            &format!("/keys/{id}/regenerate"),
            Some(&alice.token),
            None,
        )
        .await
        .expect(200);
    let new_token = regenerated.json["token"].as_str().unwrap().to_owned();
    app.send(
        Method::POST,
        &format!("/keys/{id}/refresh"),
        Some(&alice.token),
        None,
    )
    .await
    .expect(200);
    app.send(Method::POST, "/self/refresh", Some(&new_token), None)
        .await
        .expect(200);
    app.send(
        Method::POST,
        &format!("/keys/{id}/revoke"),
        Some(&alice.token),
        None,
    )
    .await
    .expect(200);
    app.send(
        Method::DELETE,
        &format!("/keys/{id}"),
        Some(&alice.token),
        None,
    )
    .await
    .expect(204);
    // Refused requests change nothing and are not audited as changes.
    app.post(
        "/keys",
        &alice.token,
        json!({"name": "k", "scopes": ["keys:admin"]}),
    )
    .await
    .expect(403);

    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let audit: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("keyward::audit"))
        .collect();
    let actions: Vec<&str> = audit
        .iter()
        .map(|l| {
            l.split("action=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "\"create\"",
            "\"update\"",
            "\"regenerate\"",
            "\"refresh\"",
            "\"refresh\"",
            "\"revoke\"",
            "\"delete\""
        ],
        "{text}"
    );
    for line in &audit {
        assert!(line.contains(&format!("key_id={id}")), "{line}");
        assert!(line.contains("actor="), "{line}");
    }
    assert!(
        audit[0].contains(&format!("key:{} (user:alice)", alice.id)),
        "{}",
        audit[0]
    );
    for secret in [&token, &new_token, &alice.token] {
        assert!(!text.contains(secret.as_str()), "a token reached the log");
    }
}
