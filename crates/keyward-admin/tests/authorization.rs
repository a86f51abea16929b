//! The authorization matrix: every kind of caller against every route, and the escalation
//! paths that must stay closed.

mod common;

use common::{Minted, TestApp};
use http::Method;
use serde_json::{Value, json};

/// The callers of the matrix, in column order.
const ACTORS: [&str; 6] = [
    "owner",
    "other user",
    "admin",
    "service key",
    "service admin",
    "no keys:*",
];

struct Callers {
    tokens: Vec<Minted>,
}

async fn callers(app: &TestApp) -> Callers {
    let tokens = vec![
        app.personal("alice", &["keys:write", "books:write"]).await,
        app.personal("bob", &["keys:write", "books:write"]).await,
        app.personal("root", &["*"]).await,
        app.service(&["keys:write", "books:write"]).await,
        app.service(&["keys:admin", "books:write"]).await,
        app.personal("alice", &["books:write"]).await,
    ];
    Callers { tokens }
}

/// One row: a request built against a fresh key of alice's, and the expected status per
/// caller.
struct Row {
    label: &'static str,
    method: Method,
    path: &'static str,
    body: Option<Value>,
    expected: [u16; 6],
}

fn rows() -> Vec<Row> {
    let row = |label, method, path, body, expected| Row {
        label,
        method,
        path,
        body,
        expected,
    };
    #[allow(unused_mut)] // only the `ui` feature adds the page's row
    let mut rows = vec![
        row(
            "catalog",
            Method::GET,
            "/scopes",
            None,
            [200, 200, 200, 200, 200, 403],
        ),
        row(
            // This application has no `Callers`, so administrators learn it lists no users.
            "users",
            Method::GET,
            "/users",
            None,
            [403, 403, 404, 403, 404, 403],
        ),
        row(
            // Authenticated by GitHub's signature, not by keys (tests/leaks.rs); this
            // application does not take GitHub's reports.
            "leak report",
            Method::POST,
            "/leaks/github",
            Some(json!([])),
            [404, 404, 404, 404, 404, 404],
        ),
        row(
            "list own",
            Method::GET,
            "/keys",
            None,
            [200, 200, 200, 403, 200, 403],
        ),
        row(
            "list alice's",
            Method::GET,
            "/keys?owner=alice",
            None,
            [200, 403, 200, 403, 200, 403],
        ),
        row(
            "events of own keys",
            Method::GET,
            "/events",
            None,
            [200, 200, 200, 403, 200, 403],
        ),
        row(
            "events of alice's keys",
            Method::GET,
            "/events?owner=alice",
            None,
            [200, 403, 200, 403, 200, 403],
        ),
        row(
            "create own",
            Method::POST,
            "/keys",
            Some(json!({"name": "k", "scopes": ["books:read"]})),
            // A service key owns nothing, so a personal key needs an owner: 422.
            [201, 201, 201, 403, 422, 403],
        ),
        row(
            "create for alice",
            Method::POST,
            "/keys",
            Some(json!({"name": "k", "scopes": ["books:read"], "owner": "alice"})),
            [201, 403, 201, 403, 201, 403],
        ),
        row(
            "create service key",
            Method::POST,
            "/keys",
            Some(json!({"name": "k", "scopes": ["books:read"], "kind": "service"})),
            [403, 403, 201, 403, 201, 403],
        ),
        row(
            "create beyond own scopes",
            Method::POST,
            "/keys",
            Some(json!({"name": "k", "scopes": ["reviews:read"], "owner": "alice"})),
            [403, 403, 201, 403, 403, 403],
        ),
        row(
            "get",
            Method::GET,
            "/keys/{id}",
            None,
            [200, 404, 200, 403, 200, 403],
        ),
        row(
            "usage",
            Method::GET,
            "/keys/{id}/usage",
            None,
            [200, 404, 200, 403, 200, 403],
        ),
        row(
            "rename",
            Method::PATCH,
            "/keys/{id}",
            Some(json!({"name": "renamed"})),
            [200, 404, 200, 403, 200, 403],
        ),
        row(
            "widen scopes",
            Method::PATCH,
            "/keys/{id}",
            Some(json!({"scopes": ["books:read", "reviews:read"]})),
            [403, 404, 200, 403, 403, 403],
        ),
        row(
            "revoke",
            Method::POST,
            "/keys/{id}/revoke",
            None,
            [200, 404, 200, 403, 200, 403],
        ),
        row(
            "regenerate",
            Method::POST,
            "/keys/{id}/regenerate",
            None,
            [200, 404, 200, 403, 200, 403],
        ),
        row(
            "refresh",
            Method::POST,
            "/keys/{id}/refresh",
            None,
            [200, 404, 200, 403, 200, 403],
        ),
        row(
            "delete",
            Method::DELETE,
            "/keys/{id}",
            None,
            [204, 404, 204, 403, 204, 403],
        ),
        row(
            "self",
            Method::GET,
            "/self",
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        row(
            "self refresh",
            Method::POST,
            "/self/refresh",
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        row(
            "openapi",
            Method::GET,
            "/openapi.json",
            None,
            [200, 200, 200, 200, 200, 200],
        ),
    ];
    #[cfg(feature = "ui")]
    rows.push(row(
        "page",
        Method::GET,
        "/ui",
        None,
        [200, 200, 200, 200, 200, 200],
    ));
    rows
}

#[tokio::test]
async fn every_caller_against_every_route() {
    let mut failures = Vec::new();
    let mut covered = std::collections::BTreeSet::new();
    for row in rows() {
        covered.insert((
            row.method.to_string(),
            row.path.split('?').next().unwrap().to_owned(),
        ));
        for (column, actor) in ACTORS.iter().enumerate() {
            // A fresh application per cell, so a revoke or delete never leaks into the next.
            let app = TestApp::new();
            let callers = callers(&app).await;
            let target = app.personal("alice", &["books:read"]).await;
            let path = row.path.replace("{id}", &target.id.to_string());
            let reply = app
                .send(
                    row.method.clone(),
                    &path,
                    Some(&callers.tokens[column].token),
                    row.body.clone(),
                )
                .await;
            let expected = row.expected[column];
            if reply.status.as_u16() != expected {
                failures.push(format!(
                    "{} ({} {}) as {actor}: expected {expected}, got {} {}",
                    row.label, row.method, row.path, reply.status, reply.text
                ));
            }
            if reply.status.is_client_error() {
                assert_eq!(reply.headers["content-type"], "application/problem+json");
            }
            // A refused change changes nothing.
            if reply.status.is_client_error() && row.path.contains("{id}") {
                let after = app.keys.get(target.id).await.expect("still there");
                assert_eq!(after.name, "alice's key", "{}", row.label);
                assert!(after.revoked_at.is_none(), "{}", row.label);
                assert_eq!(after.scopes.to_strings(), ["books:read"], "{}", row.label);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The matrix covers every route the router serves.
    for route in keyward_admin::routes() {
        if route.path.starts_with("/ui/") {
            continue; // the page's assets, public like the page
        }
        assert!(
            covered.contains(&(route.method.to_string(), route.path.to_owned())),
            "the matrix misses {route}"
        );
    }
}

#[tokio::test]
async fn listings_show_only_what_the_caller_may_see() {
    let app = TestApp::new();
    let callers = callers(&app).await;
    let alice_key = app.personal("alice", &["books:read"]).await;

    let ids = |reply: &common::Reply| -> Vec<String> {
        reply.json["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let bob = app.get("/keys", &callers.tokens[1].token).await.expect(200);
    assert_eq!(ids(&bob), [callers.tokens[1].id.to_string()]);
    let alice = app.get("/keys", &callers.tokens[0].token).await.expect(200);
    assert!(ids(&alice).contains(&alice_key.id.to_string()));
    assert!(
        ids(&alice)
            .iter()
            .all(|id| *id != callers.tokens[1].id.to_string())
    );
    let admin = app.get("/keys", &callers.tokens[2].token).await.expect(200);
    assert_eq!(
        ids(&admin).len(),
        7,
        "an administrator sees every key, service keys too"
    );
    let filtered = app
        .get("/keys?owner=bob", &callers.tokens[2].token)
        .await
        .expect(200);
    assert_eq!(ids(&filtered), [callers.tokens[1].id.to_string()]);
}

#[tokio::test]
async fn no_escalation_path() {
    let app = TestApp::new();
    // alice may manage her keys and read books, nothing more.
    let alice = app.personal("alice", &["keys:write", "books:read"]).await;

    // Not through create: management scopes, wildcards, scopes she lacks.
    for scope in ["keys:admin", "books:write", "books:*", "*", "reviews:read"] {
        let reply = app
            .post(
                "/keys",
                &alice.token,
                json!({"name": "k", "scopes": [scope]}),
            )
            .await
            .expect(403);
        assert_eq!(reply.json["scope"], scope);
    }

    // Not through a child key: it holds at most what alice holds, and so can mint no more.
    let child = app
        .post(
            "/keys",
            &alice.token,
            json!({"name": "child", "scopes": ["keys:write", "books:read"]}),
        )
        .await
        .expect(201);
    let child_token = child.json["token"].as_str().unwrap().to_owned();
    app.post(
        "/keys",
        &child_token,
        json!({"name": "k", "scopes": ["books:write"]}),
    )
    .await
    .expect(403);

    // Not through widening one of her keys.
    let child_id = child.json["key"]["id"].as_str().unwrap().to_owned();
    let reply = app
        .send(
            Method::PATCH,
            &format!("/keys/{child_id}"),
            Some(&alice.token),
            Some(json!({"scopes": ["keys:admin"]})),
        )
        .await
        .expect(403);
    assert_eq!(reply.json["scope"], "keys:admin");

    // Not through regenerating a key an administrator gave her with more than she holds: she
    // would receive its token. Revoking or deleting it (less power) is fine.
    let gift = app
        .personal("alice", &["books:write", "reviews:read"])
        .await;
    let reply = app
        .send(
            Method::POST,
            &format!("/keys/{}/regenerate", gift.id),
            Some(&alice.token),
            None,
        )
        .await
        .expect(403);
    assert_eq!(reply.json["scope"], "books:write");
    app.send(
        Method::POST,
        &format!("/keys/{}/revoke", gift.id),
        Some(&alice.token),
        None,
    )
    .await
    .expect(200);

    // Not through the owner filter, nor by guessing another owner's key id.
    let bob = app.personal("bob", &["books:read"]).await;
    app.get("/keys?owner=bob", &alice.token).await.expect(403);
    for (method, path) in [
        (Method::GET, format!("/keys/{}", bob.id)),
        (Method::PATCH, format!("/keys/{}", bob.id)),
        (Method::DELETE, format!("/keys/{}", bob.id)),
        (Method::POST, format!("/keys/{}/revoke", bob.id)),
        (Method::POST, format!("/keys/{}/regenerate", bob.id)),
        (Method::POST, format!("/keys/{}/refresh", bob.id)),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"name": "mine"}));
        app.send(method, &path, Some(&alice.token), body)
            .await
            .expect(404);
    }
    app.get("/self", &bob.token).await.expect(200);
}
