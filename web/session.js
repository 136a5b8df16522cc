// Joining, being in and leaving the call: the signaling messages and what each one changes.
// Every phase change goes through phases.js; every rejoin waits on one Backoff. Being removed
// or the call being ended by a host ends the call on this page: nothing joins again by itself.

import { Backoff } from "./backoff.js";
import {
  closePopovers,
  renderRoomLabel,
  renderTranscriptLinks,
  syncCallLanguages,
} from "./call-controls.js";
import { dismissConfirm } from "./confirm-dialog.js";
import { CloseCode, ErrorCode } from "./generated.js";
import { isHost, renderHostControls } from "./host-controls.js";
import { forgetHostKey, hostKey } from "./host-keys.js";
import { defaultLanguage } from "./languages.js";
import {
  ensureLocalMedia,
  isMutedByHost,
  mediaNote,
  renderLocal,
  showSelfState,
  stopLocalMedia,
} from "./local-media.js";
import {
  errorWords,
  setBusy,
  setConnection,
  showCallMessage,
  showStartMessage,
} from "./messages.js";
import { onMixApplied, onMixRefused, restoreMix } from "./mix-controls.js";
import {
  closeAllPeers,
  closePeer,
  offerTo,
  onPeerAnswer,
  onPeerIce,
  onPeerOffer,
  setIceServers,
} from "./peers.js";
import { Phase, canMoveTo, inPhase, moveTo } from "./phases.js";
import { loadPrefs, savePrefs } from "./prefs.js";
import { forgetRejoinKey, rejoinKey, saveRejoinKey } from "./rejoin-keys.js";
import { roomId, roomLocked, roomToken, setRoomState, setWelcomeTokens } from "./room.js";
import { describeInvitedRoom } from "./room-preview.js";
import * as roster from "./roster.js";
import {
  applyServerAnswer,
  restartServerMedia,
  startServerMedia,
  stopServerMedia,
} from "./server-media.js";
import * as socket from "./socket.js";
import { showScreen } from "./start-screen.js";
import { clearTiles, removeTile, renderTile, updateLayout } from "./tiles.js";
import {
  closeText,
  endedText,
  lockText,
  mutedByHostText,
  otherRemovedText,
  removedText,
} from "./words.js";

const UNREACHABLE = "Could not reach the server. Check your connection and try again.";

// Joining again after the socket dropped: 1, 2, 4, 8, 10, 10… seconds, ±25%.
const rejoin = new Backoff({ baseMs: 1000, maxMs: 10000, jitter: 0.25 });
let captions = null;

const HANDLERS = {
  welcome: onWelcome,
  "participant-joined": onParticipantJoined,
  "participant-updated": onParticipantUpdated,
  "participant-left": onParticipantLeft,
  "room-updated": onRoomUpdated,
  removed: onRemoved,
  ended: onEnded,
  answer: (msg) => applyServerAnswer(msg.sdp),
  "p2p-offer": onPeerOffer,
  "p2p-answer": onPeerAnswer,
  "p2p-ice": onPeerIce,
  draining: onDraining,
  redirect: onRedirect,
  prefs: onMixApplied,
  error: onServerError,
};

/** `panel`: the CaptionPanel, cleared when a call ends and refreshed on a language change. */
export function setupSession(panel) {
  captions = panel;
  window.addEventListener("pagehide", () => socket.send("leave"));
}

function joinMessage() {
  const form = loadPrefs();
  const fields = {
    room: roomId(),
    name: form.name,
    spoken: form.spoken || defaultLanguage(),
    listen: form.listen || defaultLanguage(),
  };
  const token = roomToken();
  if (token) fields.token = token;
  // Only in this message: never in the page's address or the link it shares.
  const key = hostKey(roomId());
  if (key) fields.host_key = key;
  const seat = rejoinKey(roomId());
  if (seat) fields.rejoin_key = seat;
  return fields;
}

/** Open a socket and ask to join; false when the server could not be reached. */
async function openAndJoin() {
  const ok = await socket.openSocket(HANDLERS, onSocketLost);
  if (ok) socket.send("join", joinMessage());
  return ok;
}

/** Join the room with `form` (the start screen has moved to joining). */
export async function joinCall(form) {
  await ensureLocalMedia();
  savePrefs(form);
  if (!(await openAndJoin())) failJoin(UNREACHABLE);
}

/** Close every connection of the call; the socket and local media stay. */
function teardownCall() {
  stopServerMedia();
  closeAllPeers();
  roster.clearRoster();
  clearTiles();
  updateLayout();
}

/** A join that did not work: back to the start screen with the reason in words. */
function failJoin(text) {
  moveTo(Phase.START, "join failed");
  teardownCall();
  socket.closeSocket();
  stopLocalMedia();
  setConnection("idle");
  showScreen("start");
  setBusy(false);
  showStartMessage(text);
}

/** The call is over (left, or the server ended it): back to the start screen. */
function endCall(text) {
  moveTo(Phase.START, "call ended");
  rejoin.cancel();
  teardownCall();
  socket.closeSocket();
  stopLocalMedia();
  socket.setDraining(false);
  captions.clear();
  closePopovers();
  dismissConfirm();
  setConnection("idle");
  showScreen("start");
  showCallMessage("");
  setBusy(false);
  showStartMessage(text, "info");
  describeInvitedRoom();
}

export function leaveCall() {
  socket.send("leave");
  endCall("You left the call. You can join again with the button below.");
}

/** A join that may work later: wait and rejoin while reconnecting, else give up with `text`. */
function joinFailed(text) {
  if (inPhase(Phase.RECONNECTING)) rejoinLater();
  else if (inPhase(Phase.JOINING)) failJoin(text);
}

/** Lost the call but not the wish to be in it: keep the call screen and join again. */
function reconnect() {
  if (!canMoveTo(Phase.RECONNECTING)) {
    moveTo(Phase.RECONNECTING, "connection lost"); // refused: logs why
    return;
  }
  // Torn down before the move, while the call is on screen: a call that was in progress keeps
  // the waiting panel, with the link to share, while the page joins again.
  teardownCall();
  socket.closeSocket();
  moveTo(Phase.RECONNECTING, "connection lost");
  setConnection(socket.isDraining() ? "draining" : "reconnecting");
  rejoinLater();
}

function rejoinLater() {
  rejoin.schedule(async () => {
    if (!inPhase(Phase.RECONNECTING)) return;
    socket.closeSocket();
    // The room's node may be what went away: ask the page's own server, which places the
    // room again and redirects if it must.
    socket.forgetNode();
    const ok = await socket.openSocket(HANDLERS, onSocketLost);
    if (!inPhase(Phase.RECONNECTING)) return;
    if (ok) socket.send("join", joinMessage());
    else rejoinLater();
  });
}

/** Another node holds the room's calls: join there (docs/protocol.md, `redirect`). */
async function onRedirect(msg) {
  if (!socket.redirectTo(msg.url)) {
    joinFailed("The call servers could not agree where this call is. Please try again.");
    return;
  }
  if (!(await openAndJoin())) {
    socket.forgetNode();
    joinFailed("Could not reach the server holding this call. Please try again.");
  }
}

function onWelcome(msg) {
  if (!moveTo(Phase.CALL, "welcome")) return;
  socket.joined();
  rejoin.reset();
  socket.setDraining(false);
  setRoomState(msg.room);
  saveRejoinKey(roomId(), msg.rejoin_key);
  setWelcomeTokens(msg.participant.host, msg.guest_token);
  roster.setSelf(msg.participant);
  showSelfState(msg.participant);
  const iceServers = Array.isArray(msg.ice_servers) ? msg.ice_servers : [];
  setIceServers(iceServers);
  setBusy(false);
  showStartMessage("");
  showScreen("call");
  setConnection("connecting");
  showCallMessage(mediaNote() || "");
  syncCallLanguages(roster.self());
  renderLocal();
  renderRoomLabel();
  renderHostControls();
  renderTranscriptLinks();
  restoreMix();
  for (const participant of msg.room.participants) {
    if (roster.isSelf(participant.id)) continue;
    roster.putOther(participant);
    renderTile(participant);
    offerTo(participant.id);
  }
  updateLayout();
  startServerMedia(iceServers);
}

function onParticipantJoined(msg) {
  const participant = msg.participant;
  if (!roster.self() || roster.isSelf(participant.id)) return;
  roster.putOther(participant);
  renderTile(participant);
  updateLayout();
}

function onParticipantUpdated(msg) {
  const participant = msg.participant;
  if (roster.isSelf(participant.id)) {
    const wasMuted = isMutedByHost();
    roster.setSelf(participant);
    showSelfState(participant);
    syncCallLanguages(participant);
    captions.refresh();
    if (Boolean(participant.muted) !== wasMuted) {
      showCallMessage(mutedByHostText(Boolean(participant.muted)), {
        timeoutMs: participant.muted ? 0 : 8000,
      });
    }
    return;
  }
  if (!roster.hasOther(participant.id)) return;
  roster.putOther(participant);
  renderTile(participant);
}

function onParticipantLeft(msg) {
  const id = msg.participant_id;
  if (msg.reason === "removed" && roster.hasOther(id)) {
    showCallMessage(otherRemovedText(roster.getOther(id).name), { timeoutMs: 8000 });
  }
  closePeer(id);
  roster.removeOther(id);
  removeTile(id);
  updateLayout();
}

/** A host locked or unlocked the room (or the room changed otherwise). */
function onRoomUpdated(msg) {
  if (!inPhase(Phase.CALL) || !msg.room) return;
  const wasLocked = roomLocked();
  setRoomState(msg.room);
  renderRoomLabel();
  renderHostControls();
  if (roomLocked() !== wasLocked) {
    showCallMessage(lockText(roomLocked(), isHost()), { timeoutMs: 8000 });
  }
}

/** A host put this page out of the call: it says so and stays out. */
function onRemoved(msg) {
  forgetRejoinKey(roomId());
  if (!inPhase(Phase.CALL, Phase.RECONNECTING)) return;
  endCall(removedText(typeof msg.by === "string" ? msg.by : ""));
}

/** A host ended the call for everyone (this page's own host included). */
function onEnded(msg) {
  if (!inPhase(Phase.CALL, Phase.RECONNECTING)) return;
  const by = typeof msg.by === "string" ? msg.by : "";
  const mine = isHost() && by === roster.self()?.name;
  endCall(endedText(by, mine));
}

function onDraining() {
  socket.setDraining(true);
  setConnection("draining");
  showCallMessage("The server is restarting. The call will reconnect when it is back.");
}

function onServerError(msg) {
  const code = msg.code;
  if (msg.in_reply_to === "prefs") {
    onMixRefused(code);
    return;
  }
  if (msg.in_reply_to === "join") {
    // The key is not this room's (it expired and the id came back): it never will be.
    if (code === ErrorCode.HOST_KEY_INVALID) forgetHostKey(roomId());
    if (inPhase(Phase.JOINING)) {
      failJoin(errorWords(code));
    } else if (inPhase(Phase.RECONNECTING)) {
      if (msg.retry || code === ErrorCode.DRAINING) rejoinLater();
      else endCall(errorWords(code));
    }
    return;
  }
  if (code === ErrorCode.MEDIA_FAILED) {
    restartServerMedia();
  } else if (code === ErrorCode.PEER_NOT_FOUND) {
    console.info("signaling:", msg.message);
  } else if (code === ErrorCode.DRAINING) {
    onDraining();
  } else if (code === ErrorCode.NOT_JOINED && inPhase(Phase.CALL)) {
    reconnect();
  } else if (inPhase(Phase.CALL)) {
    showCallMessage(errorWords(code), { timeoutMs: 8000 });
  } else {
    showStartMessage(errorWords(code));
  }
}

/** The current socket closed without the page closing it. */
function onSocketLost(detail) {
  if (inPhase(Phase.JOINING)) {
    failJoin(closeText(detail.code) || "The connection to the server was lost. Please try again.");
    return;
  }
  if (!inPhase(Phase.CALL, Phase.RECONNECTING)) return;
  if (detail.code === CloseCode.MESSAGE_TOO_BIG || detail.code === CloseCode.TOO_MANY_ERRORS) {
    endCall(closeText(detail.code));
    return;
  }
  if (detail.code === CloseCode.GOING_AWAY) socket.setDraining(true);
  const words = closeText(detail.code);
  if (words) showCallMessage(words);
  reconnect();
}
