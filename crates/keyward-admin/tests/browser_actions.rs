//! The management page in a real browser (headless Chromium through chromedriver), as an
//! administrator acting with a pasted key: every change a row's menu offers (edit, disable
//! with the keyboard only and enable, refresh, regenerate with a grace period, revoke,
//! delete), each checked through the API; filters and search; the usage sparkline; the
//! detail view.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` it says it skipped and passes,
//! unless `CI` is set: then it fails.
#![cfg(feature = "ui")]

#[path = "common/browser.rs"]
mod browser;
#[path = "common/browser_app.rs"]
mod browser_app;

use browser::{Page, guarded, row, scope, sign_in, take_token, with_browser};
use browser_app::{BrowserApp, Minted, Planted, plant_keys, time};
use chrono::Utc;
use fantoccini::key::Key;
use http::Method;
use keyward::{Expiry, NewKey};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_changes_keys_from_the_page() {
    with_browser(|page, app| async move {
        let result = guarded(walk(&page, &app)).await;
        (page, app, result)
    })
    .await;
}

/// With 50 keys the page asks for the usage of the rows in view only, at most four at a
/// time, and for the others as they scroll into view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_keys_load_their_usage_as_they_come_into_view() {
    with_browser(|page, app| async move {
        let result = guarded(fifty_keys(&page, &app)).await;
        (page, app, result)
    })
    .await;
}

async fn fifty_keys(page: &Page, app: &BrowserApp) -> Result<(), String> {
    for n in 0..49 {
        app.plant(
            NewKey::personal(format!("Script {n:02}"), "u-bob")
                .scopes(["books:read"])
                .expiry(Expiry::InDays(30)),
            |_| {},
        )
        .await;
    }
    sign_in(page, app).await?;
    page.wait_until("document.querySelectorAll('#kw-keys-body tr').length === 50")
        .await?;
    page.wait_until("document.querySelectorAll(\"td[data-usage='loaded']\").length > 0")
        .await?;
    page.idle().await?;
    let asked = page
        .js(
            "return performance.getEntriesByType('resource').filter((e) => e.name.includes('/usage')).length;",
            vec![],
        )
        .await?;
    let asked = asked.as_u64().unwrap_or(0);
    assert!(
        (1..30).contains(&asked),
        "{asked} usage requests for the rows in view"
    );
    // Count the requests in flight from now on, then scroll through the list.
    page.js(
        "window.kwInFlight = 0; window.kwMostInFlight = 0;
         const fetchOriginal = window.fetch.bind(window);
         window.fetch = async (url, init) => {
           const usage = String(url).includes('/usage');
           if (usage) { window.kwInFlight += 1; window.kwMostInFlight = Math.max(window.kwMostInFlight, window.kwInFlight); }
           try { return await fetchOriginal(url, init); } finally { if (usage) window.kwInFlight -= 1; }
         };",
        vec![],
    )
    .await?;
    page.js(
        "for (let i = 0; i < 20; i += 1) {
           window.scrollBy(0, 400);
           await new Promise((frame) => requestAnimationFrame(frame));
         }",
        vec![],
    )
    .await?;
    page.wait_until("document.querySelectorAll(\"td[data-usage='loaded']\").length === 50")
        .await?;
    let most = page.js("return window.kwMostInFlight;", vec![]).await?;
    assert!(
        (1..=4).contains(&most.as_u64().unwrap_or(0)),
        "at most four usage requests at once: {most}"
    );
    page.assert_clean_console().await
}

/// Besides the planted keys: the administrator's own deploy key and a service key.
struct Created {
    deploy: Minted,
}

async fn walk(page: &Page, app: &BrowserApp) -> Result<(), String> {
    let planted = plant_keys(app).await;
    app.plant(
        NewKey::service("Webhook relay")
            .scopes(["reviews:read"])
            .expiry(Expiry::Never),
        |_| {},
    )
    .await;
    let deploy = app
        .plant(
            NewKey::personal("CI deploy", "u-admin")
                .scopes(["books:write", "reviews:read"])
                .expiry(Expiry::InDays(90)),
            |_| {},
        )
        .await;
    let created = Created { deploy };
    sign_in(page, app).await?;
    edit(page, app, &created.deploy).await?;
    enable_and_disable(page, app, &created.deploy).await?;
    refresh(page, app, &planted.importer).await?;
    regenerate(page, app, &planted.backup).await?;
    revoke_and_delete(page, app, &created.deploy, &planted.sync).await?;
    filter_and_search(page, &planted, &created).await?;
    sparkline(page, app, &planted.backup).await?;
    detail(page, &planted.backup).await?;
    page.assert_every_control_named("the page at the end")
        .await?;
    page.assert_clean_console().await
}

/// Edits name, scopes, networks and rate limit; then removes the networks and the limit.
async fn edit(page: &Page, app: &BrowserApp, key: &Minted) -> Result<(), String> {
    page.row_action(&key.id, "edit").await?;
    page.wait_for("#kw-edit-dialog[open] #kw-edit-scope-list[data-loaded='true']")
        .await?;
    page.assert_every_control_named("the edit dialog").await?;
    assert_eq!(page.value("#kw-edit-name").await?, "CI deploy");
    page.fill("#kw-edit-name", "CI deploy (prod)").await?;
    scope(page, "edit", "books:write").await?;
    scope(page, "edit", "books:read").await?;
    page.fill("#kw-edit-ips", "192.0.2.0/24\n127.0.0.1").await?;
    page.fill("#kw-edit-rate", "30").await?;
    page.click("#kw-edit-submit").await?;
    page.wait_until("!document.getElementById('kw-edit-dialog').open")
        .await?;
    page.wait_until(&format!(
        "document.querySelector(\"{} td[data-col='name']\").textContent.includes('(prod)')",
        row(&key.id)
    ))
    .await?;
    let stored = app.key(&key.id).await;
    assert_eq!(stored["name"], "CI deploy (prod)");
    assert_eq!(stored["scopes"], json!(["books:read", "reviews:read"]));
    assert_eq!(
        stored["allowed_ips"],
        json!(["192.0.2.0/24", "127.0.0.1/32"])
    );
    assert_eq!(stored["rate_limit"], 30);

    page.row_action(&key.id, "edit").await?;
    page.wait_for("#kw-edit-dialog[open] #kw-edit-scope-list[data-loaded='true']")
        .await?;
    page.fill("#kw-edit-ips", "").await?;
    page.js(
        "document.getElementById('kw-edit-rate').value = '';",
        vec![],
    )
    .await?;
    page.click("#kw-edit-submit").await?;
    page.wait_until("!document.getElementById('kw-edit-dialog').open")
        .await?;
    page.idle().await?;
    let stored = app.key(&key.id).await;
    assert_eq!(stored["allowed_ips"], json!([]));
    assert_eq!(stored["rate_limit"], Value::Null);
    Ok(())
}

/// Disables a key with the keyboard only (menu button, arrows, Enter), enables it again.
async fn enable_and_disable(page: &Page, app: &BrowserApp, key: &Minted) -> Result<(), String> {
    page.js(
        "document.querySelector(arguments[0]).focus();",
        vec![json!(format!("button[data-menu-for='{}']", key.id))],
    )
    .await?;
    page.keys(&Key::Enter).await?;
    page.wait_for(&format!("#kw-menu-{}:popover-open", key.id))
        .await?;
    // The first item takes the focus.
    page.wait_until("document.activeElement?.dataset.action === 'details'")
        .await?;
    for _ in 0..8 {
        if page.focused().await? == "button[toggle]" {
            break;
        }
        page.keys(&Key::Down).await?;
    }
    assert_eq!(page.focused().await?, "button[toggle]");
    page.screenshot("page-menu-1400", 1400).await?;
    page.keys(&Key::Enter).await?;
    page.wait_for(&format!("{}[data-status='disabled']", row(&key.id)))
        .await?;
    assert_eq!(app.key(&key.id).await["active"], false);
    assert_eq!(
        app.books(&key.token).await,
        401,
        "a disabled key is refused"
    );
    assert_eq!(
        page.focused().await?,
        "button.menu-button",
        "the focus stays on the row"
    );

    page.row_action(&key.id, "toggle").await?;
    page.wait_for(&format!("{}[data-status='active']", row(&key.id)))
        .await?;
    assert_eq!(app.key(&key.id).await["active"], true);
    assert_eq!(app.books(&key.token).await, 200);
    Ok(())
}

/// Refreshing the key that expires in 3 days gives it its 90-day lifetime from now.
async fn refresh(page: &Page, app: &BrowserApp, key: &Minted) -> Result<(), String> {
    page.row_action(&key.id, "refresh").await?;
    page.wait_for(&format!("{}[data-status='active']", row(&key.id)))
        .await?;
    let hours = (time(&app.key(&key.id).await["expires_at"]) - Utc::now()).num_hours();
    assert!(
        (90 * 24 - 2..=90 * 24).contains(&hours),
        "expires in {hours} hours"
    );
    Ok(())
}

/// Regenerates with an hour of grace: both tokens work, the hint is the new one's.
async fn regenerate(page: &Page, app: &BrowserApp, key: &Minted) -> Result<(), String> {
    page.row_action(&key.id, "regenerate").await?;
    page.wait_for("#kw-confirm-dialog[open] #kw-grace-row:not([hidden])")
        .await?;
    page.assert_every_control_named("the confirmation").await?;
    page.select("#kw-grace", "3600").await?;
    page.click("#kw-confirm-ok").await?;
    page.wait_for("#kw-token-dialog[open]").await?;
    let note = page.text("#kw-token-note").await?;
    assert!(note.contains("keeps working until"), "{note}");
    let token = take_token(page).await?;
    assert_ne!(token, key.token);
    assert_eq!(app.books(&token).await, 200, "the new token works");
    assert_eq!(app.books(&key.token).await, 200, "the old one, for an hour");
    let stored = app.key(&key.id).await;
    assert!(stored["hint"].as_str().unwrap().ends_with(&token[48..]));
    page.wait_until(&format!(
        "document.querySelector(\"{} td[data-col='hint']\").textContent.endsWith('{}')",
        row(&key.id),
        &token[48..]
    ))
    .await
}

/// Revoke and delete both ask first; cancelling changes nothing.
async fn revoke_and_delete(
    page: &Page,
    app: &BrowserApp,
    deploy: &Minted,
    sync: &Minted,
) -> Result<(), String> {
    page.row_action(&deploy.id, "revoke").await?;
    page.wait_for("#kw-confirm-dialog[open]").await?;
    page.click("#kw-confirm-cancel").await?;
    page.idle().await?;
    assert_eq!(app.key(&deploy.id).await["revoked_at"], Value::Null);

    page.row_action(&deploy.id, "revoke").await?;
    page.confirm().await?;
    page.wait_for(&format!("{}[data-status='revoked']", row(&deploy.id)))
        .await?;
    assert!(app.key(&deploy.id).await["revoked_at"].is_string());
    assert_eq!(app.books(&deploy.token).await, 401);

    page.row_action(&sync.id, "delete").await?;
    page.confirm().await?;
    page.wait_until(&format!("!document.querySelector(\"{}\")", row(&sync.id)))
        .await?;
    let reply = app
        .api(
            Method::GET,
            &format!("/keys/{}", sync.id),
            &app.admin.token,
            None,
        )
        .await;
    assert_eq!(reply.status, 404);
    Ok(())
}

/// The ids of the rows shown now.
async fn shown(page: &Page) -> Result<Vec<String>, String> {
    let ids = page
        .js(
            "return [...document.querySelectorAll('#kw-keys-body tr:not([hidden])')].map((r) => r.dataset.keyId);",
            vec![],
        )
        .await?;
    Ok(ids
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect())
}

async fn filter_and_search(
    page: &Page,
    planted: &Planted,
    created: &Created,
) -> Result<(), String> {
    // By status, over the loaded keys.
    page.select("#kw-filter-status", "revoked").await?;
    let mut revoked = shown(page).await?;
    revoked.sort();
    let mut expected = vec![planted.legacy.id.clone(), created.deploy.id.clone()];
    expected.sort();
    assert_eq!(revoked, expected);
    page.select("#kw-filter-status", "").await?;

    // By owner: the API's `?owner=`.
    page.select("#kw-filter-owner", "u-bob").await?;
    page.idle().await?;
    page.wait_until("[...document.querySelectorAll('#kw-keys-body tr')].every((r) => r.dataset.owner === 'u-bob')")
        .await?;
    assert_eq!(shown(page).await?, [planted.importer.id.as_str()]);
    page.select("#kw-filter-owner", "kind:service").await?;
    page.idle().await?;
    let services = page
        .js(
            "return [...document.querySelectorAll('#kw-keys-body tr:not([hidden])')].map((r) => r.dataset.kind);",
            vec![],
        )
        .await?;
    assert_eq!(services, json!(["service"]));
    page.select("#kw-filter-owner", "").await?;
    page.idle().await?;

    // By name, as one types.
    page.fill("#kw-search", "NIGHT").await?;
    assert_eq!(shown(page).await?, [planted.backup.id.as_str()]);
    assert_eq!(page.text("#kw-count").await?, "Showing 1 of 7 keys");
    page.fill("#kw-search", "no such key").await?;
    assert!(shown(page).await?.is_empty());
    assert_eq!(page.text("#kw-empty").await?, "No keys match the filters.");
    page.fill("#kw-search", "").await?;
    page.js(
        "document.getElementById('kw-search').dispatchEvent(new Event('input'));",
        vec![],
    )
    .await?;
    assert_eq!(shown(page).await?.len(), 7);

    // Without revoked keys: the API's `include_revoked`.
    page.click("#kw-show-revoked").await?;
    page.idle().await?;
    assert_eq!(shown(page).await?.len(), 5);
    page.click("#kw-show-revoked").await?;
    page.idle().await?;
    page.wait_for(&row(&planted.legacy.id)).await
}

/// The row's sparkline is drawn from `GET /keys/{id}/usage`.
async fn sparkline(page: &Page, app: &BrowserApp, key: &Minted) -> Result<(), String> {
    let spark = format!(
        "{} td[data-col='usage'][data-usage='loaded'] svg.sparkline",
        row(&key.id)
    );
    page.wait_for(&spark).await?;
    let usage = app
        .api(
            Method::GET,
            &format!("/keys/{}/usage?days=30", key.id),
            &app.admin.token,
            None,
        )
        .await;
    assert_eq!(usage.status, 200, "{}", usage.text);
    let days = usage.json["days"].as_array().unwrap();
    let total: u64 = days.iter().map(|d| d["count"].as_u64().unwrap()).sum();
    assert!(
        total >= 5,
        "three uses before, two after regenerating: {total}"
    );
    let drawn = page
        .find(&spark)
        .await?
        .attr("data-total")
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(drawn.as_deref(), Some(total.to_string().as_str()));
    let label = page
        .find(&spark)
        .await?
        .attr("aria-label")
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    assert!(
        label.contains(&format!("{total} uses in the last 30 days")),
        "{label}"
    );
    Ok(())
}

/// The detail view shows every field, the chart and the key's history; Escape closes it and
/// gives the focus back.
async fn detail(page: &Page, key: &Minted) -> Result<(), String> {
    page.click(&format!("{} button[data-action='details']", row(&key.id)))
        .await?;
    page.wait_for("#kw-detail-dialog[open]").await?;
    assert_eq!(page.text("#kw-detail-title").await?, "Nightly backup");
    assert_eq!(
        page.text("#kw-detail-fields dd[data-field='owner']")
            .await?,
        "Alice Liddell (u-alice)"
    );
    assert_eq!(
        page.text("#kw-detail-fields dd[data-field='id']").await?,
        key.id
    );
    assert_eq!(
        page.text("#kw-detail-fields dd[data-field='last_used_ip']")
            .await?,
        "127.0.0.1"
    );
    page.wait_for("#kw-detail-chart[data-state='loaded'] svg.usage-chart rect.bar")
        .await?;
    // The key's history: its creation and the regeneration made in this test, newest first,
    // each with who made it and from where.
    page.wait_for("#kw-detail-history[data-state='loaded'] ol.events li")
        .await?;
    let history = page.text("#kw-detail-history").await?;
    assert!(history.contains("created by the application"), "{history}");
    assert!(
        history.contains("regenerated by key “Admin console” from 127.0.0.1"),
        "{history}"
    );
    assert!(!history.contains(&key.token), "{history}");
    page.assert_every_control_named("the detail view").await?;
    page.screenshot("page-detail-1400", 1400).await?;
    page.keys(&Key::Escape).await?;
    page.wait_until("!document.getElementById('kw-detail-dialog').open")
        .await?;
    page.wait_until("document.activeElement?.matches('button.link[data-action=details]')")
        .await?;
    Ok(())
}
