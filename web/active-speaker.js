// Who is speaking now, from the server's voice detection (`speaking` data-channel events):
// their tile is highlighted while they speak, this page's own tile too.

import { onRosterChange, isSelf } from "./roster.js";
import { tileFor } from "./tiles.js";

const $ = (id) => document.getElementById(id);

const speaking = new Set(); // participant ids speaking now

function tileOf(id) {
  return isSelf(id) ? $("local-tile") : tileFor(id);
}

function mark(id, on) {
  const tile = tileOf(id);
  if (tile) tile.dataset.speaking = String(on);
}

/** Handle one data-channel event; false when it is not a `speaking` event. */
export function handleSpeaking(event) {
  if (!event || event.type !== "speaking" || typeof event.speaker !== "string") return false;
  const on = event.speaking === true;
  if (on) speaking.add(event.speaker);
  else speaking.delete(event.speaker);
  mark(event.speaker, on);
  return true;
}

/** Ids speaking now, for the test hook. */
export function speakingNow() {
  return [...speaking];
}

export function setupActiveSpeaker() {
  onRosterChange((kind, id) => {
    if (kind === "removed") speaking.delete(id);
    if (kind === "put" && speaking.has(id)) mark(id, true); // a tile made after the event
    if (kind === "cleared") {
      for (const speaker of speaking) mark(speaker, false);
      speaking.clear();
      delete $("local-tile").dataset.speaking;
    }
  });
}
