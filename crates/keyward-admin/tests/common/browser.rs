//! The management page in headless Chromium: chromedriver, one browser session with the
//! helpers the page tests use, and the steps several walks share.
//!
//! Include it together with the application it drives:
//! `#[path = "common/browser.rs"] mod browser;` and
//! `#[path = "common/browser_app.rs"] mod browser_app;`.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use keyward_test_support::{Http, TempDir};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::browser_app::BrowserApp;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long one wait for the page may take.
pub const WAIT: Duration = Duration::from_secs(20);
/// How long one whole browser test may take.
pub const TEST_BUDGET: Duration = Duration::from_secs(240);

/// Whether Chromium and chromedriver are installed; without them a test says it skipped,
/// unless `CI` is set: then it fails.
pub fn installed() -> bool {
    let installed = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {CHROMIUM} or {CHROMEDRIVER} is missing: install chromium and \
             chromium-driver"
        );
        eprintln!("browser test skipped: {CHROMIUM} or {CHROMEDRIVER} is not installed");
    }
    installed
}

/// Runs `walk` against a fresh application in a fresh browser, bounded by [`TEST_BUDGET`],
/// and always closes the browser and stops the application.
///
/// `walk` gets the page and the application and hands them back with its outcome, so that a
/// failed assertion inside it (a panic) still closes the browser and reports the page.
pub async fn with_browser<F, Fut>(walk: F)
where
    F: FnOnce(Page, BrowserApp) -> Fut,
    Fut: Future<Output = (Page, BrowserApp, std::thread::Result<Result<(), String>>)>,
{
    with_browser_on(BrowserApp::start(), walk).await;
}

/// [`with_browser`] on the application `app` starts.
pub async fn with_browser_on<A, F, Fut>(app: A, walk: F)
where
    A: Future<Output = BrowserApp>,
    F: FnOnce(Page, BrowserApp) -> Fut,
    Fut: Future<Output = (Page, BrowserApp, std::thread::Result<Result<(), String>>)>,
{
    if !installed() {
        return;
    }
    let driver = Driver::start().await;
    let profile = TempDir::new();
    let page = driver.session(profile.path()).await;
    let app = app.await;
    let outcome = tokio::time::timeout(TEST_BUDGET, walk(page, app)).await;
    let Ok((page, app, result)) = outcome else {
        drop(driver);
        panic!("the browser test took longer than {TEST_BUDGET:?}");
    };
    let result = match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(message),
        Err(panic) => Err(panic_message(&*panic)),
    };
    if result.is_err() {
        page.report_failure().await;
    }
    let closed = page.client.close().await;
    drop(driver);
    app.stop().await;
    result.unwrap();
    closed.expect("the browser closes");
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "the walk panicked".to_owned())
}

/// Runs a walk, catching a failed assertion so the browser can still be closed.
pub async fn guarded<Fut>(walk: Fut) -> std::thread::Result<Result<(), String>>
where
    Fut: Future<Output = Result<(), String>>,
{
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(walk).catch_unwind().await
}

/// `target/` of the workspace, or `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// chromedriver on a free port, stopped on drop.
pub struct Driver {
    port: u16,
    child: Child,
}

impl Driver {
    /// Starts chromedriver on a free port. The port is free when it is picked, but another
    /// test may take it before chromedriver binds it; so the driver counts as started only
    /// once *it* answers `/status` as ready, and a driver that exits is started again on
    /// another port.
    pub async fn start() -> Self {
        for _ in 0..5 {
            let port = {
                let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                probe.local_addr().unwrap().port()
            };
            let mut child = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("chromedriver starts");
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if driver_ready(port).await {
                    return Self { port, child };
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.start_kill();
        }
        panic!("chromedriver did not start");
    }

    /// A headless browser session with its profile in `profile`.
    pub async fn session(&self, profile: &Path) -> Page {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
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
                    "--hide-scrollbars",
                    "--lang=en-US",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a browser session");
        Page {
            client,
            driver: SocketAddr::from(([127, 0, 0, 1], self.port)),
        }
    }
}

/// Whether a chromedriver answers on `port` and says it is ready.
async fn driver_ready(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request =
        format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    // chromedriver may keep the connection open: read until the answer says ready, or stop.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        if String::from_utf8_lossy(&answer).contains("\"ready\":true") {
            return true;
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&chunk[..n]),
            _ => return false,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// One browser tab and the helpers the tests use. Every helper answers `Err` with what it was
/// doing, so a failing walk says where it stopped.
pub struct Page {
    pub client: Client,
    driver: SocketAddr,
}

fn failed(what: &str) -> impl Fn(fantoccini::error::CmdError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl Page {
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.client.goto(url).await.map_err(failed(url))
    }

    pub async fn find(&self, css: &str) -> Result<Element, String> {
        self.client
            .find(Locator::Css(css))
            .await
            .map_err(failed(css))
    }

    pub async fn click(&self, css: &str) -> Result<(), String> {
        self.find(css)
            .await?
            .click()
            .await
            .map_err(failed(&format!("click {css}")))
    }

    /// Polls for an element until it appears or [`WAIT`] passes.
    pub async fn wait_for(&self, css: &str) -> Result<(), String> {
        self.client
            .wait()
            .at_most(WAIT)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
            .map(drop)
            .map_err(failed(&format!("waiting for {css}")))
    }

    /// Polls until the JavaScript expression `condition` is true, or [`WAIT`] passes.
    pub async fn wait_until(&self, condition: &str) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        let script = format!("return Boolean({condition});");
        loop {
            if self.js(&script, vec![]).await? == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("waiting until {condition}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no request of the page is running.
    pub async fn idle(&self) -> Result<(), String> {
        self.wait_until("document.body.dataset.busy === 'false'")
            .await
    }

    pub async fn js(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.client
            .execute(script, args)
            .await
            .map_err(failed(script))
    }

    pub async fn text(&self, css: &str) -> Result<String, String> {
        self.find(css)
            .await?
            .text()
            .await
            .map_err(failed(&format!("text of {css}")))
    }

    pub async fn value(&self, css: &str) -> Result<String, String> {
        Ok(self
            .find(css)
            .await?
            .prop("value")
            .await
            .map_err(failed(&format!("value of {css}")))?
            .unwrap_or_default())
    }

    /// Types `text` into the field `css` after clearing it.
    pub async fn fill(&self, css: &str, text: &str) -> Result<(), String> {
        let field = self.find(css).await?;
        field
            .clear()
            .await
            .map_err(failed(&format!("clear {css}")))?;
        field
            .send_keys(text)
            .await
            .map_err(failed(&format!("type into {css}")))
    }

    /// Sets a field's value the way a picker would (date inputs), firing `input` and `change`.
    pub async fn set_value(&self, css: &str, value: &str) -> Result<(), String> {
        self.js(
            "const field = document.querySelector(arguments[0]);
             field.value = arguments[1];
             field.dispatchEvent(new Event('input', { bubbles: true }));
             field.dispatchEvent(new Event('change', { bubbles: true }));",
            vec![json!(css), json!(value)],
        )
        .await
        .map(drop)
    }

    pub async fn select(&self, css: &str, value: &str) -> Result<(), String> {
        self.find(css)
            .await?
            .select_by_value(value)
            .await
            .map_err(failed(&format!("select {value} in {css}")))
    }

    /// Sends keys to the focused element.
    pub async fn keys(&self, keys: &str) -> Result<(), String> {
        self.client
            .active_element()
            .await
            .map_err(failed("the focused element"))?
            .send_keys(keys)
            .await
            .map_err(failed("typing"))
    }

    /// What has the keyboard focus: `#id`, or the tag and the `data-action` it carries.
    pub async fn focused(&self) -> Result<String, String> {
        let described = self
            .js(
                "const e = document.activeElement;
                 if (!e) return '';
                 if (e.id) return '#' + e.id;
                 return e.tagName.toLowerCase() + (e.dataset.action ? '[' + e.dataset.action + ']' : '')
                   + (e.className ? '.' + e.className.split(' ')[0] : '');",
                vec![],
            )
            .await?;
        Ok(described.as_str().unwrap_or_default().to_owned())
    }

    /// Opens the action menu of key `id` with the mouse and picks `action`.
    pub async fn row_action(&self, id: &str, action: &str) -> Result<(), String> {
        self.click(&format!("button[data-menu-for='{id}']")).await?;
        let item = format!("#kw-menu-{id}:popover-open button[data-action='{action}']");
        self.wait_for(&item).await?;
        self.click(&item).await
    }

    /// Answers the open confirmation dialog with its confirm button.
    pub async fn confirm(&self) -> Result<(), String> {
        self.wait_for("#kw-confirm-dialog[open]").await?;
        self.click("#kw-confirm-ok").await?;
        self.wait_until("!document.getElementById('kw-confirm-dialog').open")
            .await
    }

    /// Prints what helps to see why a walk failed: the page's state, its messages and the
    /// browser's console, and saves a screenshot.
    pub async fn report_failure(&self) {
        let state = self
            .js(
                "return { url: location.href, state: document.body.dataset.state, \
                 busy: document.body.dataset.busy, error: document.getElementById('kw-error')?.textContent, \
                 dialogs: [...document.querySelectorAll('dialog[open]')].map((d) => d.id + ': ' + d.textContent.replace(/\\s+/g, ' ').slice(0, 300)) };",
                vec![],
            )
            .await;
        eprintln!("the page when the walk failed: {state:?}");
        for message in self.console().await.unwrap_or_default() {
            eprintln!("console: {message}");
        }
        let _ = self.screenshot("failure", 1400).await;
    }

    /// The browser console's messages since the last call.
    pub async fn console(&self) -> Result<Vec<String>, String> {
        let session = self
            .client
            .session_id()
            .await
            .map_err(failed("session id"))?
            .ok_or("no browser session")?;
        let log = Http::new(self.driver)
            .post(
                &format!("/session/{session}/se/log"),
                &[],
                &json!({ "type": "browser" }),
            )
            .await;
        Ok(log.json["value"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| format!("{} {}", entry["level"], entry["message"]))
            .collect())
    }

    /// Fails on script errors and on anything the page's content security policy refused.
    pub async fn assert_clean_console(&self) -> Result<(), String> {
        let problems: Vec<String> = self
            .console()
            .await?
            .into_iter()
            .filter(|m| {
                m.contains("Content Security Policy")
                    || m.contains("Uncaught")
                    || m.contains("Error:")
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("the browser console:\n{}", problems.join("\n")))
        }
    }

    /// Calls a DevTools command through chromedriver (`goog/cdp/execute`).
    pub async fn devtools(&self, command: &str, params: Value) -> Result<Value, String> {
        let session = self
            .client
            .session_id()
            .await
            .map_err(failed("session id"))?
            .ok_or("no browser session")?;
        let reply = Http::new(self.driver)
            .post(
                &format!("/session/{session}/goog/cdp/execute"),
                &[],
                &json!({ "cmd": command, "params": params }),
            )
            .await;
        if reply.status != 200 {
            return Err(format!("{command}: {} {}", reply.status, reply.text));
        }
        Ok(reply.json["value"].clone())
    }

    /// Emulates a viewport `width` CSS pixels wide (and `height` high), as a phone would have.
    pub async fn viewport(&self, width: u32, height: u32) -> Result<(), String> {
        self.devtools(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": width,
                "height": height,
                "deviceScaleFactor": 1,
                "mobile": width < 600,
            }),
        )
        .await
        .map(drop)
    }

    /// Emulates `prefers-color-scheme: dark` (or light).
    pub async fn color_scheme(&self, scheme: &str) -> Result<(), String> {
        self.devtools(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        )
        .await
        .map(drop)
    }

    /// Saves a picture of the whole page (the viewport grown to the page's height, or to the
    /// open dialog's) to `target/screenshots/{name}.png`; the window's own size is back after.
    pub async fn screenshot(&self, name: &str, width: u32) -> Result<PathBuf, String> {
        self.idle().await?;
        let height = self
            .js(
                "const open = [...document.querySelectorAll('dialog[open]')];
                 return Math.ceil(open.length > 0
                   ? Math.max(...open.map((d) => d.scrollHeight + 48))
                   : document.documentElement.scrollHeight);",
                vec![],
            )
            .await?
            .as_u64()
            .unwrap_or(1000)
            .clamp(600, 8000);
        self.viewport(width, u32::try_from(height).unwrap_or(8000))
            .await?;
        // One frame for the new size to lay out.
        self.js(
            "return new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));",
            vec![],
        )
        .await?;
        let png = self
            .client
            .screenshot()
            .await
            .map_err(failed("screenshot"))?;
        self.devtools("Emulation.clearDeviceMetricsOverride", json!({}))
            .await?;
        let path = target_dir().join("screenshots").join(format!("{name}.png"));
        std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(&path, png).map_err(|e| e.to_string())?;
        eprintln!("screenshot saved to {}", path.display());
        Ok(path)
    }

    /// The controls (input, select, textarea, button) without an accessible name: no
    /// `aria-labelledby` text, `aria-label`, label, text or `title`. Hidden inputs are skipped.
    pub async fn unnamed_controls(&self) -> Result<Vec<String>, String> {
        let found = self
            .js(
                r#"
                const text = (node) => (node ? node.textContent : "").replace(/\s+/g, " ").trim();
                const named = (el) => {
                  const by = el.getAttribute("aria-labelledby");
                  if (by && by.split(/\s+/).map((id) => text(document.getElementById(id))).join("").length > 0) return true;
                  if ((el.getAttribute("aria-label") || "").trim()) return true;
                  if (el.labels && [...el.labels].some((l) => text(l).length > 0)) return true;
                  if (el.tagName === "BUTTON" && text(el).length > 0) return true;
                  if ((el.getAttribute("title") || "").trim()) return true;
                  return false;
                };
                return [...document.querySelectorAll("input, select, textarea, button")]
                  .filter((el) => el.type !== "hidden" && !named(el))
                  .map((el) => el.outerHTML.slice(0, 160));
                "#,
                vec![],
            )
            .await?;
        Ok(found
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Fails listing every control without an accessible name.
    pub async fn assert_every_control_named(&self, context: &str) -> Result<(), String> {
        let unnamed = self.unnamed_controls().await?;
        if unnamed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{context}: controls without an accessible name:\n{}",
                unnamed.join("\n")
            ))
        }
    }

    /// Whether the page is no wider than the viewport (no horizontal scrolling of the page).
    pub async fn overflow(&self) -> Result<Option<String>, String> {
        let widths = self
            .js(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await?;
        let scroll = widths[0].as_u64().unwrap_or(u64::MAX);
        let inner = widths[1].as_u64().unwrap_or(0);
        if scroll <= inner {
            return Ok(None);
        }
        let culprits = self
            .js(
                "return [...document.querySelectorAll('body *')]
                   .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
                   .slice(0, 8)
                   .map((e) => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className
                     + ' right=' + Math.round(e.getBoundingClientRect().right));",
                vec![],
            )
            .await?;
        Ok(Some(format!(
            "scrollWidth {scroll} > innerWidth {inner}: {culprits}"
        )))
    }
}

/// The row of key `id` in the table.
pub fn row(id: &str) -> String {
    format!("#kw-keys-body tr[data-key-id='{id}']")
}

/// The text of `column` in the row of key `id`.
pub async fn cell(page: &Page, id: &str, column: &str) -> Result<String, String> {
    page.text(&format!("{} td[data-col='{column}']", row(id)))
        .await
}

/// Opens the create dialog and waits for the catalog's checkboxes.
pub async fn open_create(page: &Page) -> Result<(), String> {
    page.click("#kw-new-key").await?;
    page.wait_for("#kw-create-dialog[open] #kw-create-scope-list[data-loaded='true']")
        .await
}

/// Ticks (or unticks) scope `name` in the `create` or `edit` dialog.
pub async fn scope(page: &Page, dialog: &str, name: &str) -> Result<(), String> {
    page.click(&format!(
        "#kw-{dialog}-scope-list input[data-scope='{name}']"
    ))
    .await
}

/// Reads the one-time token, checks the curl line, closes the dialog and checks the token
/// left the page.
pub async fn take_token(page: &Page) -> Result<String, String> {
    page.wait_for("#kw-token-dialog[open]").await?;
    let token = page.value("#kw-token").await?;
    assert!(
        token.starts_with("books_") && token.len() == 52,
        "token {token:?}"
    );
    let curl = page.text("#kw-curl").await?;
    assert!(
        curl.starts_with(&format!(
            "curl -H \"Authorization: Bearer {token}\" http://"
        )) && curl.ends_with("/api/v1/tokens/self"),
        "{curl}"
    );
    page.click("#kw-token-done").await?;
    page.wait_until("!document.getElementById('kw-token-dialog').open")
        .await?;
    let source = page.client.source().await.map_err(|e| e.to_string())?;
    assert!(!source.contains(&token), "the token stayed in the page");
    Ok(token)
}

/// Opens the page at 1400 × 1000 and pastes the administrator's key.
pub async fn sign_in(page: &Page, app: &BrowserApp) -> Result<(), String> {
    page.client
        .set_window_size(1400, 1000)
        .await
        .map_err(|e| e.to_string())?;
    page.goto(&app.page()).await?;
    page.wait_for("body[data-state='signed-out']").await?;
    page.fill("#kw-api-key", &app.admin.token).await?;
    page.click("#kw-use-key").await?;
    page.wait_for("body[data-state='ready'].admin").await?;
    page.idle().await
}
