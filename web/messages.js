// Where the page tells the user things: the start screen's message, the call screen's banner,
// the status line and the start buttons' busy labels.

import { roomCapacity } from "./room.js";
import { nameMaxLength, titleMaxLength } from "./server-config.js";
import { errorText, stateText } from "./words.js";

const $ = (id) => document.getElementById(id);

let connection = "idle";
let bannerTimer = null;

/** Words for a server error code, with what this page knows filled in. */
export function errorWords(code, extra = {}) {
  const ctx = { capacity: roomCapacity(), nameMax: nameMaxLength(), titleMax: titleMaxLength() };
  return errorText(code, { ...ctx, ...extra });
}

/** The start screen's message: kind "error" or "info"; "" hides it. */
export function showStartMessage(text, kind = "error") {
  const el = $("start-message");
  el.textContent = text || "";
  el.className = `message ${kind}`;
  el.hidden = !text;
}

/** The call screen's banner; with timeoutMs it hides itself after that long. */
export function showCallMessage(text, { timeoutMs = 0 } = {}) {
  const el = $("call-message");
  clearTimeout(bannerTimer);
  el.textContent = text || "";
  el.hidden = !text;
  if (text && timeoutMs) {
    bannerTimer = setTimeout(() => {
      el.hidden = true;
    }, timeoutMs);
  }
}

/** Disable the start buttons with `label` on them while busy; restore them after. */
export function setBusy(busy, label) {
  for (const id of ["create-button", "join-button"]) {
    const button = $(id);
    button.disabled = busy;
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.textContent = busy ? label : button.dataset.label;
  }
}

/** The status line: idle, connecting, connected, reconnecting, media-failed, draining. */
export function setConnection(state) {
  connection = state;
  $("status").dataset.state = state;
  $("state-text").textContent = stateText(state);
}

export function connectionState() {
  return connection;
}
