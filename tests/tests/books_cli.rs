//! The `keyward` command line on the reference app's database: it knows the app from the
//! settings the app recorded when it started, so a key it creates works in the app with no
//! flag but `DATABASE_URL`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use keyward_examples::books;
use keyward_test_support::{Http, TestDatabase};
use keyward_tests::{config, start};

/// The `keyward` binary of this workspace, built by cargo if it is not up to date (a
/// dependency's binary is not built for another package's tests).
fn keyward_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cargo = std::env::var_os("CARGO")
            .or_else(|| option_env!("CARGO").map(Into::into))
            .unwrap_or_else(|| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace root");
        let mut build = Command::new(cargo);
        // Cargo describes this test's own package in variables that build scripts read
        // (ring's reads `CARGO_MANIFEST_DIR`): left in place, they would make this build
        // differ from the workspace's and rebuild half of it, twice.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_BIN_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                    "OUT_DIR",
                ]
                .contains(&name.as_ref())
            {
                build.env_remove(name.as_ref());
            }
        }
        build.current_dir(workspace).args([
            "build",
            "--quiet",
            "--package",
            "keyward-cli",
            "--bin",
            "keyward",
            "--message-format=json",
        ]);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let output = build.output().expect("run cargo");
        assert!(
            output.status.success(),
            "cargo build failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|message| message["target"]["name"] == "keyward")
            .find_map(|message| message["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the built binary")
    })
}

/// Runs `keyward args…` with only `DATABASE_URL` (and `KEYWARD_PEPPER` when given) set,
/// off the async runtime.
async fn keyward(url: &str, pepper: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(keyward_binary());
    cmd.env("DATABASE_URL", url)
        .env_remove("KEYWARD_PREFIX")
        .env_remove("KEYWARD_PEPPER")
        .args(args);
    if let Some(pepper) = pepper {
        cmd.env("KEYWARD_PEPPER", pepper);
    }
    let output: Output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("the command's thread")
        .expect("run keyward");
    (
        output.status.code().expect("an exit code"),
        String::from_utf8(output.stdout).expect("UTF-8"),
        String::from_utf8(output.stderr).expect("UTF-8"),
    )
}

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
