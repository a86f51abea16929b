//! Verification: parse, digest, cache, store, policy, owner, rate limit, usage.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keyward_core::{KeyKind, KeyRecord, TokenDigest, policy};

use crate::budget::FailureBudget;
use crate::cache::{Entry, Grant, Lookup};
use crate::callers::CallerError;
use crate::circuit::PermitGuard;
use crate::handle::Inner;
use crate::lookup::{Failure, Loaded};
use crate::metrics::LookupResult;
use crate::principal::Principal;
use crate::rate::RateCheck;
use crate::rejection::{AuthError, InvalidToken};
use crate::usage::KeyUsage;

/// A request that may go on.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) principal: Principal,
    pub(crate) rate: Option<RateCheck>,
    /// The use to count once a shared limiter allows the request: a request it refuses is
    /// not a use, as with the local limiter.
    pub(crate) pending_use: Option<PendingUse>,
}

/// A use of a key, counted when its request is allowed.
#[derive(Debug)]
pub(crate) struct PendingUse {
    usage: Arc<KeyUsage>,
    at: DateTime<Utc>,
    ip: Option<IpAddr>,
}

impl PendingUse {
    pub(crate) fn record(self) {
        self.usage.record(1, self.at, self.ip);
    }

    /// Notes that the shared limiter refused the request (see
    /// [`KeyUsage::note_rate_limited`]).
    pub(crate) fn note_rate_limited(&self, limit: u32) {
        self.usage.note_rate_limited(limit, self.at);
    }
}

/// The synchronous part of a verification.
pub(crate) enum Step {
    Done(Result<Admitted, AuthError>),
    /// Not cached: the store (and maybe the owner) must be asked.
    Miss(Miss),
}

/// What the asynchronous part of a verification needs.
pub(crate) struct Miss {
    digest: TokenDigest,
    now: DateTime<Utc>,
    ip: Option<IpAddr>,
    /// An entry past its TTL, used only if the store fails (`stale_if_error`).
    stale: Option<Arc<Entry>>,
}

impl Inner {
    /// Everything that needs no I/O: shape and check digits (garbage never reaches the cache
    /// or the store), digest, cache, policy, failure budget, rate limit and usage.
    /// The clock is read only for a well-formed token, and a client whose failure budget is
    /// spent costs a digest and two lookups: garbage and floods cost little.
    pub(crate) fn start(&self, token: &str, ip: Option<IpAddr>) -> Step {
        let Ok(checked) = self.format.check(token) else {
            return Step::Done(Err(AuthError::InvalidToken(InvalidToken::Malformed)));
        };
        let digest = self.hasher.digest(checked);
        let cache = self.cache.as_ref();
        let hit = |entry: &Entry| {
            let now = self.clock.now();
            self.check(entry, &digest, now, ip)
                .and_then(|principal| self.admit(entry, principal, now, ip))
        };
        let stale = match cache.map(|cache| cache.lookup(&digest, hit)) {
            Some(Lookup::Fresh(result)) => {
                self.metrics.cache_hits.increment(1);
                return Step::Done(result);
            }
            Some(Lookup::Stale(entry)) => {
                self.metrics.cache_misses.increment(1);
                Some(entry)
            }
            Some(Lookup::Absent) => {
                self.metrics.cache_misses.increment(1);
                None
            }
            None => None,
        };
        if stale.is_none() {
            if let Some(retry_after) = self.budget_spent(ip) {
                return Step::Done(Err(AuthError::TooManyFailures { retry_after }));
            }
            if cache.is_some_and(|cache| cache.is_unknown(&digest)) {
                self.metrics.cache_negative_hits.increment(1);
                let unknown = AuthError::InvalidToken(InvalidToken::Unknown);
                return Step::Done(Err(self.failed(unknown, ip)));
            }
        }
        Step::Miss(Miss {
            digest,
            now: self.clock.now(),
            ip,
            stale,
        })
    }

    /// The rest of a verification after a cache miss.
    pub(crate) async fn finish(&self, miss: Miss) -> Result<Admitted, AuthError> {
        let Miss {
            digest,
            now,
            ip,
            stale,
        } = miss;
        // Set when this request ran the lookup on a unit of its client's budget, kept as the
        // failure: it is not charged again.
        let charged = AtomicBool::new(false);
        let loaded = self
            .lookups
            .share(&digest, || self.load_reserved(digest, now, ip, &charged))
            .await
            .map_err(|retry_after| AuthError::TooManyFailures { retry_after })?;
        let entry = match (loaded, stale) {
            (Ok(entry), _) => entry,
            (Err(failure), Some(stale)) if failure.is_outage() => {
                tracing::debug!("keyward: the store failed; using a stale cache entry");
                self.metrics.cache_stale_served.increment(1);
                stale
            }
            (Err(failure), _) if charged.load(Ordering::Relaxed) => return Err(failure.to_error()),
            (Err(failure), _) => return Err(self.failed(failure.to_error(), ip)),
        };
        let principal = self.check(&entry, &digest, now, ip)?;
        self.admit(&entry, principal, now, ip)
    }

    pub(crate) async fn verify_token(
        &self,
        token: &str,
        ip: Option<IpAddr>,
    ) -> Result<Admitted, AuthError> {
        match self.start(token, ip) {
            Step::Done(result) => result,
            Step::Miss(miss) => self.finish(miss).await,
        }
    }

    /// The key's policy, evaluated once per request (the IP allow-list included), then its
    /// grant. A refusal for a bad token is charged to the client's failure budget.
    fn check(
        &self,
        entry: &Entry,
        digest: &TokenDigest,
        now: DateTime<Utc>,
        ip: Option<IpAddr>,
    ) -> Result<Principal, AuthError> {
        let granted = match policy::evaluate(&entry.record, digest, now, ip) {
            Err(denial) => Err(AuthError::from(denial)),
            Ok(()) => match &entry.grant {
                Grant::Resolved(principal) => Ok(principal.clone()),
                Grant::OwnerGone => Err(AuthError::InvalidToken(InvalidToken::OwnerGone)),
                // Only revoked and disabled keys are loaded unresolved, and the policy refuses
                // them before their grant is looked at.
                Grant::Unresolved => Err(AuthError::InvalidToken(InvalidToken::Inactive)),
            },
        };
        granted.map_err(|err| self.failed(err, ip))
    }

    /// Rate limit and usage for a request that passed.
    fn admit(
        &self,
        entry: &Entry,
        principal: Principal,
        now: DateTime<Utc>,
        ip: Option<IpAddr>,
    ) -> Result<Admitted, AuthError> {
        let rate = match (&self.rate_limits, entry.record.rate_limit) {
            (Some(limits), Some(per_minute)) => Some(
                limits
                    .check(entry.record.id, per_minute)
                    .map_err(|exceeded| {
                        entry.usage.note_rate_limited(exceeded.limit, now);
                        AuthError::RateLimited {
                            limit: exceeded.limit,
                            retry_after: exceeded.retry_after,
                        }
                    })?,
            ),
            _ => None,
        };
        let pending_use = if rate.as_ref().is_some_and(RateCheck::is_pending) {
            Some(PendingUse {
                usage: Arc::clone(&entry.usage),
                at: now,
                ip,
            })
        } else {
            entry.usage.record(1, now, ip);
            None
        };
        Ok(Admitted {
            principal,
            rate,
            pending_use,
        })
    }

    /// Whether `ip` may no longer present bad tokens.
    fn budget_spent(&self, ip: Option<IpAddr>) -> Option<Duration> {
        self.budget.as_ref()?.exhausted(ip?)
    }

    /// Charges the client's failure budget when `error` says the token was bad.
    fn failed(&self, error: AuthError, ip: Option<IpAddr>) -> AuthError {
        if let (AuthError::InvalidToken(_), Some(budget), Some(ip)) = (&error, &self.budget, ip) {
            budget.charge(ip);
        }
        error
    }

    /// [`load`](Self::load) on a unit of the client's failure budget, taken before and kept
    /// only if the token is unknown (`charged` is then set): the lookups a client has in
    /// flight count against its budget. `Err(wait)` when the budget refuses the lookup.
    async fn load_reserved(
        &self,
        digest: TokenDigest,
        now: DateTime<Utc>,
        ip: Option<IpAddr>,
        charged: &AtomicBool,
    ) -> Result<Loaded, Duration> {
        let unit = match (&self.budget, ip) {
            (Some(budget), Some(ip)) => match budget.reserve(ip) {
                Ok(true) => Some(Unit {
                    budget: &**budget,
                    ip,
                    failed: false,
                }),
                Ok(false) => None,
                Err(wait) => return Err(wait),
            },
            _ => None,
        };
        let loaded = self.load(digest, now).await;
        if let Some(mut unit) = unit {
            unit.failed = matches!(loaded, Err(Failure::Unknown));
            charged.store(unit.failed, Ordering::Relaxed);
        }
        Ok(loaded)
    }

    /// Reads the store and the owner within the deadline, past the circuit breaker and
    /// the bulkhead, and caches what they said.
    async fn load(&self, digest: TokenDigest, now: DateTime<Utc>) -> Loaded {
        let deadline = Instant::now() + self.store_timeout;
        let permit = self.circuit.permit().map_err(|open| {
            tracing::debug!(retry_after = ?open.retry_after, "keyward: circuit open, lookup refused");
            Failure::unavailable("the key store keeps failing; lookups are paused")
        })?;
        let permit = PermitGuard::new(&self.circuit, permit);
        let _slot = self.lookups.slot().await?;
        let epoch = self.cache.as_ref().map(crate::cache::VerifyCache::epoch);
        let started = Instant::now();
        let found =
            tokio::time::timeout_at(deadline.into(), self.store.find_by_digest(&digest, now)).await;
        let result = match &found {
            Ok(Ok(Some(_))) => LookupResult::Found,
            Ok(Ok(None)) => LookupResult::NotFound,
            Ok(Err(_)) => LookupResult::Error,
            Err(_) => LookupResult::Timeout,
        };
        self.metrics.lookup(result, started.elapsed().as_secs_f64());
        let found = match found {
            Ok(Ok(found)) => {
                permit.record(true);
                found
            }
            Ok(Err(err)) => {
                permit.record(false);
                tracing::warn!(error = %err, "keyward: key lookup failed");
                return Err(Failure::Store(Arc::new(err)));
            }
            Err(_) => {
                permit.record(false);
                tracing::warn!(timeout = ?self.store_timeout, "keyward: key lookup timed out");
                return Err(Failure::unavailable(format!(
                    "the key store did not answer within {:?}",
                    self.store_timeout
                )));
            }
        };
        let Some(record) = found else {
            if let (Some(cache), Some(epoch)) = (&self.cache, epoch) {
                cache.insert_unknown(digest, epoch);
            }
            return Err(Failure::Unknown);
        };
        // A revoked or disabled key stays so until it is changed, which invalidates it: cache
        // it without asking for its owner. The policy itself runs once per request, later.
        let grant = if record.is_revoked() || !record.active {
            Grant::Unresolved
        } else {
            let previous = record.digest != digest;
            let resolved = tokio::time::timeout_at(deadline.into(), self.resolve(&record)).await;
            match resolved {
                Ok(Ok(Some(key))) => {
                    Grant::Resolved(Principal::key(key.with_previous_token(previous)))
                }
                Ok(Ok(None)) => Grant::OwnerGone,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "keyward: owner lookup failed");
                    return Err(Failure::Callers(Arc::new(err)));
                }
                Err(_) => {
                    return Err(Failure::Callers(Arc::new(CallerError::msg(
                        "the owner lookup timed out",
                    ))));
                }
            }
        };
        let entry = Arc::new(Entry {
            usage: self.usage.counter(record.id),
            record,
            grant,
            loaded_at: Instant::now(),
        });
        if let (Some(cache), Some(epoch)) = (&self.cache, epoch) {
            cache.insert(digest, Arc::clone(&entry), epoch);
        }
        Ok(entry)
    }

    /// The key's principal with its effective scopes; `None` if the owner is gone.
    pub(crate) async fn resolve(
        &self,
        record: &KeyRecord,
    ) -> Result<Option<keyward_core::Principal>, CallerError> {
        let grants = match (&self.callers, record.kind, &record.owner) {
            (Some(callers), KeyKind::Personal, Some(owner)) => match callers.user(owner).await? {
                Some(user) => Some(user.scopes),
                None => return Ok(None),
            },
            _ => None,
        };
        let effective = self.catalog.effective(&record.scopes, grants.as_ref());
        Ok(Some(keyward_core::Principal::from_record(
            record, effective,
        )))
    }

    /// The person signed in on this request, through the application's
    /// [`Callers`](crate::Callers), with the scopes of their role expanded; `None` without a
    /// session. A session may not make a state-changing request from another site.
    pub(crate) async fn session(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Option<Principal>, AuthError> {
        let Some(callers) = &self.callers else {
            return Ok(None);
        };
        let user = tokio::time::timeout(self.store_timeout, callers.session(parts))
            .await
            .map_err(|_| {
                AuthError::CallersFailed(CallerError::msg("the session lookup timed out"))
            })?
            .map_err(AuthError::CallersFailed)?;
        let Some(mut user) = user else {
            return Ok(None);
        };
        if !parts.method.is_safe() && crate::ip::is_cross_site(parts) {
            return Err(AuthError::CrossSiteSession);
        }
        user.scopes = self.catalog.expand(&user.scopes);
        Ok(Some(Principal::session(user)))
    }
}

/// A unit of a client's failure budget taken for a lookup: given back when dropped, unless the
/// lookup failed, and given back too when the lookup is abandoned.
struct Unit<'a> {
    budget: &'a dyn FailureBudget,
    ip: IpAddr,
    failed: bool,
}

impl Drop for Unit<'_> {
    fn drop(&mut self) {
        self.budget.settle(self.ip, self.failed);
    }
}
