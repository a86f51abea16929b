//! The application's users: the listing behind the page's owner picker, and the owner check
//! every new or changed personal key passes.

use axum::extract::State;
use keyward::{Json, Keyward};
use keyward_core::{KeyKind, KeyRecord};

use crate::access::{Operation, authorize};
use crate::actor::CurrentActor;
use crate::error::AdminError;
use crate::model::{ProblemBody, UserEntry, UserList};

/// The application's users, for the owner picker (administrators only).
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    responses(
        (status = 200, description = "The application's users, sorted by name", body = UserList),
        (status = 401, description = "No key and no session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks `keys:admin`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "The application does not list its users", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The application's user lookup failed", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list_users(
    State(keys): State<Keyward>,
    CurrentActor(actor): CurrentActor,
) -> Result<Json<UserList>, AdminError> {
    authorize(&actor, Operation::Users)?;
    let Some(mut users) = keys.users().await? else {
        return Err(AdminError::NotFound {
            detail: "this application does not list its users".into(),
        });
    };
    users.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    let users = users
        .into_iter()
        .map(|user| UserEntry {
            scopes: keys.catalog().expand(&user.scopes).to_strings(),
            id: user.id,
            name: user.name,
        })
        .collect();
    Ok(Json(UserList { users }))
}

/// Refuses a personal key whose owner the application does not know (422 naming `owner`), or
/// that holds scopes its owner lacks (422 naming `scopes` and each missing scope): such a key
/// would silently do less than it says. Without [`Callers`](keyward::Callers) keyward cannot
/// know the application's users, and every owner passes.
pub(crate) async fn check_owner(keys: &Keyward, record: &KeyRecord) -> Result<(), AdminError> {
    let (KeyKind::Personal, Some(owner)) = (record.kind, record.owner.as_deref()) else {
        return Ok(());
    };
    if !keys.knows_users() {
        return Ok(());
    }
    let Some(user) = keys.user(owner).await? else {
        return Err(AdminError::field(
            "owner",
            format!("no user with id {owner:?}"),
        ));
    };
    let missing: Vec<String> = record
        .scopes
        .iter()
        .filter(|scope| !user.scopes.allows(scope))
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(AdminError::field(
        "scopes",
        format!(
            "{} does not hold {}; a key never does more than its owner",
            user.name,
            missing.join(", ")
        ),
    ))
}
