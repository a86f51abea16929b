//! The key record's rules: expiry, refresh, regenerate and grace, changes.

use super::*;
use crate::clock::extremes;
use crate::input::NewKey;
use crate::lifetime::MAX_GRACE_SECONDS;
use crate::{ScopeCatalog, TokenFormat};
use proptest::prelude::*;

fn now() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn record() -> KeyRecord {
    let catalog = ScopeCatalog::builder().build().unwrap();
    NewKey::personal("Backup", "alice")
        .scopes(["keys:read"])
        .issue(
            &catalog,
            &TokenFormat::new("books").unwrap(),
            &TokenHasher::sha256(),
            now(),
        )
        .unwrap()
        .record
}

#[test]
fn refresh_extends_by_lifetime() {
    let mut key = record();
    let later = now() + TimeDelta::days(10);
    key.refresh(later).unwrap();
    assert_eq!(key.expires_at, Some(later + TimeDelta::days(30)));
}

#[test]
fn refresh_rules() {
    let mut key = record();
    key.lifetime = None;
    key.expires_at = None;
    assert_eq!(key.refresh(now()), Err(RuleError::NeverExpires));
    let mut key = record();
    key.active = false;
    assert_eq!(key.refresh(now()), Err(RuleError::Inactive));
    let mut key = record();
    key.revoke(now());
    assert_eq!(key.refresh(now()), Err(RuleError::Revoked));
}

#[test]
fn rotation_with_and_without_grace() {
    let format = TokenFormat::new("books").unwrap();
    let hasher = TokenHasher::sha256();
    let mut key = record();
    let old = key.digest;
    let grace = GracePeriod::from_secs(60).unwrap();
    let (rotation, token) = SecretRotation::generate(&format, &hasher, Some(grace), now());
    key.rotate(&rotation, now()).unwrap();
    assert!(key.matches(&hasher.digest(&token), now()));
    assert!(key.matches(&old, now() + TimeDelta::seconds(59)));
    assert!(!key.matches(&old, now() + TimeDelta::seconds(60)));
    assert_eq!(key.hint, token.hint());

    let (rotation, _) = SecretRotation::generate(&format, &hasher, None, now());
    key.rotate(&rotation, now()).unwrap();
    assert!(key.previous.is_none());
    assert!(!key.matches(&old, now()));

    key.revoke(now());
    assert_eq!(key.rotate(&rotation, now()), Err(RuleError::Revoked));
}

#[test]
fn refresh_caps_the_lifetime_at_the_maximum() {
    let mut key = record();
    key.lifetime = Some(TimeDelta::days(365 * 260_000));
    key.expires_at = Some(DateTime::<Utc>::MAX_UTC);
    key.refresh(now()).unwrap();
    assert_eq!(key.expires_at, Some(now() + MAX_LIFETIME));
    assert_eq!(key.lifetime, Some(MAX_LIFETIME));
}

#[test]
fn refresh_refuses_what_cannot_extend_the_key() {
    for lifetime in [TimeDelta::zero(), TimeDelta::seconds(-1), TimeDelta::MIN] {
        let mut key = record();
        key.lifetime = Some(lifetime);
        let before = key.clone();
        assert_eq!(key.refresh(now()), Err(RuleError::InvalidLifetime));
        assert_eq!(key, before);
    }
    let mut key = record();
    let before = key.clone();
    let end = DateTime::<Utc>::MAX_UTC - TimeDelta::days(1);
    assert_eq!(key.refresh(end), Err(RuleError::ExpiryOutOfRange));
    assert_eq!(key, before);
}

#[test]
fn grace_ends_at_the_latest_instant_at_most() {
    let format = TokenFormat::new("books").unwrap();
    let hasher = TokenHasher::sha256();
    let grace = GracePeriod::from_secs(86_400).unwrap();
    let late = DateTime::<Utc>::MAX_UTC - TimeDelta::seconds(10);
    let (rotation, _) = SecretRotation::generate(&format, &hasher, Some(grace), late);
    assert_eq!(
        rotation.previous_valid_until,
        Some(DateTime::<Utc>::MAX_UTC)
    );
}

#[test]
fn revoke_keeps_first_time() {
    let mut key = record();
    key.revoke(now());
    key.revoke(now() + TimeDelta::hours(1));
    assert_eq!(key.revoked_at, Some(now()));
}

proptest! {
    /// Whatever a store holds and whatever the clock says, a refresh either sets the
    /// expiry to `now` plus the capped lifetime, which is then in the future, or refuses
    /// for the documented reason and leaves the record as it was.
    #[test]
    fn refresh_never_panics_and_agrees_with_its_rules(
        now in extremes::instant(),
        expires_at in prop::option::of(extremes::instant()),
        lifetime in prop::option::of(extremes::lifetime()),
    ) {
        let mut key = record();
        key.expires_at = expires_at;
        key.lifetime = lifetime;
        let before = key.clone();
        let result = key.refresh(now);
        let expected = match lifetime {
            None => Err(RuleError::NeverExpires),
            Some(l) if l <= TimeDelta::zero() => Err(RuleError::InvalidLifetime),
            Some(l) => now
                .checked_add_signed(l.min(MAX_LIFETIME))
                .map(|_| ())
                .ok_or(RuleError::ExpiryOutOfRange),
        };
        prop_assert_eq!(result, expected);
        if result.is_ok() {
            let capped = lifetime.unwrap().min(MAX_LIFETIME);
            prop_assert_eq!(key.expires_at, Some(now + capped));
            prop_assert_eq!(key.lifetime, Some(capped));
            prop_assert!(!key.is_expired(now));
            prop_assert!(key.expires_at.unwrap().signed_duration_since(now) <= MAX_LIFETIME);
            prop_assert_eq!(key.updated_at, now);
        } else {
            prop_assert_eq!(key, before);
        }
    }

    /// A rolling regenerate at any instant: the old token works strictly before the end
    /// of the grace period, which is `now + grace` or the latest instant, never later;
    /// the new token works at once.
    #[test]
    fn regenerate_with_grace_never_panics(
        now in extremes::instant(),
        seconds in prop_oneof![Just(0u32), Just(1), Just(MAX_GRACE_SECONDS), 0..=MAX_GRACE_SECONDS],
        probe in extremes::instant(),
    ) {
        let format = TokenFormat::new("books").unwrap();
        let hasher = TokenHasher::sha256();
        let mut key = record();
        let old = key.digest;
        let grace = GracePeriod::from_secs(seconds).unwrap();
        let (rotation, token) = SecretRotation::generate(&format, &hasher, Some(grace), now);
        key.rotate(&rotation, now).unwrap();
        let new = hasher.digest(&token);
        prop_assert!(key.matches(&new, now) && key.matches(&new, probe));
        match key.previous {
            None => prop_assert_eq!(seconds, 0),
            Some(previous) => {
                prop_assert!(seconds > 0);
                let end = previous.valid_until;
                prop_assert!(end >= now);
                prop_assert!(end.signed_duration_since(now) <= grace.as_time_delta());
                let asked = now.checked_add_signed(grace.as_time_delta());
                prop_assert_eq!(end, asked.unwrap_or(DateTime::<Utc>::MAX_UTC));
                prop_assert_eq!(key.matches(&old, probe), probe < end);
                prop_assert!(!key.matches(&old, end));
            }
        }
    }
}
