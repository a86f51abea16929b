//! What this crate's tests share: the catalog, a builder with a manual clock, and an app that
//! echoes what its handlers saw. The helpers every crate's tests use (the spy store,
//! requests and replies) come from `keyward-test-support`, re-exported here.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::collections::BTreeMap;

use axum::body::Body;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use http::Request;
use keyward::{
    ClientIp, KeyStore, Keyward, KeywardBuilder, ManualClock, Principal, RequireScope,
    ScopeCatalog, require_scopes, scopes,
};
pub use keyward_test_support::{
    CountingStore, Reply, bearer, get_with, issue, request, send, with_peer,
};

scopes! {
    /// Change books.
    pub BooksWrite = "books:write";
}

pub fn t0() -> DateTime<Utc> {
    "2026-05-01T12:00:00Z".parse().unwrap()
}

pub fn catalog() -> ScopeCatalog {
    ScopeCatalog::builder()
        .scope("books:read", "Read books")
        .scope("books:write", "Change books")
        .implies("books:write", "books:read")
        .build()
        .unwrap()
}

/// A builder on `store` with the test catalog and a manual clock at [`t0`].
pub fn builder(store: impl KeyStore, clock: &ManualClock) -> KeywardBuilder {
    Keyward::builder(store)
        .prefix("books")
        .catalog(catalog())
        .clock(clock.clone())
}

/// Echoes what the inner service saw: headers, URI, principal, client IP.
async fn echo(
    principal: Option<Principal>,
    ip: Option<ClientIp>,
    req: Request<Body>,
) -> Json<serde_json::Value> {
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    Json(serde_json::json!({
        "uri": req.uri().to_string(),
        "headers": headers,
        "key_id": principal.as_ref().and_then(Principal::key_id).map(|id| id.to_string()),
        "scopes": principal.as_ref().map(|p| p.scopes().to_strings()),
        "client_ip": ip.map(|ClientIp(ip)| ip.to_string()),
    }))
}

async fn typed_write(auth: RequireScope<BooksWrite>) -> String {
    describe(&auth)
}

/// The key id of a key's principal, `session:<user>` for a session.
pub fn describe(principal: &Principal) -> String {
    match principal.key_id() {
        Some(id) => id.to_string(),
        None => format!("session:{}", principal.user_id().unwrap_or("-")),
    }
}

/// `/echo` (any key), `/write` (`require_scopes(["books:write"])`), `/typed-write`
/// (`RequireScope<BooksWrite>`), behind the layer.
pub fn app(keyward: &Keyward) -> Router {
    routes().layer(keyward.layer())
}

pub fn routes() -> Router {
    Router::new()
        .route("/echo", any(echo))
        .route(
            "/write",
            post(echo).route_layer(require_scopes(["books:write"])),
        )
        .route("/typed-write", post(typed_write))
        .route(
            "/principal",
            get(|p: Principal| async move { describe(&p) }),
        )
}
