//! API keys for axum and tower applications: one layer verifies `Authorization: Bearer`,
//! `X-Api-Key` or `?api_key=` credentials, handlers receive a typed [`Principal`], and routes
//! are guarded by scope.
//!
//! # Quick start
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use keyward::{
//!     Keyward, MemoryStore, NewKey, Principal, RequireScope, ScopeCatalog, require_scopes,
//!     scopes,
//! };
//!
//! scopes! {
//!     /// Read the book collection.
//!     pub BooksRead = "books:read";
//! }
//!
//! async fn list_books(_: RequireScope<BooksRead>) -> Json<Vec<&'static str>> {
//!     Json(vec!["Dune", "Emma"])
//! }
//!
//! async fn add_book(principal: Principal) -> String {
//!     format!("added by {}", principal.name())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let catalog = ScopeCatalog::builder()
//!     .scope("books:read", "Read the book collection")
//!     .scope("books:write", "Add and change books")
//!     .implies("books:write", "books:read")
//!     .build()?;
//! let keyward = Keyward::builder(MemoryStore::new()) // keyward-sea-orm for a database
//!     .prefix("books")
//!     .catalog(catalog)
//!     .build()?;
//!
//! let app = Router::new()
//!     .route("/books", get(list_books).post(add_book).route_layer(require_scopes(["books:write"])))
//!     .layer(keyward.layer());
//!
//! // A person creates a key in the settings page (or with the admin router); the token is
//! // shown once.
//! let issued = keyward
//!     .create(NewKey::personal("Backup Script", "alice").scopes(["books:write"]))
//!     .await?;
//! # use tower::ServiceExt;
//! # let request = http::Request::get("/books")
//! #     .header("authorization", format!("Bearer {}", issued.token.expose_secret()))
//! #     .body(axum::body::Body::empty())?;
//! # let response = app.clone().oneshot(request).await?;
//! # assert_eq!(response.status(), 200);
//! # let request = http::Request::get("/books").body(axum::body::Body::empty())?;
//! # assert_eq!(app.clone().oneshot(request).await?.status(), 401);
//!
//! // Serve it (with the peer address, for IP allow-lists), then write the last usage counts.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = axum::serve(
//!     listener,
//!     app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
//! )
//! .with_graceful_shutdown(async { /* tokio::signal::ctrl_c().await.ok(); */ });
//! server.await?;
//! keyward.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # What happens to a request
//!
//! The layer finds the credential in the configured [sources](CredentialSource) (two
//! different ones are 400), checks its shape and check digits (garbage is refused before any
//! cache or store access), hashes it, looks the digest up in the cache and, on a miss, in the
//! store, evaluates the key's policy (revoked, disabled, expired, IP allow-list) on every
//! request, bounds a personal key by its owner's grants through the application's [`Callers`], applies
//! the key's rate limit, counts the use in memory, and hands the request to the inner service
//! with the [`Principal`] and [`ClientIp`] in its extensions and the credential removed.
//! Refusals follow RFC 6750 (`WWW-Authenticate`) and RFC 9457 ([`Problem`]); a failing store
//! or user lookup is 503, never 401 or 403.
//!
//! A miss is bounded: concurrent misses on one token share one lookup, at most a few lookups
//! run at once ([`Bulkhead`]), each within a deadline
//! ([`store_timeout`](KeywardBuilder::store_timeout)), and a store that keeps failing is not
//! asked at all for a while ([`CircuitBreaker`]); the answer is then 503 with `Retry-After`.
//! A client that keeps presenting unknown, revoked or expired tokens spends its
//! [`FailureBudget`] and is answered 429 without any store work. Each verification is a `keyward.verify` tracing span
//! with the key id and outcome; no log line contains a token. Counters and histograms of all
//! of it go to the application's [`metrics`](https://docs.rs/metrics) recorder: see
//! [`metrics`](mod@crate::metrics) for the list, and install the recorder before building the
//! handle.
//!
//! # Several instances
//!
//! Verified keys are cached (see [`CacheConfig`]). A change made through the handle drops its
//! own entries at once. Changes made by other instances or by the `keyward` command line are
//! read from the store's change log: every change appends a row in its own transaction, and
//! a background task reads the rows after its last position every
//! [`change_poll_interval`](KeywardBuilder::change_poll_interval) (default
//! [`DEFAULT_CHANGE_POLL_INTERVAL`], 500 ms) with one indexed query, and drops the changed keys.
//! So a revoke anywhere is refused everywhere within about half a second, on every database
//! store. After an outage the task catches up from where it stopped instead of dropping the
//! whole cache. PostgreSQL's `LISTEN/NOTIFY` feed (and a shared [`ChangeFeed`]) only make it
//! immediate.

mod acting;
mod budget;
mod cache;
mod callers;
mod changes;
mod circuit;
mod config;
mod extract;
mod feed;
mod guard;
mod handle;
mod hide;
mod hot;
mod ip;
mod json;
mod layer;
mod lookup;
mod manage;
pub mod metrics;
mod notices;
mod outage;
mod presence;
mod principal;
mod problem;
mod query;
mod rate;
mod refused;
mod rejection;
mod source;
mod store;
mod usage;
mod verify;

pub use acting::Acting;
pub use budget::{FailureBudget, LocalFailureBudget};
pub use cache::CacheConfig;
pub use callers::{CallerError, Callers, User};
pub use changes::DEFAULT_CHANGE_POLL_INTERVAL;
pub use circuit::CircuitBreaker;
pub use config::{
    ConfigError, DEFAULT_STORE_TIMEOUT, DEFAULT_USAGE_FLUSH_INTERVAL, KeywardBuilder,
};
pub use extract::{AuthRejection, RequireScope};
pub use feed::ChangeFeed;
pub use guard::{GuardFuture, RequireScopes, RequireScopesLayer, require_scopes};
pub use handle::Keyward;
pub use hide::{HideCredentials, HideCredentialsLayer};
pub use ip::ClientIp;
pub use json::{Json, JsonRejection};
pub use layer::{KeywardLayer, KeywardService, ResponseFuture};
pub use lookup::Bulkhead;
pub use manage::{ManageError, ManageErrorKind};
pub use notices::{DEFAULT_EXPIRY_NOTICE_WINDOW, EXPIRY_SWEEP_INTERVAL};
pub use principal::{Caller, Principal};
pub use problem::{PROBLEM_JSON, Problem};
pub use rate::{LocalRateLimiter, RateDecision, RateLimiter};
pub use rejection::{AuthError, InvalidToken};
pub use source::CredentialSource;

/// The core crate: token format, scopes, key records, policy and the store trait.
pub use keyward_core as core;
pub use keyward_core::{
    Actor, AppSettings, ChangeKind, ChangeRecord, Clock, DailyUsage, EventContext, EventPage,
    EventQuery, Expiry, GracePeriod, IssuedKey, KeyChange, KeyChanges, KeyId, KeyKind, KeyRecord,
    KeyStore, KeyView, Leak, ListCursor, ListQuery, ManualClock, MemoryStore, NewKey, Page, Scope,
    ScopeCatalog, ScopeSet, StoreError, StoreErrorKind, SystemClock, Token, TokenFormat,
    TypedScope, ValidationError, scopes,
};
