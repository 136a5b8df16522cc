// What a guest opening an invitation sees before joining (GET /api/rooms/{id}): the call's
// title, who is in it and in which languages, how many places are left, and, in words, a room
// that is locked, full or over.

import { ErrorCode } from "./generated.js";
import { errorCode, requestJson } from "./http.js";
import { hostKey } from "./host-keys.js";
import { languageLabel } from "./languages.js";
import { errorWords } from "./messages.js";
import { roomId, roomToken, setRoomState } from "./room.js";
import { placesText } from "./words.js";

const $ = (id) => document.getElementById(id);

function show(text, warn = false) {
  const info = $("room-info");
  info.textContent = text;
  info.className = warn ? "room-info warn" : "room-info";
  info.hidden = !text;
}

function showTitle(title) {
  const el = $("room-title");
  el.textContent = title || "";
  el.hidden = !title;
}

function showPeople(people) {
  const list = $("room-people");
  list.replaceChildren();
  for (const person of Array.isArray(people) ? people : []) {
    if (!person || typeof person.name !== "string") continue;
    const item = document.createElement("li");
    const name = document.createElement("strong");
    name.textContent = person.name;
    item.append(name);
    if (person.host) item.append(" (host)");
    const langs = document.createElement("span");
    langs.className = "room-person-langs";
    langs.textContent = `speaks ${languageLabel(person.spoken)} · hears ${languageLabel(person.listen)}`;
    item.append(" ", langs);
    list.append(item);
  }
  list.hidden = list.childElementCount === 0;
}

/** What the invitation's room is like now, in one or two sentences; warn: it may refuse. */
function describe(room, hosting) {
  const { capacity, occupancy } = room;
  if (room.ended) return { text: "This call has ended.", warn: true };
  if (room.locked && !hosting) {
    return {
      text: "The host has locked this call: nobody new can join until they unlock it.",
      warn: true,
    };
  }
  if (occupancy >= capacity) {
    return { text: `This call is full right now (${capacity} people).`, warn: true };
  }
  const lead = room.locked ? "This call is locked, but you host it, so you can join. " : "";
  const host = hosting && !room.locked ? "You host this call. " : "";
  if (occupancy === 0) {
    return {
      text: `${lead}${host}Nobody is in this call yet. It has room for ${capacity} people.`,
      warn: false,
    };
  }
  const who = occupancy === 1 ? "1 person is" : `${occupancy} people are`;
  const left = placesText(capacity - occupancy);
  return { text: `${lead}${host}You're invited: ${who} in this call, ${left}.`, warn: false };
}

/** Say what the invited room is like, or why it cannot be joined. */
export async function describeInvitedRoom() {
  const id = roomId();
  if (!id) return;
  const token = roomToken();
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  let room;
  try {
    room = await requestJson(`/api/rooms/${encodeURIComponent(id)}${query}`);
  } catch (error) {
    const code = errorCode(error);
    showTitle(null);
    showPeople(null);
    if (!code) {
      show("");
      return;
    }
    const missing = code === ErrorCode.ROOM_NOT_FOUND;
    show(
      missing ? "Nobody is in this call yet. You can be the first to join." : errorWords(code),
      !missing,
    );
    return;
  }
  if (!room || typeof room !== "object" || roomId() !== id) return;
  setRoomState(room);
  showTitle(room.title);
  showPeople(room.participants);
  const { text, warn } = describe(room, Boolean(hostKey(id)));
  show(text, warn);
}
