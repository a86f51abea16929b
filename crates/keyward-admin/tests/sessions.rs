//! Keys and the application's own sessions in one application; store failures; audit events.

mod common;

use axum::Router;
use common::{MOUNT, Reply, TestApp};
use http::Method;
use http::request::Parts;
use keyward::{CallerError, Callers, Keyward, NewKey, User};
use keyward_core::ScopeSet;
use keyward_test_support::{CountingStore, Logs};
use serde_json::json;

/// Sessions in a cookie: `session=alice` is a user, `session=root` an administrator,
/// `session=guest` holds no management scope, `session=broken` fails the lookup. Every other
/// user holds every scope, so their keys keep their own.
#[derive(Clone, Debug)]
struct CookieSessions;

fn user(id: &str) -> User {
    let grants = |s: &[&str]| ScopeSet::parse(s.iter().copied()).unwrap();
    let scopes = match id {
        "alice" => grants(&["keys:write", "books:read"]),
        "root" => grants(&["books:read", "keys:admin"]),
        "guest" => grants(&["books:read"]),
        _ => grants(&["*"]),
    };
    User::new(id, id.to_uppercase(), scopes)
}

impl Callers for CookieSessions {
    async fn session(&self, parts: &Parts) -> Result<Option<User>, CallerError> {
        let Some(cookie) = parts.headers.get("cookie").and_then(|c| c.to_str().ok()) else {
            return Ok(None);
        };
        match cookie.strip_prefix("session=") {
            Some("broken") => Err(CallerError::msg("the session store is down")),
            Some(id @ ("alice" | "root" | "guest")) => Ok(Some(user(id))),
            _ => Ok(None),
        }
    }

    async fn user(&self, id: &str) -> Result<Option<User>, CallerError> {
        Ok(Some(user(id)))
    }
}

fn app_with_sessions() -> TestApp {
    TestApp::with(|builder| builder.callers(CookieSessions))
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
    let app = app_with_sessions();
    let bob = app.personal("bob", &["keys:read"]).await;
    app.personal("alice", &["books:read"]).await;
    let cookie = [("cookie", "session=alice")];

    // A session alone.
    let reply = app
        .send_with(Method::GET, "/keys", &cookie, None)
        .await
        .expect(200);
    assert_eq!(owners(&reply), ["alice"]);
    let reply = app
        .send_with(
            Method::POST,
            "/keys",
            &cookie,
            Some(json!({"name": "from the page", "scopes": ["books:read"]})),
        )
        .await
        .expect(201);
    assert_eq!(reply.json["key"]["owner"], "alice");
    // The session's own grants bound what it may create.
    let reply = app
        .send_with(
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
    let reply = app
        .send_with(Method::GET, "/keys", &both, None)
        .await
        .expect(200);
    assert_eq!(owners(&reply), ["bob"]);

    // Administrators through a session.
    let reply = app
        .send_with(Method::GET, "/keys", &[("cookie", "session=root")], None)
        .await
        .expect(200);
    assert_eq!(owners(&reply).len(), 3);

    // Without management scopes, without anything, with a failing session store.
    app.send_with(Method::GET, "/keys", &[("cookie", "session=guest")], None)
        .await
        .expect(403);
    app.send_with(Method::GET, "/keys", &[("cookie", "session=nobody")], None)
        .await
        .expect(401);
    let reply = app
        .send_with(Method::GET, "/keys", &[("cookie", "session=broken")], None)
        .await
        .expect(503);
    assert_eq!(reply.error(), "temporarily_unavailable");

    // The self routes describe a key, which a session is not.
    app.send_with(Method::GET, "/self", &cookie, None)
        .await
        .expect(401);
}

#[tokio::test]
async fn sessions_change_keys_only_from_the_same_origin() {
    let app = app_with_sessions();
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
        let reply = app
            .send_with(Method::POST, "/keys", &headers, Some(body.clone()))
            .await
            .expect(403);
        assert_eq!(reply.error(), "cross_site_request");
    }
    app.send_with(
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
    app.send_with(
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
    app.send_with(
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

#[tokio::test]
async fn a_failing_store_is_503_never_a_refusal() {
    let store = CountingStore::new();
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
    store.fail(true);

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

#[tokio::test]
async fn every_change_is_audited_without_the_token() {
    let logs = Logs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber(tracing::Level::INFO));

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

    let text = logs.text();
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
