// The page's media connection with the server: the microphone goes up, this listener's mix
// comes down, and the server's events (captions, latency) arrive on its data channel.

import { Backoff } from "./backoff.js";
import { ServerLink } from "./call.js";
import { audioTrack } from "./local-media.js";
import { setConnection, showCallMessage } from "./messages.js";
import { Phase, inPhase } from "./phases.js";
import { isDraining, send } from "./socket.js";

const $ = (id) => document.getElementById(id);

// Kept for the test hook; captions arrive several times a second for the whole call.
const MAX_EVENTS = 200;

let link = null;
const events = [];
const listeners = [];
// A failed connection is offered again at once, then after 1, 2, 4, 8, 8… seconds.
const retry = new Backoff({ baseMs: 500, maxMs: 8000, immediateFirst: true });

/** Hear every data-channel event from the server. */
export function onServerEvent(listener) {
  listeners.push(listener);
}

export function recentEvents() {
  return events.slice();
}

export function serverPc() {
  return link ? link.pc : null;
}

function playMix(stream) {
  const audio = $("remote-audio");
  audio.srcObject = stream;
  audio.play().catch(() => {
    // Autoplay was refused: the first click anywhere may start it.
    showCallMessage("Click anywhere to turn on the sound.");
    document.addEventListener(
      "click",
      () => {
        audio.play().catch(() => {});
        showCallMessage("");
      },
      { once: true },
    );
  });
}

function onEvent(event) {
  events.push(event);
  if (events.length > MAX_EVENTS) events.shift();
  for (const listener of listeners) listener(event);
}

function onState(state) {
  if (!inPhase(Phase.CALL)) return;
  if (state === "connected") {
    retry.reset();
    setConnection(isDraining() ? "draining" : "connected");
  } else if (state === "failed") {
    restartServerMedia();
  } else if (state === "disconnected" && !isDraining()) {
    setConnection("reconnecting");
  }
}

async function offer() {
  const current = link;
  if (!current) return;
  try {
    const sdp = await current.createOffer();
    if (link !== current || !inPhase(Phase.CALL)) return;
    send("offer", { sdp });
  } catch (error) {
    if (link === current && inPhase(Phase.CALL)) {
      console.warn("server media offer failed:", error);
      restartServerMedia();
    }
  }
}

/** Connect to the server's media once welcomed, through the ICE servers the welcome gave. */
export function startServerMedia(iceServers) {
  if (!link) {
    link = new ServerLink({ iceServers, audioTrack: audioTrack(), onTrack: playMix, onEvent, onState });
  }
  offer();
}

/** The server's answer to the page's offer. */
export function applyServerAnswer(sdp) {
  if (!link) return;
  link.applyAnswer(sdp).catch((error) => {
    console.warn("server answer rejected:", error);
    restartServerMedia();
  });
}

/** The media connection failed (here or on the server): offer a fresh one after a wait. */
export function restartServerMedia() {
  if (!inPhase(Phase.CALL)) return;
  if (!isDraining()) setConnection("media-failed");
  if (link) link.close();
  retry.schedule(() => {
    if (inPhase(Phase.CALL)) offer();
  });
}

export function stopServerMedia() {
  retry.reset();
  if (link) link.close();
  link = null;
  $("remote-audio").srcObject = null;
}
