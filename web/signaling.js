// WebSocket client for the callserver signaling protocol (PROTOCOL_VERSION, from generated.js).
//
// One SignalingClient is one WebSocket. It sends `{v, type, ...fields}` messages and emits
// each server message as a DOM event named after its type ("welcome", "error", "p2p-offer", ...).
// It also emits "open" and "close" (detail: {code, reason, expected}).

import { PROTOCOL_VERSION } from "./generated.js";

export { PROTOCOL_VERSION };

/** The ws:// or wss:// address of the signaling endpoint, matching the page's scheme. */
export function signalingUrl(loc = window.location) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/ws`;
}

export class SignalingClient extends EventTarget {
  constructor(url = signalingUrl()) {
    super();
    this.url = url;
    this.ws = null;
    this.closedByUs = false;
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Open the socket; resolves once it is open, rejects if it closes first. */
  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      this.closedByUs = false;
      let opened = false;
      ws.addEventListener("open", () => {
        opened = true;
        this.emit("open", {});
        resolve();
      });
      ws.addEventListener("message", (event) => this.onMessage(event.data));
      ws.addEventListener("close", (event) => {
        if (this.ws === ws) this.ws = null;
        const detail = { code: event.code, reason: event.reason, expected: this.closedByUs };
        if (!opened) {
          reject(new Error(`could not reach the server (code ${event.code})`));
          return;
        }
        this.emit("close", detail);
      });
    });
  }

  /** Send one protocol message. Returns false when the socket is not open. */
  send(type, fields = {}) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type, ...fields }));
    return true;
  }

  /** Close on purpose: the "close" event then carries expected=true. */
  close() {
    this.closedByUs = true;
    if (this.ws !== null) this.ws.close(1000, "bye");
  }

  onMessage(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn("signaling: ignored a message that is not JSON");
      return;
    }
    if (message === null || typeof message !== "object" || typeof message.type !== "string") {
      return;
    }
    this.emit(message.type, message);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Subscribe to one message type; returns a function that unsubscribes. */
  on(type, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }
}
