//! `?api_key=` leaves no trace: not in a log line at TRACE level (tower-http's trace layer
//! wrapping the whole app, as the README recommends), not in anything a handler can read, not
//! in a response.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::OnceLock;

use axum::extract::{NestedPath, OriginalUri, Query, RawQuery, Request};
use axum::routing::get;
use axum::{Json, Router};
use common::*;
use http::Uri;
use keyward::{CredentialSource, Keyward, ManualClock, MemoryStore, NewKey, Principal};
use keyward_test_support::{Logs, TestServer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Every log line of this test binary, from every thread, at TRACE level.
fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        tracing::subscriber::set_global_default(logs.subscriber(Level::TRACE)).unwrap();
        logs
    })
}

async fn keys() -> (Keyward, String) {
    let clock = ManualClock::new(t0());
    let keys = builder(MemoryStore::new(), &clock)
        .sources([
            CredentialSource::bearer(),
            CredentialSource::query("api_key"),
        ])
        .build()
        .unwrap();
    let (_, token) = issue(&keys, NewKey::service("ci").scopes(["books:read"])).await;
    (keys, token)
}

/// Everything a handler can read that holds a URI or a credential.
async fn show(
    uri: Uri,
    OriginalUri(original): OriginalUri,
    nested: Result<NestedPath, axum::extract::rejection::NestedPathRejection>,
    RawQuery(raw_query): RawQuery,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> Json<serde_json::Value> {
    let headers: Vec<String> = req
        .headers()
        .iter()
        .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(value.as_bytes())))
        .collect();
    Json(serde_json::json!({
        "uri": uri.to_string(),
        "original_uri": original.to_string(),
        "request_uri": req.uri().to_string(),
        "nested_path": nested.ok().map(|n| n.as_str().to_owned()),
        "raw_query": raw_query,
        "query": query,
        "extension_original_uri": req.extensions().get::<OriginalUri>().map(|u| u.0.to_string()),
        "headers": headers,
        "request": format!("{req:?}"),
        "key_id": Principal::from_extensions(req.extensions())
            .and_then(Principal::key_id)
            .map(|id| id.to_string()),
    }))
}

/// `/api/v1/books` in a nested router, keyward's layer, tower-http's trace layer printing
/// everything it can (headers included) at TRACE, and the credential-hiding layer outermost:
/// the README's order.
fn traced_app(keys: &Keyward) -> Router {
    Router::new()
        .nest("/api/v1", Router::new().route("/books", get(show)))
        .layer(keys.layer())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(
                    DefaultMakeSpan::new()
                        .level(Level::TRACE)
                        .include_headers(true),
                )
                .on_request(DefaultOnRequest::new().level(Level::TRACE))
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::TRACE)
                        .include_headers(true),
                ),
        )
        .layer(keys.hide_credentials_layer())
}

/// Sends `request` (raw HTTP/1.1) to a real server running `app` and returns the raw
/// response, status line, headers and body.
async fn exchange(app: Router, requests: Vec<String>) -> Vec<String> {
    let server = TestServer::start(app).await;
    let addr = server.addr();
    let replies = tokio::task::spawn_blocking(move || {
        requests
            .into_iter()
            .map(|request| {
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                stream.write_all(request.as_bytes()).unwrap();
                let mut reply = Vec::new();
                stream.read_to_end(&mut reply).unwrap();
                String::from_utf8_lossy(&reply).into_owned()
            })
            .collect()
    })
    .await
    .unwrap();
    drop(server);
    replies
}

fn http_get(target: &str, headers: &[(&str, &str)]) -> String {
    let mut request = format!("GET {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request
}

fn body(reply: &str) -> serde_json::Value {
    let (_, body) = reply.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {reply}"))
}

fn secret(token: &str) -> &str {
    &token[token.find('_').unwrap() + 1..]
}

#[tokio::test]
async fn with_the_outer_layer_no_log_line_extension_or_response_holds_the_token() {
    let logs = logs();
    let (keys, token) = keys().await;
    let unknown = keys.token_format().generate();
    let unknown = unknown.expose_secret().to_owned();
    let mut malformed = token.clone();
    malformed.truncate(token.len() - 1);
    let replies = exchange(
        traced_app(&keys),
        vec![
            http_get(&format!("/api/v1/books?page=2&api_key={token}&q=x"), &[]),
            http_get(&format!("/api/v1/books?api_key={token}"), &[]),
            http_get(
                &format!("/api/v1/books?api_key={token}"),
                &[("authorization", &format!("Bearer {token}"))],
            ),
            http_get(&format!("/api/v1/books?api%5Fkey={token}"), &[]),
            http_get(&format!("/api/v1/books?api_key={unknown}"), &[]),
            http_get(&format!("/api/v1/books?api_key={malformed}"), &[]),
            http_get(
                &format!("/api/v1/books?api_key={unknown}&api_key={token}"),
                &[],
            ),
            http_get(&format!("/nowhere?api_key={token}"), &[]),
        ],
    )
    .await;

    for reply in &replies[..4] {
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
    let seen = body(&replies[0]);
    assert_eq!(seen["uri"], "/books?page=2&q=x");
    assert_eq!(seen["request_uri"], "/books?page=2&q=x");
    assert_eq!(seen["original_uri"], "/api/v1/books?page=2&q=x");
    assert_eq!(seen["extension_original_uri"], "/api/v1/books?page=2&q=x");
    assert_eq!(seen["nested_path"], "/api/v1");
    assert_eq!(seen["raw_query"], "page=2&q=x");
    assert_eq!(seen["query"], serde_json::json!({"page": "2", "q": "x"}));
    assert!(seen["key_id"].is_string());
    let seen = body(&replies[2]);
    assert_eq!(seen["original_uri"], "/api/v1/books");
    assert!(
        seen["headers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| !h.as_str().unwrap().starts_with("authorization")),
        "{seen}"
    );
    for reply in &replies[4..6] {
        assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    }
    assert!(replies[6].starts_with("HTTP/1.1 400"), "{}", replies[6]);
    assert!(replies[7].starts_with("HTTP/1.1 404"), "{}", replies[7]);

    for reply in &replies {
        for secret in [secret(&token), secret(&unknown), secret(&malformed)] {
            assert!(
                !reply.contains(secret),
                "a response holds the token: {reply}"
            );
        }
    }

    let logs = logs.text();
    assert!(
        logs.contains("/api/v1/books?page=2&q=x"),
        "the trace layer must log the URI:\n{logs}"
    );
    assert!(logs.contains("keyward.verify"), "{logs}");
    assert!(
        logs.contains("\"authorization\": Sensitive"),
        "the Authorization header is printed redacted:\n{logs}"
    );
    for line in logs.lines() {
        for secret in [secret(&token), secret(&unknown), secret(&malformed)] {
            assert!(!line.contains(secret), "a log line holds the token: {line}");
        }
    }
}

#[tokio::test]
async fn without_the_outer_layer_handlers_still_see_clean_uris() {
    let (keys, token) = keys().await;
    let app = Router::new()
        .nest("/api/v1", Router::new().route("/books", get(show)))
        .layer(keys.layer());
    let reply = send(
        &app,
        get_with(&format!("/api/v1/books?page=2&api_key={token}&q=x"), &[]),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["uri"], "/books?page=2&q=x");
    assert_eq!(reply.json["original_uri"], "/api/v1/books?page=2&q=x");
    assert_eq!(reply.json["raw_query"], "page=2&q=x");
    assert!(!reply.text.contains(secret(&token)), "{}", reply.text);

    // keyward's layer on the nested router only: the outer router set `OriginalUri` long
    // before, and it is cleaned all the same.
    let app = Router::new().nest(
        "/api/v1",
        Router::new().route("/books", get(show)).layer(keys.layer()),
    );
    let reply = send(
        &app,
        get_with(&format!("/api/v1/books?api_key={token}"), &[]),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["original_uri"], "/api/v1/books");
    assert!(!reply.text.contains(secret(&token)), "{}", reply.text);
}

#[tokio::test]
async fn the_outer_layer_alone_keeps_the_token_from_routes_without_keyward() {
    let (keys, token) = keys().await;
    let app = Router::new()
        .route("/public", get(show))
        .layer(keys.hide_credentials_layer());
    let reply = send(&app, get_with(&format!("/public?api_key={token}&a=1"), &[])).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["uri"], "/public?a=1");
    assert_eq!(reply.json["original_uri"], "/public?a=1");
    assert!(reply.json["key_id"].is_null());
    assert!(!reply.text.contains(secret(&token)), "{}", reply.text);
}

#[tokio::test]
async fn with_the_outer_layer_the_query_source_works_in_optional_mode() {
    let (keys, token) = keys().await;
    let app = Router::new()
        .route("/books", get(show))
        .layer(keys.layer().optional())
        .layer(keys.hide_credentials_layer());
    let reply = send(&app, get_with(&format!("/books?api_key={token}"), &[])).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json["key_id"].is_string(), "{}", reply.text);
    let reply = send(&app, get_with("/books?api_key=", &[])).await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(reply.error(), "invalid_token");
    let reply = send(&app, get_with("/books", &[])).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json["key_id"].is_null());
}
