//! Every route: its success and each documented error status.

mod common;

use axum::body::Body;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use common::{MOUNT, TestApp};
use http::{Method, Request};
use keyward::{EventContext, Expiry, KeyId, KeyRecord, NewKey};
use keyward_core::KeyStore;
use keyward_core::MAX_LIFETIME;
use serde_json::json;

const NIL: &str = "00000000-0000-7000-8000-000000000000";

#[tokio::test]
async fn scopes() {
    let app = TestApp::new();
    let reader = app.personal("alice", &["keys:read"]).await;
    let books = app.personal("alice", &["books:read"]).await;

    let reply = app.get("/scopes", &reader.token).await.expect(200);
    let names: Vec<&str> = reply.json["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "books:read",
            "books:write",
            "keys:admin",
            "keys:read",
            "keys:write",
            "reviews:read"
        ]
    );
    assert_eq!(
        reply.json["scopes"][0]["description"],
        "Read the book collection"
    );

    app.send(Method::GET, "/scopes", None, None)
        .await
        .expect(401);
    let reply = app.get("/scopes", &books.token).await.expect(403);
    assert_eq!(reply.json["scope"], "keys:read");
}

#[tokio::test]
async fn missing_and_invalid_credentials_are_401() {
    let app = TestApp::new();
    let reply = app.send(Method::GET, "/keys", None, None).await.expect(401);
    assert!(
        reply.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let garbage = "books_0000000000000000000000000000000000000000000000";
    app.get("/keys", garbage).await.expect(401);
}

#[tokio::test]
async fn list_keys() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:read"]).await;
    let other = app.personal("alice", &["books:read"]).await;
    app.personal("bob", &["books:read"]).await;

    let reply = app.get("/keys", &alice.token).await.expect(200);
    let ids: Vec<&str> = reply.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [other.id.to_string(), alice.id.to_string()]);
    assert_eq!(reply.json["next_cursor"], serde_json::Value::Null);
    let key = &reply.json["keys"][1];
    for member in [
        "id",
        "name",
        "kind",
        "owner",
        "scopes",
        "hint",
        "created_at",
        "expires_at",
        "last_used_at",
        "last_used_ip",
        "usage_count",
        "active",
        "revoked_at",
        "allowed_ips",
        "rate_limit",
        "metadata",
    ] {
        assert!(
            key.get(member).is_some(),
            "key object lacks {member}: {key}"
        );
    }
    assert!(
        !reply.text.contains(&alice.token),
        "a listing never shows a token"
    );

    // Errors.
    app.send(Method::GET, "/keys", None, None).await.expect(401);
    app.get("/keys", &other.token).await.expect(403);
    let reply = app.get("/keys?owner=bob", &alice.token).await.expect(403);
    assert_eq!(reply.json["scope"], "keys:admin");
    app.get("/keys?owner=alice", &alice.token).await.expect(200);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("include_revoked=yes", "include_revoked"),
        ("colour=red", "colour"),
    ] {
        let reply = app
            .get(&format!("/keys?{query}"), &alice.token)
            .await
            .expect(422);
        assert_eq!(reply.field(), field, "{query}");
    }
}

#[tokio::test]
async fn list_hides_revoked_keys_unless_asked() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:write"]).await;
    let old = app.personal("alice", &["books:read"]).await;
    app.post(&format!("/keys/{}/revoke", old.id), &alice.token, json!({}))
        .await
        .expect(200);
    let reply = app.get("/keys", &alice.token).await.expect(200);
    assert_eq!(reply.json["keys"].as_array().unwrap().len(), 1);
    let reply = app
        .get("/keys?include_revoked=true", &alice.token)
        .await
        .expect(200);
    assert_eq!(reply.json["keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn create_key() {
    let app = TestApp::new();
    let alice = app
        .manager("alice", &["keys:write", "books:write", "reviews:read"])
        .await;

    let reply = app
        .post(
            "/keys",
            &alice.token,
            json!({
                "name": "Backup Script",
                "scopes": ["books:read", "reviews:read"],
                "allowed_ips": ["10.0.0.0/8"],
                "rate_limit": 60,
                "metadata": {"team": "ops"}
            }),
        )
        .await
        .expect(201);
    let token = reply.json["token"].as_str().unwrap();
    assert!(token.starts_with("books_") && token.len() == "books_".len() + 46);
    let key = &reply.json["key"];
    assert_eq!(key["name"], "Backup Script");
    assert_eq!(key["kind"], "personal");
    assert_eq!(key["owner"], "alice");
    assert_eq!(key["scopes"], json!(["books:read", "reviews:read"]));
    assert_eq!(key["allowed_ips"], json!(["10.0.0.0/8"]));
    assert_eq!(key["rate_limit"], 60);
    assert_eq!(key["metadata"], json!({"team": "ops"}));
    assert_eq!(key["active"], true);
    assert_eq!(
        key["expires_at"], "2026-05-31T10:00:00Z",
        "30 days by default"
    );
    assert!(
        key["hint"]
            .as_str()
            .unwrap()
            .ends_with(&token[token.len() - 4..])
    );

    // The allow-list applies to the new token at once (these requests have no client address).
    let reply = app.get("/self", token).await.expect(403);
    assert_eq!(reply.error(), "ip_not_allowed");

    // Expiry presets, never, and a custom instant; the new token works.
    let reply = app
        .post(
            "/keys",
            &alice.token,
            json!({"name": "w", "scopes": ["books:read"], "expires_in_days": 7}),
        )
        .await
        .expect(201);
    assert_eq!(reply.json["key"]["expires_at"], "2026-05-08T10:00:00Z");
    let reply = app
        .get("/self", reply.json["token"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(reply.json["effective_scopes"], json!(["books:read"]));
    let reply = app
        .post(
            "/keys",
            &alice.token,
            json!({"name": "n", "scopes": ["books:read"], "expires_in_days": null}),
        )
        .await
        .expect(201);
    assert_eq!(reply.json["key"]["expires_at"], serde_json::Value::Null);
    let reply = app
        .post(
            "/keys",
            &alice.token,
            json!({"name": "c", "scopes": ["books:read"], "expires_at": "2026-06-01T00:00:00Z"}),
        )
        .await
        .expect(201);
    assert_eq!(reply.json["key"]["expires_at"], "2026-06-01T00:00:00Z");
}

#[tokio::test]
async fn create_key_errors() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:write", "books:read"]).await;
    let reader = app.personal("alice", &["keys:read", "books:read"]).await;
    let valid = json!({"name": "k", "scopes": ["books:read"]});

    // 400: not JSON.
    let request = Request::post(format!("{MOUNT}/keys"))
        .header("authorization", format!("Bearer {}", alice.token))
        .header("content-type", "application/json")
        .body(Body::from("{\"name\": "))
        .unwrap();
    let reply = app.call(request).await.expect(400);
    assert_eq!(reply.error(), "malformed_body");

    // 401.
    app.send(Method::POST, "/keys", None, Some(valid.clone()))
        .await
        .expect(401);

    // 403: no keys:write, a scope the caller lacks, a service key, another owner.
    let reply = app
        .post("/keys", &reader.token, valid.clone())
        .await
        .expect(403);
    assert_eq!(reply.json["scope"], "keys:write");
    let reply = app
        .post(
            "/keys",
            &alice.token,
            json!({"name": "k", "scopes": ["books:write"]}),
        )
        .await
        .expect(403);
    assert_eq!(reply.error(), "insufficient_scope");
    assert_eq!(reply.json["scope"], "books:write");
    let reply = app
        .post(
            "/keys",
            &alice.token,
            json!({"name": "k", "scopes": ["keys:admin"]}),
        )
        .await
        .expect(403);
    assert_eq!(reply.json["scope"], "keys:admin");
    let reply = app
        .post(
            "/keys",
            &alice.token,
            json!({"name": "k", "scopes": ["books:read"], "kind": "service"}),
        )
        .await
        .expect(403);
    assert_eq!(reply.json["scope"], "keys:admin");
    let reply = app
        .post(
            "/keys",
            &alice.token,
            json!({"name": "k", "scopes": ["books:read"], "owner": "bob"}),
        )
        .await
        .expect(403);
    assert_eq!(reply.json["scope"], "keys:admin");

    // 415: not JSON.
    let request = Request::post(format!("{MOUNT}/keys"))
        .header("authorization", format!("Bearer {}", alice.token))
        .header("content-type", "text/plain")
        .body(Body::from(valid.to_string()))
        .unwrap();
    app.call(request).await.expect(415);
    let request = Request::post(format!("{MOUNT}/keys"))
        .header("authorization", format!("Bearer {}", alice.token))
        .body(Body::from(valid.to_string()))
        .unwrap();
    app.call(request).await.expect(415);

    // 422, naming the field.
    for (body, field) in [
        (json!({"name": "k", "scopes": ["books:delete"]}), "scopes"),
        (json!({"name": "k", "scopes": ["Books"]}), "scopes"),
        (json!({"name": "k", "scopes": []}), "scopes"),
        (json!({"name": "k"}), "scopes"),
        (json!({"name": "", "scopes": ["books:read"]}), "name"),
        (json!({"scopes": ["books:read"]}), "name"),
        (
            json!({"name": "x".repeat(101), "scopes": ["books:read"]}),
            "name",
        ),
        (
            json!({"name": "k", "scopes": ["books:read"], "expires_in_days": 31}),
            "expires_in_days",
        ),
        (
            json!({"name": "k", "scopes": ["books:read"], "expires_in_days": -1}),
            "expires_in_days",
        ),
        (
            json!({"name": "k", "scopes": ["books:read"], "expires_at": "2020-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "k", "scopes": ["books:read"], "expires_at": "soon"}),
            "expires_at",
        ),
        (
            json!({"name": "k", "scopes": ["books:read"], "expires_in_days": 7, "expires_at": "2027-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "k", "scopes": ["books:read"], "allowed_ips": ["10.0.0.0/33"]}),
            "allowed_ips",
        ),
        (
            json!({"name": "k", "scopes": ["books:read"], "rate_limit": 0}),
            "rate_limit",
        ),
        (
            json!({"name": "k", "scopes": ["books:read"], "rate_limit": "fast"}),
            "rate_limit",
        ),
        (
            json!({"name": "k", "scopes": ["books:read"], "metadata": [1]}),
            "metadata",
        ),
        (
            json!({"name": "k", "scopes": ["books:read"], "kind": "robot"}),
            "kind",
        ),
        (
            json!({"name": "k", "scopes": ["books:read"], "colour": "red"}),
            "colour",
        ),
        (json!({"name": 5, "scopes": ["books:read"]}), "name"),
        (json!(["k"]), "body"),
    ] {
        let reply = app
            .post("/keys", &alice.token, body.clone())
            .await
            .expect(422);
        assert_eq!(reply.field(), field, "{body}");
        assert_eq!(reply.error(), "validation_failed");
    }
}

#[tokio::test]
async fn get_key() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:read"]).await;
    let books = app.personal("alice", &["books:read"]).await;
    let bob = app.personal("bob", &["keys:read"]).await;

    let reply = app
        .get(&format!("/keys/{}", books.id), &alice.token)
        .await
        .expect(200);
    assert_eq!(reply.json["id"], books.id.to_string());
    assert_eq!(reply.json["scopes"], json!(["books:read"]));

    app.send(Method::GET, &format!("/keys/{}", books.id), None, None)
        .await
        .expect(401);
    app.get(&format!("/keys/{}", alice.id), &books.token)
        .await
        .expect(403);
    for id in [NIL, "not-a-uuid", &bob.id.to_string()] {
        let reply = app
            .get(&format!("/keys/{id}"), &alice.token)
            .await
            .expect(404);
        assert_eq!(reply.error(), "not_found");
    }
}

#[tokio::test]
async fn update_key() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:write", "books:write"]).await;
    let reader = app.personal("alice", &["keys:read", "books:read"]).await;
    let target = app.personal("alice", &["books:read"]).await;
    let bob = app.personal("bob", &["books:read"]).await;
    let path = format!("/keys/{}", target.id);

    let reply = app
        .send(
            Method::PATCH,
            &path,
            Some(&alice.token),
            Some(json!({
                "name": "Renamed",
                "scopes": ["books:write"],
                "allowed_ips": ["192.168.1.7"],
                "rate_limit": 10,
                "metadata": {"a": 1}
            })),
        )
        .await
        .expect(200);
    assert_eq!(reply.json["name"], "Renamed");
    assert_eq!(reply.json["scopes"], json!(["books:write"]));
    assert_eq!(reply.json["allowed_ips"], json!(["192.168.1.7/32"]));
    assert_eq!(reply.json["rate_limit"], 10);
    assert_eq!(reply.json["metadata"], json!({"a": 1}));

    // Absent members stay; null removes the rate limit; disable and enable.
    let reply = app
        .send(
            Method::PATCH,
            &path,
            Some(&alice.token),
            Some(json!({"rate_limit": null, "active": false, "allowed_ips": []})),
        )
        .await
        .expect(200);
    assert_eq!(reply.json["name"], "Renamed");
    assert_eq!(reply.json["rate_limit"], serde_json::Value::Null);
    assert_eq!(reply.json["active"], false);
    assert_eq!(reply.json["allowed_ips"], json!([]));
    app.get("/self", &target.token).await.expect(401);
    let reply = app
        .send(
            Method::PATCH,
            &path,
            Some(&alice.token),
            Some(json!({"active": true})),
        )
        .await
        .expect(200);
    assert_eq!(reply.json["active"], true);
    app.get("/self", &target.token).await.expect(200);

    // Errors.
    let request = Request::patch(format!("{MOUNT}{path}"))
        .header("authorization", format!("Bearer {}", alice.token))
        .header("content-type", "application/json")
        .body(Body::from("{"))
        .unwrap();
    app.call(request).await.expect(400);
    app.send(Method::PATCH, &path, None, Some(json!({"name": "x"})))
        .await
        .expect(401);
    let reply = app
        .send(
            Method::PATCH,
            &path,
            Some(&reader.token),
            Some(json!({"name": "x"})),
        )
        .await
        .expect(403);
    assert_eq!(reply.json["scope"], "keys:write");
    let reply = app
        .send(
            Method::PATCH,
            &path,
            Some(&alice.token),
            Some(json!({"scopes": ["reviews:read"]})),
        )
        .await
        .expect(403);
    assert_eq!(reply.json["scope"], "reviews:read");
    app.send(
        Method::PATCH,
        &format!("/keys/{}", bob.id),
        Some(&alice.token),
        Some(json!({"name": "mine now"})),
    )
    .await
    .expect(404);
    let request = Request::patch(format!("{MOUNT}{path}"))
        .header("authorization", format!("Bearer {}", alice.token))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("name=x"))
        .unwrap();
    app.call(request).await.expect(415);
    for (body, field) in [
        (json!({"name": null}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"scopes": ["books:nope"]}), "scopes"),
        (json!({"scopes": null}), "scopes"),
        (json!({"active": "yes"}), "active"),
        (json!({"rate_limit": 0}), "rate_limit"),
        (json!({"allowed_ips": ["nope"]}), "allowed_ips"),
        (json!({"metadata": "text"}), "metadata"),
        (json!({"owner": "bob"}), "owner"),
    ] {
        let reply = app
            .send(Method::PATCH, &path, Some(&alice.token), Some(body.clone()))
            .await
            .expect(422);
        assert_eq!(reply.field(), field, "{body}");
    }

    // 409: a revoked key stays as it was revoked.
    app.post(&format!("{path}/revoke"), &alice.token, json!({}))
        .await
        .expect(200);
    let reply = app
        .send(
            Method::PATCH,
            &path,
            Some(&alice.token),
            Some(json!({"name": "again"})),
        )
        .await
        .expect(409);
    assert_eq!(reply.error(), "conflict");
}

#[tokio::test]
async fn delete_key() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:write"]).await;
    let reader = app.personal("alice", &["keys:read"]).await;
    let target = app.personal("alice", &["books:read"]).await;
    let bob = app.personal("bob", &["books:read"]).await;
    let path = format!("/keys/{}", target.id);

    app.send(Method::DELETE, &path, None, None)
        .await
        .expect(401);
    app.send(Method::DELETE, &path, Some(&reader.token), None)
        .await
        .expect(403);
    app.send(
        Method::DELETE,
        &format!("/keys/{}", bob.id),
        Some(&alice.token),
        None,
    )
    .await
    .expect(404);
    app.get(&format!("/keys/{}", bob.id), &bob.token)
        .await
        .expect(403);

    let reply = app
        .send(Method::DELETE, &path, Some(&alice.token), None)
        .await
        .expect(204);
    assert!(reply.text.is_empty());
    app.get(&path, &alice.token).await.expect(404);
    app.get("/self", &target.token).await.expect(401);
    app.send(Method::DELETE, &path, Some(&alice.token), None)
        .await
        .expect(404);
}

#[tokio::test]
async fn revoke_key() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:write"]).await;
    let reader = app.personal("alice", &["keys:read"]).await;
    let target = app.personal("alice", &["books:read"]).await;
    let bob = app.personal("bob", &["books:read"]).await;
    let path = format!("/keys/{}/revoke", target.id);

    app.get("/self", &target.token).await.expect(200);
    app.send(Method::POST, &path, None, None).await.expect(401);
    app.send(Method::POST, &path, Some(&reader.token), None)
        .await
        .expect(403);
    app.send(
        Method::POST,
        &format!("/keys/{}/revoke", bob.id),
        Some(&alice.token),
        None,
    )
    .await
    .expect(404);
    app.send(
        Method::POST,
        &format!("/keys/{NIL}/revoke"),
        Some(&alice.token),
        None,
    )
    .await
    .expect(404);

    // No body needed.
    let reply = app
        .send(Method::POST, &path, Some(&alice.token), None)
        .await
        .expect(200);
    assert_eq!(reply.json["revoked_at"], "2026-05-01T10:00:00Z");
    // The cache forgets the key at once.
    app.get("/self", &target.token).await.expect(401);
    // Revoking again keeps the first time.
    let reply = app
        .send(Method::POST, &path, Some(&alice.token), None)
        .await
        .expect(200);
    assert_eq!(reply.json["revoked_at"], "2026-05-01T10:00:00Z");
    app.get(&format!("/keys/{}", target.id), &alice.token)
        .await
        .expect(200);
}

#[tokio::test]
async fn regenerate_key_errors() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:write", "books:read"]).await;
    let reader = app.personal("alice", &["keys:read", "books:read"]).await;
    let target = app.personal("alice", &["books:read"]).await;
    let bob = app.personal("bob", &["books:read"]).await;
    let path = format!("/keys/{}/regenerate", target.id);

    app.send(Method::POST, &path, None, None).await.expect(401);
    app.send(Method::POST, &path, Some(&reader.token), None)
        .await
        .expect(403);
    app.send(
        Method::POST,
        &format!("/keys/{}/regenerate", bob.id),
        Some(&alice.token),
        None,
    )
    .await
    .expect(404);
    let reply = app
        .post(&path, &alice.token, json!({"grace_seconds": 86_401}))
        .await
        .expect(422);
    assert_eq!(reply.field(), "grace_seconds");
    let reply = app
        .post(&path, &alice.token, json!({"grace_seconds": -5}))
        .await
        .expect(422);
    assert_eq!(reply.field(), "grace_seconds");
    let request = Request::post(format!("{MOUNT}{path}"))
        .header("authorization", format!("Bearer {}", alice.token))
        .header("content-type", "application/json")
        .body(Body::from("grace"))
        .unwrap();
    app.call(request).await.expect(400);
    let request = Request::post(format!("{MOUNT}{path}"))
        .header("authorization", format!("Bearer {}", alice.token))
        .header("content-type", "text/plain")
        .body(Body::from("{\"grace_seconds\": 5}"))
        .unwrap();
    app.call(request).await.expect(415);

    app.send(
        Method::POST,
        &format!("/keys/{}/revoke", target.id),
        Some(&alice.token),
        None,
    )
    .await
    .expect(200);
    app.send(Method::POST, &path, Some(&alice.token), None)
        .await
        .expect(409);
}

#[tokio::test]
async fn refresh_key_errors() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:write"]).await;
    let reader = app.personal("alice", &["keys:read"]).await;
    let target = app.personal("alice", &["books:read"]).await;
    let bob = app.personal("bob", &["books:read"]).await;
    let path = format!("/keys/{}/refresh", target.id);

    app.send(Method::POST, &path, None, None).await.expect(401);
    app.send(Method::POST, &path, Some(&reader.token), None)
        .await
        .expect(403);
    app.send(
        Method::POST,
        &format!("/keys/{}/refresh", bob.id),
        Some(&alice.token),
        None,
    )
    .await
    .expect(404);
    // Disabled keys are not refreshed.
    app.send(
        Method::PATCH,
        &format!("/keys/{}", target.id),
        Some(&alice.token),
        Some(json!({"active": false})),
    )
    .await
    .expect(200);
    app.send(Method::POST, &path, Some(&alice.token), None)
        .await
        .expect(409);
}

/// `expires_at` is an RFC 3339 time with a four-digit year, at most `MAX_LIFETIME_DAYS` from
/// now: anything else is a 422 naming it, and the longest lifetime itself is accepted.
#[tokio::test]
async fn expires_at_is_bounded() {
    let app = TestApp::new();
    let alice = app.manager("alice", &["keys:write", "books:read"]).await;
    let longest = common::start() + MAX_LIFETIME;
    let rfc3339 = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    for at in [
        // chrono's own parser takes these two; neither is RFC 3339.
        "+262142-12-31T23:59:59Z".to_owned(),
        "+10000-01-01T00:00:00Z".to_owned(),
        // Four digits as written, five in UTC.
        "9999-12-31T23:59:59-01:00".to_owned(),
        "-0001-01-01T00:00:00Z".to_owned(),
        "2027-01-01T00:00:00".to_owned(),
        rfc3339(longest + TimeDelta::microseconds(1)),
        rfc3339(longest + TimeDelta::seconds(1)),
        "9999-12-31T23:59:59Z".to_owned(),
    ] {
        let reply = app
            .post(
                "/keys",
                &alice.token,
                json!({"name": "k", "scopes": ["books:read"], "expires_at": at}),
            )
            .await
            .expect(422);
        assert_eq!(reply.field(), "expires_at", "{at}: {}", reply.text);
        assert_eq!(reply.error(), "validation_failed", "{at}");
    }
    let reply = app
        .post(
            "/keys",
            &alice.token,
            json!({"name": "k", "scopes": ["books:read"], "expires_at": 1_893_456_000}),
        )
        .await
        .expect(422);
    assert_eq!(reply.field(), "expires_at");

    for at in [longest - TimeDelta::seconds(1), longest] {
        let reply = app
            .post(
                "/keys",
                &alice.token,
                json!({"name": "k", "scopes": ["books:read"], "expires_at": rfc3339(at)}),
            )
            .await
            .expect(201);
        assert_eq!(reply.json["key"]["expires_at"], rfc3339(at));
    }
}

/// Replaces a stored record, as a database written before a rule existed could hold it.
async fn plant(app: &TestApp, id: KeyId, change: impl FnOnce(&mut KeyRecord)) {
    let mut record = app.store.get(id).await.unwrap().expect("stored");
    change(&mut record);
    app.store.delete(id, &EventContext::system()).await.unwrap();
    app.store
        .insert(record, &EventContext::system())
        .await
        .unwrap();
    app.keys.invalidate_key(id);
}

/// Regression: a key created with `"expires_at": "+262142-12-31T23:59:59Z"` was accepted,
/// and refreshing it panicked the handler (`DateTime + TimeDelta overflowed`). The body is now
/// refused; a record that still holds such an expiry and lifetime refreshes to the longest
/// lifetime from now, and regenerates, without a panic.
#[tokio::test]
async fn a_key_at_the_end_of_time_refreshes_without_panicking() {
    let app = TestApp::new();
    let alice = app.manager("alice", &["keys:write", "books:read"]).await;
    let far = "+262142-12-31T23:59:59Z";
    app.post(
        "/keys",
        &alice.token,
        json!({"name": "far", "scopes": ["books:read"], "expires_at": far}),
    )
    .await
    .expect(422);

    let target = app.personal("alice", &["books:read"]).await;
    let far: DateTime<Utc> = far.parse().unwrap();
    plant(&app, target.id, |record| {
        record.expires_at = Some(far);
        record.lifetime = Some(far - common::start());
    })
    .await;
    // A refresh any later than the creation used to pass chrono's last instant.
    app.clock.advance(TimeDelta::hours(1));
    let now = common::start() + TimeDelta::hours(1);
    let path = format!("/keys/{}/refresh", target.id);
    let reply = app
        .send(Method::POST, &path, Some(&alice.token), None)
        .await
        .expect(200);
    let longest = serde_json::to_value(now + MAX_LIFETIME).unwrap();
    assert_eq!(reply.json["expires_at"], longest);
    let stored = app.store.get(target.id).await.unwrap().unwrap();
    assert_eq!(stored.lifetime, Some(MAX_LIFETIME));

    // The key itself, through /self/refresh, and a rolling regenerate of it.
    plant(&app, target.id, |record| {
        record.expires_at = Some(DateTime::<Utc>::MAX_UTC);
        record.lifetime = Some(TimeDelta::MAX);
    })
    .await;
    let reply = app
        .send(Method::POST, "/self/refresh", Some(&target.token), None)
        .await
        .expect(200);
    assert_eq!(reply.json["expires_at"], longest);
    let reply = app
        .post(
            &format!("/keys/{}/regenerate", target.id),
            &alice.token,
            json!({"grace_seconds": 86_400}),
        )
        .await
        .expect(200);
    assert_eq!(reply.json["key"]["expires_at"], longest);
    app.get("/self", &target.token).await.expect(200);
}

/// A stored lifetime that is not positive cannot be refreshed: 409, not a key that expires
/// at once.
#[tokio::test]
async fn a_key_with_no_lifetime_left_is_not_refreshed() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:write", "books:read"]).await;
    let target = app.personal("alice", &["books:read"]).await;
    plant(&app, target.id, |record| {
        record.lifetime = Some(TimeDelta::microseconds(-1));
    })
    .await;
    let before = app.store.get(target.id).await.unwrap();
    let reply = app
        .send(
            Method::POST,
            &format!("/keys/{}/refresh", target.id),
            Some(&alice.token),
            None,
        )
        .await
        .expect(409);
    assert!(reply.json["detail"].as_str().unwrap().contains("lifetime"));
    assert_eq!(app.store.get(target.id).await.unwrap(), before);
}

/// With the clock a day from the latest representable instant, every time rule answers
/// instead of panicking: presets and refreshes that would pass it are refused, a grace
/// period ends at it.
#[tokio::test]
async fn the_routes_hold_at_the_end_of_time() {
    let app = TestApp::new();
    let admin = app
        .mint(
            NewKey::personal("admin", "alice")
                .scopes(["keys:write", "books:read"])
                .expiry(Expiry::Never),
        )
        .await;
    let target = app.personal("alice", &["books:read"]).await;
    plant(&app, target.id, |record| record.expires_at = None).await;
    app.clock
        .set(DateTime::<Utc>::MAX_UTC - TimeDelta::hours(12));

    let reply = app
        .post(
            "/keys",
            &admin.token,
            json!({"name": "k", "scopes": ["books:read"], "expires_in_days": 7}),
        )
        .await
        .expect(422);
    assert_eq!(reply.field(), "expires_in_days");
    let reply = app
        .post(
            "/keys",
            &admin.token,
            json!({"name": "k", "scopes": ["books:read"], "expires_at": "9999-12-31T23:59:59Z"}),
        )
        .await
        .expect(422);
    assert_eq!(reply.field(), "expires_at");
    let reply = app
        .send(
            Method::POST,
            &format!("/keys/{}/refresh", target.id),
            Some(&admin.token),
            None,
        )
        .await
        .expect(409);
    assert!(
        reply.json["detail"]
            .as_str()
            .unwrap()
            .contains("out of range")
    );
    app.post(
        &format!("/keys/{}/regenerate", target.id),
        &admin.token,
        json!({"grace_seconds": 86_400}),
    )
    .await
    .expect(200);
    let stored = app.store.get(target.id).await.unwrap().unwrap();
    assert_eq!(
        stored.previous.map(|p| p.valid_until),
        Some(DateTime::<Utc>::MAX_UTC)
    );
    app.get("/self", &target.token).await.expect(200);
}

#[tokio::test]
async fn self_routes_need_a_key() {
    let app = TestApp::new();
    app.send(Method::GET, "/self", None, None).await.expect(401);
    app.send(Method::POST, "/self/refresh", None, None)
        .await
        .expect(401);
}

#[tokio::test]
async fn openapi_and_page() {
    let app = TestApp::new();
    let request = Request::get(format!("{MOUNT}/openapi.json"))
        .body(Body::empty())
        .unwrap();
    let reply = app.call(request).await.expect(200);
    assert!(reply.json["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(reply.json["servers"][0]["url"], MOUNT);

    if !cfg!(feature = "ui") {
        // Without the `ui` feature the router serves no page.
        app.call(
            Request::get(format!("{MOUNT}/ui"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .expect(404);
        return;
    }
    let reply = app
        .call(
            Request::get(format!("{MOUNT}/ui"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .expect(200);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = reply.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'self'"));
    assert!(!policy.contains("unsafe-inline"));
    assert!(reply.text.contains(&format!("src=\"{MOUNT}/ui/app.js\"")));
    assert!(reply.text.contains(&format!("href=\"{MOUNT}/ui/app.css\"")));
    assert!(reply.text.contains(&format!("data-api-base=\"{MOUNT}\"")));

    for (path, media) in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let reply = app
            .call(
                Request::get(format!("{MOUNT}{path}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .expect(200);
        assert!(
            reply.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(media),
            "{path}"
        );
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:read"]).await;
    let reply = app.get("/nope", &alice.token).await.expect(404);
    assert_eq!(reply.error(), "not_found");
    let reply = app
        .send(Method::PUT, "/keys", Some(&alice.token), None)
        .await
        .expect(405);
    assert_eq!(reply.error(), "method_not_allowed");
}
