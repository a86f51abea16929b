// The key table: one row per key (cards on narrow screens), each with a menu of actions, and
// the filters (owner, status, name) over it.

import { lazySparkline } from "./chart.js";
import { canDo, dateOf, el, fromNow, number, ownerName, state, statusLabel, statusOf, when } from "./model.js";

const $ = (id) => document.getElementById(id);

/** The actions of a row's menu, in order, with what people read. */
const ACTIONS = [
  ["details", "Details"],
  ["edit", "Edit"],
  ["toggle", null],
  ["refresh", "Refresh expiry"],
  ["regenerate", "Regenerate…"],
  ["revoke", "Revoke…"],
  ["delete", "Delete…"],
];

/** A cell: its label (shown on narrow screens) and one wrapper holding `content`. */
function cell(column, label, className, ...content) {
  const td = el("td", className);
  td.dataset.col = column;
  td.dataset.label = label;
  const value = el("div", "value");
  value.append(...content);
  td.append(value);
  return td;
}

/** A cell with the date of `value`; the exact time is its tooltip. */
function dated(column, label, value, none) {
  const td = cell(column, label, "", dateOf(value, none));
  if (value) td.title = when(value, none);
  return td;
}

function menu(key) {
  const wrap = el("div", "menu-wrap");
  const menuId = `kw-menu-${key.id}`;
  const opener = el("button", "menu-button", "Actions");
  opener.type = "button";
  opener.dataset.menuFor = key.id;
  opener.setAttribute("popovertarget", menuId);
  opener.setAttribute("aria-haspopup", "menu");
  opener.setAttribute("aria-expanded", "false");
  opener.setAttribute("aria-controls", menuId);
  opener.setAttribute("aria-label", `Actions for ${key.name}`);
  const list = el("div", "menu");
  list.id = menuId;
  list.setAttribute("popover", "auto");
  list.setAttribute("role", "menu");
  list.setAttribute("aria-label", `Actions for ${key.name}`);
  for (const [action, text] of ACTIONS) {
    if (!canDo(action, key)) continue;
    const label = action === "toggle" ? (key.active ? "Disable" : "Enable") : text;
    const item = el("button", action === "revoke" || action === "delete" ? "danger" : "", label);
    item.type = "button";
    item.setAttribute("role", "menuitem");
    item.tabIndex = -1;
    item.dataset.action = action;
    item.dataset.keyId = key.id;
    list.append(item);
  }
  wrap.append(opener, list);
  return wrap;
}

/** The row of `key`. */
export function row(key) {
  const status = statusOf(key);
  const tr = el("tr", status === "revoked" ? "revoked" : "");
  tr.dataset.keyId = key.id;
  tr.dataset.name = key.name;
  tr.dataset.status = status;
  tr.dataset.owner = key.owner || "";
  tr.dataset.kind = key.kind;

  const open = el("button", "link", key.name);
  open.type = "button";
  open.dataset.action = "details";
  open.dataset.keyId = key.id;
  open.setAttribute("aria-label", `${key.name}: details`);
  const badge = key.kind === "service" ? [" ", el("span", "badge", "service")] : [];
  tr.append(cell("name", "Name", "", open, ...badge));

  const owner = cell("owner", "Owner", "admin-only", ownerName(key));
  if (key.owner && state.users.has(key.owner)) owner.title = key.owner;
  tr.append(owner);

  tr.append(cell("scopes", "Scopes", "", ...key.scopes.map((scope) => el("span", "scope-tag", scope))));
  tr.append(cell("hint", "Key", "hint", key.hint));
  tr.append(dated("created", "Created", key.created_at, "—"));
  const expires = dated("expires", "Expires", key.expires_at, "never");
  if (key.expires_at && status !== "revoked") expires.firstChild.append(el("span", "sub", fromNow(key.expires_at)));
  tr.append(expires);
  const used = dated("last-used", "Last used", key.last_used_at, "never");
  if (key.last_used_ip) used.firstChild.append(el("span", "sub", `from ${key.last_used_ip}`));
  tr.append(used);
  tr.append(cell("uses", "Uses", "num", number(key.usage_count)));

  const spark = cell("usage", "Last 30 days", "usage", el("span", "muted", "…"));
  lazySparkline(spark, key.id);
  tr.append(spark);

  tr.append(cell("status", "Status", "", el("span", `status status-${status}`, statusLabel(status))));
  tr.append(cell("actions", "Actions", "row-actions", menu(key)));
  return tr;
}

/** The rows of every loaded key, in their order, replacing the table's. */
export function renderAll() {
  const body = $("kw-keys-body");
  body.replaceChildren(...[...state.keys.values()].map(row));
  applyFilters();
}

/** Replaces the row of `key` (or adds it on top). */
export function renderOne(key) {
  const old = rowOf(key.id);
  const fresh = row(key);
  if (old) old.replaceWith(fresh);
  else $("kw-keys-body").prepend(fresh);
  applyFilters();
  return fresh;
}

/** Removes the row of `id`. */
export function removeOne(id) {
  const old = rowOf(id);
  if (old) old.remove();
  applyFilters();
}

/** The row of key `id`, if shown. */
export function rowOf(id) {
  return document.querySelector(`#kw-keys-body tr[data-key-id="${CSS.escape(id)}"]`);
}

/** Shows the rows that match the status filter, the name search and the service filter. */
export function applyFilters() {
  const status = $("kw-filter-status").value;
  const search = $("kw-search").value.trim().toLocaleLowerCase();
  const owner = $("kw-filter-owner").value;
  let shown = 0;
  const rows = $("kw-keys-body").rows;
  for (const tr of rows) {
    const visible =
      (status === "" || tr.dataset.status === status) &&
      (search === "" || tr.dataset.name.toLocaleLowerCase().includes(search)) &&
      (owner !== "kind:service" || tr.dataset.kind === "service");
    tr.hidden = !visible;
    if (visible) shown += 1;
  }
  const total = rows.length;
  const count = $("kw-count");
  count.textContent =
    total === 0 ? "" : shown === total ? `${total} ${total === 1 ? "key" : "keys"}` : `Showing ${shown} of ${total} keys`;
  const empty = $("kw-empty");
  empty.hidden = shown > 0 || document.body.dataset.state !== "ready";
  empty.textContent = total === 0 ? "No keys yet. Create one to call the API from a script." : "No keys match the filters.";
}

/** Fills the owner filter with the application's users (admins). */
export function fillOwnerFilter() {
  const select = $("kw-filter-owner");
  const current = select.value;
  const options = [new Option("All owners", ""), new Option("Service keys", "kind:service")];
  for (const user of state.users.values()) options.push(new Option(user.name || user.id, user.id));
  select.replaceChildren(...options);
  select.value = [...select.options].some((o) => o.value === current) ? current : "";
}

/** Wires the keyboard behaviour of the row menus: focus on open, arrows, close on Tab. */
export function wireMenus(container) {
  container.addEventListener(
    "toggle",
    (event) => {
      const list = event.target;
      if (!(list instanceof HTMLElement) || !list.classList.contains("menu")) return;
      const opener = container.querySelector(`[popovertarget="${CSS.escape(list.id)}"]`);
      const open = event.newState === "open";
      if (opener) opener.setAttribute("aria-expanded", String(open));
      if (open) {
        const first = list.querySelector("[role=menuitem]");
        if (first) first.focus();
      }
    },
    true,
  );
  container.addEventListener("keydown", (event) => {
    const item = event.target.closest && event.target.closest("[role=menuitem]");
    if (!item) return;
    const items = [...item.parentElement.querySelectorAll("[role=menuitem]")];
    const at = items.indexOf(item);
    let next = null;
    if (event.key === "ArrowDown") next = items[(at + 1) % items.length];
    else if (event.key === "ArrowUp") next = items[(at - 1 + items.length) % items.length];
    else if (event.key === "Home") next = items[0];
    else if (event.key === "End") next = items[items.length - 1];
    else if (event.key === "Tab") item.parentElement.hidePopover();
    if (next) {
      event.preventDefault();
      next.focus();
    }
  });
}
