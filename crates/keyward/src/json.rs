//! `Json<T>`: a JSON body whose every refusal is a problem naming what is wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};
use keyward_core::ValidationError;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// A JSON request body, refused the way keyward refuses everything: with a problem
/// (`application/problem+json`) that names what is wrong.
///
/// * no `Content-Type: application/json` (or another `+json` type): 415
///   `unsupported_media_type`;
/// * not well-formed JSON: 400 `malformed_body`;
/// * not an object, a member of the wrong type, an unknown member (with
///   `#[serde(deny_unknown_fields)]`): 422 `validation_failed` with `field` naming it, the same
///   shape as every other validation error.
///
/// `Option<Json<T>>` takes an empty body as `None`.
///
/// # Example
///
/// ```
/// use keyward::Json;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct NewBook {
///     title: String,
///     year: Option<u16>,
/// }
///
/// // `{"title": "Dune", "year": "1965"}` is 422 with `"field": "year"`.
/// async fn add_book(Json(book): Json<NewBook>) -> String {
///     format!("added {} ({:?})", book.title, book.year)
/// }
/// # let _ = add_book;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// Why a [`Json`] body was refused; answers with its problem.
#[derive(Debug)]
pub struct JsonRejection(Box<Problem>);

impl JsonRejection {
    fn new(problem: Problem) -> Self {
        Self(Box::new(problem))
    }

    /// The problem it answers with.
    pub fn problem(&self) -> &Problem {
        &self.0
    }
}

impl IntoResponse for JsonRejection {
    fn into_response(self) -> Response {
        (*self.0).into_response()
    }
}

/// Answers with `T` as JSON, like `axum::Json`.
impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = JsonRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(req.headers());
        let bytes = read(req, state).await?;
        if !is_json {
            return Err(unsupported());
        }
        parse(&bytes).map(Self)
    }
}

impl<S, T> OptionalFromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = JsonRejection;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let is_json = is_json(req.headers());
        let bytes = read(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if !is_json {
            return Err(unsupported());
        }
        parse(&bytes).map(|value| Some(Self(value)))
    }
}

fn unsupported() -> JsonRejection {
    JsonRejection::new(
        Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            .detail("the body must be JSON with `Content-Type: application/json`"),
    )
}

/// Whether the content type is `application/json` or `application/*+json`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, JsonRejection> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "malformed_body"
        };
        JsonRejection::new(Problem::new(status, code).detail(rejection.body_text()))
    })
}

/// Parses a JSON object into `T`, naming the offending member when it does not fit.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonRejection> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
        JsonRejection::new(
            Problem::new(StatusCode::BAD_REQUEST, "malformed_body")
                .detail(format!("the body is not valid JSON: {err}")),
        )
    })?;
    let serde_json::Value::Object(members) = value else {
        return Err(invalid("body", "the body must be a JSON object"));
    };
    match T::deserialize(&serde_json::Value::Object(members.clone())) {
        Ok(parsed) => Ok(parsed),
        Err(err) => Err(name_member::<T>(&members, &err)),
    }
}

/// Finds the member that makes the object fail: the first one that fails on its own, else the
/// one the deserializer's message names (an unknown member).
fn name_member<T: DeserializeOwned>(
    members: &serde_json::Map<String, serde_json::Value>,
    err: &serde_json::Error,
) -> JsonRejection {
    for (name, value) in members {
        let mut alone = serde_json::Map::with_capacity(1);
        alone.insert(name.clone(), value.clone());
        if let Err(member_err) = T::deserialize(&serde_json::Value::Object(alone)) {
            return invalid(name, &member_err.to_string());
        }
    }
    let message = err.to_string();
    let field = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("unknown field"))
        .unwrap_or("body");
    invalid(field, &message)
}

fn invalid(field: &str, message: &str) -> JsonRejection {
    JsonRejection::new(Problem::invalid(field, message))
}

/// The one shape of a validation error: 422 `validation_failed`, `field` naming the first
/// invalid field and `errors` listing each with its message.
impl From<&ValidationError> for Problem {
    fn from(err: &ValidationError) -> Self {
        let errors: Vec<serde_json::Value> = err
            .errors()
            .iter()
            .map(|e| serde_json::json!({ "field": e.field, "message": e.message }))
            .collect();
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            .detail(err.to_string())
            .member("field", err.first_field())
            .member("errors", errors)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use http::header::CONTENT_TYPE;

    use super::is_json;

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        for (value, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("application/jsonp", false),
        ] {
            headers.insert(CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(is_json(&headers), json, "{value}");
        }
    }
}
