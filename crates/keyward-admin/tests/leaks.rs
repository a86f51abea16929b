//! `POST /leaks/github`: GitHub's secret-scanning partner endpoint, signed reports only.

mod common;

use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{MOUNT, catalog};
use http::{Method, Request};
use keyward::{Expiry, KeyId, Keyward, MemoryStore, NewKey};
use keyward_admin::{AdminRouter, GitHubScanningKeys, LeakAction};
use keyward_test_support::{Reply, bearer, issue, send};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use serde_json::{Value, json};

const KEY_ID: &str = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a";

/// GitHub's side: a signing key and the key document it publishes.
struct GitHub {
    signer: SigningKey,
}

impl GitHub {
    fn new() -> Self {
        Self {
            signer: SigningKey::random(&mut rand::rngs::OsRng),
        }
    }

    fn published_keys(&self) -> GitHubScanningKeys {
        let pem = self
            .signer
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let document = json!({"public_keys": [
            {"key_identifier": "an-old-key", "key": other_pem(), "is_current": false},
            {"key_identifier": KEY_ID, "key": pem, "is_current": true},
        ]});
        GitHubScanningKeys::from_json(&document.to_string()).unwrap()
    }

    fn sign(&self, body: &[u8]) -> String {
        let signature: Signature = self.signer.sign(body);
        STANDARD.encode(signature.to_der().as_bytes())
    }
}

fn other_pem() -> String {
    SigningKey::random(&mut rand::rngs::OsRng)
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap()
}

struct App {
    keys: Keyward,
    router: Router,
}

impl App {
    fn new(github: &GitHub, action: LeakAction) -> Self {
        Self::with(Some(github), action, None)
    }

    fn with(github: Option<&GitHub>, action: LeakAction, pepper: Option<&str>) -> Self {
        let store = MemoryStore::new();
        let mut builder = Keyward::builder(store.clone())
            .prefix("books")
            .catalog(catalog());
        if let Some(pepper) = pepper {
            builder = builder.pepper(pepper.as_bytes().to_vec());
        }
        let keys = builder.build().unwrap();
        let mut admin = AdminRouter::new().leak_action(action);
        if let Some(github) = github {
            admin = admin.github_secret_scanning(github.published_keys());
        }
        let router = Router::new()
            .nest(MOUNT, admin.build())
            .layer(keys.layer().optional())
            .with_state(keys.clone());
        Self { keys, router }
    }

    async fn key(&self) -> (KeyId, String) {
        issue(
            &self.keys,
            NewKey::personal("alice's key", "alice")
                .scopes(["books:read"])
                .expiry(Expiry::InDays(30)),
        )
        .await
    }

    async fn report(&self, body: &[u8], headers: &[(&str, &str)]) -> Reply {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("{MOUNT}/leaks/github"))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(
            &self.router,
            request.body(Body::from(body.to_vec())).unwrap(),
        )
        .await
    }

    /// `body` signed as GitHub signs it.
    async fn signed(&self, github: &GitHub, body: &Value) -> Reply {
        let bytes = body.to_string().into_bytes();
        let signature = github.sign(&bytes);
        self.report(
            &bytes,
            &[
                ("github-public-key-identifier", KEY_ID),
                ("github-public-key-signature", &signature),
            ],
        )
        .await
    }

    /// Whether `token` still authenticates.
    async fn works(&self, token: &str) -> bool {
        let reply = send(&self.router, bearer(&format!("{MOUNT}/self"), token)).await;
        reply.status == 200
    }
}

fn reports(tokens: &[&str]) -> Value {
    tokens
        .iter()
        .map(|token| {
            json!({
                "token": token,
                "type": "keyward_books_api_key",
                "url": "https://github.com/octo/repo/blob/abc/config.yml",
                "source": "content",
            })
        })
        .collect()
}

fn labels(reply: &Reply) -> Vec<(String, String)> {
    reply
        .json
        .as_array()
        .expect("an array")
        .iter()
        .map(|verdict| {
            assert_eq!(verdict["token_type"], "keyward_books_api_key");
            (
                verdict["token_raw"].as_str().unwrap().to_owned(),
                verdict["label"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `token` with its last check digit changed: the shape of a token, the wrong checksum.
fn lookalike(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let last = chars.last_mut().unwrap();
    *last = if *last == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test]
async fn a_live_key_reported_leaked_is_revoked() {
    let github = GitHub::new();
    let app = App::new(&github, LeakAction::Revoke);
    let (id, token) = app.key().await;
    let (other_id, other) = app.key().await;
    assert!(app.works(&token).await);

    let unknown = app.keys.token_format().generate();
    let unknown = unknown.expose_secret();
    let fake = lookalike(&other);
    let reply = app
        .signed(
            &github,
            &reports(&[unknown, &token, &fake, "ghp_notours", &token]),
        )
        .await
        .expect(200);
    assert_eq!(
        labels(&reply),
        [
            (unknown.to_owned(), "false_positive".to_owned()),
            (token.clone(), "true_positive".to_owned()),
            (fake.clone(), "false_positive".to_owned()),
            ("ghp_notours".to_owned(), "false_positive".to_owned()),
            (token.clone(), "true_positive".to_owned()),
        ]
    );
    assert!(app.keys.get(id).await.unwrap().revoked_at.is_some());
    assert!(!app.works(&token).await);
    // The revocation is recorded as `leaked`, with the URL GitHub gave, by keyward itself.
    let events = app
        .keys
        .events(&keyward::EventQuery::new().key(id))
        .await
        .unwrap()
        .events;
    assert_eq!(events[0].kind, keyward::ChangeKind::Leaked);
    assert_eq!(events[0].actor, Some(keyward::Actor::System));
    assert_eq!(events[0].detail["action"], "revoked");
    assert_eq!(events[0].detail["source"], "github");
    assert_eq!(
        events[0].detail["url"],
        "https://github.com/octo/repo/blob/abc/config.yml"
    );
    assert!(!events[0].detail.to_string().contains(&token));
    // The key whose lookalike was reported is untouched.
    assert!(app.keys.get(other_id).await.unwrap().revoked_at.is_none());
    assert!(app.works(&other).await);

    // Reported again: the key is revoked already, so there is nothing live to report.
    let again = app.signed(&github, &reports(&[&token])).await.expect(200);
    assert_eq!(labels(&again)[0].1, "false_positive");
}

#[tokio::test]
async fn disable_mode_disables_instead() {
    let github = GitHub::new();
    let app = App::new(&github, LeakAction::Disable);
    let (id, token) = app.key().await;
    let reply = app.signed(&github, &reports(&[&token])).await.expect(200);
    assert_eq!(labels(&reply)[0].1, "true_positive");
    let record = app.keys.get(id).await.unwrap();
    assert!(!record.active);
    assert!(record.revoked_at.is_none());
    let events = app
        .keys
        .events(&keyward::EventQuery::new().key(id))
        .await
        .unwrap()
        .events;
    assert_eq!(events[0].kind, keyward::ChangeKind::Leaked);
    assert_eq!(events[0].detail["action"], "disabled");
    assert_eq!(
        record.disabled_by.as_deref(),
        Some("github-secret-scanning")
    );
    assert!(!app.works(&token).await);
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_401_and_changes_nothing() {
    let github = GitHub::new();
    let app = App::new(&github, LeakAction::Revoke);
    let (id, token) = app.key().await;
    let body = reports(&[&token]).to_string().into_bytes();
    let good = github.sign(&body);
    let impostor = GitHub::new().sign(&body);
    let other_body = github.sign(b"[]");

    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no headers", vec![]),
        (
            "no signature",
            vec![("github-public-key-identifier", KEY_ID)],
        ),
        ("no key id", vec![("github-public-key-signature", &good)]),
        (
            "unknown key id",
            vec![
                ("github-public-key-identifier", "no-such-key"),
                ("github-public-key-signature", &good),
            ],
        ),
        (
            "another listed key",
            vec![
                ("github-public-key-identifier", "an-old-key"),
                ("github-public-key-signature", &good),
            ],
        ),
        (
            "signed by someone else",
            vec![
                ("github-public-key-identifier", KEY_ID),
                ("github-public-key-signature", &impostor),
            ],
        ),
        (
            "signature of another body",
            vec![
                ("github-public-key-identifier", KEY_ID),
                ("github-public-key-signature", &other_body),
            ],
        ),
        (
            "not base64",
            vec![
                ("github-public-key-identifier", KEY_ID),
                ("github-public-key-signature", "%%%"),
            ],
        ),
    ];
    for (label, headers) in cases {
        let reply = app.report(&body, &headers).await;
        assert_eq!(reply.status, 401, "{label}: {}", reply.text);
        assert_eq!(reply.header("content-type"), "application/problem+json");
        assert_eq!(reply.error(), "invalid_signature", "{label}");
        assert!(!reply.text.contains(&token), "{label}");
    }
    assert!(app.keys.get(id).await.unwrap().revoked_at.is_none());
    assert!(app.works(&token).await);

    // The same body with GitHub's signature is taken.
    let reply = app
        .report(
            &body,
            &[
                ("github-public-key-identifier", KEY_ID),
                ("github-public-key-signature", &good),
            ],
        )
        .await
        .expect(200);
    assert_eq!(labels(&reply)[0].1, "true_positive");
}

#[tokio::test]
async fn a_malformed_body_is_422_naming_the_problem() {
    let github = GitHub::new();
    let app = App::new(&github, LeakAction::Revoke);
    let (id, token) = app.key().await;
    for (body, field) in [
        (json!({"token": token}), "body"),
        (json!([{"token": token}]), "[0].type"),
        (json!([{"token": token, "type": "t"}, 5]), "[1]"),
    ] {
        let reply = app.signed(&github, &body).await.expect(422);
        assert_eq!(reply.field(), field);
        assert!(!reply.text.contains(&token));
    }
    let bytes = b"[{\"token\":".to_vec();
    let signature = github.sign(&bytes);
    let reply = app
        .report(
            &bytes,
            &[
                ("github-public-key-identifier", KEY_ID),
                ("github-public-key-signature", &signature),
            ],
        )
        .await
        .expect(422);
    assert_eq!(reply.field(), "body");
    assert!(app.keys.get(id).await.unwrap().revoked_at.is_none());
    // An empty report is a report of nothing.
    let reply = app.signed(&github, &json!([])).await.expect(200);
    assert_eq!(reply.json, json!([]));
}

#[tokio::test]
async fn a_report_over_the_limit_is_413() {
    let github = GitHub::new();
    let app = App::new(&github, LeakAction::Revoke);
    let big = vec![b' '; keyward_admin::LEAK_REPORT_LIMIT + 1];
    let signature = github.sign(&big);
    let reply = app
        .report(
            &big,
            &[
                ("github-public-key-identifier", KEY_ID),
                ("github-public-key-signature", &signature),
            ],
        )
        .await
        .expect(413);
    assert_eq!(reply.header("content-type"), "application/problem+json");
}

#[tokio::test]
async fn the_route_is_404_when_not_configured() {
    let github = GitHub::new();
    let app = App::with(None, LeakAction::Revoke, None);
    let (id, token) = app.key().await;
    let reply = app.signed(&github, &reports(&[&token])).await.expect(404);
    assert_eq!(reply.header("content-type"), "application/problem+json");
    assert!(app.keys.get(id).await.unwrap().revoked_at.is_none());
}

#[tokio::test]
async fn a_peppered_application_finds_its_keys() {
    let github = GitHub::new();
    let app = App::with(Some(&github), LeakAction::Revoke, Some("pepper"));
    let (id, token) = app.key().await;
    let reply = app.signed(&github, &reports(&[&token])).await.expect(200);
    assert_eq!(labels(&reply)[0].1, "true_positive");
    assert!(app.keys.get(id).await.unwrap().revoked_at.is_some());
}

#[tokio::test]
async fn the_route_is_documented() {
    let doc = serde_json::to_value(keyward_admin::openapi()).unwrap();
    let post = &doc["paths"]["/leaks/github"]["post"];
    for status in ["200", "401", "404", "413", "422"] {
        assert!(post["responses"][status].is_object(), "{status}");
    }
    assert!(
        keyward_admin::routes()
            .iter()
            .any(|r| r.method == Method::POST && r.path == "/leaks/github")
    );
}
