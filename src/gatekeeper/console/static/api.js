// The admin API client. The key lives in sessionStorage only (this tab, until it closes
// or the operator signs out) and travels in the Authorization header: never in a URL, a
// cookie or a log line.

const STORAGE_KEY = "gatekeeper.console.key";
const API = "/admin/v1";

export const session = {
  get key() {
    return sessionStorage.getItem(STORAGE_KEY);
  },
  set key(value) {
    sessionStorage.setItem(STORAGE_KEY, value);
  },
  clear() {
    sessionStorage.removeItem(STORAGE_KEY);
  },
};

/** An error reply of the admin API ({code, message, type, request_id}), or a network
 * failure (status 0). */
export class ApiError extends Error {
  constructor(status, code, message, requestId = "") {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }

  /** For people: "403 forbidden: Key 'x' is read-only. (request abc)". */
  describe() {
    const head = this.status ? `${this.status} ${this.code}` : this.code;
    const tail = this.requestId ? ` (request ${this.requestId})` : "";
    return `${head}: ${this.message}${tail}`;
  }
}

let unauthorized = () => {};

/** Called (once per reply) when the API answers 401: the key is wrong or was removed. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/** The URL of an admin API path with a query; empty values are left out, arrays repeat. */
export function apiUrl(path, query = {}) {
  const url = new URL(API + path, window.location.origin);
  for (const [name, value] of Object.entries(query)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== "" && one !== null && one !== undefined) url.searchParams.append(name, one);
    }
  }
  return url;
}

function headers(extra = {}) {
  const key = session.key;
  if (!key) throw new ApiError(401, "unauthorized", "Not signed in.");
  return { Authorization: `Bearer ${key}`, ...extra };
}

async function errorOf(status, text, statusText) {
  try {
    const body = JSON.parse(text);
    if (body && typeof body.message === "string") {
      return new ApiError(status, body.code || "error", body.message, body.request_id || "");
    }
  } catch {
    // Not JSON: a proxy or server in between; show its status line.
  }
  return new ApiError(status, "http_error", statusText || "Unexpected reply.");
}

async function send(method, path, { query, body, accept = "application/json" } = {}) {
  const init = {
    method,
    headers: headers({ Accept: accept }),
    credentials: "omit",
    cache: "no-store",
    redirect: "error",
    referrerPolicy: "no-referrer",
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(apiUrl(path, query), init);
  } catch (error) {
    throw new ApiError(0, "network_error", `The admin listener did not answer (${error.message}).`);
  }
  if (!response.ok) {
    const error = await errorOf(response.status, await response.text(), response.statusText);
    if (response.status === 401) unauthorized(error);
    throw error;
  }
  return response;
}

/** A JSON call: resolves to the decoded reply, rejects with an ApiError. */
export async function api(method, path, options = {}) {
  const response = await send(method, path, options);
  return response.json();
}

export const get = (path, query) => api("GET", path, { query });

/** Upload a file as the body of a POST with real upload progress (fetch has none):
 * `progress(loaded, total)` is called as bytes leave the browser. Resolves to the
 * decoded JSON reply. The file is streamed by the browser, not read into memory. */
export function upload(path, query, file, progress) {
  return new Promise((resolve, reject) => {
    let auth;
    try {
      auth = headers();
    } catch (error) {
      reject(error);
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", apiUrl(path, query));
    xhr.setRequestHeader("Authorization", auth.Authorization);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Content-Type", file.type === "text/csv" ? "text/csv" : "text/plain");
    xhr.responseType = "text";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) progress(event.loaded, event.total);
    });
    xhr.upload.addEventListener("load", () => progress(file.size, file.size));
    xhr.addEventListener("load", async () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(new ApiError(xhr.status, "invalid_reply", "The reply is not JSON."));
        }
        return;
      }
      const error = await errorOf(xhr.status, xhr.responseText, xhr.statusText);
      if (xhr.status === 401) unauthorized(error);
      reject(error);
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network_error",
      "The upload failed: the admin listener did not answer.")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "Upload cancelled.")));
    xhr.send(file);
  });
}

/** Download a reply as a file: fetched with the key in the header, saved through an
 * object URL (a link with the key in its query would leak it to logs and history). */
export async function download(path, query, fallbackName) {
  const response = await send("GET", path, { query, accept: "text/csv" });
  const blob = await response.blob();
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(disposition);
  const name = match ? match[1] : fallbackName;
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return { name, size: blob.size };
}
