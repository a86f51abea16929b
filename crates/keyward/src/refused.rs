//! Clients known to be over their failure budget, remembered so that a flood from one client
//! is refused with a few atomic loads: no cache lookup, no lock, no write to shared memory.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

/// Slots in the table; a client shares its slot with others whose address hashes alike, and
/// the latest refusal wins the slot. The table only ever answers for the client it holds.
const SLOTS: usize = 64;

/// A small direct-mapped table of refused clients and when their refusal ends.
///
/// Each slot is a sequence lock: a writer makes the sequence odd, writes, and makes it even
/// again; a reader that sees the sequence change while it read, or odd, does not trust what it
/// read and answers "not known" (the caller then asks the budget itself). So a reader never
/// mixes one client's address with another's refusal.
#[derive(Debug)]
pub(crate) struct RefusedClients {
    origin: Instant,
    slots: Box<[Slot]>,
}

#[derive(Debug, Default)]
struct Slot {
    sequence: AtomicU32,
    v6: AtomicBool,
    address: AtomicU64,
    /// Nanoseconds after `origin` when the refusal ends; 0 for an empty slot.
    until: AtomicU64,
}

impl Default for RefusedClients {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
        }
    }
}

impl RefusedClients {
    /// How long `client` (a budget bucket: an IPv4 address or an IPv6 /64) stays refused, if
    /// this table knows.
    pub(crate) fn refused(&self, client: IpAddr) -> Option<Duration> {
        let (v6, address) = split(client);
        let slot = &self.slots[index(v6, address)];
        let before = slot.sequence.load(Ordering::Acquire);
        if before % 2 == 1 {
            return None;
        }
        let same = slot.v6.load(Ordering::Relaxed) == v6
            && slot.address.load(Ordering::Relaxed) == address;
        let until = slot.until.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if !same || slot.sequence.load(Ordering::Relaxed) != before {
            return None;
        }
        let now = self.nanos();
        (until > now).then(|| Duration::from_nanos(until - now))
    }

    /// Remembers that `client` is refused for `wait`. Best effort: when another thread is
    /// writing the same slot, this refusal is not remembered and the budget answers next time.
    pub(crate) fn remember(&self, client: IpAddr, wait: Duration) {
        let (v6, address) = split(client);
        let slot = &self.slots[index(v6, address)];
        let sequence = slot.sequence.load(Ordering::Relaxed);
        if sequence % 2 == 1
            || slot
                .sequence
                .compare_exchange(
                    sequence,
                    sequence.wrapping_add(1),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        let wait = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        slot.v6.store(v6, Ordering::Relaxed);
        slot.address.store(address, Ordering::Relaxed);
        slot.until
            .store(self.nanos().saturating_add(wait), Ordering::Relaxed);
        slot.sequence
            .store(sequence.wrapping_add(2), Ordering::Release);
    }

    fn nanos(&self) -> u64 {
        // Never 0, so that an empty slot is never a refusal.
        u64::try_from(self.origin.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// An address as a family and 64 bits: IPv4 whole, IPv6 by its /64 (what the budget counts).
fn split(client: IpAddr) -> (bool, u64) {
    match client {
        IpAddr::V4(v4) => (false, u64::from(v4.to_bits())),
        IpAddr::V6(v6) => (true, (v6.to_bits() >> 64) as u64),
    }
}

fn index(v6: bool, address: u64) -> usize {
    let mixed = (address ^ u64::from(v6)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (64 - SLOTS.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn answers_only_for_the_client_it_holds() {
        let table = RefusedClients::default();
        let a = ip("192.0.2.1");
        assert_eq!(table.refused(a), None);
        table.remember(a, Duration::from_secs(30));
        let wait = table.refused(a).expect("remembered");
        assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30));
        assert_eq!(table.refused(ip("192.0.2.2")), None);
        // An IPv6 /64 whose low bits equal an IPv4 address is another client.
        assert_eq!(table.refused(ip("::c000:201")), None);
        assert_eq!(table.refused(ip("0:0:c000:201::")), None);
    }

    #[test]
    fn a_refusal_ends() {
        let table = RefusedClients::default();
        let a = ip("2001:db8::");
        table.remember(a, Duration::ZERO);
        assert_eq!(table.refused(a), None);
        table.remember(a, Duration::from_millis(30));
        assert!(table.refused(a).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(table.refused(a), None);
    }

    #[test]
    fn colliding_clients_replace_each_other_and_are_never_confused() {
        let table = RefusedClients::default();
        let clients: Vec<IpAddr> = (0..1000u32)
            .map(|n| IpAddr::V4((0xC000_0200 + n).into()))
            .collect();
        for client in &clients[..500] {
            table.remember(*client, Duration::from_secs(60));
        }
        for client in &clients[500..] {
            assert_eq!(table.refused(*client), None, "{client} was never refused");
        }
        let known = clients[..500]
            .iter()
            .filter(|client| table.refused(**client).is_some())
            .count();
        assert!(known > 0 && known <= SLOTS, "{known}");
    }

    #[test]
    fn concurrent_writers_never_make_a_reader_refuse_the_wrong_client() {
        let table = std::sync::Arc::new(RefusedClients::default());
        let innocent = ip("198.51.100.7");
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let table = std::sync::Arc::clone(&table);
                std::thread::spawn(move || {
                    for n in 0..20_000u32 {
                        let client = IpAddr::V4((0x0A00_0000 + n * 2 + w).into());
                        table.remember(client, Duration::from_secs(60));
                    }
                })
            })
            .collect();
        for _ in 0..20_000 {
            assert_eq!(table.refused(innocent), None);
        }
        for writer in writers {
            writer.join().unwrap();
        }
    }
}
