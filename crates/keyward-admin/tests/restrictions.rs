//! What a key may do to other keys beyond its scopes, through the routes: a restricted key
//! mints only keys as restricted as itself, a replaced token manages nothing, and a key an
//! administrator disabled stays disabled until an administrator enables it.

mod common;

use chrono::TimeDelta;
use common::{MOUNT, Reply, TestApp};
use http::Method;
use keyward::{Expiry, NewKey};
use keyward_test_support::{request, with_peer};
use serde_json::{Value, json};

/// A client inside 10.0.0.0/8.
const INSIDE: &str = "10.1.2.3:50000";

/// `method` on `path` as `token` from the client `peer`, with an optional JSON body. The
/// router's own helpers send no client address, which a key with `allowed_ips` refuses.
async fn send_from(
    app: &TestApp,
    peer: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Reply {
    let auth = format!("Bearer {token}");
    let path = format!("{MOUNT}{path}");
    let request = request(method, &path, &[("authorization", &auth)], body.as_ref());
    app.call(with_peer(request, peer)).await
}

/// alice's key with `keys:write`, limited to 10.0.0.0/8, 60 requests a minute and 7 days
/// (until 2026-05-08T10:00:00Z).
async fn restricted(app: &TestApp) -> String {
    app.mint(
        NewKey::personal("restricted", "alice")
            .scopes(["keys:write", "books:read"])
            .allowed_ips(["10.0.0.0/8"])
            .rate_limit(60)
            .expiry(Expiry::InDays(7)),
    )
    .await
    .token
}

/// A key within the bounds of [`restricted`], with `member` replaced (or removed, for
/// `None`).
fn body_with(member: &str, value: Option<Value>) -> Value {
    let mut body = json!({
        "name": "minted",
        "scopes": ["books:read"],
        "allowed_ips": ["10.1.0.0/16"],
        "rate_limit": 30,
        "expires_in_days": 7,
    });
    let members = body.as_object_mut().unwrap();
    match value {
        Some(value) => members.insert(member.to_owned(), value),
        None => members.remove(member),
    };
    body
}

#[tokio::test]
async fn a_restricted_key_creates_keys_only_within_its_bounds() {
    let app = TestApp::new();
    let token = restricted(&app).await;

    // Without a client address the key is refused before any rule of the admin router.
    let reply = app.get("/keys", &token).await.expect(403);
    assert_eq!(reply.error(), "ip_not_allowed");

    for (case, body, field) in [
        ("no IP limit", body_with("allowed_ips", None), "allowed_ips"),
        (
            "an empty IP limit",
            body_with("allowed_ips", Some(json!([]))),
            "allowed_ips",
        ),
        (
            "a wider network",
            body_with("allowed_ips", Some(json!(["0.0.0.0/0"]))),
            "allowed_ips",
        ),
        ("no rate limit", body_with("rate_limit", None), "rate_limit"),
        (
            "a higher rate limit",
            body_with("rate_limit", Some(json!(61))),
            "rate_limit",
        ),
        (
            "no expiry",
            body_with("expires_in_days", Some(Value::Null)),
            "expires_at",
        ),
        (
            "a later expiry",
            body_with("expires_in_days", Some(json!(30))),
            "expires_at",
        ),
    ] {
        let reply = send_from(&app, INSIDE, Method::POST, "/keys", &token, Some(body))
            .await
            .expect(403);
        assert_eq!(reply.error(), "forbidden", "{case}");
        let detail = reply.json["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(field),
            "{case}: {detail:?} names no {field}"
        );
    }

    let reply = send_from(
        &app,
        INSIDE,
        Method::POST,
        "/keys",
        &token,
        Some(body_with("name", Some(json!("minted")))),
    )
    .await
    .expect(201);
    let key = &reply.json["key"];
    assert_eq!(key["owner"], "alice");
    assert_eq!(key["allowed_ips"], json!(["10.1.0.0/16"]));
    assert_eq!(key["rate_limit"], 30);
    assert_eq!(key["expires_at"], "2026-05-08T10:00:00Z");

    // Only that one was stored.
    let reply = send_from(&app, INSIDE, Method::GET, "/keys", &token, None)
        .await
        .expect(200);
    let names: Vec<&str> = reply.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["minted", "restricted"]);
}

#[tokio::test]
async fn a_key_created_without_an_expiry_expires_with_the_key_creating_it() {
    let app = TestApp::new();
    let token = restricted(&app).await;
    app.clock.advance(TimeDelta::days(2));

    let reply = send_from(
        &app,
        INSIDE,
        Method::POST,
        "/keys",
        &token,
        Some(body_with("expires_in_days", None)),
    )
    .await
    .expect(201);
    assert_eq!(
        reply.json["key"]["expires_at"], "2026-05-08T10:00:00Z",
        "the actor's expiry, not 30 days from now (2026-06-02)"
    );

    // A key expiring after the default bounds nothing: 30 days from now.
    let later = app
        .mint(
            NewKey::personal("later", "alice")
                .scopes(["keys:write", "books:read"])
                .expiry(Expiry::InDays(90)),
        )
        .await;
    let reply = app
        .post(
            "/keys",
            &later.token,
            json!({"name": "minted", "scopes": ["books:read"]}),
        )
        .await
        .expect(201);
    assert_eq!(reply.json["key"]["expires_at"], "2026-06-02T10:00:00Z");
}

#[tokio::test]
async fn a_token_in_its_grace_period_manages_nothing() {
    let app = TestApp::new();
    let alice = app.manager("alice", &["keys:write", "books:read"]).await;
    let regenerate = format!("/keys/{}/regenerate", alice.id);

    let reply = app
        .post(&regenerate, &alice.token, json!({"grace_seconds": 600}))
        .await
        .expect(200);
    let new_token = reply.json["token"].as_str().unwrap().to_owned();
    let old_token = alice.token;

    // The old token still authenticates...
    let reply = app.get("/self", &old_token).await.expect(200);
    assert_eq!(reply.json["key"]["id"], alice.id.to_string());

    // ...but manages nothing, not even its own key.
    let refusals = [
        app.get("/keys", &old_token).await,
        app.post(
            "/keys",
            &old_token,
            json!({"name": "k", "scopes": ["books:read"]}),
        )
        .await,
        app.post(&regenerate, &old_token, json!({})).await,
        app.send(Method::POST, "/self/refresh", Some(&old_token), None)
            .await,
    ];
    for (route, reply) in [
        "GET /keys",
        "POST /keys",
        "POST regenerate",
        "POST /self/refresh",
    ]
    .into_iter()
    .zip(refusals)
    {
        let reply = reply.expect(403);
        assert_eq!(reply.error(), "forbidden", "{route}");
    }

    // The new token does, and the old one ends with its grace period.
    app.get("/keys", &new_token).await.expect(200);
    app.clock.advance(TimeDelta::seconds(601));
    app.get("/self", &old_token).await.expect(401);
}

#[tokio::test]
async fn only_an_administrator_enables_a_key_an_administrator_disabled() {
    let app = TestApp::new();
    let root = app.manager("root", &["keys:admin"]).await;
    let alice = app.manager("alice", &["keys:write", "books:read"]).await;
    let target = app.personal("alice", &["books:read"]).await;
    let path = format!("/keys/{}", target.id);
    let patch = |token: &str, active: bool| {
        let (app, path, token) = (app.clone(), path.clone(), token.to_owned());
        async move {
            app.send(
                Method::PATCH,
                &path,
                Some(&token),
                Some(json!({"active": active})),
            )
            .await
        }
    };

    let reply = patch(&root.token, false).await.expect(200);
    assert_eq!(reply.json["active"], false);
    assert_eq!(reply.json["disabled_by"], "root");

    let reply = patch(&alice.token, true).await.expect(403);
    assert_eq!(reply.error(), "forbidden");
    let reply = app.get(&path, &alice.token).await.expect(200);
    assert_eq!(
        reply.json["active"], false,
        "the refused enable changed nothing"
    );
    assert_eq!(reply.json["disabled_by"], "root");
    app.get("/self", &target.token).await.expect(401);

    let reply = patch(&root.token, true).await.expect(200);
    assert_eq!(reply.json["active"], true);
    assert_eq!(reply.json["disabled_by"], Value::Null);
    app.get("/self", &target.token).await.expect(200);

    // A key its owner disabled, its owner enables.
    let reply = patch(&alice.token, false).await.expect(200);
    assert_eq!(reply.json["disabled_by"], "alice");
    let reply = patch(&alice.token, true).await.expect(200);
    assert_eq!(reply.json["active"], true);
    assert_eq!(reply.json["disabled_by"], Value::Null);
}
