//! The reference app for keyward's cross-crate tests: started on a test database with known
//! passwords, and signed in to. The other helpers (HTTP client, test databases, fault proxy)
//! come from `keyward-test-support`.

use std::net::SocketAddr;

use keyward_examples::books::{self, Config, Running};
use keyward_test_support::Http;
use serde_json::json;

/// The README's Rust examples, compiled and run as doctests so they cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The password of the app's `admin` user.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
/// The password of the app's `reader` user.
pub const READER_PASSWORD: &str = "reader-password-for-tests";

/// The app's configuration on the database at `url`, on any free local port, with the
/// users' passwords above.
#[must_use]
pub fn config(url: &str) -> Config {
    let mut config = Config::new(url);
    config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.reader_password = Some(READER_PASSWORD.into());
    config
}

/// The app on the database at `url` ([`config`]).
///
/// # Panics
///
/// When the app does not start.
pub async fn start(url: &str) -> Running {
    books::start(config(url)).await.expect("the app starts")
}

/// A client signed in as `username`, and the user's id.
///
/// # Panics
///
/// When the app refuses the login.
pub async fn sign_in(app: &Running, username: &str, password: &str) -> (Http, String) {
    sign_in_at(app.addr, username, password).await
}

/// A client signed in as `username` on the app at `addr` (another process, say), and the
/// user's id.
///
/// # Panics
///
/// When the app refuses the login.
pub async fn sign_in_at(addr: SocketAddr, username: &str, password: &str) -> (Http, String) {
    let mut http = Http::new(addr);
    let reply = http
        .post(
            "/login",
            &[],
            &json!({ "username": username, "password": password }),
        )
        .await;
    assert_eq!(reply.status, 200, "login {username}: {:?}", reply.json);
    let id = reply.json["id"].as_str().expect("the user's id").to_owned();
    (http, id)
}

/// A client signed in as `username`.
///
/// # Panics
///
/// When the app refuses the login.
pub async fn login(app: &Running, username: &str, password: &str) -> Http {
    sign_in(app, username, password).await.0
}
