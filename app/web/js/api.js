// Calls to this gateway's API. This is the only module that sees a key (the playground's API key, the
// dashboard's admin key): each is kept in sessionStorage (this tab only) and sent solely as the
// Authorization header of these same-origin fetch calls, never in a URL, a cookie or a form field.

const KEY_STORAGE = "pixelgate.playground.key";
const ADMIN_KEY_STORAGE = "pixelgate.dashboard.admin-key";

/** The key typed in this tab, or "" (an empty key works when the gateway has none). */
export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE) ?? "";
}

export function storeKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** The admin key typed in this tab, or "". */
export function storedAdminKey() {
  return sessionStorage.getItem(ADMIN_KEY_STORAGE) ?? "";
}

export function storeAdminKey(key) {
  if (key) sessionStorage.setItem(ADMIN_KEY_STORAGE, key);
  else sessionStorage.removeItem(ADMIN_KEY_STORAGE);
}

/** An answer that is not a success: the OpenAI error object the API gave, and the HTTP status. */
export class ApiError extends Error {
  constructor(status, error, requestId = null) {
    super(error.message || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.type = error.type ?? null;
    this.code = error.code ?? null;
    this.param = error.param ?? null;
    this.requestId = requestId;
  }
}

/** The gateway's base URL as this page sees it (its origin plus any path prefix it is served under). */
export function gatewayBase() {
  return new URL(".", document.baseURI).href.replace(/\/$/, "");
}

/**
 * Calls `path` (relative to the page, e.g. "v1/models") and answers {data, headers, status}.
 * `json` is sent as a JSON body, `form` as multipart/form-data. `admin` sends the admin key instead of
 * the API key. Throws ApiError for an error answer (or none at all); an AbortError when `signal` aborts.
 */
export async function callApi(path, { method = "GET", json, form, signal, admin = false } = {}) {
  const headers = {};
  const key = admin ? storedAdminKey() : storedKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser writes the multipart boundary
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal, credentials: "omit", cache: "no-store" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { message: `The gateway could not be reached (${error.message}).` });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const requestId = response.headers.get("x-request-id");
  if (!response.ok) {
    const error = data && typeof data.error === "object" && data.error !== null
      ? data.error
      : { message: text.trim() || response.statusText || `HTTP ${response.status}` };
    throw new ApiError(response.status, error, requestId);
  }
  if (data === null) {
    throw new ApiError(response.status, { message: "The gateway's answer was not JSON." }, requestId);
  }
  return { data, headers: response.headers, status: response.status };
}

/** The path of one model's table, its id kept readable ("owner/name" stays a path). */
export function modelPath(id) {
  return "v1/models/" + id.split("/").map(encodeURIComponent).join("/");
}
