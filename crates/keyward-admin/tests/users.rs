//! `GET /users` and the owner check: a key for an unknown owner, or with scopes its owner
//! lacks, is refused with 422 instead of being stored to do less than it says.

mod common;

use common::TestApp;
use http::{Method, StatusCode};
use keyward::{CallerError, Callers, ScopeSet, User};
use serde_json::json;

/// The application's users: bob can write books (which implies reading them), carol only
/// reads reviews, root administers keys.
#[derive(Clone, Debug)]
struct Staff;

fn staff() -> Vec<User> {
    let user = |id: &str, name: &str, scopes: &[&str]| {
        User::new(id, name, ScopeSet::parse(scopes.iter().copied()).unwrap())
    };
    vec![
        user(
            "u-root",
            "Root",
            &["keys:admin", "books:write", "reviews:read"],
        ),
        user("u-bob", "Bob", &["books:write"]),
        user("u-carol", "Carol", &["reviews:read", "keys:write"]),
    ]
}

impl Callers for Staff {
    async fn user(&self, id: &str) -> Result<Option<User>, CallerError> {
        Ok(staff().into_iter().find(|user| user.id == id))
    }

    async fn users(&self) -> Result<Option<Vec<User>>, CallerError> {
        Ok(Some(staff()))
    }
}

/// An application that knows its users one at a time but does not list them.
#[derive(Clone, Debug)]
struct Unlisted;

impl Callers for Unlisted {
    async fn user(&self, id: &str) -> Result<Option<User>, CallerError> {
        Ok(staff().into_iter().find(|user| user.id == id))
    }
}

fn create(owner: &str, scopes: &[&str]) -> serde_json::Value {
    json!({ "name": "script", "owner": owner, "scopes": scopes })
}

#[tokio::test]
async fn administrators_list_the_users_by_name_with_what_they_hold() {
    let app = TestApp::with(|builder| builder.callers(Staff));
    let root = app.manager("u-root", &["keys:admin"]).await;

    let reply = app.get("/users", &root.token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let names: Vec<&str> = reply.json["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Bob", "Carol", "Root"]);
    // Scopes are shown as the catalog expands them: writing books implies reading them.
    assert_eq!(
        reply.json["users"][0],
        json!({ "id": "u-bob", "name": "Bob", "scopes": ["books:read", "books:write"] })
    );
}

#[tokio::test]
async fn the_user_listing_is_for_administrators_only() {
    let app = TestApp::with(|builder| builder.callers(Staff));
    let carol = app
        .manager("u-carol", &["keys:write", "reviews:read"])
        .await;

    let reply = app.get("/users", &carol.token).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json["error"], "insufficient_scope");
    assert_eq!(reply.json["scope"], "keys:admin");

    let anonymous = app.send(Method::GET, "/users", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_application_that_does_not_list_its_users_answers_not_found() {
    for app in [
        TestApp::with(|builder| builder.callers(Unlisted)),
        TestApp::new(),
    ] {
        let root = app.manager("u-root", &["keys:admin"]).await;
        let reply = app.get("/users", &root.token).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
        assert_eq!(reply.json["error"], "not_found");
        assert!(reply.json["detail"].as_str().unwrap().contains("users"));
    }
}

#[tokio::test]
async fn a_key_for_an_unknown_owner_is_refused_naming_the_owner() {
    for app in [
        TestApp::with(|builder| builder.callers(Staff)),
        TestApp::with(|builder| builder.callers(Unlisted)),
    ] {
        let root = app.manager("u-root", &["keys:admin", "books:read"]).await;
        let reply = app
            .post("/keys", &root.token, create("nobody", &["books:read"]))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.text
        );
        assert_eq!(reply.field(), "owner");
        assert!(reply.text.contains("nobody"), "{}", reply.text);
        assert!(!reply.text.contains("books_"), "no token in a refusal");
    }
}

#[tokio::test]
async fn scopes_the_owner_lacks_are_refused_naming_them() {
    let app = TestApp::with(|builder| builder.callers(Staff));
    let root = app
        .manager("u-root", &["keys:admin", "books:write", "reviews:read"])
        .await;

    let reply = app
        .post(
            "/keys",
            &root.token,
            create("u-bob", &["books:read", "reviews:read"]),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(reply.field(), "scopes");
    assert!(reply.text.contains("reviews:read"), "{}", reply.text);
    assert!(reply.text.contains("Bob"), "{}", reply.text);
    assert!(
        !reply.text.contains("books:read,"),
        "only the missing scopes"
    );

    // What the owner holds through an implication is fine.
    let created = app
        .post("/keys", &root.token, create("u-bob", &["books:read"]))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.json["key"]["id"].as_str().unwrap().to_owned();

    // Changing the scopes checks them again; a rename does not.
    let widen = app
        .send(
            Method::PATCH,
            &format!("/keys/{id}"),
            Some(&root.token),
            Some(json!({ "scopes": ["reviews:read"] })),
        )
        .await;
    assert_eq!(
        widen.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        widen.text
    );
    assert_eq!(widen.field(), "scopes");
    let rename = app
        .send(
            Method::PATCH,
            &format!("/keys/{id}"),
            Some(&root.token),
            Some(json!({ "name": "renamed" })),
        )
        .await;
    assert_eq!(rename.status, StatusCode::OK, "{}", rename.text);

    // Nothing was stored by the refusals.
    let listed = app.get("/keys?owner=u-bob", &root.token).await;
    let keys = listed.json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["scopes"], json!(["books:read"]));
}

#[tokio::test]
async fn service_keys_and_applications_without_users_are_not_checked() {
    let app = TestApp::with(|builder| builder.callers(Staff));
    let root = app.manager("u-root", &["keys:admin", "reviews:read"]).await;
    let service = app
        .post(
            "/keys",
            &root.token,
            json!({ "name": "exporter", "kind": "service", "scopes": ["reviews:read"] }),
        )
        .await;
    assert_eq!(service.status, StatusCode::CREATED, "{}", service.text);

    // Without Callers keyward cannot know the users: the owner is taken as given.
    let app = TestApp::new();
    let root = app.manager("u-root", &["keys:admin", "books:read"]).await;
    let reply = app
        .post("/keys", &root.token, create("someone", &["books:read"]))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}
