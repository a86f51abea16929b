// The detail view of one key: every field, the last 30 days as a bar chart, its history, and
// the same actions as the row's menu.

import { api } from "./api.js";
import { barChart, forgetUsage, usage } from "./chart.js";
import { canDo, el, number, ownerName, state, statusLabel, statusOf, when } from "./model.js";

const $ = (id) => document.getElementById(id);

const ACTION_LABELS = {
  edit: "Edit",
  refresh: "Refresh expiry",
  regenerate: "Regenerate…",
  revoke: "Revoke…",
  delete: "Delete…",
};

/** The key the detail view shows, or null when it is closed. */
export function shownKey() {
  const dialog = $("kw-detail-dialog");
  return dialog.open ? dialog.dataset.keyId : null;
}

function field(list, term, value, name) {
  const dt = el("dt", "", term);
  const dd = el("dd");
  dd.dataset.field = name;
  if (value instanceof Node) dd.append(value);
  else dd.textContent = value;
  list.append(dt, dd);
}

function fields(key) {
  const list = $("kw-detail-fields");
  list.replaceChildren();
  const status = statusOf(key);
  field(list, "Status", el("span", `status status-${status}`, statusLabel(status)), "status");
  field(list, "Kind", key.kind === "service" ? "service key" : "personal key", "kind");
  if (key.kind !== "service") {
    const owner = ownerName(key);
    field(list, "Owner", owner === key.owner ? owner : `${owner} (${key.owner})`, "owner");
  }
  const scopes = el("span");
  for (const scope of key.scopes) scopes.append(el("span", "scope-tag", scope));
  field(list, "Scopes", scopes, "scopes");
  field(list, "Key", el("code", "", key.hint), "hint");
  field(list, "ID", el("code", "", key.id), "id");
  field(list, "Created", when(key.created_at, "—"), "created_at");
  field(list, "Expires", when(key.expires_at, "never"), "expires_at");
  field(list, "Last used", when(key.last_used_at, "never"), "last_used_at");
  field(list, "Last used from", key.last_used_ip || "—", "last_used_ip");
  field(list, "Uses", number(key.usage_count), "usage_count");
  field(list, "Allowed IP addresses", key.allowed_ips && key.allowed_ips.length ? key.allowed_ips.join(", ") : "any", "allowed_ips");
  field(list, "Rate limit", key.rate_limit ? `${number(key.rate_limit)} requests per minute` : "unlimited", "rate_limit");
  if (!key.active && key.disabled_by) field(list, "Disabled by", key.disabled_by, "disabled_by");
  if (key.revoked_at) field(list, "Revoked", when(key.revoked_at, "—"), "revoked_at");
  if (key.metadata !== null && key.metadata !== undefined && Object.keys(key.metadata).length > 0) {
    field(list, "Metadata", el("code", "metadata", JSON.stringify(key.metadata)), "metadata");
  }
}

function actions(key) {
  const bar = $("kw-detail-actions");
  bar.replaceChildren();
  for (const action of ["edit", "toggle", "refresh", "regenerate", "revoke", "delete"]) {
    if (!canDo(action, key)) continue;
    const label = action === "toggle" ? (key.active ? "Disable" : "Enable") : ACTION_LABELS[action];
    const button = el("button", action === "revoke" || action === "delete" ? "danger" : "", label);
    button.type = "button";
    button.dataset.action = action;
    button.dataset.keyId = key.id;
    bar.append(button);
  }
}

async function chart(key) {
  const box = $("kw-detail-chart");
  box.replaceChildren(el("p", "muted", "Loading…"));
  box.dataset.state = "loading";
  forgetUsage(key.id);
  const days = await usage(key.id);
  if (shownKey() !== key.id) return;
  // Drawn at the width it is shown, so its labels stay readable on a phone.
  const width = Math.round(Math.min(600, Math.max(260, box.clientWidth - 18)));
  box.replaceChildren(days ? barChart(days, width) : el("p", "muted", "Daily use is not recorded for this key."));
  box.dataset.state = days ? "loaded" : "unavailable";
}

/** Who acted, as people read it: a user's display name, "key …abcd", the command line. */
function describeActor(actor) {
  if (!actor) return "";
  const [kind, id] = actor.includes(":") ? [actor.slice(0, actor.indexOf(":")), actor.slice(actor.indexOf(":") + 1)] : [actor, ""];
  if (kind === "user") return state.users.has(id) ? state.users.get(id).name : id;
  if (kind === "key") {
    const key = state.keys.get(id);
    return key ? `key “${key.name}”` : `key ${id.slice(-8)}`;
  }
  if (kind === "cli") return "the command line";
  if (kind === "system") return "the application";
  return actor;
}

/** What an event changed, in a few words. */
function describeDetail(event) {
  const detail = event.detail || {};
  if (Array.isArray(detail.fields) && detail.fields.length > 0) return `changed ${detail.fields.join(", ").replaceAll("_", " ")}`;
  if (event.type === "leaked") return `${detail.action || "revoked"}: token found${detail.url ? ` at ${detail.url}` : ""} (${detail.source || "report"})`;
  if (detail.expires_at && (event.type === "expiring_soon" || event.type === "expired")) return `expiry ${when(detail.expires_at, "")}`;
  if (event.type === "regenerated" && detail.previous_valid_until) return `old token works until ${when(detail.previous_valid_until, "")}`;
  return "";
}

async function history(key) {
  const box = $("kw-detail-history");
  box.replaceChildren(el("p", "muted", "Loading…"));
  box.dataset.state = "loading";
  let events = null;
  try {
    const body = await api("GET", `/events?key=${encodeURIComponent(key.id)}`);
    events = Array.isArray(body && body.events) ? body.events : [];
  } catch (err) {
    // A server without the events route (404) has nothing to show.
    events = err.status === 404 ? [] : null;
    if (events === null) {
      if (shownKey() !== key.id) return;
      const why = err.status === 403 ? "You may not read this key's history." : `The history could not be loaded: ${err.message}`;
      box.replaceChildren(el("p", "muted", why));
      box.dataset.state = "error";
      return;
    }
  }
  if (shownKey() !== key.id) return;
  if (events.length === 0) {
    box.replaceChildren(el("p", "muted", "No events recorded yet."));
    box.dataset.state = "empty";
    return;
  }
  const list = el("ol", "events");
  for (const event of events) {
    const item = el("li");
    item.append(el("time", "", when(event.at, "")), " ", el("strong", "", String(event.type).replaceAll("_", " ")));
    const who = describeActor(event.actor);
    if (who) item.append(` by ${who}`);
    if (event.client_ip) item.append(` from ${event.client_ip}`);
    const what = describeDetail(event);
    if (what) item.append(" — ", el("span", "event-detail", what));
    list.append(item);
  }
  box.replaceChildren(list);
  box.dataset.state = "loaded";
}

/** Opens (or redraws) the detail view of `key`. */
export function openDetail(key) {
  const dialog = $("kw-detail-dialog");
  const fresh = !dialog.open || dialog.dataset.keyId !== key.id;
  dialog.dataset.keyId = key.id;
  $("kw-detail-title").textContent = key.name;
  $("kw-detail-error").hidden = true;
  const focused = document.activeElement;
  const again = focused && $("kw-detail-actions").contains(focused) ? focused.dataset.action : null;
  fields(key);
  actions(key);
  if (again) {
    const same = $("kw-detail-actions").querySelector(`[data-action="${again}"]`);
    (same || $("kw-detail-close")).focus();
  }
  if (fresh) {
    if (!dialog.open) dialog.showModal();
    $("kw-detail-close").focus();
    chart(key);
    history(key);
  }
}

/** Redraws the detail view after `key` changed, if it shows it. */
export function refreshDetail(key, { reloadHistory } = {}) {
  if (shownKey() !== key.id) return;
  openDetail(key);
  if (reloadHistory) history(key);
}

/** Closes the detail view (after its key was deleted). */
export function closeDetail() {
  const dialog = $("kw-detail-dialog");
  if (dialog.open) dialog.close();
}

/** Wires the close button. */
export function wireDetail(onAction) {
  $("kw-detail-close").addEventListener("click", closeDetail);
  $("kw-detail-actions").addEventListener("click", onAction);
  $("kw-detail-dialog").addEventListener("close", () => {
    const id = $("kw-detail-dialog").dataset.keyId;
    delete $("kw-detail-dialog").dataset.keyId;
    // The row that opened the view may have been redrawn meanwhile: give its successor the
    // focus rather than leaving it nowhere.
    const active = document.activeElement;
    const lost = !active || active === document.body || $("kw-detail-dialog").contains(active);
    const row = id && document.querySelector(`#kw-keys-body tr[data-key-id="${CSS.escape(id)}"]`);
    if (lost && row) row.querySelector("button.link").focus();
  });
}
