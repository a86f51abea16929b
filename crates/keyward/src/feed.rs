//! A change feed shared by the instances of an application (Redis pub/sub, through
//! `keyward-redis`): every change made through the handle is published on it, and what the
//! other instances publish drops entries from this instance's cache.

use std::fmt;
use std::sync::{Arc, Weak};

use futures_util::StreamExt;
use keyward_core::{ChangeStream, KeyChange};
use tokio::task::JoinHandle;

use crate::config::KeywardBuilder;
use crate::handle::{Inner, Keyward};

/// Carries cache invalidations between the instances of an application.
///
/// The handle [publishes](Self::publish) every change made through it (update, revoke,
/// delete, regenerate, refresh, [`invalidate_owner`](Keyward::invalidate_owner)) and applies
/// what it [receives](Self::subscribe) to its cache, in addition to the store's own change
/// feed. A feed is only a push that makes invalidation immediate: a message lost while the
/// feed is down is made up for by a [`KeyChange::Resync`], after which the handle reads the
/// store's change log at once (or drops its cache when it does not follow one).
///
/// # Example
///
/// ```
/// use keyward::{ChangeFeed, KeyChange, Keyward, MemoryStore};
/// use keyward::core::ChangeStream;
/// use tokio::sync::broadcast;
///
/// /// Instances in one process, for tests.
/// #[derive(Debug, Clone)]
/// struct InProcess(broadcast::Sender<KeyChange>);
///
/// impl ChangeFeed for InProcess {
///     fn publish(&self, change: &KeyChange) {
///         let _ = self.0.send(change.clone());
///     }
///
///     fn subscribe(&self) -> ChangeStream {
///         Box::pin(futures_util::stream::unfold(self.0.subscribe(), |mut rx| async move {
///             match rx.recv().await {
///                 Ok(change) => Some((change, rx)),
///                 // Messages were lost: every cached key may be stale.
///                 Err(broadcast::error::RecvError::Lagged(_)) => Some((KeyChange::Resync, rx)),
///                 Err(broadcast::error::RecvError::Closed) => None,
///             }
///         }))
///     }
/// }
///
/// let feed = InProcess(broadcast::channel(64).0);
/// let keyward = Keyward::builder(MemoryStore::new())
///     .prefix("books")
///     .change_feed(feed)
///     .build()?;
/// # let _ = keyward;
/// # Ok::<(), keyward::ConfigError>(())
/// ```
pub trait ChangeFeed: fmt::Debug + Send + Sync + 'static {
    /// Tells the other instances about `change`. Called on the management path right after
    /// the store has the change; it must not block (send in the background) and cannot fail:
    /// a feed that is down logs it, and the others catch up with a resync.
    fn publish(&self, change: &KeyChange);

    /// The changes published by every instance (this one's own included, which is harmless).
    /// After a gap (a reconnect) the stream yields [`KeyChange::Resync`]. Called once, when the
    /// handle starts its background tasks; the stream should not end.
    fn subscribe(&self) -> ChangeStream;
}

impl KeywardBuilder {
    /// A change feed shared by the application's instances; see [`ChangeFeed`]. Default: none,
    /// so other instances learn of a change through the store's own feed, if it has one, or
    /// when their cache TTL ends. keyward-redis provides one on Redis pub/sub.
    ///
    /// The subscription is read by a background task started with the handle's others and
    /// ended by [`Keyward::shutdown`].
    ///
    /// # Example
    ///
    /// See [`ChangeFeed`].
    pub fn change_feed(mut self, feed: impl ChangeFeed) -> Self {
        self.change_feed = Some(Arc::new(feed));
        self
    }
}

impl Keyward {
    /// Publishes `change` on the shared feed, if there is one.
    pub(crate) fn publish(&self, change: &KeyChange) {
        if let Some(feed) = &self.inner.change_feed {
            feed.publish(change);
        }
    }
}

/// Starts the task applying the shared feed to the cache; none without a feed or a cache.
pub(crate) fn spawn(
    inner: &Arc<Inner>,
    runtime: &tokio::runtime::Handle,
) -> Option<JoinHandle<()>> {
    let (Some(feed), Some(_)) = (&inner.change_feed, &inner.cache) else {
        return None;
    };
    let changes = feed.subscribe();
    Some(runtime.spawn(shared_feed_loop(Arc::downgrade(inner), changes)))
}

async fn shared_feed_loop(inner: Weak<Inner>, mut changes: ChangeStream) {
    while let Some(change) = changes.next().await {
        let Some(inner) = inner.upgrade() else { return };
        apply(&inner, &change);
    }
    if let Some(inner) = inner.upgrade() {
        tracing::warn!("keyward shared change feed ended; the cache now relies on its TTL");
        if let Some(cache) = &inner.cache {
            cache.invalidate_all();
        }
    }
}

/// Applies one change from the shared feed to the cache.
fn apply(inner: &Inner, change: &KeyChange) {
    let Some(cache) = &inner.cache else { return };
    match change {
        KeyChange::Changed(id) => {
            tracing::trace!(key_id = %id, "keyward shared feed: key changed");
            cache.invalidate_key(*id);
        }
        KeyChange::Owner(owner) => {
            tracing::trace!(owner = %owner, "keyward shared feed: owner changed");
            cache.invalidate_owner(owner);
        }
        // Messages may have been lost: catch up from the change log, or drop the cache.
        _ => crate::changes::resync(inner),
    }
}
