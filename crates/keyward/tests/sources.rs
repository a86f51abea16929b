//! Credential sources and credential hiding.

mod common;

use common::*;
use keyward::{CredentialSource, Keyward, ManualClock, MemoryStore, NewKey};

async fn setup(hide: bool) -> (Keyward, axum::Router, String) {
    let clock = ManualClock::new(t0());
    let keyward = builder(MemoryStore::new(), &clock)
        .sources([
            CredentialSource::bearer(),
            CredentialSource::token(),
            CredentialSource::header("x-api-key"),
            CredentialSource::query("api_key"),
            CredentialSource::header("x-emby-token"),
        ])
        .hide_credentials(hide)
        .build()
        .unwrap();
    let (_, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    let app = app(&keyward);
    (keyward, app, token)
}

fn assert_hidden(reply: &Reply, token: &str) {
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json["key_id"].is_string());
    assert!(
        !reply.text.contains(token),
        "the inner service saw the token: {}",
        reply.text
    );
}

#[tokio::test]
async fn bearer() {
    let (_k, app, token) = setup(true).await;
    let reply = send(&app, common::bearer("/echo", &token)).await;
    assert_hidden(&reply, &token);
    assert!(reply.json["headers"].get("authorization").is_none());
    // The scheme is case-insensitive.
    let reply = send(
        &app,
        get_with("/echo", &[("authorization", &format!("bearer {token}"))]),
    )
    .await;
    assert_hidden(&reply, &token);
}

#[tokio::test]
async fn authorization_token_scheme() {
    let (_k, app, token) = setup(true).await;
    let reply = send(
        &app,
        get_with("/echo", &[("authorization", &format!("Token {token}"))]),
    )
    .await;
    assert_hidden(&reply, &token);
    assert!(reply.json["headers"].get("authorization").is_none());
}

#[tokio::test]
async fn x_api_key_header() {
    let (_k, app, token) = setup(true).await;
    let reply = send(
        &app,
        get_with("/echo", &[("x-api-key", &token), ("accept", "*/*")]),
    )
    .await;
    assert_hidden(&reply, &token);
    assert!(reply.json["headers"].get("x-api-key").is_none());
    assert_eq!(reply.json["headers"]["accept"], "*/*", "other headers stay");
}

#[tokio::test]
async fn query_parameter() {
    let (_k, app, token) = setup(true).await;
    let reply = send(
        &app,
        get_with(&format!("/echo?page=2&api_key={token}&q=x"), &[]),
    )
    .await;
    assert_hidden(&reply, &token);
    assert_eq!(reply.json["uri"], "/echo?page=2&q=x");
}

#[tokio::test]
async fn custom_header() {
    let (_k, app, token) = setup(true).await;
    let reply = send(&app, get_with("/echo", &[("x-emby-token", &token)])).await;
    assert_hidden(&reply, &token);
}

#[tokio::test]
async fn query_is_off_unless_configured() {
    let clock = ManualClock::new(t0());
    let keyward = builder(MemoryStore::new(), &clock).build().unwrap();
    let (_, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
    let app = app(&keyward);
    let reply = send(&app, get_with(&format!("/echo?api_key={token}"), &[])).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error(), "missing_credential");
    // The defaults: Bearer, Token, X-Api-Key.
    for (name, value) in [
        ("authorization", format!("Bearer {token}")),
        ("authorization", format!("Token {token}")),
        ("x-api-key", token.clone()),
    ] {
        assert_eq!(
            send(&app, get_with("/echo", &[(name, &value)]))
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn same_token_in_every_place_is_fine_and_all_are_hidden() {
    let (_k, app, token) = setup(true).await;
    let reply = send(
        &app,
        get_with(
            &format!("/echo?api_key={token}"),
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-api-key", &token),
                ("x-emby-token", &token),
            ],
        ),
    )
    .await;
    assert_hidden(&reply, &token);
    assert_eq!(reply.json["uri"], "/echo");
}

#[tokio::test]
async fn conflicting_sources_are_400() {
    let (keyward, app, token) = setup(true).await;
    let (_, other) = issue(&keyward, NewKey::service("other").scopes(["books:read"])).await;
    for request in [
        get_with(&format!("/echo?api_key={other}"), &[("x-api-key", &token)]),
        get_with(
            "/echo",
            &[
                ("x-emby-token", &other),
                ("authorization", &format!("Token {token}")),
            ],
        ),
        get_with(
            "/echo",
            &[("x-api-key", "garbage"), ("x-emby-token", &token)],
        ),
    ] {
        let reply = send(&app, request).await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(reply.error(), "invalid_request");
    }
}

#[tokio::test]
async fn with_hiding_off_the_inner_service_sees_the_credential() {
    let (_k, app, token) = setup(false).await;
    let reply = send(
        &app,
        get_with(&format!("/echo?api_key={token}"), &[("x-api-key", &token)]),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["headers"]["x-api-key"], token.as_str());
    assert!(reply.json["uri"].as_str().unwrap().contains(&token));
}

/// A `GET` with header values given as bytes, which need not be text.
fn get_with_bytes(uri: &str, headers: &[(&str, &[u8])]) -> http::Request<axum::body::Body> {
    let mut request = http::Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, http::HeaderValue::from_bytes(value).unwrap());
    }
    request.body(axum::body::Body::empty()).unwrap()
}

/// Every source, each with a credential that is present but unreadable: bytes that are not
/// text (where HTTP allows them: in header values; a query can only carry them
/// percent-encoded) and nothing at all.
fn unreadable_requests() -> Vec<(&'static str, http::Request<axum::body::Body>)> {
    let mut requests = Vec::new();
    for (source, name, scheme) in [
        ("bearer", "authorization", "Bearer "),
        ("token", "authorization", "Token "),
        ("x-api-key", "x-api-key", ""),
        ("custom header", "x-emby-token", ""),
    ] {
        let not_text = [scheme.as_bytes(), b"books_\xff\xfe\xe9"].concat();
        requests.push((source, get_with_bytes("/echo", &[(name, &not_text)])));
        let empty = scheme.trim_end().as_bytes();
        requests.push((source, get_with_bytes("/echo", &[(name, empty)])));
        let blank = [scheme.as_bytes(), b"   "].concat();
        requests.push((source, get_with_bytes("/echo", &[(name, &blank)])));
    }
    requests.push((
        "authorization",
        get_with_bytes("/echo", &[("authorization", b"\xff\xfe books_abc")]),
    ));
    for uri in [
        "/echo?api_key=books_%FF%FE",
        "/echo?api_key=%C3%28",
        "/echo?page=2&api_key=",
        "/echo?api_key",
    ] {
        requests.push(("query", get_with_bytes(uri, &[])));
    }
    requests
}

#[tokio::test]
async fn an_unreadable_credential_is_invalid_in_both_modes() {
    let (keyward, required, _token) = setup(true).await;
    let optional = routes().layer(keyward.layer().optional());
    for (mode, app) in [("required", &required), ("optional", &optional)] {
        for (source, request) in unreadable_requests() {
            let what = format!("{source} in {mode} mode: {:?}", request.headers());
            let reply = send(app, request).await;
            assert_eq!(reply.status, 401, "{what}: {}", reply.text);
            assert_eq!(reply.error(), "invalid_token", "{what}");
            let challenge = reply.challenge().unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
                "{what}: {challenge}"
            );
        }
    }
}

#[tokio::test]
async fn an_unreadable_credential_beside_a_token_is_a_conflict() {
    let (_k, app, token) = setup(true).await;
    let reply = send(
        &app,
        get_with_bytes(
            "/echo",
            &[
                ("authorization", format!("Bearer {token}").as_bytes()),
                ("x-api-key", b"\xff"),
            ],
        ),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error(), "invalid_request");
}

#[tokio::test]
async fn another_authorization_scheme_is_not_ours() {
    let (keyward, required, _token) = setup(true).await;
    let optional = routes().layer(keyward.layer().optional());
    for value in [
        &b"Basic dXNlcjpwdw=="[..],
        b"Digest username=\"alice\"",
        b"",
    ] {
        let reply = send(
            &optional,
            get_with_bytes("/echo", &[("authorization", value)]),
        )
        .await;
        assert_eq!(reply.status, 200, "{value:?}: {}", reply.text);
        assert!(reply.json["key_id"].is_null());
        let reply = send(
            &required,
            get_with_bytes("/echo", &[("authorization", value)]),
        )
        .await;
        assert_eq!(reply.status, 401, "{value:?}");
        assert_eq!(reply.error(), "missing_credential", "{value:?}");
    }
}

#[tokio::test]
async fn an_encoded_parameter_name_is_the_same_parameter() {
    let (_k, app, token) = setup(true).await;
    let reply = send(&app, get_with(&format!("/echo?api%5Fkey={token}&q=1"), &[])).await;
    assert_hidden(&reply, &token);
    assert_eq!(reply.json["uri"], "/echo?q=1");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Header bytes HTTP allows (visible ASCII, space, obs-text) with at least one byte that
    /// is not ASCII, so the value is not text.
    fn not_text() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff], 0..40),
            0x80u8..=0xff,
            any::<prop::sample::Index>(),
        )
            .prop_map(|(mut bytes, high, at)| {
                let at = at.index(bytes.len() + 1);
                bytes.insert(at, high);
                bytes
            })
    }

    fn check(
        request: http::Request<axum::body::Body>,
        optional: bool,
    ) -> Result<(), TestCaseError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (keyward, required, _token) = setup(true).await;
            let app = if optional {
                routes().layer(keyward.layer().optional())
            } else {
                required
            };
            let reply = send(&app, request).await;
            prop_assert_eq!(reply.status, 401, "{}", reply.text);
            prop_assert_eq!(reply.error(), "invalid_token");
            prop_assert!(
                reply
                    .challenge()
                    .is_some_and(|c| c.contains("invalid_token"))
            );
            Ok(())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn header_bytes_that_are_not_text_are_an_invalid_credential(
            value in not_text(),
            source in 0usize..4,
            optional in any::<bool>(),
        ) {
            let (name, scheme) = [
                ("authorization", "Bearer "),
                ("authorization", "Token "),
                ("x-api-key", ""),
                ("x-emby-token", ""),
            ][source];
            let value = [scheme.as_bytes(), &value].concat();
            check(get_with_bytes("/echo", &[(name, &value)]), optional)?;
        }

        #[test]
        fn a_query_value_that_is_not_text_is_an_invalid_credential(
            value in proptest::collection::vec(any::<u8>(), 1..40),
            optional in any::<bool>(),
        ) {
            prop_assume!(std::str::from_utf8(&value).is_err());
            let encoded: String = value.iter().map(|b| format!("%{b:02X}")).collect();
            check(get_with_bytes(&format!("/echo?api_key={encoded}"), &[]), optional)?;
        }
    }
}
