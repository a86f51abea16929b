//! The rules the authorization matrix does not show: a replaced token, the bounds a
//! restricted key puts on what it mints, re-enabling, escalation, listing.

use super::*;

#[test]
fn a_previous_token_manages_nothing() {
    let fixture = Fixture::new();
    for (who, record) in [
        (
            "alice's key",
            personal("alice", &["keys:write", "books:read"]),
        ),
        (
            "root's admin key",
            personal("root", &["keys:admin", "books:read"]),
        ),
    ] {
        let actor = previous_token_actor(record);
        for op in Op::ALL {
            let result = authorize(&actor, fixture.operation(op));
            match &result {
                Err(AdminError::Forbidden { detail }) => {
                    assert!(detail.contains("grace period"), "{who} × {op:?}: {detail}");
                }
                other => panic!("{who}'s previous token × {op:?}: expected 403, got {other:?}"),
            }
        }
    }
}

/// alice's key limited to 10.0.0.0/8, 60 requests a minute and 7 days.
fn restricted() -> Actor {
    key_actor(issue(
        NewKey::personal("restricted", "alice")
            .scopes(["keys:write", "books:read"])
            .allowed_ips(["10.0.0.0/8"])
            .rate_limit(60)
            .expiry(Expiry::InDays(7)),
    ))
}

/// A key of alice's within the bounds of [`restricted`].
fn within_bounds() -> NewKey {
    NewKey::personal("minted", "alice")
        .scopes(["books:read"])
        .allowed_ips(["10.1.0.0/16"])
        .rate_limit(30)
        .expiry(Expiry::InDays(7))
}

/// Asserts that `result` is 403 `forbidden` naming `field`.
#[track_caller]
fn assert_beyond(case: &str, result: Result<Reach, AdminError>, field: &str) {
    let err = result.expect_err(case);
    assert_eq!(err.status(), 403, "{case}");
    let AdminError::Forbidden { detail } = &err else {
        panic!("{case}: expected 403 forbidden naming {field}, got {err:?}");
    };
    assert!(
        detail.contains(field),
        "{case}: {detail:?} does not name {field}"
    );
}

#[test]
fn a_restricted_key_mints_only_within_its_bounds() {
    let actor = restricted();
    let create = |new: &NewKey| {
        let issued = issue(new.clone());
        authorize(
            &actor,
            Operation::Create {
                new,
                issued: Some(&issued),
            },
        )
    };

    let own_expiry = actor.key.as_ref().and_then(|key| key.expires_at).unwrap();
    for (case, new) in [
        ("the same bounds", within_bounds()),
        (
            "a host and a subnet",
            within_bounds().allowed_ips(["10.2.3.4", "10.9.0.0/16"]),
        ),
        (
            "the actor's own network",
            within_bounds().allowed_ips(["10.0.0.0/8"]),
        ),
        ("the actor's rate limit", within_bounds().rate_limit(60)),
        (
            "an earlier expiry",
            within_bounds().expiry(Expiry::At(now() + days(1))),
        ),
        (
            "the actor's expiry exactly",
            within_bounds().expiry(Expiry::At(own_expiry)),
        ),
    ] {
        assert_eq!(
            create(&new).ok(),
            Some(Reach::Own("alice".into())),
            "{case}"
        );
    }

    let mut no_ips = within_bounds();
    no_ips.allowed_ips.clear();
    let mut no_rate_limit = within_bounds();
    no_rate_limit.rate_limit = None;
    for (case, new, field) in [
        ("no IP limit", no_ips, "allowed_ips"),
        (
            "a wider network",
            within_bounds().allowed_ips(["10.0.0.0/7"]),
            "allowed_ips",
        ),
        (
            "every network",
            within_bounds().allowed_ips(["0.0.0.0/0"]),
            "allowed_ips",
        ),
        (
            "one network outside",
            within_bounds().allowed_ips(["10.1.0.0/16", "192.168.0.0/16"]),
            "allowed_ips",
        ),
        ("no rate limit", no_rate_limit, "rate_limit"),
        (
            "a higher rate limit",
            within_bounds().rate_limit(61),
            "rate_limit",
        ),
        (
            "a later expiry",
            within_bounds().expiry(Expiry::InDays(30)),
            "expires_at",
        ),
        (
            "a second later",
            within_bounds().expiry(Expiry::At(own_expiry + TimeDelta::seconds(1))),
            "expires_at",
        ),
        (
            "no expiry",
            within_bounds().expiry(Expiry::Never),
            "expires_at",
        ),
    ] {
        assert_beyond(case, create(&new), field);
    }
}

#[test]
fn regenerating_a_key_less_restricted_than_the_actor_is_refused() {
    let actor = restricted();
    let regenerate = |record: &KeyRecord| authorize(&actor, Operation::Regenerate(record));

    assert_eq!(
        regenerate(&issue(within_bounds())).ok(),
        Some(Reach::Own("alice".into()))
    );
    // The actor itself: it receives the new token of a key exactly as restricted as it is.
    let own = actor.key.clone().unwrap();
    assert_eq!(regenerate(&own).ok(), Some(Reach::Own("alice".into())));

    let mut no_rate_limit = within_bounds();
    no_rate_limit.rate_limit = None;
    for (case, record, field) in [
        (
            "an unrestricted key",
            personal("alice", &["books:read"]),
            "allowed_ips",
        ),
        (
            "a wider network",
            issue(within_bounds().allowed_ips(["0.0.0.0/0"])),
            "allowed_ips",
        ),
        ("no rate limit", issue(no_rate_limit), "rate_limit"),
        (
            "a higher rate limit",
            issue(within_bounds().rate_limit(120)),
            "rate_limit",
        ),
        (
            "a later expiry",
            issue(within_bounds().expiry(Expiry::InDays(30))),
            "expires_at",
        ),
        (
            "no expiry",
            issue(within_bounds().expiry(Expiry::Never)),
            "expires_at",
        ),
    ] {
        assert_beyond(case, regenerate(&record), field);
    }
}

#[test]
fn refreshing_beyond_the_actors_expiry_is_refused() {
    let actor = restricted();
    let key = issue(within_bounds().expiry(Expiry::At(now() + days(1))));
    let refresh = |until| authorize(&actor, Operation::Refresh { key: &key, until });

    for until in [now() + days(6), now() + days(7)] {
        assert_eq!(
            refresh(Some(until)).ok(),
            Some(Reach::Own("alice".into())),
            "refresh to {until}"
        );
    }
    assert_beyond("a day later", refresh(Some(now() + days(8))), "expires_at");
    assert_beyond("never", refresh(None), "expires_at");

    // A key that never expires bounds no expiry.
    let unbounded = key_actor(personal("alice", &["keys:write", "books:read"]));
    assert!(
        authorize(
            &unbounded,
            Operation::Refresh {
                key: &key,
                until: Some(now() + days(3650)),
            },
        )
        .is_ok()
    );
}

#[test]
fn enabling_a_key_disabled_by_someone_else_needs_keys_admin() {
    let target = issue(NewKey::personal("alice's script", "alice").scopes(["books:read"]));
    let disabled_by = |by: &str| {
        let mut disabled = target.clone();
        disabled.active = false;
        disabled.disabled_by = Some(by.into());
        disabled
    };
    let by_root = disabled_by("root");
    let by_alice = disabled_by("alice");
    let enable = |before: &KeyRecord| {
        let mut after = before.clone();
        after.active = true;
        after.disabled_by = None;
        after
    };
    let alice = Who::AliceKey.actor();
    let alice_session = Who::AliceSession.actor();
    let cases = [
        (
            "alice's key enables root's",
            &alice,
            &by_root,
            Expect::Forbidden,
        ),
        (
            "alice's session enables root's",
            &alice_session,
            &by_root,
            Expect::Forbidden,
        ),
        (
            "root's key enables root's",
            &Who::AdminKey.actor(),
            &by_root,
            Expect::All,
        ),
        (
            "root's session enables root's",
            &Who::AdminSession.actor(),
            &by_root,
            Expect::All,
        ),
        (
            "alice's key enables her own",
            &alice,
            &by_alice,
            Expect::Own,
        ),
        (
            "alice's session enables her own",
            &alice_session,
            &by_alice,
            Expect::Own,
        ),
    ];
    for (cell, actor, before, expect) in cases {
        let after = enable(before);
        assert_cell(
            cell,
            actor,
            Operation::Update {
                before,
                after: &after,
            },
            Op::Update,
            expect,
        );
    }

    let err = authorize(
        &alice,
        Operation::Update {
            before: &by_root,
            after: &enable(&by_root),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("administrator"), "{err}");

    // Changing anything else of a key an administrator disabled stays the owner's to do.
    let mut renamed = by_root.clone();
    renamed.name = "renamed".into();
    assert_cell(
        "alice renames a key root disabled",
        &alice,
        Operation::Update {
            before: &by_root,
            after: &renamed,
        },
        Op::Update,
        Expect::Own,
    );
}

#[test]
fn an_update_that_adds_a_scope_the_actor_lacks_is_refused() {
    let target = issue(NewKey::personal("alice's script", "alice").scopes(["books:read"]));
    let with_scopes = |scopes: &[&str]| {
        let mut after = target.clone();
        after.scopes = ScopeSet::parse(scopes).unwrap();
        after
    };
    let update = |actor: &Actor, after: &KeyRecord| {
        authorize(
            actor,
            Operation::Update {
                before: &target,
                after,
            },
        )
    };
    let adds_reviews = with_scopes(&["books:read", "reviews:read"]);
    let only_reviews = with_scopes(&["reviews:read"]);

    for (cell, actor) in [
        ("alice's key", Who::AliceKey.actor()),
        ("alice's session", Who::AliceSession.actor()),
        ("root's admin key", Who::AdminKey.actor()),
    ] {
        for after in [&adds_reviews, &only_reviews] {
            match update(&actor, after) {
                Err(AdminError::InsufficientScope { scope }) => {
                    assert_eq!(scope, "reviews:read", "{cell}");
                }
                other => panic!("{cell}: expected 403 reviews:read, got {other:?}"),
            }
        }
    }

    let reviewer = key_actor(personal(
        "alice",
        &["keys:write", "books:read", "reviews:read"],
    ));
    assert_eq!(
        update(&reviewer, &adds_reviews).ok(),
        Some(Reach::Own("alice".into()))
    );

    // A key already holding a scope the actor lacks may be changed otherwise.
    let reviews_key = issue(NewKey::personal("reviews", "alice").scopes(["reviews:read"]));
    let mut renamed = reviews_key.clone();
    renamed.name = "renamed".into();
    let alice = Who::AliceKey.actor();
    assert_cell(
        "alice renames a key with a scope she lacks",
        &alice,
        Operation::Update {
            before: &reviews_key,
            after: &renamed,
        },
        Op::Update,
        Expect::Own,
    );
}

#[test]
fn listing_another_owner_needs_keys_admin() {
    let bob = Who::BobKey.actor();
    let err = authorize(
        &bob,
        Operation::List {
            owner: Some("alice"),
        },
    )
    .unwrap_err();
    assert_eq!(err.status(), 403);
    assert!(
        matches!(&err, AdminError::InsufficientScope { scope } if scope == KEYS_ADMIN),
        "{err:?}"
    );

    let alice = Who::AliceKey.actor();
    for owner in [None, Some("alice")] {
        let reach = authorize(&alice, Operation::List { owner }).unwrap();
        assert_eq!(reach, Reach::Own("alice".into()), "owner {owner:?}");
        assert_eq!(reach.owner().as_deref(), Some("alice"));
    }

    let admin = Who::AdminKey.actor();
    let every = authorize(&admin, Operation::List { owner: None }).unwrap();
    assert_eq!(every.owner(), None);
    let alices = authorize(
        &admin,
        Operation::List {
            owner: Some("alice"),
        },
    )
    .unwrap();
    assert_eq!(alices.owner().as_deref(), Some("alice"));
}

#[test]
fn default_expiry_is_clamped_to_the_actors_key() {
    let expiring = |expiry| {
        key_actor(issue(
            NewKey::personal("k", "alice")
                .scopes(["keys:write"])
                .expiry(expiry),
        ))
    };

    assert_eq!(
        default_expiry(&expiring(Expiry::InDays(7)), now()),
        Expiry::At(now() + days(7))
    );
    // Later, the same bound, not 30 days from then.
    assert_eq!(
        default_expiry(&expiring(Expiry::InDays(7)), now() + days(2)),
        Expiry::At(now() + days(7))
    );
    for (case, actor) in [
        ("a key expiring later", expiring(Expiry::InDays(90))),
        (
            "a key expiring with the default",
            expiring(Expiry::InDays(30)),
        ),
        ("a key that never expires", expiring(Expiry::Never)),
        ("a session", Who::AliceSession.actor()),
    ] {
        assert_eq!(default_expiry(&actor, now()), Expiry::default(), "{case}");
    }
    assert_eq!(Expiry::default(), Expiry::InDays(30));
}
