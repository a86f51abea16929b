//! What a key's owner holds now, through the application's `Callers`: demotion, owner gone,
//! failure.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::*;
use keyward::{
    CallerError, Callers, Keyward, ManageError, ManualClock, MemoryStore, NewKey, ScopeSet, User,
};

/// A user's grants; `None` = the resolver fails for them.
type Grants = Option<Vec<&'static str>>;

/// Users and their grants.
#[derive(Debug, Clone, Default)]
struct Users(Arc<Mutex<HashMap<String, Grants>>>);

impl Users {
    fn set(&self, user: &str, grants: Option<Vec<&'static str>>) {
        self.0.lock().unwrap().insert(user.to_owned(), grants);
    }
    fn remove(&self, user: &str) {
        self.0.lock().unwrap().remove(user);
    }
}

impl Callers for Users {
    async fn user(&self, id: &str) -> Result<Option<User>, CallerError> {
        match self.0.lock().unwrap().get(id) {
            None => Ok(None),
            Some(None) => Err(CallerError::msg("user database down")),
            Some(Some(grants)) => {
                let scopes = ScopeSet::parse(grants.iter().copied()).unwrap();
                Ok(Some(User::new(id, id, scopes)))
            }
        }
    }
}

async fn setup() -> (Keyward, Users, axum::Router, keyward::KeyId, String) {
    let clock = ManualClock::new(t0());
    let users = Users::default();
    users.set("alice", Some(vec!["books:write"]));
    let keyward = builder(MemoryStore::new(), &clock)
        .callers(users.clone())
        .build()
        .unwrap();
    let (id, token) = issue(
        &keyward,
        NewKey::personal("laptop", "alice").scopes(["books:write"]),
    )
    .await;
    let app = app(&keyward);
    (keyward, users, app, id, token)
}

fn post(token: &str) -> http::Request<axum::body::Body> {
    let mut request = bearer("/write", token);
    *request.method_mut() = http::Method::POST;
    request
}

#[tokio::test]
async fn demoting_the_owner_removes_the_scope_after_invalidation() {
    let (keyward, users, app, id, token) = setup().await;
    let reply = send(&app, post(&token)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json["scopes"],
        serde_json::json!(["books:read", "books:write"])
    );

    users.set("alice", Some(vec!["books:read"]));
    let record = keyward.get(id).await.unwrap();
    assert_eq!(
        keyward
            .effective_scopes(&record)
            .await
            .unwrap()
            .to_strings(),
        ["books:read"]
    );
    // Until the cache entry is dropped (TTL, a change to the key, or the app telling keyward
    // that the user changed) the cached grants hold.
    assert_eq!(send(&app, post(&token)).await.status, 200);
    keyward.invalidate_owner("alice").await.unwrap();
    let reply = send(&app, post(&token)).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.error(), "insufficient_scope");
    let reply = send(&app, bearer("/echo", &token)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["scopes"], serde_json::json!(["books:read"]));
}

#[tokio::test]
async fn owner_gone_is_401() {
    let (keyward, users, app, id, token) = setup().await;
    users.remove("alice");
    keyward.invalidate_key(id);
    let reply = send(&app, bearer("/echo", &token)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error(), "invalid_token");
    let record = keyward.get(id).await.unwrap();
    assert!(keyward.effective_scopes(&record).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failing_user_lookup_is_503_with_retry_after() {
    let (keyward, users, app, _id, token) = setup().await;
    users.set("alice", None);
    let reply = send(&app, bearer("/echo", &token)).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.error(), "temporarily_unavailable");
    assert_eq!(reply.headers["retry-after"], "5");
    let record = keyward
        .list(&Default::default())
        .await
        .unwrap()
        .keys
        .remove(0);
    assert!(matches!(
        keyward.effective_scopes(&record).await,
        Err(ManageError::Callers(_))
    ));
    // Not cached: it works as soon as the lookup does.
    users.set("alice", Some(vec!["books:read"]));
    assert_eq!(send(&app, bearer("/echo", &token)).await.status, 200);
}

#[tokio::test]
async fn without_callers_personal_keys_keep_their_scopes() {
    let clock = ManualClock::new(t0());
    let keyward = builder(MemoryStore::new(), &clock).build().unwrap();
    let (_, token) = issue(
        &keyward,
        NewKey::personal("laptop", "alice").scopes(["books:write"]),
    )
    .await;
    assert_eq!(send(&app(&keyward), post(&token)).await.status, 200);
}
