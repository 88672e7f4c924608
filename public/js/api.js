// The JSON API (same origin). Cookie session + CSRF double submit: unsafe requests echo the
// readable CSRF cookie (__Host-mediscope_csrf over https, mediscope_csrf over http) in X-CSRF-Token;
// the browser adds Origin itself.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `request failed (${status})`);
    this.status = status;
    this.problem = problem;
    this.retryAfter = problem?.retryAfter;
  }
}

/** Called with the ApiError when any request answers 401 (the session ended). */
let onSignedOut = () => {};
export function setSignedOutHandler(fn) { onSignedOut = fn; }

export function csrfToken() {
  // Over https the cookie is __Host-mediscope_csrf (Secure, this host only); over plain http mediscope_csrf.
  const m = document.cookie.match(/(?:^|;\s*)__Host-mediscope_csrf=([^;]+)/)
    || document.cookie.match(/(?:^|;\s*)mediscope_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

/** True when this browser may hold a session (avoids a 401 round trip on first load). */
export function mayHaveSession() { return csrfToken() !== ""; }

async function problemOf(res) {
  try { return await res.json(); } catch { return { detail: `${res.status} ${res.statusText}` }; }
}

export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body instanceof FormData) {
    init.body = body;  // the browser sets multipart/form-data with its boundary
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, { detail: "The server cannot be reached. Check the connection and try again." });
  }
  if (res.status === 204) return null;
  if (!res.ok) {
    const err = new ApiError(res.status, await problemOf(res));
    if (res.status === 401 && path !== "/api/session") onSignedOut(err);
    throw err;
  }
  return res.json();
}

export const get = (path) => request("GET", path);

/** The patient and study fields of a DICOM file, read by the server (nothing is stored). */
export function readDicomFields(file) {
  const data = new FormData();
  data.append("file", file, file.name);
  return request("POST", "/api/dicom/fields", data);
}

/** Query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** A fresh Idempotency-Key: 128 random bits as hex (crypto.randomUUID needs HTTPS; this does not). */
export function newIdempotencyKey() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Uploads a scan (multipart) with progress. XMLHttpRequest because fetch() cannot report upload
 * progress. `onProgress(fraction)` during the upload, `onUploaded()` when the server starts analysing.
 * `idempotencyKey` (see `newIdempotencyKey`) makes sending the same upload again safe: the server
 * answers a repeat with the first analysis instead of making a second.
 */
export function uploadAnalysis(formData, { onProgress, onUploaded, idempotencyKey } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/analyses");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    if (idempotencyKey) xhr.setRequestHeader("Idempotency-Key", `"${idempotencyKey}"`);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress?.(e.loaded / e.total); });
    xhr.upload.addEventListener("load", () => onUploaded?.());
    xhr.addEventListener("load", () => {
      if (xhr.status === 201) return resolve(xhr.response);
      const problem = xhr.response && typeof xhr.response === "object" ? xhr.response : { detail: `${xhr.status} ${xhr.statusText}` };
      const retry = xhr.getResponseHeader("Retry-After");
      const err = new ApiError(xhr.status, { ...problem, retryAfter: retry ? Number(retry) : undefined });
      if (xhr.status === 401) onSignedOut(err);
      reject(err);
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { detail: "The upload failed: the server cannot be reached." })));
    xhr.addEventListener("abort", () => reject(new ApiError(0, { detail: "The upload was cancelled." })));
    xhr.send(formData);
  });
}
