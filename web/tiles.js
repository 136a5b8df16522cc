// The call's video tiles: one per other participant, with their stream once it arrives, and
// the "you're the first one here" state while nobody else is in the call.

import { languageLabel } from "./languages.js";
import { Phase, inPhase } from "./phases.js";
import { joinUrl, roomId } from "./room.js";
import { otherCount } from "./roster.js";

const $ = (id) => document.getElementById(id);

// A peer's video may arrive before the server has said who they are: it waits here for a tile.
const streams = new Map(); // participant id -> MediaStream

/** Up to two letters for a tile without video. */
export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = parts.slice(0, 2).map((part) => [...part][0].toUpperCase());
  return letters.join("") || "?";
}

function tileFor(id) {
  return $("tiles").querySelector(`[data-participant="${CSS.escape(id)}"]`);
}

function attachVideo(tile, stream) {
  const video = tile.querySelector("video");
  if (video.srcObject !== stream) video.srcObject = stream;
  video.play().catch(() => {});
}

/** Add or update `participant`'s tile. */
export function renderTile(participant) {
  let tile = tileFor(participant.id);
  if (!tile) {
    tile = $("tile-template").content.firstElementChild.cloneNode(true);
    tile.dataset.participant = participant.id;
    const video = tile.querySelector("video");
    video.addEventListener("playing", () => tile.classList.add("has-video"));
    video.addEventListener("emptied", () => tile.classList.remove("has-video"));
    $("tiles").append(tile);
    const stream = streams.get(participant.id);
    if (stream) attachVideo(tile, stream);
  }
  tile.querySelector(".tile-name").textContent = participant.name;
  tile.querySelector(".tile-langs").textContent =
    `speaks ${languageLabel(participant.spoken)} · hears ${languageLabel(participant.listen)}`;
  tile.querySelector(".placeholder span").textContent = initials(participant.name);
  tile.setAttribute("aria-label", participant.name);
}

export function removeTile(id) {
  const tile = tileFor(id);
  if (tile) tile.remove();
}

/** A participant's video stream arrived. */
export function showPeerStream(id, stream) {
  streams.set(id, stream);
  const tile = tileFor(id);
  if (tile) attachVideo(tile, stream);
}

export function forgetPeerStream(id) {
  streams.delete(id);
}

/** The direct connection's state, for the tile's look. */
export function showPeerState(id, state) {
  const tile = tileFor(id);
  if (tile) tile.dataset.state = state;
}

export function clearTiles() {
  streams.clear();
  $("tiles").replaceChildren();
}

/** Size the grid to the people in it and show the waiting state when the call is empty. */
export function updateLayout() {
  const count = otherCount();
  $("tiles").dataset.count = String(count);
  $("stage").dataset.count = String(count);
  $("waiting").hidden = count > 0 || !inPhase(Phase.CALL);
  $("share-link").value = roomId() ? joinUrl() : "";
}
