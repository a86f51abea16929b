//! Usage as the management API shows it: uses counted and not yet written to the store
//! appear at once in every key object and in `GET /keys/{id}/usage`, counted once, while the
//! store sees one write per flush.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use chrono::TimeDelta;
use common::{MOUNT, catalog, start};
use keyward::{Expiry, KeyId, Keyward, ManualClock, NewKey};
use keyward_test_support::{CountingStore, Reply, bearer, issue, send, with_peer};
use serde_json::{Value, json};

/// The application: a `/books` route and the admin router behind the layer, over a spy store,
/// with a clock the test moves. The flush task's interval is long enough that only the test
/// flushes.
struct App {
    keys: Keyward,
    store: CountingStore,
    clock: ManualClock,
    router: Router,
}

impl App {
    fn new() -> Self {
        let clock = ManualClock::new(start());
        let store = CountingStore::new();
        let keys = Keyward::builder(store.clone())
            .prefix("books")
            .catalog(catalog())
            .clock(clock.clone())
            .usage_flush_interval(Duration::from_secs(3600))
            .build()
            .expect("valid configuration");
        let router = Router::new()
            .route("/books", get(|| async { "books" }))
            .nest(MOUNT, keyward_admin::router())
            .layer(keys.layer().optional())
            .with_state(keys.clone());
        Self {
            keys,
            store,
            clock,
            router,
        }
    }

    async fn key(&self, owner: &str, scopes: &[&str]) -> (KeyId, String) {
        issue(
            &self.keys,
            NewKey::personal(format!("{owner}'s key"), owner)
                .scopes(scopes.iter().copied())
                .expiry(Expiry::Never),
        )
        .await
    }

    /// `times` requests to `/books` with `token`, from 203.0.113.7.
    async fn use_key(&self, token: &str, times: u64) {
        for _ in 0..times {
            let request = with_peer(bearer("/books", token), "203.0.113.7:40000");
            assert_eq!(send(&self.router, request).await.status, 200);
        }
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        send(&self.router, bearer(&format!("{MOUNT}{path}"), token)).await
    }

    /// The key object of `id` as its owner's manager reads it, and as the listing shows it.
    async fn shown(&self, id: KeyId, manager: &str) -> Value {
        let one = self.get(&format!("/keys/{id}"), manager).await.expect(200);
        let list = self.get("/keys", manager).await.expect(200);
        let listed = list.json["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|key| key["id"] == id.to_string())
            .expect("listed")
            .clone();
        for field in ["usage_count", "last_used_at", "last_used_ip"] {
            assert_eq!(one.json[field], listed[field], "{field}");
        }
        one.json
    }

    /// The `days` of `GET /keys/{id}/usage?{query}`.
    async fn days(&self, id: KeyId, query: &str, token: &str) -> Vec<Value> {
        let reply = self
            .get(&format!("/keys/{id}/usage{query}"), token)
            .await
            .expect(200);
        reply.json["days"].as_array().expect("days").clone()
    }
}

fn day(date: &str, count: u64) -> Value {
    json!({ "date": date, "count": count })
}

#[tokio::test]
async fn uses_show_at_once_and_are_written_once_per_flush() {
    let app = App::new();
    let (_, manager) = app.key("alice", &["keys:read"]).await;
    let (used, token) = app.key("alice", &["books:read"]).await;
    let now = start().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);

    app.use_key(&token, 5).await;
    let key = app.shown(used, &manager).await;
    assert_eq!(key["usage_count"], 5, "exactly these uses: {key}");
    assert_eq!(key["last_used_at"], now.as_str());
    assert_eq!(key["last_used_ip"], "203.0.113.7");
    let days = app.days(used, "", &manager).await;
    assert_eq!(days.len(), 90);
    assert_eq!(
        days[89],
        day("2026-05-01", 5),
        "today, from the pending uses"
    );
    assert_eq!(days[0], day("2026-02-01", 0));
    assert!(days[..89].iter().all(|d| d["count"] == 0));
    assert_eq!(
        app.store.counts.usage_writes(),
        0,
        "requests write nothing to the store"
    );

    app.keys.flush_usage().await.expect("flush");
    assert_eq!(app.store.counts.usage_writes(), 1, "one write per flush");
    assert_eq!(
        app.store.counts.usage_updates(),
        2,
        "one update per used key: the used key and the manager's"
    );
    let key = app.shown(used, &manager).await;
    assert_eq!(key["usage_count"], 5, "written, shown once: {key}");

    // Written and pending uses add up, each counted once, in the key and in today's count.
    app.clock.advance(TimeDelta::seconds(30));
    app.use_key(&token, 3).await;
    let key = app.shown(used, &manager).await;
    assert_eq!(key["usage_count"], 8, "{key}");
    assert_eq!(key["last_used_at"], "2026-05-01T10:00:30Z");
    let days = app.days(used, "?days=2", &manager).await;
    assert_eq!(days, [day("2026-04-30", 0), day("2026-05-01", 8)]);
    assert_eq!(app.store.counts.usage_writes(), 1);

    app.keys.flush_usage().await.expect("flush");
    assert_eq!(app.store.counts.usage_writes(), 2);
    assert_eq!(app.shown(used, &manager).await["usage_count"], 8);
    let days = app.days(used, "?days=2", &manager).await;
    assert_eq!(days, [day("2026-04-30", 0), day("2026-05-01", 8)]);
}

#[tokio::test]
async fn uses_being_written_stay_visible_until_written() {
    let app = App::new();
    let (_, manager) = app.key("alice", &["keys:read"]).await;
    let (used, token) = app.key("alice", &["books:read"]).await;
    app.use_key(&token, 4).await;
    // The manager's key is cached from here on, so its requests need no lookup.
    assert_eq!(app.shown(used, &manager).await["usage_count"], 4);

    app.store.stall(true);
    let flush = tokio::spawn({
        let keys = app.keys.clone();
        async move { keys.flush_usage().await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.store.counts.usage_writes() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the write starts");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Taken by the write, not yet written: shown once.
    assert_eq!(app.shown(used, &manager).await["usage_count"], 4);
    app.use_key(&token, 1).await;
    assert_eq!(app.shown(used, &manager).await["usage_count"], 5);
    let today = app.days(used, "?days=1", &manager).await;
    assert_eq!(today, [day("2026-05-01", 5)]);

    app.store.stall(false);
    flush.await.expect("task").expect("flush");
    assert_eq!(app.shown(used, &manager).await["usage_count"], 5);
    let today = app.days(used, "?days=1", &manager).await;
    assert_eq!(today, [day("2026-05-01", 5)]);
    assert_eq!(app.store.counts.usage_writes(), 1);
}

#[tokio::test]
async fn every_key_object_includes_pending_uses() {
    let app = App::new();
    let (_, manager) = app
        .key("alice", &["keys:read", "keys:write", "books:read"])
        .await;
    // One that expires, so that it can be refreshed.
    let (used, token) = issue(
        &app.keys,
        NewKey::personal("script", "alice")
            .scopes(["books:read"])
            .expiry(Expiry::InDays(30)),
    )
    .await;
    app.use_key(&token, 2).await;
    let path = |action: &str| format!("{MOUNT}/keys/{used}/{action}");
    let post = |uri: String| {
        keyward_test_support::request(
            http::Method::POST,
            &uri,
            &[("authorization", &format!("Bearer {manager}"))],
            None,
        )
    };

    let refreshed = send(&app.router, post(path("refresh"))).await.expect(200);
    assert_eq!(refreshed.json["usage_count"], 2);
    let regenerated = send(&app.router, post(path("regenerate")))
        .await
        .expect(200);
    assert_eq!(regenerated.json["key"]["usage_count"], 2);
    let new_token = regenerated.json["token"]
        .as_str()
        .expect("token")
        .to_owned();
    // The key itself sees its own use too, this request included.
    let own = app.get("/self", &new_token).await.expect(200);
    assert_eq!(own.json["key"]["usage_count"], 3);
    let patch = keyward_test_support::request(
        http::Method::PATCH,
        &format!("{MOUNT}/keys/{used}"),
        &[("authorization", &format!("Bearer {manager}"))],
        Some(&json!({ "name": "renamed" })),
    );
    let updated = send(&app.router, patch).await.expect(200);
    assert_eq!(updated.json["usage_count"], 3);
    let revoked = send(&app.router, post(path("revoke"))).await.expect(200);
    assert_eq!(revoked.json["usage_count"], 3);
    assert_eq!(app.store.counts.usage_writes(), 0);
}

#[tokio::test]
async fn days_are_counted_on_their_own_day() {
    let app = App::new();
    let (_, manager) = app.key("alice", &["keys:read"]).await;
    let (used, token) = app.key("alice", &["books:read"]).await;
    app.use_key(&token, 4).await;
    app.keys.flush_usage().await.expect("flush");
    app.clock.advance(TimeDelta::days(2));
    app.use_key(&token, 1).await;
    let days = app.days(used, "?days=3", &manager).await;
    assert_eq!(
        days,
        [
            day("2026-05-01", 4),
            day("2026-05-02", 0),
            day("2026-05-03", 1)
        ]
    );
    let week = app.days(used, "?days=7", &manager).await;
    assert_eq!(week.len(), 7);
    assert_eq!(week[6], day("2026-05-03", 1));
    assert_eq!(week[0], day("2026-04-27", 0));
    assert_eq!(
        app.days(used, "?days=1", &manager).await,
        [day("2026-05-03", 1)]
    );
}

#[tokio::test]
async fn a_bad_days_is_422_naming_days() {
    let app = App::new();
    let (_, manager) = app.key("alice", &["keys:read"]).await;
    let (used, _) = app.key("alice", &["books:read"]).await;
    for query in ["days=0", "days=91", "days=x", "days=", "days=-3"] {
        let reply = app
            .get(&format!("/keys/{used}/usage?{query}"), &manager)
            .await
            .expect(422);
        assert_eq!(reply.field(), "days", "{query}: {}", reply.text);
    }
    let reply = app
        .get(&format!("/keys/{used}/usage?since=2026-01-01"), &manager)
        .await
        .expect(422);
    assert_eq!(reply.field(), "since");
    assert_eq!(app.store.counts.usage_days(), 0, "refused before the store");
}

#[tokio::test]
async fn someone_elses_key_is_not_found() {
    let app = App::new();
    let (_, bob) = app.key("bob", &["keys:read"]).await;
    let (_, admin) = app.key("root", &["keys:read", "keys:admin"]).await;
    let (alices, token) = app.key("alice", &["books:read"]).await;
    app.use_key(&token, 1).await;
    let reply = app
        .get(&format!("/keys/{alices}/usage"), &bob)
        .await
        .expect(404);
    assert_eq!(reply.error(), "not_found");
    let unknown = KeyId::new();
    app.get(&format!("/keys/{unknown}/usage"), &bob)
        .await
        .expect(404);
    app.get("/keys/not-a-key/usage", &bob).await.expect(404);
    let days = app.days(alices, "?days=1", &admin).await;
    assert_eq!(days, [day("2026-05-01", 1)]);
    // Without a key or a management scope.
    send(
        &app.router,
        bearer(&format!("{MOUNT}/keys/{alices}/usage"), "nope"),
    )
    .await
    .expect(401);
    app.get(&format!("/keys/{alices}/usage"), &token)
        .await
        .expect(403);
}

#[tokio::test]
async fn the_route_is_documented() {
    let doc = keyward_admin::openapi();
    let path = doc.paths.paths.get("/keys/{id}/usage").expect("documented");
    let get = path.get.as_ref().expect("GET");
    let responses: Vec<&String> = get.responses.responses.keys().collect();
    for status in ["200", "404", "422"] {
        assert!(responses.iter().any(|s| *s == status), "{status}");
    }
    let json = doc.to_json().expect("json");
    assert!(json.contains("UsageHistory") && json.contains("DailyUsage"));
    assert!(
        keyward_admin::routes()
            .iter()
            .any(|r| r.method == http::Method::GET && r.path == "/keys/{id}/usage")
    );
}
