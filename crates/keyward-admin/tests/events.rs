//! `GET /events`: the audit trail. Each change made through the router is an event naming the
//! key or person who acted and their address; owners see their own keys' events, `keys:admin`
//! every owner's; filters and pages; bad parameters are named.

mod common;

use common::{MOUNT, TestApp};
use http::Method;
use keyward_test_support::{Reply, get_with, with_peer};
use serde_json::{Value, json};

/// `method` on `path` as `token`, from `peer`.
async fn from(
    app: &TestApp,
    peer: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Reply {
    let mut request = get_with(
        &format!("{MOUNT}{path}"),
        &[("authorization", &format!("Bearer {token}"))],
    );
    *request.method_mut() = method;
    if let Some(body) = body {
        request.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        *request.body_mut() = axum::body::Body::from(body.to_string());
    }
    app.call(with_peer(request, peer)).await
}

fn types(reply: &Reply) -> Vec<String> {
    reply.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_owned())
        .collect()
}

/// Every event of `path` (a query string included), page by page.
async fn all(app: &TestApp, path: &str, token: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut url = path.to_owned();
    for _ in 0..50 {
        let reply = app.get(&url, token).await.expect(200);
        events.extend(
            reply.json["events"]
                .as_array()
                .expect("events")
                .iter()
                .cloned(),
        );
        match reply.json["next_cursor"].as_str() {
            Some(cursor) => url = format!("{path}&cursor={cursor}"),
            None => return events,
        }
    }
    panic!("the pages never ended");
}

#[tokio::test]
async fn changes_are_events_with_actor_and_address_seen_by_owner_and_admin() {
    let app = TestApp::new();
    let alice = app.manager("alice", &["keys:write", "books:write"]).await;
    let bob = app.manager("bob", &["keys:write", "books:write"]).await;
    let root = app.manager("root", &["*"]).await;

    let created = from(
        &app,
        "203.0.113.7:4711",
        Method::POST,
        "/keys",
        &alice.token,
        Some(json!({"name": "backup", "scopes": ["books:read"]})),
    )
    .await
    .expect(201);
    let id = created.json["key"]["id"].as_str().expect("id").to_owned();
    let new_token = created.json["token"].as_str().expect("token").to_owned();
    from(
        &app,
        "203.0.113.7:4711",
        Method::PATCH,
        &format!("/keys/{id}"),
        &alice.token,
        Some(json!({"name": "nightly backup"})),
    )
    .await
    .expect(200);
    from(
        &app,
        "198.51.100.9:80",
        Method::POST,
        &format!("/keys/{id}/revoke"),
        &root.token,
        Some(json!({})),
    )
    .await
    .expect(200);
    let bobs = from(
        &app,
        "192.0.2.1:1",
        Method::POST,
        "/keys",
        &bob.token,
        Some(json!({"name": "bob's", "scopes": ["books:read"]})),
    )
    .await
    .expect(201);
    let bobs_id = bobs.json["key"]["id"].as_str().expect("id").to_owned();

    let history = app
        .get(&format!("/events?key={id}"), &alice.token)
        .await
        .expect(200);
    assert_eq!(
        types(&history),
        ["revoked", "updated", "created"],
        "newest first"
    );
    let events = history.json["events"].as_array().expect("events");
    let [revoked, updated, created_event] = &events[..] else {
        unreachable!("three events");
    };
    assert_eq!(created_event["actor"], json!(format!("key:{}", alice.id)));
    assert_eq!(created_event["client_ip"], json!("203.0.113.7"));
    assert_eq!(created_event["owner"], json!("alice"));
    assert_eq!(created_event["key_id"], json!(id));
    assert_eq!(created_event["detail"]["name"], json!("backup"));
    assert_eq!(updated["detail"]["fields"], json!(["name"]));
    assert_eq!(updated["detail"]["to"]["name"], json!("nightly backup"));
    assert_eq!(revoked["actor"], json!(format!("key:{}", root.id)));
    assert_eq!(revoked["client_ip"], json!("198.51.100.9"));
    assert!(revoked["at"].as_str().is_some_and(|at| at.ends_with('Z')));
    assert!(!history.text.contains(&new_token), "no token in events");

    // Owners see their own keys' events (the minted managers' own creation included), never
    // another owner's; `keys:admin` sees everyone's and can filter by owner.
    let alices = all(&app, "/events?limit=100", &alice.token).await;
    assert!(
        alices.iter().all(|e| e["owner"] == json!("alice")),
        "{alices:?}"
    );
    assert!(!alices.iter().any(|e| e["key_id"] == json!(bobs_id)));
    app.get("/events?owner=bob", &alice.token).await.expect(403);
    let of_bob = all(&app, "/events?owner=bob", &root.token).await;
    assert!(of_bob.iter().any(|e| e["key_id"] == json!(bobs_id)));
    assert!(of_bob.iter().all(|e| e["owner"] == json!("bob")));
    let everyone = all(&app, "/events?limit=100", &root.token).await;
    assert!(everyone.len() > alices.len() + of_bob.len() - 1);
    // Another owner's key asked for by id lists nothing for alice.
    let none = app
        .get(&format!("/events?key={bobs_id}"), &alice.token)
        .await
        .expect(200);
    assert!(types(&none).is_empty());

    // Filters and stable pages.
    let revocations = all(&app, "/events?type=revoked", &root.token).await;
    assert_eq!(revocations.len(), 1);
    let paged = all(&app, "/events?limit=1", &root.token).await;
    assert_eq!(paged, everyone, "pages of one list the same events");
    let future = all(&app, "/events?since=2999-01-01T00:00:00Z", &root.token).await;
    assert!(future.is_empty());
}

#[tokio::test]
async fn bad_parameters_are_named_and_reading_needs_keys_read() {
    let app = TestApp::new();
    let alice = app.manager("alice", &["keys:read"]).await;
    for (query, field) in [
        ("key=42", "key"),
        ("type=owner", "type"),
        ("type=stolen", "type"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("cursor=abc", "cursor"),
        ("colour=red", "colour"),
    ] {
        let reply = app
            .get(&format!("/events?{query}"), &alice.token)
            .await
            .expect(422);
        assert_eq!(
            reply.json["errors"][0]["field"],
            json!(field),
            "{query}: {}",
            reply.text
        );
    }
    let reader = app.manager("bob", &["books:read"]).await;
    app.get("/events", &reader.token).await.expect(403);
    app.send(Method::GET, "/events", None, None)
        .await
        .expect(401);
}
