//! The `keyward` command line on the reference app's database: it knows the app from the
//! settings the app recorded when it started, so a key it creates works in the app with no
//! flag but `DATABASE_URL`.

use keyward_examples::books;
use keyward_test_support::{Http, TestDatabase, run_keyward as keyward};
use keyward_tests::{config, start};

/// `keyward create` of a service key that may read books.
const CREATE: &[&str] = &[
    "create",
    "--name",
    "x",
    "--scope",
    "books:read",
    "--service",
];

async fn books_status(app: &books::Running, token: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    Http::new(app.addr)
        .get("/api/v1/books", &[("authorization", bearer.as_str())])
        .await
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_by_the_cli_works_in_the_running_app() {
    let db = TestDatabase::sqlite();
    let app = start(db.url()).await;

    let (code, stdout, stderr) = keyward(db.url(), None, CREATE).await;
    assert_eq!(code, 0, "{stderr}");
    let token = stdout.trim_end();
    assert!(token.starts_with("books_"), "the app's prefix: {token}");
    assert_eq!(books_status(&app, token).await, 200, "the app accepts it");

    let (code, stdout, stderr) = keyward(
        db.url(),
        None,
        &[
            "create",
            "--name",
            "x",
            "--scope",
            "books:burn",
            "--service",
        ],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("`books:burn`"), "{stderr}");
    for valid in ["books:read", "See the book catalog", "reviews:write"] {
        assert!(stderr.contains(valid), "lists {valid}: {stderr}");
    }

    let (code, _, stderr) = keyward(
        db.url(),
        None,
        &[
            "--prefix",
            "keyward",
            "create",
            "--name",
            "x",
            "--scope",
            "books:read",
            "--service",
        ],
    )
    .await;
    assert_eq!(code, 2, "a prefix the app rejects: {stderr}");
    assert!(stderr.contains("books"), "{stderr}");

    app.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_uses_the_apps_pepper_or_says_why_not() {
    let db = TestDatabase::sqlite();
    let mut peppered = config(db.url());
    peppered.pepper = Some("the books pepper".into());
    let app = books::start(peppered).await.expect("the app starts");

    let (code, stdout, stderr) = keyward(db.url(), None, CREATE).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("KEYWARD_PEPPER"), "{stderr}");

    let (code, _, stderr) = keyward(db.url(), Some("not the books pepper"), CREATE).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not the application's pepper"), "{stderr}");

    let (code, stdout, stderr) = keyward(db.url(), Some("the books pepper"), CREATE).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(books_status(&app, stdout.trim_end()).await, 200);

    app.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_the_app_has_started_create_asks_for_a_prefix() {
    let db = TestDatabase::sqlite();
    let (code, _, stderr) = keyward(db.url(), None, &["list"]).await;
    assert_eq!(code, 3, "no database yet: {stderr}");
    assert!(stderr.contains("keyward migrate"), "{stderr}");

    let (code, _, stderr) = keyward(db.url(), None, &["migrate"]).await;
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = keyward(db.url(), None, CREATE).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("no application has started on this database yet"),
        "{stderr}"
    );
    assert!(stderr.contains("--prefix"), "{stderr}");
}
