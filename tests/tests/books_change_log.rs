//! `keyward revoke` from the command line, on the reference app's SQLite file while the app
//! runs: the app refuses the key within a second (through the change log), although the key
//! is in its cache.

use std::time::{Duration, Instant};

use keyward_examples::books;
use keyward_test_support::{Http, TestDatabase, run_keyward};
use keyward_tests::start;

async fn books_status(app: &books::Running, token: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    Http::new(app.addr)
        .get("/api/v1/books", &[("authorization", bearer.as_str())])
        .await
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_from_the_cli_is_refused_by_the_running_app_within_a_second() {
    let db = TestDatabase::sqlite();
    let app = start(db.url()).await;
    let (code, stdout, stderr) = run_keyward(
        db.url(),
        None,
        &[
            "--json",
            "create",
            "--name",
            "x",
            "--scope",
            "books:read",
            "--service",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let issued: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let token = issued["token"].as_str().expect("a token");
    let id = issued["key"]["id"].as_str().expect("an id");
    // Cached by the app.
    assert_eq!(books_status(&app, token).await, 200);
    assert_eq!(books_status(&app, token).await, 200);

    let (code, _, stderr) = run_keyward(db.url(), None, &["revoke", id]).await;
    assert_eq!(code, 0, "{stderr}");
    let revoked_at = Instant::now();
    loop {
        let status = books_status(&app, token).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "the app still accepted the revoked key after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("refused {:?} after the CLI's revoke", revoked_at.elapsed());
    app.stop().await.expect("stop");
}
