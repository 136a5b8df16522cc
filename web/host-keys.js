// The host keys of the rooms this browser created, in localStorage by room id, so a host who
// reloads, leaves or loses the connection joins again as the host. A key never goes in an
// address or a link: only in the `join` message (docs/protocol.md, "Hosted rooms").

const STORAGE_KEY = "callserver.host-keys";
// Rooms expire on the server; a key kept longer than this is of no use.
const KEEP_MS = 30 * 24 * 3600 * 1000;
const KEEP_COUNT = 50;

function load() {
  try {
    const raw = JSON.parse(localStorage.getItem(STORAGE_KEY) || "{}");
    return raw && typeof raw === "object" && !Array.isArray(raw) ? raw : {};
  } catch {
    return {};
  }
}

function store(keys) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(keys));
  } catch {
    // Private mode or storage full: the host stays host only until the page closes.
  }
}

/** Remember `key` as the host key of `roomId` (dropping old and surplus entries). */
export function saveHostKey(roomId, key) {
  if (!roomId || typeof key !== "string" || !key) return;
  const now = Date.now();
  const entries = Object.entries(load()).filter(
    ([id, entry]) => id !== roomId && entry && now - Number(entry.at) < KEEP_MS,
  );
  entries.sort((a, b) => Number(b[1].at) - Number(a[1].at));
  const kept = Object.fromEntries(entries.slice(0, KEEP_COUNT - 1));
  kept[roomId] = { key, at: now };
  store(kept);
}

/** The host key this browser holds for `roomId`, or null. */
export function hostKey(roomId) {
  const entry = roomId ? load()[roomId] : null;
  return entry && typeof entry.key === "string" ? entry.key : null;
}

/** Forget the key of `roomId` (the server refused it). */
export function forgetHostKey(roomId) {
  const keys = load();
  if (!Object.hasOwn(keys, roomId)) return;
  delete keys[roomId];
  store(keys);
}
