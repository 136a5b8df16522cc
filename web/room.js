// The room this page creates or is invited to: its id, join token and size, its title and lock,
// and its link.

let id = null;
let token = null;
let guestToken = null; // a host's page shares this instead of its own (host) token
let hostPage = false;
let capacity = null;
let title = null;
let locked = false;

/** Read the invitation from the page's address (`?room=…&token=…`). */
export function readInvitation(search = window.location.search) {
  const params = new URLSearchParams(search);
  id = params.get("room") || null;
  token = params.get("token") || null;
}

export function roomId() {
  return id;
}

export function roomToken() {
  return token;
}

export function roomCapacity() {
  return capacity;
}

export function setCapacity(value) {
  capacity = value;
}

export function roomTitle() {
  return title;
}

export function roomLocked() {
  return locked;
}

/** What the server says of the room (welcome, room-updated, GET /api/rooms/{id}). */
export function setRoomState(room) {
  if (!room || typeof room !== "object") return;
  if (Number.isInteger(room.capacity)) capacity = room.capacity;
  if (room.title === null || typeof room.title === "string") title = room.title || null;
  if (typeof room.locked === "boolean") locked = room.locked;
}

/**
 * What the welcome says of this page: whether it hosts, and the guest token a host's welcome
 * carries. A host's link to share holds that guest token, never the page's own token (which
 * may grant host).
 */
export function setWelcomeTokens(isHost, guest) {
  hostPage = Boolean(isHost);
  guestToken = typeof guest === "string" && guest ? guest : null;
}

/** A room the page just created; a token it came with replaces the invitation's. */
export function setCreatedRoom(room) {
  id = room.id;
  capacity = room.capacity;
  title = typeof room.title === "string" && room.title ? room.title : null;
  locked = false;
  guestToken = null;
  hostPage = false; // the page's token is the room's guest token (POST /api/rooms `token`)
  if (room.token) token = room.token;
}

/** The link that invites others to this room: never a host's own token or key. */
export function joinUrl() {
  const url = new URL("/", window.location.origin);
  url.searchParams.set("room", id);
  const shared = hostPage ? guestToken : token;
  if (shared) url.searchParams.set("token", shared);
  return url.toString();
}
