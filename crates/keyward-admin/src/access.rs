//! Every authorization decision of the management routes, in one function: [`authorize`].
//! Each route loads what it acts on, asks once, and acts only on `Ok`.

use chrono::{DateTime, Utc};
use keyward::Principal;
use keyward_core::{Expiry, KeyKind, KeyRecord, NewKey, ScopeSet};
use keyward_core::{KEYS_ADMIN, KEYS_READ, KEYS_WRITE};

use crate::error::AdminError;

/// The caller of a management route.
#[derive(Debug, Clone)]
pub(crate) struct Actor {
    pub(crate) principal: Principal,
    /// The presenting key as stored, when a key acts: its restrictions bound what it mints.
    pub(crate) key: Option<KeyRecord>,
    /// The address the request came from, recorded with the changes it makes.
    pub(crate) client_ip: Option<std::net::IpAddr>,
}

impl Actor {
    /// Who acts and from where, for the event log.
    pub(crate) fn event_context(&self) -> keyward::EventContext {
        keyward::EventContext::new(self.principal.actor()).client_ip(self.client_ip)
    }

    fn is_admin(&self) -> bool {
        self.principal.has_scope(KEYS_ADMIN)
    }

    fn user_id(&self) -> Option<&str> {
        self.principal.user_id()
    }

    /// Whether the actor may see `record`: administrators see every key, others their own.
    fn can_see(&self, record: &KeyRecord) -> bool {
        self.is_admin() || (self.user_id().is_some() && record.owner.as_deref() == self.user_id())
    }
}

/// What a management route does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Operation<'a> {
    /// Read the scope catalog.
    Catalog,
    /// List the application's users (the owner picker): administrators only.
    Users,
    /// List keys, of `owner` when given.
    List { owner: Option<&'a str> },
    /// See one key.
    Read(&'a KeyRecord),
    /// Create the key `new`; `issued` is the record it makes, as it would be stored, when
    /// `new` is valid (authorization is decided first, so an invalid request from a caller who
    /// may not create it is 403, not 422).
    Create {
        new: &'a NewKey,
        issued: Option<&'a KeyRecord>,
    },
    /// Change a key from `before` into `after`.
    Update {
        before: &'a KeyRecord,
        after: &'a KeyRecord,
    },
    /// Revoke a key.
    Revoke(&'a KeyRecord),
    /// Delete a key.
    Delete(&'a KeyRecord),
    /// Give a key a new token, which the actor receives.
    Regenerate(&'a KeyRecord),
    /// Refresh the key the actor presents (`POST /self/refresh`): no management scope needed.
    RefreshSelf,
    /// Move a key's expiry to `until`.
    Refresh {
        key: &'a KeyRecord,
        until: Option<DateTime<Utc>>,
    },
}

/// Whose keys an allowed operation reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Every owner's (administrators), or only `owner`'s when a listing asked for one.
    All(Option<String>),
    /// The actor's own.
    Own(String),
}

impl Reach {
    /// The owner a listing is limited to.
    pub(crate) fn owner(self) -> Option<String> {
        match self {
            Self::All(owner) => owner,
            Self::Own(owner) => Some(owner),
        }
    }
}

/// May `actor` do `operation`?
///
/// * A replaced token in its grace period manages nothing: it could end its own replacement.
/// * Reads need `keys:read`, changes `keys:write` (`keys:admin` implies both).
/// * Without `keys:admin` an actor reaches only keys it owns; another owner's key is 404,
///   exactly like a missing one; a service key without `keys:admin` owns nothing.
/// * Service keys and keys for other owners need `keys:admin`.
/// * No escalation: a key is never created with, changed to or regenerated with a scope the
///   actor lacks; a key the actor presents bounds what it mints: allowed networks within its
///   own, a rate limit no higher, an expiry no later.
/// * A key disabled by someone else is enabled again only by an administrator.
pub(crate) fn authorize(actor: &Actor, operation: Operation<'_>) -> Result<Reach, AdminError> {
    if actor
        .principal
        .as_key()
        .is_some_and(keyward_core::Principal::is_previous_token)
    {
        return Err(AdminError::Forbidden {
            detail: "a replaced token in its grace period may not manage keys; use the new token"
                .into(),
        });
    }
    if let Operation::RefreshSelf = operation {
        return Ok(Reach::All(None));
    }
    let need = match operation {
        Operation::Catalog | Operation::Users | Operation::List { .. } | Operation::Read(_) => {
            KEYS_READ
        }
        _ => KEYS_WRITE,
    };
    if !actor.principal.has_scope(need) && !actor.is_admin() {
        return Err(AdminError::InsufficientScope {
            scope: need.to_owned(),
        });
    }
    if let Operation::Catalog = operation {
        return Ok(Reach::All(None));
    }
    let reach = match (actor.is_admin(), actor.user_id()) {
        (true, _) => Reach::All(None),
        (false, Some(me)) => Reach::Own(me.to_owned()),
        (false, None) => return Err(admin_needed()),
    };
    match operation {
        Operation::Catalog | Operation::RefreshSelf => Ok(reach),
        Operation::Users => match reach {
            Reach::All(_) => Ok(reach),
            Reach::Own(_) => Err(admin_needed()),
        },
        Operation::List { owner } => match (reach, owner) {
            (Reach::All(_), owner) => Ok(Reach::All(owner.map(str::to_owned))),
            (Reach::Own(me), Some(wanted)) if wanted != me => Err(admin_needed()),
            (own, _) => Ok(own),
        },
        Operation::Create { new, issued } => {
            let own = new.kind == KeyKind::Personal && new.owner.as_deref() == actor.user_id();
            if !own && !actor.is_admin() {
                return Err(admin_needed());
            }
            // Invalid input is refused after this, with the fields named.
            if let Some(record) = issued {
                holds(actor, &record.scopes)?;
                within_limits(actor, record)?;
            }
            Ok(reach)
        }
        Operation::Update { before, after } => {
            visible(actor, before)?;
            if after.scopes != before.scopes {
                holds(actor, &after.scopes)?;
            }
            if after.allowed_ips != before.allowed_ips || after.rate_limit != before.rate_limit {
                within_limits(actor, after)?;
            }
            let enabling = after.active && !before.active;
            let disabled_by_other = before
                .disabled_by
                .as_deref()
                .is_some_and(|by| Some(by) != actor.user_id());
            if enabling && disabled_by_other && !actor.is_admin() {
                return Err(AdminError::Forbidden {
                    detail:
                        "an administrator disabled this key; only an administrator can enable it"
                            .into(),
                });
            }
            Ok(reach)
        }
        Operation::Read(key) | Operation::Revoke(key) | Operation::Delete(key) => {
            visible(actor, key)?;
            Ok(reach)
        }
        Operation::Regenerate(key) => {
            visible(actor, key)?;
            // The actor receives the new token, so it must hold everything the key may do.
            holds(actor, &key.scopes)?;
            within_limits(actor, key)?;
            Ok(reach)
        }
        Operation::Refresh { key, until } => {
            visible(actor, key)?;
            expires_within(actor, until)?;
            Ok(reach)
        }
    }
}

/// The expiry of a key created without one: the default, but no later than the expiry of the
/// key creating it, which bounds what it mints.
pub(crate) fn default_expiry(actor: &Actor, now: DateTime<Utc>) -> Expiry {
    let default = Expiry::default();
    match actor.key.as_ref().and_then(|own| own.expires_at) {
        Some(own) if default.expires_at(now).is_none_or(|at| at > own) => Expiry::At(own),
        _ => default,
    }
}

fn admin_needed() -> AdminError {
    AdminError::InsufficientScope {
        scope: KEYS_ADMIN.to_owned(),
    }
}

/// Someone else's key answers 404, like a missing one.
fn visible(actor: &Actor, key: &KeyRecord) -> Result<(), AdminError> {
    if actor.can_see(key) {
        Ok(())
    } else {
        Err(AdminError::not_found())
    }
}

/// Refuses a key holding a scope the actor lacks, naming the first such scope. The actor's
/// scopes are expanded by the catalog (a key's effective scopes, a session's role).
fn holds(actor: &Actor, scopes: &ScopeSet) -> Result<(), AdminError> {
    match scopes
        .iter()
        .find(|scope| !actor.principal.scopes().allows(scope))
    {
        Some(scope) => Err(AdminError::InsufficientScope {
            scope: scope.to_string(),
        }),
        None => Ok(()),
    }
}

/// A key the actor presents bounds the keys it mints or changes by its own restrictions.
fn within_limits(actor: &Actor, key: &KeyRecord) -> Result<(), AdminError> {
    let Some(own) = &actor.key else {
        return Ok(());
    };
    if !own.allowed_ips.is_empty()
        && (key.allowed_ips.is_empty()
            || !key
                .allowed_ips
                .iter()
                .all(|net| own.allowed_ips.iter().any(|mine| mine.contains(net))))
    {
        return Err(beyond(
            "allowed_ips",
            "must lie within the networks of the key making the change",
        ));
    }
    if let Some(limit) = own.rate_limit {
        if key.rate_limit.is_none_or(|theirs| theirs > limit) {
            return Err(beyond(
                "rate_limit",
                &format!("must be at most {limit}, the limit of the key making the change"),
            ));
        }
    }
    expires_within(actor, key.expires_at)
}

/// A key the actor presents makes no key that outlives it.
fn expires_within(actor: &Actor, until: Option<DateTime<Utc>>) -> Result<(), AdminError> {
    match actor.key.as_ref().and_then(|own| own.expires_at) {
        Some(own) if until.is_none_or(|until| until > own) => Err(beyond(
            "expires_at",
            &format!("must be no later than {own}, when the key making the change expires"),
        )),
        _ => Ok(()),
    }
}

fn beyond(field: &str, message: &str) -> AdminError {
    AdminError::Forbidden {
        detail: format!("{field} {message}"),
    }
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
