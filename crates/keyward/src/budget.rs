//! The failure budget: how many bad tokens one client may present before it is refused
//! without any store work.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

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
/// Both methods are called on the request path and must not block: an implementation that
/// shares its counts across instances keeps a local view and updates it in the background.
/// [`LocalFailureBudget`] is the in-memory implementation and the default.
pub trait FailureBudget: fmt::Debug + Send + Sync + 'static {
    /// Whether `client` has used up its budget: `Some(wait)` until it is renewed, else `None`.
    fn exhausted(&self, client: IpAddr) -> Option<Duration>;

    /// Charges one failed verification to `client`.
    fn charge(&self, client: IpAddr);
}

/// An in-memory [`FailureBudget`]: at most `limit` failures per client per `window` (a fixed
/// window that starts with the client's first failure). IPv6 clients are counted per /64
/// network, since one host usually holds a whole /64.
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
    failures: AtomicU32,
}

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
                .time_to_live(window)
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
        (age < self.window).then_some((window, age))
    }
}

impl FailureBudget for LocalFailureBudget {
    fn exhausted(&self, client: IpAddr) -> Option<Duration> {
        let key = bucket(client);
        if let Some(wait) = self.refused.refused(key) {
            return Some(wait);
        }
        let (window, age) = self.current(key)?;
        if window.failures.load(Ordering::Relaxed) < self.limit.max(1) {
            return None;
        }
        // The window is fixed, so the refusal lasts until it ends whatever else happens.
        let wait = self.window.saturating_sub(age);
        self.refused.remember(key, wait);
        Some(wait)
    }

    fn charge(&self, client: IpAddr) {
        let key = bucket(client);
        let window = match self.current(key) {
            Some((window, _)) => window,
            None => {
                let fresh = Arc::new(Window {
                    started: Instant::now(),
                    failures: AtomicU32::new(0),
                });
                // Two first failures at once may each start a window; one of them is kept.
                self.clients.insert(key, Arc::clone(&fresh));
                fresh
            }
        };
        window.failures.fetch_add(1, Ordering::Relaxed);
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
    fn ipv6_counts_per_slash_64() {
        let budget = LocalFailureBudget::new(2, Duration::from_secs(60));
        budget.charge(ip("2001:db8:1:2::1"));
        budget.charge(ip("2001:db8:1:2:ffff::9"));
        assert!(budget.exhausted(ip("2001:db8:1:2::77")).is_some());
        assert_eq!(budget.exhausted(ip("2001:db8:1:3::1")), None);
        assert_eq!(bucket(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
