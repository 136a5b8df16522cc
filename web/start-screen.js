// The start screen: which screen shows, the form (name and languages), creating a room, and
// what the page knows of the room an invitation link points at.

import { ErrorCode } from "./generated.js";
import { errorCode, postJson, requestJson } from "./http.js";
import { errorWords, setBusy, showStartMessage } from "./messages.js";
import { checkName } from "./names.js";
import { Phase, inPhase, moveTo } from "./phases.js";
import { savePrefs } from "./prefs.js";
import { joinUrl, roomId, setCapacity, setCreatedRoom } from "./room.js";
import { nameMaxLength } from "./server-config.js";

const $ = (id) => document.getElementById(id);

/** Show "start" or "call". */
export function showScreen(which) {
  $("start-screen").hidden = which !== "start";
  $("call-screen").hidden = which !== "call";
  document.title = which === "call" ? "In a call" : "Call";
  if (which === "start") configureStartScreen();
}

/** "Create a room", or "Join the call" when the page was opened from an invitation. */
export function configureStartScreen() {
  const invited = Boolean(roomId());
  $("create-button").hidden = invited;
  $("join-button").hidden = !invited;
  $("new-room").hidden = !invited;
  $("start-title").textContent = invited ? "Join the call" : "Start a video call";
}

/** Say how full the invited room is, or why it cannot be joined. */
export async function describeInvitedRoom() {
  const info = $("room-info");
  let room;
  try {
    room = await requestJson(`/api/rooms/${encodeURIComponent(roomId())}`);
  } catch (error) {
    const code = errorCode(error);
    if (!code) {
      info.hidden = true;
      return;
    }
    const missing = code === ErrorCode.ROOM_NOT_FOUND;
    info.textContent = missing
      ? "Nobody is in this call yet. You can be the first to join."
      : errorWords(code);
    info.className = missing ? "room-info" : "room-info warn";
    info.hidden = false;
    return;
  }
  if (!room || typeof room !== "object") {
    info.hidden = true;
    return;
  }
  setCapacity(room.capacity);
  const { occupancy, capacity } = room;
  if (occupancy >= capacity) {
    info.textContent = `This call is full right now (${capacity} people).`;
    info.className = "room-info warn";
  } else if (occupancy === 0) {
    info.textContent = `Nobody is in this call yet. It has room for ${capacity} people.`;
    info.className = "room-info";
  } else {
    const who = occupancy === 1 ? "1 person is" : `${occupancy} people are`;
    info.textContent = `You're invited: ${who} in this call (room for ${capacity}).`;
    info.className = "room-info";
  }
  info.hidden = false;
}

/**
 * The form: the name as the server will store it and the languages; `problem` is what is wrong
 * with the name in words (null when nothing), `focus` whether the field needs typing again.
 */
function readForm() {
  const nameMax = nameMaxLength();
  const { name, problem } = checkName($("name-input").value, nameMax);
  const form = { name, spoken: $("spoken-select").value, listen: $("listen-select").value };
  if (problem === "empty") {
    return { form, problem: "Please enter your name so others know who you are.", focus: true };
  }
  if (problem === "long") {
    const words = `Please use a shorter name (at most ${nameMax} characters).`;
    return { form, problem: words, focus: false };
  }
  if (problem) return { form, problem: errorWords(ErrorCode.NAME_INVALID), focus: true };
  return { form, problem: null, focus: false };
}

/** Create a room for this page; false (with the reason shown) when the server refused. */
async function createRoom() {
  setBusy(true, "Creating…");
  let room = null;
  let code = "";
  try {
    room = await requestJson("/api/rooms", postJson({}));
  } catch (error) {
    code = errorCode(error);
  }
  if (!room || typeof room !== "object" || !room.id) {
    showStartMessage(
      code
        ? errorWords(code, { creating: true })
        : "Could not reach the server. Check your connection and try again.",
    );
    return false;
  }
  setCreatedRoom(room);
  history.replaceState(null, "", `/?${new URL(joinUrl()).searchParams}`);
  return true;
}

async function onStartSubmit(event, onJoin) {
  event.preventDefault();
  if (!inPhase(Phase.START)) return;
  const { form, problem, focus } = readForm();
  if (problem) {
    showStartMessage(problem);
    if (focus) $("name-input").focus();
    return;
  }
  savePrefs(form);
  showStartMessage("");
  if (!moveTo(Phase.JOINING, "start form")) return;
  if (!roomId() && !(await createRoom())) {
    moveTo(Phase.START, "room not created");
    setBusy(false);
    return;
  }
  setBusy(true, "Joining…");
  await onJoin(form);
}

/** Wire the form; `onJoin(form)` joins once the room exists. */
export function setupStartScreen({ onJoin }) {
  $("start-form").addEventListener("submit", (event) => onStartSubmit(event, onJoin));
  $("spoken-select").addEventListener("change", () =>
    savePrefs({ spoken: $("spoken-select").value }),
  );
  $("listen-select").addEventListener("change", () =>
    savePrefs({ listen: $("listen-select").value }),
  );
}
