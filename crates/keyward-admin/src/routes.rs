//! The JSON routes of section "admin router": handlers and their OpenAPI descriptions.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyward::{Keyward, Problem};
use keyward_core::store::MAX_PAGE_SIZE;
use keyward_core::{
    Expiry, GracePeriod, KeyChanges, KeyKind, KeyRecord, ListCursor, ListQuery, NewKey,
    ValidationError,
};

use crate::access::{Need, admin_needed, ensure_holds, load, require, require_scope};
use crate::actor::{CurrentActor, PresentingKey};
use crate::audit;
use crate::body::{JsonBody, OptionalJsonBody};
use crate::error::AdminError;
use crate::model::{
    CreateKeyRequest, IssuedKeyBody, KeyList, KeyObject, ProblemBody, RegenerateRequest,
    ScopeEntry, ScopeList, SelfKey, UpdateKeyRequest,
};

/// The largest page `GET /keys` returns, and its default.
pub const PAGE_LIMIT: usize = 100;

const _: () = assert!(PAGE_LIMIT <= MAX_PAGE_SIZE);

/// The catalog of scopes a key can hold.
#[utoipa::path(
    get,
    path = "/scopes",
    tag = "scopes",
    responses(
        (status = 200, description = "The scope catalog", body = ScopeList),
        (status = 401, description = "No key and no session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks `keys:read`", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list_scopes(
    State(keys): State<Keyward>,
    CurrentActor(actor): CurrentActor,
) -> Result<Json<ScopeList>, AdminError> {
    require_scope(&actor, Need::Read)?;
    let scopes = keys.catalog().entries().map(ScopeEntry::from).collect();
    Ok(Json(ScopeList { scopes }))
}

/// Lists keys, newest first: the caller's own, or with `keys:admin` every owner's.
#[utoipa::path(
    get,
    path = "/keys",
    tag = "keys",
    params(
        ("owner" = Option<String>, Query, description = "Only this owner's keys. Another owner than the caller needs `keys:admin`."),
        ("include_revoked" = Option<bool>, Query, description = "Also list revoked keys (`true` or `false`, default `false`)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100; default 100."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page; opaque."),
    ),
    responses(
        (status = 200, description = "One page of keys", body = KeyList),
        (status = 401, description = "No key and no session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks `keys:read`, or `keys:admin` for `owner`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list_keys(
    State(keys): State<Keyward>,
    CurrentActor(actor): CurrentActor,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<KeyList>, AdminError> {
    require(&actor, Need::Read)?;
    let Query(pairs) = query.map_err(|rejection| AdminError::MalformedBody {
        detail: rejection.body_text(),
    })?;
    let mut list = ListQuery {
        limit: PAGE_LIMIT,
        ..ListQuery::default()
    };
    let mut owner = None;
    for (name, value) in pairs {
        match name.as_str() {
            "owner" => owner = Some(value),
            "include_revoked" => {
                list.include_revoked = value.parse().map_err(|_| {
                    AdminError::field("include_revoked", "must be `true` or `false`")
                })?;
            }
            "limit" => {
                list.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=PAGE_LIMIT).contains(n))
                    .ok_or_else(|| {
                        AdminError::field(
                            "limit",
                            format!("must be a number from 1 to {PAGE_LIMIT}"),
                        )
                    })?;
            }
            "cursor" => {
                let cursor: ListCursor = value.parse().map_err(|_| {
                    AdminError::field("cursor", "is not a cursor this API returned")
                })?;
                list.cursor = Some(cursor);
            }
            _ => {
                return Err(AdminError::InvalidMember {
                    message:
                        "unknown query parameter; expected owner, include_revoked, limit or cursor"
                            .into(),
                    field: name,
                });
            }
        }
    }
    list.owner = if actor.is_admin() {
        owner
    } else {
        match (owner, actor.user_id()) {
            (Some(wanted), Some(me)) if wanted != me => return Err(admin_needed()),
            (_, Some(me)) => Some(me.to_owned()),
            (_, None) => return Err(admin_needed()),
        }
    };
    let page = keys.list(&list).await?;
    Ok(Json(KeyList {
        keys: page.keys.iter().map(KeyRecord::view).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// Creates a key and returns its token, shown this once.
#[utoipa::path(
    post,
    path = "/keys",
    tag = "keys",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "The key and its token", body = IssuedKeyBody),
        (status = 400, description = "The body is not valid JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No key and no session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks `keys:write`, `keys:admin` (service keys, other owners) or one of the requested scopes; `scope` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A member is invalid (unknown scope, an expiry in the past, more than 3650 days ahead or not RFC 3339, ...); `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn create_key(
    State(keys): State<Keyward>,
    CurrentActor(actor): CurrentActor,
    JsonBody(body): JsonBody<CreateKeyRequest>,
) -> Result<Response, AdminError> {
    require(&actor, Need::Write)?;
    let kind = body.kind.unwrap_or_default();
    let owner = match kind {
        KeyKind::Service if !actor.is_admin() => return Err(admin_needed()),
        KeyKind::Service => body.owner,
        _ => match (body.owner, actor.user_id()) {
            (Some(owner), me) if me != Some(owner.as_str()) && !actor.is_admin() => {
                return Err(admin_needed());
            }
            (Some(owner), _) => Some(owner),
            (None, me) => me.map(str::to_owned),
        },
    };
    let expiry = match (body.expires_in_days, body.expires_at) {
        (None, None) => Expiry::default(),
        (Some(Some(days)), None) => Expiry::InDays(days),
        (Some(None), None) => Expiry::Never,
        (None, Some(at)) => Expiry::At(at),
        (Some(_), Some(_)) => {
            return Err(AdminError::field(
                "expires_at",
                "give either expires_in_days or expires_at, not both",
            ));
        }
    };
    let scopes = body.scopes.unwrap_or_default();
    if let Ok(requested) = keys.catalog().parse_set(&scopes) {
        ensure_holds(&actor, &requested)?;
    }
    let mut new = match kind {
        KeyKind::Service => NewKey::service(body.name.unwrap_or_default()),
        _ => NewKey::personal(body.name.unwrap_or_default(), String::new()),
    };
    new.owner = owner;
    new.scopes = scopes;
    new.expiry = expiry;
    new.allowed_ips = body.allowed_ips.unwrap_or_default();
    new.rate_limit = body.rate_limit;
    new.metadata = body.metadata.unwrap_or(serde_json::Value::Null);
    let issued = keys.create(new).await?;
    audit::event(&actor, issued.record.id, "create");
    let body = IssuedKeyBody {
        key: issued.record.view(),
        token: issued.token.expose_secret().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// One key.
#[utoipa::path(
    get,
    path = "/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    responses(
        (status = 200, description = "The key", body = KeyObject),
        (status = 401, description = "No key and no session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks `keys:read`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such key, or another owner's key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn get_key(
    State(keys): State<Keyward>,
    CurrentActor(actor): CurrentActor,
    Path(id): Path<String>,
) -> Result<Json<KeyObject>, AdminError> {
    require(&actor, Need::Read)?;
    let record = load(&keys, &actor, &id).await?;
    Ok(Json(record.view()))
}

/// Changes a key's name, scopes, state, allowed networks, rate limit or metadata.
#[utoipa::path(
    patch,
    path = "/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    request_body = UpdateKeyRequest,
    responses(
        (status = 200, description = "The changed key", body = KeyObject),
        (status = 400, description = "The body is not valid JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No key and no session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks `keys:write` or one of the new scopes; `scope` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such key, or another owner's key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A member is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn update_key(
    State(keys): State<Keyward>,
    CurrentActor(actor): CurrentActor,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateKeyRequest>,
) -> Result<Json<KeyObject>, AdminError> {
    require(&actor, Need::Write)?;
    let record = load(&keys, &actor, &id).await?;
    let changes = KeyChanges {
        name: not_null("name", body.name)?,
        scopes: not_null("scopes", body.scopes)?,
        active: not_null("active", body.active)?,
        allowed_ips: not_null("allowed_ips", body.allowed_ips)?,
        rate_limit: body.rate_limit,
        metadata: body.metadata.map(|m| m.unwrap_or(serde_json::Value::Null)),
    };
    if let Some(scopes) = &changes.scopes {
        if let Ok(requested) = keys.catalog().parse_set(scopes) {
            ensure_holds(&actor, &requested)?;
        }
    }
    let updated = keys.update(record.id, changes).await?;
    audit::event(&actor, updated.id, "update");
    Ok(Json(updated.view()))
}

fn not_null<T>(field: &'static str, value: Option<Option<T>>) -> Result<Option<T>, AdminError> {
    match value {
        Some(None) => Err(ValidationError::field(field, "must not be null").into()),
        Some(Some(value)) => Ok(Some(value)),
        None => Ok(None),
    }
}

/// Revokes a key: it stops working at once and stays listed.
#[utoipa::path(
    post,
    path = "/keys/{id}/revoke",
    tag = "keys",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    responses(
        (status = 200, description = "The revoked key", body = KeyObject),
        (status = 401, description = "No key and no session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks `keys:write`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such key, or another owner's key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn revoke_key(
    State(keys): State<Keyward>,
    CurrentActor(actor): CurrentActor,
    Path(id): Path<String>,
) -> Result<Json<KeyObject>, AdminError> {
    require(&actor, Need::Write)?;
    let record = load(&keys, &actor, &id).await?;
    let revoked = keys.revoke(record.id).await?;
    audit::event(&actor, revoked.id, "revoke");
    Ok(Json(revoked.view()))
}

/// Deletes a key permanently.
#[utoipa::path(
    delete,
    path = "/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    responses(
        (status = 204, description = "The key is deleted"),
        (status = 401, description = "No key and no session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks `keys:write`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such key, or another owner's key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn delete_key(
    State(keys): State<Keyward>,
    CurrentActor(actor): CurrentActor,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    require(&actor, Need::Write)?;
    let record = load(&keys, &actor, &id).await?;
    keys.delete(record.id).await?;
    audit::event(&actor, record.id, "delete");
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a key a new token; the old one stops at once, or after `grace_seconds`.
#[utoipa::path(
    post,
    path = "/keys/{id}/regenerate",
    tag = "keys",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    request_body(content = Option<RegenerateRequest>, description = "Optional; an empty body regenerates without grace"),
    responses(
        (status = 200, description = "The key and its new token", body = IssuedKeyBody),
        (status = 400, description = "The body is not valid JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No key and no session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks `keys:write` or one of the key's scopes", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such key, or another owner's key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not `application/json`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`grace_seconds` is above 86400", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn regenerate_key(
    State(keys): State<Keyward>,
    CurrentActor(actor): CurrentActor,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<RegenerateRequest>,
) -> Result<Json<IssuedKeyBody>, AdminError> {
    require(&actor, Need::Write)?;
    let record = load(&keys, &actor, &id).await?;
    let grace = body.grace_seconds.map(GracePeriod::from_secs).transpose()?;
    // The caller receives the new token, so it must hold everything the key may do.
    ensure_holds(&actor, &record.scopes)?;
    let issued = keys.regenerate(record.id, grace).await?;
    audit::event(&actor, issued.record.id, "regenerate");
    Ok(Json(IssuedKeyBody {
        key: issued.record.view(),
        token: issued.token.expose_secret().to_owned(),
    }))
}

/// Extends a key's expiry by its lifetime, counted from now.
///
/// A lifetime above 3650 days (`MAX_LIFETIME_DAYS`, from keys stored before that bound)
/// counts as 3650 days.
#[utoipa::path(
    post,
    path = "/keys/{id}/refresh",
    tag = "keys",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    responses(
        (status = 200, description = "The refreshed key", body = KeyObject),
        (status = 401, description = "No key and no session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks `keys:write`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such key, or another owner's key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The key never expires, is revoked or is disabled, or its stored lifetime is not positive", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn refresh_key(
    State(keys): State<Keyward>,
    CurrentActor(actor): CurrentActor,
    Path(id): Path<String>,
) -> Result<Json<KeyObject>, AdminError> {
    require(&actor, Need::Write)?;
    let record = load(&keys, &actor, &id).await?;
    let refreshed = keys.refresh(record.id).await?;
    audit::event(&actor, refreshed.id, "refresh");
    Ok(Json(refreshed.view()))
}

/// The key that authenticates this request and what it may do now.
#[utoipa::path(
    get,
    path = "/self",
    tag = "self",
    responses(
        (status = 200, description = "The presenting key", body = SelfKey),
        (status = 401, description = "No API key was presented", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_self(
    State(keys): State<Keyward>,
    PresentingKey(principal): PresentingKey,
) -> Result<Json<SelfKey>, AdminError> {
    let record = keys.get(principal.key_id()).await?;
    Ok(Json(SelfKey {
        key: record.view(),
        effective_scopes: principal.scopes().to_strings(),
    }))
}

/// Refreshes the key that authenticates this request (no management scope needed).
///
/// Like `POST /keys/{id}/refresh`, by the key's lifetime counted from now, at most 3650 days.
#[utoipa::path(
    post,
    path = "/self/refresh",
    tag = "self",
    responses(
        (status = 200, description = "The refreshed key", body = KeyObject),
        (status = 401, description = "No API key was presented", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The key never expires, or its stored lifetime is not positive", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn refresh_self(
    State(keys): State<Keyward>,
    PresentingKey(principal): PresentingKey,
) -> Result<Json<KeyObject>, AdminError> {
    let actor = crate::Actor::from_principal(&principal);
    let refreshed = keys.refresh(principal.key_id()).await?;
    audit::event(&actor, refreshed.id, "refresh");
    Ok(Json(refreshed.view()))
}

/// Answers paths under the router that match no route.
pub(crate) async fn not_found() -> AdminError {
    AdminError::NotFound {
        detail: "no such route".into(),
    }
}

/// Answers a known path with a method it does not serve.
pub(crate) async fn method_not_allowed() -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
        .detail("this route does not serve the request's method")
}
