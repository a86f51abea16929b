//! The management page in a real browser (headless Chromium through chromedriver), as an
//! administrator acting with a pasted key: the table, creating keys with every option (each
//! checked through the API), the accessible-name check, and screenshots at 1400 and 375
//! pixels, light and dark, saved under `target/screenshots/`. `browser_actions.rs` changes
//! keys, `browser_session.rs` signs in with a session.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` it says it skipped and passes,
//! unless `CI` is set: then it fails.
#![cfg(feature = "ui")]

#[path = "common/browser.rs"]
mod browser;
#[path = "common/browser_app.rs"]
mod browser_app;

use browser::{
    Page, cell, guarded, open_create, row, scope, sign_in, take_token, with_browser,
    with_browser_on,
};
use browser_app::{BrowserApp, Planted, UnlistedPeople, plant_keys, self_of, time};
use chrono::{Duration, Local, NaiveTime, TimeZone, Utc};
use http::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_creates_keys_in_the_page() {
    with_browser(|page, app| async move {
        let result = guarded(walk(&page, &app)).await;
        (page, app, result)
    })
    .await;
}

/// An application that does not list its users: the administrator names the owner by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_user_list_the_owner_is_named_by_id() {
    with_browser_on(
        BrowserApp::start_with(UnlistedPeople),
        |page, app| async move {
            let result = guarded(owner_by_id(&page, &app)).await;
            (page, app, result)
        },
    )
    .await;
}

async fn owner_by_id(page: &Page, app: &BrowserApp) -> Result<(), String> {
    sign_in(page, app).await?;
    // No names to show: the owner column shows the id.
    assert_eq!(cell(page, &app.admin.id, "owner").await?, "u-admin");
    open_create(page).await?;
    page.fill("#kw-create-name", "Bob's exporter").await?;
    scope(page, "create", "books:read").await?;
    page.select("#kw-create-owner", "kind:other").await?;
    page.wait_for("#kw-create-owner-id-row:not([hidden])")
        .await?;
    page.assert_every_control_named("the owner id").await?;

    // Left empty, the page asks for it; an unknown id is the server's 422 next to the owner.
    page.click("#kw-create-submit").await?;
    page.wait_for("#kw-create-owner-error:not([hidden])")
        .await?;
    page.fill("#kw-create-owner-id", "u-nobody").await?;
    page.click("#kw-create-submit").await?;
    page.wait_until(
        "document.getElementById('kw-create-owner-error').textContent.includes('u-nobody')",
    )
    .await?;

    page.fill("#kw-create-owner-id", "u-bob").await?;
    page.click("#kw-create-submit").await?;
    let token = take_token(page).await?;
    let key = self_of(app, &token).await;
    assert_eq!(key["owner"], "u-bob");
    assert_eq!(key["scopes"], json!(["books:read"]));
    page.assert_clean_console().await
}

async fn walk(page: &Page, app: &BrowserApp) -> Result<(), String> {
    let planted = plant_keys(app).await;
    sign_in(page, app).await?;
    kept_for_the_tab(page, app).await?;
    table(page, &planted).await?;
    create(page, app).await?;
    layout(page).await
}

/// The pasted key names its owner, is kept for the tab (a reload keeps it), and
/// "Forget key" stops acting with it.
async fn kept_for_the_tab(page: &Page, app: &BrowserApp) -> Result<(), String> {
    let whoami = page.text("#kw-whoami").await?;
    assert_eq!(
        whoami,
        format!(
            "Acting with \u{201c}Admin console\u{201d} (Ada Admin's key, books_\u{2026}{}).",
            &app.admin.token[48..]
        )
    );
    page.goto(&app.page()).await?;
    page.wait_for("body[data-state='ready'].admin").await?;
    page.click("#kw-forget-key").await?;
    page.wait_for("body[data-state='signed-out']").await?;
    assert_eq!(page.text("#kw-whoami").await?, "");
    sign_in(page, app).await
}

/// The table shows owners by name (the id for an unknown user) and every status.
async fn table(page: &Page, planted: &Planted) -> Result<(), String> {
    page.wait_for(&row(&planted.ghost.id)).await?;
    assert_eq!(
        cell(page, &planted.backup.id, "owner").await?,
        "Alice Liddell"
    );
    assert_eq!(cell(page, &planted.ghost.id, "owner").await?, "u-ghost");
    for (key, status, label) in [
        (&planted.backup, "active", "active"),
        (&planted.importer, "expiring", "expiring soon"),
        (&planted.sync, "expired", "expired"),
        (&planted.legacy, "revoked", "revoked"),
    ] {
        page.wait_for(&format!("{}[data-status='{status}']", row(&key.id)))
            .await?;
        assert_eq!(cell(page, &key.id, "status").await?, label);
    }
    let hint = cell(page, &planted.backup.id, "hint").await?;
    let token = &planted.backup.token;
    assert!(
        hint.ends_with(&token[token.len() - 4..]),
        "masked key {hint}"
    );
    assert!(
        !hint.contains(&token[6..20]),
        "the table shows only the hint"
    );
    assert_eq!(cell(page, &planted.backup.id, "uses").await?, "3");
    page.assert_every_control_named("the table").await?;
    page.screenshot("page-1400", 1400).await.map(drop)
}

/// Creates keys with every option: a custom date, allowed networks, a rate limit and an owner;
/// a service key that never expires; a preset expiry. Shows the server's 422 and the page's
/// own checks next to their fields.
async fn create(page: &Page, app: &BrowserApp) -> Result<(), String> {
    // For Alice, until a date, from two networks, 120 a minute.
    open_create(page).await?;
    page.assert_every_control_named("the create dialog").await?;
    page.fill("#kw-create-name", "Reporting job").await?;
    page.select("#kw-create-owner", "u-alice").await?;
    // Alice does not hold metadata:read: the page says so and disables it.
    page.wait_for("#kw-create-scope-list input[data-scope='metadata:read']:disabled")
        .await?;
    scope(page, "create", "books:read").await?;
    scope(page, "create", "reading:read").await?;
    page.select("#kw-create-expiry", "custom").await?;
    page.wait_for("#kw-create-date-row:not([hidden])").await?;

    // A date beyond what the server allows: its 422 appears next to the date.
    page.set_value("#kw-create-date", "2045-01-31").await?;
    page.click("#kw-create-submit").await?;
    page.wait_for("#kw-create-expiry-error:not([hidden])")
        .await?;
    let message = page.text("#kw-create-expiry-error").await?;
    assert!(message.contains("3650"), "the server's message: {message}");
    page.wait_for("#kw-create-date[aria-invalid='true']")
        .await?;

    // An address that is not one: the page refuses it before sending.
    let day = Local::now().date_naive() + Duration::days(45);
    page.set_value("#kw-create-date", &day.format("%Y-%m-%d").to_string())
        .await?;
    page.fill("#kw-create-ips", "127.0.0.1\n300.1.2.3").await?;
    page.fill("#kw-create-rate", "120").await?;
    page.click("#kw-create-submit").await?;
    page.wait_for("#kw-create-ips-error:not([hidden])").await?;
    let message = page.text("#kw-create-ips-error").await?;
    assert!(message.contains("300.1.2.3"), "{message}");
    assert!(page.find("#kw-create-expiry-error[hidden]").await.is_ok());

    page.fill("#kw-create-ips", "127.0.0.1\n10.0.0.0/8").await?;
    page.click("#kw-create-submit").await?;
    page.wait_for("#kw-token-dialog[open]").await?;
    page.screenshot("page-token-1400", 1400).await?;
    let token = take_token(page).await?;
    let key = self_of(app, &token).await;
    assert_eq!(key["name"], "Reporting job");
    assert_eq!(key["owner"], "u-alice");
    assert_eq!(key["kind"], "personal");
    assert_eq!(key["scopes"], json!(["books:read", "reading:read"]));
    assert_eq!(key["rate_limit"], 120);
    assert_eq!(key["allowed_ips"], json!(["127.0.0.1/32", "10.0.0.0/8"]));
    let end_of_day = Local
        .from_local_datetime(&day.and_time(NaiveTime::from_hms_opt(23, 59, 59).unwrap()))
        .earliest()
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(time(&key["expires_at"]), end_of_day);
    assert_eq!(app.books(&token).await, 200, "127.0.0.1 is allowed");
    let id = key["id"].as_str().unwrap().to_owned();
    page.wait_for(&format!("{}[data-status='active']", row(&id)))
        .await?;
    assert_eq!(cell(page, &id, "owner").await?, "Alice Liddell");

    // A service key that never expires, from one network only.
    open_create(page).await?;
    page.fill("#kw-create-name", "Webhook relay").await?;
    page.select("#kw-create-owner", "kind:service").await?;
    scope(page, "create", "reviews:read").await?;
    page.select("#kw-create-expiry", "never").await?;
    page.fill("#kw-create-ips", "10.0.0.0/8").await?;
    page.click("#kw-create-submit").await?;
    let token = take_token(page).await?;
    let reply = app.api(Method::GET, "/self", &token, None).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.json["error"], "ip_not_allowed");
    let listed = app
        .api(Method::GET, "/keys", &app.admin.token, None)
        .await
        .json;
    let relay = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "Webhook relay")
        .expect("the service key is listed")
        .clone();
    assert_eq!(relay["kind"], "service");
    assert_eq!(relay["owner"], Value::Null);
    assert_eq!(relay["expires_at"], Value::Null);
    assert_eq!(relay["allowed_ips"], json!(["10.0.0.0/8"]));
    let relay_id = relay["id"].as_str().unwrap();
    assert_eq!(cell(page, relay_id, "owner").await?, "service key");

    // Mine, 90 days, two scopes.
    open_create(page).await?;
    page.fill("#kw-create-name", "CI deploy").await?;
    scope(page, "create", "books:write").await?;
    scope(page, "create", "reviews:read").await?;
    page.select("#kw-create-expiry", "90").await?;
    page.click("#kw-create-submit").await?;
    let token = take_token(page).await?;
    let key = self_of(app, &token).await;
    assert_eq!(key["owner"], "u-admin");
    assert_eq!(key["scopes"], json!(["books:write", "reviews:read"]));
    assert_eq!(key["rate_limit"], Value::Null);
    let days = (time(&key["expires_at"]) - Utc::now()).num_hours();
    assert!(
        (90 * 24 - 2..=90 * 24).contains(&days),
        "expires in {days} hours"
    );
    Ok(())
}

/// Screenshots at 1400 and 375 pixels, light and dark; at 375 nothing is wider than the
/// screen, with the table as cards and with a dialog open.
async fn layout(page: &Page) -> Result<(), String> {
    page.color_scheme("light").await?;
    open_create(page).await?;
    page.screenshot("page-create-1400", 1400).await?;
    page.click("#kw-create-cancel").await?;

    page.viewport(375, 812).await?;
    if let Some(overflow) = page.overflow().await? {
        return Err(format!("at 375 px: {overflow}"));
    }
    page.screenshot("page-375", 375).await?;
    page.viewport(375, 812).await?;
    open_create(page).await?;
    if let Some(overflow) = page.overflow().await? {
        return Err(format!("at 375 px with the create dialog: {overflow}"));
    }
    page.screenshot("page-create-375", 375).await?;
    page.click("#kw-create-cancel").await?;
    page.viewport(375, 812).await?;
    page.click("#kw-keys-body tr:last-child button[data-action='details']")
        .await?;
    page.wait_for("#kw-detail-chart[data-state='loaded']")
        .await?;
    if let Some(overflow) = page.overflow().await? {
        return Err(format!("at 375 px with the detail view: {overflow}"));
    }
    page.screenshot("page-detail-375", 375).await?;
    page.click("#kw-detail-close").await?;

    page.color_scheme("dark").await?;
    page.viewport(375, 812).await?;
    page.screenshot("page-375-dark", 375).await?;
    page.screenshot("page-1400-dark", 1400).await?;
    page.color_scheme("light").await?;
    page.assert_every_control_named("the page at the end")
        .await?;
    page.assert_clean_console().await
}
