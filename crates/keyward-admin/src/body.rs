//! The JSON bodies of the management routes, as [`keyward::Json`] reads them: a member of the
//! wrong type is named, as a 422, like a value that fails validation.

use axum::body::Body;
use axum::extract::FromRequest;
use futures_util::FutureExt;
use keyward::{Json, Problem};
use serde::de::DeserializeOwned;

use crate::model::{CreateKeyRequest, UpdateKeyRequest};

/// `bytes` as a JSON request body, read by the routes' extractor.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Box<Problem>> {
    let request = http::Request::post("/")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes.to_vec()))
        .expect("a request");
    Json::<T>::from_request(request, &())
        .now_or_never()
        .expect("a whole body is read at once")
        .map(|Json(value)| value)
        .map_err(|rejection| Box::new(rejection.problem().clone()))
}

fn field_of(problem: &Problem) -> String {
    problem.to_json()["field"]
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
