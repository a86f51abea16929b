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
        assert!(
            reply.status != 404 || path.contains("{id}"),
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
