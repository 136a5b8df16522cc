// What the page says about the server's error codes, close codes and connection states.
// The codes come from generated.js, so a code the server adds is a key this table lacks,
// which tests/test_browser_call.py catches.

import { CloseCode, ErrorCode, NAME_MAX_LENGTH } from "./generated.js";

const FALLBACK = "Something went wrong. Please try again.";

/**
 * A sentence for every server error code; `ctx` fills in {capacity, nameMax, titleMax,
 * creating}.
 */
const ERROR_TEXT = {
  [ErrorCode.BAD_JSON]:
    "The server could not read a message from this page. Reload the page and try again.",
  [ErrorCode.BAD_MESSAGE]:
    "The server did not understand a request from this page. Reload the page and try again.",
  [ErrorCode.UNKNOWN_TYPE]: "This page does not match the server's version. Reload the page.",
  [ErrorCode.UNSUPPORTED_VERSION]: "This page is out of date for this server. Reload the page.",
  [ErrorCode.NOT_JOINED]: "You are no longer in the call. Join again to continue.",
  [ErrorCode.ALREADY_JOINED]: "You are already in this call.",
  [ErrorCode.ROOM_ID_INVALID]:
    "This link is broken: the call's name is not valid. Ask for a new link.",
  [ErrorCode.ROOM_NOT_FOUND]:
    "This call does not exist any more. Create a new room or ask for a new link.",
  [ErrorCode.ROOM_FULL]: (ctx) =>
    ctx.capacity ? `This call is full (${ctx.capacity} people).` : "This call is full.",
  [ErrorCode.ROOMS_EXHAUSTED]: "The server has too many calls right now. Try again in a few minutes.",
  [ErrorCode.NODES_FULL]: "Every call server is busy right now. Try again in a few minutes.",
  [ErrorCode.CAPACITY_INVALID]: "That call size is not allowed on this server.",
  [ErrorCode.TOKEN_REQUIRED]: (ctx) =>
    ctx.creating
      ? "Only the server's operator can create rooms here. Ask them for an invitation link."
      : "This call needs a full invitation link. Ask the person who invited you for it.",
  [ErrorCode.TOKEN_INVALID]: "This invitation link is not valid. Ask for a new one.",
  [ErrorCode.TOKEN_EXPIRED]: "This invitation link has expired. Ask for a new one.",
  [ErrorCode.TOKEN_WRONG_ROOM]: "This invitation link belongs to a different call.",
  [ErrorCode.RATE_LIMITED]: "Too many attempts in a short time. Wait a minute and try again.",
  [ErrorCode.NAME_INVALID]: (ctx) =>
    `Please choose another name: 1 to ${ctx.nameMax || NAME_MAX_LENGTH} characters, without special symbols.`,
  [ErrorCode.LANGUAGE_INVALID]:
    "That language is not available on this server. Pick another one.",
  [ErrorCode.SDP_INVALID]:
    "The server rejected your browser's connection details. Reload the page and try again.",
  [ErrorCode.SDP_TOO_LARGE]:
    "Your browser's connection details were too large for the server. Try another browser.",
  [ErrorCode.PEER_NOT_FOUND]: "That person has already left the call.",
  [ErrorCode.NOT_HOST]: "Only the host of this call can do that.",
  [ErrorCode.HOST_KEY_INVALID]:
    "This browser's host key does not fit this call any more, so it was forgotten. Join again to take part as a guest.",
  [ErrorCode.ROOM_LOCKED]:
    "The host has locked this call, so nobody new can join. Ask the host to unlock it.",
  [ErrorCode.ROOM_ENDED]: "The host has ended this call. Ask for a link to a new one.",
  [ErrorCode.TITLE_INVALID]: (ctx) =>
    `Please choose another title: at most ${ctx.titleMax || 80} characters, without special symbols.`,
  [ErrorCode.DRAINING]: "The server is restarting. Try again in a minute.",
  [ErrorCode.MEDIA_FAILED]: "The sound connection dropped. Reconnecting it now…",
  [ErrorCode.INTERNAL]: "Something went wrong on the server. Please try again.",
};

/** What the page says when the server closes the socket with one of its own codes. */
const CLOSE_TEXT = {
  [CloseCode.MESSAGE_TOO_BIG]:
    "A message was too large for the server, so it closed the connection. Reload the page.",
  [CloseCode.TOO_MANY_ERRORS]:
    "The server closed the connection after too many errors. Reload the page.",
  [CloseCode.RATE_LIMITED]: "Too many messages were sent too quickly. Reconnecting shortly…",
};

const STATE_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  "media-failed": "Media failed — retrying",
  draining: "Server is shutting down",
  left: "You left the call",
};

/** Human words for an error code; never the raw code or message. */
export function errorText(code, ctx = {}) {
  const entry = Object.hasOwn(ERROR_TEXT, code) ? ERROR_TEXT[code] : null;
  if (typeof entry === "function") return entry(ctx);
  return entry || FALLBACK;
}

/** Words for a close code, or "" for one the page has nothing special to say about. */
export function closeText(code) {
  return Object.hasOwn(CLOSE_TEXT, code) ? CLOSE_TEXT[code] : "";
}

/** Words for a connection state (the status line). */
export function stateText(state) {
  return STATE_TEXT[state] || state;
}

/** What an "I hear" option gives, after its label; "" for a full dub or the same language. */
const GIVES_MARK = {
  captions: "captions only",
  original: "original only",
};

/** What a listener gets from one speaker (docs/protocol.md "Language pairs"). */
const GIVES_FROM = {
  same: "their own words and voice (same language)",
  voice: "translated captions and voice",
  captions: "translated captions and their own voice (no voice for your language)",
  original: "original captions and voice only (no translation for this pair)",
};

/** The suffix an "I hear" option gets for what it gives, or "". */
export function givesMark(gives) {
  return Object.hasOwn(GIVES_MARK, gives) ? GIVES_MARK[gives] : "";
}

/** "From Nam (Vietnamese): original captions and voice only …". */
export function givesFromText(name, language, gives) {
  const what = Object.hasOwn(GIVES_FROM, gives) ? GIVES_FROM[gives] : gives;
  return `From ${name || "Someone"} (${language}): ${what}`;
}

/** "1 place left", "3 places left", "no places left". */
export function placesText(count) {
  if (count <= 0) return "no places left";
  return count === 1 ? "1 place left" : `${count} places left`;
}

/** What a page shows when the host locks or unlocks the room; `mine`: this page is the host. */
export function lockText(locked, mine) {
  if (mine) {
    return locked
      ? "You locked the room: nobody new can join."
      : "You unlocked the room: people with the link can join again.";
  }
  return locked ? "The host locked the room." : "The host unlocked the room.";
}

/** The host put this page out of the call. */
export function removedText(by) {
  return by ? `You were removed from the call by ${by}.` : "You were removed from the call.";
}

/** A host ended the call; `mine`: this page's host did. */
export function endedText(by, mine) {
  if (mine) return "You ended the call for everyone.";
  return by ? `${by} ended the call.` : "The host ended the call.";
}

/** Someone else was put out of the call by the host. */
export function otherRemovedText(name) {
  return `${name || "Someone"} was removed from the call by the host.`;
}

/** The host muted or unmuted this page's microphone. */
export function mutedByHostText(muted) {
  return muted
    ? "The host muted your microphone. Only the host can turn it back on."
    : "The host turned your microphone back on.";
}
