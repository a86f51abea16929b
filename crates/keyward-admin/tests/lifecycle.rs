//! Regenerate with and without grace, refresh, and the self routes.

mod common;

use chrono::TimeDelta;
use common::TestApp;
use http::Method;
use keyward::{Expiry, NewKey};
use serde_json::json;

#[tokio::test]
async fn regenerate_without_grace_stops_the_old_token_at_once() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:write", "books:read"]).await;
    let target = app.personal("alice", &["books:read"]).await;
    app.get("/self", &target.token).await.expect(200);

    let reply = app
        .send(
            Method::POST,
            &format!("/keys/{}/regenerate", target.id),
            Some(&alice.token),
            None,
        )
        .await
        .expect(200);
    let token = reply.json["token"].as_str().unwrap();
    assert_ne!(token, target.token);
    assert_eq!(reply.json["key"]["id"], target.id.to_string(), "same id");
    assert_eq!(reply.json["key"]["name"], "alice's key", "same name");
    assert_eq!(
        reply.json["key"]["scopes"],
        json!(["books:read"]),
        "same scopes"
    );
    assert!(
        reply.json["key"]["hint"]
            .as_str()
            .unwrap()
            .ends_with(&token[token.len() - 4..])
    );

    app.get("/self", &target.token).await.expect(401);
    let me = app.get("/self", token).await.expect(200);
    assert_eq!(me.json["key"]["id"], target.id.to_string());
}

#[tokio::test]
async fn regenerate_with_grace_keeps_the_old_token_until_it_ends() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:write", "books:read"]).await;
    let target = app.personal("alice", &["books:read"]).await;

    let reply = app
        .post(
            &format!("/keys/{}/regenerate", target.id),
            &alice.token,
            json!({"grace_seconds": 600}),
        )
        .await
        .expect(200);
    let token = reply.json["token"].as_str().unwrap().to_owned();

    // Both work during the grace period.
    app.get("/self", &target.token).await.expect(200);
    app.get("/self", &token).await.expect(200);

    app.clock.advance(TimeDelta::seconds(599));
    app.get("/self", &target.token).await.expect(200);
    app.clock.advance(TimeDelta::seconds(1));
    app.get("/self", &target.token).await.expect(401);
    app.get("/self", &token).await.expect(200);

    // The maximum is one day; zero means at once.
    app.post(
        &format!("/keys/{}/regenerate", target.id),
        &alice.token,
        json!({"grace_seconds": 86_400}),
    )
    .await
    .expect(200);
    let reply = app
        .post(
            &format!("/keys/{}/regenerate", target.id),
            &alice.token,
            json!({"grace_seconds": 0}),
        )
        .await
        .expect(200);
    let newest = reply.json["token"].as_str().unwrap();
    app.get("/self", &token).await.expect(401);
    app.get("/self", newest).await.expect(200);
}

#[tokio::test]
async fn refresh_extends_by_the_lifetime() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:write"]).await;
    let weekly = app
        .mint(
            NewKey::personal("weekly", "alice")
                .scopes(["books:read"])
                .expiry(Expiry::InDays(7)),
        )
        .await;
    app.clock.advance(TimeDelta::days(5));
    let reply = app
        .send(
            Method::POST,
            &format!("/keys/{}/refresh", weekly.id),
            Some(&alice.token),
            None,
        )
        .await
        .expect(200);
    assert_eq!(
        reply.json["expires_at"], "2026-05-13T10:00:00Z",
        "now + 7 days"
    );

    // Never-expiring keys have nothing to refresh.
    let forever = app
        .mint(
            NewKey::personal("forever", "alice")
                .scopes(["books:read"])
                .expiry(Expiry::Never),
        )
        .await;
    let reply = app
        .send(
            Method::POST,
            &format!("/keys/{}/refresh", forever.id),
            Some(&alice.token),
            None,
        )
        .await
        .expect(409);
    assert_eq!(reply.error(), "conflict");
}

#[tokio::test]
async fn self_shows_the_presenting_key_and_its_effective_scopes() {
    let app = TestApp::new();
    let key = app.personal("alice", &["books:write"]).await;
    let reply = app.get("/self", &key.token).await.expect(200);
    assert_eq!(reply.json["key"]["id"], key.id.to_string());
    assert_eq!(reply.json["key"]["scopes"], json!(["books:write"]));
    assert_eq!(
        reply.json["effective_scopes"],
        json!(["books:read", "books:write"]),
        "implications included"
    );
    assert!(!reply.text.contains(&key.token));
}

#[tokio::test]
async fn self_refresh() {
    let app = TestApp::new();
    // No management scope needed: the token authenticates itself.
    let key = app.personal("alice", &["books:read"]).await;
    app.clock.advance(TimeDelta::days(20));
    let reply = app
        .send(Method::POST, "/self/refresh", Some(&key.token), None)
        .await
        .expect(200);
    assert_eq!(reply.json["id"], key.id.to_string());
    assert_eq!(
        reply.json["expires_at"], "2026-06-20T10:00:00Z",
        "now + 30 days"
    );

    // Past the old expiry, the refreshed key still works.
    app.clock.advance(TimeDelta::days(15));
    app.get("/self", &key.token).await.expect(200);

    let forever = app
        .mint(
            NewKey::service("forever")
                .scopes(["books:read"])
                .expiry(Expiry::Never),
        )
        .await;
    app.send(Method::POST, "/self/refresh", Some(&forever.token), None)
        .await
        .expect(409);
    app.send(Method::POST, "/self/refresh", None, None)
        .await
        .expect(401);
}
