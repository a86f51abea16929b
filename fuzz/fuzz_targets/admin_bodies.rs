//! The management routes' JSON bodies on arbitrary bytes: never a panic, never a 5xx, every
//! refusal problem+json.
//!
//! The first input byte chooses the route (bits 0–1: create, update, regenerate, refresh) and
//! the content type (bits 2–3); the rest is the body. A key the fuzzer manages to create is
//! refreshed and regenerated too, then deleted, so the store stays small.

#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use http::{Method, Request};
use http_body_util::BodyExt;
use keyward::{Expiry, KeyId, Keyward, MemoryStore, NewKey, ScopeCatalog};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tower::ServiceExt;

struct Fixture {
    runtime: Runtime,
    keys: Keyward,
    router: Router,
    authorization: String,
    target: KeyId,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let catalog = ScopeCatalog::builder()
            .scope("books:read", "Read the book collection")
            .scope("books:write", "Add and change books")
            .scope("reviews:read", "Read reviews")
            .implies("books:write", "books:read")
            .build()
            .expect("valid catalog");
        let keys = Keyward::builder(MemoryStore::new())
            .prefix("books")
            .catalog(catalog)
            .build()
            .expect("valid configuration");
        let (actor, target) = runtime.block_on(async {
            let actor = keys
                .create(NewKey::service("fuzz administrator").scopes([
                    "keys:admin",
                    "books:write",
                    "reviews:read",
                ]))
                .await
                .expect("actor created");
            let target = keys
                .create(
                    NewKey::personal("alice's key", "alice")
                        .scopes(["books:read"])
                        .expiry(Expiry::InDays(30)),
                )
                .await
                .expect("target created");
            (actor, target)
        });
        let router = Router::new()
            .nest("/admin", keyward_admin::router())
            .layer(keys.layer().optional())
            .with_state(keys.clone());
        Fixture {
            runtime,
            keys,
            router,
            authorization: format!("Bearer {}", actor.token.expose_secret()),
            target: target.record.id,
        }
    })
}

impl Fixture {
    /// Sends the request and checks the answer; returns the status and the body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("/admin{path}"))
            .header("authorization", self.authorization.as_str());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request
            .body(Body::from(body.to_vec()))
            .expect("valid request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status().as_u16();
        let problem = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json");
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body that does not fail")
            .to_bytes()
            .to_vec();
        let text = String::from_utf8_lossy(&bytes);
        assert!(status < 500, "{path}: status {status}: {text}");
        if status >= 400 {
            assert!(
                problem,
                "{path}: status {status} is not problem+json: {text}"
            );
        }
        (status, bytes)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let fixture = fixture();
    let target = fixture.target.to_string();
    let (method, path) = match control & 0b11 {
        0 => (Method::POST, "/keys".to_owned()),
        1 => (Method::PATCH, format!("/keys/{target}")),
        2 => (Method::POST, format!("/keys/{target}/regenerate")),
        _ => (Method::POST, format!("/keys/{target}/refresh")),
    };
    let content_type = match (control >> 2) & 0b11 {
        0 => Some("application/json"),
        1 => None,
        2 => Some("application/merge-patch+json"),
        _ => Some("text/plain"),
    };
    fixture.runtime.block_on(async {
        let (status, reply) = fixture.send(method, &path, content_type, body).await;
        if status != 201 {
            return;
        }
        let reply: serde_json::Value = serde_json::from_slice(&reply).expect("201 is JSON");
        let id = reply["key"]["id"]
            .as_str()
            .expect("a created key has an id");
        for action in ["refresh", "regenerate"] {
            let path = format!("/keys/{id}/{action}");
            fixture.send(Method::POST, &path, None, b"").await;
        }
        let id: KeyId = id.parse().expect("a key id");
        fixture.keys.delete(id).await.expect("created key deleted");
    });
});
