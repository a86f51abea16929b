//! The owner resolver: what the owner of a personal key holds right now.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use keyward_core::ScopeSet;

/// Loads the current grants of a key's owner, so that a personal key never does more than
/// the person it acts for may do now.
///
/// keyward calls it when a personal key is verified and its entry is not cached, and caches
/// the answer with the key: invalidating the key (a management call, the store's change feed,
/// the cache TTL) drops both. Without a resolver a personal key keeps its own scopes.
///
/// * `Ok(Some(grants))`: the key's effective scopes are its scopes ∩ `grants` (both expanded
///   with the catalog's implications);
/// * `Ok(None)`: the owner no longer exists; the key is refused with 401;
/// * `Err(_)`: the owner could not be loaded; the request is answered 503, never 401 or 403.
///
/// Closures work through [`resolver_fn`].
pub trait OwnerResolver: Send + Sync + 'static {
    /// The scopes `owner` holds now, `None` if the owner is gone.
    fn grants(
        &self,
        owner: &str,
    ) -> impl Future<Output = Result<Option<ScopeSet>, ResolverError>> + Send;
}

/// The owner resolver failed (its database is down, a remote call timed out, …).
#[derive(Debug, thiserror::Error)]
#[error("the owner resolver failed: {message}")]
pub struct ResolverError {
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl ResolverError {
    /// A failure with a message.
    #[must_use]
    pub fn msg(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A failure caused by `source`.
    #[must_use]
    pub fn new(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        let source = source.into();
        Self {
            message: source.to_string(),
            source: Some(source),
        }
    }
}

/// An [`OwnerResolver`] made from an async closure; see [`resolver_fn`].
#[derive(Clone)]
pub struct ResolverFn<F>(F);

impl<F> fmt::Debug for ResolverFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResolverFn")
    }
}

/// Makes an [`OwnerResolver`] from a closure taking the owner id.
///
/// # Example
///
/// ```
/// use keyward::{ResolverError, ScopeSet, resolver_fn};
///
/// let resolver = resolver_fn(|owner: String| async move {
///     match owner.as_str() {
///         "alice" => Ok(Some(ScopeSet::parse(["books:*"]).map_err(ResolverError::new)?)),
///         _ => Ok(None), // unknown user: their keys stop working
///     }
/// });
/// # let _ = resolver;
/// ```
pub fn resolver_fn<F, Fut>(f: F) -> ResolverFn<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<ScopeSet>, ResolverError>> + Send,
{
    ResolverFn(f)
}

impl<F, Fut> OwnerResolver for ResolverFn<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<ScopeSet>, ResolverError>> + Send,
{
    fn grants(
        &self,
        owner: &str,
    ) -> impl Future<Output = Result<Option<ScopeSet>, ResolverError>> + Send {
        (self.0)(owner.to_owned())
    }
}

type GrantsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<ScopeSet>, ResolverError>> + Send + 'a>>;

/// The object-safe form keyward stores.
pub(crate) trait DynResolver: Send + Sync + 'static {
    fn grants<'a>(&'a self, owner: &'a str) -> GrantsFuture<'a>;
}

impl<R: OwnerResolver> DynResolver for R {
    fn grants<'a>(&'a self, owner: &'a str) -> GrantsFuture<'a> {
        Box::pin(OwnerResolver::grants(self, owner))
    }
}
