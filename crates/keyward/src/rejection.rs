//! Why a request was refused, and the response that says so (DESIGN section 5).

use std::borrow::Cow;
use std::time::Duration;

use http::StatusCode;
use http::header::{HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use keyward_core::StoreError;
use keyward_core::policy::Denial;

use crate::callers::CallerError;
use crate::problem::Problem;

/// The application's hook that turns a refusal and its default problem into the response.
pub(crate) type ErrorResponder =
    std::sync::Arc<dyn Fn(Option<&AuthError>, Problem) -> axum::response::Response + Send + Sync>;

/// Seconds a client is asked to wait after a 503.
pub(crate) const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// Why a presented token is not accepted. Every reason answers 401 `invalid_token`; the
/// description names only expired, revoked and disabled keys, never what was wrong with a
/// malformed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Not a token of this application: wrong shape, check digits or prefix.
    Malformed,
    /// Well formed, but no key has it.
    Unknown,
    /// Replaced by a regenerate, and its grace period is over.
    Superseded,
    /// The key was revoked.
    Revoked,
    /// The key is disabled.
    Inactive,
    /// The key has expired.
    Expired,
    /// The key's owner no longer exists (the application's [`Callers`](crate::Callers) said
    /// so).
    OwnerGone,
}

impl InvalidToken {
    /// The `error_description` and `detail` shown to the client.
    #[must_use]
    pub fn description(self) -> &'static str {
        match self {
            Self::Revoked => "the API key was revoked",
            Self::Expired => "the API key has expired",
            Self::Inactive => "the API key is disabled",
            Self::Malformed | Self::Unknown | Self::Superseded | Self::OwnerGone => {
                "the API key is not valid"
            }
        }
    }

    /// A short name for logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Superseded => "superseded",
            Self::Revoked => "revoked",
            Self::Inactive => "inactive",
            Self::Expired => "expired",
            Self::OwnerGone => "owner_gone",
        }
    }
}

/// A refused request. The layer, the extractors and the scope guards answer with
/// [`to_problem`](Self::to_problem) (or the application's
/// [hook](crate::KeywardBuilder::error_response)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The route needs a credential and the request has none: 401.
    #[error("no API key was presented")]
    MissingCredential,
    /// The presented token is not accepted: 401 `invalid_token`.
    #[error("the API key is not accepted ({})", .0.as_str())]
    InvalidToken(InvalidToken),
    /// Two different tokens in one request: 400 `invalid_request`.
    #[error("the request carries two different API keys")]
    ConflictingCredentials,
    /// The client's address is not in the key's allow-list: 403 `ip_not_allowed`.
    #[error("the client address is not allowed to use this key")]
    IpNotAllowed,
    /// The key lacks a scope the route needs: 403 `insufficient_scope`.
    #[error("the API key lacks the scope {scope}")]
    InsufficientScope {
        /// The scopes the route needs, space separated.
        scope: Cow<'static, str>,
    },
    /// The key's rate limit is used up: 429.
    #[error("the API key's rate limit of {limit} requests per minute is exceeded")]
    RateLimited {
        /// Requests per minute.
        limit: u32,
        /// How long until the next request is allowed.
        retry_after: Duration,
    },
    /// The client presented too many unknown, revoked or expired tokens recently (its
    /// [failure budget](crate::FailureBudget) is spent): 429, without a store lookup.
    #[error("too many invalid API keys from this client")]
    TooManyFailures {
        /// How long until the budget is renewed.
        retry_after: Duration,
    },
    /// The key store failed, did not answer in time, or is not being asked while it keeps
    /// failing (circuit open, too many lookups at once): 503, never 401 or 403.
    #[error("the key store is unavailable")]
    StoreUnavailable(#[source] StoreError),
    /// The application's user lookup ([`Callers`](crate::Callers)) failed: 503.
    #[error("the user lookup failed")]
    CallersFailed(#[source] CallerError),
    /// A signed-in session made a state-changing request from another site: 403. A session
    /// cookie is sent by the browser whoever made the page, so it must not be ridden.
    #[error("a session may not make a state-changing request from another site")]
    CrossSiteSession,
    /// A `Principal` extractor or scope guard ran on a route without the keyward layer: 500.
    #[error(
        "no keyward layer on this route: add `.layer(keyward.layer())` to the router (outside the route) before using keyward extractors or scope guards"
    )]
    LayerMissing,
}

impl From<Denial> for AuthError {
    fn from(denial: Denial) -> Self {
        match denial {
            Denial::IpNotAllowed => Self::IpNotAllowed,
            Denial::Revoked => Self::InvalidToken(InvalidToken::Revoked),
            Denial::Inactive => Self::InvalidToken(InvalidToken::Inactive),
            Denial::Expired => Self::InvalidToken(InvalidToken::Expired),
            _ => Self::InvalidToken(InvalidToken::Superseded),
        }
    }
}

impl AuthError {
    /// The response status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingCredential | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::ConflictingCredentials => StatusCode::BAD_REQUEST,
            Self::IpNotAllowed | Self::InsufficientScope { .. } | Self::CrossSiteSession => {
                StatusCode::FORBIDDEN
            }
            Self::RateLimited { .. } | Self::TooManyFailures { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::StoreUnavailable(_) | Self::CallersFailed(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::LayerMissing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body's `error` member.
    #[must_use]
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::MissingCredential => "missing_credential",
            Self::InvalidToken(_) => "invalid_token",
            Self::ConflictingCredentials => "invalid_request",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::CrossSiteSession => "cross_site_request",
            Self::RateLimited { .. } => "rate_limited",
            Self::TooManyFailures { .. } => "too_many_failures",
            Self::StoreUnavailable(_) | Self::CallersFailed(_) => "temporarily_unavailable",
            Self::LayerMissing => "keyward_layer_missing",
        }
    }

    /// A short outcome name for logs and spans.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Self::InvalidToken(reason) => reason.as_str(),
            other => other.error_code(),
        }
    }

    fn detail(&self) -> Cow<'static, str> {
        match self {
            Self::MissingCredential => "this resource needs an API key".into(),
            Self::InvalidToken(reason) => reason.description().into(),
            Self::ConflictingCredentials => {
                "the request carries two different API keys; send one".into()
            }
            Self::IpNotAllowed => "this API key may not be used from this address".into(),
            Self::CrossSiteSession => {
                "a signed-in session may change data only from this application's own pages".into()
            }
            Self::InsufficientScope { scope } => {
                format!("this resource needs the scope {scope}").into()
            }
            Self::RateLimited { limit, .. } => {
                format!("this API key may make {limit} requests per minute").into()
            }
            Self::TooManyFailures { .. } => {
                "too many invalid API keys from this address; try again later".into()
            }
            Self::StoreUnavailable(_) | Self::CallersFailed(_) => {
                "API keys cannot be checked right now; try again shortly".into()
            }
            Self::LayerMissing => self.to_string().into(),
        }
    }

    /// The `WWW-Authenticate` challenge for `realm`, where RFC 6750 asks for one.
    #[must_use]
    pub fn challenge(&self, realm: &str) -> Option<HeaderValue> {
        let value = match self {
            Self::MissingCredential => format!("Bearer realm=\"{realm}\""),
            Self::InvalidToken(reason) => format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                reason.description()
            ),
            Self::ConflictingCredentials => format!(
                "Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"two different API keys\""
            ),
            Self::InsufficientScope { scope } => {
                format!("Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{scope}\"")
            }
            _ => return None,
        };
        HeaderValue::from_str(&value).ok()
    }

    /// The default response: status, headers and an `application/problem+json` body.
    pub fn to_problem(&self, realm: &str) -> Problem {
        let mut problem = Problem::new(self.status(), self.error_code()).detail(self.detail());
        if let Some(challenge) = self.challenge(realm) {
            problem = problem.header(WWW_AUTHENTICATE, challenge);
        }
        match self {
            Self::InsufficientScope { scope } => {
                problem = problem.member("scope", scope.as_ref());
            }
            Self::RateLimited { limit, retry_after } => {
                let wait = HeaderValue::from(whole_seconds(*retry_after));
                problem = problem
                    .header(RETRY_AFTER, wait.clone())
                    .header(
                        HeaderName::from_static("ratelimit-limit"),
                        HeaderValue::from(*limit),
                    )
                    .header(
                        HeaderName::from_static("ratelimit-remaining"),
                        HeaderValue::from(0),
                    )
                    .header(HeaderName::from_static("ratelimit-reset"), wait)
                    .header(
                        HeaderName::from_static("ratelimit-policy"),
                        HeaderValue::from_str(&format!("{limit};w=60"))
                            .unwrap_or(HeaderValue::from_static("")),
                    );
            }
            Self::TooManyFailures { retry_after } => {
                problem = problem.header(RETRY_AFTER, seconds_header(*retry_after));
            }
            Self::StoreUnavailable(_) | Self::CallersFailed(_) => {
                problem =
                    problem.header(RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS));
            }
            _ => {}
        }
        problem
    }
}

/// A wait in whole seconds for `Retry-After`, rounded up, at least 1.
pub(crate) fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Waits up to an hour have their header value made once: a refused flood gets its
/// `Retry-After` without formatting and allocating a number per response.
const SECONDS_MADE_ONCE: u64 = 3_600;

/// `whole_seconds(wait)` as a header value.
pub(crate) fn seconds_header(wait: Duration) -> HeaderValue {
    static SECONDS: std::sync::LazyLock<Box<[HeaderValue]>> = std::sync::LazyLock::new(|| {
        // One string holds every number; each value borrows its part, so cloning one copies
        // a pointer and shares no counter between threads.
        let mut numbers = String::new();
        let ends: Vec<usize> = (0..=SECONDS_MADE_ONCE)
            .map(|n| {
                numbers.push_str(&n.to_string());
                numbers.len()
            })
            .collect();
        let numbers: &'static str = numbers.leak();
        let mut start = 0;
        ends.into_iter()
            .map(|end| HeaderValue::from_static(&numbers[std::mem::replace(&mut start, end)..end]))
            .collect()
    });
    let seconds = whole_seconds(wait);
    usize::try_from(seconds)
        .ok()
        .and_then(|index| SECONDS.get(index))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_values_are_the_waits_in_whole_seconds() {
        for (wait, expected) in [
            (Duration::ZERO, "1"),
            (Duration::from_millis(1), "1"),
            (Duration::from_secs(9), "9"),
            (Duration::from_millis(9_001), "10"),
            (Duration::from_secs(59), "59"),
            (Duration::from_secs(100), "100"),
            (Duration::from_secs(999), "999"),
            (Duration::from_secs(1_000), "1000"),
            (Duration::from_secs(3_600), "3600"),
            (Duration::from_secs(3_601), "3601"),
            (Duration::from_secs(u64::MAX), "18446744073709551615"),
        ] {
            assert_eq!(seconds_header(wait), expected, "{wait:?}");
        }
        for seconds in 1..=SECONDS_MADE_ONCE + 2 {
            let value = seconds_header(Duration::from_secs(seconds));
            assert_eq!(value.to_str().unwrap(), seconds.to_string());
        }
    }
}
