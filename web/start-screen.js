// The start screen: which screen shows, the form (name and languages; for a new room its size
// and title), and creating a room. room-preview.js says what an invitation's room is like.

import { ErrorCode } from "./generated.js";
import { saveHostKey } from "./host-keys.js";
import { errorCode, postJson, requestJson } from "./http.js";
import { errorWords, setBusy, showStartMessage } from "./messages.js";
import { checkName } from "./names.js";
import { Phase, inPhase, moveTo } from "./phases.js";
import { savePrefs } from "./prefs.js";
import { joinUrl, roomId, setCreatedRoom } from "./room.js";
import {
  nameMaxLength,
  roomDefaultCapacity,
  roomMaxCapacity,
  titleMaxLength,
} from "./server-config.js";

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
  $("create-fields").hidden = invited;
  $("start-title").textContent = invited ? "Join the call" : "Start a video call";
  if (!invited) {
    for (const id of ["room-title", "room-info", "room-people"]) $(id).hidden = true;
  }
}

/** The call sizes this server makes: a two-person call first, then rooms up to its maximum. */
function fillSizeSelect() {
  const select = $("size-select");
  const initial = Math.max(2, Math.min(roomDefaultCapacity(), roomMaxCapacity()));
  select.replaceChildren();
  for (let size = 2; size <= roomMaxCapacity(); size += 1) {
    const option = document.createElement("option");
    option.value = String(size);
    option.textContent = size === 2 ? "Two people" : `Up to ${size} people`;
    select.append(option);
  }
  select.value = String(initial);
  $("size-field").hidden = roomMaxCapacity() <= 2;
  $("title-input").maxLength = titleMaxLength();
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

/** The new room's size and title as POST /api/rooms takes them; `problem` in words or null. */
function readRoomFields() {
  const capacity = Number.parseInt($("size-select").value, 10) || 2;
  const { name: title, problem } = checkName($("title-input").value, titleMaxLength());
  const fields = { capacity };
  if (problem === "empty") return { fields, problem: null };
  if (title) fields.title = title;
  return { fields, problem: problem ? errorWords(ErrorCode.TITLE_INVALID) : null };
}

/**
 * Create a room for this page with `fields` ({capacity, title?}); false (with the reason shown)
 * when the server refused. The room's host key is kept in this browser, never in its address.
 */
async function createRoom(fields) {
  setBusy(true, "Creating…");
  let room = null;
  let code = "";
  try {
    room = await requestJson("/api/rooms", postJson(fields));
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
  saveHostKey(room.id, room.host_key);
  const address = new URL(joinUrl()).searchParams;
  // A measuring switch on this page's address stays on it (it is not part of the link).
  const caps = new URLSearchParams(window.location.search).get("videocaps");
  if (caps) address.set("videocaps", caps);
  history.replaceState(null, "", `/?${address}`);
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
  const creating = !roomId();
  const room = creating ? readRoomFields() : null;
  if (room && room.problem) {
    showStartMessage(room.problem);
    $("title-input").focus();
    return;
  }
  savePrefs(form);
  showStartMessage("");
  if (!moveTo(Phase.JOINING, "start form")) return;
  if (creating && !(await createRoom(room.fields))) {
    moveTo(Phase.START, "room not created");
    setBusy(false);
    return;
  }
  setBusy(true, "Joining…");
  await onJoin(form);
}

/** Wire the form; `onJoin(form)` joins once the room exists. */
export function setupStartScreen({ onJoin }) {
  fillSizeSelect();
  $("start-form").addEventListener("submit", (event) => onStartSubmit(event, onJoin));
  $("spoken-select").addEventListener("change", () =>
    savePrefs({ spoken: $("spoken-select").value }),
  );
  $("listen-select").addEventListener("change", () =>
    savePrefs({ listen: $("listen-select").value }),
  );
}
