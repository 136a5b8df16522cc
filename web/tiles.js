// The call's video tiles: one per other participant, with their stream once it arrives, their
// name, languages, host badge and muted mark; the grid they fill; and the "you're the first one
// here" state while nobody else is in the call. With two or more others the page's own tile
// joins the grid instead of floating over it.

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

/** The tile of participant `id` (the page's own tile for its own id), or null. */
export function tileFor(id) {
  return $("stage").querySelector(`.remote-tile[data-participant="${CSS.escape(id)}"]`);
}

function attachVideo(tile, stream) {
  const video = tile.querySelector("video");
  if (video.srcObject !== stream) video.srcObject = stream;
  video.play().catch(() => {});
}

function renderActions(tile, participant) {
  const mute = tile.querySelector('[data-action="mute"]');
  mute.textContent = participant.muted ? "Unmute" : "Mute";
  mute.setAttribute("aria-label", `${participant.muted ? "Unmute" : "Mute"} ${participant.name}`);
  mute.setAttribute("aria-pressed", String(Boolean(participant.muted)));
  const remove = tile.querySelector('[data-action="remove"]');
  remove.setAttribute("aria-label", `Remove ${participant.name} from the call`);
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
    $("tiles").insertBefore(tile, $("tiles").querySelector(".local-tile"));
    const stream = streams.get(participant.id);
    if (stream) attachVideo(tile, stream);
  }
  tile.querySelector(".tile-name").textContent = participant.name;
  tile.querySelector(".tile-langs").textContent =
    `speaks ${languageLabel(participant.spoken)} · hears ${languageLabel(participant.listen)}`;
  tile.querySelector(".tile-host").hidden = !participant.host;
  tile.querySelector(".tile-muted").hidden = !participant.muted;
  tile.querySelector(".placeholder span").textContent = initials(participant.name);
  tile.dataset.host = String(Boolean(participant.host));
  tile.dataset.muted = String(Boolean(participant.muted));
  renderActions(tile, participant);
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
  for (const tile of $("tiles").querySelectorAll(".remote-tile")) tile.remove();
}

/**
 * Size the grid to the people in it and show the waiting state when the call is empty. One
 * other: their tile fills the stage and the page's own floats in a corner. More: everyone,
 * the page's own tile last, shares a grid sized by `data-count` (style.css).
 */
export function updateLayout() {
  const count = otherCount();
  const grid = count >= 2;
  const local = $("local-tile");
  if (grid && local.parentElement !== $("tiles")) $("tiles").append(local);
  if (!grid && local.parentElement !== $("stage")) $("stage").append(local);
  $("tiles").dataset.count = String(grid ? count + 1 : count);
  $("stage").dataset.count = String(count);
  $("stage").dataset.layout = grid ? "grid" : "spotlight";
  $("waiting").hidden = count > 0 || !inPhase(Phase.CALL);
  $("share-link").value = roomId() ? joinUrl() : "";
}
