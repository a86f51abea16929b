// The keyward management page. Plain JavaScript, no dependencies, no requests to anything but
// the application that serves it.
"use strict";

(() => {
  const base = document.body.dataset.apiBase || "";
  const storageKey = "keyward.apiKey";
  const $ = (id) => document.getElementById(id);

  const state = { cursor: null, scopes: null, pending: 0 };

  // ---- credentials -------------------------------------------------------------------

  function storedKey() {
    try {
      return sessionStorage.getItem(storageKey) || "";
    } catch (_) {
      return "";
    }
  }

  function storeKey(value) {
    try {
      if (value) sessionStorage.setItem(storageKey, value);
      else sessionStorage.removeItem(storageKey);
    } catch (_) {
      // Storage can be disabled; the key then lasts until the page is left.
    }
    memoryKey = value;
  }

  let memoryKey = storedKey();

  // ---- HTTP --------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super(describe(status, problem));
      this.status = status;
      this.problem = problem;
    }
  }

  function describe(status, problem) {
    if (!problem) return `The request failed (${status}).`;
    if (problem.error === "insufficient_scope" && problem.scope) {
      return `Not allowed: you lack the scope ${problem.scope}.`;
    }
    if (problem.error === "invalid_field" && problem.errors) {
      return problem.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
    }
    return problem.detail || problem.title || `The request failed (${status}).`;
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (memoryKey) headers.Authorization = `Bearer ${memoryKey}`;
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    busy(1);
    try {
      const response = await fetch(base + path, init);
      if (response.status === 204) return null;
      const type = response.headers.get("Content-Type") || "";
      const data = type.includes("json") ? await response.json() : null;
      if (!response.ok) throw new ApiError(response.status, data);
      return data;
    } finally {
      busy(-1);
    }
  }

  function busy(delta) {
    state.pending += delta;
    document.body.dataset.busy = state.pending > 0 ? "true" : "false";
  }

  // ---- messages ----------------------------------------------------------------------

  function showError(target, err) {
    const box = $(target);
    box.textContent = err instanceof Error ? err.message : String(err);
    box.hidden = false;
  }

  function clearError(target) {
    const box = $(target);
    box.textContent = "";
    box.hidden = true;
  }

  // ---- formatting --------------------------------------------------------------------

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function when(value, none) {
    if (!value) return none;
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? value : dateFormat.format(date);
  }

  function statusOf(key) {
    if (key.revoked_at) return "revoked";
    if (key.expires_at && new Date(key.expires_at).getTime() <= Date.now()) return "expired";
    if (!key.active) return "disabled";
    return "active";
  }

  function cell(text, column, className) {
    const td = document.createElement("td");
    td.dataset.col = column;
    if (className) td.className = className;
    if (text !== undefined) td.textContent = text;
    return td;
  }

  function button(label, action, key, className) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.dataset.action = action;
    b.dataset.keyId = key.id;
    b.setAttribute("aria-label", `${label} ${key.name}`);
    if (className) b.className = className;
    return b;
  }

  function row(key) {
    const status = statusOf(key);
    const tr = document.createElement("tr");
    tr.dataset.keyId = key.id;
    tr.dataset.name = key.name;
    tr.dataset.status = status;
    if (status === "revoked") tr.className = "revoked";

    const name = cell(undefined, "name");
    const strong = document.createElement("strong");
    strong.textContent = key.name;
    name.append(strong);
    if (key.kind === "service" || key.owner) {
      const who = document.createElement("div");
      who.className = "help";
      who.textContent = key.kind === "service" ? "service key" : `owner: ${key.owner}`;
      name.append(who);
    }
    tr.append(name);

    const scopes = cell(undefined, "scopes");
    for (const scope of key.scopes) {
      const tag = document.createElement("span");
      tag.className = "scope-tag";
      tag.textContent = scope;
      scopes.append(tag);
    }
    tr.append(scopes);

    tr.append(cell(key.hint, "hint", "hint"));
    tr.append(cell(when(key.created_at, "—"), "created"));
    tr.append(cell(when(key.expires_at, "never"), "expires"));
    tr.append(cell(when(key.last_used_at, "never"), "last-used"));
    tr.append(cell(String(key.usage_count), "uses", "num"));
    const statusCell = cell(status, "status", `status status-${status}`);
    tr.append(statusCell);

    const actions = cell(undefined, "actions", "row-actions");
    if (status !== "revoked") {
      actions.append(button(key.active ? "Disable" : "Enable", "toggle", key));
      actions.append(button("Regenerate", "regenerate", key));
      actions.append(button("Revoke", "revoke", key, "danger"));
    }
    actions.append(button("Delete", "delete", key, "danger"));
    tr.append(actions);
    return tr;
  }

  // ---- the table ---------------------------------------------------------------------

  const keysById = new Map();

  async function loadKeys(append) {
    clearError("kw-error");
    const params = new URLSearchParams();
    if ($("kw-show-revoked").checked) params.set("include_revoked", "true");
    if (append && state.cursor) params.set("cursor", state.cursor);
    const query = params.toString();
    try {
      const page = await api("GET", `/keys${query ? `?${query}` : ""}`);
      const body = $("kw-keys-body");
      if (!append) {
        body.replaceChildren();
        keysById.clear();
      }
      for (const key of page.keys) {
        keysById.set(key.id, key);
        body.append(row(key));
      }
      state.cursor = page.next_cursor;
      $("kw-load-more").hidden = !page.next_cursor;
      $("kw-empty").hidden = keysById.size > 0;
      document.body.dataset.state = "ready";
    } catch (err) {
      document.body.dataset.state = err.status === 401 ? "signed-out" : "error";
      if (err.status === 401) {
        $("kw-keys-body").replaceChildren();
        keysById.clear();
        showError("kw-error", "Sign in to the application, or paste an API key with the keys:read scope above.");
      } else {
        showError("kw-error", err);
      }
    }
  }

  function replaceRow(key) {
    keysById.set(key.id, key);
    const old = document.querySelector(`tr[data-key-id="${CSS.escape(key.id)}"]`);
    if (old) old.replaceWith(row(key));
  }

  function removeRow(id) {
    keysById.delete(id);
    const old = document.querySelector(`tr[data-key-id="${CSS.escape(id)}"]`);
    if (old) old.remove();
    $("kw-empty").hidden = keysById.size > 0;
  }

  // ---- who am I ----------------------------------------------------------------------

  async function whoami() {
    const line = $("kw-whoami");
    $("kw-forget-key").hidden = !memoryKey;
    if (!memoryKey) {
      line.textContent = "";
      return;
    }
    try {
      const me = await api("GET", "/self");
      const who = me.key.kind === "service" ? "a service key" : `${me.key.owner}'s key`;
      line.textContent = `Acting with “${me.key.name}” (${who}, ${me.key.hint}).`;
    } catch (err) {
      line.textContent = err.status === 401 ? "That key is not accepted." : err.message;
    }
  }

  // ---- create ------------------------------------------------------------------------

  async function loadScopes() {
    if (state.scopes) return state.scopes;
    const catalog = await api("GET", "/scopes");
    state.scopes = catalog.scopes;
    return state.scopes;
  }

  async function openCreate() {
    clearError("kw-create-error");
    $("kw-create-form").reset();
    const list = $("kw-create-scope-list");
    list.replaceChildren();
    $("kw-create-dialog").showModal();
    try {
      const scopes = await loadScopes();
      for (const scope of scopes) {
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.name = "scope";
        box.value = scope.name;
        box.dataset.scope = scope.name;
        const name = document.createElement("code");
        name.textContent = scope.name;
        const desc = document.createElement("span");
        desc.className = "desc";
        desc.textContent = scope.description;
        label.append(box, name, desc);
        list.append(label);
      }
      list.dataset.loaded = "true";
    } catch (err) {
      showError("kw-create-error", err);
    }
  }

  async function submitCreate(event) {
    event.preventDefault();
    clearError("kw-create-error");
    const scopes = [...document.querySelectorAll("#kw-create-scope-list input:checked")].map((b) => b.value);
    const expiry = $("kw-create-expiry").value;
    const body = {
      name: $("kw-create-name").value,
      scopes,
      expires_in_days: expiry === "never" ? null : Number(expiry),
    };
    const submit = $("kw-create-submit");
    submit.disabled = true;
    try {
      const created = await api("POST", "/keys", body);
      $("kw-create-dialog").close();
      showToken(created.token);
      await loadKeys(false);
    } catch (err) {
      showError("kw-create-error", err);
    } finally {
      submit.disabled = false;
    }
  }

  function showToken(token) {
    const input = $("kw-token");
    input.value = token;
    $("kw-copy-status").textContent = "";
    $("kw-token-dialog").showModal();
    input.focus();
    input.select();
  }

  async function copyToken() {
    const input = $("kw-token");
    let copied = false;
    try {
      await navigator.clipboard.writeText(input.value);
      copied = true;
    } catch (_) {
      input.select();
      copied = document.execCommand && document.execCommand("copy");
    }
    $("kw-copy-status").textContent = copied ? "Copied." : "Select the key and copy it.";
  }

  function closeToken() {
    $("kw-token").value = "";
    $("kw-token-dialog").close();
  }

  // ---- row actions -------------------------------------------------------------------

  function confirmAction(title, text, withGrace) {
    return new Promise((resolve) => {
      const dialog = $("kw-confirm-dialog");
      $("kw-confirm-title").textContent = title;
      $("kw-confirm-text").textContent = text;
      $("kw-grace-row").hidden = !withGrace;
      $("kw-grace").value = "0";
      const finish = (ok) => {
        $("kw-confirm-form").removeEventListener("submit", onSubmit);
        $("kw-confirm-cancel").removeEventListener("click", onCancel);
        dialog.removeEventListener("cancel", onCancel);
        if (dialog.open) dialog.close();
        resolve(ok ? { grace: Number($("kw-grace").value) } : null);
      };
      const onSubmit = (event) => {
        event.preventDefault();
        finish(true);
      };
      const onCancel = (event) => {
        event.preventDefault();
        finish(false);
      };
      $("kw-confirm-form").addEventListener("submit", onSubmit);
      $("kw-confirm-cancel").addEventListener("click", onCancel);
      dialog.addEventListener("cancel", onCancel);
      dialog.showModal();
    });
  }

  async function onAction(event) {
    const target = event.target.closest("button[data-action]");
    if (!target) return;
    const key = keysById.get(target.dataset.keyId);
    if (!key) return;
    const path = `/keys/${encodeURIComponent(key.id)}`;
    clearError("kw-error");
    try {
      switch (target.dataset.action) {
        case "toggle":
          replaceRow(await api("PATCH", path, { active: !key.active }));
          break;
        case "revoke":
          if (await confirmAction("Revoke key", `Revoke “${key.name}”? It stops working at once and cannot be used again.`)) {
            replaceRow(await api("POST", `${path}/revoke`));
          }
          break;
        case "regenerate": {
          const answer = await confirmAction("Regenerate key", `Give “${key.name}” a new secret? Scripts using the old one must be updated.`, true);
          if (answer) {
            const body = answer.grace > 0 ? { grace_seconds: answer.grace } : {};
            const issued = await api("POST", `${path}/regenerate`, body);
            replaceRow(issued.key);
            showToken(issued.token);
          }
          break;
        }
        case "delete":
          if (await confirmAction("Delete key", `Delete “${key.name}” permanently? It disappears from this list.`)) {
            await api("DELETE", path);
            removeRow(key.id);
          }
          break;
        default:
          break;
      }
    } catch (err) {
      showError("kw-error", err);
    }
  }

  // ---- wiring ------------------------------------------------------------------------

  $("kw-credential-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("kw-api-key");
    storeKey(input.value.trim());
    input.value = "";
    await whoami();
    await loadKeys(false);
  });
  $("kw-forget-key").addEventListener("click", async () => {
    storeKey("");
    await whoami();
    await loadKeys(false);
  });
  $("kw-new-key").addEventListener("click", openCreate);
  $("kw-create-form").addEventListener("submit", submitCreate);
  $("kw-create-cancel").addEventListener("click", () => $("kw-create-dialog").close());
  $("kw-copy-token").addEventListener("click", copyToken);
  $("kw-token-done").addEventListener("click", closeToken);
  $("kw-token-dialog").addEventListener("cancel", () => { $("kw-token").value = ""; });
  $("kw-show-revoked").addEventListener("change", () => loadKeys(false));
  $("kw-load-more").addEventListener("click", () => loadKeys(true));
  $("kw-keys-body").addEventListener("click", onAction);

  whoami().then(() => loadKeys(false));
})();
