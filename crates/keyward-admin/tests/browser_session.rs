//! The management page in a real browser for a person signed in to the application (a
//! session cookie, no key): only their own keys, no owner column or picker, the scopes they
//! lack refused with a message, and the key's history.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` it says it skipped and passes,
//! unless `CI` is set: then it fails.
#![cfg(feature = "ui")]

#[path = "common/browser.rs"]
mod browser;
#[path = "common/browser_app.rs"]
mod browser_app;

use browser::{Page, guarded, with_browser};
use browser_app::BrowserApp;
use http::Method;
use keyward::{Expiry, NewKey};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_user_manages_their_own_keys() {
    with_browser(|page, app| async move {
        let result = guarded(walk(&page, &app)).await;
        (page, app, result)
    })
    .await;
}

async fn walk(page: &Page, app: &BrowserApp) -> Result<(), String> {
    let bobs = app
        .plant(
            NewKey::personal("Bob's reader", "u-bob")
                .scopes(["books:read"])
                .expiry(Expiry::InDays(30)),
            |_| {},
        )
        .await;
    let alices = app
        .plant(
            NewKey::personal("Alice's reader", "u-alice")
                .scopes(["books:read"])
                .expiry(Expiry::InDays(30)),
            |_| {},
        )
        .await;

    page.client
        .set_window_size(1400, 1000)
        .await
        .map_err(|e| e.to_string())?;
    // Signing in sets the cookie and lands on the page; it needs no key.
    page.goto(&app.url("/login/u-bob")).await?;
    page.wait_for("body[data-state='ready']").await?;
    page.idle().await?;
    assert!(
        page.find("body.admin").await.is_err(),
        "Bob is no administrator"
    );
    assert_eq!(page.text("#kw-whoami").await?, "");
    let ids = page
        .js(
            "return [...document.querySelectorAll('#kw-keys-body tr')].map((r) => r.dataset.keyId);",
            vec![],
        )
        .await?;
    assert_eq!(ids, json!([bobs.id]), "only Bob's own keys");
    let owner_column = page
        .js(
            "return getComputedStyle(document.querySelector('th.admin-only')).display;",
            vec![],
        )
        .await?;
    assert_eq!(
        owner_column, "none",
        "no owner column for a non-administrator"
    );
    assert!(!alices.id.is_empty());

    // A scope Bob does not hold is refused by the server, and the page says which.
    page.click("#kw-new-key").await?;
    page.wait_for("#kw-create-dialog[open] #kw-create-scope-list[data-loaded='true']")
        .await?;
    let owner_picker = page
        .js(
            "return getComputedStyle(document.getElementById('kw-create-owner').closest('.field')).display;",
            vec![],
        )
        .await?;
    assert_eq!(owner_picker, "none", "no owner picker");
    page.fill("#kw-create-name", "Shelf sync").await?;
    page.click("#kw-create-scope-list input[data-scope='books:write']")
        .await?;
    page.click("#kw-create-submit").await?;
    page.wait_for("#kw-create-error:not([hidden])").await?;
    let error = page.text("#kw-create-error").await?;
    assert!(error.contains("books:write"), "{error}");

    // What he holds works, with a preset expiry.
    page.click("#kw-create-scope-list input[data-scope='books:write']")
        .await?;
    page.click("#kw-create-scope-list input[data-scope='reviews:read']")
        .await?;
    page.select("#kw-create-expiry", "7").await?;
    page.click("#kw-create-submit").await?;
    page.wait_for("#kw-token-dialog[open]").await?;
    let token = page.value("#kw-token").await?;
    page.click("#kw-token-done").await?;
    let me = app.api(Method::GET, "/self", &token, None).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["key"]["owner"], "u-bob");
    assert_eq!(me.json["key"]["scopes"], json!(["reviews:read"]));
    let hours = (me.json["key"]["expires_at"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        - chrono::Utc::now())
    .num_hours();
    assert!(
        (7 * 24 - 2..=7 * 24).contains(&hours),
        "expires in {hours} hours"
    );
    let id = me.json["key"]["id"].as_str().unwrap().to_owned();

    // The detail view: the key's history names the person who created it.
    page.click(&format!(
        "tr[data-key-id='{id}'] button[data-action='details']"
    ))
    .await?;
    page.wait_for("#kw-detail-history[data-state='loaded'] ol.events li")
        .await?;
    let history = page.text("#kw-detail-history").await?;
    assert!(history.contains("created by"), "{history}");
    page.click("#kw-detail-close").await?;

    // The session changes keys too (same-origin requests): delete it, from the page.
    page.row_action(&id, "delete").await?;
    page.confirm().await?;
    page.wait_until(&format!(
        "!document.querySelector(\"tr[data-key-id='{id}']\")"
    ))
    .await?;
    let gone = app
        .api(Method::GET, &format!("/keys/{id}"), &app.admin.token, None)
        .await;
    assert_eq!(gone.status, 404);

    page.assert_every_control_named("a user's page").await?;
    page.viewport(375, 812).await?;
    if let Some(overflow) = page.overflow().await? {
        return Err(format!("at 375 px: {overflow}"));
    }
    page.screenshot("page-session-375", 375).await?;

    // Signed out (the cookie gone), the page asks for a key again.
    page.goto(&app.url("/logout")).await?;
    page.wait_for("body[data-state='signed-out']").await?;
    page.assert_clean_console().await
}
