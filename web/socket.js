// The page's one signaling socket: which client is current, which node it goes to (redirects in
// the distributed mode) and whether that server said it is draining. A client that is no longer
// current is closed and its events are ignored.

import { SignalingClient, signalingUrl } from "./signaling.js";

/** Redirects one join may follow before the page gives up (each one is a node's answer). */
const MAX_REDIRECTS = 3;

let client = null;
let nodeUrl = null; // the room's node when it is not the page's own server
let redirects = 0;
let draining = false;

/**
 * Open a socket to the room's node (or this page's server). `handlers` maps message types to
 * functions; `onLost(detail)` hears of the current socket closing when the page did not close it.
 * Resolves to whether the socket opened and is still the current one.
 */
export async function openSocket(handlers, onLost) {
  const opened = new SignalingClient(nodeUrl ? signalingUrl(new URL(nodeUrl)) : undefined);
  client = opened;
  for (const [type, handler] of Object.entries(handlers)) opened.on(type, handler);
  opened.on("close", (detail) => {
    if (detail.expected || client !== opened) return;
    client = null;
    onLost(detail);
  });
  try {
    await opened.connect();
  } catch {
    if (client === opened) client = null;
    return false;
  }
  if (client === opened) return true;
  opened.close(); // superseded (left, or redirected again) while it opened
  return false;
}

/** Send one message on the current socket; false when there is none open. */
export function send(type, fields) {
  return client ? client.send(type, fields) : false;
}

export function closeSocket() {
  if (client) {
    client.close();
    client = null;
  }
}

/** Close the socket and aim the next one at `url`; false after too many redirects. */
export function redirectTo(url) {
  redirects += 1;
  closeSocket();
  if (redirects > MAX_REDIRECTS) {
    redirects = 0;
    nodeUrl = null;
    return false;
  }
  nodeUrl = url;
  return true;
}

/** Aim the next socket at this page's own server, which places the room again. */
export function forgetNode() {
  nodeUrl = null;
}

/** A welcome ends the join: the next one may follow redirects again. */
export function joined() {
  redirects = 0;
}

export function isDraining() {
  return draining;
}

export function setDraining(value) {
  draining = value;
}
