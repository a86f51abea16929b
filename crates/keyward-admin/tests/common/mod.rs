//! Shared set-up of the admin router tests: a `Keyward` over a `MemoryStore`, the router
//! mounted at `/admin`, and a request helper.

#![allow(dead_code, unreachable_pub)]

use axum::Router;
use axum::body::Body;
use chrono::{DateTime, Utc};
use http::{Method, Request};
use keyward::{
    Expiry, KeyId, Keyward, KeywardBuilder, ManualClock, MemoryStore, NewKey, ScopeCatalog,
};
pub use keyward_test_support::Reply;
use keyward_test_support::{issue, request, send};
use serde_json::Value;

pub const MOUNT: &str = "/admin";

pub fn catalog() -> ScopeCatalog {
    ScopeCatalog::builder()
        .scope("books:read", "Read the book collection")
        .scope("books:write", "Add and change books")
        .scope("reviews:read", "Read reviews")
        .implies("books:write", "books:read")
        .build()
        .expect("valid catalog")
}

pub fn start() -> DateTime<Utc> {
    "2026-05-01T10:00:00Z".parse().expect("valid time")
}

/// The application under test.
#[derive(Clone)]
pub struct TestApp {
    pub keys: Keyward,
    pub clock: ManualClock,
    /// The store behind `keys`, to plant records no route would create.
    pub store: MemoryStore,
    pub router: Router,
}

impl TestApp {
    pub fn new() -> Self {
        Self::with(|builder| builder)
    }

    /// The application with more configuration, e.g. the application's callers.
    pub fn with(configure: impl FnOnce(KeywardBuilder) -> KeywardBuilder) -> Self {
        let clock = ManualClock::new(start());
        let store = MemoryStore::new();
        let builder = Keyward::builder(store.clone())
            .prefix("books")
            .catalog(catalog())
            .clock(clock.clone());
        let keys = configure(builder).build().expect("valid configuration");
        let router = Router::new()
            .nest(MOUNT, keyward_admin::router())
            .layer(keys.layer().optional())
            .with_state(keys.clone());
        Self {
            keys,
            clock,
            store,
            router,
        }
    }

    /// A personal key of `owner` with `scopes` that never expires, to act in tests of what
    /// keys can be created: a key that expires bounds the expiry of the keys it creates.
    pub async fn manager(&self, owner: &str, scopes: &[&str]) -> Minted {
        self.mint(
            NewKey::personal(format!("{owner}'s key"), owner)
                .scopes(scopes.iter().copied())
                .expiry(Expiry::Never),
        )
        .await
    }

    /// A personal key of `owner` with `scopes`, expiring in 30 days.
    pub async fn personal(&self, owner: &str, scopes: &[&str]) -> Minted {
        self.mint(
            NewKey::personal(format!("{owner}'s key"), owner)
                .scopes(scopes.iter().copied())
                .expiry(Expiry::InDays(30)),
        )
        .await
    }

    /// A service key with `scopes`, expiring in 30 days.
    pub async fn service(&self, scopes: &[&str]) -> Minted {
        self.mint(
            NewKey::service("service key")
                .scopes(scopes.iter().copied())
                .expiry(Expiry::InDays(30)),
        )
        .await
    }

    pub async fn mint(&self, new: NewKey) -> Minted {
        let (id, token) = issue(&self.keys, new).await;
        Minted { id, token }
    }

    pub async fn call(&self, request: Request<Body>) -> Reply {
        send(&self.router, request).await
    }

    /// `method` on `path` (relative to the mount point) as `token`, with an optional JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let authorization = token.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|value| ("authorization", value.as_str()))
            .collect();
        self.send_with(method, path, &headers, body).await
    }

    /// `method` on `path` (relative to the mount point) with `headers`, with an optional JSON
    /// body.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let path = format!("{MOUNT}{path}");
        self.call(request(method, &path, headers, body.as_ref()))
            .await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(token), Some(body)).await
    }
}

#[derive(Debug, Clone)]
pub struct Minted {
    pub id: KeyId,
    pub token: String,
}
