//! A webhook receiver for the tests, which checks every signature with the
//! `standardwebhooks` crate (an implementation of the spec independent of ours).

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::Utc;
use keyward::{KeyChanges, Keyward, NewKey};
use keyward_core::{ConsumerLease, KeyStore};
use keyward_webhooks::{WebhookSecret, Webhooks, endpoint_id};
use serde_json::Value;

/// The secret every test endpoint uses.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The longest a test waits for a delivery.
pub const DEADLINE: Duration = Duration::from_secs(8);

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: String,
    /// The body, parsed.
    pub body: Value,
    /// The body as sent.
    pub raw: String,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    /// The event's `type` without `key.`.
    pub fn kind(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("key."))
            .unwrap_or_else(|| panic!("no key.* type in {}", self.raw))
    }

    /// The event's id in the log.
    pub fn seq(&self) -> u64 {
        self.body["data"]["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no event id in {}", self.raw))
    }

    /// Whether the receiver accepted it.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Debug, Default)]
struct Inner {
    down: bool,
    bad_signatures: Vec<String>,
    received: Vec<Received>,
}

/// A local HTTP endpoint that records what it is sent and can be switched to answer 503.
#[derive(Debug)]
pub struct Receiver {
    /// The URL to configure.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts one on `127.0.0.1:0`.
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let router = Router::new()
            .route("/hooks", post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        Self {
            url: format!("http://{addr}/hooks"),
            inner,
            task,
        }
    }

    /// Answers 503 from now on.
    pub fn down(&self) {
        self.inner.lock().unwrap().down = true;
    }

    /// Answers 204 from now on.
    pub fn up(&self) {
        self.inner.lock().unwrap().down = false;
    }

    /// Every request so far, accepted or not.
    pub fn received(&self) -> Vec<Received> {
        let inner = self.inner.lock().unwrap();
        assert!(
            inner.bad_signatures.is_empty(),
            "requests with bad signatures: {:?}",
            inner.bad_signatures
        );
        inner.received.clone()
    }

    /// The requests it accepted, in the order they came.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(Received::accepted)
            .collect()
    }

    /// Waits until `done` holds for what was received, or panics after [`DEADLINE`].
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Received]) -> bool) {
        let start = Instant::now();
        loop {
            let received = self.received();
            if done(&received) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}; received: {:#?}",
                received
                    .iter()
                    .map(|r| (r.id.as_str(), r.status))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the receiver has accepted the events numbered `seqs`.
    pub async fn wait_for_accepted(&self, seqs: &[u64]) {
        self.wait_until(&format!("events {seqs:?}"), |received| {
            seqs.iter()
                .all(|seq| received.iter().any(|r| r.accepted() && r.seq() == *seq))
        })
        .await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut inner = inner.lock().unwrap();
    let status = if inner.down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    };
    match check(&headers, &body) {
        Ok((id, timestamp, raw, body)) => {
            inner.received.push(Received {
                id,
                timestamp,
                body,
                raw,
                status: status.as_u16(),
            });
            status
        }
        Err(problem) => {
            inner.bad_signatures.push(problem);
            StatusCode::BAD_REQUEST
        }
    }
}

/// Checks a request as a receiver would: the signature (with the `standardwebhooks`
/// crate, not keyward's code), the content type, and that `webhook-id` names the event.
fn check(headers: &HeaderMap, body: &[u8]) -> Result<(String, String, String, Value), String> {
    let verifier = standardwebhooks::Webhook::new(SECRET).map_err(|e| e.to_string())?;
    verifier
        .verify(body, headers)
        .map_err(|err| format!("bad signature: {err}; headers {headers:?}"))?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if header("content-type") != "application/json" {
        return Err(format!("content-type {:?}", header("content-type")));
    }
    let raw = String::from_utf8(body.to_vec()).map_err(|e| e.to_string())?;
    let parsed: Value = serde_json::from_str(&raw).map_err(|e| e.to_string())?;
    let id = header("webhook-id");
    let expected = parsed["data"]["id"]
        .as_str()
        .map(|seq| format!("msg_{seq}"));
    if expected.as_deref() != Some(id.as_str()) {
        return Err(format!(
            "webhook-id {id:?} does not name the event in {raw}"
        ));
    }
    Ok((id, header("webhook-timestamp"), raw, parsed))
}

/// The secret, parsed.
pub fn secret() -> WebhookSecret {
    SECRET.parse().expect("the test secret")
}

/// Webhooks for `store` to `receiver`, with waits shrunk for tests.
pub fn webhooks<S: KeyStore + Clone>(store: S, receiver: &Receiver) -> Webhooks<S> {
    Webhooks::new(store)
        .endpoint(&receiver.url, secret())
        .expect("a valid endpoint")
        .poll_interval(Duration::from_millis(20))
        .backoff(Duration::from_millis(20), Duration::from_millis(100))
        .request_timeout(Duration::from_secs(2))
        .lease_duration(Duration::from_secs(30))
}

/// Records the endpoint at `url` as having read the log up to its newest event, as its first
/// start would, so that the test's events are all sent whenever the worker takes over.
pub async fn start_from_head<S: KeyStore>(store: &S, url: &str) {
    let head = store
        .changes_since(None, 1)
        .await
        .expect("read the log")
        .expect("a change log")
        .cursor
        .seq();
    let setup = ConsumerLease {
        name: format!("webhook:{}", endpoint_id(url)),
        holder: "test-setup".into(),
        duration: Duration::ZERO,
    };
    assert_eq!(
        store
            .lease_consumer(&setup, Utc::now())
            .await
            .expect("lease"),
        Some(None),
        "a new endpoint"
    );
    assert!(store.save_consumer(&setup, head).await.expect("save"));
}

fn probe(url: &str, holder: &str) -> ConsumerLease {
    ConsumerLease {
        name: format!("webhook:{}", endpoint_id(url)),
        holder: holder.into(),
        duration: Duration::ZERO,
    }
}

/// Waits until a sender holds the lease of the endpoint at `url`.
pub async fn wait_for_holder<S: KeyStore>(store: &S, url: &str) {
    let start = Instant::now();
    while store
        .lease_consumer(&probe(url, "test-probe"), Utc::now())
        .await
        .expect("lease")
        .is_some()
    {
        assert!(start.elapsed() < DEADLINE, "no sender took the endpoint");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The position saved for the endpoint at `url`, read while no sender holds it.
pub async fn saved_position<S: KeyStore>(store: &S, url: &str) -> Option<u64> {
    store
        .lease_consumer(&probe(url, "test-probe"), Utc::now())
        .await
        .expect("lease")
        .expect("no sender holds the endpoint")
}

/// Events made while no sender runs, and while the endpoint is down, all arrive (each at
/// least once, in order) once a new sender runs; `keyward` and `store` share one store.
pub async fn restart_continues<S: KeyStore + Clone>(keyward: &Keyward, store: S) {
    let receiver = Receiver::start().await;
    start_from_head(&store, &receiver.url).await;
    let first = webhooks(store.clone(), &receiver).spawn().expect("spawn");
    let key = keyward
        .create(NewKey::service("restarts").scopes(["books:read"]))
        .await
        .expect("create")
        .record;
    receiver
        .wait_until("the first event", |received| {
            received.iter().any(Received::accepted)
        })
        .await;
    first.shutdown().await;

    // While no sender runs.
    let rename = KeyChanges {
        name: Some("renamed".into()),
        ..KeyChanges::default()
    };
    keyward.update(key.id, rename).await.expect("update");
    let active = |on: bool| KeyChanges {
        active: Some(on),
        ..KeyChanges::default()
    };
    keyward
        .update(key.id, active(false))
        .await
        .expect("disable");
    // While the endpoint is down, with a new sender.
    receiver.down();
    let second = webhooks(store.clone(), &receiver).spawn().expect("spawn");
    keyward.update(key.id, active(true)).await.expect("enable");
    receiver
        .wait_until("a failed attempt", |received| {
            received.iter().any(|r| r.status == 503)
        })
        .await;
    receiver.up();
    receiver
        .wait_until("four events", |received| {
            first_deliveries(received).len() >= 4
        })
        .await;
    let accepted = receiver.accepted();
    let order = first_deliveries(&accepted);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order: {order:?}");
    let kinds: Vec<&str> = order
        .iter()
        .map(|seq| {
            accepted
                .iter()
                .find(|r| r.seq() == *seq)
                .map(Received::kind)
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(kinds, ["created", "updated", "disabled", "enabled"]);
    for r in &accepted {
        assert_eq!(r.body["data"]["key_id"], key.id.to_string());
    }
    second.shutdown().await;
}

/// The sequence number of the newest change.
pub async fn head<S: KeyStore>(store: &S) -> u64 {
    store
        .changes_since(None, 1)
        .await
        .expect("read the log")
        .expect("a change log")
        .cursor
        .seq()
}

/// The first accepted delivery of each event, in the order they came: each event at least
/// once, in increasing order.
pub fn first_deliveries(received: &[Received]) -> Vec<u64> {
    let mut seen = Vec::new();
    for r in received.iter().filter(|r| r.accepted()) {
        if !seen.contains(&r.seq()) {
            seen.push(r.seq());
        }
    }
    seen
}

/// Runs `test` with a bound on its time.
pub async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(20), test)
        .await
        .expect("the test finishes in time");
}
