//! Verification: parse, digest, cache, store, policy, resolver, rate limit, usage.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use keyward_core::{KeyKind, KeyRecord, TokenDigest, policy};

use crate::cache::{Entry, Grant, Lookup};
use crate::circuit::PermitGuard;
use crate::handle::Inner;
use crate::lookup::{Failure, Loaded};
use crate::principal::Principal;
use crate::rate::RateState;
use crate::rejection::{AuthError, InvalidToken};
use crate::resolver::ResolverError;

/// A request that may go on.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) principal: Principal,
    pub(crate) rate: Option<RateState>,
}

/// The synchronous part of a verification.
pub(crate) enum Step {
    Done(Result<Admitted, AuthError>),
    /// Not cached: the store (and maybe the resolver) must be asked.
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
    /// The clock is read only for a well-formed token: garbage costs no more than its parse.
    pub(crate) fn start(&self, token: &str, ip: Option<IpAddr>) -> Step {
        let Ok(parsed) = self.format.parse(token) else {
            return Step::Done(Err(AuthError::InvalidToken(InvalidToken::Malformed)));
        };
        let digest = self.hasher.digest(&parsed);
        drop(parsed);
        let now = self.clock.now();
        let lookup = match &self.cache {
            Some(cache) => cache.get(&digest),
            None => Lookup::Miss,
        };
        let stale = match lookup {
            Lookup::Hit(entry) => {
                let checked = self.check(&entry, &digest, now, ip);
                return match checked {
                    Ok(Some(principal)) => Step::Done(self.admit(&entry, principal, now, ip)),
                    Ok(None) => self.miss(digest, now, ip, None),
                    Err(err) => Step::Done(Err(self.failed(err, ip))),
                };
            }
            Lookup::Unknown => {
                let unknown = AuthError::InvalidToken(InvalidToken::Unknown);
                return Step::Done(Err(self.failed(unknown, ip)));
            }
            Lookup::Stale(entry) => Some(entry),
            Lookup::Miss => None,
        };
        self.miss(digest, now, ip, stale)
    }

    /// A cache miss: refused at once if the client's failure budget is spent.
    fn miss(
        &self,
        digest: TokenDigest,
        now: DateTime<Utc>,
        ip: Option<IpAddr>,
        stale: Option<Arc<Entry>>,
    ) -> Step {
        if stale.is_none() {
            if let Some(retry_after) = self.budget_spent(ip) {
                return Step::Done(Err(AuthError::TooManyFailures { retry_after }));
            }
        }
        Step::Miss(Miss {
            digest,
            now,
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
        let entry = match (
            self.lookups.share(&digest, || self.load(digest, now)).await,
            stale,
        ) {
            (Ok(entry), _) => entry,
            (Err(failure), Some(stale)) if failure.is_outage() => {
                tracing::debug!("keyward: the store failed; using a stale cache entry");
                stale
            }
            (Err(failure), _) => return Err(self.failed(failure.to_error(), ip)),
        };
        let principal = match self.check(&entry, &digest, now, ip) {
            Ok(Some(principal)) => principal,
            // Unusable when loaded, usable now (the clock moved back): resolve uncached.
            Ok(None) => tokio::time::timeout(self.store_timeout, self.resolve(&entry.record))
                .await
                .map_err(|_| {
                    AuthError::ResolverFailed(ResolverError::msg("the owner resolver timed out"))
                })??
                .ok_or(AuthError::InvalidToken(InvalidToken::OwnerGone))?,
            Err(err) => return Err(self.failed(err, ip)),
        };
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

    /// The key's policy, evaluated on every request, then its grant.
    fn check(
        &self,
        entry: &Entry,
        digest: &TokenDigest,
        now: DateTime<Utc>,
        ip: Option<IpAddr>,
    ) -> Result<Option<Principal>, AuthError> {
        policy::evaluate(&entry.record, digest, now, ip)?;
        match &entry.grant {
            Grant::Resolved(principal) => Ok(Some(principal.clone())),
            Grant::OwnerGone => Err(AuthError::InvalidToken(InvalidToken::OwnerGone)),
            Grant::Unresolved => Ok(None),
        }
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
                    .map_err(|exceeded| AuthError::RateLimited {
                        limit: exceeded.limit,
                        retry_after: exceeded.retry_after,
                    })?,
            ),
            _ => None,
        };
        entry.usage.record(1, now, ip);
        Ok(Admitted { principal, rate })
    }

    /// Whether `ip` may no longer present bad tokens.
    fn budget_spent(&self, ip: Option<IpAddr>) -> Option<std::time::Duration> {
        self.budget.as_ref()?.exhausted(ip?)
    }

    /// Charges the client's failure budget when `error` says the token was bad.
    fn failed(&self, error: AuthError, ip: Option<IpAddr>) -> AuthError {
        if let (AuthError::InvalidToken(_), Some(budget), Some(ip)) = (&error, &self.budget, ip) {
            budget.charge(ip);
        }
        error
    }

    /// Reads the store and the resolver within the deadline, past the circuit breaker and
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
        let found =
            tokio::time::timeout_at(deadline.into(), self.store.find_by_digest(&digest, now)).await;
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
        // A key that cannot be used (revoked, disabled, expired, replaced) stays so until it
        // is changed, which invalidates it: cache it without asking the resolver.
        let unusable = matches!(
            policy::evaluate(&record, &digest, now, None),
            Err(denial) if denial != keyward_core::Denial::IpNotAllowed
        );
        let grant = if unusable {
            Grant::Unresolved
        } else {
            let resolved = tokio::time::timeout_at(deadline.into(), self.resolve(&record)).await;
            match resolved {
                Ok(Ok(Some(principal))) => Grant::Resolved(principal),
                Ok(Ok(None)) => Grant::OwnerGone,
                Ok(Err(AuthError::ResolverFailed(err))) => {
                    tracing::warn!(error = %err, "keyward: owner resolver failed");
                    return Err(Failure::Resolver(Arc::new(err)));
                }
                Ok(Err(_)) | Err(_) => {
                    return Err(Failure::Resolver(Arc::new(ResolverError::msg(
                        "the owner resolver timed out",
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
    pub(crate) async fn resolve(&self, record: &KeyRecord) -> Result<Option<Principal>, AuthError> {
        let grants = match (&self.resolver, record.kind, &record.owner) {
            (Some(resolver), KeyKind::Personal, Some(owner)) => {
                match resolver
                    .grants(owner)
                    .await
                    .map_err(AuthError::ResolverFailed)?
                {
                    Some(grants) => Some(grants),
                    None => return Ok(None),
                }
            }
            _ => None,
        };
        let effective = self.catalog.effective(&record.scopes, grants.as_ref());
        Ok(Some(Principal::from(keyward_core::Principal::from_record(
            record, effective,
        ))))
    }
}
