//! The reference app end to end: sessions, keys through every credential method, scope
//! guards, revocation, admin oversight and restarts — on SQLite and, when configured,
//! PostgreSQL.

use keyward_test_support::{Http, TestDatabase};
use keyward_tests::{ADMIN_PASSWORD, READER_PASSWORD, login, start};
use serde_json::json;

async fn walk(url: &str) {
    let app = start(url).await;
    assert!(
        app.first_start.is_some(),
        "an empty database is a first start"
    );

    // A wrong password is refused.
    let mut anonymous = Http::new(app.addr);
    let refused = anonymous
        .post(
            "/login",
            &[],
            &json!({ "username": "reader", "password": "nope" }),
        )
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(anonymous.get("/api/v1/books", &[]).await.status, 401);

    // The reader logs in and creates a key that may only read books.
    let mut reader = login(&app, "reader", READER_PASSWORD).await;
    assert_eq!(
        reader.get("/api/v1/books", &[]).await.status,
        200,
        "sessions work on API routes"
    );
    let created = reader
        .post(
            "/api/v1/tokens/keys",
            &[],
            &json!({ "name": "Reading script", "scopes": ["books:read"], "expires_in_days": 7 }),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    let token = created.json["token"]
        .as_str()
        .expect("the token, once")
        .to_owned();
    let key_id = created.json["key"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let reader_id = created.json["key"]["owner"]
        .as_str()
        .expect("an owner")
        .to_owned();

    // Every credential method works.
    let mut script = Http::new(app.addr);
    let bearer = format!("Bearer {token}");
    let token_scheme = format!("Token {token}");
    for (name, value) in [
        ("authorization", bearer.as_str()),
        ("authorization", token_scheme.as_str()),
        ("x-api-key", token.as_str()),
    ] {
        let reply = script.get("/api/v1/books", &[(name, value)]).await;
        assert_eq!(reply.status, 200, "{name}: {value:.20}…");
        assert!(reply.json["books"].is_array());
    }
    let reply = script
        .get(&format!("/api/v1/books?api_key={token}"), &[])
        .await;
    assert_eq!(reply.status, 200, "query parameter");

    // Writing needs books:write: 403 insufficient_scope.
    let denied = script
        .post(
            "/api/v1/books",
            &[("authorization", bearer.as_str())],
            &json!({ "title": "Dune", "author": "Frank Herbert" }),
        )
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json["error"], "insufficient_scope");
    assert!(
        denied
            .header("www-authenticate")
            .contains("error=\"insufficient_scope\"")
    );
    assert!(
        denied
            .header("www-authenticate")
            .contains("scope=\"books:write\"")
    );

    // The reader revokes the key; it stops at once.
    let revoked = reader
        .post(
            &format!("/api/v1/tokens/keys/{key_id}/revoke"),
            &[],
            &json!({}),
        )
        .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.json);
    let after = script
        .get("/api/v1/books", &[("authorization", bearer.as_str())])
        .await;
    assert_eq!(after.status, 401);
    assert!(after.header("www-authenticate").contains("invalid_token"));

    // The admin sees the reader's keys and revokes one.
    let second = reader
        .post(
            "/api/v1/tokens/keys",
            &[],
            &json!({ "name": "Second", "scopes": ["books:read", "reading:read"] }),
        )
        .await;
    assert_eq!(second.status, 201);
    let second_token = second.json["token"].as_str().unwrap().to_owned();
    let second_id = second.json["key"]["id"].as_str().unwrap().to_owned();
    let second_auth = format!("Bearer {second_token}");
    assert_eq!(
        script
            .get(
                "/api/v1/reading-events",
                &[("authorization", second_auth.as_str())]
            )
            .await
            .status,
        200
    );

    let mut admin = login(&app, "admin", ADMIN_PASSWORD).await;
    let listed = admin
        .get(
            &format!("/api/v1/tokens/keys?owner={reader_id}&include_revoked=true"),
            &[],
        )
        .await;
    assert_eq!(listed.status, 200, "{:?}", listed.json);
    let ids: Vec<&str> = listed.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [second_id.as_str(), key_id.as_str()],
        "newest first, revoked included"
    );
    let by_admin = admin
        .post(
            &format!("/api/v1/tokens/keys/{second_id}/revoke"),
            &[],
            &json!({}),
        )
        .await;
    assert_eq!(by_admin.status, 200);
    assert_eq!(
        script
            .get("/api/v1/books", &[("authorization", second_auth.as_str())])
            .await
            .status,
        401
    );

    // The reader cannot see the admin's keys.
    let mine = reader
        .get("/api/v1/tokens/keys?include_revoked=true", &[])
        .await;
    assert_eq!(mine.json["keys"].as_array().unwrap().len(), 2);

    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn books_end_to_end_on_sqlite() {
    let db = TestDatabase::sqlite();
    walk(db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn books_end_to_end_on_postgres() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    walk(db.url()).await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_keys_usage_and_users() {
    let db = TestDatabase::sqlite();
    let app = start(db.url()).await;
    let bootstrap = app
        .first_start
        .clone()
        .expect("first start")
        .bootstrap_token;
    let auth = format!("Bearer {bootstrap}");
    let mut script = Http::new(app.addr);
    for _ in 0..5 {
        assert_eq!(
            script
                .get("/api/v1/books", &[("authorization", auth.as_str())])
                .await
                .status,
            200
        );
    }
    // Stopping flushes the usage counts.
    app.stop().await.unwrap();

    let app = start(db.url()).await;
    assert!(
        app.first_start.is_none(),
        "no new users or bootstrap token on a restart"
    );
    let mut script = Http::new(app.addr);
    let me = script
        .get("/api/v1/tokens/self", &[("authorization", auth.as_str())])
        .await;
    assert_eq!(me.status, 200, "the key survived: {:?}", me.json);
    assert_eq!(
        me.json["key"]["usage_count"], 6,
        "usage from the first run was kept, and this request counts at once"
    );
    login(&app, "reader", READER_PASSWORD).await;
    app.stop().await.unwrap();
}
