//! Key management through the handle; every change invalidates the local cache at once.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER};
use keyward_core::{
    EventContext, EventPage, EventQuery, GracePeriod, IssuedKey, KeyChange, KeyChanges, KeyId,
    KeyRecord, ListQuery, NewKey, Page, ScopeSet, StoreError, StoreErrorKind, ValidationError,
};

use crate::acting::Acting;
use crate::callers::CallerError;
use crate::handle::Keyward;
use crate::problem::Problem;
use crate::rejection::UNAVAILABLE_RETRY_AFTER_SECS;

/// The class of a [`ManageError`], for mapping to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ManageErrorKind {
    /// The input is invalid: 422.
    Validation,
    /// No such key: 404.
    NotFound,
    /// The key's state does not allow it: 409.
    Conflict,
    /// The store or the user lookup failed: 503.
    Unavailable,
}

/// A failed management operation. The store's error is kept as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManageError {
    /// The input is invalid; the error names the fields (422).
    #[error(transparent)]
    Validation(ValidationError),
    /// No key with this id (404).
    #[error("no key with id {0}")]
    NotFound(KeyId),
    /// The key's state does not allow the change: a revoked key, refresh of a key that never
    /// expires or is disabled, a duplicate (409).
    #[error("{}", .0.message())]
    Conflict(#[source] StoreError),
    /// The store refused the input (a cursor it did not write) (422).
    #[error("{}", .0.message())]
    InvalidInput(#[source] StoreError),
    /// The store failed (503).
    #[error("the key store is unavailable")]
    Unavailable(#[source] StoreError),
    /// The application's user lookup ([`Callers`](crate::Callers)) failed (503).
    #[error("the user lookup failed")]
    Callers(#[source] CallerError),
}

impl ManageError {
    /// The class of error.
    #[must_use]
    pub fn kind(&self) -> ManageErrorKind {
        match self {
            Self::Validation(_) | Self::InvalidInput(_) => ManageErrorKind::Validation,
            Self::NotFound(_) => ManageErrorKind::NotFound,
            Self::Conflict(_) => ManageErrorKind::Conflict,
            Self::Unavailable(_) | Self::Callers(_) => ManageErrorKind::Unavailable,
        }
    }

    /// The HTTP status this error answers with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self.kind() {
            ManageErrorKind::Validation => StatusCode::UNPROCESSABLE_ENTITY,
            ManageErrorKind::NotFound => StatusCode::NOT_FOUND,
            ManageErrorKind::Conflict => StatusCode::CONFLICT,
            ManageErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub(crate) fn from_store(err: StoreError, id: Option<KeyId>) -> Self {
        match (err.kind(), id) {
            (StoreErrorKind::NotFound, Some(id)) => Self::NotFound(id),
            (StoreErrorKind::Conflict, _) => Self::Conflict(err),
            (StoreErrorKind::InvalidInput, _) => Self::InvalidInput(err),
            _ => Self::Unavailable(err),
        }
    }

    /// The problem+json response: `error` is `validation_failed` (with an `errors` member
    /// listing `{field, message}`), `not_found`, `conflict` or `temporarily_unavailable`
    /// (with `Retry-After`).
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Validation(err) => Problem::from(err),
            Self::InvalidInput(err) => {
                Problem::new(self.status(), "validation_failed").detail(err.message())
            }
            Self::NotFound(_) => Problem::new(self.status(), "not_found").detail("no such key"),
            Self::Conflict(err) => Problem::new(self.status(), "conflict").detail(err.message()),
            Self::Unavailable(_) | Self::Callers(_) => {
                Problem::new(self.status(), "temporarily_unavailable")
                    .detail("API keys cannot be managed right now; try again shortly")
                    .header(RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS))
            }
        }
    }
}

impl From<ValidationError> for ManageError {
    fn from(err: ValidationError) -> Self {
        Self::Validation(err)
    }
}

impl IntoResponse for ManageError {
    fn into_response(self) -> Response {
        if self.kind() == ManageErrorKind::Unavailable {
            tracing::error!(
                error = &self as &dyn std::error::Error,
                "key management failed"
            );
        }
        self.to_problem().into_response()
    }
}

impl Keyward {
    /// Drops key `id` from this instance's cache and tells the others through the shared
    /// change feed, if there is one.
    pub(crate) fn invalidate(&self, id: KeyId) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate_key(id);
        }
        self.publish(&KeyChange::Changed(id));
    }

    /// Drops the cached entry of key `id` on this instance, so its record and its owner's
    /// grants are read again on its next use. Management calls do this themselves; call it
    /// when something the [`Callers`](crate::Callers) read changed for one key's
    /// owner.
    pub fn invalidate_key(&self, id: KeyId) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate_key(id);
        }
    }

    /// Says that what user `owner` holds changed (a new role, a deleted account): their keys
    /// are bounded by the new grants from the next request on, on this instance at once and
    /// on the others when they next read the store's change log (every 500 ms by default),
    /// or at once through a push feed (PostgreSQL's, or a shared [`ChangeFeed`](crate::ChangeFeed)).
    /// A store without a change log leaves the others to their cache TTL. A session of the user needs nothing: sessions are looked up on
    /// every request.
    ///
    /// # Errors
    ///
    /// [`ManageError::Unavailable`] when the store cannot announce the change; this
    /// instance has dropped the keys all the same.
    pub async fn invalidate_owner(&self, owner: &str) -> Result<(), ManageError> {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate_owner(owner);
        }
        self.publish(&KeyChange::Owner(owner.to_owned()));
        self.inner
            .store
            .owner_changed(owner)
            .await
            .map_err(|e| ManageError::from_store(e, None))
    }

    /// The application's users with their display names, from its
    /// [`Callers`](crate::Callers); `None` when it does not list them (or has no `Callers`).
    ///
    /// # Errors
    ///
    /// [`ManageError::Callers`] when the lookup fails.
    pub async fn users(&self) -> Result<Option<Vec<crate::User>>, ManageError> {
        match &self.inner.callers {
            Some(callers) => callers.users().await.map_err(ManageError::Callers),
            None => Ok(None),
        }
    }

    /// Whether the application told keyward who its users are
    /// ([`KeywardBuilder::callers`](crate::KeywardBuilder::callers)): only then can an owner be
    /// checked.
    #[must_use]
    pub fn knows_users(&self) -> bool {
        self.inner.callers.is_some()
    }

    /// The user `id` as the application's [`Callers`](crate::Callers) sees them now, with the
    /// scopes of their role expanded by the catalog; `None` when the user does not exist or
    /// the application gave keyward no `Callers` (see [`knows_users`](Self::knows_users)).
    ///
    /// # Errors
    ///
    /// [`ManageError::Callers`] when the lookup fails.
    pub async fn user(&self, id: &str) -> Result<Option<crate::User>, ManageError> {
        let Some(callers) = &self.inner.callers else {
            return Ok(None);
        };
        let user = callers.user(id).await.map_err(ManageError::Callers)?;
        Ok(user.map(|mut user| {
            user.scopes = self.catalog().expand(&user.scopes);
            user
        }))
    }

    /// Drops every cached key on this instance, so that each key's record and owner are read
    /// again on its next use.
    pub fn invalidate_all(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate_all();
        }
    }

    /// Management calls made by `by` (a user, a key, the command line): each change is
    /// recorded in the event log with its actor and client address. The calls directly on
    /// the handle ([`create`](Self::create), [`revoke`](Self::revoke), …) are recorded as
    /// made by the application itself ([`Actor::System`](keyward_core::Actor::System)).
    #[must_use]
    pub fn acting(&self, by: impl Into<EventContext>) -> Acting<'_> {
        Acting::new(self, by.into())
    }

    /// Validates `new` against the catalog, generates its token and stores the key. The
    /// token is in the result and nowhere else: show it once. Recorded as made by the
    /// application; see [`acting`](Self::acting) to name who acts.
    ///
    /// Whether the caller may create this key (its own scopes, admin-only service keys) is
    /// the caller's decision; the admin router makes it, on the record [`issue`](Self::issue)
    /// returns, before [`insert`](Self::insert).
    ///
    /// # Errors
    ///
    /// [`ManageError::Validation`] naming the fields, or the store's error.
    pub async fn create(&self, new: NewKey) -> Result<IssuedKey, ManageError> {
        self.acting(EventContext::system()).create(new).await
    }

    /// Validates `new` against the catalog and generates its record and token, without
    /// storing anything: the record is exactly what [`insert`](Self::insert) would store.
    ///
    /// # Errors
    ///
    /// [`ManageError::Validation`] naming the fields.
    pub fn issue(&self, new: NewKey) -> Result<IssuedKey, ManageError> {
        let inner = &self.inner;
        let issued = new.issue(
            &inner.catalog,
            &inner.format,
            &inner.hasher,
            inner.clock.now(),
        )?;
        Ok(issued)
    }

    /// Stores a key made by [`issue`](Self::issue) ([`Acting::insert`] as the application).
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn insert(&self, issued: IssuedKey) -> Result<IssuedKey, ManageError> {
        self.acting(EventContext::system()).insert(issued).await
    }

    /// The key with `id`, revoked or not.
    ///
    /// # Errors
    ///
    /// [`ManageError::NotFound`], or the store's error.
    pub async fn get(&self, id: KeyId) -> Result<KeyRecord, ManageError> {
        self.inner
            .store
            .get(id)
            .await
            .map_err(|e| ManageError::from_store(e, Some(id)))?
            .ok_or(ManageError::NotFound(id))
    }

    /// A page of keys, newest first.
    ///
    /// # Errors
    ///
    /// The store's error ([`ManageError::InvalidInput`] for a foreign cursor).
    pub async fn list(&self, query: &ListQuery) -> Result<Page, ManageError> {
        self.inner
            .store
            .list(query)
            .await
            .map_err(|e| ManageError::from_store(e, None))
    }

    /// The key whose token `token` is, revoked or not, without using it: no use is counted,
    /// no limit applies, nothing is cached. `None` when `token` does not have the
    /// application's format and check digits, or no key has it (a replaced token counts
    /// during its grace period). For tools that handle reported tokens, such as a leak
    /// response.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn find_token(&self, token: &str) -> Result<Option<KeyRecord>, ManageError> {
        let inner = &self.inner;
        let Ok(token) = inner.format.parse(token) else {
            return Ok(None);
        };
        let digest = inner.hasher.digest(&token);
        inner
            .store
            .find_by_digest(&digest, inner.clock.now())
            .await
            .map_err(|e| ManageError::from_store(e, None))
    }

    /// A page of key events, newest first (see [`EventQuery`]): who changed which key, when
    /// and from where.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn events(&self, query: &EventQuery) -> Result<EventPage, ManageError> {
        self.inner
            .store
            .events(query)
            .await
            .map_err(|e| ManageError::from_store(e, None))
    }

    /// [`Acting::update`] as the application.
    ///
    /// # Errors
    ///
    /// As [`Acting::update`].
    pub async fn update(&self, id: KeyId, changes: KeyChanges) -> Result<KeyRecord, ManageError> {
        self.acting(EventContext::system())
            .update(id, changes)
            .await
    }

    /// [`Acting::revoke`] as the application: the next request with the key fails, on this
    /// instance at once, on others within the change-log poll interval.
    ///
    /// # Errors
    ///
    /// As [`Acting::revoke`].
    pub async fn revoke(&self, id: KeyId) -> Result<KeyRecord, ManageError> {
        self.acting(EventContext::system()).revoke(id).await
    }

    /// [`Acting::delete`] as the application.
    ///
    /// # Errors
    ///
    /// As [`Acting::delete`].
    pub async fn delete(&self, id: KeyId) -> Result<(), ManageError> {
        self.acting(EventContext::system()).delete(id).await
    }

    /// [`Acting::regenerate`] as the application.
    ///
    /// # Errors
    ///
    /// As [`Acting::regenerate`].
    pub async fn regenerate(
        &self,
        id: KeyId,
        grace: Option<GracePeriod>,
    ) -> Result<IssuedKey, ManageError> {
        self.acting(EventContext::system())
            .regenerate(id, grace)
            .await
    }

    /// [`Acting::refresh`] as the application.
    ///
    /// # Errors
    ///
    /// As [`Acting::refresh`].
    pub async fn refresh(&self, id: KeyId) -> Result<KeyRecord, ManageError> {
        self.acting(EventContext::system()).refresh(id).await
    }

    /// The scopes the key may use now: its scopes with their implications, bounded by the
    /// owner's current grants for a personal key when [`Callers`](crate::Callers) are
    /// configured. Empty when the owner is gone.
    ///
    /// # Errors
    ///
    /// [`ManageError::Callers`] when the user lookup fails.
    pub async fn effective_scopes(&self, record: &KeyRecord) -> Result<ScopeSet, ManageError> {
        match self.inner.resolve(record).await {
            Ok(Some(principal)) => Ok(principal.scopes().clone()),
            Ok(None) => Ok(ScopeSet::new()),
            Err(err) => Err(ManageError::Callers(err)),
        }
    }
}
