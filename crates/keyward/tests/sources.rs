//! Credential sources and credential hiding.

mod common;

use common::*;
use keyward::{CredentialSource, Keyward, ManualClock, MemoryStore, NewKey};

async fn setup(hide: bool) -> (Keyward, axum::Router, String) {
    let clock = ManualClock::new(t0());
    let keyward = builder(MemoryStore::new(), &clock)
        .sources([
            CredentialSource::bearer(),
            CredentialSource::token(),
            CredentialSource::header("x-api-key"),
            CredentialSource::query("api_key"),
            CredentialSource::header("x-emby-token"),
        ])
        .hide_credentials(hide)
        .build()
        .unwrap();
    let (_, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    let app = app(&keyward);
    (keyward, app, token)
}

fn assert_hidden(reply: &Reply, token: &str) {
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(reply.body["key_id"].is_string());
    assert!(
        !reply.raw.contains(token),
        "the inner service saw the token: {}",
        reply.raw
    );
}

#[tokio::test]
async fn bearer() {
    let (_k, app, token) = setup(true).await;
    let reply = send(&app, common::bearer("/echo", &token)).await;
    assert_hidden(&reply, &token);
    assert!(reply.body["headers"].get("authorization").is_none());
    // The scheme is case-insensitive.
    let reply = send(
        &app,
        get_with("/echo", &[("authorization", &format!("bearer {token}"))]),
    )
    .await;
    assert_hidden(&reply, &token);
}

#[tokio::test]
async fn authorization_token_scheme() {
    let (_k, app, token) = setup(true).await;
    let reply = send(
        &app,
        get_with("/echo", &[("authorization", &format!("Token {token}"))]),
    )
    .await;
    assert_hidden(&reply, &token);
    assert!(reply.body["headers"].get("authorization").is_none());
}

#[tokio::test]
async fn x_api_key_header() {
    let (_k, app, token) = setup(true).await;
    let reply = send(
        &app,
        get_with("/echo", &[("x-api-key", &token), ("accept", "*/*")]),
    )
    .await;
    assert_hidden(&reply, &token);
    assert!(reply.body["headers"].get("x-api-key").is_none());
    assert_eq!(reply.body["headers"]["accept"], "*/*", "other headers stay");
}

#[tokio::test]
async fn query_parameter() {
    let (_k, app, token) = setup(true).await;
    let reply = send(
        &app,
        get_with(&format!("/echo?page=2&api_key={token}&q=x"), &[]),
    )
    .await;
    assert_hidden(&reply, &token);
    assert_eq!(reply.body["uri"], "/echo?page=2&q=x");
}

#[tokio::test]
async fn custom_header() {
    let (_k, app, token) = setup(true).await;
    let reply = send(&app, get_with("/echo", &[("x-emby-token", &token)])).await;
    assert_hidden(&reply, &token);
}

#[tokio::test]
async fn query_is_off_unless_configured() {
    let clock = ManualClock::new(t0());
    let keyward = builder(MemoryStore::new(), &clock).build().unwrap();
    let (_, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    let app = app(&keyward);
    let reply = send(&app, get_with(&format!("/echo?api_key={token}"), &[])).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error(), Some("missing_credential"));
    // The defaults: Bearer, Token, X-Api-Key.
    for (name, value) in [
        ("authorization", format!("Bearer {token}")),
        ("authorization", format!("Token {token}")),
        ("x-api-key", token.clone()),
    ] {
        assert_eq!(
            send(&app, get_with("/echo", &[(name, &value)]))
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn same_token_in_every_place_is_fine_and_all_are_hidden() {
    let (_k, app, token) = setup(true).await;
    let reply = send(
        &app,
        get_with(
            &format!("/echo?api_key={token}"),
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-api-key", &token),
                ("x-emby-token", &token),
            ],
        ),
    )
    .await;
    assert_hidden(&reply, &token);
    assert_eq!(reply.body["uri"], "/echo");
}

#[tokio::test]
async fn conflicting_sources_are_400() {
    let (keyward, app, token) = setup(true).await;
    let (_, other) = issue(&keyward, NewKey::service("other").scopes(["books:read"])).await;
    for request in [
        get_with(&format!("/echo?api_key={other}"), &[("x-api-key", &token)]),
        get_with(
            "/echo",
            &[
                ("x-emby-token", &other),
                ("authorization", &format!("Token {token}")),
            ],
        ),
        get_with(
            "/echo",
            &[("x-api-key", "garbage"), ("x-emby-token", &token)],
        ),
    ] {
        let reply = send(&app, request).await;
        assert_eq!(reply.status, 400, "{}", reply.raw);
        assert_eq!(reply.error(), Some("invalid_request"));
    }
}

#[tokio::test]
async fn with_hiding_off_the_inner_service_sees_the_credential() {
    let (_k, app, token) = setup(false).await;
    let reply = send(
        &app,
        get_with(&format!("/echo?api_key={token}"), &[("x-api-key", &token)]),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["headers"]["x-api-key"], token.as_str());
    assert!(reply.body["uri"].as_str().unwrap().contains(&token));
}
