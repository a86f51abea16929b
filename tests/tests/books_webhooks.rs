//! The reference app with `BOOKS_WEBHOOK_URL` / `BOOKS_WEBHOOK_SECRET`: a key created
//! through the admin API arrives at the endpoint as a signed `key.created`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use keyward_examples::books::{self, Config, WebhookEndpoint};
use keyward_test_support::TestDatabase;
use keyward_tests::{ADMIN_PASSWORD, config, login};
use serde_json::{Value, json};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn receive(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    received.lock().unwrap().push((headers, body));
    StatusCode::NO_CONTENT
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_created_through_the_app_arrives_signed() {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let hooks = format!("http://{}/hooks", listener.local_addr().unwrap());
    let router = Router::new()
        .route("/hooks", post(receive))
        .with_state(received.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let db = TestDatabase::sqlite();
    let mut config = config(db.url());
    config.webhook = Some(WebhookEndpoint {
        url: hooks,
        secret: SECRET.parse().unwrap(),
    });
    let app = books::start(config).await.expect("the app starts");
    let mut admin = login(&app, "admin", ADMIN_PASSWORD).await;
    let created = admin
        .post(
            "/api/v1/tokens/keys",
            &[],
            &json!({ "name": "Webhook test", "scopes": ["books:read"], "expires_in_days": 7 }),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    let key_id = created.json["key"]["id"].as_str().unwrap().to_owned();
    let token = created.json["token"].as_str().unwrap().to_owned();

    let start = Instant::now();
    let (headers, body) = loop {
        let found = received.lock().unwrap().iter().find_map(|(headers, body)| {
            let json: Value = serde_json::from_slice(body).ok()?;
            (json["data"]["key_id"] == key_id.as_str()).then(|| (headers.clone(), body.clone()))
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "no webhook arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Verified with the `standardwebhooks` crate, not with the app's own code.
    standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&body, &headers)
        .expect("a valid signature");
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["type"], "key.created");
    assert_eq!(json["data"]["type"], "created");
    assert!(json["data"]["actor"].as_str().unwrap().starts_with("user:"));
    assert_eq!(
        headers["webhook-id"].to_str().unwrap(),
        format!("msg_{}", json["data"]["id"].as_str().unwrap())
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(!text.contains(&token), "no token in a webhook");
    // The bootstrap key was created before the endpoint first started: not sent.
    assert!(
        received
            .lock()
            .unwrap()
            .iter()
            .all(|(_, body)| !String::from_utf8_lossy(body).contains("Bootstrap")),
    );

    // The delivery is in the app's `/metrics`.
    let page = keyward_test_support::Http::new(app.addr)
        .get("/metrics", &[])
        .await
        .text;
    let delivered = page
        .lines()
        .find(|line| {
            line.starts_with(keyward_webhooks::metrics::DELIVERIES)
                && line.contains("outcome=\"delivered\"")
        })
        .unwrap_or_else(|| panic!("no delivery in /metrics:\n{page}"));
    let count: f64 = delivered
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    assert!(count >= 1.0, "{delivered}");

    app.stop().await.expect("stops");
    server.abort();
}

/// The app's exit code and standard error with the environment `vars`.
fn start_with(vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_books"));
    for name in [
        "BOOKS_WEBHOOK_URL",
        "BOOKS_WEBHOOK_SECRET",
        "BOOKS_EXPIRY_NOTICE_DAYS",
    ] {
        command.env_remove(name);
    }
    let output = command
        .env("DATABASE_URL", "sqlite::memory:")
        .env("BOOKS_ADDR", "127.0.0.1:0")
        .envs(vars.iter().copied())
        .output()
        .expect("the app's binary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_webhook_and_notice_settings_stop_the_start() {
    let url = ("BOOKS_WEBHOOK_URL", "http://127.0.0.1:9/hooks");
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[url], "BOOKS_WEBHOOK_SECRET must be set"),
        (
            &[("BOOKS_WEBHOOK_SECRET", SECRET)],
            "BOOKS_WEBHOOK_URL must be set",
        ),
        (
            &[url, ("BOOKS_WEBHOOK_SECRET", "not-a-secret")],
            "BOOKS_WEBHOOK_SECRET: a webhook secret starts with `whsec_`",
        ),
        (
            &[url, ("BOOKS_WEBHOOK_SECRET", "whsec_c2hvcnQ=")],
            "BOOKS_WEBHOOK_SECRET",
        ),
        (
            &[("BOOKS_EXPIRY_NOTICE_DAYS", "soon")],
            "BOOKS_EXPIRY_NOTICE_DAYS \"soon\"",
        ),
    ];
    for (vars, says) in cases {
        let (code, stderr) = start_with(vars);
        assert_eq!(code, Some(2), "{vars:?}: {stderr}");
        assert!(stderr.contains(says), "{vars:?}: {stderr}");
        assert!(
            !stderr.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "{stderr}"
        );
    }
}

#[test]
fn expiry_notice_days_set_the_window() {
    let mut config = Config::new("sqlite::memory:");
    assert_eq!(
        config.expiry_notice_window(),
        Some(Duration::from_secs(7 * 24 * 60 * 60))
    );
    config.expiry_notice_days = 0;
    assert_eq!(config.expiry_notice_window(), None);
}
