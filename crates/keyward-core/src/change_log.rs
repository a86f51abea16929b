//! The change log: one row per change, in the order of a monotonic sequence, which every
//! instance reads from where it last stopped ([`KeyStore::changes_since`](crate::KeyStore::changes_since)).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::event::{Actor, EventContext};
use crate::key::KeyId;

/// Largest batch a store returns from [`changes_since`](crate::KeyStore::changes_since).
pub const MAX_CHANGE_BATCH: usize = 1000;

/// How long a reader keeps asking for a sequence number it skipped (see [`ChangeCursor`]).
pub const CHANGE_GAP_WINDOW: Duration = Duration::from_secs(30);

/// At most this many skipped sequence numbers are awaited at once; beyond it the oldest are
/// given up. Gaps come from transactions in flight or rolled back after taking a number, so
/// more than a handful at a time does not happen in practice.
const MAX_GAPS: usize = 256;

/// What a change did: the type of a key event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// A key was created.
    Created,
    /// A key's settings changed (name, scopes, allowed IPs, rate limit, metadata).
    Updated,
    /// A disabled key was enabled.
    Enabled,
    /// A key was disabled.
    Disabled,
    /// A key was revoked.
    Revoked,
    /// A key was deleted.
    Deleted,
    /// A key got a new secret.
    Regenerated,
    /// A key's expiry was extended by its lifetime.
    Refreshed,
    /// A key will expire soon (recorded once per key and expiry).
    ExpiringSoon,
    /// A key's expiry passed (recorded once per key and expiry).
    Expired,
    /// A key's token was reported leaked, and the key revoked or disabled.
    Leaked,
    /// A key was refused for its rate limit (the first time in a flush interval).
    RateLimited,
    /// What a user holds changed (see [`KeyStore::owner_changed`](crate::KeyStore::owner_changed)):
    /// the change has an owner and no key.
    Owner,
}

impl ChangeKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 13] = [
        Self::Created,
        Self::Updated,
        Self::Enabled,
        Self::Disabled,
        Self::Revoked,
        Self::Deleted,
        Self::Regenerated,
        Self::Refreshed,
        Self::ExpiringSoon,
        Self::Expired,
        Self::Leaked,
        Self::RateLimited,
        Self::Owner,
    ];

    /// The name stored in a database and shown: `created`, `updated`, `enabled`, `disabled`,
    /// `revoked`, `deleted`, `regenerated`, `refreshed`, `expiring_soon`, `expired`,
    /// `leaked`, `rate_limited`, `owner`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Revoked => "revoked",
            Self::Deleted => "deleted",
            Self::Regenerated => "regenerated",
            Self::Refreshed => "refreshed",
            Self::ExpiringSoon => "expiring_soon",
            Self::Expired => "expired",
            Self::Leaked => "leaked",
            Self::RateLimited => "rate_limited",
            Self::Owner => "owner",
        }
    }

    /// Whether the change can alter what a cached copy of the key allows: every kind but the
    /// notices ([`ExpiringSoon`](Self::ExpiringSoon), [`Expired`](Self::Expired),
    /// [`RateLimited`](Self::RateLimited)), which change nothing stored.
    #[must_use]
    pub const fn invalidates(self) -> bool {
        !matches!(self, Self::ExpiringSoon | Self::Expired | Self::RateLimited)
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored kind this version does not know (written by a newer one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown change kind {0:?}")]
pub struct UnknownChangeKind(pub String);

impl FromStr for ChangeKind {
    type Err = UnknownChangeKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownChangeKind(s.to_owned()))
    }
}

/// One row of the change log: a key event.
///
/// A reader drops its cached copies of `key_id` when there is one, else of every key of
/// `owner`. The same rows are the audit trail: who acted ([`actor`](Self::actor)), from
/// where, and what changed ([`detail`](Self::detail), never a secret). Build one with
/// [`ChangeRecord::key`] or [`ChangeRecord::owner`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeRecord {
    /// The position in the log; increases with every change (with gaps on some backends).
    pub seq: u64,
    /// The changed key; `None` for an [`Owner`](ChangeKind::Owner) change.
    pub key_id: Option<KeyId>,
    /// The key's owner (when it has one and the store knows it), or the user of an
    /// [`Owner`](ChangeKind::Owner) change.
    pub owner: Option<String>,
    /// What happened.
    pub kind: ChangeKind,
    /// When the change was recorded.
    pub at: DateTime<Utc>,
    /// Who made it; `None` for rows written before actors were recorded.
    pub actor: Option<Actor>,
    /// The address the change came from, when known.
    pub client_ip: Option<IpAddr>,
    /// What changed: a JSON object (see [`event_detail`](crate::event_detail)), or null.
    pub detail: serde_json::Value,
}

impl ChangeRecord {
    /// A change to key `key_id` (of `owner`), at position `seq`.
    #[must_use]
    pub fn key(
        seq: u64,
        key_id: KeyId,
        owner: Option<String>,
        kind: ChangeKind,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            seq,
            key_id: Some(key_id),
            owner,
            kind,
            at,
            actor: None,
            client_ip: None,
            detail: serde_json::Value::Null,
        }
    }

    /// The same change, made by `context`'s actor from its address, with `detail`.
    #[must_use]
    pub fn by(mut self, context: &EventContext, detail: serde_json::Value) -> Self {
        self.actor = Some(context.actor.clone());
        self.client_ip = context.client_ip;
        self.detail = detail;
        self
    }

    /// A change to what `owner` holds, at position `seq`.
    #[must_use]
    pub fn owner(seq: u64, owner: impl Into<String>, at: DateTime<Utc>) -> Self {
        Self {
            seq,
            key_id: None,
            owner: Some(owner.into()),
            kind: ChangeKind::Owner,
            at,
            actor: None,
            client_ip: None,
            detail: serde_json::Value::Null,
        }
    }
}

/// Where a reader of the change log stands: the highest sequence number it has read, and the
/// lower numbers it has not seen yet but may still appear.
///
/// Database sequences hand out numbers when a row is inserted, but transactions commit in
/// their own order: number 8 can become visible after number 9 was read. A reader that only
/// asked for "above 9" would never see 8. So the cursor keeps such gaps, with the time each was
/// noticed, and the next reads ask for them as well, for [`CHANGE_GAP_WINDOW`] (a number
/// taken by a transaction that then rolled back never appears, so gaps cannot be awaited
/// forever). Stores whose numbers are never skipped (the [`MemoryStore`](crate::MemoryStore),
/// SQLite, where writers take turns) simply never have gaps.
///
/// # Example
///
/// ```
/// use std::time::{Duration, Instant};
/// use keyward_core::ChangeCursor;
///
/// let start = Instant::now();
/// let cursor = ChangeCursor::at(7);
/// // 8 and 10 were read, 9 was not (yet):
/// let cursor = cursor.advance([8, 10], start);
/// assert_eq!(cursor.seq(), 10);
/// assert_eq!(cursor.gaps().collect::<Vec<_>>(), [9]);
/// // 9 shows up later and is read:
/// let cursor = cursor.advance([9], start + Duration::from_secs(1));
/// assert_eq!(cursor.gaps().count(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeCursor {
    seq: u64,
    gaps: Vec<Gap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gap {
    seq: u64,
    noticed: Instant,
}

impl ChangeCursor {
    /// A cursor after sequence number `seq`, with no gaps.
    #[must_use]
    pub const fn at(seq: u64) -> Self {
        Self {
            seq,
            gaps: Vec::new(),
        }
    }

    /// The highest sequence number read (or the head the reader started from).
    #[must_use]
    pub const fn seq(&self) -> u64 {
        self.seq
    }

    /// The skipped sequence numbers still awaited, lowest first.
    pub fn gaps(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.gaps.iter().map(|gap| gap.seq)
    }

    /// The lowest sequence number the next read needs: the lowest gap, or `seq + 1`.
    #[must_use]
    pub fn lowest_needed(&self) -> u64 {
        self.gaps
            .first()
            .map_or(self.seq.saturating_add(1), |gap| gap.seq)
    }

    /// The cursor after reading the rows numbered `seen` (in any order) at `now`, having
    /// asked for everything above [`seq`](Self::seq) and for every [gap](Self::gaps):
    /// numbers between the old and the new highest that were not read become gaps, gaps that
    /// were read are filled, and gaps noticed more than [`CHANGE_GAP_WINDOW`] before `now`
    /// are given up.
    #[must_use]
    pub fn advance(&self, seen: impl IntoIterator<Item = u64>, now: Instant) -> Self {
        let mut seen: Vec<u64> = seen.into_iter().collect();
        seen.sort_unstable();
        seen.dedup();
        let high = seen.last().copied().unwrap_or(self.seq).max(self.seq);
        let mut gaps: Vec<Gap> = self
            .gaps
            .iter()
            .filter(|gap| seen.binary_search(&gap.seq).is_err())
            .filter(|gap| now.saturating_duration_since(gap.noticed) <= CHANGE_GAP_WINDOW)
            .copied()
            .collect();
        // Only the numbers between the old and the new highest can be new gaps; a huge jump
        // (a sequence restarted higher) must not allocate one entry per number.
        let first_new = self.seq.saturating_add(1);
        let span = high.saturating_sub(self.seq);
        let limit = u64::try_from(MAX_GAPS).unwrap_or(u64::MAX);
        let start = if span > limit {
            high.saturating_sub(limit)
        } else {
            first_new
        };
        let mut fresh = seen.iter().copied().filter(|&s| s >= start).peekable();
        for seq in start..high {
            while fresh.next_if(|&s| s < seq).is_some() {}
            if fresh.peek() == Some(&seq) {
                continue;
            }
            gaps.push(Gap { seq, noticed: now });
        }
        if gaps.len() > MAX_GAPS {
            gaps.drain(..gaps.len() - MAX_GAPS);
        }
        Self { seq: high, gaps }
    }
}

impl Default for ChangeCursor {
    /// The very beginning of the log (sequence number 0).
    fn default() -> Self {
        Self::at(0)
    }
}

/// What [`changes_since`](crate::KeyStore::changes_since) answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeBatch {
    /// The changes after the cursor given (and any of its gaps that appeared), in sequence
    /// order.
    pub changes: Vec<ChangeRecord>,
    /// Where to continue from.
    pub cursor: ChangeCursor,
    /// The log no longer reaches back to the cursor given (old rows were pruned while the
    /// reader was away): changes may have been missed, so the reader drops everything it
    /// cached, then continues from [`cursor`](Self::cursor).
    pub truncated: bool,
    /// More changes follow than the limit allowed: read again at once.
    pub more: bool,
}

impl ChangeBatch {
    /// A batch of `changes` read after `after`, continuing from `cursor`.
    #[must_use]
    pub fn new(changes: Vec<ChangeRecord>, cursor: ChangeCursor) -> Self {
        Self {
            changes,
            cursor,
            truncated: false,
            more: false,
        }
    }

    /// The answer to a reader that starts from the head (`after = None`): no changes, only
    /// the cursor of the newest one.
    #[must_use]
    pub fn head(seq: u64) -> Self {
        Self::new(Vec::new(), ChangeCursor::at(seq))
    }

    /// Marks the batch as not reaching back to the cursor given.
    #[must_use]
    pub fn truncated(mut self, truncated: bool) -> Self {
        self.truncated = truncated;
        self
    }

    /// Marks that more changes follow.
    #[must_use]
    pub fn more(mut self, more: bool) -> Self {
        self.more = more;
        self
    }
}

/// The limit a store applies to a [`changes_since`](crate::KeyStore::changes_since) call:
/// `limit` clamped to `1..=`[`MAX_CHANGE_BATCH`].
#[must_use]
pub fn effective_change_limit(limit: usize) -> usize {
    limit.clamp(1, MAX_CHANGE_BATCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in ChangeKind::ALL {
            assert_eq!(kind.as_str().parse::<ChangeKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert!("compromised".parse::<ChangeKind>().is_err());
    }

    #[test]
    fn skipped_numbers_become_gaps_until_read() {
        let t = Instant::now();
        let cursor = ChangeCursor::at(3).advance([4, 7, 5], t);
        assert_eq!(cursor.seq(), 7);
        assert_eq!(cursor.gaps().collect::<Vec<_>>(), [6]);
        assert_eq!(cursor.lowest_needed(), 6);
        let cursor = cursor.advance([6, 9], t);
        assert_eq!(cursor.seq(), 9);
        assert_eq!(cursor.gaps().collect::<Vec<_>>(), [8]);
        let nothing = cursor.advance([], t);
        assert_eq!(nothing, cursor);
    }

    #[test]
    fn gaps_are_given_up_after_the_window() {
        let t = Instant::now();
        let cursor = ChangeCursor::at(0).advance([2], t);
        assert_eq!(cursor.gaps().collect::<Vec<_>>(), [1]);
        let later = cursor.advance([], t + CHANGE_GAP_WINDOW);
        assert_eq!(later.gaps().count(), 1, "still inside the window");
        let expired = cursor.advance([], t + CHANGE_GAP_WINDOW + Duration::from_millis(1));
        assert_eq!(expired.gaps().count(), 0);
        assert_eq!(expired.lowest_needed(), 3);
    }

    #[test]
    fn a_huge_jump_keeps_a_bounded_number_of_gaps() {
        let cursor = ChangeCursor::at(1).advance([u64::MAX / 2], Instant::now());
        assert_eq!(cursor.gaps().len(), MAX_GAPS);
        assert_eq!(cursor.seq(), u64::MAX / 2);
        assert_eq!(cursor.gaps().last(), Some(u64::MAX / 2 - 1));
    }

    #[test]
    fn limits_are_clamped() {
        assert_eq!(effective_change_limit(0), 1);
        assert_eq!(effective_change_limit(50), 50);
        assert_eq!(effective_change_limit(usize::MAX), MAX_CHANGE_BATCH);
    }
}
