//! The application the browser tests drive: keys in memory, the application's users and a
//! cookie session (`/login/{user}`, `/logout`), one guarded API route, the admin router and
//! its page; and the keys the walks plant before the page opens.
//!
//! Include it with `#[path = "common/browser_app.rs"] mod browser_app;`.

#![allow(dead_code, unreachable_pub)]

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use chrono::{DateTime, Duration, Utc};
use http::Method;
use http::request::Parts;
use keyward::{
    CallerError, Callers, Expiry, Keyward, MemoryStore, NewKey, Principal, ScopeCatalog, ScopeSet,
    User, require_scopes,
};
use keyward_core::KeyRecord;
use keyward_test_support::{Http, Reply, TestServer};
use serde_json::{Value, json};

/// Where the admin router is mounted.
pub const MOUNT: &str = "/api/v1/tokens";

/// The application's people: a signed cookie stands in for a real session.
#[derive(Clone, Debug)]
pub struct People;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "books_session";

pub fn people() -> Vec<User> {
    let user = |id: &str, name: &str, scopes: &[&str]| {
        User::new(id, name, ScopeSet::parse(scopes.iter().copied()).unwrap())
    };
    vec![
        user("u-admin", "Ada Admin", &["*"]),
        user(
            "u-alice",
            "Alice Liddell",
            &[
                "keys:write",
                "books:read",
                "books:write",
                "reading:read",
                "reviews:read",
            ],
        ),
        user(
            "u-bob",
            "Bob Builder",
            &["keys:write", "books:read", "reviews:read"],
        ),
    ]
}

impl Callers for People {
    async fn session(&self, parts: &Parts) -> Result<Option<User>, CallerError> {
        let cookies = parts
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|c| c.to_str().ok());
        for header in cookies {
            for pair in header.split(';') {
                if let Some(id) = pair.trim().strip_prefix(&format!("{SESSION_COOKIE}=")) {
                    return Ok(people().into_iter().find(|u| u.id == id));
                }
            }
        }
        Ok(None)
    }

    async fn user(&self, id: &str) -> Result<Option<User>, CallerError> {
        Ok(people().into_iter().find(|u| u.id == id))
    }

    async fn users(&self) -> Result<Option<Vec<User>>, CallerError> {
        Ok(Some(people()))
    }
}

/// [`People`] in an application that knows its users one at a time but does not list them.
#[derive(Clone, Debug)]
pub struct UnlistedPeople;

impl Callers for UnlistedPeople {
    async fn session(&self, parts: &Parts) -> Result<Option<User>, CallerError> {
        People.session(parts).await
    }

    async fn user(&self, id: &str) -> Result<Option<User>, CallerError> {
        People.user(id).await
    }
}

/// A Jelu-like catalog, with the descriptions people read in the create dialog.
pub fn catalog() -> ScopeCatalog {
    ScopeCatalog::builder()
        .scope(
            "books:read",
            "View books, authors, tags, series, publishers",
        )
        .scope(
            "books:write",
            "Create, modify and delete books and metadata",
        )
        .scope("reading:read", "View reading events and statistics")
        .scope("reviews:read", "View reviews")
        .scope("metadata:read", "Fetch external metadata from providers")
        .implies("books:write", "books:read")
        .build()
        .expect("valid catalog")
}

/// A key made in the test, with its token.
#[derive(Debug, Clone)]
pub struct Minted {
    pub id: String,
    pub token: String,
}

/// The application: sign-in by cookie (`/login/{user}`, `/logout`), one guarded route
/// (`/api/v1/books`), the admin router at [`MOUNT`] and the page, the keyward layer in
/// optional mode.
pub struct BrowserApp {
    pub server: TestServer,
    pub keys: Keyward,
    /// Ada's key with every scope: the administrator.
    pub admin: Minted,
}

impl BrowserApp {
    /// The application with [`People`], who list themselves.
    pub async fn start() -> Self {
        Self::start_with(People).await
    }

    /// The application with `callers` as its people.
    pub async fn start_with(callers: impl Callers) -> Self {
        let keys = Keyward::builder(MemoryStore::new())
            .prefix("books")
            .catalog(catalog())
            .callers(callers)
            .build()
            .unwrap();
        let books =
            Router::new()
                .route(
                    "/api/v1/books",
                    get(|p: Principal| async move {
                        axum::Json(json!({"books": [], "caller": p.name()}))
                    }),
                )
                .route_layer(require_scopes(["books:read"]));
        let router = Router::new()
            .merge(books)
            .route("/login/{user}", get(login))
            .route("/logout", get(logout))
            .nest(MOUNT, keyward_admin::router())
            .layer(keys.layer().optional())
            .with_state(keys.clone());
        let mut app = Self {
            server: TestServer::start(router).await,
            keys,
            admin: Minted {
                id: String::new(),
                token: String::new(),
            },
        };
        app.admin = app
            .plant(
                NewKey::personal("Admin console", "u-admin")
                    .scopes(["*"])
                    .expiry(Expiry::Never),
                |_| {},
            )
            .await;
        app
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr())
    }

    /// The page's address.
    pub fn page(&self) -> String {
        self.url(&format!("{MOUNT}/ui"))
    }

    /// Stores a key made from `new` after `tweak` changed its record (to plant states the
    /// routes would not make, like a key that expired yesterday).
    pub async fn plant(&self, new: NewKey, tweak: impl FnOnce(&mut KeyRecord)) -> Minted {
        let mut issued = self.keys.issue(new).expect("a valid key");
        tweak(&mut issued.record);
        let issued = self.keys.insert(issued).await.expect("stored");
        Minted {
            id: issued.record.id.to_string(),
            token: issued.token.expose_secret().to_owned(),
        }
    }

    /// `method {MOUNT}{path}` as `token`.
    pub async fn api(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        let authorization = format!("Bearer {token}");
        Http::new(self.server.addr())
            .send(
                method,
                &format!("{MOUNT}{path}"),
                &[("authorization", authorization.as_str())],
                body.as_ref(),
            )
            .await
    }

    /// The key `id` as the administrator sees it through the API.
    pub async fn key(&self, id: &str) -> Value {
        let reply = self
            .api(Method::GET, &format!("/keys/{id}"), &self.admin.token, None)
            .await;
        assert_eq!(reply.status, 200, "GET /keys/{id}: {}", reply.text);
        reply.json
    }

    /// The status of `GET /api/v1/books` with `token`, from 127.0.0.1.
    pub async fn books(&self, token: &str) -> u16 {
        let authorization = format!("Bearer {token}");
        Http::new(self.server.addr())
            .get(
                "/api/v1/books",
                &[("authorization", authorization.as_str())],
            )
            .await
            .status
            .as_u16()
    }

    pub async fn stop(self) {
        drop(self.server);
        self.keys.shutdown().await;
    }
}

/// Signs `user` in with a cookie and sends them to the page.
async fn login(UrlPath(user): UrlPath<String>) -> impl IntoResponse {
    (
        [(
            http::header::SET_COOKIE,
            format!("{SESSION_COOKIE}={user}; Path=/; HttpOnly; SameSite=Strict"),
        )],
        Redirect::to(&format!("{MOUNT}/ui")),
    )
}

/// Signs out: the cookie expires.
async fn logout() -> impl IntoResponse {
    (
        [(
            http::header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; Path=/; Max-Age=0"),
        )],
        Redirect::to(&format!("{MOUNT}/ui")),
    )
}

/// The keys a walk plants before the page opens, in states the routes would not make.
pub struct Planted {
    /// Alice's, used three times.
    pub backup: Minted,
    /// Bob's, expiring in 3 days, with a 90-day lifetime.
    pub importer: Minted,
    /// Bob's, expired yesterday.
    pub sync: Minted,
    /// Revoked two days ago.
    pub legacy: Minted,
    /// Owned by a user the application no longer knows.
    pub ghost: Minted,
}

/// Plants Alice's nightly backup (used three times), Bob's importer expiring in 3 days and
/// his sync that expired yesterday, a revoked key and the key of an unknown user.
pub async fn plant_keys(app: &BrowserApp) -> Planted {
    let now = Utc::now();
    let backup = app
        .plant(
            NewKey::personal("Nightly backup", "u-alice")
                .scopes(["books:read"])
                .expiry(Expiry::InDays(30)),
            |_| {},
        )
        .await;
    for _ in 0..3 {
        assert_eq!(app.books(&backup.token).await, 200);
    }
    let importer = app
        .plant(
            NewKey::personal("Goodreads importer", "u-bob")
                .scopes(["books:read"])
                .expiry(Expiry::InDays(90)),
            |record| record.expires_at = Some(now + Duration::days(3)),
        )
        .await;
    let sync = app
        .plant(
            NewKey::personal("Old sync", "u-bob")
                .scopes(["reviews:read"])
                .expiry(Expiry::InDays(30)),
            |record| {
                record.created_at = now - Duration::days(31);
                record.expires_at = Some(now - Duration::days(1));
            },
        )
        .await;
    let legacy = app
        .plant(
            NewKey::personal("Legacy agent", "u-alice")
                .scopes(["books:read"])
                .expiry(Expiry::InDays(30)),
            |record| record.revoked_at = Some(now - Duration::days(2)),
        )
        .await;
    let ghost = app
        .plant(
            NewKey::personal("Departed user's script", "u-ghost")
                .scopes(["books:read"])
                .expiry(Expiry::InDays(30)),
            |_| {},
        )
        .await;
    Planted {
        backup,
        importer,
        sync,
        legacy,
        ghost,
    }
}

/// What `GET /self` says of `token`'s key.
pub async fn self_of(app: &BrowserApp, token: &str) -> Value {
    let reply = app.api(Method::GET, "/self", token, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["key"].clone()
}

/// An RFC 3339 member.
pub fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().expect("a time").parse().expect("RFC 3339")
}
