//! The management page in a real browser: headless Chromium driven through chromedriver.
//!
//! It presents a bootstrap key, creates a key with two scopes and a 7-day expiry, reads the
//! one-time token from the page and uses it against the API, revokes the key from the page
//! and sees its status change, and saves a screenshot to `target/keyward-admin-ui.png`.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` it says it skipped and passes,
//! unless `CI` is set: then it fails.
#![cfg(feature = "ui")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use fantoccini::{Client, ClientBuilder, Locator};
use http::StatusCode;
use hyper_util::client::legacy::connect::HttpConnector;
use keyward::{Expiry, Keyward, MemoryStore, NewKey, Principal, require_scopes};
use keyward_test_support::{Http, TempDir, TestServer};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manage_keys_in_a_real_browser() {
    let installed = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {CHROMIUM} or {CHROMEDRIVER} is missing: install chromium and \
             chromium-driver"
        );
        eprintln!("browser test skipped: {CHROMIUM} or {CHROMEDRIVER} is not installed");
        return;
    }

    let app = App::start().await;
    let driver = Driver::start().await;
    let profile = TempDir::new();
    let browser = driver.browser(profile.path()).await;
    let result = walk(&browser, &app).await;
    let closed = browser.close().await;
    drop(driver);
    app.stop().await;
    result.unwrap();
    closed.expect("the browser closes");
}

async fn walk(browser: &Client, app: &App) -> Result<(), String> {
    browser
        .set_window_size(1440, 1000)
        .await
        .map_err(|e| e.to_string())?;
    browser
        .goto(&format!("http://{}/api/v1/tokens/ui", app.server.addr()))
        .await
        .map_err(|e| e.to_string())?;

    // Without credentials the page asks for some.
    wait_for(browser, "body[data-state='signed-out']").await?;

    // Present the bootstrap key.
    find(browser, "#kw-api-key")
        .await?
        .send_keys(&app.bootstrap)
        .await
        .map_err(|e| e.to_string())?;
    click(browser, "#kw-use-key").await?;
    wait_for(browser, "body[data-state='ready']").await?;
    wait_for(browser, &format!("tr[data-key-id='{}']", app.bootstrap_id)).await?;
    let whoami = find(browser, "#kw-whoami")
        .await?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    assert!(whoami.contains("bootstrap"), "{whoami}");

    // Create a key with two scopes and a 7-day expiry.
    click(browser, "#kw-new-key").await?;
    wait_for(
        browser,
        "#kw-create-dialog[open] #kw-create-scope-list[data-loaded='true']",
    )
    .await?;
    find(browser, "#kw-create-name")
        .await?
        .send_keys("CI script")
        .await
        .map_err(|e| e.to_string())?;
    click(browser, "input[data-scope='books:read']").await?;
    click(browser, "input[data-scope='reviews:read']").await?;
    find(browser, "#kw-create-expiry")
        .await?
        .select_by_value("7")
        .await
        .map_err(|e| e.to_string())?;
    click(browser, "#kw-create-submit").await?;

    // The token is shown once.
    wait_for(browser, "#kw-token-dialog[open]").await?;
    let token = find(browser, "#kw-token")
        .await?
        .prop("value")
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    assert!(
        token.starts_with("books_") && token.len() == 52,
        "token {token:?}"
    );

    // It works against the API, with exactly the two scopes and a 7-day expiry.
    let (status, me) = app.http_get("/api/v1/tokens/self", &token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["key"]["name"], "CI script");
    assert_eq!(me["key"]["scopes"], json!(["books:read", "reviews:read"]));
    let expires: chrono::DateTime<chrono::Utc> =
        me["key"]["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires - chrono::Utc::now()).num_hours();
    assert!(
        (7 * 24 - 2..=7 * 24).contains(&days),
        "expires in {days} hours"
    );
    let (status, books) = app.http_get("/api/v1/books", &token).await;
    assert_eq!(status, StatusCode::OK, "{books}");
    let id = me["key"]["id"].as_str().unwrap().to_owned();

    click(browser, "#kw-token-done").await?;
    let row = format!("tr[data-key-id='{id}']");
    wait_for(browser, &format!("{row}[data-status='active']")).await?;
    let hint = find(browser, &format!("{row} td[data-col='hint']"))
        .await?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    assert!(
        hint.ends_with(&token[token.len() - 4..]),
        "masked key {hint}"
    );
    assert!(
        !hint.contains(&token[6..20]),
        "the table shows only the hint"
    );
    let source = browser.source().await.map_err(|e| e.to_string())?;
    assert!(
        !source.contains(&token),
        "the token left the page after Done"
    );

    // Revoke it from the page and see the status change.
    click(browser, &format!("{row} button[data-action='revoke']")).await?;
    wait_for(browser, "#kw-confirm-dialog[open]").await?;
    click(browser, "#kw-confirm-ok").await?;
    wait_for(browser, &format!("{row}[data-status='revoked']")).await?;
    let status_text = find(browser, &format!("{row} td[data-col='status']"))
        .await?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(status_text, "revoked");
    let (status, body) = app.http_get("/api/v1/books", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // A picture of the table, for people.
    wait_for(browser, "body[data-busy='false']").await?;
    let png = browser.screenshot().await.map_err(|e| e.to_string())?;
    let path = target_dir().join("keyward-admin-ui.png");
    std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::write(&path, png).map_err(|e| e.to_string())?;
    eprintln!("screenshot saved to {}", path.display());
    Ok(())
}

async fn find(browser: &Client, css: &str) -> Result<fantoccini::elements::Element, String> {
    browser
        .find(Locator::Css(css))
        .await
        .map_err(|e| format!("{css}: {e}"))
}

async fn click(browser: &Client, css: &str) -> Result<(), String> {
    find(browser, css)
        .await?
        .click()
        .await
        .map_err(|e| format!("click {css}: {e}"))
}

/// Polls for an element until it appears or the deadline passes.
async fn wait_for(browser: &Client, css: &str) -> Result<(), String> {
    browser
        .wait()
        .at_most(WAIT)
        .every(Duration::from_millis(50))
        .for_element(Locator::Css(css))
        .await
        .map(drop)
        .map_err(|e| format!("waiting for {css}: {e}"))
}

/// `target/` of the workspace, or `CARGO_TARGET_DIR`.
fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// The application: the keyward layer in optional mode (so the page loads without a key),
/// the admin router, and one guarded API route.
struct App {
    server: TestServer,
    bootstrap: String,
    bootstrap_id: String,
    keys: Keyward,
}

impl App {
    async fn start() -> Self {
        let keys = Keyward::builder(MemoryStore::new())
            .prefix("books")
            .catalog(common::catalog())
            .build()
            .unwrap();
        let bootstrap = keys
            .create(
                NewKey::personal("bootstrap", "admin")
                    .scopes(["*"])
                    .expiry(Expiry::Never),
            )
            .await
            .unwrap();
        let books = Router::new()
            .route(
                "/api/v1/books",
                get(
                    |p: Principal| async move { axum::Json(json!({"books": [], "key": p.name()})) },
                ),
            )
            .route_layer(require_scopes(["books:read"]));
        let router = Router::new()
            .merge(books)
            .nest("/api/v1/tokens", keyward_admin::router())
            .layer(keys.layer().optional())
            .with_state(keys.clone());
        Self {
            server: TestServer::start(router).await,
            bootstrap: bootstrap.token.expose_secret().to_owned(),
            bootstrap_id: bootstrap.record.id.to_string(),
            keys,
        }
    }

    async fn http_get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let authorization = format!("Bearer {token}");
        let reply = Http::new(self.server.addr())
            .get(path, &[("authorization", authorization.as_str())])
            .await;
        (reply.status, reply.json)
    }

    async fn stop(self) {
        drop(self.server);
        self.keys.shutdown().await;
    }
}

/// chromedriver on a free port, stopped on drop.
struct Driver {
    port: u16,
    child: Child,
}

impl Driver {
    async fn start() -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { port, child }
    }

    async fn browser(&self, profile: &Path) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-quic",
                    "--window-size=1440,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
