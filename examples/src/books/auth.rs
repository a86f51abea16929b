//! People log in with a password and get a session cookie; scripts present API keys. Both
//! reach the same routes through keyward's guards: [`BooksCallers`] tells keyward who is
//! signed in and what each user's role grants now, so a session holds its role's scopes and a
//! key its own scopes bounded by its owner's role.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use keyward::{CallerError, Callers, Problem, ScopeCatalog, ScopeSet, User};
use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;

use super::db::user;
use super::{AppError, AppState};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "books_session";

/// The scope that lets an admin change users' roles.
pub const USERS_ADMIN: &str = "users:admin";

/// A role's scopes: `admin` holds every scope, `user` every scope but `keys:admin` and
/// `users:admin`.
#[must_use]
pub fn role_grants(catalog: &ScopeCatalog, role: &str) -> ScopeSet {
    let mut all = catalog.all_scopes();
    if role != "admin" {
        all = all
            .into_iter()
            .filter(|s| ![keyward::core::KEYS_ADMIN, USERS_ADMIN].contains(&s.as_str()))
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

/// Logged-in sessions, in memory: session id → user id. A restart logs everyone out; keys
/// keep working. The user's role is read on every request, never copied into the session.
#[derive(Debug, Clone, Default)]
pub struct Sessions(Arc<RwLock<HashMap<String, String>>>);

impl Sessions {
    fn start(&self, user_id: String) -> String {
        let id = Alphanumeric.sample_string(&mut OsRng, 43);
        self.0
            .write()
            .expect("sessions lock")
            .insert(id.clone(), user_id);
        id
    }

    fn user_id(&self, id: &str) -> Option<String> {
        self.0.read().expect("sessions lock").get(id).cloned()
    }

    fn end(&self, id: &str) {
        self.0.write().expect("sessions lock").remove(id);
    }
}

/// The book tracker's people, for keyward: the session cookie's user, each user's role as it
/// is now in the database, and the list of users for the management page.
#[derive(Debug, Clone)]
pub struct BooksCallers {
    db: DatabaseConnection,
    sessions: Sessions,
    catalog: ScopeCatalog,
}

impl BooksCallers {
    /// Users in `db`, sessions in `sessions`, roles mapped to scopes of `catalog`.
    #[must_use]
    pub fn new(db: DatabaseConnection, sessions: Sessions, catalog: ScopeCatalog) -> Self {
        Self {
            db,
            sessions,
            catalog,
        }
    }

    fn user(&self, model: user::Model) -> User {
        let scopes = role_grants(&self.catalog, &model.role);
        User::new(model.id, model.username, scopes)
    }
}

impl Callers for BooksCallers {
    async fn session(&self, parts: &Parts) -> Result<Option<User>, CallerError> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(user_id) = jar
            .get(SESSION_COOKIE)
            .and_then(|cookie| self.sessions.user_id(cookie.value()))
        else {
            return Ok(None);
        };
        // A deleted user's session ends with the user.
        Callers::user(self, &user_id).await
    }

    async fn user(&self, id: &str) -> Result<Option<User>, CallerError> {
        let found = user::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await
            .map_err(CallerError::new)?;
        Ok(found.map(|model| self.user(model)))
    }

    async fn users(&self) -> Result<Option<Vec<User>>, CallerError> {
        let users = user::Entity::find()
            .order_by_asc(user::Column::Username)
            .all(&self.db)
            .await
            .map_err(CallerError::new)?;
        Ok(Some(
            users.into_iter().map(|model| self.user(model)).collect(),
        ))
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
    let id = state.sessions.start(user.id.clone());
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
