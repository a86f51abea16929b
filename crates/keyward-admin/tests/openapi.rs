//! The OpenAPI document: it parses, declares 3.1, and lists exactly the routes the router
//! serves, each answering on the router.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use common::{MOUNT, TestApp};
use http::Request;
use serde_json::Value;

#[tokio::test]
async fn the_document_lists_exactly_the_served_routes() {
    let app = TestApp::new();
    let reply = app
        .call(
            Request::get(format!("{MOUNT}/openapi.json"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .expect(200);
    let doc: Value = serde_json::from_str(&reply.text).expect("the document parses");
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "declares {version}");
    assert_eq!(doc["servers"][0]["url"], MOUNT);

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            documented.insert((method.to_uppercase(), path.clone()));
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path} has responses");
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let problem = &response["content"]["application/problem+json"]["schema"];
                    assert!(
                        problem["$ref"]
                            .as_str()
                            .unwrap_or("")
                            .ends_with("/ProblemBody"),
                        "{method} {path} {status} is a problem document"
                    );
                }
            }
        }
    }
    let served: BTreeSet<(String, String)> = keyward_admin::routes()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, served);

    // Every listed route answers on the router: something other than "no such route".
    let sample = "00000000-0000-7000-8000-000000000000";
    for (method, path) in &served {
        let uri = format!("{MOUNT}{}", path.replace("{id}", sample));
        let reply = app
            .call(
                Request::builder()
                    .method(method.as_str())
                    .uri(&uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_ne!(reply.status, 405, "{method} {uri}");
        // `/leaks/github` answers 404 until the application configures GitHub's keys.
        assert!(
            reply.status != 404 || path.contains("{id}") || path == "/leaks/github",
            "{method} {uri} answers 404"
        );
    }
}

#[test]
fn schemas_describe_the_bodies() {
    let doc = serde_json::to_value(keyward_admin::openapi()).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "KeyObject",
        "KeyList",
        "IssuedKeyBody",
        "CreateKeyRequest",
        "UpdateKeyRequest",
        "RegenerateRequest",
        "ScopeList",
        "SelfKey",
        "ProblemBody",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    let key = schemas["KeyObject"]["properties"].as_object().unwrap();
    let members: BTreeSet<&str> = key.keys().map(String::as_str).collect();
    assert_eq!(
        members,
        BTreeSet::from([
            "id",
            "name",
            "kind",
            "owner",
            "scopes",
            "hint",
            "created_at",
            "expires_at",
            "last_used_at",
            "last_used_ip",
            "usage_count",
            "active",
            "disabled_by",
            "revoked_at",
            "allowed_ips",
            "rate_limit",
            "metadata",
        ])
    );
    let required = schemas["CreateKeyRequest"]["required"].as_array().unwrap();
    assert!(required.contains(&Value::from("name")));
    assert!(required.contains(&Value::from("scopes")));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// Whether `text` holds something shaped like a keyward token, as a secret scanner sees it:
/// `[a-z][a-z0-9]{1,15}_[0-9A-Za-z]{46}` anywhere in the text.
fn looks_like_a_token(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(underscore, &b)| {
        if b != b'_' {
            return false;
        }
        let secret = &bytes[underscore + 1..];
        let secret_fits = secret.len() >= 46 && secret[..46].iter().all(u8::is_ascii_alphanumeric);
        // Some start 2..=16 characters back: a lowercase letter, then lowercase letters or
        // digits up to the underscore.
        let prefix_fits = (1..=16)
            .take_while(|&back| {
                underscore >= back && matches!(bytes[underscore - back], b'a'..=b'z' | b'0'..=b'9')
            })
            .any(|back| back >= 2 && bytes[underscore - back].is_ascii_lowercase());
        secret_fits && prefix_fits
    })
}

fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(members) => {
            for (name, v) in members {
                out.push(name.clone());
                strings(v, out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_token_pattern_is_recognised() {
    let secret = "4hWq9PZt0xbd7Ksm2LrA1cYv8NeGf3Ju6TiBo5Rn0a1B2c";
    assert_eq!(secret.len(), 46);
    assert!(looks_like_a_token(&format!("books_{secret}")));
    assert!(looks_like_a_token(&format!("token: \"ab_{secret}xyz\"")));
    assert!(!looks_like_a_token(&format!("b_{secret}")));
    assert!(!looks_like_a_token(&format!("books_{}", &secret[..45])));
    // The pattern is not anchored: "ooks_…" inside "Books_…" matches.
    assert!(looks_like_a_token(&format!("Books_{secret}")));
    assert!(!looks_like_a_token(&format!("X9_{secret}")));
    assert!(!looks_like_a_token(
        "books_<46 letters and digits, shown once>"
    ));
    assert!(!looks_like_a_token("books_…x7Qa"));
}

/// Secret scanners match the token pattern; an example in the document that matched it would
/// be reported as a leaked key wherever the document is published.
#[tokio::test]
async fn no_example_looks_like_a_real_token() {
    let app = TestApp::new();
    let reply = app
        .call(
            Request::get(format!("{MOUNT}/openapi.json"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .expect(200);
    let doc: Value = serde_json::from_str(&reply.text).expect("the document parses");
    let mut found = Vec::new();
    strings(&doc, &mut found);
    assert!(found.len() > 100, "walked the whole document");
    let tokens: Vec<&String> = found.iter().filter(|s| looks_like_a_token(s)).collect();
    assert!(tokens.is_empty(), "token-shaped strings: {tokens:?}");
    assert!(!looks_like_a_token(&reply.text));
}

/// The document states the bound on `expires_at` that the routes enforce.
#[test]
fn expires_at_states_its_bound() {
    let doc = serde_json::to_value(keyward_admin::openapi()).unwrap();
    let field = &doc["components"]["schemas"]["CreateKeyRequest"]["properties"]["expires_at"];
    let description = field["description"].as_str().unwrap_or_default();
    let days = keyward_core::MAX_LIFETIME_DAYS.to_string();
    assert!(description.contains(&days), "{field}");
    assert!(description.contains("RFC 3339"), "{field}");
}
