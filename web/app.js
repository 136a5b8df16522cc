// The call page: start screen, call screen and the glue between signaling and media.

import { PeerLink, ServerLink } from "./call.js";
import { CaptionPanel } from "./captions.js";
import { ROOM_ID, checkName } from "./names.js";
import { SignalingClient, signalingUrl } from "./signaling.js";

const $ = (id) => document.getElementById(id);
const STORAGE_KEY = "callserver.prefs";

// --- words ----------------------------------------------------------------------------------

/** A sentence for every server error code (signaling/errors.py). */
/** Redirects one join may follow before the page gives up (each one is a node's answer). */
const MAX_REDIRECTS = 3;

const ERROR_TEXT = {
  bad_json: "The server could not read a message from this page. Reload the page and try again.",
  bad_message: "The server did not understand a request from this page. Reload the page and try again.",
  unknown_type: "This page does not match the server's version. Reload the page.",
  unsupported_version: "This page is out of date for this server. Reload the page.",
  not_joined: "You are no longer in the call. Join again to continue.",
  already_joined: "You are already in this call.",
  room_id_invalid: "This link is broken: the call's name is not valid. Ask for a new link.",
  room_not_found: "This call does not exist any more. Create a new room or ask for a new link.",
  room_full: (ctx) =>
    ctx.capacity ? `This call is full (${ctx.capacity} people).` : "This call is full.",
  rooms_exhausted: "The server has too many calls right now. Try again in a few minutes.",
  nodes_full: "Every call server is busy right now. Try again in a few minutes.",
  capacity_invalid: "That call size is not allowed on this server.",
  token_required: (ctx) =>
    ctx.creating
      ? "Only the server's operator can create rooms here. Ask them for an invitation link."
      : "This call needs a full invitation link. Ask the person who invited you for it.",
  token_invalid: "This invitation link is not valid. Ask for a new one.",
  token_expired: "This invitation link has expired. Ask for a new one.",
  token_wrong_room: "This invitation link belongs to a different call.",
  rate_limited: "Too many attempts in a short time. Wait a minute and try again.",
  name_invalid: (ctx) =>
    `Please choose another name: 1 to ${ctx.nameMax || 64} characters, without special symbols.`,
  language_invalid: "That language is not available on this server. Pick another one.",
  sdp_invalid: "The server rejected your browser's connection details. Reload the page and try again.",
  sdp_too_large: "Your browser's connection details were too large for the server. Try another browser.",
  peer_not_found: "That person has already left the call.",
  draining: "The server is restarting. Try again in a minute.",
  media_failed: "The sound connection dropped. Reconnecting it now…",
  internal: "Something went wrong on the server. Please try again.",
};

const CLOSE_TEXT = {
  1009: "A message was too large for the server, so it closed the connection. Reload the page.",
  4000: "The server closed the connection after too many errors. Reload the page.",
  4029: "Too many messages were sent too quickly. Reconnecting shortly…",
};

/** Human words for an error code; never the raw message. */
export function errorText(code, ctx = {}) {
  const entry = ERROR_TEXT[code];
  if (typeof entry === "function") return entry(ctx);
  return entry || "Something went wrong. Please try again.";
}

const STATE_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  "media-failed": "Media failed — retrying",
  draining: "Server is shutting down",
  left: "You left the call",
};

// --- state ----------------------------------------------------------------------------------

const app = {
  config: null,
  languages: new Map(),
  roomId: null,
  token: null,
  capacity: null,
  joinUrl: null,
  phase: "start", // start | joining | call
  connection: "idle",
  self: null,
  participants: new Map(), // id -> participant (others only)
  signaling: null,
  serverLink: null,
  peers: new Map(), // id -> PeerLink
  remoteStreams: new Map(), // id -> MediaStream
  localStream: null,
  audioTrack: null,
  videoTrack: null,
  micMuted: false,
  cameraOff: false,
  reconnectTimer: null,
  // The room's node when it is not the page's own server (distributed mode), and how many
  // redirects the current join has followed.
  nodeUrl: null,
  redirects: 0,
  reconnectAttempt: 0,
  draining: false,
  mediaNote: null,
  events: [],
  captions: null,
  // The listener's mix, applied by the server; kept in localStorage across visits.
  mix: { dub: true, originalVolume: 1 },
  mixPending: 0, // prefs messages sent and not answered yet
  mixTimer: null,
};

window.callserverDebug = Object.freeze({
  get phase() {
    return app.phase;
  },
  get state() {
    return app.connection;
  },
  get self() {
    return app.self ? { ...app.self } : null;
  },
  get participants() {
    return [...app.participants.values()].map((p) => ({ ...p }));
  },
  get roomId() {
    return app.roomId;
  },
  get serverPc() {
    return app.serverLink ? app.serverLink.pc : null;
  },
  get peerPcs() {
    return Object.fromEntries([...app.peers].map(([id, link]) => [id, link.pc]));
  },
  get events() {
    return app.events.slice();
  },
  get mix() {
    return { ...app.mix };
  },
  errorText,
});

// --- preferences ----------------------------------------------------------------------------

function loadPrefs() {
  try {
    const raw = JSON.parse(localStorage.getItem(STORAGE_KEY) || "{}");
    return raw && typeof raw === "object" ? raw : {};
  } catch {
    return {};
  }
}

function savePrefs(prefs) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ ...loadPrefs(), ...prefs }));
  } catch {
    // Private mode or storage full: the page works without remembering.
  }
}

function languageLabel(code) {
  const lang = app.languages.get(code) || app.languages.get(String(code).split("-")[0]);
  if (!lang) return code;
  return lang.native === lang.name ? lang.name : `${lang.native} (${lang.name})`;
}

function fillLanguageSelect(select, selected) {
  select.replaceChildren();
  for (const lang of app.languages.values()) {
    const option = document.createElement("option");
    option.value = lang.code;
    option.textContent = languageLabel(lang.code);
    select.append(option);
  }
  select.value = app.languages.has(selected) ? selected : "en";
}

function defaultLanguage() {
  const primary = (navigator.language || "en").split("-")[0].toLowerCase();
  return app.languages.has(primary) ? primary : "en";
}

// --- start screen ---------------------------------------------------------------------------

function showStartMessage(text, kind = "error") {
  const el = $("start-message");
  el.textContent = text || "";
  el.className = `message ${kind}`;
  el.hidden = !text;
}

function showCallMessage(text, { timeoutMs = 0 } = {}) {
  const el = $("call-message");
  clearTimeout(showCallMessage.timer);
  el.textContent = text || "";
  el.hidden = !text;
  if (text && timeoutMs) {
    showCallMessage.timer = setTimeout(() => {
      el.hidden = true;
    }, timeoutMs);
  }
}

function setBusy(busy, label) {
  for (const id of ["create-button", "join-button"]) {
    const button = $(id);
    button.disabled = busy;
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.textContent = busy ? label : button.dataset.label;
  }
}

async function fetchJson(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch {
    return { ok: false, status: 0, body: null };
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { ok: response.ok, status: response.status, body };
}

function buildJoinUrl() {
  const url = new URL("/", window.location.origin);
  url.searchParams.set("room", app.roomId);
  if (app.token) url.searchParams.set("token", app.token);
  return url.toString();
}

async function describeInvitedRoom() {
  const info = $("room-info");
  const result = await fetchJson(`/api/rooms/${encodeURIComponent(app.roomId)}`);
  if (result.ok && result.body) {
    app.capacity = result.body.capacity;
    const { occupancy, capacity } = result.body;
    if (occupancy >= capacity) {
      info.textContent = `This call is full right now (${capacity} people).`;
      info.className = "room-info warn";
    } else if (occupancy === 0) {
      info.textContent = `Nobody is in this call yet. It has room for ${capacity} people.`;
      info.className = "room-info";
    } else {
      const who = occupancy === 1 ? "1 person is" : `${occupancy} people are`;
      info.textContent = `You're invited: ${who} in this call (room for ${capacity}).`;
      info.className = "room-info";
    }
  } else if (result.body && result.body.error) {
    const code = result.body.error.code;
    info.textContent =
      code === "room_not_found"
        ? "Nobody is in this call yet. You can be the first to join."
        : errorText(code, errorContext());
    info.className = code === "room_not_found" ? "room-info" : "room-info warn";
  } else {
    info.hidden = true;
    return;
  }
  info.hidden = false;
}

function errorContext(extra = {}) {
  return {
    capacity: app.capacity,
    nameMax: app.config ? app.config.name_max_length : 64,
    ...extra,
  };
}

function readForm() {
  const nameMax = app.config ? app.config.name_max_length : 64;
  const { name, problem } = checkName($("name-input").value, nameMax);
  const spoken = $("spoken-select").value;
  const listen = $("listen-select").value;
  return { name, nameProblem: problem, spoken, listen };
}

async function onStartSubmit(event) {
  event.preventDefault();
  if (app.phase !== "start") return;
  const { nameProblem, ...form } = readForm();
  const nameMax = app.config ? app.config.name_max_length : 64;
  if (nameProblem === "empty") {
    showStartMessage("Please enter your name so others know who you are.");
    $("name-input").focus();
    return;
  }
  if (nameProblem === "long") {
    showStartMessage(`Please use a shorter name (at most ${nameMax} characters).`);
    return;
  }
  if (nameProblem) {
    showStartMessage(errorText("name_invalid", errorContext()));
    $("name-input").focus();
    return;
  }
  savePrefs(form);
  showStartMessage("");
  app.phase = "joining";
  if (!app.roomId) {
    setBusy(true, "Creating…");
    const result = await fetchJson("/api/rooms", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    if (!result.ok || !result.body || !result.body.id) {
      app.phase = "start";
      setBusy(false);
      const code = result.body && result.body.error ? result.body.error.code : null;
      showStartMessage(
        code
          ? errorText(code, errorContext({ creating: true }))
          : "Could not reach the server. Check your connection and try again.",
      );
      return;
    }
    app.roomId = result.body.id;
    app.capacity = result.body.capacity;
    if (result.body.token) app.token = result.body.token;
    history.replaceState(null, "", `/?${new URL(buildJoinUrl()).searchParams}`);
  }
  setBusy(true, "Joining…");
  await joinCall(form);
}

// --- local media ----------------------------------------------------------------------------

const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
const VIDEO_CONSTRAINTS = { width: { ideal: 640 }, height: { ideal: 360 } };

async function acquireMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return {
      stream: new MediaStream(),
      note: "Camera and microphone need a secure (https) address. You can watch and listen only.",
    };
  }
  const gum = (constraints) => navigator.mediaDevices.getUserMedia(constraints);
  try {
    return { stream: await gum({ audio: AUDIO_CONSTRAINTS, video: VIDEO_CONSTRAINTS }), note: null };
  } catch (error) {
    if (error && error.name === "NotAllowedError") {
      return {
        stream: new MediaStream(),
        note: "Camera and microphone are blocked, so you can watch and listen only. Allow them in the browser's site settings and join again to take part.",
      };
    }
  }
  const stream = new MediaStream();
  const [audio, video] = await Promise.allSettled([
    gum({ audio: AUDIO_CONSTRAINTS }),
    gum({ video: VIDEO_CONSTRAINTS }),
  ]);
  if (audio.status === "fulfilled") audio.value.getTracks().forEach((t) => stream.addTrack(t));
  if (video.status === "fulfilled") video.value.getTracks().forEach((t) => stream.addTrack(t));
  let note;
  if (audio.status === "fulfilled" && video.status !== "fulfilled") {
    note = "No camera found: the others will hear you but not see you.";
  } else if (video.status === "fulfilled" && audio.status !== "fulfilled") {
    note = "No microphone found: the others will see you but not hear you.";
  } else {
    note = "No camera or microphone found, so you can watch and listen only.";
  }
  return { stream, note };
}

function stopLocalMedia() {
  if (app.localStream) app.localStream.getTracks().forEach((track) => track.stop());
  app.localStream = null;
  app.audioTrack = null;
  app.videoTrack = null;
  $("local-video").srcObject = null;
}

// --- joining and the signaling connection ---------------------------------------------------

function joinMessage() {
  const form = loadPrefs();
  const fields = {
    room: app.roomId,
    name: form.name,
    spoken: form.spoken || defaultLanguage(),
    listen: form.listen || defaultLanguage(),
  };
  if (app.token) fields.token = app.token;
  return fields;
}

async function joinCall(form) {
  if (!app.localStream) {
    const { stream, note } = await acquireMedia();
    app.localStream = stream;
    app.audioTrack = stream.getAudioTracks()[0] || null;
    app.videoTrack = stream.getVideoTracks()[0] || null;
    app.mediaNote = note;
    app.micMuted = false;
    app.cameraOff = false;
  }
  savePrefs(form);
  const ok = await openSignaling();
  if (!ok) {
    failJoin("Could not reach the server. Check your connection and try again.");
    return;
  }
  app.signaling.send("join", joinMessage());
}

async function openSignaling() {
  // In the distributed mode the room's node may be another server than the page's.
  const client = new SignalingClient(app.nodeUrl ? signalingUrl(new URL(app.nodeUrl)) : undefined);
  app.signaling = client;
  client.on("welcome", onWelcome);
  client.on("participant-joined", onParticipantJoined);
  client.on("participant-updated", onParticipantUpdated);
  client.on("participant-left", onParticipantLeft);
  client.on("answer", onServerAnswer);
  client.on("p2p-offer", onPeerOffer);
  client.on("p2p-answer", onPeerAnswer);
  client.on("p2p-ice", onPeerIce);
  client.on("draining", onDraining);
  client.on("redirect", onRedirect);
  client.on("prefs", onMixApplied);
  client.on("error", onServerError);
  client.on("close", (detail) => onSignalingClosed(client, detail));
  try {
    await client.connect();
    return app.signaling === client;
  } catch {
    return false;
  }
}

/** A join that did not work: back to the start screen with the reason in words. */
function failJoin(text) {
  teardownCall();
  if (app.signaling) {
    app.signaling.close();
    app.signaling = null;
  }
  stopLocalMedia();
  app.phase = "start";
  setConnection("idle");
  showScreen("start");
  setBusy(false);
  showStartMessage(text);
}

/** Another node holds the room's calls: join there (docs/protocol.md, `redirect`). */
async function onRedirect(msg) {
  app.redirects = (app.redirects || 0) + 1;
  const previous = app.signaling;
  app.signaling = null;
  if (previous) previous.close();
  if (app.redirects > MAX_REDIRECTS) {
    app.redirects = 0;
    app.nodeUrl = null;
    if (app.phase === "reconnecting") scheduleReconnect();
    else failJoin("The call servers could not agree where this call is. Please try again.");
    return;
  }
  app.nodeUrl = msg.url;
  const ok = await openSignaling();
  if (!ok) {
    app.nodeUrl = null;
    if (app.phase === "reconnecting") scheduleReconnect();
    else failJoin("Could not reach the server holding this call. Please try again.");
    return;
  }
  app.signaling.send("join", joinMessage());
}

function onWelcome(msg) {
  app.redirects = 0;
  app.self = msg.participant;
  app.capacity = msg.room.capacity;
  app.iceServers = Array.isArray(msg.ice_servers) ? msg.ice_servers : [];
  app.reconnectAttempt = 0;
  app.draining = false;
  app.phase = "call";
  setBusy(false);
  showStartMessage("");
  showScreen("call");
  setConnection("connecting");
  showCallMessage(app.mediaNote || "");
  syncCallLanguages();
  renderLocal();
  renderTranscriptLinks();
  // The server starts every participant with its defaults: restore this listener's choice.
  app.mixPending = 0;
  sendMix();
  for (const participant of msg.room.participants) {
    if (participant.id === app.self.id) continue;
    app.participants.set(participant.id, participant);
    renderTile(participant);
    createPeerLink(participant.id, { offerer: true }).offer();
  }
  updateLayout();
  startServerMedia();
}

function onParticipantJoined(msg) {
  const participant = msg.participant;
  if (!app.self || participant.id === app.self.id) return;
  app.participants.set(participant.id, participant);
  renderTile(participant);
  updateLayout();
}

function onParticipantUpdated(msg) {
  const participant = msg.participant;
  if (app.self && participant.id === app.self.id) {
    app.self = participant;
    syncCallLanguages();
    app.captions.refresh();
    return;
  }
  if (!app.participants.has(participant.id)) return;
  app.participants.set(participant.id, participant);
  renderTile(participant);
}

function onParticipantLeft(msg) {
  const id = msg.participant_id;
  closePeer(id);
  app.participants.delete(id);
  removeTile(id);
  updateLayout();
}

function onDraining() {
  app.draining = true;
  setConnection("draining");
  showCallMessage("The server is restarting. The call will reconnect when it is back.");
}

function onServerError(msg) {
  const code = msg.code;
  if (msg.in_reply_to === "prefs") {
    // A server without listener preferences still carries the call: nothing to tell the user.
    app.mixPending = Math.max(0, app.mixPending - 1);
    console.info("signaling: prefs refused:", code);
    return;
  }
  if (msg.in_reply_to === "join") {
    if (app.phase === "joining") {
      failJoin(errorText(code, errorContext()));
    } else if (app.phase === "reconnecting") {
      if (msg.retry || code === "draining") {
        scheduleReconnect();
      } else {
        endCall(errorText(code, errorContext()));
      }
    }
    return;
  }
  if (code === "media_failed") {
    if (app.phase === "call") restartServerMedia();
    return;
  }
  if (code === "peer_not_found") {
    console.info("signaling:", msg.message);
    return;
  }
  if (code === "draining") {
    onDraining();
    return;
  }
  if (code === "not_joined" && app.phase === "call") {
    reconnect();
    return;
  }
  if (app.phase === "call") {
    showCallMessage(errorText(code, errorContext()), { timeoutMs: 8000 });
  } else {
    showStartMessage(errorText(code, errorContext()));
  }
}

function onSignalingClosed(client, detail) {
  if (app.signaling !== client || detail.expected) return;
  app.signaling = null;
  if (app.phase === "joining") {
    failJoin(CLOSE_TEXT[detail.code] || "The connection to the server was lost. Please try again.");
    return;
  }
  if (app.phase !== "call" && app.phase !== "reconnecting") return;
  if (detail.code === 1009 || detail.code === 4000) {
    endCall(CLOSE_TEXT[detail.code]);
    return;
  }
  if (detail.code === 1001 || app.draining) {
    app.draining = true;
  }
  if (CLOSE_TEXT[detail.code]) showCallMessage(CLOSE_TEXT[detail.code]);
  reconnect();
}

// --- reconnecting ---------------------------------------------------------------------------

function reconnect() {
  teardownCall();
  if (app.signaling) {
    app.signaling.close();
    app.signaling = null;
  }
  app.phase = "reconnecting";
  setConnection(app.draining ? "draining" : "reconnecting");
  scheduleReconnect();
}

function scheduleReconnect() {
  clearTimeout(app.reconnectTimer);
  const attempt = app.reconnectAttempt++;
  const delay = Math.min(10000, 1000 * 2 ** Math.min(attempt, 4)) * (0.75 + Math.random() / 2);
  app.reconnectTimer = setTimeout(async () => {
    if (app.phase !== "reconnecting") return;
    if (app.signaling) {
      app.signaling.close();
      app.signaling = null;
    }
    // The room's node may be what went away: ask the page's own server, which places the
    // room again and redirects if it must.
    app.nodeUrl = null;
    const ok = await openSignaling();
    if (app.phase !== "reconnecting") return;
    if (!ok) {
      scheduleReconnect();
      return;
    }
    app.signaling.send("join", joinMessage());
  }, delay);
}

// --- media: the server connection -----------------------------------------------------------

async function startServerMedia() {
  if (!app.serverLink) {
    app.serverLink = new ServerLink({
      iceServers: app.iceServers || [],
      audioTrack: app.audioTrack,
      onTrack: (stream) => {
        const audio = $("remote-audio");
        audio.srcObject = stream;
        audio.play().catch(() => {
          showCallMessage("Click anywhere to turn on the sound.");
          document.addEventListener(
            "click",
            () => {
              audio.play().catch(() => {});
              showCallMessage("");
            },
            { once: true },
          );
        });
      },
      onEvent: (event) => {
        app.events.push(event);
        if (app.events.length > 200) app.events.shift();
        app.captions.handle(event);
      },
      onState: onServerMediaState,
    });
  }
  const link = app.serverLink;
  try {
    const sdp = await link.createOffer();
    if (app.serverLink !== link || app.phase !== "call") return;
    app.signaling?.send("offer", { sdp });
  } catch (error) {
    if (app.serverLink === link && app.phase === "call") {
      console.warn("server media offer failed:", error);
      restartServerMedia();
    }
  }
}

function onServerAnswer(msg) {
  if (!app.serverLink) return;
  app.serverLink.applyAnswer(msg.sdp).catch((error) => {
    console.warn("server answer rejected:", error);
    restartServerMedia();
  });
}

function onServerMediaState(state) {
  if (app.phase !== "call") return;
  if (state === "connected") {
    app.mediaRetry = 0;
    setConnection(app.draining ? "draining" : "connected");
  } else if (state === "failed") {
    restartServerMedia();
  } else if (state === "disconnected" && !app.draining) {
    setConnection("reconnecting");
  }
}

function restartServerMedia() {
  if (app.phase !== "call") return;
  if (!app.draining) setConnection("media-failed");
  clearTimeout(app.mediaRetryTimer);
  const attempt = app.mediaRetry || 0;
  app.mediaRetry = attempt + 1;
  if (app.serverLink) app.serverLink.close();
  app.mediaRetryTimer = setTimeout(
    () => {
      if (app.phase === "call") startServerMedia();
    },
    attempt === 0 ? 0 : Math.min(8000, 500 * 2 ** attempt),
  );
}

// --- media: direct video with each participant ----------------------------------------------

const P2P_RETRIES = 3;

function createPeerLink(peerId, { offerer = false, attempt = 0 } = {}) {
  closePeer(peerId);
  const link = new PeerLink({
    peerId,
    iceServers: app.iceServers || [],
    videoTrack: app.videoTrack,
    sendSignal: (type, fields) => app.signaling?.send(type, fields),
    onStream: (stream) => {
      app.remoteStreams.set(peerId, stream);
      const tile = tileFor(peerId);
      if (tile) attachRemoteVideo(tile, stream);
    },
    onState: (state) => {
      const tile = tileFor(peerId);
      if (tile) tile.dataset.state = state;
      // The side that offered tries again with a fresh connection; the other side answers it.
      if (state === "failed" && offerer && attempt < P2P_RETRIES) {
        setTimeout(
          () => {
            if (app.phase === "call" && app.peers.get(peerId) === link) {
              createPeerLink(peerId, { offerer: true, attempt: attempt + 1 }).offer();
            }
          },
          1000 * 2 ** attempt,
        );
      }
    },
  });
  app.peers.set(peerId, link);
  return link;
}

function closePeer(peerId) {
  const link = app.peers.get(peerId);
  if (link) link.close();
  app.peers.delete(peerId);
  app.remoteStreams.delete(peerId);
}

function onPeerOffer(msg) {
  if (app.phase !== "call" || !app.participants.has(msg.from)) return;
  createPeerLink(msg.from).answer(msg.sdp);
}

function onPeerAnswer(msg) {
  const link = app.peers.get(msg.from);
  if (link) link.applyAnswer(msg.sdp);
}

function onPeerIce(msg) {
  const link = app.peers.get(msg.from);
  if (link) link.addCandidate(msg.candidate);
}

/** Close every connection of the call; the socket and local media stay. */
function teardownCall() {
  clearTimeout(app.mediaRetryTimer);
  app.mediaRetry = 0;
  for (const id of [...app.peers.keys()]) closePeer(id);
  if (app.serverLink) app.serverLink.close();
  app.serverLink = null;
  app.participants.clear();
  app.self = null;
  $("tiles").replaceChildren();
  $("remote-audio").srcObject = null;
  updateLayout();
}

function endCall(text) {
  clearTimeout(app.reconnectTimer);
  teardownCall();
  if (app.signaling) {
    app.signaling.close();
    app.signaling = null;
  }
  stopLocalMedia();
  app.draining = false;
  app.phase = "start";
  app.captions.clear();
  closePopovers();
  setConnection("idle");
  showScreen("start");
  showCallMessage("");
  setBusy(false);
  showStartMessage(text, "info");
  describeInvitedRoom();
}

function leaveCall() {
  if (app.signaling) app.signaling.send("leave");
  endCall("You left the call. You can join again with the button below.");
}

// --- rendering ------------------------------------------------------------------------------

function showScreen(which) {
  $("start-screen").hidden = which !== "start";
  $("call-screen").hidden = which !== "call";
  document.title = which === "call" ? "In a call" : "Call";
  if (which === "start") configureStartScreen();
}

function setConnection(state) {
  app.connection = state;
  $("status").dataset.state = state;
  $("state-text").textContent = STATE_TEXT[state] || state;
}

function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = parts.slice(0, 2).map((part) => [...part][0].toUpperCase());
  return letters.join("") || "?";
}

function tileFor(id) {
  return $("tiles").querySelector(`[data-participant="${CSS.escape(id)}"]`);
}

function renderTile(participant) {
  let tile = tileFor(participant.id);
  if (!tile) {
    tile = $("tile-template").content.firstElementChild.cloneNode(true);
    tile.dataset.participant = participant.id;
    const video = tile.querySelector("video");
    video.addEventListener("playing", () => tile.classList.add("has-video"));
    video.addEventListener("emptied", () => tile.classList.remove("has-video"));
    $("tiles").append(tile);
    const stream = app.remoteStreams.get(participant.id);
    if (stream) attachRemoteVideo(tile, stream);
  }
  tile.querySelector(".tile-name").textContent = participant.name;
  tile.querySelector(".tile-langs").textContent =
    `speaks ${languageLabel(participant.spoken)} · hears ${languageLabel(participant.listen)}`;
  tile.querySelector(".placeholder span").textContent = initials(participant.name);
  tile.setAttribute("aria-label", participant.name);
}

function attachRemoteVideo(tile, stream) {
  const video = tile.querySelector("video");
  if (video.srcObject !== stream) video.srcObject = stream;
  video.play().catch(() => {});
}

function removeTile(id) {
  const tile = tileFor(id);
  if (tile) tile.remove();
}

function updateLayout() {
  const count = app.participants.size;
  $("tiles").dataset.count = String(count);
  $("stage").dataset.count = String(count);
  $("waiting").hidden = count > 0 || app.phase !== "call";
  $("share-link").value = app.roomId ? buildJoinUrl() : "";
}

function renderLocal() {
  const video = $("local-video");
  const tile = $("local-tile");
  const prefs = loadPrefs();
  tile.querySelector(".placeholder span").textContent = initials(prefs.name);
  if (app.videoTrack) {
    video.srcObject = new MediaStream([app.videoTrack]);
    video.play().catch(() => {});
  } else {
    video.srcObject = null;
  }
  tile.classList.toggle("has-video", Boolean(app.videoTrack) && !app.cameraOff);
  renderControls();
}

function renderToggle(button, track, off, labels) {
  const [missing, turnOn, turnOff] = labels;
  button.disabled = !track;
  button.setAttribute("aria-pressed", String(off));
  button.classList.toggle("off", off || !track);
  button.querySelector(".label").textContent = !track ? missing : off ? turnOn : turnOff;
}

function renderControls() {
  renderToggle($("mic-button"), app.audioTrack, app.micMuted, ["No microphone", "Unmute", "Mute"]);
  $("local-muted").hidden = !app.micMuted;
  renderToggle($("camera-button"), app.videoTrack, app.cameraOff, [
    "No camera",
    "Camera on",
    "Camera off",
  ]);
  $("local-tile").classList.toggle("has-video", Boolean(app.videoTrack) && !app.cameraOff);
}

function syncCallLanguages() {
  const self = app.self;
  if (!self) return;
  const spoken = self.spoken.split("-")[0];
  const listen = self.listen.split("-")[0];
  $("call-spoken-select").value = spoken;
  $("call-listen-select").value = listen;
  $("spoken-select").value = spoken;
  $("listen-select").value = listen;
}

function configureStartScreen() {
  const invited = Boolean(app.roomId);
  $("create-button").hidden = invited;
  $("join-button").hidden = !invited;
  $("new-room").hidden = !invited;
  $("start-title").textContent = invited ? "Join the call" : "Start a video call";
}

// --- controls -------------------------------------------------------------------------------

function toggleMic() {
  if (!app.audioTrack) return;
  app.micMuted = !app.micMuted;
  app.audioTrack.enabled = !app.micMuted;
  renderControls();
}

function toggleCamera() {
  if (!app.videoTrack) return;
  app.cameraOff = !app.cameraOff;
  app.videoTrack.enabled = !app.cameraOff;
  renderControls();
}

async function copyLink() {
  const url = buildJoinUrl();
  let copied = false;
  try {
    await navigator.clipboard.writeText(url);
    copied = true;
  } catch {
    const field = $("share-link");
    field.value = url;
    field.hidden = false;
    field.select();
    try {
      copied = document.execCommand("copy");
    } catch {
      copied = false;
    }
  }
  const label = $("copy-button").querySelector(".label");
  clearTimeout(copyLink.timer);
  if (copied) {
    label.textContent = "Copied";
    $("copy-button").classList.add("done");
  } else {
    showCallMessage(`Copy this link to invite others: ${url}`);
  }
  copyLink.timer = setTimeout(() => {
    label.textContent = "Copy link";
    $("copy-button").classList.remove("done");
  }, 2500);
}

function onCallLanguageChange(field, select) {
  const value = select.value;
  savePrefs({ [field]: value });
  $(field === "spoken" ? "spoken-select" : "listen-select").value = value;
  if (app.phase === "call") app.signaling?.send("update", { [field]: value });
}

// --- listener controls: captions, the mix, the transcript ---------------------------------

function clampVolume(value) {
  const number = Number(value);
  return Number.isFinite(number) ? Math.min(1, Math.max(0, number)) : 1;
}

function loadMix() {
  const prefs = loadPrefs();
  app.mix = {
    dub: typeof prefs.dub === "boolean" ? prefs.dub : true,
    originalVolume: prefs.original_volume === undefined ? 1 : clampVolume(prefs.original_volume),
  };
  renderMix();
  setCaptions(prefs.captions !== false, { save: false });
}

function renderMix() {
  $("dub-toggle").checked = app.mix.dub;
  const percent = Math.round(app.mix.originalVolume * 100);
  $("original-volume").value = String(percent);
  $("original-volume-value").textContent = `${percent}%`;
}

/** Send the mix now (and forget any send waiting on the slider). */
function sendMix() {
  clearTimeout(app.mixTimer);
  app.mixTimer = null;
  if (app.phase !== "call" || !app.signaling) return;
  const sent = app.signaling.send("prefs", {
    dub: app.mix.dub,
    original_volume: app.mix.originalVolume,
  });
  if (sent) app.mixPending += 1;
}

function onMixApplied(msg) {
  app.mixPending = Math.max(0, app.mixPending - 1);
  // While the user is still moving the slider, an older echo must not pull it back.
  if (app.mixPending > 0 || app.mixTimer !== null) return;
  if (typeof msg.dub === "boolean") app.mix.dub = msg.dub;
  if (typeof msg.original_volume === "number") app.mix.originalVolume = clampVolume(msg.original_volume);
  renderMix();
}

function onDubToggle() {
  app.mix.dub = $("dub-toggle").checked;
  savePrefs({ dub: app.mix.dub });
  sendMix();
}

function onVolumeInput(event) {
  app.mix.originalVolume = clampVolume(Number($("original-volume").value) / 100);
  $("original-volume-value").textContent = `${Math.round(app.mix.originalVolume * 100)}%`;
  savePrefs({ original_volume: app.mix.originalVolume });
  if (event.type === "change") {
    sendMix();
  } else if (app.mixTimer === null) {
    // Dragging fires many input events: at most a few messages a second reach the server.
    app.mixTimer = setTimeout(sendMix, 150);
  }
}

function setCaptions(on, { save = true } = {}) {
  app.captions.setEnabled(on);
  const button = $("captions-button");
  button.setAttribute("aria-pressed", String(on));
  button.classList.toggle("off", !on);
  button.querySelector(".label").textContent = on ? "Captions" : "No captions";
  if (save) savePrefs({ captions: on });
}

function renderTranscriptLinks() {
  if (!app.roomId) return;
  const base = `/api/rooms/${encodeURIComponent(app.roomId)}/transcript`;
  const query = app.token ? `?token=${encodeURIComponent(app.token)}` : "";
  for (const ext of ["srt", "vtt", "json"]) {
    const link = $(`transcript-${ext}`);
    link.href = `${base}.${ext}${query}`;
    link.download = `transcript-${app.roomId}.${ext}`;
  }
}

const POPOVERS = { "sound-button": "sound-panel", "transcript-button": "transcript-menu" };

function closePopovers(except = null) {
  for (const [buttonId, panelId] of Object.entries(POPOVERS)) {
    if (buttonId === except) continue;
    $(panelId).hidden = true;
    $(buttonId).setAttribute("aria-expanded", "false");
  }
}

function togglePopover(buttonId) {
  const panel = $(POPOVERS[buttonId]);
  const open = panel.hidden;
  closePopovers(buttonId);
  panel.hidden = !open;
  $(buttonId).setAttribute("aria-expanded", String(open));
}

function setupListenerControls() {
  app.captions = new CaptionPanel({
    root: $("captions"),
    list: $("caption-list"),
    listenLanguage: () => (app.self ? app.self.listen : loadPrefs().listen || defaultLanguage()),
  });
  loadMix();
  $("captions-button").addEventListener("click", () =>
    setCaptions($("captions-button").getAttribute("aria-pressed") !== "true"),
  );
  $("dub-toggle").addEventListener("change", onDubToggle);
  $("original-volume").addEventListener("input", onVolumeInput);
  $("original-volume").addEventListener("change", onVolumeInput);
  for (const buttonId of Object.keys(POPOVERS)) {
    $(buttonId).addEventListener("click", () => togglePopover(buttonId));
  }
  // Outside clicks and Escape close the popovers, as menus do everywhere.
  document.addEventListener("click", (event) => {
    if (!event.target.closest(".control-wrap")) closePopovers();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closePopovers();
  });
  for (const link of document.querySelectorAll("#transcript-menu a")) {
    link.addEventListener("click", () => closePopovers());
  }
}

// --- start-up -------------------------------------------------------------------------------

async function init() {
  const params = new URLSearchParams(window.location.search);
  app.roomId = params.get("room") || null;
  app.token = params.get("token") || null;
  configureStartScreen();
  setupListenerControls();

  const result = await fetchJson("/api/config");
  if (!result.ok || !result.body) {
    showStartMessage("Could not reach the server. Reload the page to try again.");
    setBusy(true, "Unavailable");
    return;
  }
  app.config = result.body;
  for (const lang of app.config.languages) app.languages.set(lang.code, lang);
  $("name-input").maxLength = app.config.name_max_length;

  const prefs = loadPrefs();
  const fallback = defaultLanguage();
  $("name-input").value = typeof prefs.name === "string" ? prefs.name : "";
  fillLanguageSelect($("spoken-select"), prefs.spoken || fallback);
  fillLanguageSelect($("listen-select"), prefs.listen || fallback);
  fillLanguageSelect($("call-spoken-select"), prefs.spoken || fallback);
  fillLanguageSelect($("call-listen-select"), prefs.listen || fallback);

  $("start-form").addEventListener("submit", onStartSubmit);
  $("spoken-select").addEventListener("change", () =>
    savePrefs({ spoken: $("spoken-select").value }),
  );
  $("listen-select").addEventListener("change", () =>
    savePrefs({ listen: $("listen-select").value }),
  );
  $("call-spoken-select").addEventListener("change", (e) =>
    onCallLanguageChange("spoken", e.target),
  );
  $("call-listen-select").addEventListener("change", (e) =>
    onCallLanguageChange("listen", e.target),
  );
  $("mic-button").addEventListener("click", toggleMic);
  $("camera-button").addEventListener("click", toggleCamera);
  $("copy-button").addEventListener("click", copyLink);
  $("leave-button").addEventListener("click", leaveCall);
  window.addEventListener("pagehide", () => {
    if (app.signaling) app.signaling.send("leave");
  });

  if (app.roomId) {
    if (!ROOM_ID.test(app.roomId)) {
      showStartMessage(errorText("room_id_invalid"));
      $("join-button").disabled = true;
    } else {
      describeInvitedRoom();
    }
  }
  document.body.dataset.ready = "true";
  if (!$("name-input").value) $("name-input").focus();
}

init();
