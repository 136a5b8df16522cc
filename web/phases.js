// The call's phases and the only moves between them. The rest of the page asks this module
// which phase it is in and asks it to move; a move the table does not list is refused and
// logged, so a late event (a socket closing after the user left, a second click) cannot put the
// page somewhere nobody planned for.

export const Phase = Object.freeze({
  START: "start", // the start screen: nothing open
  JOINING: "joining", // the form was sent: creating the room, opening the socket, joining
  CALL: "call", // welcomed: in the call
  RECONNECTING: "reconnecting", // the call screen stays while the page joins again
});

/** Each phase and the phases it may move to. */
const TRANSITIONS = Object.freeze({
  // The form was sent.
  [Phase.START]: Object.freeze([Phase.JOINING]),
  // Welcomed, or refused / unreachable.
  [Phase.JOINING]: Object.freeze([Phase.CALL, Phase.START]),
  // The socket dropped or the server forgot us; or the user left, or the server ended it.
  [Phase.CALL]: Object.freeze([Phase.RECONNECTING, Phase.START]),
  // The new socket dropped too (back off again), welcomed again, or given up / left.
  [Phase.RECONNECTING]: Object.freeze([Phase.RECONNECTING, Phase.CALL, Phase.START]),
});

let current = Phase.START;

/** The phase now. */
export function phase() {
  return current;
}

/** Whether the page is in one of `phases`. */
export function inPhase(...phases) {
  return phases.includes(current);
}

/** Whether the table allows moving from the phase now to `next`. */
export function canMoveTo(next) {
  return TRANSITIONS[current].includes(next);
}

/** Move to `next` if the table allows it, else log and stay; returns whether it moved. */
export function moveTo(next, why = "") {
  if (!canMoveTo(next)) {
    console.error(`call phase: refused ${current} -> ${next}${why ? ` (${why})` : ""}`);
    return false;
  }
  current = next;
  return true;
}
