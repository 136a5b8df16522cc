// The room this page creates or is invited to: its id, join token and size, and its link.

let id = null;
let token = null;
let capacity = null;

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

/** A room the page just created; a token it came with replaces the invitation's. */
export function setCreatedRoom(room) {
  id = room.id;
  capacity = room.capacity;
  if (room.token) token = room.token;
}

/** The link that invites others to this room. */
export function joinUrl() {
  const url = new URL("/", window.location.origin);
  url.searchParams.set("room", id);
  if (token) url.searchParams.set("token", token);
  return url.toString();
}
