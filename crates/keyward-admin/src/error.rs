//! The errors of the management routes, answered as `application/problem+json`.

use std::fmt;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{HeaderValue, WWW_AUTHENTICATE};
use keyward::{ManageError, Problem};
use keyward_core::ValidationError;

/// Why a management request was refused.
///
/// Every variant answers with an RFC 9457 problem (`application/problem+json`) that carries
/// the machine-readable `error` member keyward uses everywhere:
///
/// | variant | status | `error` | extra members |
/// |---|---|---|---|
/// | [`Unauthenticated`](Self::Unauthenticated) | 401 | `unauthorized` | `WWW-Authenticate` |
/// | [`InsufficientScope`](Self::InsufficientScope) | 403 | `insufficient_scope` | `scope` |
/// | [`Forbidden`](Self::Forbidden) | 403 | `forbidden` | |
/// | [`NotFound`](Self::NotFound) | 404 | `not_found` | |
/// | [`Conflict`](Self::Conflict) | 409 | `conflict` | |
/// | [`Problem`](Self::Problem) | its own | its own | |
/// | [`Validation`](Self::Validation), [`InvalidMember`](Self::InvalidMember) | 422 | `validation_failed` | `field`, `errors` |
/// | [`MalformedBody`](Self::MalformedBody) | 400 | `malformed_body` | |
/// | [`UnsupportedMediaType`](Self::UnsupportedMediaType) | 415 | `unsupported_media_type` | |
/// | [`Unavailable`](Self::Unavailable) | 503 | `temporarily_unavailable` | `Retry-After` |
///
/// The 422, 409, 404 and 503 problems have the shape the [`Keyward`](keyward::Keyward)
/// handle's own [`ManageError`] answers with, plus `field` naming the first invalid member.
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
    /// Nobody is calling: no key and no session.
    Unauthenticated {
        /// What the caller should present.
        detail: String,
    },
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
    /// A member of the JSON body has the wrong type or is unknown.
    InvalidMember {
        /// The member's name.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The body is not well-formed JSON.
    MalformedBody {
        /// The parser's complaint.
        detail: String,
    },
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The key store or the session lookup failed; never turned into a refusal.
    Unavailable {
        /// What failed.
        detail: String,
    },
    /// An error the middleware already shaped (for example a problem from an
    /// [`ActorSource`](crate::ActorSource)).
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
            Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope { .. } | Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Validation(_) | Self::InvalidMember { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MalformedBody { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Problem(problem) => problem.status(),
        }
    }

    /// The problem document this error answers with.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Unauthenticated { detail } => Problem::new(self.status(), "unauthorized")
                .detail(detail.clone())
                .header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
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
            Self::Validation(err) => {
                let errors: Vec<serde_json::Value> = err
                    .errors()
                    .iter()
                    .map(|e| serde_json::json!({ "field": e.field, "message": e.message }))
                    .collect();
                Problem::new(self.status(), "validation_failed")
                    .detail(err.to_string())
                    .member("field", err.first_field())
                    .member("errors", errors)
            }
            Self::InvalidMember { field, message } => {
                Problem::new(self.status(), "validation_failed")
                    .detail(format!("{field}: {message}"))
                    .member("field", field.clone())
                    .member(
                        "errors",
                        serde_json::json!([{ "field": field, "message": message }]),
                    )
            }
            Self::MalformedBody { detail } => {
                Problem::new(self.status(), "malformed_body").detail(detail.clone())
            }
            Self::UnsupportedMediaType => Problem::new(self.status(), "unsupported_media_type")
                .detail("the body must be JSON with `Content-Type: application/json`"),
            Self::Unavailable { detail } => Problem::new(self.status(), "temporarily_unavailable")
                .detail(detail.clone())
                .header(http::header::RETRY_AFTER, HeaderValue::from_static("1")),
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
        if let Self::Unavailable { detail } = &self {
            tracing::warn!(target: "keyward::admin", %detail, "management request failed");
        }
        self.to_problem().into_response()
    }
}

impl From<ValidationError> for AdminError {
    fn from(err: ValidationError) -> Self {
        Self::Validation(err)
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
