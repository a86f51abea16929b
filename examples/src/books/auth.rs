//! People log in with a password and get a session cookie; scripts present API keys. Both
//! reach the same routes, guarded by the same scopes: a session holds its role's scopes, a key
//! its own scopes bounded by its owner's role.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use keyward::{AuthError, Principal, Problem, ScopeCatalog, ScopeSet};
use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde::Deserialize;

use super::db::user;
use super::{AppError, AppState};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "books_session";

/// A role's scopes: `admin` holds every scope, `user` every scope but `keys:admin`.
#[must_use]
pub fn role_grants(catalog: &ScopeCatalog, role: &str) -> ScopeSet {
    let mut all = catalog.all_scopes();
    if role != "admin" {
        all = all
            .into_iter()
            .filter(|s| s.as_str() != keyward::core::scope::KEYS_ADMIN)
            .collect();
    }
    all
}

/// Hashes a password with Argon2id and a random salt.
///
/// # Errors
///
/// Only if the hasher's parameters are invalid.
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AppError::Internal(format!("cannot hash a password: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A random password for a first-start user.
#[must_use]
pub fn generate_password() -> String {
    Alphanumeric.sample_string(&mut OsRng, 20)
}

/// Logged-in sessions, in memory: a restart logs everyone out, keys keep working.
#[derive(Debug, Clone, Default)]
pub struct Sessions(Arc<RwLock<HashMap<String, SessionUser>>>);

impl Sessions {
    fn start(&self, user: SessionUser) -> String {
        let id = Alphanumeric.sample_string(&mut OsRng, 43);
        self.0
            .write()
            .expect("sessions lock")
            .insert(id.clone(), user);
        id
    }

    fn get(&self, id: &str) -> Option<SessionUser> {
        self.0.read().expect("sessions lock").get(id).cloned()
    }

    fn end(&self, id: &str) {
        self.0.write().expect("sessions lock").remove(id);
    }
}

/// A logged-in person, placed in the request extensions by [`session_layer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// User id.
    pub id: String,
    /// Login name.
    pub username: String,
    /// `admin` or `user`.
    pub role: String,
}

/// Who is calling a route: a key or a logged-in person.
#[derive(Debug, Clone)]
pub enum Caller {
    /// An API key.
    Key(Principal),
    /// A session.
    Session(SessionUser),
}

impl Caller {
    /// The user the request acts for; `None` for a service key.
    #[must_use]
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::Key(principal) => principal.owner(),
            Self::Session(user) => Some(&user.id),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Self::Key(principal.clone()));
        }
        if let Some(user) = parts.extensions.get::<SessionUser>() {
            return Ok(Self::Session(user.clone()));
        }
        Err(AuthError::MissingCredential
            .to_problem("books")
            .into_response())
    }
}

/// Puts the [`SessionUser`] of a valid session cookie into the request extensions.
pub async fn session_layer(
    State(state): State<AppState>,
    jar: CookieJar,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(user) = jar
        .get(SESSION_COOKIE)
        .and_then(|c| state.sessions.get(c.value()))
    {
        request.extensions_mut().insert(user);
    }
    next.run(request).await
}

/// Admits the request if its caller holds `scope`: a key through its effective scopes, a
/// session through its role. Otherwise 401 (nobody) or 403 `insufficient_scope`.
pub async fn require(
    scope: &'static str,
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = if let Some(principal) = request.extensions().get::<Principal>() {
        principal.has_scope(scope)
    } else if let Some(user) = request.extensions().get::<SessionUser>() {
        state
            .keyward
            .catalog()
            .expand(&role_grants(state.keyward.catalog(), &user.role))
            .allows_str(scope)
    } else {
        return state.keyward.error_response(&AuthError::MissingCredential);
    };
    if allowed {
        next.run(request).await
    } else {
        state.keyward.error_response(&AuthError::InsufficientScope {
            scope: scope.into(),
        })
    }
}

/// The body of `POST /login`.
#[derive(Debug, Deserialize)]
pub struct Login {
    username: String,
    password: String,
}

/// `POST /login`: checks the password and sets the session cookie.
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    Json(login): Json<Login>,
) -> Result<(CookieJar, Json<serde_json::Value>), Response> {
    let found = user::Entity::find()
        .filter(user::Column::Username.eq(login.username.as_str()))
        .one(&state.db)
        .await
        .map_err(|e| AppError::from(e).into_response())?;
    // Hash even for unknown users so that timing does not reveal which names exist.
    let hash = found
        .as_ref()
        .map_or(DUMMY_HASH, |u| u.password_hash.as_str())
        .to_owned();
    let password = login.password;
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let Some(user) = found.filter(|_| ok) else {
        return Err(
            Problem::new(StatusCode::UNAUTHORIZED, "invalid_credentials")
                .title("Login failed")
                .detail("the username or password is wrong")
                .into_response(),
        );
    };
    let session = SessionUser {
        id: user.id.clone(),
        username: user.username.clone(),
        role: user.role.clone(),
    };
    let id = state.sessions.start(session);
    let cookie = Cookie::build((SESSION_COOKIE, id))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build();
    Ok((
        jar.add(cookie),
        Json(serde_json::json!({ "id": user.id, "username": user.username, "role": user.role })),
    ))
}

/// `POST /logout`: ends the session.
pub async fn logout(State(state): State<AppState>, jar: CookieJar) -> (CookieJar, StatusCode) {
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        state.sessions.end(cookie.value());
    }
    (
        jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
        StatusCode::NO_CONTENT,
    )
}

/// A valid Argon2id hash of a random password, compared against for unknown usernames.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Bd3yGRWYUa/4+lWh1Lk0cJ3ViLtzaqYbMtaGyWpN7Xg";

/// The owner resolver: a key's owner holds the scopes of their current role; a deleted user
/// holds nothing (`None`), so their keys stop working.
pub fn resolver(db: DatabaseConnection, catalog: ScopeCatalog) -> impl keyward::OwnerResolver {
    keyward::resolver_fn(move |owner: String| {
        let db = db.clone();
        let catalog = catalog.clone();
        async move {
            let user = user::Entity::find_by_id(owner)
                .one(&db)
                .await
                .map_err(keyward::ResolverError::new)?;
            Ok(user.map(|u| role_grants(&catalog, &u.role)))
        }
    })
}

/// Tells the key management router who a logged-in person is: their id and their role's
/// scopes (an admin holds `keys:admin` and manages every user's keys).
#[derive(Debug, Clone)]
pub struct AdminSessions {
    catalog: ScopeCatalog,
}

impl AdminSessions {
    /// Sessions checked against `catalog`.
    #[must_use]
    pub fn new(catalog: ScopeCatalog) -> Self {
        Self { catalog }
    }
}

impl keyward_admin::ActorSource for AdminSessions {
    async fn actor(
        &self,
        parts: &mut Parts,
    ) -> Result<Option<keyward_admin::Actor>, keyward_admin::AdminError> {
        Ok(parts.extensions.get::<SessionUser>().map(|user| {
            keyward_admin::Actor::user(user.id.clone(), role_grants(&self.catalog, &user.role))
        }))
    }
}
