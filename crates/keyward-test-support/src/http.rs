//! Requests and replies: building a request, sending it to a router in process or to a real
//! server over HTTP/1, and reading the reply whole.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Value::Null` when empty or not JSON).
    pub json: Value,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// Reads `response` whole.
    ///
    /// # Panics
    ///
    /// When the body fails to arrive: a test failure.
    pub async fn read<B>(response: Response<B>) -> Self
    where
        B: axum::body::HttpBody,
        B::Error: std::fmt::Debug,
    {
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("the body arrives").to_bytes();
        Self {
            status: parts.status,
            headers: parts.headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// A header as a string, or `""`.
    #[must_use]
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The `WWW-Authenticate` challenge, if any.
    #[must_use]
    pub fn challenge(&self) -> Option<&str> {
        self.headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
    }

    /// The `error` code of a problem, or `""`.
    #[must_use]
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or_default()
    }

    /// The `field` a 422 names, or `""`.
    #[must_use]
    pub fn field(&self) -> &str {
        self.json["field"].as_str().unwrap_or_default()
    }

    /// Asserts the status, and for errors the problem+json shape; returns the reply.
    ///
    /// # Panics
    ///
    /// When the status differs, or an error is not problem+json with its status and an
    /// `error` code.
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
                self.header("content-type"),
                "application/problem+json",
                "errors are problem+json; body: {}",
                self.text
            );
            assert_eq!(self.json["status"], status, "body: {}", self.text);
            assert!(self.json["error"].is_string(), "body: {}", self.text);
        }
        self
    }
}

/// A request with extra `headers` and, when given, a JSON body.
///
/// # Panics
///
/// When a header or the URI is not valid: a test failure.
#[must_use]
pub fn request(
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    match body {
        Some(json) => request
            .header("content-type", "application/json")
            .body(Body::from(json.to_string())),
        None => request.body(Body::empty()),
    }
    .expect("a valid request")
}

/// `GET uri` with extra headers.
#[must_use]
pub fn get_with(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    request(Method::GET, uri, headers, None)
}

/// `GET uri` with `Authorization: Bearer <token>`.
#[must_use]
pub fn bearer(uri: &str, token: &str) -> Request<Body> {
    get_with(uri, &[("authorization", &format!("Bearer {token}"))])
}

/// `request` as if it came from `peer` (what `axum::serve` with connect info would add).
///
/// # Panics
///
/// When `peer` is not a socket address.
#[must_use]
pub fn with_peer(mut request: Request<Body>, peer: &str) -> Request<Body> {
    let peer: SocketAddr = peer.parse().expect("a socket address");
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

/// Sends `request` to `app` in process and reads the reply.
///
/// # Example
///
/// ```
/// use axum::{Router, routing::get};
/// use keyward_test_support::{get_with, send};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = Router::new().route("/", get(|| async { "hello" }));
/// let reply = send(&app, get_with("/", &[])).await;
/// assert_eq!(reply.status, 200);
/// assert_eq!(reply.text, "hello");
/// # }
/// ```
///
/// # Panics
///
/// Never for a router (its error type is `Infallible`), but when the body fails to arrive.
pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("infallible");
    Reply::read(response).await
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
        let mut request = request(
            method,
            &format!("http://{}{path}", self.addr),
            headers,
            body,
        );
        if let Some(cookie) = &self.cookie {
            let cookie = cookie.parse().expect("a cookie the server set");
            request.headers_mut().insert("cookie", cookie);
        }
        let response = self
            .client
            .request(request)
            .await
            .expect("the server answers");
        if let Some(set) = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
        {
            let pair = set.split(';').next().unwrap_or_default().to_owned();
            // An expired cookie (logout) clears the session.
            self.cookie = (!set.contains("Max-Age=0")).then_some(pair);
        }
        Reply::read(response).await
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

/// An app served on `127.0.0.1:0` with the clients' addresses, until dropped.
///
/// # Example
///
/// ```
/// use axum::{Router, routing::get};
/// use keyward_test_support::{Http, TestServer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = TestServer::start(Router::new().route("/", get(|| async { "hello" }))).await;
/// let reply = Http::new(server.addr()).get("/", &[]).await;
/// assert_eq!(reply.text, "hello");
/// # }
/// ```
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Serves `app` on a free local port.
    ///
    /// # Panics
    ///
    /// When no local port can be bound.
    pub async fn start(app: Router) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("a free local port");
        let addr = listener.local_addr().expect("a local address");
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("the server runs");
        });
        Self { addr, task }
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
