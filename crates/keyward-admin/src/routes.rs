//! The JSON routes of section "admin router": handlers and their OpenAPI descriptions.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyward::{ClientIp, Json, Keyward, Problem};
use keyward_core::MAX_PAGE_SIZE;
use keyward_core::{
    Expiry, GracePeriod, KeyChanges, KeyId, KeyKind, KeyRecord, ListCursor, ListQuery, NewKey,
    ValidationError,
};

use crate::access::{Actor, Operation, authorize, default_expiry};
use crate::actor::{CurrentActor, PresentingKey};
use crate::audit;
use crate::error::AdminError;
use crate::model::{
    CreateKeyRequest, IssuedKeyBody, KeyList, KeyObject, ProblemBody, RegenerateRequest,
    ScopeEntry, ScopeList, SelfKey, UpdateKeyRequest,
};
use crate::users::check_owner;

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
    authorize(&actor, Operation::Catalog)?;
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
    let pairs = crate::query::pairs(query)?;
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
            "limit" => list.limit = crate::query::page_limit(&value)?,
            "cursor" => {
                let cursor: ListCursor = value.parse().map_err(|_| {
                    AdminError::field("cursor", "is not a cursor this API returned")
                })?;
                list.cursor = Some(cursor);
            }
            _ => {
                return Err(AdminError::from(Problem::invalid(
                    &name,
                    "unknown query parameter; expected owner, include_revoked, limit or cursor",
                )));
            }
        }
    }
    list.owner = authorize(
        &actor,
        Operation::List {
            owner: owner.as_deref(),
        },
    )?
    .owner();
    let page = keys.list(&list).await?;
    Ok(Json(KeyList {
        keys: page
            .keys
            .into_iter()
            .map(|record| key_object(&keys, record))
            .collect(),
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
    Json(body): Json<CreateKeyRequest>,
) -> Result<Response, AdminError> {
    let kind = body.kind.unwrap_or_default();
    let owner = match kind {
        KeyKind::Service => body.owner,
        _ => body
            .owner
            .or_else(|| actor.principal.user_id().map(str::to_owned)),
    };
    let expiry = match (body.expires_in_days, body.expires_at) {
        (None, None) => default_expiry(&actor, keys.now()),
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
    let mut new = match kind {
        KeyKind::Service => NewKey::service(body.name.unwrap_or_default()),
        _ => NewKey::personal(body.name.unwrap_or_default(), String::new()),
    };
    new.owner = owner;
    new.scopes = body.scopes.unwrap_or_default();
    new.expiry = expiry;
    new.allowed_ips = body.allowed_ips.unwrap_or_default();
    new.rate_limit = body.rate_limit;
    new.metadata = body.metadata.unwrap_or(serde_json::Value::Null);
    let issued = keys.issue(new.clone());
    let record = issued.as_ref().ok().map(|issued| &issued.record);
    authorize(
        &actor,
        Operation::Create {
            new: &new,
            issued: record,
        },
    )?;
    let issued = issued?;
    check_owner(&keys, &issued.record).await?;
    let issued = keys.acting(actor.event_context()).insert(issued).await?;
    audit::event(&actor.principal, issued.record.id, "create");
    let body = IssuedKeyBody {
        token: issued.token.expose_secret().to_owned(),
        key: key_object(&keys, issued.record),
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
    let record = load(&keys, &id).await?;
    authorize(&actor, Operation::Read(&record))?;
    Ok(Json(key_object(&keys, record)))
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
    Json(body): Json<UpdateKeyRequest>,
) -> Result<Json<KeyObject>, AdminError> {
    let record = load(&keys, &id).await?;
    let active = not_null("active", body.active)?;
    let changes = KeyChanges {
        name: not_null("name", body.name)?,
        scopes: not_null("scopes", body.scopes)?,
        active,
        disabled_by: (active == Some(false)).then(|| disabler(&actor)),
        allowed_ips: not_null("allowed_ips", body.allowed_ips)?,
        rate_limit: body.rate_limit,
        metadata: body.metadata.map(|m| m.unwrap_or(serde_json::Value::Null)),
    };
    let mut after = record.clone();
    after.apply(&changes.clone().validate(keys.catalog())?, keys.now())?;
    authorize(
        &actor,
        Operation::Update {
            before: &record,
            after: &after,
        },
    )?;
    if after.scopes != record.scopes {
        check_owner(&keys, &after).await?;
    }
    let updated = keys
        .acting(actor.event_context())
        .update(record.id, changes)
        .await?;
    audit::event(&actor.principal, updated.id, "update");
    Ok(Json(key_object(&keys, updated)))
}

/// Who disables a key, as recorded on it: the actor's user, or its key for a service key.
fn disabler(actor: &Actor) -> String {
    match (actor.principal.user_id(), actor.principal.key_id()) {
        (Some(user), _) => user.to_owned(),
        (None, Some(key)) => format!("key:{key}"),
        (None, None) => "unknown".to_owned(),
    }
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
    let record = load(&keys, &id).await?;
    authorize(&actor, Operation::Revoke(&record))?;
    let revoked = keys.acting(actor.event_context()).revoke(record.id).await?;
    audit::event(&actor.principal, revoked.id, "revoke");
    Ok(Json(key_object(&keys, revoked)))
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
    let record = load(&keys, &id).await?;
    authorize(&actor, Operation::Delete(&record))?;
    keys.acting(actor.event_context()).delete(record.id).await?;
    audit::event(&actor.principal, record.id, "delete");
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
    body: Option<Json<RegenerateRequest>>,
) -> Result<Json<IssuedKeyBody>, AdminError> {
    let record = load(&keys, &id).await?;
    let body = body.map(|Json(body)| body).unwrap_or_default();
    let grace = body.grace_seconds.map(GracePeriod::from_secs).transpose()?;
    authorize(&actor, Operation::Regenerate(&record))?;
    let issued = keys
        .acting(actor.event_context())
        .regenerate(record.id, grace)
        .await?;
    audit::event(&actor.principal, issued.record.id, "regenerate");
    Ok(Json(IssuedKeyBody {
        token: issued.token.expose_secret().to_owned(),
        key: key_object(&keys, issued.record),
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
    let record = load(&keys, &id).await?;
    let mut after = record.clone();
    after.refresh(keys.now())?;
    let until = after.expires_at;
    authorize(
        &actor,
        Operation::Refresh {
            key: &record,
            until,
        },
    )?;
    let refreshed = keys
        .acting(actor.event_context())
        .refresh(record.id)
        .await?;
    audit::event(&actor.principal, refreshed.id, "refresh");
    Ok(Json(key_object(&keys, refreshed)))
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
    let key_id = principal.key_id().ok_or_else(AdminError::not_found)?;
    let record = keys.get(key_id).await?;
    Ok(Json(SelfKey {
        key: key_object(&keys, record),
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
    client_ip: Option<ClientIp>,
) -> Result<Json<KeyObject>, AdminError> {
    let actor = Actor {
        principal,
        key: None,
        client_ip: client_ip.map(|ClientIp(ip)| ip),
    };
    authorize(&actor, Operation::RefreshSelf)?;
    let key_id = actor.principal.key_id().ok_or_else(AdminError::not_found)?;
    let refreshed = keys.acting(actor.event_context()).refresh(key_id).await?;
    audit::event(&actor.principal, refreshed.id, "refresh");
    Ok(Json(key_object(&keys, refreshed)))
}

/// The key object of `record`, with the uses this instance counted and has not yet written,
/// so that a key shows as used the moment it was.
fn key_object(keys: &Keyward, mut record: KeyRecord) -> KeyObject {
    keys.include_pending_usage(&mut record);
    record.view()
}

/// The key `id`; an id that is not a key id answers 404 like a missing key.
pub(crate) async fn load(keys: &Keyward, id: &str) -> Result<KeyRecord, AdminError> {
    let id: KeyId = id.parse().map_err(|_| AdminError::not_found())?;
    Ok(keys.get(id).await?)
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
