//! Verification: parse, digest, cache, store, policy, resolver, rate limit, usage.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use keyward_core::{KeyKind, KeyRecord, TokenDigest, policy};

use crate::cache::{Entry, Grant, Lookup};
use crate::handle::Inner;
use crate::principal::Principal;
use crate::rate::RateState;
use crate::rejection::{AuthError, InvalidToken};

/// A request that may go on.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) principal: Principal,
    pub(crate) rate: Option<RateState>,
}

/// The synchronous part of a verification.
pub(crate) enum Step {
    Done(Result<Admitted, AuthError>),
    /// Not cached: the store (and maybe the resolver) must be asked, as of the time given.
    Miss(TokenDigest, DateTime<Utc>),
}

impl Inner {
    /// Everything that needs no I/O: shape and check digits (garbage never reaches the cache
    /// or the store), digest, cache, policy, rate limit and usage.
    /// The clock is read only for a well-formed token: garbage costs no more than its parse.
    pub(crate) fn start(&self, token: &str, ip: Option<IpAddr>) -> Step {
        let Ok(parsed) = self.format.parse(token) else {
            return Step::Done(Err(AuthError::InvalidToken(InvalidToken::Malformed)));
        };
        let digest = self.hasher.digest(&parsed);
        drop(parsed);
        let now = self.clock.now();
        let Some(cache) = &self.cache else {
            return Step::Miss(digest, now);
        };
        match cache.get(&digest) {
            Lookup::Hit(entry) => match self.check(&entry, &digest, now, ip) {
                Ok(Some(principal)) => Step::Done(self.admit(&entry.record, principal, now, ip)),
                Ok(None) => Step::Miss(digest, now),
                Err(err) => Step::Done(Err(err)),
            },
            Lookup::Unknown => Step::Done(Err(AuthError::InvalidToken(InvalidToken::Unknown))),
            Lookup::Miss => Step::Miss(digest, now),
        }
    }

    /// The rest of a verification after a cache miss.
    pub(crate) async fn finish(
        &self,
        digest: TokenDigest,
        now: DateTime<Utc>,
        ip: Option<IpAddr>,
    ) -> Result<Admitted, AuthError> {
        let entry = self.load(&digest, now).await?;
        let principal = match self.check(&entry, &digest, now, ip)? {
            Some(principal) => principal,
            // Unusable when loaded, usable now (the clock moved back): resolve uncached.
            None => self
                .resolve(&entry.record)
                .await?
                .ok_or(AuthError::InvalidToken(InvalidToken::OwnerGone))?,
        };
        self.admit(&entry.record, principal, now, ip)
    }

    pub(crate) async fn verify_token(
        &self,
        token: &str,
        ip: Option<IpAddr>,
    ) -> Result<Admitted, AuthError> {
        match self.start(token, ip) {
            Step::Done(result) => result,
            Step::Miss(digest, now) => self.finish(digest, now, ip).await,
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
        record: &KeyRecord,
        principal: Principal,
        now: DateTime<Utc>,
        ip: Option<IpAddr>,
    ) -> Result<Admitted, AuthError> {
        let rate = match (&self.rate_limits, record.rate_limit) {
            (Some(limits), Some(per_minute)) => {
                Some(limits.check(record.id, per_minute).map_err(|exceeded| {
                    AuthError::RateLimited {
                        limit: exceeded.limit,
                        retry_after: exceeded.retry_after,
                    }
                })?)
            }
            _ => None,
        };
        self.usage.record(record.id, 1, now, ip);
        Ok(Admitted { principal, rate })
    }

    /// Reads the store and the resolver, and caches what they said.
    async fn load(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Arc<Entry>, AuthError> {
        let epoch = self.cache.as_ref().map(crate::cache::VerifyCache::epoch);
        let found = self
            .store
            .find_by_digest(digest, now)
            .await
            .map_err(AuthError::StoreUnavailable)?;
        let Some(record) = found else {
            if let (Some(cache), Some(epoch)) = (&self.cache, epoch) {
                cache.insert_unknown(*digest, epoch);
            }
            return Err(AuthError::InvalidToken(InvalidToken::Unknown));
        };
        // A key that cannot be used (revoked, disabled, expired, replaced) stays so until it
        // is changed, which invalidates it: cache it without asking the resolver.
        let unusable = matches!(
            policy::evaluate(&record, digest, now, None),
            Err(denial) if denial != keyward_core::Denial::IpNotAllowed
        );
        let grant = if unusable {
            Grant::Unresolved
        } else {
            match self.resolve(&record).await? {
                Some(principal) => Grant::Resolved(principal),
                None => Grant::OwnerGone,
            }
        };
        let entry = Arc::new(Entry { record, grant });
        if let (Some(cache), Some(epoch)) = (&self.cache, epoch) {
            cache.insert(*digest, Arc::clone(&entry), epoch);
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
