//! No token in any log line, at any level.

mod common;

use common::*;
use keyward::{GracePeriod, ManualClock, NewKey};
use keyward_test_support::Logs;

#[test]
fn no_token_in_any_log_line() {
    let logs = Logs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber(tracing::Level::TRACE));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut tokens = runtime.block_on(async {
        let clock = ManualClock::new(t0());
        let store = CountingStore::new();
        let keyward = builder(store.clone(), &clock).build().unwrap();
        let app = app(&keyward);
        let (id, token) = issue(&keyward, NewKey::service("ci").scopes(["books:read"])).await;
        let (_, limited) = issue(
            &keyward,
            NewKey::service("limited")
                .scopes(["books:read"])
                .rate_limit(1),
        )
        .await;
        let unknown = keyward::TokenFormat::new("books").unwrap().generate();
        let unknown = unknown.expose_secret().to_owned();
        let mut wrong = token.clone();
        wrong.replace_range(8..9, if &token[8..9] == "A" { "B" } else { "A" });

        let mut post = bearer("/write", &token);
        *post.method_mut() = http::Method::POST;
        for request in [
            bearer("/echo", &token),
            bearer("/echo", &token),
            post,
            bearer("/echo", &unknown),
            bearer("/echo", &wrong),
            get_with(&format!("/echo?api_key={token}"), &[]),
            get_with(
                "/echo",
                &[
                    ("x-api-key", &token),
                    ("authorization", &format!("Bearer {unknown}")),
                ],
            ),
            bearer("/echo", &limited),
            bearer("/echo", &limited),
        ] {
            send(&app, request).await;
        }
        let regenerated = keyward
            .regenerate(id, Some(GracePeriod::from_secs(10).unwrap()))
            .await
            .unwrap();
        let new_token = regenerated.token.expose_secret().to_owned();
        send(&app, bearer("/echo", &new_token)).await;
        store.fail(true);
        keyward.invalidate_key(id);
        send(&app, bearer("/echo", &new_token)).await;
        store.fail(false);
        keyward.revoke(id).await.unwrap();
        send(&app, bearer("/echo", &new_token)).await;
        keyward.shutdown().await;
        vec![token, limited, unknown, wrong, new_token]
    });
    let logs = logs.text();
    assert!(
        logs.lines().count() > 20,
        "the test must capture real logs:\n{logs}"
    );
    assert!(logs.contains("keyward.verify"), "{logs}");
    assert!(logs.contains("outcome"), "{logs}");
    tokens.sort();
    for token in &tokens {
        // The whole token, and its secret part alone.
        let secret = &token[token.find('_').unwrap() + 1..];
        for line in logs.lines() {
            assert!(
                !line.contains(secret),
                "a log line contains a token: {line}"
            );
        }
    }
}
