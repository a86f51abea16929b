// Talking to the management API: the credential the page acts with, requests, and errors.

const storageKey = "keyward.apiKey";

/** Where the management router is mounted, from the page's `data-api-base`. */
export const base = document.body.dataset.apiBase || "";

function storedKey() {
  try {
    return sessionStorage.getItem(storageKey) || "";
  } catch (_) {
    return "";
  }
}

let currentKey = storedKey();

/** The pasted key the page acts with, or "" to act with the application's session. */
export function actingKey() {
  return currentKey;
}

/** Keeps a pasted key for this tab only (sessionStorage), or forgets it with "". */
export function useKey(value) {
  try {
    if (value) sessionStorage.setItem(storageKey, value);
    else sessionStorage.removeItem(storageKey);
  } catch (_) {
    // Storage can be disabled; the key then lasts until the page is left.
  }
  currentKey = value;
}

/** A refused request: the HTTP status and the problem document, when there is one. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(describe(status, problem));
    this.status = status;
    this.problem = problem;
  }

  /** `[{field, message}]` of a 422 problem; empty for any other error. */
  get fieldErrors() {
    const problem = this.problem;
    if (!problem || this.status !== 422) return [];
    if (Array.isArray(problem.errors) && problem.errors.length > 0) return problem.errors;
    if (problem.field) return [{ field: problem.field, message: problem.detail || "is invalid" }];
    return [];
  }

  /** Whether the route itself is missing (an older server), not the thing it names. */
  get routeMissing() {
    return this.status === 404 && (!this.problem || this.problem.detail === "no such route");
  }
}

function describe(status, problem) {
  if (!problem) return `The request failed (${status}).`;
  if (problem.error === "insufficient_scope" && problem.scope) {
    return `Not allowed: this needs the scope ${problem.scope}.`;
  }
  if (status === 422 && Array.isArray(problem.errors) && problem.errors.length > 0) {
    return problem.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
  }
  return problem.detail || problem.title || `The request failed (${status}).`;
}

const pending = { count: 0 };

function busy(delta) {
  pending.count += delta;
  document.body.dataset.busy = pending.count > 0 ? "true" : "false";
}

/**
 * Sends `method path` (relative to the mount point) with an optional JSON body, as the pasted
 * key (Bearer) or the session cookie. Resolves to the JSON answer (null for 204), rejects with
 * an ApiError.
 */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (currentKey) headers.Authorization = `Bearer ${currentKey}`;
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  busy(1);
  try {
    let response;
    try {
      response = await fetch(base + path, init);
    } catch (_) {
      throw new ApiError(0, { detail: "The server cannot be reached. Check the connection and try again." });
    }
    if (response.status === 204) return null;
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json().catch(() => null) : null;
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  } finally {
    busy(-1);
  }
}

/** `/keys/{id}` for a key id. */
export function keyPath(id) {
  return `/keys/${encodeURIComponent(id)}`;
}
