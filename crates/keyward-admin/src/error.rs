//! The errors of the management routes, answered as `application/problem+json`.

use std::fmt;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use keyward::{ManageError, Problem};
use keyward_core::ValidationError;

/// Why a management request was refused.
///
/// Every variant answers with an RFC 9457 problem (`application/problem+json`) that carries
/// the machine-readable `error` member keyward uses everywhere:
///
/// | variant | status | `error` | extra members |
/// |---|---|---|---|
/// | [`InsufficientScope`](Self::InsufficientScope) | 403 | `insufficient_scope` | `scope` |
/// | [`Forbidden`](Self::Forbidden) | 403 | `forbidden` | |
/// | [`NotFound`](Self::NotFound) | 404 | `not_found` | |
/// | [`Conflict`](Self::Conflict) | 409 | `conflict` | |
/// | [`Problem`](Self::Problem) | its own | its own | |
/// | [`Validation`](Self::Validation) | 422 | `validation_failed` | `field`, `errors` |
///
/// A store that fails is a [`ManageError`] answered as its problem (503 `temporarily_unavailable`
/// with `Retry-After`); a body that is not JSON is refused by [`keyward::Json`] (415, 400, 422
/// naming the member); no key and no session is keyward's own 401. So every part of an
/// application answers in one vocabulary, and the application's
/// [hook](keyward::KeywardBuilder::error_response) reshapes all of them.
///
/// # Example
///
/// ```
/// use axum::response::IntoResponse;
/// use keyward_admin::AdminError;
///
/// let response = AdminError::InsufficientScope { scope: "books:write".into() }.into_response();
/// assert_eq!(response.status(), 403);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AdminError {
    /// The actor lacks a scope: the management scope a route needs, `keys:admin` for another
    /// owner's or a service key, or a scope it asked to put on a key.
    InsufficientScope {
        /// The missing scope.
        scope: String,
    },
    /// The request is refused for another reason (a cross-site request on a session).
    Forbidden {
        /// Why.
        detail: String,
    },
    /// No key with that id that the actor may see, or no such route.
    NotFound {
        /// What was not found.
        detail: String,
    },
    /// The key's state does not allow the operation (revoked, disabled, never expires).
    Conflict {
        /// Why.
        detail: String,
    },
    /// One or more fields are invalid.
    Validation(ValidationError),
    /// An error the application already shaped as a problem.
    Problem(Box<Problem>),
}

impl AdminError {
    /// A 422 naming `field`.
    #[must_use]
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation(ValidationError::field(field, message))
    }

    pub(crate) fn not_found() -> Self {
        Self::NotFound {
            detail: "no key with this id".into(),
        }
    }

    /// The HTTP status this error answers with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InsufficientScope { .. } | Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Problem(problem) => problem.status(),
        }
    }

    /// The problem document this error answers with.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::InsufficientScope { scope } => Problem::new(self.status(), "insufficient_scope")
                .detail(format!("the caller lacks the scope {scope}"))
                .member("scope", scope.clone()),
            Self::Forbidden { detail } => {
                Problem::new(self.status(), "forbidden").detail(detail.clone())
            }
            Self::NotFound { detail } => {
                Problem::new(self.status(), "not_found").detail(detail.clone())
            }
            Self::Conflict { detail } => {
                Problem::new(self.status(), "conflict").detail(detail.clone())
            }
            Self::Validation(err) => Problem::from(err),
            Self::Problem(problem) => (**problem).clone(),
        }
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_problem(), f)
    }
}

impl std::error::Error for AdminError {}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        self.to_problem().into_response()
    }
}

impl From<ValidationError> for AdminError {
    fn from(err: ValidationError) -> Self {
        Self::Validation(err)
    }
}

/// A change the key's state does not allow (a revoked key, a refresh of a key that never
/// expires, ...): 409.
impl From<keyward_core::RuleError> for AdminError {
    fn from(err: keyward_core::RuleError) -> Self {
        Self::Conflict {
            detail: err.to_string(),
        }
    }
}

impl From<Problem> for AdminError {
    fn from(problem: Problem) -> Self {
        Self::Problem(Box::new(problem))
    }
}

impl From<ManageError> for AdminError {
    fn from(err: ManageError) -> Self {
        match err {
            ManageError::Validation(err) => Self::Validation(err),
            ManageError::NotFound(_) => Self::not_found(),
            // The only input a store refuses is a listing cursor it did not write.
            ManageError::InvalidInput(err) => Self::field("cursor", err.message()),
            other => {
                if other.kind() == keyward::ManageErrorKind::Unavailable {
                    tracing::error!(
                        target: "keyward::admin",
                        error = &other as &dyn std::error::Error,
                        "key management failed"
                    );
                }
                Self::Problem(Box::new(other.to_problem()))
            }
        }
    }
}
