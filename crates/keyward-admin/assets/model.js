// What the page knows: the loaded keys, the caller, the users and the catalog; and how a key
// reads to people (status, dates, owner names).

/** Days before expiry from which an active key counts as "expiring soon". */
export const EXPIRING_SOON_DAYS = 7;
const DAY_MS = 24 * 60 * 60 * 1000;

export const state = {
  /** Every loaded key by id, in the order the API listed them. */
  keys: new Map(),
  /** The `next_cursor` of the last page, or null. */
  cursor: null,
  /** Whether the caller holds `keys:admin`: every owner's keys, owners and service keys. */
  admin: false,
  /** The application's users by id (admins only), `{id, name, scopes}`. */
  users: new Map(),
  /** Whether `GET /users` answered with a list. */
  usersListed: false,
  /** The scope catalog, `[{name, description}]`, once loaded. */
  catalog: null,
};

/** A key's status: revoked, expired, disabled, expiring (soon) or active. */
export function statusOf(key, now = Date.now()) {
  if (key.revoked_at) return "revoked";
  const expires = key.expires_at ? new Date(key.expires_at).getTime() : null;
  if (expires !== null && expires <= now) return "expired";
  if (!key.active) return "disabled";
  if (expires !== null && expires - now <= EXPIRING_SOON_DAYS * DAY_MS) return "expiring";
  return "active";
}

const statusLabels = {
  active: "active",
  expiring: "expiring soon",
  disabled: "disabled",
  expired: "expired",
  revoked: "revoked",
};

/** What people read for a status. */
export function statusLabel(status) {
  return statusLabels[status] || status;
}

/** Whether `action` applies to `key` now. */
export function canDo(action, key) {
  const status = statusOf(key);
  switch (action) {
    case "details":
    case "delete":
      return true;
    case "edit":
    case "regenerate":
    case "revoke":
    case "toggle":
      return status !== "revoked";
    case "refresh":
      return Boolean(key.expires_at) && key.active && status !== "revoked";
    default:
      return false;
  }
}

/** The owner's display name, the id when the user is unknown, or "service key". */
export function ownerName(key) {
  if (key.kind === "service" || !key.owner) return "service key";
  const user = state.users.get(key.owner);
  return user && user.name ? user.name : key.owner;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const shortDay = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** A date-time for people, or `none` when absent. */
export function when(value, none) {
  if (!value) return none;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : dateTime.format(date);
}

/** A date (no time) for people. */
export function day(date) {
  return dateOnly.format(date);
}

/** The date of an RFC 3339 time for people, or `none` when absent. */
export function dateOf(value, none) {
  if (!value) return none;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : dateOnly.format(date);
}

/** `2026-11-23` (a UTC calendar day) as "Nov 23". */
export function calendarDay(text) {
  const date = new Date(`${text}T00:00:00Z`);
  return Number.isNaN(date.getTime()) ? text : shortDay.format(date);
}

/** "in 3 days", "2 hours ago": how far `value` is from now. */
export function fromNow(value, now = Date.now()) {
  const ms = new Date(value).getTime() - now;
  const abs = Math.abs(ms);
  if (abs < 60 * 60 * 1000) return relative.format(Math.round(ms / 60000), "minute");
  if (abs < DAY_MS) return relative.format(Math.round(ms / 3600000), "hour");
  return relative.format(Math.round(ms / DAY_MS), "day");
}

/** `count` with thousands separators. */
export function number(count) {
  return Number(count || 0).toLocaleString();
}

/** Creates an element with a class and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

/**
 * Checks one allowed-IP line: an IPv4 or IPv6 address, or a CIDR network. Returns an error
 * message, or "" when it is valid.
 */
export function ipProblem(line) {
  const [address, prefix, extra] = line.split("/");
  if (extra !== undefined) return `“${line}” has more than one “/”`;
  let bits;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) {
    const octets = address.split(".");
    if (octets.some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith("0")))) {
      return `“${line}” is not an IPv4 address`;
    }
    bits = 32;
  } else if (address.includes(":") && isIpv6(address)) {
    bits = 128;
  } else {
    return `“${line}” is neither an IP address nor a CIDR network`;
  }
  if (prefix !== undefined) {
    if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > bits) {
      return `“${line}”: the prefix length must be 0 to ${bits}`;
    }
  }
  return "";
}

function isIpv6(address) {
  if (!/^[0-9A-Fa-f:.]+$/.test(address)) return false;
  try {
    // The URL parser knows IPv6 exactly; a hostname in brackets must be one.
    return new URL(`x://[${address}]/`).hostname.length > 2;
  } catch (_) {
    return false;
  }
}

/** The non-empty, trimmed lines of a textarea. */
export function lines(text) {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}
