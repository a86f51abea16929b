//! The reference app's callers: a signed-in session and a personal key pass the same scope
//! guards, a role change reaches both at once, a deleted user's session ends, and a session
//! may not write from another site.

use http::Method;
use keyward_examples::books::db::user;
use keyward_test_support::{Http, Reply, TestDatabase};
use keyward_tests::{ADMIN_PASSWORD, READER_PASSWORD, sign_in, start};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

/// Creates a personal key of the signed-in user with `scopes`; its `Authorization` value.
async fn personal_key(http: &mut Http, scopes: &[&str]) -> String {
    let created = http
        .post(
            "/api/v1/tokens/keys",
            &[],
            &json!({ "name": format!("key for {}", scopes.join(" ")), "scopes": scopes }),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    format!(
        "Bearer {}",
        created.json["token"].as_str().expect("a token")
    )
}

fn book(title: &str) -> Value {
    json!({ "title": title, "author": "Ursula K. Le Guin" })
}

/// `PATCH /api/v1/users/{id}` with `role`, by `http`.
async fn set_role(http: &mut Http, id: &str, role: &str) -> Reply {
    http.send(
        Method::PATCH,
        &format!("/api/v1/users/{id}"),
        &[],
        Some(&json!({ "role": role })),
    )
    .await
}

fn assert_refused(reply: &Reply, status: u16, error: &str, what: &str) {
    assert_eq!(reply.status.as_u16(), status, "{what}: {:?}", reply.json);
    assert_eq!(reply.json["error"], error, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_and_a_personal_key_pass_the_same_guards() {
    let db = TestDatabase::sqlite();
    let app = start(db.url()).await;
    let (mut reader, _) = sign_in(&app, "reader", READER_PASSWORD).await;
    let reading = personal_key(&mut reader, &["books:read"]).await;
    let writing = personal_key(&mut reader, &["books:write"]).await;
    let mut script = Http::new(app.addr);

    // Reading needs books:read: the session, either key.
    assert_eq!(reader.get("/api/v1/books", &[]).await.status, 200);
    for key in [&reading, &writing] {
        let reply = script
            .get("/api/v1/books", &[("authorization", key.as_str())])
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.json);
    }

    // Writing needs books:write: the session and the writing key, not the reading key.
    let by_session = reader.post("/api/v1/books", &[], &book("Lathe")).await;
    assert_eq!(by_session.status, 201, "{:?}", by_session.json);
    let by_key = script
        .post(
            "/api/v1/books",
            &[("authorization", writing.as_str())],
            &book("Earthsea"),
        )
        .await;
    assert_eq!(by_key.status, 201, "{:?}", by_key.json);
    assert_eq!(
        by_session.json["added_by"], by_key.json["added_by"],
        "both act for the reader"
    );
    let denied = script
        .post(
            "/api/v1/books",
            &[("authorization", reading.as_str())],
            &book("Tehanu"),
        )
        .await;
    assert_refused(&denied, 403, "insufficient_scope", "the reading key writes");
    assert_eq!(denied.json["scope"], "books:write");

    // The reader's role lacks users:admin, whether asked by session or by key.
    let (_, admin_id) = sign_in(&app, "admin", ADMIN_PASSWORD).await;
    let denied = set_role(&mut reader, &admin_id, "user").await;
    assert_refused(&denied, 403, "insufficient_scope", "the reader demotes");
    assert_eq!(denied.json["scope"], "users:admin");

    // Nobody is refused on both.
    let mut anonymous = Http::new(app.addr);
    assert_eq!(anonymous.get("/api/v1/books", &[]).await.status, 401);
    let nobody = anonymous.post("/api/v1/books", &[], &book("Nobody")).await;
    assert_eq!(nobody.status, 401);
    assert!(nobody.header("www-authenticate").starts_with("Bearer"));

    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_reaches_the_session_and_the_keys_at_once() {
    let db = TestDatabase::sqlite();
    let app = start(db.url()).await;
    let bootstrap = format!(
        "Bearer {}",
        app.first_start
            .as_ref()
            .expect("first start")
            .bootstrap_token
    );
    let (mut admin, admin_id) = sign_in(&app, "admin", ADMIN_PASSWORD).await;
    let (mut reader, reader_id) = sign_in(&app, "reader", READER_PASSWORD).await;
    let mut script = Http::new(app.addr);
    let admins_keys = format!("/api/v1/tokens/keys?owner={admin_id}");
    let readers_keys = format!("/api/v1/tokens/keys?owner={reader_id}");

    // The admin promotes the reader: the reader's session holds keys:admin at once.
    let denied = reader.get(&admins_keys, &[]).await;
    assert_eq!(denied.status, 403, "{:?}", denied.json);
    let promoted = set_role(&mut admin, &reader_id, "admin").await;
    assert_eq!(promoted.status, 200, "{:?}", promoted.json);
    assert_eq!(promoted.json["role"], "admin");
    assert!(
        promoted.json["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!("keys:admin"))
    );
    let allowed = reader.get(&admins_keys, &[]).await;
    assert_eq!(allowed.status, 200, "promoted: {:?}", allowed.json);

    // The admin's session and bootstrap key see the reader's keys (the key is now cached).
    assert_eq!(admin.get(&readers_keys, &[]).await.status, 200);
    for _ in 0..2 {
        let reply = script
            .get(&readers_keys, &[("authorization", bootstrap.as_str())])
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.json);
    }

    // The promoted reader demotes the admin: both the session and the key lose keys:admin.
    let demoted = set_role(&mut reader, &admin_id, "user").await;
    assert_eq!(demoted.status, 200, "{:?}", demoted.json);
    assert_eq!(demoted.json["role"], "user");
    let by_session = admin.get(&readers_keys, &[]).await;
    assert_eq!(by_session.status, 403, "demoted: {:?}", by_session.json);
    let by_key = script
        .get(&readers_keys, &[("authorization", bootstrap.as_str())])
        .await;
    assert_eq!(by_key.status, 403, "demoted key: {:?}", by_key.json);
    let denied = set_role(&mut admin, &reader_id, "user").await;
    assert_refused(&denied, 403, "insufficient_scope", "the demoted admin");

    // What a user holds stays: their own keys, and books.
    let own = script
        .get(
            "/api/v1/tokens/keys",
            &[("authorization", bootstrap.as_str())],
        )
        .await;
    assert_eq!(own.status, 200, "{:?}", own.json);
    assert_eq!(admin.get(&admins_keys, &[]).await.status, 200);
    assert_eq!(admin.get("/api/v1/books", &[]).await.status, 200);

    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_user_can_no_longer_use_their_session_or_keys() {
    let db = TestDatabase::sqlite();
    let app = start(db.url()).await;
    let (mut reader, reader_id) = sign_in(&app, "reader", READER_PASSWORD).await;
    let key = personal_key(&mut reader, &["books:read"]).await;
    let mut script = Http::new(app.addr);
    assert_eq!(reader.get("/api/v1/books", &[]).await.status, 200);
    let reply = script
        .get("/api/v1/books", &[("authorization", key.as_str())])
        .await;
    assert_eq!(reply.status, 200);

    let deleted = user::Entity::delete_by_id(reader_id.clone())
        .exec(&app.db)
        .await
        .expect("delete the reader");
    assert_eq!(deleted.rows_affected, 1);

    let reply = reader.get("/api/v1/books", &[]).await;
    assert_refused(&reply, 401, "missing_credential", "the deleted reader");
    let reply = reader.post("/api/v1/books", &[], &book("Orphan")).await;
    assert_eq!(reply.status, 401, "{:?}", reply.json);

    app.keyward
        .invalidate_owner(&reader_id)
        .await
        .expect("announce the deletion");
    let reply = script
        .get("/api/v1/books", &[("authorization", key.as_str())])
        .await;
    assert_refused(&reply, 401, "invalid_token", "the deleted reader's key");

    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_may_not_write_from_another_site() {
    let db = TestDatabase::sqlite();
    let app = start(db.url()).await;
    let (mut reader, _) = sign_in(&app, "reader", READER_PASSWORD).await;
    let key = personal_key(&mut reader, &["books:write"]).await;

    let cross_site = reader
        .post(
            "/api/v1/books",
            &[("sec-fetch-site", "cross-site")],
            &book("Forged"),
        )
        .await;
    assert_refused(&cross_site, 403, "cross_site_request", "Sec-Fetch-Site");
    let other_origin = reader
        .post(
            "/api/v1/books",
            &[("origin", "https://evil.example")],
            &book("Forged too"),
        )
        .await;
    assert_refused(&other_origin, 403, "cross_site_request", "another Origin");
    let listed = reader
        .get("/api/v1/books", &[("sec-fetch-site", "cross-site")])
        .await;
    assert_eq!(listed.status, 200, "a cross-site read is fine");
    assert_eq!(
        listed.json["books"],
        json!([]),
        "nothing was written from another site"
    );

    let origin = format!("http://{}", app.addr);
    let same_origin = reader
        .post(
            "/api/v1/books",
            &[
                ("sec-fetch-site", "same-origin"),
                ("origin", origin.as_str()),
            ],
            &book("The Dispossessed"),
        )
        .await;
    assert_eq!(same_origin.status, 201, "{:?}", same_origin.json);

    let mut script = Http::new(app.addr);
    let by_key = script
        .post(
            "/api/v1/books",
            &[
                ("authorization", key.as_str()),
                ("sec-fetch-site", "cross-site"),
            ],
            &book("The Left Hand of Darkness"),
        )
        .await;
    assert_eq!(
        by_key.status, 201,
        "a key is no ridden cookie: {:?}",
        by_key.json
    );

    app.stop().await.expect("a clean stop");
}
