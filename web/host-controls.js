// What only a host sees and does (docs/protocol.md, "Hosted rooms"): lock or unlock the room,
// mute, unmute or remove someone from their tile, and end the call for everyone. Removing and
// ending ask first. The server checks every request; this module only shows the controls to
// the participant it says hosts.

import { confirmStep } from "./confirm-dialog.js";
import { Phase, inPhase } from "./phases.js";
import { roomLocked } from "./room.js";
import { getOther, onRosterChange, self } from "./roster.js";
import { send } from "./socket.js";

const $ = (id) => document.getElementById(id);

export function isHost() {
  return Boolean(self()?.host);
}

/** Show or hide the host's controls, and say on them what the room is like now. */
export function renderHostControls() {
  const host = isHost() && inPhase(Phase.CALL);
  $("host-controls").hidden = !host;
  $("stage").dataset.host = String(host);
  if (!host) {
    $("host-menu").hidden = true;
    $("host-button").setAttribute("aria-expanded", "false");
  }
  const locked = roomLocked();
  const lock = $("lock-button");
  lock.textContent = locked ? "Unlock the room" : "Lock the room";
  lock.setAttribute("aria-pressed", String(locked));
}

function closeMenu() {
  $("host-menu").hidden = true;
  $("host-button").setAttribute("aria-expanded", "false");
}

function toggleLock() {
  closeMenu();
  if (isHost()) send("lock", { locked: !roomLocked() });
}

async function endForEveryone() {
  closeMenu();
  if (!isHost()) return;
  const sure = await confirmStep(
    "End the call for everyone? Everyone leaves, you too, and nobody can join this call again.",
    "End the call",
  );
  if (sure && isHost() && inPhase(Phase.CALL)) send("end");
}

async function onTileAction(button) {
  const tile = button.closest(".remote-tile");
  const participant = tile ? getOther(tile.dataset.participant) : null;
  if (!participant || !isHost()) return;
  if (button.dataset.action === "mute") {
    send("mute", { participant: participant.id, muted: !participant.muted });
    return;
  }
  const sure = await confirmStep(
    `Remove ${participant.name} from the call? They could come back through the link unless you lock the room.`,
    "Remove",
  );
  if (sure && isHost() && getOther(participant.id)) {
    send("remove", { participant: participant.id });
  }
}

export function setupHostControls() {
  $("lock-button").addEventListener("click", toggleLock);
  $("end-button").addEventListener("click", endForEveryone);
  $("tiles").addEventListener("click", (event) => {
    const button = event.target.closest(".tile-action");
    if (button) onTileAction(button);
  });
  onRosterChange(() => renderHostControls());
  renderHostControls();
}
