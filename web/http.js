// Requests to this server's HTTP API, for both pages (app.js and demo.js): every failure becomes
// an ApiError whose message is words for people, never a stack trace or a raw response body.

const UNREACHABLE = "Cannot reach the server. Check your connection and try again.";
const UNREADABLE = "The server's answer could not be read. Please try again.";

/** An API failure, in words; `code` is the server's error code ("" when it sent none). */
export class ApiError extends Error {
  constructor(message, code = "", status = 0) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/** The server's error code behind `error` ("" for anything but an ApiError that has one). */
export function errorCode(error) {
  return error instanceof ApiError ? error.code : "";
}

/** An ApiError's message, or `fallback` for anything else (a bug, not the server's answer). */
export function errorWords(error, fallback = "Something went wrong. Please try again.") {
  return error instanceof ApiError ? error.message : fallback;
}

/** Capitalised, with a full stop. */
function sentence(text) {
  const t = text.trim();
  if (!t) return "";
  const cap = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(cap) ? cap : `${cap}.`;
}

/**
 * `fetch` that resolves only to an OK response and otherwise throws an ApiError. Its message is
 * `leads[code]` (a first sentence for the server's error code) followed by the server's own
 * message; without either, the HTTP status in words.
 */
export async function request(path, options = {}, leads = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError(UNREACHABLE);
  }
  if (response.ok) return response;
  let code = "";
  let detail = "";
  try {
    const body = await response.json();
    if (body && body.error) {
      code = String(body.error.code || "");
      detail = String(body.error.message || "");
      if (body.error.retry) detail += detail ? " Try again in a moment." : "Try again in a moment.";
    }
  } catch {
    // not JSON: the status below says what happened
  }
  const lead = leads[code] || (response.status >= 500 ? "The server could not do this." : "");
  let message = [lead, sentence(detail)].filter(Boolean).join(" ");
  if (!message) message = `The server answered ${response.status} ${response.statusText}.`.trim();
  throw new ApiError(message, code, response.status);
}

/** `request`, then the response's JSON body (an unreadable body is an ApiError too). */
export async function requestJson(path, options = {}, leads = {}) {
  const response = await request(path, options, leads);
  try {
    return await response.json();
  } catch {
    throw new ApiError(UNREADABLE, "", response.status);
  }
}

/** Options for a JSON POST. */
export function postJson(body) {
  return {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
}
