//! Key management on someone's behalf: each change is recorded with its actor and address.

use keyward_core::{
    EventContext, GracePeriod, IssuedKey, KeyChanges, KeyId, KeyRecord, NewKey, SecretRotation,
};

use crate::handle::Keyward;
use crate::manage::ManageError;

/// The management calls of a [`Keyward`] handle made by someone: every change is recorded in
/// the store's event log with [`EventContext`]'s actor and client address, in the same write
/// as the change itself. Made by [`Keyward::acting`].
///
/// # Example
///
/// ```
/// use keyward::{Actor, EventContext, EventQuery, Keyward, MemoryStore, NewKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keyward = Keyward::builder(MemoryStore::new()).prefix("books").build()?;
/// let alice = EventContext::new(Actor::user("alice")).client_ip("203.0.113.7".parse().ok());
/// let issued = keyward
///     .acting(alice.clone())
///     .create(NewKey::personal("Backup Script", "alice").scopes(["*"]))
///     .await?;
/// keyward.acting(alice).revoke(issued.record.id).await?;
///
/// let page = keyward.events(&EventQuery::new().key(issued.record.id)).await?;
/// let kinds: Vec<_> = page.events.iter().map(|e| e.kind.as_str()).collect();
/// assert_eq!(kinds, ["revoked", "created"]);
/// assert_eq!(page.events[0].actor, Some(Actor::user("alice")));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Acting<'a> {
    keyward: &'a Keyward,
    context: EventContext,
}

impl<'a> Acting<'a> {
    pub(crate) fn new(keyward: &'a Keyward, context: EventContext) -> Self {
        Self { keyward, context }
    }

    /// Who acts, and from where.
    #[must_use]
    pub fn context(&self) -> &EventContext {
        &self.context
    }

    /// Validates `new` against the catalog, generates its token and stores the key (see
    /// [`Keyward::create`]).
    ///
    /// # Errors
    ///
    /// [`ManageError::Validation`] naming the fields, or the store's error.
    pub async fn create(&self, new: NewKey) -> Result<IssuedKey, ManageError> {
        let issued = self.keyward.issue(new)?;
        self.insert(issued).await
    }

    /// Stores a key made by [`Keyward::issue`].
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn insert(&self, issued: IssuedKey) -> Result<IssuedKey, ManageError> {
        let inner = &self.keyward.inner;
        inner
            .store
            .insert(issued.record.clone(), &self.context)
            .await
            .map_err(|e| ManageError::from_store(e, None))?;
        if let Some(cache) = &inner.cache {
            cache.forget_unknown(&issued.record.digest);
        }
        tracing::info!(key_id = %issued.record.id, kind = %issued.record.kind, actor = %self.context.actor, "api key created");
        Ok(issued)
    }

    /// Applies `changes` (validated against the catalog) and drops the key from the cache.
    ///
    /// # Errors
    ///
    /// [`ManageError::Validation`], [`ManageError::NotFound`], [`ManageError::Conflict`] for a
    /// revoked key, or the store's error.
    pub async fn update(&self, id: KeyId, changes: KeyChanges) -> Result<KeyRecord, ManageError> {
        let inner = &self.keyward.inner;
        let update = changes.validate(&inner.catalog)?;
        let result = inner
            .store
            .update(id, &update, inner.clock.now(), &self.context)
            .await;
        self.keyward.invalidate(id);
        let record = result.map_err(|e| ManageError::from_store(e, Some(id)))?;
        tracing::info!(key_id = %id, actor = %self.context.actor, "api key updated");
        Ok(record)
    }

    /// Revokes the key; the next request with it fails, on this instance at once, on others
    /// within the change-log poll interval (500 ms by default) or at once through a push
    /// feed.
    ///
    /// # Errors
    ///
    /// [`ManageError::NotFound`], or the store's error.
    pub async fn revoke(&self, id: KeyId) -> Result<KeyRecord, ManageError> {
        let inner = &self.keyward.inner;
        let result = inner
            .store
            .revoke(id, inner.clock.now(), &self.context)
            .await;
        self.keyward.invalidate(id);
        let record = result.map_err(|e| ManageError::from_store(e, Some(id)))?;
        tracing::info!(key_id = %id, actor = %self.context.actor, "api key revoked");
        Ok(record)
    }

    /// Deletes the key permanently; its events stay.
    ///
    /// # Errors
    ///
    /// [`ManageError::NotFound`], or the store's error.
    pub async fn delete(&self, id: KeyId) -> Result<(), ManageError> {
        let result = self.keyward.inner.store.delete(id, &self.context).await;
        self.keyward.invalidate(id);
        result.map_err(|e| ManageError::from_store(e, Some(id)))?;
        tracing::info!(key_id = %id, actor = %self.context.actor, "api key deleted");
        Ok(())
    }

    /// Gives the key a new secret (same id, name, scopes, owner, IPs, lifetime). The old
    /// token stops at once, or at the end of `grace`.
    ///
    /// # Errors
    ///
    /// [`ManageError::NotFound`], [`ManageError::Conflict`] for a revoked key, or the store's
    /// error.
    pub async fn regenerate(
        &self,
        id: KeyId,
        grace: Option<GracePeriod>,
    ) -> Result<IssuedKey, ManageError> {
        let inner = &self.keyward.inner;
        let now = inner.clock.now();
        let (rotation, token) = SecretRotation::generate(&inner.format, &inner.hasher, grace, now);
        let result = inner
            .store
            .replace_secret(id, &rotation, now, &self.context)
            .await;
        self.keyward.invalidate(id);
        let record = result.map_err(|e| ManageError::from_store(e, Some(id)))?;
        if let Some(cache) = &inner.cache {
            cache.forget_unknown(&record.digest);
        }
        tracing::info!(key_id = %id, grace_seconds = grace.map_or(0, GracePeriod::as_secs), actor = %self.context.actor, "api key regenerated");
        Ok(IssuedKey { record, token })
    }

    /// Extends the key's expiry to now + its lifetime.
    ///
    /// # Errors
    ///
    /// [`ManageError::NotFound`], [`ManageError::Conflict`] for a revoked, disabled or
    /// never-expiring key, or the store's error.
    pub async fn refresh(&self, id: KeyId) -> Result<KeyRecord, ManageError> {
        let inner = &self.keyward.inner;
        let result = inner
            .store
            .refresh(id, inner.clock.now(), &self.context)
            .await;
        self.keyward.invalidate(id);
        let record = result.map_err(|e| ManageError::from_store(e, Some(id)))?;
        tracing::info!(key_id = %id, actor = %self.context.actor, "api key refreshed");
        Ok(record)
    }
}
