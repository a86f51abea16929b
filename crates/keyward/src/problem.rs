//! `application/problem+json` responses (RFC 9457) with an extra `error` member.

use std::borrow::Cow;
use std::fmt;

use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use serde::Serialize;

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem: `type`, `title`, `status`, `detail`, plus the machine-readable `error`
/// code every keyward error carries, any extra members, and response headers.
///
/// keyward answers every refused request with one; the admin router uses the same type for its
/// own errors, so clients see one error shape.
///
/// # Example
///
/// ```
/// use axum::response::IntoResponse;
/// use http::StatusCode;
/// use keyward::Problem;
///
/// let response = Problem::new(StatusCode::CONFLICT, "key_revoked")
///     .detail("the key is revoked")
///     .member("key_id", "0197…")
///     .into_response();
/// assert_eq!(response.status(), StatusCode::CONFLICT);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// ```
#[derive(Clone, PartialEq)]
#[must_use]
pub struct Problem {
    status: StatusCode,
    type_uri: Cow<'static, str>,
    title: Cow<'static, str>,
    detail: Option<String>,
    error: Cow<'static, str>,
    members: serde_json::Map<String, serde_json::Value>,
    headers: HeaderMap,
}

impl Problem {
    /// The 422 `validation_failed` problem for one invalid `field` (a body member, a query
    /// parameter): `field` names it and `errors` lists it with `message`, the shape of every
    /// validation error keyward and its admin router answer with.
    pub fn invalid(field: &str, message: &str) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            .detail(format!("{field}: {message}"))
            .member("field", field)
            .member(
                "errors",
                serde_json::json!([{ "field": field, "message": message }]),
            )
    }

    /// A problem with `status` and the `error` code; its type is `about:blank` and its title
    /// the status's reason phrase, as RFC 9457 asks for problems without a type of their own.
    pub fn new(status: StatusCode, error: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            type_uri: Cow::Borrowed("about:blank"),
            title: Cow::Borrowed(status.canonical_reason().unwrap_or("Error")),
            detail: None,
            error: error.into(),
            members: serde_json::Map::new(),
            headers: HeaderMap::new(),
        }
    }

    /// Sets the human-readable explanation of this occurrence.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the title.
    pub fn title(mut self, title: impl Into<Cow<'static, str>>) -> Self {
        self.title = title.into();
        self
    }

    /// Sets the problem type URI (default `about:blank`).
    pub fn type_uri(mut self, type_uri: impl Into<Cow<'static, str>>) -> Self {
        self.type_uri = type_uri.into();
        self
    }

    /// Adds an extension member to the body. The standard members and `error` cannot be
    /// replaced this way.
    pub fn member(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        let name = name.into();
        if !matches!(
            name.as_str(),
            "type" | "title" | "status" | "detail" | "error"
        ) {
            self.members.insert(name, value.into());
        }
        self
    }

    /// Adds a response header (`WWW-Authenticate`, `Retry-After`, …).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `error` code.
    #[must_use]
    pub fn error(&self) -> &str {
        &self.error
    }

    /// The `detail`, if any.
    #[must_use]
    pub fn detail_text(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The headers the response will carry.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body as JSON.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::Map::with_capacity(5 + self.members.len());
        body.insert("type".into(), self.type_uri.as_ref().into());
        body.insert("title".into(), self.title.as_ref().into());
        body.insert("status".into(), self.status.as_u16().into());
        if let Some(detail) = &self.detail {
            body.insert("detail".into(), detail.as_str().into());
        }
        body.insert("error".into(), self.error.as_ref().into());
        for (name, value) in &self.members {
            body.insert(name.clone(), value.clone());
        }
        serde_json::Value::Object(body)
    }
}

impl fmt::Debug for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Problem")
            .field("status", &self.status)
            .field("error", &self.error)
            .field("detail", &self.detail)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.error)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    type_uri: &'a str,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    error: &'a str,
    #[serde(flatten)]
    members: &'a serde_json::Map<String, serde_json::Value>,
}

/// A problem response the application's [hook](crate::KeywardBuilder::error_response) has not
/// seen yet: the keyward layer hands it over on the way out, whoever made it (an extractor, the
/// admin router, the application's own handler).
#[derive(Clone)]
pub(crate) struct Unhooked(pub(crate) Problem);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let unhooked = Unhooked(self.clone());
        let body = serde_json::to_vec(&Body {
            type_uri: &self.type_uri,
            title: &self.title,
            status: self.status.as_u16(),
            detail: self.detail.as_deref(),
            error: &self.error,
            members: &self.members,
        })
        .unwrap_or_else(|_| b"{}".to_vec());
        let mut response = Response::new(axum::body::Body::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        let mut last = None;
        for (name, value) in self.headers {
            // `HeaderMap::into_iter` yields the name once for several values.
            if let Some(name) = name {
                last = Some(name);
            }
            if let Some(name) = &last {
                headers.append(name.clone(), value);
            }
        }
        response.extensions_mut().insert(unhooked);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn body_has_the_rfc_members_and_error() {
        let response = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            .detail("slow down")
            .member("limit", 5)
            .member("status", 999)
            .header(http::header::RETRY_AFTER, HeaderValue::from_static("7"))
            .into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "7");
        assert_eq!(response.headers()["content-type"], PROBLEM_JSON);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "about:blank",
                "title": "Too Many Requests",
                "status": 429,
                "detail": "slow down",
                "error": "rate_limited",
                "limit": 5,
            })
        );
    }
}
