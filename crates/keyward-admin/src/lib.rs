//! Key management for keyward: a mountable axum router with JSON routes, an OpenAPI 3.1
//! document and a management page.
//!
//! # Quick start
//!
//! ```
//! use axum::Router;
//! use axum::extract::FromRef;
//! use keyward::{Keyward, MemoryStore, ScopeCatalog};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     keys: Keyward,
//! }
//!
//! impl FromRef<AppState> for Keyward {
//!     fn from_ref(state: &AppState) -> Self {
//!         state.keys.clone()
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let catalog = ScopeCatalog::builder()
//!     .scope("books:read", "Read the book collection")
//!     .scope("books:write", "Add and change books")
//!     .implies("books:write", "books:read")
//!     .build()?;
//! let keys = Keyward::builder(MemoryStore::new())
//!     .prefix("books")
//!     .catalog(catalog)
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     // GET /api/v1/tokens/keys, POST /api/v1/tokens/keys, ..., GET /api/v1/tokens/ui
//!     .nest("/api/v1/tokens", keyward_admin::router())
//!     // Optional mode lets the page at /ui load without a key; the JSON routes still
//!     // answer 401 to a request that carries neither a key nor a session.
//!     .layer(keys.layer().optional())
//!     .with_state(AppState { keys });
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! The router takes the [`Keyward`] handle from the application state through
//! [`FromRef`] and never calls `with_state` itself. It needs the
//! keyward layer outside it (on the application, or on the nest), so that requests carry
//! their [`Principal`](keyward::Principal); in the layer's required mode the page at `/ui`
//! (which holds no data and asks for a key) would be refused too, so use
//! [`optional`](keyward::KeywardLayer::optional) mode, or serve the page outside the layer. Every change goes through the handle, so the
//! middleware's cache forgets a revoked, disabled or regenerated key at once.
//!
//! # Routes
//!
//! Relative to where the router is mounted ([`routes`] lists them):
//!
//! | method, path | does | success |
//! |---|---|---|
//! | `GET /scopes` | the catalog | 200 `{"scopes":[{"name","description"}]}` |
//! | `GET /keys` | own keys; every owner's with `keys:admin`; `owner`, `include_revoked`, `limit` (1–100, default 100), `cursor` | 200 `{"keys":[…],"next_cursor":…}` |
//! | `POST /keys` | create | 201 `{"key":{…},"token":"…"}` |
//! | `GET /keys/{id}` | one key | 200 key object |
//! | `PATCH /keys/{id}` | change `name`, `scopes`, `active`, `allowed_ips`, `rate_limit`, `metadata` | 200 key object |
//! | `DELETE /keys/{id}` | delete permanently | 204 |
//! | `POST /keys/{id}/revoke` | revoke, keep the record | 200 key object |
//! | `POST /keys/{id}/regenerate` | new token; optional `grace_seconds` (≤ 86400) | 200 `{"key":{…},"token":"…"}` |
//! | `POST /keys/{id}/refresh` | expiry = now + the key's lifetime (at most 3650 days) | 200 key object |
//! | `GET /keys/{id}/usage` | uses per day (UTC), oldest first, zeros included; `days` (1–90, default 90) | 200 `{"days":[{"date":"2026-11-23","count":12}]}` |
//! | `GET /users` | the application's users from [`Callers::users`](keyward::Callers::users), sorted by name (`keys:admin`; 404 when the application does not list them) | 200 `{"users":[{"id","name","scopes"}]}` |
//! | `GET /self` | the presenting key and its effective scopes | 200 `{"key":{…},"effective_scopes":[…]}` |
//! | `POST /self/refresh` | refresh the presenting key | 200 key object |
//! | `POST /leaks/github` | GitHub's secret-scanning report: revokes (or disables) the live keys reported leaked; no key, GitHub's signature instead; 404 unless [configured](AdminRouter::github_secret_scanning) | 200 `[{"token_raw","token_type","label"}]` |
//! | `GET /openapi.json` | the [OpenAPI 3.1 document](openapi) | 200 |
//! | `GET /ui` (feature `ui`) | the management page, with `/ui/app.css` and its script modules (`/ui/app.js`, ...) | 200 HTML |
//!
//! Listing pages are newest first; the cursor is opaque, and keys created while a client
//! pages through never shift the pages it has yet to read.
//!
//! Every key object counts the uses this instance has not yet written to the store
//! (`usage_count`, `last_used_at`, `last_used_ip`), so a key shows as used the moment it was,
//! not only after the next usage flush; so do the daily counts of `/keys/{id}/usage`.
//!
//! # Who may do what
//!
//! The caller is keyward's [`Principal`](keyward::Principal): the key of the request, or,
//! for a request without a key, the person signed in through the application's session
//! ([`Callers`](keyward::Callers), given to the [`Keyward`] builder). A request that carries a
//! key is the key's, whatever cookie it also carries.
//!
//! * No key and no session: 401. Reads need `keys:read`, changes `keys:write`: 403
//!   `insufficient_scope` naming the scope.
//! * Without `keys:admin` an actor sees and changes only the keys it owns; another owner's key
//!   id answers 404, exactly like an unknown id. Only `keys:admin` lists every owner's keys,
//!   filters with `?owner=`, creates service keys and keys for other owners (403 naming
//!   `keys:admin` otherwise).
//! * No escalation: a key is never created with, or changed to hold, a scope the actor does
//!   not hold itself, and an actor never regenerates (and so receives a token for) a key
//!   holding a scope it lacks: 403 `insufficient_scope` naming the scope. A scope outside the
//!   catalog is 422 naming `scopes`.
//! * Owners are the application's users: with [`Callers`](keyward::Callers), a personal key
//!   for an owner [`Callers::user`](keyward::Callers::user) does not know is 422 naming
//!   `owner`, and a key created with (or changed to) scopes its owner does not hold is 422
//!   naming `scopes` and each missing scope, rather than a key that silently does less.
//! * A service key has no user to own keys: it manages keys only with `keys:admin`.
//! * `GET /self` and `POST /self/refresh` need a presented key (401 otherwise) but no
//!   management scope: a key may always see and refresh itself, except
//!   that a replaced token in its grace period may not refresh (nor manage anything).
//! * A session may change keys only from pages of the same origin (`Sec-Fetch-Site` /
//!   `Origin`), so a cookie cannot be ridden by another site.
//!
//! # Errors
//!
//! Every error is `application/problem+json` ([`AdminError`]): a body that is not JSON is
//! 400, a body without `Content-Type: application/json` 415, an invalid or unknown member or
//! query parameter 422 with `field` naming it, a store failure 503 (never 401 or 403).
//!
//! # Audit
//!
//! Every change emits one `tracing` event on the target `keyward::audit` with the fields
//! `actor`, `key_id` and `action` (`create`, `update`, `revoke`, `delete`, `regenerate`,
//! `refresh`). Tokens never appear in events.
//!
//! # Features
//!
//! * `ui` (default): the management page at `/ui`. Plain HTML, CSS and JavaScript embedded in
//!   the crate; it loads nothing from anywhere but the application and is served with a
//!   strict `Content-Security-Policy`.

mod access;
mod actor;
mod audit;
#[cfg(test)]
mod body;
mod error;
mod events;
mod leaks;
mod model;
mod openapi;
mod query;
mod routes;
mod scanning;
#[cfg(feature = "ui")]
mod ui;
mod usage;
mod users;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{MethodRouter, delete, get, patch, post};
use http::Method;
use keyward::Keyward;

pub use error::AdminError;
pub use leaks::{LEAK_REPORT_LIMIT, LeakAction};
pub use model::{
    CreateKeyRequest, EventList, EventObject, FieldProblem, IssuedKeyBody, KeyList, KeyObject,
    ProblemBody, RegenerateRequest, ScopeEntry, ScopeList, SelfKey, UpdateKeyRequest, UsageHistory,
    UserEntry, UserList,
};
pub use openapi::openapi;
pub use routes::PAGE_LIMIT;
pub use scanning::{GitHubScanningKeys, ScanningKeysError};

/// The management router: its callers are keyward keys and, when the [`Keyward`] has
/// [`Callers`](keyward::Callers), the application's signed-in sessions.
///
/// Mount it with [`Router::nest`]; the state `S` must give the [`Keyward`] handle through
/// [`FromRef`]. See the [crate documentation](crate) for the routes and the rules.
/// [`AdminRouter`] builds the same router with more configuration.
///
/// # Example
///
/// ```
/// use axum::Router;
/// use keyward::{Keyward, MemoryStore};
///
/// # fn main() -> Result<(), keyward::ConfigError> {
/// let keys = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
/// let app: Router = Router::new()
///     .nest("/api/v1/tokens", keyward_admin::router())
///     .layer(keys.layer())
///     .with_state(keys);
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
pub fn router<S>() -> Router<S>
where
    Keyward: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    AdminRouter::new().build()
}

/// Builds the management [`router`] with optional parts: today the GitHub secret-scanning
/// endpoint `POST /leaks/github`, which answers 404 until it is configured.
///
/// # Example
///
/// ```
/// use axum::Router;
/// use keyward::{Keyward, MemoryStore};
/// use keyward_admin::AdminRouter;
///
/// # fn main() -> Result<(), keyward::ConfigError> {
/// let keys = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
/// let app: Router = Router::new()
///     .nest("/api/v1/tokens", AdminRouter::new().build())
///     .layer(keys.layer().optional())
///     .with_state(keys);
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct AdminRouter {
    github: Option<GitHubScanningKeys>,
    leak_action: LeakAction,
}

impl fmt::Debug for AdminRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminRouter")
            .field("github_secret_scanning", &self.github)
            .field("leak_action", &self.leak_action)
            .finish()
    }
}

impl AdminRouter {
    /// The router with every optional part off: what [`router`] returns.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves GitHub's secret-scanning partner endpoint, `POST /leaks/github`: reports
    /// signed by one of `keys` are read, each reported token that is a key of the
    /// application and not revoked is revoked (or disabled, see
    /// [`leak_action`](Self::leak_action)), and GitHub learns which were real.
    ///
    /// The endpoint needs no key (the signature is the authentication), so mount the
    /// router behind the keyward layer in [`optional`](keyward::KeywardLayer::optional)
    /// mode. Each change is recorded as a `leaked` event naming the URL GitHub reports.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use keyward::{Keyward, MemoryStore};
    /// use keyward_admin::{AdminRouter, GitHubScanningKeys, LeakAction};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
    /// // Saved from https://api.github.com/meta/public_keys/secret_scanning
    /// let github = GitHubScanningKeys::from_json(&std::fs::read_to_string("github-keys.json")?)?;
    /// let admin: axum::Router<Keyward> = AdminRouter::new()
    ///     .github_secret_scanning(github)
    ///     .leak_action(LeakAction::Disable)
    ///     .build();
    /// # let _ = (admin, keys);
    /// # Ok(())
    /// # }
    /// ```
    pub fn github_secret_scanning(mut self, keys: GitHubScanningKeys) -> Self {
        self.github = Some(keys);
        self
    }

    /// What happens to a live key reported leaked: [`LeakAction::Revoke`] (the default) or
    /// [`LeakAction::Disable`].
    ///
    /// # Example
    ///
    /// ```
    /// use keyward_admin::{AdminRouter, LeakAction};
    ///
    /// let admin = AdminRouter::new().leak_action(LeakAction::Disable);
    /// # let _ = admin;
    /// ```
    pub fn leak_action(mut self, action: LeakAction) -> Self {
        self.leak_action = action;
        self
    }

    /// The router. Mount it with [`Router::nest`]; the state `S` must give the [`Keyward`]
    /// handle through [`FromRef`].
    ///
    /// # Example
    ///
    /// ```
    /// use keyward::Keyward;
    /// use keyward_admin::AdminRouter;
    ///
    /// let admin: axum::Router<Keyward> = AdminRouter::new().build();
    /// # let _ = admin;
    /// ```
    pub fn build<S>(self) -> Router<S>
    where
        Keyward: FromRef<S>,
        S: Clone + Send + Sync + 'static,
    {
        let leaks = self.github.map(|keys| {
            Arc::new(leaks::GitHubLeaks {
                keys,
                action: self.leak_action,
            })
        });
        let mut router = Router::new();
        let mut table = endpoints::<S>(leaks);
        while !table.is_empty() {
            let path = table[0].path;
            let mut method_router: Option<MethodRouter<S>> = None;
            table.retain_mut(|endpoint| {
                if endpoint.path != path {
                    return true;
                }
                let handler = std::mem::take(&mut endpoint.handler);
                method_router = Some(match method_router.take() {
                    Some(existing) => existing.merge(handler),
                    None => handler,
                });
                false
            });
            if let Some(method_router) = method_router {
                router = router.route(path, method_router);
            }
        }
        router
            .fallback(routes::not_found)
            .method_not_allowed_fallback(routes::method_not_allowed)
    }
}

/// One route the router serves: a method and a path relative to the mount point, in axum's
/// syntax (`/keys/{id}`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path, relative to where the router is mounted.
    pub path: &'static str,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Every route [`router`] serves, from the same table the router is built from, so a client,
/// a proxy allow-list or a test can rely on it.
///
/// # Example
///
/// ```
/// use http::Method;
///
/// let routes = keyward_admin::routes();
/// assert!(routes.iter().any(|r| r.method == Method::POST && r.path == "/keys/{id}/revoke"));
/// ```
#[must_use]
pub fn routes() -> Vec<Route> {
    endpoints::<Keyward>(None)
        .into_iter()
        .map(|endpoint| Route {
            method: endpoint.method,
            path: endpoint.path,
        })
        .collect()
}

struct Endpoint<S> {
    method: Method,
    path: &'static str,
    handler: MethodRouter<S>,
}

/// The one table of routes: the router is built from it and [`routes`] reads it.
fn endpoints<S>(leaks: Option<Arc<leaks::GitHubLeaks>>) -> Vec<Endpoint<S>>
where
    Keyward: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    let endpoint = |method: Method, path: &'static str, handler: MethodRouter<S>| Endpoint {
        method,
        path,
        handler,
    };
    #[allow(unused_mut)]
    let mut table = vec![
        endpoint(Method::GET, "/scopes", get(routes::list_scopes)),
        endpoint(Method::GET, "/keys", get(routes::list_keys)),
        endpoint(Method::POST, "/keys", post(routes::create_key)),
        endpoint(Method::GET, "/keys/{id}", get(routes::get_key)),
        endpoint(Method::PATCH, "/keys/{id}", patch(routes::update_key)),
        endpoint(Method::DELETE, "/keys/{id}", delete(routes::delete_key)),
        endpoint(Method::POST, "/keys/{id}/revoke", post(routes::revoke_key)),
        endpoint(
            Method::POST,
            "/keys/{id}/regenerate",
            post(routes::regenerate_key),
        ),
        endpoint(
            Method::POST,
            "/keys/{id}/refresh",
            post(routes::refresh_key),
        ),
        endpoint(Method::GET, "/keys/{id}/usage", get(usage::key_usage)),
        endpoint(Method::GET, "/self", get(routes::get_self)),
        endpoint(Method::POST, "/self/refresh", post(routes::refresh_self)),
        endpoint(Method::GET, "/users", get(users::list_users)),
        endpoint(Method::GET, "/events", get(events::list_events)),
        endpoint(Method::GET, "/openapi.json", get(openapi::openapi_json)),
        endpoint(
            Method::POST,
            "/leaks/github",
            post(move |keys, headers, body| {
                leaks::report_github(leaks.clone(), keys, headers, body)
            })
            .layer(DefaultBodyLimit::max(leaks::LEAK_REPORT_LIMIT)),
        ),
    ];
    #[cfg(feature = "ui")]
    table.extend(
        ui::routes()
            .into_iter()
            .map(|(path, handler)| endpoint(Method::GET, path, handler)),
    );
    table
}
