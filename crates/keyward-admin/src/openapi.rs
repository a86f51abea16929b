//! The OpenAPI 3.1 document of the router.

use std::sync::OnceLock;

use axum::Json;
use axum::extract::NestedPath;
use axum::extract::rejection::NestedPathRejection;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyward key management",
        description = "Create, list, change, revoke, regenerate and refresh API keys. \
            Every error is an RFC 9457 problem (`application/problem+json`) with a \
            machine-readable `error` member; invalid input answers 422 naming the `field`.",
    ),
    paths(
        routes::list_scopes,
        routes::list_keys,
        routes::create_key,
        routes::get_key,
        routes::update_key,
        routes::delete_key,
        routes::revoke_key,
        routes::regenerate_key,
        routes::refresh_key,
        crate::usage::key_usage,
        routes::get_self,
        routes::refresh_self,
        crate::users::list_users,
        crate::events::list_events,
        crate::leaks::report_github,
        openapi_json,
    ),
    modifiers(&Security),
    tags(
        (name = "scopes", description = "The application's scope catalog"),
        (name = "keys", description = "Managing keys: the caller's own, or every owner's with `keys:admin`"),
        (name = "users", description = "The application's users, for the owner picker (administrators)"),
        (name = "events", description = "Key events: who changed which key, when and from where"),
        (name = "self", description = "The key that authenticates the request"),
        (name = "leaks", description = "Reports of leaked keys from secret scanners"),
        (name = "meta", description = "This document and the management page"),
    )
)]
struct ApiDoc;

/// Declares how callers authenticate: a keyward key as a bearer token (or in `X-Api-Key`),
/// or the application's own session.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A keyward API key: `Authorization: Bearer <key>` (also accepted: \
                         `X-Api-Key`, and other sources the application configures)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "session",
                "The application's own sign-in, if it has one (the cookie's name is the \
                 application's)",
            ))),
        );
    }
}

/// The OpenAPI 3.1 document of every route [`router`](crate::router) serves, with paths
/// relative to where the router is mounted.
///
/// # Example
///
/// ```
/// let doc = keyward_admin::openapi();
/// assert!(doc.paths.paths.contains_key("/keys/{id}"));
/// let json = doc.to_json()?;
/// assert!(json.contains("\"openapi\":\"3.1"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        #[allow(unused_mut)]
        let mut doc = ApiDoc::openapi();
        #[cfg(feature = "ui")]
        doc.merge(crate::ui::UiDoc::openapi());
        doc
    })
    .clone()
}

/// This document; its `servers` entry is the path the router is mounted at.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of these routes", content_type = "application/json", body = Object),
    ),
    security(())
)]
pub(crate) async fn openapi_json(
    mount: Result<NestedPath, NestedPathRejection>,
) -> Json<utoipa::openapi::OpenApi> {
    let mut doc = openapi();
    let base = mount.map(|m| m.as_str().trim_end_matches('/').to_owned());
    doc.servers = Some(vec![Server::new(match base {
        Ok(base) if !base.is_empty() => base,
        _ => "/".to_owned(),
    })]);
    Json(doc)
}
