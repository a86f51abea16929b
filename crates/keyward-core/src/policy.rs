//! Whether a stored key may be used for a request, and if not, why.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use crate::digest::TokenDigest;
use crate::key::KeyRecord;

/// Why a key that was found may not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Denial {
    /// The presented secret was replaced by a regenerate and its grace period is over.
    #[error("the token was replaced by a newer one")]
    Superseded,
    /// The key was revoked.
    #[error("the key was revoked")]
    Revoked,
    /// The key is disabled.
    #[error("the key is disabled")]
    Inactive,
    /// The key's expiry has passed.
    #[error("the key has expired")]
    Expired,
    /// The client's address is not in the key's allow-list.
    #[error("the client address is not allowed to use this key")]
    IpNotAllowed,
}

/// Decides whether `record` may be used at `now` by a client at `client_ip` that presented a
/// token with digest `presented`.
///
/// Checked in order: the presented secret (current, or previous inside its grace period),
/// revocation, the active flag, expiry (an expiry exactly at `now` has passed), and the
/// allow-list (empty = any address; an IPv4 client matches an IPv4-mapped IPv6 network and
/// the reverse). With a non-empty allow-list an unknown client address is refused.
///
/// # Errors
///
/// The [`Denial`] that applies first.
///
/// # Example
///
/// ```
/// use chrono::{TimeDelta, Utc};
/// use keyward_core::policy::{self, Denial};
/// use keyward_core::{NewKey, ScopeCatalog, TokenFormat, TokenHasher};
///
/// let hasher = TokenHasher::sha256();
/// let now = Utc::now();
/// let issued = NewKey::service("ci")
///     .scopes(["*"])
///     .allowed_ips(["10.0.0.0/8"])
///     .issue(&ScopeCatalog::builder().build()?, &TokenFormat::new("books")?, &hasher, now)?;
/// let digest = hasher.digest(&issued.token);
///
/// assert_eq!(policy::evaluate(&issued.record, &digest, now, Some("10.1.2.3".parse()?)), Ok(()));
/// assert_eq!(
///     policy::evaluate(&issued.record, &digest, now, Some("192.0.2.1".parse()?)),
///     Err(Denial::IpNotAllowed)
/// );
/// assert_eq!(
///     policy::evaluate(&issued.record, &digest, now + TimeDelta::days(30), None),
///     Err(Denial::Expired)
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn evaluate(
    record: &KeyRecord,
    presented: &TokenDigest,
    now: DateTime<Utc>,
    client_ip: Option<IpAddr>,
) -> Result<(), Denial> {
    if !record.matches(presented, now) {
        return Err(Denial::Superseded);
    }
    if record.is_revoked() {
        return Err(Denial::Revoked);
    }
    if !record.active {
        return Err(Denial::Inactive);
    }
    if record.is_expired(now) {
        return Err(Denial::Expired);
    }
    if !ip_allowed(&record.allowed_ips, client_ip) {
        return Err(Denial::IpNotAllowed);
    }
    Ok(())
}

/// Whether `client_ip` is inside one of `allowed` (an empty list allows any address).
#[must_use]
pub fn ip_allowed(allowed: &[IpNet], client_ip: Option<IpAddr>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(ip) = client_ip else {
        return false;
    };
    let canonical = ip.to_canonical();
    let mapped = match canonical {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        IpAddr::V6(_) => canonical,
    };
    allowed
        .iter()
        .any(|net| net.contains(&canonical) || net.contains(&mapped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::extremes;
    use crate::{
        GracePeriod, KeyRecord, NewKey, PreviousSecret, ScopeCatalog, SecretRotation, TokenFormat,
        TokenHasher,
    };
    use chrono::TimeDelta;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn t0() -> DateTime<Utc> {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    fn key(ips: &[&str]) -> (KeyRecord, TokenDigest) {
        let hasher = TokenHasher::sha256();
        let issued = NewKey::personal("k", "alice")
            .scopes(["keys:read"])
            .allowed_ips(ips.iter().copied())
            .issue(
                &ScopeCatalog::builder().build().unwrap(),
                &TokenFormat::new("books").unwrap(),
                &hasher,
                t0(),
            )
            .unwrap();
        let digest = hasher.digest(&issued.token);
        (issued.record, digest)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn usable() {
        let (record, digest) = key(&[]);
        assert_eq!(evaluate(&record, &digest, t0(), None), Ok(()));
    }

    #[test]
    fn expiry_exactly_now_is_expired() {
        let (record, digest) = key(&[]);
        let at = record.expires_at.unwrap();
        assert_eq!(
            evaluate(&record, &digest, at - TimeDelta::nanoseconds(1), None),
            Ok(())
        );
        assert_eq!(evaluate(&record, &digest, at, None), Err(Denial::Expired));
    }

    #[test]
    fn never_expiring() {
        let (mut record, digest) = key(&[]);
        record.expires_at = None;
        let far = t0() + TimeDelta::days(365 * 50);
        assert_eq!(evaluate(&record, &digest, far, None), Ok(()));
    }

    #[test]
    fn revoked_beats_inactive_and_expired() {
        let (mut record, digest) = key(&[]);
        record.active = false;
        record.revoke(t0());
        let later = t0() + TimeDelta::days(400);
        assert_eq!(
            evaluate(&record, &digest, later, None),
            Err(Denial::Revoked)
        );
    }

    #[test]
    fn inactive() {
        let (mut record, digest) = key(&[]);
        record.active = false;
        assert_eq!(
            evaluate(&record, &digest, t0(), None),
            Err(Denial::Inactive)
        );
    }

    #[test]
    fn unknown_digest_is_superseded() {
        let (record, _) = key(&[]);
        let other = TokenDigest::from_bytes([1; 32]);
        assert_eq!(
            evaluate(&record, &other, t0(), None),
            Err(Denial::Superseded)
        );
    }

    #[test]
    fn grace_period_ends_exactly_at_valid_until() {
        let (mut record, old) = key(&[]);
        let grace = GracePeriod::from_secs(300).unwrap();
        let (rotation, token) = SecretRotation::generate(
            &TokenFormat::new("books").unwrap(),
            &TokenHasher::sha256(),
            Some(grace),
            t0(),
        );
        record.rotate(&rotation, t0()).unwrap();
        let new = TokenHasher::sha256().digest(&token);
        let end = t0() + TimeDelta::seconds(300);
        assert_eq!(
            evaluate(&record, &old, end - TimeDelta::milliseconds(1), None),
            Ok(())
        );
        assert_eq!(evaluate(&record, &old, end, None), Err(Denial::Superseded));
        assert_eq!(evaluate(&record, &new, end, None), Ok(()));
        // A revoke ends the grace period too.
        record.revoke(t0());
        assert_eq!(evaluate(&record, &old, t0(), None), Err(Denial::Superseded));
    }

    #[test]
    fn empty_allow_list_allows_any_address() {
        let (record, digest) = key(&[]);
        for addr in ["203.0.113.9", "::1", "fe80::1"] {
            assert_eq!(evaluate(&record, &digest, t0(), ip(addr)), Ok(()));
        }
    }

    #[test]
    fn allow_list() {
        let (record, digest) = key(&["10.0.0.0/8", "2001:db8::/32"]);
        assert_eq!(evaluate(&record, &digest, t0(), ip("10.200.0.1")), Ok(()));
        assert_eq!(evaluate(&record, &digest, t0(), ip("2001:db8::5")), Ok(()));
        for refused in ["11.0.0.1", "2001:db9::1"] {
            assert_eq!(
                evaluate(&record, &digest, t0(), ip(refused)),
                Err(Denial::IpNotAllowed),
                "{refused}"
            );
        }
        assert_eq!(
            evaluate(&record, &digest, t0(), None),
            Err(Denial::IpNotAllowed)
        );
    }

    #[test]
    fn ipv4_inside_ipv6_lists_and_back() {
        // A v4-mapped client (dual-stack socket) against a v4 list.
        let (record, digest) = key(&["192.168.0.0/16"]);
        assert_eq!(
            evaluate(&record, &digest, t0(), ip("::ffff:192.168.4.4")),
            Ok(())
        );
        // A v4 client against a v6 list that holds the v4-mapped range.
        let (record, digest) = key(&["::ffff:192.168.0.0/112"]);
        assert_eq!(evaluate(&record, &digest, t0(), ip("192.168.4.4")), Ok(()));
        assert_eq!(
            evaluate(&record, &digest, t0(), ip("192.169.4.4")),
            Err(Denial::IpNotAllowed)
        );
    }

    proptest! {
        /// At any instant, for any stored expiry and grace end: never a panic, and the
        /// answer is the one the rules give, in their order. Once a key is expired or a
        /// previous secret is over, it stays so at every later instant.
        #[test]
        fn evaluate_over_extreme_times(
            now in extremes::instant(),
            later in extremes::instant(),
            expires_at in prop::option::of(extremes::instant()),
            valid_until in prop::option::of(extremes::instant()),
            active in any::<bool>(),
            revoked_at in prop::option::of(extremes::instant()),
            present_old in any::<bool>(),
        ) {
            let (mut record, current) = key(&[]);
            let old = TokenDigest::from_bytes([9; 32]);
            record.expires_at = expires_at;
            record.previous = valid_until.map(|valid_until| PreviousSecret { digest: old, valid_until });
            record.active = active;
            record.revoked_at = revoked_at;
            let presented = if present_old { old } else { current };
            let expected = |at: DateTime<Utc>| {
                let matches = !present_old || valid_until.is_some_and(|end| at < end);
                if !matches {
                    Err(Denial::Superseded)
                } else if revoked_at.is_some() {
                    Err(Denial::Revoked)
                } else if !active {
                    Err(Denial::Inactive)
                } else if expires_at.is_some_and(|end| end <= at) {
                    Err(Denial::Expired)
                } else {
                    Ok(())
                }
            };
            let answer = evaluate(&record, &presented, now, None);
            prop_assert_eq!(answer, expected(now));
            prop_assert_eq!(answer == Err(Denial::Expired), expected(now) == Err(Denial::Expired));
            if later >= now {
                let after = evaluate(&record, &presented, later, None);
                if answer == Err(Denial::Expired) || answer == Err(Denial::Superseded) {
                    prop_assert!(after.is_err(), "{:?} at {} but {:?} at {}", answer, now, after, later);
                }
            }
        }

        #[test]
        fn v4_and_its_mapped_form_agree(a in any::<u32>(), net in any::<u32>(), len in 0u8..=32) {
            let v4 = Ipv4Addr::from(a);
            let nets = [IpNet::new(IpAddr::V4(Ipv4Addr::from(net)), len).unwrap().trunc()];
            prop_assert_eq!(
                ip_allowed(&nets, Some(IpAddr::V4(v4))),
                ip_allowed(&nets, Some(IpAddr::V6(v4.to_ipv6_mapped())))
            );
        }

        #[test]
        fn membership_matches_prefix_arithmetic(a in any::<u128>(), net in any::<u128>(), len in 0u8..=128) {
            let network = IpNet::new(IpAddr::V6(Ipv6Addr::from(net)), len).unwrap().trunc();
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            let expected = (a & mask) == (net & mask);
            let addr = Ipv6Addr::from(a);
            // Mapped addresses are canonicalised to v4; compare only the plain-v6 space.
            prop_assume!(addr.to_ipv4_mapped().is_none());
            prop_assert_eq!(ip_allowed(&[network], Some(IpAddr::V6(addr))), expected);
        }
    }
}
