// Who is in the call as the server last said: this page's participant and the others.

let me = null;
const others = new Map(); // participant id -> participant

export function self() {
  return me;
}

export function setSelf(participant) {
  me = participant;
}

export function isSelf(id) {
  return me !== null && me.id === id;
}

export function otherParticipants() {
  return [...others.values()];
}

export function hasOther(id) {
  return others.has(id);
}

export function putOther(participant) {
  others.set(participant.id, participant);
}

export function removeOther(id) {
  others.delete(id);
}

export function otherCount() {
  return others.size;
}

/** Nobody: the call is over or being joined again. */
export function clearRoster() {
  me = null;
  others.clear();
}
