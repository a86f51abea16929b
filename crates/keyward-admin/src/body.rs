//! The JSON body extractors of the management routes: every refusal is problem+json, and a
//! member of the wrong type is named, as a 422, like a value that fails validation.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use keyward::Problem;
use serde::de::DeserializeOwned;

use crate::error::AdminError;

/// A JSON body that must be present: `Content-Type: application/json` (or another `+json`
/// type), else 415; well-formed JSON, else 400; an object whose members have the right types
/// and names, else 422 naming the member.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonBody<T>(pub(crate) T);

/// Like [`JsonBody`], but an empty body stands for `{}`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OptionalJsonBody<T>(pub(crate) T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(req.headers());
        let bytes = read(req, state).await?;
        if !is_json {
            return Err(AdminError::UnsupportedMediaType);
        }
        parse(&bytes).map(Self)
    }
}

impl<S, T> FromRequest<S> for OptionalJsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(req.headers());
        let bytes = read(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        if !is_json {
            return Err(AdminError::UnsupportedMediaType);
        }
        parse(&bytes).map(Self)
    }
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

async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, AdminError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == http::StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "malformed_body"
        };
        AdminError::Problem(Box::new(
            Problem::new(status, code).detail(rejection.body_text()),
        ))
    })
}

/// Parses a JSON object into `T`, naming the offending member when it does not fit.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|err| AdminError::MalformedBody {
            detail: format!("the body is not valid JSON: {err}"),
        })?;
    let serde_json::Value::Object(members) = value else {
        return Err(AdminError::field("body", "the body must be a JSON object"));
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
) -> AdminError {
    for (name, value) in members {
        let mut alone = serde_json::Map::with_capacity(1);
        alone.insert(name.clone(), value.clone());
        if let Err(member_err) = T::deserialize(&serde_json::Value::Object(alone)) {
            return AdminError::InvalidMember {
                field: name.clone(),
                message: member_err.to_string(),
            };
        }
    }
    let message = err.to_string();
    let field = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("unknown field"))
        .map_or_else(|| "body".to_owned(), str::to_owned);
    AdminError::InvalidMember { field, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CreateKeyRequest, UpdateKeyRequest};

    fn field_of(err: &AdminError) -> String {
        err.to_problem().to_json()["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn names_the_member_of_the_wrong_type() {
        let err = parse::<CreateKeyRequest>(br#"{"name":"n","rate_limit":"x"}"#).unwrap_err();
        assert_eq!(err.status(), 422);
        assert_eq!(field_of(&err), "rate_limit");
        let err = parse::<CreateKeyRequest>(br#"{"kind":"robot"}"#).unwrap_err();
        assert_eq!(field_of(&err), "kind");
        let err = parse::<CreateKeyRequest>(br#"{"expires_at":"tomorrow"}"#).unwrap_err();
        assert_eq!(field_of(&err), "expires_at");
    }

    #[test]
    fn expires_at_is_rfc3339_with_four_digit_years() {
        for bad in [
            "+262142-12-31T23:59:59Z",
            "+10000-01-01T00:00:00Z",
            "-0001-12-31T23:59:59Z",
            "9999-12-31T23:59:59-00:01",
            "0000-01-01T00:00:00+00:01",
            "2027-01-31",
            "2027-01-31T00:00:00",
        ] {
            let body = format!(r#"{{"name":"n","expires_at":"{bad}"}}"#);
            let err = parse::<CreateKeyRequest>(body.as_bytes()).unwrap_err();
            assert_eq!(
                (err.status().as_u16(), field_of(&err)),
                (422, "expires_at".into()),
                "{bad}"
            );
        }
        for (good, utc) in [
            ("2027-01-31T00:00:00Z", "2027-01-31T00:00:00+00:00"),
            (
                "2027-01-31t01:00:00.5+01:00",
                "2027-01-31T00:00:00.500+00:00",
            ),
            (
                "9999-12-31T23:59:59.999999Z",
                "9999-12-31T23:59:59.999999+00:00",
            ),
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00+00:00"),
        ] {
            let body = format!(r#"{{"expires_at":"{good}"}}"#);
            let create: CreateKeyRequest = parse(body.as_bytes()).unwrap();
            assert_eq!(
                create.expires_at.map(|at| at.to_rfc3339()).as_deref(),
                Some(utc)
            );
        }
        let create: CreateKeyRequest = parse(br#"{"expires_at":null}"#).unwrap();
        assert_eq!(create.expires_at, None);
    }

    #[test]
    fn names_unknown_members() {
        let err = parse::<UpdateKeyRequest>(br#"{"colour":"red"}"#).unwrap_err();
        assert_eq!(err.status(), 422);
        assert_eq!(field_of(&err), "colour");
    }

    #[test]
    fn malformed_json_is_400_and_non_objects_422() {
        let err = parse::<CreateKeyRequest>(b"{\"name\":").unwrap_err();
        assert_eq!(err.status(), 400);
        let err = parse::<CreateKeyRequest>(b"[1]").unwrap_err();
        assert_eq!(
            (err.status().as_u16(), field_of(&err)),
            (422, "body".into())
        );
    }

    #[test]
    fn null_and_absent_differ() {
        let update: UpdateKeyRequest = parse(br#"{"rate_limit":null}"#).unwrap();
        assert_eq!(update.rate_limit, Some(None));
        assert_eq!(update.name, None);
        let create: CreateKeyRequest = parse(br#"{"expires_in_days":null}"#).unwrap();
        assert_eq!(create.expires_in_days, Some(None));
        let create: CreateKeyRequest = parse(br"{}").unwrap();
        assert_eq!(create.expires_in_days, None);
    }

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
