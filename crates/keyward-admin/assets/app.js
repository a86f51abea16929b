// The keyward management page: plain JavaScript modules, no dependencies, no requests to
// anything but the application that serves it.

import { actingKey, api, keyPath, useKey } from "./api.js";
import { forgetUsage } from "./chart.js";
import { closeDetail, openDetail, refreshDetail, shownKey, wireDetail } from "./detail.js";
import { confirmAction, openCreate, openEdit, showError, showToken, wireDialogs } from "./dialogs.js";
import { ownerName, state, when } from "./model.js";
import { applyFilters, fillOwnerFilter, removeOne, renderAll, renderOne, rowOf, wireMenus } from "./table.js";

const $ = (id) => document.getElementById(id);

function announce(text) {
  $("kw-announce").textContent = text;
}

// ---- who is acting ------------------------------------------------------------------------

/** Says which key the page acts with, naming its owner once the users are known. */
function describeSelf(me) {
  const who = me.key.kind === "service" ? "a service key" : `${ownerName(me.key)}'s key`;
  $("kw-whoami").textContent = `Acting with “${me.key.name}” (${who}, ${me.key.hint}).`;
}

/** The pasted key's own view of itself, or null when a session acts. */
async function whoami() {
  const line = $("kw-whoami");
  $("kw-forget-key").hidden = !actingKey();
  if (!actingKey()) {
    line.textContent = "";
    return null;
  }
  try {
    const me = await api("GET", "/self");
    describeSelf(me);
    return me;
  } catch (err) {
    line.textContent = err.status === 401 ? "That key is not accepted." : err.message;
    return null;
  }
}

/**
 * Learns whether the caller is an administrator and who the users are: `GET /users` answers
 * administrators only. A key also says so through its effective scopes.
 */
async function learnRole(me) {
  state.users.clear();
  state.usersListed = false;
  let admin = Boolean(me && me.effective_scopes.some((s) => s === "*" || s === "keys:admin"));
  try {
    const body = await api("GET", "/users");
    for (const user of (body && body.users) || []) state.users.set(user.id, user);
    state.usersListed = true;
    admin = true;
  } catch (err) {
    // 403: not an administrator. 404 from the route: an administrator of an application that
    // does not list its users; 404 "no such route": a server without the route.
    if (err.status === 404 && !err.routeMissing) admin = true;
  }
  state.admin = admin;
  document.body.classList.toggle("admin", admin);
  $("kw-keys-caption").textContent = admin ? "Every owner's API keys, newest first" : "Your API keys, newest first";
  fillOwnerFilter();
  if (me) describeSelf(me);
}

// ---- the list -----------------------------------------------------------------------------

async function loadKeys(append) {
  showError("kw-error", "");
  const params = new URLSearchParams();
  if ($("kw-show-revoked").checked) params.set("include_revoked", "true");
  const owner = $("kw-filter-owner").value;
  if (state.admin && owner && owner !== "kind:service") params.set("owner", owner);
  if (append && state.cursor) params.set("cursor", state.cursor);
  const query = params.toString();
  try {
    const page = await api("GET", `/keys${query ? `?${query}` : ""}`);
    if (!append) {
      state.keys.clear();
      forgetUsage();
    }
    for (const key of page.keys) state.keys.set(key.id, key);
    state.cursor = page.next_cursor;
    document.body.dataset.state = "ready";
    renderAll();
    $("kw-load-more").hidden = !page.next_cursor;
  } catch (err) {
    document.body.dataset.state = err.status === 401 ? "signed-out" : "error";
    state.keys.clear();
    renderAll();
    $("kw-load-more").hidden = true;
    showError(
      "kw-error",
      err.status === 401 ? "Sign in to the application, or paste an API key with the keys:read scope above." : err,
    );
  }
}

async function start() {
  const me = await whoami();
  await learnRole(me);
  await loadKeys(false);
}

// ---- actions ------------------------------------------------------------------------------

/** Shows a changed key in its row and the detail view, keeping the keyboard focus near it. */
function changed(key, message) {
  state.keys.set(key.id, key);
  const old = rowOf(key.id);
  const active = document.activeElement;
  const lost = !active || active === document.body || Boolean(old && old.contains(active));
  const tr = renderOne(key);
  refreshDetail(key, { reloadHistory: true });
  if (lost && !shownKey()) tr.querySelector(".menu-button").focus();
  announce(message);
}

function removed(key) {
  const tr = rowOf(key.id);
  const next = tr && (tr.nextElementSibling || tr.previousElementSibling);
  state.keys.delete(key.id);
  removeOne(key.id);
  closeDetail();
  (next ? next.querySelector(".menu-button") : $("kw-new-key")).focus();
  announce(`Key “${key.name}” deleted.`);
}

async function act(action, key) {
  const path = keyPath(key.id);
  switch (action) {
    case "details": {
      openDetail(key);
      // The list may be minutes old: show the key as it is now.
      const fresh = await api("GET", path);
      state.keys.set(fresh.id, fresh);
      renderOne(fresh);
      refreshDetail(fresh);
      break;
    }
    case "edit":
      await openEdit(key, (updated) => changed(updated, `Key “${updated.name}” saved.`));
      break;
    case "toggle": {
      const updated = await api("PATCH", path, { active: !key.active });
      changed(updated, `Key “${key.name}” ${updated.active ? "enabled" : "disabled"}.`);
      break;
    }
    case "refresh": {
      const updated = await api("POST", `${path}/refresh`);
      changed(updated, `Key “${key.name}” now expires ${when(updated.expires_at, "never")}.`);
      break;
    }
    case "regenerate": {
      const answer = await confirmAction(
        "Regenerate key",
        `Give “${key.name}” a new secret? Scripts using the current one must be updated. Name, scopes and settings stay.`,
        "Regenerate",
        true,
      );
      if (!answer) break;
      const body = answer.grace > 0 ? { grace_seconds: answer.grace } : {};
      const issued = await api("POST", `${path}/regenerate`, body);
      changed(issued.key, `Key “${key.name}” regenerated.`);
      const until = answer.grace > 0 ? when(new Date(Date.now() + answer.grace * 1000).toISOString(), "") : "";
      showToken(
        issued.token,
        "Copy the regenerated key",
        until ? `The old key keeps working until ${until}.` : "The old key has stopped working.",
      );
      break;
    }
    case "revoke":
      if (
        await confirmAction(
          "Revoke key",
          `Revoke “${key.name}”? It stops working at once and can never be used again. It stays listed for the record.`,
          "Revoke key",
        )
      ) {
        changed(await api("POST", `${path}/revoke`), `Key “${key.name}” revoked.`);
      }
      break;
    case "delete":
      if (
        await confirmAction(
          "Delete key",
          `Delete “${key.name}” permanently? Anything using it loses access at once, and it disappears from this list.`,
          "Delete key",
        )
      ) {
        await api("DELETE", path);
        removed(key);
      }
      break;
    default:
      break;
  }
}

async function onAction(event) {
  const target = event.target.closest("button[data-action]");
  if (!target) return;
  const key = state.keys.get(target.dataset.keyId);
  if (!key) return;
  const menu = target.closest(".menu");
  if (menu && menu.matches(":popover-open")) menu.hidePopover();
  const inDetail = Boolean(target.closest("#kw-detail-dialog"));
  showError(inDetail ? "kw-detail-error" : "kw-error", "");
  try {
    await act(target.dataset.action, key);
  } catch (err) {
    if (err.status === 404) {
      // Gone meanwhile (deleted elsewhere): drop it from the list.
      removed(key);
    }
    showError(inDetail && shownKey() ? "kw-detail-error" : "kw-error", err);
  }
}

async function created(issued) {
  state.keys = new Map([[issued.key.id, issued.key], ...state.keys]);
  renderOne(issued.key);
  announce(`Key “${issued.key.name}” created.`);
  showToken(issued.token, "Copy your new key");
}

// ---- wiring -------------------------------------------------------------------------------

$("kw-credential-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("kw-api-key");
  useKey(input.value.trim());
  input.value = "";
  await start();
});
$("kw-forget-key").addEventListener("click", async () => {
  useKey("");
  await start();
  $("kw-api-key").focus();
});
$("kw-new-key").addEventListener("click", () => openCreate(created));
$("kw-search").addEventListener("input", applyFilters);
$("kw-filter-status").addEventListener("change", () => {
  if ($("kw-filter-status").value === "revoked" && !$("kw-show-revoked").checked) {
    $("kw-show-revoked").checked = true;
    loadKeys(false);
  } else {
    applyFilters();
  }
});
$("kw-filter-owner").addEventListener("change", () => loadKeys(false));
$("kw-show-revoked").addEventListener("change", () => loadKeys(false));
$("kw-load-more").addEventListener("click", () => loadKeys(true));
$("kw-keys-body").addEventListener("click", onAction);
wireMenus($("kw-keys-body"));
wireDialogs();
wireDetail(onAction);

start();
