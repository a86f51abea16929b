//! Which digests the verification cache may hold: one bit per digest, so that a token the
//! cache has never seen (a forged one, most of all) is turned away by one load instead of a
//! miss in the shared cache, which costs hashing, probing and its eviction policy's
//! bookkeeping.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A bitmap indexed by a digest's first bytes. A bit is set before its entry is cached and
/// stays set while the entry may be there; bits of entries that left are cleared when the
/// map is rebuilt from what the cache holds. A clear bit therefore means "not cached"; a set
/// bit means "maybe": the cache is asked.
///
/// Digests are uniform, so no further hashing is needed. Someone who aims their tokens'
/// digests at set bits (easy, since the digest is public) only gets back the cache lookup
/// this map saves, which every token cost before it.
#[derive(Debug)]
pub(crate) struct Presence {
    words: Box<[AtomicU64]>,
    /// Bits set since the last rebuild; past [`rebuild_after`](Self::rebuild_after) the map
    /// is rebuilt.
    set: AtomicUsize,
    rebuild_after: usize,
}

/// Bits per cached key: with the cache full, about one unknown digest in sixteen or fewer
/// finds its bit set.
const BITS_PER_KEY: u64 = 16;
const MIN_BITS: u64 = 1 << 12;
const MAX_BITS: u64 = 1 << 24;

impl Presence {
    /// A map for a cache of `capacity` keys.
    pub(crate) fn new(capacity: u64) -> Self {
        let bits = capacity
            .saturating_mul(BITS_PER_KEY)
            .clamp(MIN_BITS, MAX_BITS)
            .next_power_of_two();
        let bits = usize::try_from(bits).unwrap_or(usize::MAX);
        Self {
            words: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            set: AtomicUsize::new(0),
            // Rebuilt once entries set an eighth of the bits, so that keys that left the
            // cache do not fill the map.
            rebuild_after: bits / 8,
        }
    }

    fn slot(&self, key: &[u8; 32]) -> (usize, u64) {
        let mut first = [0; 8];
        first.copy_from_slice(&key[..8]);
        // Only the low bits are used (the number of bits is a power of two), so truncating
        // to a 32-bit `usize` loses nothing that counts.
        let bit = u64::from_le_bytes(first) as usize & (self.words.len() * 64 - 1);
        (bit / 64, 1 << (bit % 64))
    }

    /// Whether `key` may be cached.
    pub(crate) fn may_hold(&self, key: &[u8; 32]) -> bool {
        let (word, mask) = self.slot(key);
        self.words[word].load(Ordering::Acquire) & mask != 0
    }

    /// Marks `key` as cached; call before the entry is inserted. Says whether the map should
    /// now be [rebuilt](Self::rebuild).
    pub(crate) fn insert(&self, key: &[u8; 32]) -> bool {
        let (word, mask) = self.slot(key);
        let before = self.words[word].fetch_or(mask, Ordering::AcqRel);
        before & mask == 0 && self.set.fetch_add(1, Ordering::Relaxed) + 1 >= self.rebuild_after
    }

    /// Sets exactly the bits of `held`, the keys the cache holds. The caller keeps inserts
    /// out meanwhile; a lookup running meanwhile sees each word either before or after, and
    /// both have the bits of every key in `held`.
    pub(crate) fn rebuild(&self, held: &[[u8; 32]]) {
        let mut fresh = vec![0_u64; self.words.len()];
        for key in held {
            let (word, mask) = self.slot(key);
            fresh[word] |= mask;
        }
        for (word, bits) in self.words.iter().zip(fresh) {
            word.store(bits, Ordering::Release);
        }
        // Counted afresh: a cache holding more keys than the map has room for is walked once
        // per eighth of the map set anew, not on every insert.
        self.set.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(first: u64, rest: u8) -> [u8; 32] {
        let mut key = [rest; 32];
        key[..8].copy_from_slice(&first.to_le_bytes());
        key
    }

    #[test]
    fn a_marked_key_is_held_and_others_mostly_not() {
        let presence = Presence::new(1_000);
        assert_eq!(presence.words.len() * 64, 16_384);
        let marked: Vec<_> = (0..1_000_u64).map(|i| key(i * 7_919, 1)).collect();
        for k in &marked {
            presence.insert(k);
        }
        assert!(marked.iter().all(|k| presence.may_hold(k)));
        let strangers = (0..10_000_u64)
            .map(|i| key(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), 2))
            .filter(|k| presence.may_hold(k))
            .count();
        assert!(strangers < 1_000, "{strangers} of 10 000 unknown keys pass");
    }

    #[test]
    fn a_rebuild_keeps_the_held_keys_and_clears_the_rest() {
        let presence = Presence::new(1_000);
        let (kept, gone) = (key(3, 0), key(5, 0));
        presence.insert(&kept);
        presence.insert(&gone);
        presence.rebuild(&[kept]);
        assert!(presence.may_hold(&kept));
        assert!(!presence.may_hold(&gone));
        presence.rebuild(&[]);
        assert!(!presence.may_hold(&kept));
    }

    #[test]
    fn asks_for_a_rebuild_once_an_eighth_of_the_bits_are_set() {
        let presence = Presence::new(1);
        assert_eq!(presence.rebuild_after, 512);
        let asked: Vec<bool> = (0..512_u64).map(|i| presence.insert(&key(i, 0))).collect();
        assert!(asked[..511].iter().all(|asked| !asked));
        assert!(asked[511]);
        // A key already marked sets no bit and asks for nothing.
        presence.rebuild(&[]);
        assert!(!presence.insert(&key(0, 0)));
        assert!(!presence.insert(&key(0, 0)));
        // A cache that holds more keys than an eighth of the map is not walked on every insert.
        let held: Vec<_> = (0..600_u64).map(|i| key(i, 0)).collect();
        presence.rebuild(&held);
        assert!(!presence.insert(&key(4_000, 0)));
    }
}
