// The API as the page uses it: fetch with the operator's token, errors as readable text,
// and the operator event stream read with fetch (so that the token goes in a header).

import { SseParser, readEvents } from "./sse.js";

const TOKEN_KEY = "agent-registry.token";

/** The operator token, kept for this tab only (sessionStorage), never put in a URL. */
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value.trim()),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** Tells the page that the server wants a (better) token: "unauthenticated" events. */
export const auth = new EventTarget();

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const WHAT_HAPPENED = {
  401: "The server needs a valid operator token",
  403: "Your token may not do this",
  404: "Not found",
  409: "Refused",
  503: "The server's store is unavailable; try again",
};

function explain(status, body) {
  const code = body?.code ?? `HTTP_${status}`;
  const said = body?.message ?? "";
  const head = WHAT_HAPPENED[status] ?? (status >= 500 ? "The server failed" : "Refused");
  const fields = body?.errors
    ? " " + Object.entries(body.errors).map(([name, why]) => `${name}: ${why}`).join("; ")
    : "";
  return new ApiError(status, code, `${head} (${status} ${code}): ${said}${fields}`);
}

function headers(extra = {}) {
  const value = token.get();
  return value ? { ...extra, Authorization: `Bearer ${value}` } : extra;
}

async function refusal(response) {
  const body = await response.json().catch(() => null);
  const error = explain(response.status, body);
  if (response.status === 401) auth.dispatchEvent(new CustomEvent("unauthenticated", { detail: error }));
  return error;
}

/** Call the API: resolves to the answer's JSON (null for no body), rejects with ApiError. */
export async function request(method, path, body) {
  const init = { method, headers: headers({ Accept: "application/json" }), cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "NETWORK", `The server cannot be reached (${error.message}).`);
  }
  if (!response.ok) throw await refusal(response);
  return response.status === 204 ? null : response.json();
}

/** A path with its query: only the parameters that have a value. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(name, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

export const segment = encodeURIComponent;

const RETRY_MS = 3000;
const MAX_RETRY_MS = 30000;

/**
 * Keep an event stream open: onEvent({type, data, id}) for each event, onStatus({state,
 * error}) as it opens ("open"), drops ("lost": it reconnects) or is refused ("refused":
 * 401, 403 or 404, where trying again cannot help until something changes). idleMs is
 * how long a silent stream is trusted (a few keepalive intervals). close() ends it.
 */
export function eventStream(path, { onEvent, onStatus, idleMs }) {
  let controller = null;
  let stopped = false;
  let delay = RETRY_MS;

  async function hold() {
    controller = new AbortController();
    const response = await fetch(path, {
      headers: headers({ Accept: "text/event-stream" }),
      cache: "no-store",
      signal: controller.signal,
    });
    if (!response.ok) {
      const error = await refusal(response);
      if ([401, 403, 404].includes(response.status)) {
        onStatus({ state: "refused", error });
        return false;
      }
      throw error;
    }
    onStatus({ state: "open" });
    const parser = new SseParser(onEvent);
    delay = RETRY_MS;
    await readEvents(response.body, parser, idleMs);
    if (parser.retry !== null) delay = parser.retry;
    throw new Error("the server ended the stream");
  }

  (async () => {
    while (!stopped) {
      try {
        if (!(await hold())) return;
      } catch (error) {
        if (stopped) return;
        onStatus({ state: "lost", error, retryMs: delay });
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
  })();

  return {
    close() {
      stopped = true;
      controller?.abort();
    },
  };
}
