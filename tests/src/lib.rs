//! Shared helpers for keyward's cross-crate integration tests: a small HTTP client that keeps
//! a session cookie, and fresh databases for the reference app.

use std::net::SocketAddr;

pub mod fault;
pub use fault::{FaultMode, FaultProxy};

/// The README's Rust examples, compiled and run as doctests so they cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
use std::path::PathBuf;

use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Value::Null` when empty or not JSON).
    pub json: Value,
}

impl Reply {
    /// A header as a string, or `""`.
    #[must_use]
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// An HTTP/1 client for one server, remembering the session cookie it was given.
#[derive(Debug, Clone)]
pub struct Http {
    addr: SocketAddr,
    client: Client<HttpConnector, Body>,
    cookie: Option<String>,
}

impl Http {
    /// A client for the server at `addr`.
    #[must_use]
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            cookie: None,
        }
    }

    /// Sends a request; `headers` are extra headers, `body` is sent as JSON when present.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached: a test failure.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .client
            .request(request.body(body).expect("valid request"))
            .await
            .expect("the server answers");
        let (parts, body) = response.into_parts();
        if let Some(set) = parts
            .headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
        {
            let pair = set.split(';').next().unwrap_or_default().to_owned();
            // An expired cookie (logout) clears the session.
            self.cookie = (!set.contains("Max-Age=0")).then_some(pair);
        }
        let bytes = body.collect().await.expect("the body arrives").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// `GET path` with extra headers.
    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, headers, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&mut self, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
        self.send(Method::POST, path, headers, Some(body)).await
    }
}

/// A database for one test run of the reference app.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL to hand to the app.
    pub url: String,
    dir: Option<PathBuf>,
    /// The server URL and database name of a PostgreSQL test database.
    postgres: Option<(String, String)>,
    /// The server URL and database name of a MariaDB/MySQL test database.
    mysql: Option<(String, String)>,
}

impl TestDatabase {
    /// A fresh SQLite file in its own directory.
    ///
    /// # Panics
    ///
    /// When the temporary directory cannot be created.
    #[must_use]
    pub fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("keyward-books-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        Self {
            url: format!("sqlite://{}?mode=rwc", dir.join("books.db").display()),
            dir: Some(dir),
            postgres: None,
            mysql: None,
        }
    }

    /// A fresh PostgreSQL database on the server of `KEYWARD_TEST_POSTGRES_URL`; `None` (after
    /// saying so) when the variable is unset.
    ///
    /// # Panics
    ///
    /// When the variable is set but the server cannot be used: the backend must be tested.
    pub async fn postgres() -> Option<Self> {
        let (url, created) = Self::on_server("KEYWARD_TEST_POSTGRES_URL", "books").await?;
        Some(Self {
            url,
            dir: None,
            postgres: Some(created),
            mysql: None,
        })
    }

    /// A fresh MariaDB/MySQL database on the server of `KEYWARD_TEST_MYSQL_URL`; `None` (after
    /// saying so) when the variable is unset.
    ///
    /// # Panics
    ///
    /// When the variable is set but the server cannot be used: the backend must be tested.
    pub async fn mysql() -> Option<Self> {
        let (url, created) = Self::on_server("KEYWARD_TEST_MYSQL_URL", "keyward").await?;
        Some(Self {
            url,
            dir: None,
            postgres: None,
            mysql: Some(created),
        })
    }

    /// Creates a uniquely named database on the server in the URL of `variable`: its URL, and
    /// the server URL and name for [`cleanup`](Self::cleanup).
    async fn on_server(variable: &str, stem: &str) -> Option<(String, (String, String))> {
        let Ok(base) = std::env::var(variable) else {
            eprintln!("skipped: {variable} is not set");
            return None;
        };
        let name = format!("{stem}_{}", uuid::Uuid::now_v7().simple());
        let admin = Database::connect(base.as_str())
            .await
            .unwrap_or_else(|err| {
                panic!("{variable} is set, so its server must be reachable: {err}")
            });
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        admin.close().await.ok();
        let (server, _) = base.rsplit_once('/').expect("a URL with a database name");
        Some((format!("{server}/{name}"), (base, name)))
    }

    /// Drops a PostgreSQL or MariaDB/MySQL test database (SQLite directories go on drop).
    pub async fn cleanup(&self) {
        if let Some((base, name)) = &self.mysql {
            if let Ok(admin) = Database::connect(base.as_str()).await {
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
                    .await;
                admin.close().await.ok();
            }
        }
        if let Some((base, name)) = &self.postgres {
            if let Ok(admin) = Database::connect(base.as_str()).await {
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                admin.close().await.ok();
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
