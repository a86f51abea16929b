//! Validation of new keys and changes, and expiry arithmetic at the edges of time.

use super::*;
use crate::TokenFormat;
use crate::clock::extremes;
use crate::lifetime::GracePeriod;
use proptest::prelude::*;

fn now() -> DateTime<Utc> {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

fn catalog() -> ScopeCatalog {
    ScopeCatalog::builder()
        .scope("books:read", "Read")
        .build()
        .unwrap()
}

fn issue(new: NewKey) -> Result<IssuedKey, ValidationError> {
    new.issue(
        &catalog(),
        &TokenFormat::new("books").unwrap(),
        &TokenHasher::sha256(),
        now(),
    )
}

fn fields(err: &ValidationError) -> Vec<&'static str> {
    err.errors().iter().map(|e| e.field).collect()
}

#[test]
fn defaults_to_thirty_days() {
    let key = issue(NewKey::personal("k", "u").scopes(["books:read"]))
        .unwrap()
        .record;
    assert_eq!(key.expires_at, Some(now() + TimeDelta::days(30)));
    assert_eq!(key.lifetime, Some(TimeDelta::days(30)));
    assert!(key.active);
}

#[test]
fn presets_and_never() {
    for days in EXPIRY_PRESET_DAYS {
        let key = issue(
            NewKey::service("k")
                .scopes(["books:read"])
                .expiry(Expiry::InDays(days)),
        )
        .unwrap()
        .record;
        assert_eq!(
            key.expires_at,
            Some(now() + TimeDelta::days(i64::from(days)))
        );
    }
    let key = issue(NewKey::service("k").scopes(["*"]).expiry(Expiry::Never))
        .unwrap()
        .record;
    assert_eq!((key.expires_at, key.lifetime), (None, None));
    let err = issue(
        NewKey::service("k")
            .scopes(["*"])
            .expiry(Expiry::InDays(31)),
    )
    .unwrap_err();
    assert_eq!(fields(&err), ["expires_in_days"]);
}

#[test]
fn custom_expiry_must_be_in_the_future() {
    let at = now() + TimeDelta::hours(5);
    let key = issue(NewKey::service("k").scopes(["*"]).expiry(Expiry::At(at)))
        .unwrap()
        .record;
    assert_eq!(key.lifetime, Some(TimeDelta::hours(5)));
    for past in [now(), now() - TimeDelta::seconds(1)] {
        let err = issue(NewKey::service("k").scopes(["*"]).expiry(Expiry::At(past))).unwrap_err();
        assert_eq!(fields(&err), ["expires_at"]);
    }
}

#[test]
fn custom_expiry_is_at_most_the_longest_lifetime() {
    let at = |nudge| Expiry::At(now() + MAX_LIFETIME + nudge);
    for nudge in [
        TimeDelta::seconds(-1),
        TimeDelta::microseconds(-1),
        TimeDelta::zero(),
    ] {
        let key = issue(NewKey::service("k").scopes(["*"]).expiry(at(nudge)))
            .unwrap()
            .record;
        assert_eq!(key.lifetime, Some(MAX_LIFETIME + nudge));
    }
    for nudge in [TimeDelta::microseconds(1), TimeDelta::seconds(1)] {
        let err = issue(NewKey::service("k").scopes(["*"]).expiry(at(nudge))).unwrap_err();
        assert_eq!(fields(&err), ["expires_at"]);
        assert!(err.to_string().contains("3650 days"), "{err}");
    }
    // What chrono's serde accepts, beyond any RFC 3339 year.
    for far in ["+262142-12-31T23:59:59Z", "+10000-01-01T00:00:00Z"] {
        let far: DateTime<Utc> = far.parse().unwrap();
        let err = issue(NewKey::service("k").scopes(["*"]).expiry(Expiry::At(far))).unwrap_err();
        assert_eq!(fields(&err), ["expires_at"]);
    }
    assert_eq!(MAX_LIFETIME, TimeDelta::days(i64::from(MAX_LIFETIME_DAYS)));
}

#[test]
fn name_length_is_counted_in_characters() {
    assert!(issue(NewKey::service("é".repeat(100)).scopes(["*"])).is_ok());
    let err = issue(NewKey::service("é".repeat(101)).scopes(["*"])).unwrap_err();
    assert_eq!(fields(&err), ["name"]);
    let err = issue(NewKey::service("   ").scopes(["*"])).unwrap_err();
    assert_eq!(fields(&err), ["name"]);
    let err = issue(NewKey::service("a\u{0}b").scopes(["*"])).unwrap_err();
    assert_eq!(fields(&err), ["name"]);
}

#[test]
fn reports_every_bad_field() {
    let err = issue(NewKey {
        name: String::new(),
        kind: KeyKind::Service,
        owner: Some("bob".into()),
        scopes: vec!["books:delete".into()],
        expiry: Expiry::InDays(1),
        allowed_ips: vec!["10.0.0.0/33".into()],
        rate_limit: Some(0),
        metadata: serde_json::json!([1]),
    })
    .unwrap_err();
    assert_eq!(
        fields(&err),
        [
            "name",
            "owner",
            "scopes",
            "expires_in_days",
            "allowed_ips",
            "rate_limit",
            "metadata"
        ]
    );
    assert!(err.to_string().contains("books:delete"));
    assert!(err.to_string().contains("10.0.0.0/33"));
}

#[test]
fn personal_keys_need_owners() {
    let mut new = NewKey::personal("k", "u").scopes(["*"]);
    new.owner = None;
    assert_eq!(fields(&issue(new).unwrap_err()), ["owner"]);
}

#[test]
fn ips_and_cidrs() {
    let key = issue(NewKey::service("k").scopes(["*"]).allowed_ips([
        "192.168.1.7",
        "10.1.2.3/8",
        "2001:db8::/32",
        "::1",
    ]))
    .unwrap()
    .record;
    let shown: Vec<String> = key.allowed_ips.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["192.168.1.7/32", "10.0.0.0/8", "2001:db8::/32", "::1/128"]
    );
}

#[test]
fn grace_is_at_most_a_day() {
    assert!(GracePeriod::from_secs(86_400).is_ok());
    assert_eq!(
        GracePeriod::from_secs(86_401).unwrap_err().first_field(),
        "grace_seconds"
    );
}

#[test]
fn changes_validate_each_present_field() {
    let update = KeyChanges {
        name: Some(" New ".into()),
        rate_limit: Some(None),
        ..KeyChanges::default()
    }
    .validate(&catalog())
    .unwrap();
    assert_eq!(update.name.as_deref(), Some("New"));
    assert_eq!(update.rate_limit, Some(None));
    let err = KeyChanges {
        scopes: Some(vec![]),
        allowed_ips: Some(vec!["nope".into()]),
        ..KeyChanges::default()
    }
    .validate(&catalog())
    .unwrap_err();
    assert_eq!(fields(&err), ["scopes", "allowed_ips"]);
}

fn issue_at(expiry: Expiry, at: DateTime<Utc>) -> Result<IssuedKey, ValidationError> {
    NewKey::service("k").scopes(["*"]).expiry(expiry).issue(
        &catalog(),
        &TokenFormat::new("books").unwrap(),
        &TokenHasher::sha256(),
        at,
    )
}

proptest! {
    /// A custom expiry is accepted exactly when it lies in `(now, now + MAX_LIFETIME]`,
    /// whatever the two instants; the key then expires there, not before.
    #[test]
    fn custom_expiry_is_bounded_at_any_instant(
        now in extremes::instant(),
        at in extremes::instant(),
    ) {
        let result = issue_at(Expiry::At(at), now);
        let distance = at.signed_duration_since(now);
        let valid = distance > TimeDelta::zero() && distance <= MAX_LIFETIME;
        match result {
            Ok(issued) => {
                prop_assert!(valid);
                let key = issued.record;
                prop_assert_eq!(key.expires_at, Some(at));
                prop_assert_eq!(key.lifetime, Some(distance));
                prop_assert!(!key.is_expired(now));
            }
            Err(err) => {
                prop_assert!(!valid);
                prop_assert_eq!(fields(&err), ["expires_at"]);
            }
        }
    }

    /// A preset expiry at any instant: `now + days`, or a field error when that is out
    /// of range.
    #[test]
    fn preset_expiry_never_panics(
        now in extremes::instant(),
        days in prop::sample::select(EXPIRY_PRESET_DAYS.to_vec()),
    ) {
        let lifetime = TimeDelta::days(i64::from(days));
        match (issue_at(Expiry::InDays(days), now), now.checked_add_signed(lifetime)) {
            (Ok(issued), Some(end)) => {
                prop_assert_eq!(issued.record.expires_at, Some(end));
                prop_assert_eq!(issued.record.lifetime, Some(lifetime));
            }
            (Err(err), None) => prop_assert_eq!(fields(&err), ["expires_in_days"]),
            (result, end) => prop_assert!(false, "{result:?} for an end of {end:?}"),
        }
    }
}
