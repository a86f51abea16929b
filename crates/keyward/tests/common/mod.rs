//! Shared test fixtures: a counting (and failable) store, an echo app, request helpers.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{any, get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use keyward::core::UsageUpdate;
use keyward::core::store::ChangeStream;
use keyward::core::{KeyUpdate, SecretRotation, TokenDigest};
use keyward::{
    ClientIp, KeyId, KeyRecord, KeyStore, Keyward, KeywardBuilder, ListQuery, ManualClock,
    MemoryStore, NewKey, Page, Principal, RequireScope, ScopeCatalog, StoreError, require_scopes,
    scopes,
};
use tower::ServiceExt;

scopes! {
    /// Change books.
    pub BooksWrite = "books:write";
}

/// Counts every store call and can be told to fail, to stall (never answer) or to answer
/// lookups slowly.
#[derive(Debug, Clone, Default)]
pub struct CountingStore {
    pub inner: MemoryStore,
    pub counts: Arc<Counts>,
    pub failing: Arc<AtomicBool>,
    pub stalled: Arc<AtomicBool>,
    pub find_delay_ms: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub find: AtomicUsize,
    pub record_usage: AtomicUsize,
    pub writes: AtomicUsize,
    pub reads: AtomicUsize,
}

impl Counts {
    pub fn find(&self) -> usize {
        self.find.load(Ordering::SeqCst)
    }
    pub fn usage_writes(&self) -> usize {
        self.record_usage.load(Ordering::SeqCst)
    }
    /// Every call of any method.
    pub fn total(&self) -> usize {
        self.find()
            + self.usage_writes()
            + self.writes.load(Ordering::SeqCst)
            + self.reads.load(Ordering::SeqCst)
    }
}

impl CountingStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Every call from now on waits until [`unstall`](Self::unstall) (a store that accepts
    /// connections and never answers).
    pub fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }

    /// Lookups take `delay` before answering.
    pub fn delay_finds(&self, delay: Duration) {
        self.find_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    async fn wait(&self) {
        while self.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::unavailable(std::io::Error::other(
                "connection refused",
            )))
        } else {
            Ok(())
        }
    }
}

impl KeyStore for CountingStore {
    async fn insert(&self, record: KeyRecord) -> Result<(), StoreError> {
        self.counts.writes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.insert(record).await
    }

    async fn find_by_digest(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.counts.find.fetch_add(1, Ordering::SeqCst);
        self.wait().await;
        let delay = self.find_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.check()?;
        self.inner.find_by_digest(digest, now).await
    }

    async fn get(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.counts.reads.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.get(id).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.counts.reads.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.list(query).await
    }

    async fn update(
        &self,
        id: KeyId,
        update: &KeyUpdate,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord, StoreError> {
        self.counts.writes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.update(id, update, now).await
    }

    async fn revoke(&self, id: KeyId, now: DateTime<Utc>) -> Result<KeyRecord, StoreError> {
        self.counts.writes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.revoke(id, now).await
    }

    async fn delete(&self, id: KeyId) -> Result<(), StoreError> {
        self.counts.writes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.delete(id).await
    }

    async fn replace_secret(
        &self,
        id: KeyId,
        rotation: &SecretRotation,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord, StoreError> {
        self.counts.writes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.replace_secret(id, rotation, now).await
    }

    async fn refresh(&self, id: KeyId, now: DateTime<Utc>) -> Result<KeyRecord, StoreError> {
        self.counts.writes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.refresh(id, now).await
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        self.counts.record_usage.fetch_add(1, Ordering::SeqCst);
        self.wait().await;
        self.check()?;
        self.inner.record_usage(batch).await
    }

    fn changes(&self) -> Option<ChangeStream> {
        self.inner.changes()
    }
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
    ip: Option<Extension<ClientIp>>,
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
        "key_id": principal.as_ref().map(|p| p.key_id().to_string()),
        "scopes": principal.as_ref().map(|p| p.scopes().to_strings()),
        "client_ip": ip.map(|Extension(ClientIp(ip))| ip.to_string()),
    }))
}

async fn typed_write(auth: RequireScope<BooksWrite>) -> String {
    auth.key_id().to_string()
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
            get(|p: Principal| async move { p.key_id().to_string() }),
        )
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    pub raw: String,
}

impl Reply {
    pub fn challenge(&self) -> Option<&str> {
        self.headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap())
    }

    pub fn error(&self) -> Option<&str> {
        self.body.get("error").and_then(|e| e.as_str())
    }
}

pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Reply {
        status,
        headers,
        body,
        raw,
    }
}

pub fn get_with(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

pub fn bearer(uri: &str, token: &str) -> Request<Body> {
    get_with(uri, &[("authorization", &format!("Bearer {token}"))])
}

pub fn with_peer(mut request: Request<Body>, peer: &str) -> Request<Body> {
    request
        .extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    request
}

/// Creates a key through the handle and returns its id and token.
pub async fn issue(keyward: &Keyward, new: NewKey) -> (KeyId, String) {
    let issued = keyward.create(new).await.unwrap();
    (issued.record.id, issued.token.expose_secret().to_owned())
}
