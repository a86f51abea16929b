//! Delivery of key events to webhook endpoints, on a `MemoryStore`: every event type,
//! signed; an endpoint that is down for a while; a restart of the sender; two senders on one
//! store; an event given up after the retry window.

mod common;

use std::time::Duration;

use chrono::TimeDelta;
use common::{Receiver, bounded, first_deliveries, head, secret, start_from_head, webhooks};
use keyward::{
    EventContext, Expiry, KeyChanges, Keyward, Leak, ManualClock, MemoryStore, NewKey, ScopeCatalog,
};
use keyward_core::{ChangeKind, ChangeRecord, KeyId};
use keyward_webhooks::{WebhookPayload, Webhooks};

fn keyward(store: MemoryStore, clock: &ManualClock) -> Keyward {
    Keyward::builder(store)
        .prefix("books")
        .catalog(
            ScopeCatalog::builder()
                .scope("books:read", "Read books")
                .build()
                .expect("catalog"),
        )
        .clock(clock.clone())
        .expiry_notices(Some(Duration::from_secs(7 * 24 * 60 * 60)))
        .build()
        .expect("valid configuration")
}

fn new_key(name: &str) -> NewKey {
    NewKey::personal(name, "alice")
        .scopes(["books:read"])
        .expiry(Expiry::InDays(30))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_arrives_signed_and_without_tokens() {
    bounded(async {
        let receiver = Receiver::start().await;
        let store = MemoryStore::new();
        let clock = ManualClock::new(chrono::Utc::now());
        let keyward = keyward(store.clone(), &clock);
        start_from_head(&store, &receiver.url).await;
        let webhooks = webhooks(store.clone(), &receiver).spawn().expect("spawn");

        let mut tokens = Vec::new();
        let issued = keyward.create(new_key("laptop")).await.expect("create");
        tokens.push(issued.token.expose_secret().to_owned());
        let id = issued.record.id;
        let rename = KeyChanges {
            name: Some("old laptop".into()),
            ..KeyChanges::default()
        };
        keyward.update(id, rename).await.expect("update");
        let active = |on: bool| KeyChanges {
            active: Some(on),
            ..KeyChanges::default()
        };
        keyward.update(id, active(false)).await.expect("disable");
        keyward.update(id, active(true)).await.expect("enable");
        let regenerated = keyward.regenerate(id, None).await.expect("regenerate");
        tokens.push(regenerated.token.expose_secret().to_owned());
        // A day later, so that the refresh moves the expiry.
        clock.advance(TimeDelta::days(1));
        keyward.refresh(id).await.expect("refresh");
        // Not a key event: never sent.
        keyward
            .invalidate_owner("alice")
            .await
            .expect("owner change");
        clock.advance(TimeDelta::days(25));
        assert_eq!(
            keyward.sweep_expiry_notices().await.expect("sweep").len(),
            1
        );
        clock.advance(TimeDelta::days(6));
        assert_eq!(
            keyward.sweep_expiry_notices().await.expect("sweep").len(),
            1
        );

        let leaked = keyward.create(new_key("ci")).await.expect("create");
        tokens.push(leaked.token.expose_secret().to_owned());
        let url = "https://github.com/alice/books/blob/main/.env";
        keyward
            .acting(EventContext::system().leaked(Leak::new("github", Some(url.into()))))
            .revoke(leaked.record.id)
            .await
            .expect("revoke a leaked key");
        let gone = keyward.create(new_key("old")).await.expect("create");
        tokens.push(gone.token.expose_secret().to_owned());
        keyward.revoke(gone.record.id).await.expect("revoke");
        keyward.delete(gone.record.id).await.expect("delete");

        let expected = [
            "created",
            "updated",
            "disabled",
            "enabled",
            "regenerated",
            "refreshed",
            "expiring_soon",
            "expired",
            "created",
            "leaked",
            "created",
            "revoked",
            "deleted",
        ];
        receiver
            .wait_until("the last event", |received| {
                received
                    .iter()
                    .any(|r| r.accepted() && r.kind() == "deleted")
            })
            .await;
        let received = receiver.accepted();
        let kinds: Vec<&str> = received.iter().map(common::Received::kind).collect();
        assert_eq!(kinds, expected);
        let seqs: Vec<u64> = received.iter().map(common::Received::seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");

        for r in &received {
            for token in &tokens {
                assert!(!r.raw.contains(token.as_str()), "a token in {}", r.raw);
                let secret_part = token.rsplit('_').next().unwrap_or(token);
                assert!(
                    !r.raw.contains(secret_part),
                    "a token's secret in {}",
                    r.raw
                );
            }
            assert_eq!(r.body["timestamp"], r.body["data"]["at"]);
            assert!(r.body["data"]["key_id"].is_string());
        }
        assert_eq!(received[0].body["data"]["key_id"], id.to_string());
        assert_eq!(received[0].body["data"]["owner"], "alice");
        assert_eq!(received[0].body["data"]["actor"], "system");
        assert_eq!(received[1].body["data"]["detail"]["fields"][0], "name");
        let leak = &received[9].body["data"];
        assert_eq!(leak["key_id"], leaked.record.id.to_string());
        assert!(leak["detail"].to_string().contains(url), "{leak}");
        let timestamp: i64 = received[0].timestamp.parse().expect("unix seconds");
        assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);

        webhooks.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_is_down_gets_the_event_when_it_is_back() {
    bounded(async {
        let receiver = Receiver::start().await;
        let store = MemoryStore::new();
        let clock = ManualClock::new(chrono::Utc::now());
        let keyward = keyward(store.clone(), &clock);
        start_from_head(&store, &receiver.url).await;
        receiver.down();
        let webhooks = webhooks(store.clone(), &receiver).spawn().expect("spawn");

        let first = keyward.create(new_key("a")).await.expect("create").record;
        let second = keyward.create(new_key("b")).await.expect("create").record;
        receiver
            .wait_until("three failed attempts", |received| received.len() >= 3)
            .await;
        let failed = receiver.received();
        assert!(failed.iter().all(|r| r.status == 503));
        assert!(
            failed.iter().all(|r| r.id == failed[0].id),
            "the first event is retried before the next is tried"
        );
        assert_eq!(failed[0].body["data"]["key_id"], first.id.to_string());

        receiver.up();
        let seqs = [failed[0].seq(), failed[0].seq() + 1];
        receiver.wait_for_accepted(&seqs).await;
        let accepted = receiver.accepted();
        assert_eq!(first_deliveries(&accepted), seqs);
        assert_eq!(
            accepted[0].id, failed[0].id,
            "the same webhook-id on retries"
        );
        assert_eq!(accepted[1].body["data"]["key_id"], second.id.to_string());
        webhooks.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sender_continues_where_it_stopped() {
    bounded(async {
        let store = MemoryStore::new();
        let clock = ManualClock::new(chrono::Utc::now());
        let keyward = keyward(store.clone(), &clock);
        common::restart_continues(&keyward, store).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_endpoint_starts_from_the_newest_event() {
    bounded(async {
        let receiver = Receiver::start().await;
        let store = MemoryStore::new();
        let clock = ManualClock::new(chrono::Utc::now());
        let keyward = keyward(store.clone(), &clock);
        keyward.create(new_key("before")).await.expect("create");
        let before = head(&store).await;

        let first = webhooks(store.clone(), &receiver).spawn().expect("spawn");
        common::wait_for_holder(&store, &receiver.url).await;
        first.shutdown().await;
        assert_eq!(
            common::saved_position(&store, &receiver.url).await,
            Some(before),
            "the endpoint starts at the head"
        );

        let second = webhooks(store.clone(), &receiver).spawn().expect("spawn");
        let after = keyward
            .create(new_key("after"))
            .await
            .expect("create")
            .record;
        receiver.wait_for_accepted(&[before + 1]).await;
        let accepted = receiver.accepted();
        assert_eq!(accepted.len(), 1, "no history: {accepted:?}");
        assert_eq!(accepted[0].body["data"]["key_id"], after.id.to_string());
        second.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_senders_on_one_store_deliver_each_event_once() {
    bounded(async {
        let receiver = Receiver::start().await;
        let store = MemoryStore::new();
        let clock = ManualClock::new(chrono::Utc::now());
        let keyward = keyward(store.clone(), &clock);
        start_from_head(&store, &receiver.url).await;
        let a = webhooks(store.clone(), &receiver).spawn().expect("spawn");
        let b = webhooks(store.clone(), &receiver).spawn().expect("spawn");

        let start = head(&store).await;
        for i in 0..5 {
            keyward
                .create(new_key(&format!("k{i}")))
                .await
                .expect("create");
        }
        let seqs: Vec<u64> = (start + 1..=start + 5).collect();
        receiver.wait_for_accepted(&seqs).await;

        // The first sender stops (handing its lease over, if it held it): the other goes on.
        a.shutdown().await;
        keyward.create(new_key("after")).await.expect("create");
        receiver.wait_for_accepted(&[start + 6]).await;

        let received = receiver.received();
        let mut ids: Vec<u64> = received.iter().map(common::Received::seq).collect();
        assert!(received.iter().all(common::Received::accepted));
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
        ids.dedup();
        assert_eq!(
            ids,
            (start + 1..=start + 6).collect::<Vec<_>>(),
            "each once"
        );
        b.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_past_the_retry_window_is_given_up_and_the_next_is_sent() {
    bounded(async {
        let receiver = Receiver::start().await;
        let store = MemoryStore::new();
        let keyward_clock = ManualClock::new(chrono::Utc::now());
        let keyward = keyward(store.clone(), &keyward_clock);
        // The sender's clock runs two hours ahead: every event is older than its window.
        let clock = ManualClock::new(chrono::Utc::now() + TimeDelta::hours(2));
        start_from_head(&store, &receiver.url).await;
        receiver.down();
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let webhooks = metrics::with_local_recorder(&recorder, || {
            webhooks(store.clone(), &receiver)
                .clock(clock.clone())
                .retry_window(Duration::from_secs(3600))
                .spawn()
                .expect("spawn")
        });

        let lost = keyward
            .create(new_key("lost"))
            .await
            .expect("create")
            .record;
        receiver
            .wait_until("an attempt", |received| !received.is_empty())
            .await;
        receiver.up();
        let kept = keyward
            .create(new_key("kept"))
            .await
            .expect("create")
            .record;
        let lost_seq = receiver.received()[0].seq();
        receiver.wait_for_accepted(&[lost_seq + 1]).await;

        let received = receiver.received();
        assert_eq!(
            received.len(),
            2,
            "given up after one failure: {received:?}"
        );
        assert_eq!(received[0].body["data"]["key_id"], lost.id.to_string());
        assert_eq!(received[0].status, 503);
        assert_eq!(received[1].body["data"]["key_id"], kept.id.to_string());

        // The receiver records a request before its answer reaches the sender.
        let start = std::time::Instant::now();
        // A snapshot takes the counts since the previous one: add them up.
        let mut counts = std::collections::HashMap::<String, u64>::new();
        loop {
            for (outcome, n) in outcomes(&snapshotter) {
                *counts.entry(outcome).or_default() += n;
            }
            if counts.get("delivered") == Some(&1) || start.elapsed() > common::DEADLINE {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(counts.get("delivered"), Some(&1), "{counts:?}");
        assert_eq!(counts.get("failed"), Some(&1), "{counts:?}");
        assert_eq!(counts.get("given_up"), Some(&1), "{counts:?}");
        let lag = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .find(|(key, _, _, _)| key.key().name() == keyward_webhooks::metrics::LAG);
        assert!(lag.is_some(), "the lag gauge is registered");
        webhooks.shutdown().await;
    })
    .await;
}

/// The deliveries counter's values by outcome.
fn outcomes(
    snapshotter: &metrics_util::debugging::Snapshotter,
) -> std::collections::HashMap<String, u64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            let outcome = key.labels().find(|l| l.key() == "outcome")?;
            match value {
                metrics_util::debugging::DebugValue::Counter(n) => {
                    Some((outcome.value().to_owned(), n))
                }
                _ => None,
            }
        })
        .collect()
}

#[test]
fn the_receivers_check_catches_a_wrong_signature() {
    let change = ChangeRecord::key(
        1,
        KeyId::new(),
        None,
        ChangeKind::Created,
        chrono::Utc::now(),
    );
    let payload = WebhookPayload::from_change(&change).expect("a key event");
    let body = serde_json::to_vec(&payload).expect("JSON");
    let now = chrono::Utc::now().timestamp();
    let headers = |signature: String| {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
        headers.insert("webhook-signature", signature.parse().unwrap());
        headers
    };
    let verifier = standardwebhooks::Webhook::new(common::SECRET).unwrap();
    let right = secret().sign("msg_1", now, &body);
    assert!(verifier.verify(&body, &headers(right.clone())).is_ok());
    let other = keyward_webhooks::WebhookSecret::generate().sign("msg_1", now, &body);
    assert!(verifier.verify(&body, &headers(other)).is_err());
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert!(verifier.verify(&tampered, &headers(right)).is_err());
    let _ = Webhooks::new(MemoryStore::new());
}
