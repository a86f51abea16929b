//! Shared set-up of the admin router tests: a `Keyward` over a `MemoryStore`, the router
//! mounted at `/admin`, and a request helper.

#![allow(dead_code, unreachable_pub)]

use axum::Router;
use axum::body::Body;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use keyward::{Expiry, KeyId, Keyward, ManualClock, MemoryStore, NewKey, ScopeCatalog};
use serde_json::Value;
use tower::ServiceExt;

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
        let clock = ManualClock::new(start());
        let store = MemoryStore::new();
        let keys = Keyward::builder(store.clone())
            .prefix("books")
            .catalog(catalog())
            .clock(clock.clone())
            .build()
            .expect("valid configuration");
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

    /// A personal key of `owner` with `scopes`, never expiring unless `expiry` says so.
    pub async fn personal(&self, owner: &str, scopes: &[&str]) -> Minted {
        self.mint(
            NewKey::personal(format!("{owner}'s key"), owner)
                .scopes(scopes.iter().copied())
                .expiry(Expiry::InDays(30)),
        )
        .await
    }

    /// A service key with `scopes`.
    pub async fn service(&self, scopes: &[&str]) -> Minted {
        self.mint(
            NewKey::service("service key")
                .scopes(scopes.iter().copied())
                .expiry(Expiry::InDays(30)),
        )
        .await
    }

    pub async fn mint(&self, new: NewKey) -> Minted {
        let issued = self.keys.create(new).await.expect("key created");
        Minted {
            id: issued.record.id,
            token: issued.token.expose_secret().to_owned(),
        }
    }

    pub async fn call(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
            text,
        }
    }

    /// `method` on `path` (relative to the mount point) as `token`, with an optional JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{MOUNT}{path}"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("valid request");
        self.call(request).await
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

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Reply {
    /// Asserts the status, and for errors the problem+json shape; returns self.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        if status >= 400 {
            assert_eq!(
                self.headers["content-type"], "application/problem+json",
                "errors are problem+json; body: {}",
                self.text
            );
            assert_eq!(self.json["status"], status, "body: {}", self.text);
            assert!(self.json["error"].is_string(), "body: {}", self.text);
        }
        self
    }

    /// The `field` a 422 names.
    pub fn field(&self) -> &str {
        self.json["field"].as_str().unwrap_or_default()
    }

    /// The `error` code of a problem.
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or_default()
    }
}
