//! Authorization of the management routes: which actor may see, change and create which key.

use keyward::Keyward;
use keyward_core::scope::{KEYS_ADMIN, KEYS_READ, KEYS_WRITE};
use keyward_core::{KeyId, KeyRecord, ScopeSet};

use crate::actor::Actor;
use crate::error::AdminError;

/// What a route needs of its actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// `keys:read`.
    Read,
    /// `keys:write`.
    Write,
}

impl Need {
    fn scope(self) -> &'static str {
        match self {
            Self::Read => KEYS_READ,
            Self::Write => KEYS_WRITE,
        }
    }
}

/// Checks the management scope only (enough for the catalog).
pub(crate) fn require_scope(actor: &Actor, need: Need) -> Result<(), AdminError> {
    if actor.grants().allows_str(need.scope()) || actor.is_admin() {
        Ok(())
    } else {
        Err(AdminError::InsufficientScope {
            scope: need.scope().to_owned(),
        })
    }
}

/// Checks that the actor may manage keys at all: the management scope, and a user to own
/// keys unless it is an administrator (a service key without `keys:admin` manages nothing).
pub(crate) fn require(actor: &Actor, need: Need) -> Result<(), AdminError> {
    require_scope(actor, need)?;
    if actor.user_id().is_none() && !actor.is_admin() {
        return Err(admin_needed());
    }
    Ok(())
}

pub(crate) fn admin_needed() -> AdminError {
    AdminError::InsufficientScope {
        scope: KEYS_ADMIN.to_owned(),
    }
}

/// Whether the actor may see `record`: administrators see every key, others their own.
pub(crate) fn can_see(actor: &Actor, record: &KeyRecord) -> bool {
    actor.is_admin() || (actor.user_id().is_some() && record.owner.as_deref() == actor.user_id())
}

/// The key `id` if the actor may see it; someone else's key answers 404 like a missing one.
pub(crate) async fn load(keys: &Keyward, actor: &Actor, id: &str) -> Result<KeyRecord, AdminError> {
    let id: KeyId = id.parse().map_err(|_| AdminError::not_found())?;
    match keys.get(id).await {
        Ok(record) if can_see(actor, &record) => Ok(record),
        Ok(_) => Err(AdminError::not_found()),
        Err(err) => Err(err.into()),
    }
}

/// Refuses a key holding a scope the actor lacks, naming the first such scope.
pub(crate) fn ensure_holds(actor: &Actor, scopes: &ScopeSet) -> Result<(), AdminError> {
    // The actor's grants were expanded by the catalog when it was extracted.
    match scopes.iter().find(|scope| !actor.grants().allows(scope)) {
        Some(scope) => Err(AdminError::InsufficientScope {
            scope: scope.to_string(),
        }),
        None => Ok(()),
    }
}
