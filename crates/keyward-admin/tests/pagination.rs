//! Listing 250 keys in pages of 100: no duplicates, no gaps, stable while keys are added.

mod common;

use std::collections::HashSet;

use common::TestApp;
use keyward::{Expiry, NewKey};

#[tokio::test]
async fn pages_of_one_hundred_without_duplicates_or_gaps() {
    let app = TestApp::new();
    let admin = app.personal("root", &["keys:admin"]).await;
    let mut expected = HashSet::from([admin.id.to_string()]);
    for i in 0..249 {
        let key = app
            .mint(
                NewKey::personal(format!("key {i}"), format!("user{}", i % 7))
                    .scopes(["books:read"])
                    .expiry(Expiry::Never),
            )
            .await;
        expected.insert(key.id.to_string());
    }
    assert_eq!(expected.len(), 250);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut sizes = Vec::new();
    let mut added = HashSet::new();
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/keys?limit=100&cursor={cursor}"),
            None => "/keys?limit=100".to_owned(),
        };
        let reply = app.get(&path, &admin.token).await.expect(200);
        let keys = reply.json["keys"].as_array().unwrap();
        sizes.push(keys.len());
        seen.extend(keys.iter().map(|k| k["id"].as_str().unwrap().to_owned()));
        // Keys created while paging land before the first page and never shift later ones.
        for _ in 0..3 {
            added.insert(app.personal("late", &["books:read"]).await.id.to_string());
        }
        match reply.json["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(sizes.len() < 10, "the listing does not end");
    }
    assert_eq!(sizes, [100, 100, 50]);
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a key was listed twice");
    assert_eq!(
        unique, expected,
        "a key was skipped or a late key slipped in"
    );
    assert!(unique.is_disjoint(&added));

    // Newest first, and the default page is 100.
    let reply = app.get("/keys", &admin.token).await.expect(200);
    let first = reply.json["keys"].as_array().unwrap();
    assert_eq!(first.len(), 100);
    let created: Vec<&str> = first.iter().map(|k| k["id"].as_str().unwrap()).collect();
    let mut sorted = created.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(created, sorted, "ids (UUID v7) descend");
}

#[tokio::test]
async fn an_owner_pages_through_only_their_keys() {
    let app = TestApp::new();
    let alice = app.personal("alice", &["keys:read"]).await;
    for i in 0..5 {
        app.personal("alice", &["books:read"]).await;
        app.personal(&format!("other{i}"), &["books:read"]).await;
    }
    let mut total = 0;
    let mut path = "/keys?limit=2".to_owned();
    loop {
        let reply = app.get(&path, &alice.token).await.expect(200);
        for key in reply.json["keys"].as_array().unwrap() {
            assert_eq!(key["owner"], "alice");
            total += 1;
        }
        match reply.json["next_cursor"].as_str() {
            Some(next) => path = format!("/keys?limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(total, 6);
}
