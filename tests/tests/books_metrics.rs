//! The reference app's `GET /metrics`: keyward's verifications, cache, store lookups and
//! circuit in the Prometheus text format, after a few requests.

use keyward::TokenFormat;
use keyward::metrics as names;
use keyward_test_support::{Http, TestDatabase};
use keyward_tests::start;

/// The value of the sample `series` (`name` or `name{labels}`) in a Prometheus text page.
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no sample {series} in\n{page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_what_keyward_did() {
    let db = TestDatabase::sqlite();
    let app = start(db.url()).await;
    let token = app
        .first_start
        .as_ref()
        .expect("a first start")
        .bootstrap_token
        .clone();
    let bearer = format!("Bearer {token}");
    let unknown = format!(
        "Bearer {}",
        TokenFormat::new("books")
            .unwrap()
            .generate()
            .expose_secret()
    );
    let mut http = Http::new(app.addr);

    for _ in 0..3 {
        let reply = http
            .get("/api/v1/books", &[("authorization", bearer.as_str())])
            .await;
        assert_eq!(reply.status, 200);
    }
    for _ in 0..2 {
        let reply = http
            .get("/api/v1/books", &[("authorization", unknown.as_str())])
            .await;
        assert_eq!(reply.status, 401);
    }
    let reply = http
        .get("/api/v1/books", &[("x-api-key", "books_garbage")])
        .await;
    assert_eq!(reply.status, 401);

    // No key needed, and a bad one does not stand in the way: the page is outside the layer.
    let page = http
        .get("/metrics", &[("x-api-key", "books_garbage")])
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), "text/plain; version=0.0.4");
    let page = page.text;

    let outcome = |o: &str| format!("{}{{outcome=\"{o}\"}}", names::VERIFICATIONS);
    assert!(sample(&page, &outcome("ok")) >= 3.0);
    assert!(sample(&page, &outcome("unknown")) >= 2.0);
    assert!(sample(&page, &outcome("malformed")) >= 1.0);
    assert_eq!(
        sample(&page, &outcome("revoked")),
        0.0,
        "every outcome is listed"
    );
    assert!(page.contains(&format!("# TYPE {} counter", names::VERIFICATIONS)));
    assert!(page.contains(&format!("# HELP {} ", names::VERIFICATIONS)));

    assert!(sample(&page, names::CACHE_HITS) >= 2.0);
    assert!(sample(&page, names::CACHE_MISSES) >= 3.0);
    assert!(sample(&page, names::CACHE_NEGATIVE_HITS) >= 1.0);

    let lookups = names::STORE_LOOKUP_DURATION;
    assert!(page.contains(&format!("# TYPE {lookups} histogram")));
    assert!(sample(&page, &format!("{lookups}_count{{result=\"found\"}}")) >= 1.0);
    assert!(sample(&page, &format!("{lookups}_count{{result=\"not_found\"}}")) >= 1.0);
    assert!(
        sample(
            &page,
            &format!("{lookups}_bucket{{result=\"found\",le=\"+Inf\"}}")
        ) >= 1.0
    );

    assert_eq!(sample(&page, names::CIRCUIT_STATE), 0.0, "closed");
    assert_eq!(
        sample(
            &page,
            &format!("{}{{to=\"open\"}}", names::CIRCUIT_TRANSITIONS)
        ),
        0.0
    );
    assert_eq!(sample(&page, names::FAILURE_BUDGET_REFUSALS), 0.0);

    // The usage flush reports once it has run.
    app.keyward.flush_usage().await.expect("usage written");
    let page = http.get("/metrics", &[]).await.text;
    assert!(sample(&page, &format!("{}_count", names::USAGE_FLUSH_DURATION)) >= 1.0);
    assert_eq!(sample(&page, names::USAGE_PENDING), 0.0);

    app.stop().await.expect("a clean stop");
    db.remove().await;
}
