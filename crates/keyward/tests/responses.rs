//! One test per row of the verification outcomes table (DESIGN section 5).

mod common;

use chrono::TimeDelta;
use common::*;
use http::StatusCode;
use keyward::{CacheConfig, KeyChanges, ManualClock, MemoryStore, NewKey};

async fn setup() -> (keyward::Keyward, ManualClock, axum::Router) {
    let clock = ManualClock::new(t0());
    let keyward = builder(MemoryStore::new(), &clock).build().unwrap();
    let app = app(&keyward);
    (keyward, clock, app)
}

fn assert_problem(reply: &Reply, status: StatusCode, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert_eq!(reply.error(), error, "{}", reply.text);
    assert_eq!(reply.json["status"], status.as_u16());
    assert!(reply.json["type"].is_string() && reply.json["title"].is_string());
    assert!(reply.json["detail"].is_string());
}

#[tokio::test]
async fn no_credential_is_401_without_error_attribute() {
    let (_keyward, _clock, app) = setup().await;
    let reply = send(&app, get_with("/echo", &[])).await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "missing_credential");
    assert_eq!(reply.challenge(), Some("Bearer realm=\"books\""));
}

#[tokio::test]
async fn malformed_and_bad_checksum_are_401_invalid_token_without_saying_why() {
    let (keyward, _clock, app) = setup().await;
    let (_, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    let mut wrong_check = token.clone().into_bytes();
    let last = wrong_check.len() - 1;
    wrong_check[last] = if wrong_check[last] == b'a' {
        b'b'
    } else {
        b'a'
    };
    let wrong_check = String::from_utf8(wrong_check).unwrap();
    let other_prefix = token.replacen("books", "music", 1);
    let mut descriptions = Vec::new();
    for bad in [
        "garbage",
        wrong_check.as_str(),
        other_prefix.as_str(),
        "books_",
    ] {
        let reply = send(&app, bearer("/echo", bad)).await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED, "invalid_token");
        let challenge = reply.challenge().unwrap();
        assert!(
            challenge.starts_with("Bearer realm=\"books\", error=\"invalid_token\""),
            "{challenge}"
        );
        descriptions.push((challenge.to_owned(), reply.json["detail"].clone()));
    }
    // The same answer whatever was wrong.
    assert!(
        descriptions.windows(2).all(|w| w[0] == w[1]),
        "{descriptions:?}"
    );
    assert!(!descriptions[0].0.contains("check"));
}

#[tokio::test]
async fn unknown_key_is_401_invalid_token() {
    let (_keyward, _clock, app) = setup().await;
    let unknown = keyward::TokenFormat::new("books").unwrap().generate();
    let reply = send(&app, bearer("/echo", unknown.expose_secret())).await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(
        reply
            .challenge()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
}

#[tokio::test]
async fn revoked_key_is_401_and_says_revoked() {
    let (keyward, _clock, app) = setup().await;
    let (id, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    keyward.revoke(id).await.unwrap();
    let reply = send(&app, bearer("/echo", &token)).await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(reply.challenge().unwrap().contains("revoked"));
}

#[tokio::test]
async fn expired_key_is_401_and_says_expired_using_the_injected_clock() {
    let (keyward, clock, app) = setup().await;
    let (_, token) = issue(
        &keyward,
        NewKey::service("ci")
            .scopes(["books:read"])
            .expiry(keyward::Expiry::InDays(7)),
    )
    .await;
    clock.advance(TimeDelta::days(7) - TimeDelta::seconds(1));
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    // The entry is cached now; expiry is still exact.
    clock.advance(TimeDelta::seconds(1));
    let reply = send(&app, bearer("/echo", &token)).await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(reply.challenge().unwrap().contains("expired"));
}

#[tokio::test]
async fn inactive_key_is_401_and_can_be_enabled_again() {
    let (keyward, _clock, app) = setup().await;
    let (id, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    let disable = KeyChanges {
        active: Some(false),
        ..KeyChanges::default()
    };
    keyward.update(id, disable).await.unwrap();
    let reply = send(&app, bearer("/echo", &token)).await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(reply.challenge().unwrap().contains("disabled"));
    let enable = KeyChanges {
        active: Some(true),
        ..KeyChanges::default()
    };
    keyward.update(id, enable).await.unwrap();
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
}

#[tokio::test]
async fn two_different_credentials_are_400_invalid_request() {
    let (keyward, _clock, app) = setup().await;
    let (_, a) = issue(&keyward, NewKey::service("a").scopes(["books:read"])).await;
    let (_, b) = issue(&keyward, NewKey::service("b").scopes(["books:read"])).await;
    let reply = send(
        &app,
        get_with(
            "/echo",
            &[("authorization", &format!("Bearer {a}")), ("x-api-key", &b)],
        ),
    )
    .await;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        reply
            .challenge()
            .unwrap()
            .contains("error=\"invalid_request\"")
    );
}

#[tokio::test]
async fn client_ip_outside_allow_list_is_403_ip_not_allowed() {
    let (keyward, _clock, app) = setup().await;
    let (_, token) = issue(
        &keyward,
        NewKey::service("office")
            .scopes(["books:read"])
            .allowed_ips(["192.0.2.0/24"]),
    )
    .await;
    let inside = send(&app, with_peer(bearer("/echo", &token), "192.0.2.10:4000")).await;
    assert_eq!(inside.status, 200, "{}", inside.text);
    let reply = send(
        &app,
        with_peer(bearer("/echo", &token), "198.51.100.1:4000"),
    )
    .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "ip_not_allowed");
}

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope_naming_it() {
    let (keyward, _clock, app) = setup().await;
    let (_, reader) = issue(&keyward, NewKey::service("r").scopes(["books:read"])).await;
    let (_, writer) = issue(&keyward, NewKey::service("w").scopes(["books:write"])).await;
    for path in ["/write", "/typed-write"] {
        let mut request = bearer(path, &reader);
        *request.method_mut() = http::Method::POST;
        let reply = send(&app, request).await;
        assert_problem(&reply, StatusCode::FORBIDDEN, "insufficient_scope");
        assert_eq!(
            reply.challenge(),
            Some("Bearer realm=\"books\", error=\"insufficient_scope\", scope=\"books:write\""),
            "{path}"
        );
        let mut request = bearer(path, &writer);
        *request.method_mut() = http::Method::POST;
        assert_eq!(send(&app, request).await.status, 200, "{path}");
    }
}

#[tokio::test]
async fn rate_limit_is_429_with_retry_after_and_ratelimit_headers() {
    let (keyward, clock, app) = setup().await;
    let (_, token) = issue(
        &keyward,
        NewKey::service("ci").scopes(["books:read"]).rate_limit(2),
    )
    .await;
    let first = send(&app, bearer("/echo", &token)).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.headers["ratelimit-limit"], "2");
    assert_eq!(first.headers["ratelimit-remaining"], "1");
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
    let reply = send(&app, bearer("/echo", &token)).await;
    assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(reply.headers["retry-after"], "30");
    assert_eq!(reply.headers["ratelimit-limit"], "2");
    assert_eq!(reply.headers["ratelimit-remaining"], "0");
    assert_eq!(reply.headers["ratelimit-reset"], "30");
    clock.advance(TimeDelta::seconds(30));
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
}

#[tokio::test]
async fn store_unreachable_is_503_with_retry_after_never_401() {
    let clock = ManualClock::new(t0());
    let store = CountingStore::new();
    let keyward = builder(store.clone(), &clock).build().unwrap();
    let app = app(&keyward);
    let (_, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    store.fail(true);
    let reply = send(&app, bearer("/echo", &token)).await;
    assert_problem(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    );
    assert_eq!(reply.headers["retry-after"], "5");
    // An unknown token is not "no" either while the store is down.
    let unknown = keyward::TokenFormat::new("books").unwrap().generate();
    let reply = send(&app, bearer("/echo", unknown.expose_secret())).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    store.fail(false);
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
}

#[tokio::test]
async fn optional_mode_passes_anonymous_requests_but_refuses_bad_credentials() {
    let clock = ManualClock::new(t0());
    let keyward = builder(MemoryStore::new(), &clock)
        .cache(CacheConfig::disabled())
        .build()
        .unwrap();
    let app = routes().layer(keyward.layer().optional());
    let anonymous = send(&app, get_with("/echo", &[])).await;
    assert_eq!(anonymous.status, 200);
    assert!(anonymous.json["key_id"].is_null());
    // A handler that needs a principal answers 401 with the realm.
    let reply = send(&app, get_with("/principal", &[])).await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "missing_credential");
    assert_eq!(reply.challenge(), Some("Bearer realm=\"books\""));
    // A session-style Authorization scheme is not ours and passes.
    let basic = send(&app, get_with("/echo", &[("authorization", "Basic dTpw")])).await;
    assert_eq!(basic.status, 200);
    let bad = send(&app, bearer("/echo", "nonsense")).await;
    assert_problem(&bad, StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn extractor_without_layer_is_500_naming_the_layer() {
    let reply = send(&routes(), get_with("/principal", &[])).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.text.contains("keyward layer"), "{}", reply.text);
    let mut request = get_with("/write", &[]);
    *request.method_mut() = http::Method::POST;
    let reply = send(&routes(), request).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn the_response_hook_customises_refusals() {
    use axum::response::IntoResponse;
    let clock = ManualClock::new(t0());
    let keyward = builder(MemoryStore::new(), &clock)
        .realm("Books API")
        .error_response(|error, problem| {
            let reason =
                error.map_or_else(|| "the application's own".to_owned(), ToString::to_string);
            problem.member("reason", reason).into_response()
        })
        .build()
        .unwrap();
    let reply = send(&app(&keyward), get_with("/echo", &[])).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.challenge(), Some("Bearer realm=\"Books API\""));
    assert_eq!(reply.json["reason"], "no API key was presented");

    // A problem a handler returns goes through the same hook, once.
    let (_, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    let handler_problem = || async {
        keyward::Problem::new(http::StatusCode::CONFLICT, "book_taken").detail("that ISBN exists")
    };
    let routes = axum::Router::new()
        .route("/conflict", axum::routing::get(handler_problem))
        .layer(keyward.layer());
    let reply = send(&routes, bearer("/conflict", &token)).await;
    assert_eq!(reply.status, 409);
    assert_eq!(reply.error(), "book_taken");
    assert_eq!(reply.json["reason"], "the application's own");
}
