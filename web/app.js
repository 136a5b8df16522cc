// The call page's entry: reads the server's configuration and the invitation, wires the
// screens and controls, and exposes a read-only test hook. The work lives in the modules:
//   phases.js        the call's phases and the moves allowed between them
//   session.js       joining, being in and leaving the call (signaling messages)
//   socket.js        the one signaling socket, redirects, draining
//   backoff.js       the retry schedule every reconnect uses
//   server-media.js  the media connection with the server; peers.js direct video
//   tiles.js         video tiles and the waiting state; local-media.js camera and microphone
//   mix-controls.js  dubbing, original volume, captions; call-controls.js the other buttons
//   start-screen.js  the form, creating a room; room-preview.js what the invitation's room is like
//   host-keys.js     the host keys of rooms this browser made; host-controls.js what hosts do
//   confirm-dialog.js  the question before a step that cannot be taken back
//   active-speaker.js  who speaks now; video-caps.js what the direct links send by call size
//   incoming-video.js  turning the others' video off; messages.js, words.js what the user is told
//   pairs.js         what each language pair gives; pair-view.js marks the pickers by it
//   pair-notices.js  the server's notices of speakers the listener gets no dub of
//   room.js, roster.js, server-config.js, languages.js, prefs.js  small state, with accessors
//   generated.js     names shared with the server (python -m signaling.webgen)

import { handleSpeaking, setupActiveSpeaker, speakingNow } from "./active-speaker.js";
import { setupCallControls } from "./call-controls.js";
import { CaptionPanel } from "./captions.js";
import { setupConfirmDialog } from "./confirm-dialog.js";
import { ErrorCode } from "./generated.js";
import { isHost, setupHostControls } from "./host-controls.js";
import { incomingVideoOn, setupIncomingVideo } from "./incoming-video.js";
import { defaultLanguage, fillLanguageSelect } from "./languages.js";
import { setupLocalControls } from "./local-media.js";
import { connectionState, setBusy, showStartMessage } from "./messages.js";
import { currentMix, sendPrefs, setupMixControls } from "./mix-controls.js";
import { ROOM_ID } from "./names.js";
import { PairNotices } from "./pair-notices.js";
import { setupPairView } from "./pair-view.js";
import { peerPcs } from "./peers.js";
import { phase } from "./phases.js";
import { loadPrefs } from "./prefs.js";
import { joinUrl, readInvitation, roomId, roomLocked, roomTitle } from "./room.js";
import { describeInvitedRoom } from "./room-preview.js";
import { otherParticipants, self } from "./roster.js";
import { loadServerConfig, nameMaxLength } from "./server-config.js";
import { onServerEvent, recentEvents, serverPc } from "./server-media.js";
import { joinCall, leaveCall, setupSession } from "./session.js";
import { configureStartScreen, setupStartScreen } from "./start-screen.js";
import { capsEnabled } from "./video-caps.js";
import { errorText } from "./words.js";

const $ = (id) => document.getElementById(id);

export { errorText };

window.callserverDebug = Object.freeze({
  get phase() {
    return phase();
  },
  get state() {
    return connectionState();
  },
  get self() {
    const me = self();
    return me ? { ...me } : null;
  },
  get participants() {
    return otherParticipants().map((p) => ({ ...p }));
  },
  get roomId() {
    return roomId();
  },
  get room() {
    return { id: roomId(), title: roomTitle(), locked: roomLocked(), link: roomId() && joinUrl() };
  },
  get isHost() {
    return isHost();
  },
  get speaking() {
    return speakingNow();
  },
  get videoCaps() {
    return capsEnabled();
  },
  get incomingVideo() {
    return incomingVideoOn();
  },
  get serverPc() {
    return serverPc();
  },
  get peerPcs() {
    return peerPcs();
  },
  get events() {
    return recentEvents();
  },
  get mix() {
    return currentMix();
  },
  errorText,
});

async function init() {
  readInvitation();
  configureStartScreen();
  const captions = new CaptionPanel({
    root: $("captions"),
    list: $("caption-list"),
    listenLanguage: () => self()?.listen || loadPrefs().listen || defaultLanguage(),
  });
  onServerEvent((event) => captions.handle(event));
  const notices = new PairNotices($("pair-notices"));
  onServerEvent((event) => notices.handle(event));
  onServerEvent(handleSpeaking);
  setupActiveSpeaker();
  setupConfirmDialog();
  setupMixControls(captions);
  setupSession(captions);
  $("name-input").maxLength = nameMaxLength();

  if (!(await loadServerConfig())) {
    showStartMessage("Could not reach the server. Reload the page to try again.");
    setBusy(true, "Unavailable");
    return;
  }
  $("name-input").maxLength = nameMaxLength();

  const prefs = loadPrefs();
  const fallback = defaultLanguage();
  $("name-input").value = typeof prefs.name === "string" ? prefs.name : "";
  fillLanguageSelect($("spoken-select"), prefs.spoken || fallback);
  fillLanguageSelect($("listen-select"), prefs.listen || fallback);
  fillLanguageSelect($("call-spoken-select"), prefs.spoken || fallback);
  fillLanguageSelect($("call-listen-select"), prefs.listen || fallback);
  setupPairView();

  setupStartScreen({ onJoin: joinCall });
  setupCallControls({ onLeave: leaveCall });
  setupHostControls();
  setupIncomingVideo({ onChange: () => sendPrefs({ video: incomingVideoOn() }) });
  setupLocalControls();

  if (roomId()) {
    if (!ROOM_ID.test(roomId())) {
      showStartMessage(errorText(ErrorCode.ROOM_ID_INVALID));
      $("join-button").disabled = true;
    } else {
      describeInvitedRoom();
    }
  }
  document.body.dataset.ready = "true";
  if (!$("name-input").value) $("name-input").focus();
}

init();
