// The rejoin key each `welcome` gives, in sessionStorage by room id: a page whose connection
// drops (or that reloads) in a locked room gets back in with it. Per tab, not per browser, so
// a second tab is a second participant that the lock keeps out (docs/protocol.md, "Hosted
// rooms").

const PREFIX = "callserver.rejoin.";

/** Keep `key` for `roomId` for this tab. */
export function saveRejoinKey(roomId, key) {
  if (!roomId || typeof key !== "string" || !key) return;
  try {
    sessionStorage.setItem(PREFIX + roomId, key);
  } catch {
    // Storage refused: a rejoin then meets the lock like anyone new.
  }
}

/** The key this tab holds for `roomId`, or null. */
export function rejoinKey(roomId) {
  try {
    return roomId ? sessionStorage.getItem(PREFIX + roomId) : null;
  } catch {
    return null;
  }
}

/** Forget the key of `roomId` (removed by a host: the server took the seat away). */
export function forgetRejoinKey(roomId) {
  try {
    if (roomId) sessionStorage.removeItem(PREFIX + roomId);
  } catch {
    // Nothing kept.
  }
}
