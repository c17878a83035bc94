// api.js - the page's only way to the server: the public API under /api/v1.
//
// Signed in by the session cookie the login sets (HttpOnly); every write echoes
// the session's CSRF value in X-CSRF-Token, as the API asks of cookie writes.
// An answer other than 2xx throws an ApiError with the API's error body.

let csrf = "";

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `the server answered ${status}`);
    this.status = status;
    this.code = e.code || "http_" + status;
    this.field = e.field || null;
  }
}

export function setCsrf(value) {
  csrf = value || "";
}

export async function api(method, path, body, extra) {
  const headers = { Accept: "application/json", ...(extra || {}) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const res = await fetch("/api/v1" + path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// Every item of a paginated list (`next` cursors), up to `max` items.
export async function all(path, key, max = 2000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", path + (cursor ? `${sep}cursor=${encodeURIComponent(cursor)}` : ""));
    items.push(...page[key]);
    cursor = page.next;
  } while (cursor && items.length < max);
  return items;
}
