// Direct video with each other participant: one PeerLink each, relayed through signaling. What
// each link sends follows video-caps.js, again whenever someone joins, leaves or changes.

import { Backoff } from "./backoff.js";
import { PeerLink } from "./call.js";
import { videoTrack } from "./local-media.js";
import { Phase, inPhase } from "./phases.js";
import { getOther, hasOther, onRosterChange, otherCount } from "./roster.js";
import { send } from "./socket.js";
import { forgetPeerStream, showPeerState, showPeerStream } from "./tiles.js";
import { encodingFor } from "./video-caps.js";

// Tries of the offering side after a failed connection; the other side answers each.
const P2P_RETRIES = 3;

const peers = new Map(); // participant id -> {link, retry}
let iceServers = [];

/** The STUN/TURN servers the welcome handed out, for every link made from now on. */
export function setIceServers(list) {
  iceServers = Array.isArray(list) ? list : [];
}

function createPeerLink(peerId, { offerer = false, retry = null } = {}) {
  closePeer(peerId);
  const backoff = retry || new Backoff({ baseMs: 1000, maxAttempts: P2P_RETRIES });
  const link = new PeerLink({
    peerId,
    iceServers,
    videoTrack: videoTrack(),
    sendSignal: (type, fields) => send(type, fields),
    onStream: (stream) => showPeerStream(peerId, stream),
    videoEncoding: () => encodingFor(getOther(peerId), otherCount()),
    onState: (state) => {
      showPeerState(peerId, state);
      // The side that offered tries again with a fresh connection; the other side answers it.
      if (state === "failed" && offerer) {
        backoff.schedule(() => {
          if (inPhase(Phase.CALL) && peers.get(peerId)?.link === link) {
            createPeerLink(peerId, { offerer: true, retry: backoff }).offer();
          }
        });
      }
    },
  });
  peers.set(peerId, { link, retry: backoff });
  return link;
}

/** Offer video to someone already in the call (the newcomer offers). */
export function offerTo(peerId) {
  createPeerLink(peerId, { offerer: true }).offer();
}

export function closePeer(peerId) {
  const peer = peers.get(peerId);
  if (peer) {
    peer.retry.cancel();
    peer.link.close();
  }
  peers.delete(peerId);
  forgetPeerStream(peerId);
}

export function closeAllPeers() {
  for (const id of [...peers.keys()]) closePeer(id);
}

export function onPeerOffer(msg) {
  if (!inPhase(Phase.CALL) || !hasOther(msg.from)) return;
  createPeerLink(msg.from).answer(msg.sdp);
}

export function onPeerAnswer(msg) {
  const peer = peers.get(msg.from);
  if (peer) peer.link.applyAnswer(msg.sdp);
}

export function onPeerIce(msg) {
  const peer = peers.get(msg.from);
  if (peer) peer.link.addCandidate(msg.candidate);
}

/** Apply video-caps.js again on every link (the call's size or someone's choice changed). */
export function refreshVideoEncodings() {
  for (const peer of peers.values()) peer.link.refreshVideoEncoding();
}

onRosterChange((kind) => {
  if (kind === "put" || kind === "removed") refreshVideoEncodings();
});

/** id -> RTCPeerConnection, for the test hook. */
export function peerPcs() {
  return Object.fromEntries([...peers].map(([id, peer]) => [id, peer.link.pc]));
}
