// Who is in the call as the server last said: this page's participant and the others.

let me = null;
const others = new Map(); // participant id -> participant
const listeners = [];

/** Hear every change: `listener(kind, id)`, kind "self", "put", "removed" or "cleared". */
export function onRosterChange(listener) {
  listeners.push(listener);
}

function changed(kind, id = null) {
  for (const listener of listeners) listener(kind, id);
}

export function self() {
  return me;
}

export function setSelf(participant) {
  me = participant;
  changed("self", participant ? participant.id : null);
}

export function isSelf(id) {
  return me !== null && me.id === id;
}

export function otherParticipants() {
  return [...others.values()];
}

/** The other participant `id` as the server last said, or undefined. */
export function getOther(id) {
  return others.get(id);
}

export function hasOther(id) {
  return others.has(id);
}

export function putOther(participant) {
  others.set(participant.id, participant);
  changed("put", participant.id);
}

export function removeOther(id) {
  others.delete(id);
  changed("removed", id);
}

export function otherCount() {
  return others.size;
}

/** Nobody: the call is over or being joined again. */
export function clearRoster() {
  me = null;
  others.clear();
  changed("cleared");
}
