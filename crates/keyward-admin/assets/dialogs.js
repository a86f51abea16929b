// The dialogs: create, edit, the one-time token, and confirmation of what cannot be undone.
// Each checks what it can before sending and shows the server's 422 next to the field it names.

import { ApiError, api, base, keyPath } from "./api.js";
import { day, el, ipProblem, lines, state } from "./model.js";

const $ = (id) => document.getElementById(id);
const DAY_MS = 24 * 60 * 60 * 1000;

// ---- messages next to fields -------------------------------------------------------------

/** Shows `message` in the error box `id`, or hides it for "". */
export function showError(id, message) {
  const box = $(id);
  box.textContent = message instanceof Error ? message.message : message || "";
  box.hidden = !box.textContent;
}

function clearFieldErrors(form) {
  for (const slot of form.querySelectorAll(".field-error")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

/**
 * Puts each `{field, message}` next to its field (the slot whose `data-error-for` names it)
 * and marks the control invalid. Returns the messages no field took.
 */
function showFieldErrors(form, errors) {
  const left = [];
  let first = null;
  for (const { field, message } of errors) {
    const name = String(field).replace(/\[\d+\]$/, "");
    const slot = [...form.querySelectorAll(".field-error")].find((s) =>
      s.dataset.errorFor.split(" ").includes(name),
    );
    if (!slot) {
      left.push(`${field}: ${message}`);
      continue;
    }
    slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
    slot.hidden = false;
    const control = slot.dataset.control ? $(slot.dataset.control) : slot.closest("fieldset");
    if (control) {
      control.setAttribute("aria-invalid", "true");
      first = first || control;
    }
  }
  if (first) (first.matches("fieldset") ? first.querySelector("input") || first : first).focus();
  return left;
}

/** Shows a failed request in `form`: 422 members by their fields, the rest in the box. */
function showFailure(form, boxId, err) {
  const fields = err instanceof ApiError ? err.fieldErrors : [];
  if (fields.length === 0) {
    showError(boxId, err);
    return;
  }
  const left = showFieldErrors(form, fields);
  showError(boxId, left.length > 0 ? left.join("; ") : "Some fields need attention.");
}

// ---- shared fields ----------------------------------------------------------------------

/** The catalog, loaded once. */
export async function catalog() {
  if (!state.catalog) state.catalog = (await api("GET", "/scopes")).scopes;
  return state.catalog;
}

/** One checkbox per catalog scope (and per held scope outside it), `selected` checked. */
function fillScopes(list, prefix, selected) {
  const held = new Set(selected);
  const entries = [...state.catalog];
  for (const name of held) {
    if (!entries.some((e) => e.name === name)) entries.push({ name, description: "a wildcard or a scope no longer in the catalog" });
  }
  list.replaceChildren(
    ...entries.map((scope, i) => {
      const label = el("label", "scope");
      label.htmlFor = `${prefix}-scope-${i}`;
      const box = el("input");
      box.type = "checkbox";
      box.id = `${prefix}-scope-${i}`;
      box.value = scope.name;
      box.dataset.scope = scope.name;
      box.checked = held.has(scope.name);
      const lacks = el("span", "lacks");
      lacks.hidden = true;
      label.append(box, el("code", "", scope.name), el("span", "desc", scope.description), lacks);
      return label;
    }),
  );
  list.dataset.loaded = "true";
}

function checkedScopes(list) {
  return [...list.querySelectorAll("input:checked")].map((box) => box.value);
}

/** Checks the name, scopes, IPs and rate limit of a form; returns the problems. */
function checkCommon(prefix) {
  const problems = [];
  const name = $(`${prefix}-name`).value.trim();
  if (!name) problems.push({ field: "name", message: "Give the key a name you will recognise." });
  if (checkedScopes($(`${prefix}-scope-list`)).length === 0) {
    problems.push({ field: "scopes", message: "Choose at least one scope." });
  }
  for (const line of lines($(`${prefix}-ips`).value)) {
    const problem = ipProblem(line);
    if (problem) problems.push({ field: "allowed_ips", message: `${problem}.` });
  }
  const rate = $(`${prefix}-rate`).value.trim();
  if (rate !== "" && !/^[1-9]\d{0,9}$/.test(rate)) {
    problems.push({ field: "rate_limit", message: "Enter a whole number of requests per minute above 0, or leave it empty." });
  } else if (rate !== "" && Number(rate) > 4294967295) {
    problems.push({ field: "rate_limit", message: "That limit is too large." });
  }
  if ($(`${prefix}-rate`).validity.badInput) {
    problems.push({ field: "rate_limit", message: "Enter a number." });
  }
  return problems;
}

async function submitting(button, work) {
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}

// ---- create -----------------------------------------------------------------------------

function expiryHelp() {
  const choice = $("kw-create-expiry").value;
  const help = $("kw-create-expiry-help");
  $("kw-create-date-row").hidden = choice !== "custom";
  if (choice === "never") {
    help.textContent = "A key that never expires works until it is revoked. Use it only when you must, with as few scopes as possible.";
  } else if (choice === "custom") {
    help.textContent = "Pick the last day the key works.";
  } else {
    help.textContent = `The key stops working on ${day(new Date(Date.now() + Number(choice) * DAY_MS))}. You can refresh it before then.`;
  }
}

function localDate(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** The end of the chosen day, local time, as RFC 3339; null when no valid date is chosen. */
function customExpiry() {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec($("kw-create-date").value);
  if (!match) return null;
  const end = new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]), 23, 59, 59);
  return Number.isNaN(end.getTime()) ? null : end;
}

/** Whether a user holding `held` may hold `scope` (wildcards included). */
function holds(held, scope) {
  const resource = scope.split(":")[0];
  return held.some((s) => s === "*" || s === scope || s === `${resource}:*`);
}

/** Disables the scopes the chosen owner lacks: a key never does more than its owner. */
function limitScopesToOwner() {
  const option = $("kw-create-owner").selectedOptions[0];
  const user = option && option.value ? state.users.get(option.value) : null;
  for (const box of $("kw-create-scope-list").querySelectorAll("input[type=checkbox]")) {
    const lacking = Boolean(user && Array.isArray(user.scopes) && !holds(user.scopes, box.value));
    box.disabled = lacking;
    if (lacking) box.checked = false;
    const note = box.parentElement.querySelector(".lacks");
    note.textContent = lacking ? `${user.name || user.id} does not hold this scope` : "";
    note.hidden = !lacking;
  }
}

function fillOwners() {
  const select = $("kw-create-owner");
  const options = [new Option("Me (a personal key)", "")];
  for (const user of state.users.values()) {
    options.push(new Option(user.name && user.name !== user.id ? `${user.name} (${user.id})` : user.id, user.id));
  }
  if (!state.usersListed) {
    // The application does not list its users: the owner is named by id.
    const other = new Option("Another user (enter their id)", "kind:other");
    other.dataset.kind = "other";
    options.push(other);
  }
  const service = new Option("Service key (no owner)", "kind:service");
  service.dataset.kind = "service";
  options.push(service);
  select.replaceChildren(...options);
  ownerChanged();
}

function ownerChanged() {
  const option = $("kw-create-owner").selectedOptions[0];
  const other = Boolean(option && option.dataset.kind === "other");
  $("kw-create-owner-id-row").hidden = !other;
  if (!other) $("kw-create-owner-id").value = "";
  limitScopesToOwner();
}

/** Opens the create dialog; `onCreated(issued)` gets the API's answer. */
export async function openCreate(onCreated) {
  const form = $("kw-create-form");
  form.reset();
  clearFieldErrors(form);
  showError("kw-create-error", "");
  const list = $("kw-create-scope-list");
  list.replaceChildren();
  delete list.dataset.loaded;
  const tomorrow = new Date(Date.now() + DAY_MS);
  $("kw-create-date").min = localDate(tomorrow);
  fillOwners();
  expiryHelp();
  form.onsubmit = (event) => {
    event.preventDefault();
    submitCreate(onCreated);
  };
  $("kw-create-dialog").showModal();
  try {
    await catalog();
    fillScopes(list, "kw-create", []);
    limitScopesToOwner();
  } catch (err) {
    showError("kw-create-error", err);
  }
}

async function submitCreate(onCreated) {
  const form = $("kw-create-form");
  clearFieldErrors(form);
  showError("kw-create-error", "");
  const problems = checkCommon("kw-create");
  const body = {
    name: $("kw-create-name").value.trim(),
    scopes: checkedScopes($("kw-create-scope-list")),
  };
  const expiry = $("kw-create-expiry").value;
  if (expiry === "custom") {
    const at = customExpiry();
    if (!at) problems.push({ field: "expires_at", message: "Choose the date the key expires." });
    else if (at.getTime() <= Date.now()) problems.push({ field: "expires_at", message: "Choose a date in the future." });
    else body.expires_at = at.toISOString().replace(/\.\d{3}Z$/, "Z");
  } else {
    body.expires_in_days = expiry === "never" ? null : Number(expiry);
  }
  const ips = lines($("kw-create-ips").value);
  if (ips.length > 0) body.allowed_ips = ips;
  const rate = $("kw-create-rate").value.trim();
  if (rate !== "") body.rate_limit = Number(rate);
  if (state.admin) {
    const owner = $("kw-create-owner").selectedOptions[0];
    if (owner && owner.dataset.kind === "service") body.kind = "service";
    else if (owner && owner.dataset.kind === "other") {
      body.owner = $("kw-create-owner-id").value.trim();
      if (!body.owner) problems.push({ field: "owner", message: "Enter the user id of the key's owner." });
    } else if (owner && owner.value) body.owner = owner.value;
  }
  if (problems.length > 0) {
    showFieldErrors(form, problems);
    showError("kw-create-error", "Some fields need attention.");
    return;
  }
  await submitting($("kw-create-submit"), async () => {
    try {
      const issued = await api("POST", "/keys", body);
      $("kw-create-dialog").close();
      await onCreated(issued);
    } catch (err) {
      showFailure(form, "kw-create-error", err);
    }
  });
}

// ---- edit -------------------------------------------------------------------------------

/** Opens the edit dialog for `key`; `onSaved(key)` gets the changed key. */
export async function openEdit(key, onSaved) {
  const form = $("kw-edit-form");
  form.reset();
  clearFieldErrors(form);
  showError("kw-edit-error", "");
  $("kw-edit-title").textContent = `Edit “${key.name}”`;
  $("kw-edit-name").value = key.name;
  $("kw-edit-ips").value = (key.allowed_ips || []).join("\n");
  $("kw-edit-rate").value = key.rate_limit == null ? "" : String(key.rate_limit);
  const list = $("kw-edit-scope-list");
  list.replaceChildren();
  delete list.dataset.loaded;
  form.onsubmit = (event) => {
    event.preventDefault();
    submitEdit(key, onSaved);
  };
  $("kw-edit-dialog").showModal();
  try {
    await catalog();
    fillScopes(list, "kw-edit", key.scopes);
  } catch (err) {
    showError("kw-edit-error", err);
  }
}

function sameList(a, b) {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

async function submitEdit(key, onSaved) {
  const form = $("kw-edit-form");
  clearFieldErrors(form);
  showError("kw-edit-error", "");
  const problems = checkCommon("kw-edit");
  if (problems.length > 0) {
    showFieldErrors(form, problems);
    showError("kw-edit-error", "Some fields need attention.");
    return;
  }
  const changes = {};
  const name = $("kw-edit-name").value.trim();
  if (name !== key.name) changes.name = name;
  const scopes = checkedScopes($("kw-edit-scope-list"));
  if (!sameList(scopes, key.scopes)) changes.scopes = scopes;
  const ips = lines($("kw-edit-ips").value);
  if (!sameList(ips, key.allowed_ips || [])) changes.allowed_ips = ips;
  const rateText = $("kw-edit-rate").value.trim();
  const rate = rateText === "" ? null : Number(rateText);
  if (rate !== (key.rate_limit == null ? null : key.rate_limit)) changes.rate_limit = rate;
  if (Object.keys(changes).length === 0) {
    $("kw-edit-dialog").close();
    return;
  }
  await submitting($("kw-edit-submit"), async () => {
    try {
      const updated = await api("PATCH", keyPath(key.id), changes);
      $("kw-edit-dialog").close();
      await onSaved(updated);
    } catch (err) {
      showFailure(form, "kw-edit-error", err);
    }
  });
}

// ---- the one-time token ---------------------------------------------------------------------

/** Shows a token once, with a copy button and a curl line; `note` says more (grace period). */
export function showToken(token, title, note) {
  $("kw-token-title").textContent = title;
  $("kw-token").value = token;
  const url = `${window.location.origin}${base}/self`;
  $("kw-curl").textContent = `curl -H "Authorization: Bearer ${token}" ${url}`;
  $("kw-token-note").textContent = note || "";
  $("kw-token-note").hidden = !note;
  $("kw-copy-status").textContent = "";
  $("kw-token-dialog").showModal();
  $("kw-token").focus();
  $("kw-token").select();
}

async function copy(text, done) {
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch (_) {
    copied = false;
  }
  $("kw-copy-status").textContent = copied ? done : "Copying is not allowed here: select the text and copy it.";
  if (!copied) {
    $("kw-token").focus();
    $("kw-token").select();
  }
}

function forgetToken() {
  $("kw-token").value = "";
  $("kw-curl").textContent = "";
}

// ---- confirmation -------------------------------------------------------------------------

/**
 * Asks to confirm; resolves to `{grace}` (seconds, for regeneration) or null when cancelled.
 * `confirmLabel` names the button ("Revoke key").
 */
export function confirmAction(title, text, confirmLabel, withGrace) {
  return new Promise((resolve) => {
    const dialog = $("kw-confirm-dialog");
    $("kw-confirm-title").textContent = title;
    $("kw-confirm-text").textContent = text;
    $("kw-confirm-ok").textContent = confirmLabel;
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
    // The safe choice has the focus: Enter does not destroy anything by accident.
    (withGrace ? $("kw-grace") : $("kw-confirm-cancel")).focus();
  });
}

/** Wires the buttons that do not depend on a key. */
export function wireDialogs() {
  $("kw-create-expiry").addEventListener("change", expiryHelp);
  $("kw-create-owner").addEventListener("change", ownerChanged);
  $("kw-create-cancel").addEventListener("click", () => $("kw-create-dialog").close());
  $("kw-edit-cancel").addEventListener("click", () => $("kw-edit-dialog").close());
  $("kw-copy-token").addEventListener("click", () => copy($("kw-token").value, "Key copied."));
  $("kw-copy-curl").addEventListener("click", () => copy($("kw-curl").textContent, "Command copied."));
  $("kw-token-done").addEventListener("click", () => {
    forgetToken();
    $("kw-token-dialog").close();
  });
  $("kw-token-dialog").addEventListener("close", forgetToken);
}
