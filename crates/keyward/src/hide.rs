//! Hiding the credential from layers that run before keyward's, such as a trace layer.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, Entry, HeaderName};
use http::{HeaderMap, Request};
use tower_layer::Layer;
use tower_service::Service;

use crate::handle::Keyward;
use crate::query;
use crate::source::Sources;

impl Keyward {
    /// A layer that hides the credential from everything inside it, for use outermost, outside
    /// a trace or access-log layer.
    ///
    /// [`Keyward::layer`] removes the credential from the request it hands on, but a trace
    /// layer usually wraps the whole router and sees the request first. Put this layer outside
    /// it: the [query parameter](crate::CredentialSource::query) is taken out of the URI (and
    /// out of axum's [`OriginalUri`](axum::extract::OriginalUri) if it is already set) and kept
    /// aside, wiped when the request is dropped, for keyward's layer further in, which treats
    /// it exactly as the query source; the `Authorization` header and the configured header
    /// sources are marked [sensitive](http::HeaderValue::set_sensitive), so `tower-http`'s
    /// trace layer prints them as `Sensitive`. The parameter is taken out whether or not
    /// [`hide_credentials`](crate::KeywardBuilder::hide_credentials) is on: adding this layer
    /// asks for it.
    ///
    /// # Example
    ///
    /// ```
    /// use axum::{Router, extract::OriginalUri, routing::get};
    /// use keyward::{CredentialSource, Keyward, MemoryStore, NewKey};
    /// use tower::ServiceExt;
    /// use tower_http::trace::TraceLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .sources([CredentialSource::bearer(), CredentialSource::query("api_key")])
    ///     .build()?;
    /// let app = Router::new()
    ///     .route("/books", get(|OriginalUri(uri): OriginalUri| async move { uri.to_string() }))
    ///     .layer(keys.layer())
    ///     .layer(TraceLayer::new_for_http()) // logs the URI without the token
    ///     .layer(keys.hide_credentials_layer()); // outermost
    ///
    /// let token = keys.create(NewKey::service("backup").scopes(["keys:read"])).await?.token;
    /// let uri = format!("/books?page=2&api_key={}", token.expose_secret());
    /// let request = http::Request::get(uri).body(axum::body::Body::empty())?;
    /// let response = app.oneshot(request).await?;
    /// assert_eq!(response.status(), 200);
    /// let body = axum::body::to_bytes(response.into_body(), 1024).await?;
    /// assert_eq!(body, "/books?page=2");
    /// # Ok(())
    /// # }
    /// ```
    pub fn hide_credentials_layer(&self) -> HideCredentialsLayer {
        HideCredentialsLayer {
            sources: Arc::new(self.inner.sources.clone()),
        }
    }
}

/// Hides the credential from the layers and services inside it; made by
/// [`Keyward::hide_credentials_layer`].
#[derive(Clone, Debug)]
#[must_use]
pub struct HideCredentialsLayer {
    sources: Arc<Sources>,
}

impl<S> Layer<S> for HideCredentialsLayer {
    type Service = HideCredentials<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HideCredentials {
            inner,
            sources: Arc::clone(&self.sources),
        }
    }
}

/// The service made by [`HideCredentialsLayer`].
#[derive(Clone, Debug)]
pub struct HideCredentials<S> {
    inner: S,
    sources: Arc<Sources>,
}

impl<S, B> Service<Request<B>> for HideCredentials<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let headers = req.headers_mut();
        mark_sensitive(headers, &AUTHORIZATION);
        for name in self.sources.header_names() {
            mark_sensitive(headers, name);
        }
        if let Some(name) = self.sources.query_name() {
            if let Some(taken) = query::hide_query(&mut req, name) {
                req.extensions_mut().insert(taken);
            }
        }
        self.inner.call(req)
    }
}

fn mark_sensitive(headers: &mut HeaderMap, name: &HeaderName) {
    if let Entry::Occupied(mut entry) = headers.entry(name) {
        for value in entry.iter_mut() {
            value.set_sensitive(true);
        }
    }
}
