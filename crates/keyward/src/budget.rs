//! The failure budget: how many bad tokens one client may present before it is refused
//! without any store work.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;

use crate::refused::RefusedClients;

/// Counts the failed verifications of each client and says when one has used up its budget.
///
/// Anyone can compute the check digits of a token, so well-formed tokens that no key has cost
/// a store lookup each. keyward charges a client's budget for every well-formed token that is
/// unknown, revoked, expired, disabled or replaced; once a client has spent it, its requests
/// whose token is not a usable cached key are answered 429 with `Retry-After`, without a cache
/// miss or a store lookup, until the budget is renewed. A cached valid key keeps working from
/// the same address.
///
/// The client is the address keyward computes ([`ClientIp`](crate::ClientIp): the socket peer,
/// or the forwarded address when the peer is a trusted proxy). Requests without a known client
/// address (a server without `ConnectInfo`) are not budgeted.
///
/// A budget may also take a unit ahead of each store lookup ([`reserve`](Self::reserve)), so
/// that the lookups a client has in flight at once count against it too: a client flooding
/// over many connections then costs at most its budget in lookups, not its budget plus the
/// lookups already running when the last unit was spent. [`LocalFailureBudget`] does.
///
/// The methods are called on the request path and must not block: an implementation that
/// shares its counts across instances keeps a local view and updates it in the background.
/// [`LocalFailureBudget`] is the in-memory implementation and the default.
pub trait FailureBudget: fmt::Debug + Send + Sync + 'static {
    /// Whether `client` has used up its budget: `Some(wait)` until it is renewed, else `None`.
    fn exhausted(&self, client: IpAddr) -> Option<Duration>;

    /// Charges one failed verification to `client`.
    fn charge(&self, client: IpAddr);

    /// Called before a store lookup for `client`'s token. `Err(wait)` refuses the lookup (the
    /// request is answered 429, as when [`exhausted`](Self::exhausted) says so). `Ok(true)`
    /// means a unit was taken for the lookup: keyward ends it with [`settle`](Self::settle)
    /// and does not [`charge`](Self::charge) that lookup's failure. `Ok(false)`, the default,
    /// takes nothing: a failure is charged after the lookup.
    fn reserve(&self, client: IpAddr) -> Result<bool, Duration> {
        self.exhausted(client).map_or(Ok(false), Err)
    }

    /// Ends a unit taken by [`reserve`](Self::reserve): kept as a failure when `failed` (the
    /// token was unknown), given back otherwise (a key was found, or the store could not
    /// answer).
    fn settle(&self, client: IpAddr, failed: bool) {
        if failed {
            self.charge(client);
        }
    }
}

/// An in-memory [`FailureBudget`]: at most `limit` failures per client per `window` (a fixed
/// window that starts with the client's first failure or lookup). IPv6 clients are counted
/// per /64 network, since one host usually holds a whole /64.
///
/// Each store lookup takes a unit ahead ([`FailureBudget::reserve`]), so a client never has
/// more lookups than its budget in flight or spent: a flood over many connections costs at
/// most `limit` lookups per window. Lookups still running when a window ends hold their units
/// in the next window. A client whose units are all in flight at once (more than
/// `limit` different uncached tokens at the same moment) is answered 429 for the extra ones,
/// with a `Retry-After` of one second, without being refused for the rest of the window.
///
/// The default is 30 failures per minute: generous for a misconfigured script, small for a
/// flood. It remembers up to 100 000 clients; when more are failing at once, the least recent
/// are forgotten.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use keyward::{Keyward, LocalFailureBudget, MemoryStore};
///
/// let keyward = Keyward::builder(MemoryStore::new())
///     .prefix("books")
///     .failure_budget(LocalFailureBudget::new(100, Duration::from_secs(60)))
///     .build()?;
/// # let _ = keyward;
/// # Ok::<(), keyward::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct LocalFailureBudget {
    limit: u32,
    window: Duration,
    clients: Cache<IpAddr, Arc<Window>, crate::cache::Hasher>,
    /// Clients already found over budget: a flood is refused without a cache lookup.
    refused: Arc<RefusedClients>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    /// The failures kept (bits 32 to 62), the units reserved by lookups in flight (low 32
    /// bits) and [`MOVED`], in one word so that a reservation sees them all at once.
    counts: AtomicU64,
}

/// One failure in [`Window::counts`].
const FAILURE: u64 = 1 << 32;
/// Set when the window has ended and its units in flight went on to the next window: the
/// window is no longer changed, so no unit is counted in both or in neither.
const MOVED: u64 = 1 << 63;

fn failures(counts: u64) -> u32 {
    ((counts & !MOVED) >> 32) as u32
}

fn reserved(counts: u64) -> u32 {
    (counts & u64::from(u32::MAX)) as u32
}

impl Window {
    /// A window starting now, with the lookups still in flight from `previous`, which ends.
    fn after(previous: Option<&Self>) -> Self {
        let carried = previous.map_or(0, |previous| {
            reserved(previous.counts.fetch_or(MOVED, Ordering::AcqRel))
        });
        Self {
            started: Instant::now(),
            counts: AtomicU64::new(u64::from(carried)),
        }
    }

    /// Whether the window is still the client's: not past `length`, not moved on.
    fn is_live(&self, length: Duration) -> bool {
        self.started.elapsed() < length && self.counts.load(Ordering::Acquire) & MOVED == 0
    }

    /// Applies `change` unless the window has moved on; `Err(())` if it has.
    fn update(&self, change: impl Fn(u64) -> Option<u64>) -> Result<Result<u64, u64>, ()> {
        let result = self
            .counts
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |counts| {
                if counts & MOVED == 0 {
                    change(counts)
                } else {
                    None
                }
            });
        match result {
            Err(counts) if counts & MOVED != 0 => Err(()),
            result => Ok(result),
        }
    }
}

/// How often an update retries on the next window when its window moved on meanwhile (once
/// is all it takes, unless windows end faster than the update runs).
const ATTEMPTS: usize = 4;

impl fmt::Debug for LocalFailureBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalFailureBudget")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Default for LocalFailureBudget {
    fn default() -> Self {
        Self::new(30, Duration::from_secs(60))
    }
}

impl LocalFailureBudget {
    /// At most `limit` failures per client per `window`. A zero limit refuses a client after
    /// its first failure; a zero window is taken as one second.
    #[must_use]
    pub fn new(limit: u32, window: Duration) -> Self {
        let window = window.max(Duration::from_secs(1));
        Self {
            limit,
            window,
            clients: Cache::builder()
                // An ended window is kept for as long again, so that the next one takes over
                // its lookups in flight.
                .time_to_live(window.saturating_mul(2))
                .max_capacity(100_000)
                .build_with_hasher(crate::cache::Hasher::default()),
            refused: Arc::default(),
        }
    }

    /// Failures allowed per window.
    #[must_use]
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The window of `key` (a [`bucket`]) and its age, while it lasts.
    fn current(&self, key: IpAddr) -> Option<(Arc<Window>, Duration)> {
        let window = self.clients.get(&key)?;
        let age = window.started.elapsed();
        window.is_live(self.window).then_some((window, age))
    }

    /// The window of `key`, started now if it has none or its window ended (the new one
    /// takes over the lookups still in flight).
    fn current_or_new(&self, key: IpAddr) -> (Arc<Window>, Duration) {
        if let Some(current) = self.current(key) {
            return current;
        }
        // One at a time per client, so that an ended window is followed by one window only.
        let result = self.clients.entry(key).and_compute_with(|existing| {
            match existing.map(moka::Entry::into_value) {
                Some(window) if window.is_live(self.window) => Op::Nop,
                ended => Op::Put(Arc::new(Window::after(ended.as_deref()))),
            }
        });
        let window = match result {
            CompResult::Inserted(entry)
            | CompResult::ReplacedWith(entry)
            | CompResult::Unchanged(entry) => entry.into_value(),
            // Not asked for above; a window of its own is still right for this call.
            CompResult::Removed(_) | CompResult::StillNone(_) => Arc::new(Window::after(None)),
        };
        let age = window.started.elapsed();
        (window, age)
    }

    /// A zero limit refuses after the first failure, as one would.
    fn allowed(&self) -> u32 {
        self.limit.max(1)
    }

    /// Remembers that `key` spent its window and says how long it waits.
    fn refuse(&self, key: IpAddr, age: Duration) -> Duration {
        // The window is fixed, so the refusal lasts until it ends whatever else happens.
        let wait = self.window.saturating_sub(age);
        self.refused.remember(key, wait);
        wait
    }
}

/// How long a client whose units are all taken by lookups in flight waits: they end within
/// the store's deadline.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);

impl FailureBudget for LocalFailureBudget {
    fn exhausted(&self, client: IpAddr) -> Option<Duration> {
        let key = bucket(client);
        if let Some(wait) = self.refused.refused(key) {
            return Some(wait);
        }
        let (window, age) = self.current(key)?;
        // Units in flight do not count here: a request may still share a lookup that is
        // running; only starting another one takes a unit (`reserve`).
        let counts = window.counts.load(Ordering::Relaxed);
        (failures(counts) >= self.allowed()).then(|| self.refuse(key, age))
    }

    fn charge(&self, client: IpAddr) {
        for _ in 0..ATTEMPTS {
            let (window, _) = self.current_or_new(bucket(client));
            if window.update(|counts| Some(counts + FAILURE)).is_ok() {
                return;
            }
        }
    }

    fn reserve(&self, client: IpAddr) -> Result<bool, Duration> {
        let key = bucket(client);
        if let Some(wait) = self.refused.refused(key) {
            return Err(wait);
        }
        let allowed = self.allowed();
        for _ in 0..ATTEMPTS {
            let (window, age) = self.current_or_new(key);
            let taken = window.update(|counts| {
                (failures(counts).saturating_add(reserved(counts)) < allowed).then_some(counts + 1)
            });
            return match taken {
                Err(()) => continue,
                Ok(Ok(_)) => Ok(true),
                Ok(Err(counts)) if failures(counts) >= allowed => Err(self.refuse(key, age)),
                Ok(Err(_)) => Err(IN_FLIGHT_WAIT.min(self.window.saturating_sub(age))),
            };
        }
        // Windows ending faster than a reservation runs: no unit, the failure is charged.
        Ok(false)
    }

    fn settle(&self, client: IpAddr, failed: bool) {
        // The window that holds the unit: the one it was taken from, or the window after it,
        // which took over the lookups in flight when it ended (a failure is then charged to
        // the new window).
        for _ in 0..ATTEMPTS {
            let (window, _) = self.current_or_new(bucket(client));
            let settled = window.update(|counts| {
                let counts = if reserved(counts) > 0 {
                    counts - 1
                } else {
                    counts
                };
                Some(if failed { counts + FAILURE } else { counts })
            });
            if settled.is_ok() {
                return;
            }
        }
    }
}

/// The address a budget is kept for: the address itself, or its /64 for IPv6.
fn bucket(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn spends_then_refuses_per_client() {
        let budget = LocalFailureBudget::new(3, Duration::from_secs(60));
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..3 {
            assert_eq!(budget.exhausted(a), None);
            budget.charge(a);
        }
        let wait = budget.exhausted(a).expect("spent");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(58));
        assert_eq!(budget.exhausted(b), None);
    }

    #[test]
    fn renews_after_the_window() {
        let budget = LocalFailureBudget::new(1, Duration::from_secs(1));
        let a = ip("192.0.2.1");
        budget.charge(a);
        assert!(budget.exhausted(a).is_some());
        let deadline = Instant::now() + Duration::from_secs(5);
        while budget.exhausted(a).is_some() {
            assert!(Instant::now() < deadline, "the window never ended");
            std::thread::sleep(Duration::from_millis(20));
        }
        budget.charge(a);
        assert!(budget.exhausted(a).is_some());
    }

    #[test]
    fn lookups_in_flight_take_units() {
        let budget = LocalFailureBudget::new(3, Duration::from_secs(60));
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(budget.reserve(a), Ok(true));
        }
        // All three units are in flight: the next lookup waits a second, no longer.
        assert_eq!(budget.reserve(a), Err(Duration::from_secs(1)));
        // A request that joins a running lookup needs no unit: the client is not spent.
        assert_eq!(budget.exhausted(a), None);
        // A key was found: its unit comes back, and the client is not refused meanwhile.
        budget.settle(a, false);
        assert_eq!(budget.exhausted(a), None);
        assert_eq!(budget.reserve(a), Ok(true));
        // Unknown tokens: the units are kept as failures, and the window is spent.
        for _ in 0..3 {
            budget.settle(a, true);
        }
        let wait = budget.reserve(a).expect_err("spent");
        assert!(wait > Duration::from_secs(58), "{wait:?}");
        assert!(budget.exhausted(a).is_some());
        assert_eq!(budget.reserve(ip("192.0.2.2")), Ok(true));
    }

    #[test]
    fn a_failure_after_the_window_ended_is_charged_to_the_next() {
        let budget = LocalFailureBudget::new(1, Duration::from_secs(1));
        let a = ip("192.0.2.1");
        assert_eq!(budget.reserve(a), Ok(true));
        std::thread::sleep(Duration::from_millis(1100));
        budget.settle(a, true);
        assert!(budget.exhausted(a).is_some());
        assert!(budget.reserve(a).is_err());
    }

    #[test]
    fn lookups_in_flight_when_a_window_ends_count_in_the_next() {
        let budget = LocalFailureBudget::new(2, Duration::from_secs(1));
        let a = ip("192.0.2.1");
        assert_eq!(budget.reserve(a), Ok(true));
        std::thread::sleep(Duration::from_millis(1_100));
        // The new window holds the lookup still in flight: one more unit, not two.
        assert_eq!(budget.reserve(a), Ok(true));
        assert!(budget.reserve(a).is_err());
        // The first lookup ends: its unit leaves the window that holds it.
        budget.settle(a, false);
        assert_eq!(budget.reserve(a), Ok(true));
        assert!(budget.reserve(a).is_err());
        budget.settle(a, false);
        budget.settle(a, false);
        assert_eq!(budget.exhausted(a), None);
        assert_eq!(budget.reserve(a), Ok(true));
    }

    #[test]
    fn no_unit_is_lost_or_doubled_across_windows_under_concurrency() {
        let budget = Arc::new(LocalFailureBudget::new(8, Duration::from_secs(1)));
        let a = ip("192.0.2.1");
        let until = Instant::now() + Duration::from_millis(2_300);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let budget = Arc::clone(&budget);
                std::thread::spawn(move || {
                    let mut lookups = 0_u32;
                    while Instant::now() < until {
                        if budget.reserve(a) == Ok(true) {
                            lookups += 1;
                            budget.settle(a, false);
                        }
                    }
                    lookups
                })
            })
            .collect();
        let lookups: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(lookups > 0);
        // Every unit came back, through two or three ends of windows: all 8 are free.
        for _ in 0..8 {
            assert_eq!(budget.reserve(a), Ok(true));
        }
        assert!(budget.reserve(a).is_err());
    }

    #[test]
    fn ipv6_counts_per_slash_64() {
        let budget = LocalFailureBudget::new(2, Duration::from_secs(60));
        budget.charge(ip("2001:db8:1:2::1"));
        budget.charge(ip("2001:db8:1:2:ffff::9"));
        assert!(budget.exhausted(ip("2001:db8:1:2::77")).is_some());
        assert_eq!(budget.exhausted(ip("2001:db8:1:3::1")), None);
        assert_eq!(bucket(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
