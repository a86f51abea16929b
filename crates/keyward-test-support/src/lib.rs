//! The helpers keyward's test suites share, written once: a spy store, requests and replies
//! (in process or over HTTP/1), a database per test on SQLite, PostgreSQL or MariaDB/MySQL, a
//! TCP fault proxy, log capture, and the workspace's `keyward` command line.
//!
//! Not published: the crates' integration tests, the cross-crate tests and the load
//! benchmark take it as a (dev-)dependency.
//!
//! # Quick start
//!
//! ```
//! use axum::{Router, routing::get};
//! use keyward::{Keyward, NewKey};
//! use keyward_test_support::{CountingStore, bearer, issue, send};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = CountingStore::new();
//! let keyward = Keyward::builder(store.clone()).prefix("books").build().unwrap();
//! let (_, token) = issue(&keyward, NewKey::service("ci").scopes(["*"])).await;
//! let app = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .layer(keyward.layer());
//!
//! assert_eq!(send(&app, bearer("/", &token)).await.status, 200);
//! assert_eq!(store.counts.find(), 1);
//! store.fail(true);
//! keyward.invalidate_all();
//! let reply = send(&app, bearer("/", &token)).await;
//! assert_eq!(reply.status, 503, "a failing store is never a refusal");
//! # }
//! ```

mod cli;
mod database;
mod fault;
mod http;
mod keys;
mod logs;
mod store;

pub use cli::{keyward_binary, run_keyward};
pub use database::{MYSQL_URL, POSTGRES_URL, TempDir, TestDatabase};
pub use fault::{FaultMode, FaultProxy};
pub use http::{Http, Reply, TestServer, bearer, get_with, request, send, with_peer};
pub use keys::issue;
pub use logs::Logs;
pub use store::{CountingStore, Counts};
