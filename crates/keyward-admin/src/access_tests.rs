//! The authorization matrix of [`authorize`](super::authorize): every kind of actor against
//! every operation on a key of alice's, then the rules the matrix does not show (a replaced
//! token, the bounds a restricted key puts on what it mints, re-enabling, escalation).

use chrono::TimeDelta;
use keyward::User;
use keyward_core::{ScopeCatalog, TokenFormat, TokenHasher};

use super::*;

fn now() -> DateTime<Utc> {
    "2026-05-01T10:00:00Z".parse().expect("valid time")
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

/// The application's scopes; the management scopes are always declared, with
/// `keys:admin` ⇒ `keys:write` ⇒ `keys:read`.
fn catalog() -> ScopeCatalog {
    ScopeCatalog::builder()
        .scope("books:read", "Read the book collection")
        .scope("reviews:read", "Read reviews")
        .build()
        .expect("valid catalog")
}

/// The record `new` makes at [`now`].
fn issue(new: NewKey) -> KeyRecord {
    new.issue(
        &catalog(),
        &TokenFormat::new("books").expect("valid prefix"),
        &TokenHasher::sha256(),
        now(),
    )
    .expect("valid key")
    .record
}

/// A personal key of `owner` with `scopes`, never expiring and unrestricted.
fn personal(owner: &str, scopes: &[&str]) -> KeyRecord {
    issue(
        NewKey::personal(format!("{owner}'s key"), owner)
            .scopes(scopes.iter().copied())
            .expiry(Expiry::Never),
    )
}

/// The actor presenting `record`, with the effective scopes keyward gives its principal.
fn key_actor(record: KeyRecord) -> Actor {
    let scopes = catalog().expand(&record.scopes);
    Actor {
        principal: keyward_core::Principal::from_record(&record, scopes).into(),
        key: Some(record),
        client_ip: None,
    }
}

/// The actor presenting `record`'s previous token, in its grace period.
fn previous_token_actor(record: KeyRecord) -> Actor {
    let scopes = catalog().expand(&record.scopes);
    let principal = keyward_core::Principal::from_record(&record, scopes).with_previous_token(true);
    Actor {
        principal: principal.into(),
        key: Some(record),
        client_ip: None,
    }
}

/// `user` signed in, with the scopes of their role expanded by the catalog.
fn session_actor(user: &str, scopes: &[&str]) -> Actor {
    let scopes = catalog().expand(&ScopeSet::parse(scopes).expect("valid scopes"));
    Actor {
        principal: Principal::session(User::new(user, user, scopes)),
        key: None,
        client_ip: None,
    }
}

/// The callers of the matrix. Each also holds `books:read`, the scope of the target key and
/// of the keys it creates, so that the matrix shows reach and the management scopes;
/// escalation has its own tests below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The target's owner: a personal key of alice with `keys:write` and `keys:read`.
    AliceKey,
    /// Another user: a personal key of bob with `keys:write` and `keys:read`. (`keys:*` would
    /// be an administrator: the wildcard allows `keys:admin`.)
    BobKey,
    /// A personal key of root with `keys:admin`.
    AdminKey,
    /// A service key with `keys:write` and `keys:read` but not `keys:admin`: it owns nothing.
    ServiceKey,
    /// A personal key of alice with no `keys:` scope.
    NoKeysScope,
    /// alice signed in, with `keys:write`.
    AliceSession,
    /// root signed in, with `keys:admin`.
    AdminSession,
}

impl Who {
    const ALL: [Self; 7] = [
        Self::AliceKey,
        Self::BobKey,
        Self::AdminKey,
        Self::ServiceKey,
        Self::NoKeysScope,
        Self::AliceSession,
        Self::AdminSession,
    ];

    fn actor(self) -> Actor {
        match self {
            Self::AliceKey => key_actor(personal("alice", &["keys:write", "books:read"])),
            Self::BobKey => key_actor(personal("bob", &["keys:write", "books:read"])),
            Self::AdminKey => key_actor(personal("root", &["keys:admin", "books:read"])),
            Self::ServiceKey => key_actor(issue(
                NewKey::service("service key")
                    .scopes(["keys:write", "books:read"])
                    .expiry(Expiry::Never),
            )),
            Self::NoKeysScope => key_actor(personal("alice", &["books:read"])),
            Self::AliceSession => session_actor("alice", &["keys:write", "books:read"]),
            Self::AdminSession => session_actor("root", &["keys:admin", "books:read"]),
        }
    }
}

/// The operations of the matrix; those on one key act on the target, alice's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Catalog,
    /// List the application's users.
    Users,
    /// List without naming an owner: one's own keys, or an administrator's every key.
    ListMine,
    ListAlice,
    ListBob,
    Read,
    /// Create a personal key owned by alice.
    CreateForAlice,
    /// Create a personal key owned by bob.
    CreateForBob,
    CreateService,
    /// Rename.
    Update,
    Revoke,
    Delete,
    Regenerate,
    /// Refresh to 30 days from now.
    Refresh,
}

impl Op {
    const ALL: [Self; 14] = [
        Self::Catalog,
        Self::Users,
        Self::ListMine,
        Self::ListAlice,
        Self::ListBob,
        Self::Read,
        Self::CreateForAlice,
        Self::CreateForBob,
        Self::CreateService,
        Self::Update,
        Self::Revoke,
        Self::Delete,
        Self::Regenerate,
        Self::Refresh,
    ];

    /// The owner a listing names.
    fn list_owner(self) -> Option<&'static str> {
        match self {
            Self::ListAlice => Some("alice"),
            Self::ListBob => Some("bob"),
            _ => None,
        }
    }
}

/// What the matrix operations act on.
struct Fixture {
    /// alice's key: `books:read`, expiring in 30 days.
    target: KeyRecord,
    renamed: KeyRecord,
    for_alice: (NewKey, KeyRecord),
    for_bob: (NewKey, KeyRecord),
    service: (NewKey, KeyRecord),
}

impl Fixture {
    fn new() -> Self {
        let target = issue(NewKey::personal("alice's script", "alice").scopes(["books:read"]));
        let mut renamed = target.clone();
        renamed.name = "renamed".into();
        let issued = |new: NewKey| {
            let new = new.scopes(["books:read"]);
            (new.clone(), issue(new))
        };
        Self {
            target,
            renamed,
            for_alice: issued(NewKey::personal("new", "alice")),
            for_bob: issued(NewKey::personal("new", "bob")),
            service: issued(NewKey::service("new")),
        }
    }

    fn operation(&self, op: Op) -> Operation<'_> {
        fn create((new, issued): &(NewKey, KeyRecord)) -> Operation<'_> {
            Operation::Create {
                new,
                issued: Some(issued),
            }
        }
        match op {
            Op::Catalog => Operation::Catalog,
            Op::Users => Operation::Users,
            Op::ListMine | Op::ListAlice | Op::ListBob => Operation::List {
                owner: op.list_owner(),
            },
            Op::Read => Operation::Read(&self.target),
            Op::CreateForAlice => create(&self.for_alice),
            Op::CreateForBob => create(&self.for_bob),
            Op::CreateService => create(&self.service),
            Op::Update => Operation::Update {
                before: &self.target,
                after: &self.renamed,
            },
            Op::Revoke => Operation::Revoke(&self.target),
            Op::Delete => Operation::Delete(&self.target),
            Op::Regenerate => Operation::Regenerate(&self.target),
            Op::Refresh => Operation::Refresh {
                key: &self.target,
                until: Some(now() + days(30)),
            },
        }
    }
}

/// The outcome of one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Allowed, reaching only the actor's own keys.
    Own,
    /// Allowed, reaching every owner's keys (for a listing, the owner it names).
    All,
    /// 403 `insufficient_scope` naming this scope.
    Lacks(&'static str),
    /// 403 `forbidden`.
    Forbidden,
    /// 404 `not_found`, exactly like a missing key.
    NotFound,
}

impl Expect {
    fn matches(self, result: &Result<Reach, AdminError>, actor: &Actor, op: Op) -> bool {
        let status = match result {
            Ok(_) => None,
            Err(err) => Some(err.status().as_u16()),
        };
        match (self, result) {
            (Self::Own, Ok(Reach::Own(owner))) => Some(owner.as_str()) == actor.user_id(),
            (Self::All, Ok(Reach::All(owner))) => owner.as_deref() == op.list_owner(),
            (Self::Lacks(scope), Err(AdminError::InsufficientScope { scope: missing })) => {
                missing == scope && status == Some(403)
            }
            (Self::Forbidden, Err(AdminError::Forbidden { .. })) => status == Some(403),
            (Self::NotFound, Err(AdminError::NotFound { .. })) => status == Some(404),
            _ => false,
        }
    }
}

/// Asserts one cell, naming it on failure.
#[track_caller]
fn assert_cell(cell: &str, actor: &Actor, operation: Operation<'_>, op: Op, expect: Expect) {
    let result = authorize(actor, operation);
    assert!(
        expect.matches(&result, actor, op),
        "{cell}: expected {expect:?}, got {result:?}"
    );
}

#[test]
fn authorization_matrix() {
    use Expect::{All, Lacks, NotFound, Own};
    use Op::*;
    use Who::*;

    #[rustfmt::skip]
    let matrix = [
        (AliceKey, Catalog, All),
        (AliceKey, Users, Lacks(KEYS_ADMIN)),
        (AliceKey, ListMine, Own),
        (AliceKey, ListAlice, Own),
        (AliceKey, ListBob, Lacks(KEYS_ADMIN)),
        (AliceKey, Read, Own),
        (AliceKey, CreateForAlice, Own),
        (AliceKey, CreateForBob, Lacks(KEYS_ADMIN)),
        (AliceKey, CreateService, Lacks(KEYS_ADMIN)),
        (AliceKey, Update, Own),
        (AliceKey, Revoke, Own),
        (AliceKey, Delete, Own),
        (AliceKey, Regenerate, Own),
        (AliceKey, Refresh, Own),

        (BobKey, Catalog, All),
        (BobKey, Users, Lacks(KEYS_ADMIN)),
        (BobKey, ListMine, Own),
        (BobKey, ListAlice, Lacks(KEYS_ADMIN)),
        (BobKey, ListBob, Own),
        (BobKey, Read, NotFound),
        (BobKey, CreateForAlice, Lacks(KEYS_ADMIN)),
        (BobKey, CreateForBob, Own),
        (BobKey, CreateService, Lacks(KEYS_ADMIN)),
        (BobKey, Update, NotFound),
        (BobKey, Revoke, NotFound),
        (BobKey, Delete, NotFound),
        (BobKey, Regenerate, NotFound),
        (BobKey, Refresh, NotFound),

        (AdminKey, Catalog, All),
        (AdminKey, Users, All),
        (AdminKey, ListMine, All),
        (AdminKey, ListAlice, All),
        (AdminKey, ListBob, All),
        (AdminKey, Read, All),
        (AdminKey, CreateForAlice, All),
        (AdminKey, CreateForBob, All),
        (AdminKey, CreateService, All),
        (AdminKey, Update, All),
        (AdminKey, Revoke, All),
        (AdminKey, Delete, All),
        (AdminKey, Regenerate, All),
        (AdminKey, Refresh, All),

        (ServiceKey, Catalog, All),
        (ServiceKey, Users, Lacks(KEYS_ADMIN)),
        (ServiceKey, ListMine, Lacks(KEYS_ADMIN)),
        (ServiceKey, ListAlice, Lacks(KEYS_ADMIN)),
        (ServiceKey, ListBob, Lacks(KEYS_ADMIN)),
        (ServiceKey, Read, Lacks(KEYS_ADMIN)),
        (ServiceKey, CreateForAlice, Lacks(KEYS_ADMIN)),
        (ServiceKey, CreateForBob, Lacks(KEYS_ADMIN)),
        (ServiceKey, CreateService, Lacks(KEYS_ADMIN)),
        (ServiceKey, Update, Lacks(KEYS_ADMIN)),
        (ServiceKey, Revoke, Lacks(KEYS_ADMIN)),
        (ServiceKey, Delete, Lacks(KEYS_ADMIN)),
        (ServiceKey, Regenerate, Lacks(KEYS_ADMIN)),
        (ServiceKey, Refresh, Lacks(KEYS_ADMIN)),

        (NoKeysScope, Catalog, Lacks(KEYS_READ)),
        (NoKeysScope, Users, Lacks(KEYS_READ)),
        (NoKeysScope, ListMine, Lacks(KEYS_READ)),
        (NoKeysScope, ListAlice, Lacks(KEYS_READ)),
        (NoKeysScope, ListBob, Lacks(KEYS_READ)),
        (NoKeysScope, Read, Lacks(KEYS_READ)),
        (NoKeysScope, CreateForAlice, Lacks(KEYS_WRITE)),
        (NoKeysScope, CreateForBob, Lacks(KEYS_WRITE)),
        (NoKeysScope, CreateService, Lacks(KEYS_WRITE)),
        (NoKeysScope, Update, Lacks(KEYS_WRITE)),
        (NoKeysScope, Revoke, Lacks(KEYS_WRITE)),
        (NoKeysScope, Delete, Lacks(KEYS_WRITE)),
        (NoKeysScope, Regenerate, Lacks(KEYS_WRITE)),
        (NoKeysScope, Refresh, Lacks(KEYS_WRITE)),

        (AliceSession, Catalog, All),
        (AliceSession, Users, Lacks(KEYS_ADMIN)),
        (AliceSession, ListMine, Own),
        (AliceSession, ListAlice, Own),
        (AliceSession, ListBob, Lacks(KEYS_ADMIN)),
        (AliceSession, Read, Own),
        (AliceSession, CreateForAlice, Own),
        (AliceSession, CreateForBob, Lacks(KEYS_ADMIN)),
        (AliceSession, CreateService, Lacks(KEYS_ADMIN)),
        (AliceSession, Update, Own),
        (AliceSession, Revoke, Own),
        (AliceSession, Delete, Own),
        (AliceSession, Regenerate, Own),
        (AliceSession, Refresh, Own),

        (AdminSession, Catalog, All),
        (AdminSession, Users, All),
        (AdminSession, ListMine, All),
        (AdminSession, ListAlice, All),
        (AdminSession, ListBob, All),
        (AdminSession, Read, All),
        (AdminSession, CreateForAlice, All),
        (AdminSession, CreateForBob, All),
        (AdminSession, CreateService, All),
        (AdminSession, Update, All),
        (AdminSession, Revoke, All),
        (AdminSession, Delete, All),
        (AdminSession, Regenerate, All),
        (AdminSession, Refresh, All),
    ];

    // The table is complete: every actor against every operation, once.
    for who in Who::ALL {
        for op in Op::ALL {
            let rows = matrix
                .iter()
                .filter(|(w, o, _)| (*w, *o) == (who, op))
                .count();
            assert_eq!(rows, 1, "the matrix has {rows} rows for {who:?} × {op:?}");
        }
    }

    let fixture = Fixture::new();
    let failures: Vec<String> = matrix
        .iter()
        .filter_map(|&(who, op, expect)| {
            let actor = who.actor();
            let result = authorize(&actor, fixture.operation(op));
            (!expect.matches(&result, &actor, op))
                .then(|| format!("{who:?} × {op:?}: expected {expect:?}, got {result:?}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cells differ:\n{}",
        failures.len(),
        matrix.len(),
        failures.join("\n")
    );
}

#[path = "access_rules_tests.rs"]
mod rules;
