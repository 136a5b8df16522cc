// Peer connections: one to the server (audio + data channel), one per other participant (video).

const ICE_GATHER_TIMEOUT_MS = 4000;

/** Resolve once ICE gathering is complete (the server does not trickle), or after a timeout. */
function iceGatheringComplete(pc, timeoutMs = ICE_GATHER_TIMEOUT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/**
 * The browser <-> server connection: the microphone goes up, this listener's mix comes down,
 * and a data channel named "events" carries JSON events from the server.
 *
 * `iceServers` are the STUN/TURN servers the server hands out (welcome's `ice_servers`), the
 * same list the direct video uses: a caller whose firewall blocks UDP reaches the server's media
 * only through TURN. The offer waits for ICE gathering (relay candidates included) for at most
 * ICE_GATHER_TIMEOUT_MS, so an unreachable TURN server delays the start of a call by that much
 * at worst; the host and reflexive candidates gathered by then still go in the offer.
 *
 * Callbacks: onTrack(MediaStream), onEvent(object), onState(connectionState).
 */
export class ServerLink {
  constructor({ iceServers, audioTrack, onTrack, onEvent, onState }) {
    this.iceServers = iceServers || [];
    this.audioTrack = audioTrack;
    this.onTrack = onTrack;
    this.onEvent = onEvent;
    this.onState = onState;
    this.pc = null;
    this.channel = null;
    this.events = [];
  }

  /** Make a fresh connection and return the offer SDP, ICE candidates included. */
  async createOffer() {
    this.close();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    if (this.audioTrack) {
      pc.addTrack(this.audioTrack, new MediaStream([this.audioTrack]));
    } else {
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
    const channel = pc.createDataChannel("events");
    this.channel = channel;
    channel.addEventListener("message", (event) => {
      if (this.pc !== pc) return;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      this.events.push(data);
      // Captions arrive several times a second for the whole call: keep only the recent ones.
      if (this.events.length > 200) this.events.shift();
      this.onEvent(data);
    });
    pc.addEventListener("track", (event) => {
      if (this.pc !== pc) return;
      const stream = event.streams[0] || new MediaStream([event.track]);
      this.onTrack(stream);
    });
    pc.addEventListener("connectionstatechange", () => {
      if (this.pc === pc) this.onState(pc.connectionState);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    if (this.pc !== pc) throw new Error("superseded");
    return pc.localDescription.sdp;
  }

  async applyAnswer(sdp) {
    if (this.pc === null || this.pc.signalingState !== "have-local-offer") return;
    await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  get state() {
    return this.pc ? this.pc.connectionState : "closed";
  }

  close() {
    if (this.pc !== null) {
      const pc = this.pc;
      this.pc = null;
      this.channel = null;
      pc.close();
    }
  }
}

/**
 * A direct browser <-> browser connection with one other participant, video only.
 * All work on it is serialized so candidates never race the descriptions they belong to.
 *
 * Callbacks: sendSignal(type, fields), onStream(MediaStream), onState(connectionState).
 * videoEncoding() says what the camera sender's first encoding should hold now (fields of
 * RTCRtpEncodingParameters: active, maxBitrate…; null leaves it as it is): applied after each
 * offer/answer exchange and on refreshVideoEncoding().
 */
export class PeerLink {
  constructor({ peerId, iceServers, videoTrack, sendSignal, onStream, onState, videoEncoding }) {
    this.peerId = peerId;
    this.videoTrack = videoTrack;
    this.sendSignal = sendSignal;
    this.onStream = onStream;
    this.onState = onState;
    this.videoEncoding = videoEncoding || (() => null);
    this.queue = Promise.resolve();
    this.closed = false;
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    pc.addEventListener("icecandidate", (event) => {
      if (this.closed) return;
      this.sendSignal("p2p-ice", {
        to: this.peerId,
        candidate: event.candidate ? event.candidate.toJSON() : null,
      });
    });
    pc.addEventListener("track", (event) => {
      if (this.closed) return;
      this.onStream(event.streams[0] || new MediaStream([event.track]));
    });
    pc.addEventListener("connectionstatechange", () => {
      if (!this.closed) this.onState(pc.connectionState);
    });
  }

  run(task) {
    this.queue = this.queue.then(task).catch((error) => {
      if (!this.closed) console.warn(`p2p with ${this.peerId}:`, error);
    });
    return this.queue;
  }

  /** Newcomer side: offer our camera (or ask to receive only). */
  offer() {
    return this.run(async () => {
      if (this.videoTrack) {
        this.pc.addTrack(this.videoTrack, new MediaStream([this.videoTrack]));
      } else {
        this.pc.addTransceiver("video", { direction: "recvonly" });
      }
      await this.pc.setLocalDescription(await this.pc.createOffer());
      this.sendSignal("p2p-offer", { to: this.peerId, sdp: this.pc.localDescription.sdp });
    });
  }

  /** Existing participant side: answer an offer, sending our camera back when we have one. */
  answer(sdp) {
    return this.run(async () => {
      await this.pc.setRemoteDescription({ type: "offer", sdp });
      if (this.videoTrack) {
        this.pc.addTrack(this.videoTrack, new MediaStream([this.videoTrack]));
      }
      await this.pc.setLocalDescription(await this.pc.createAnswer());
      this.sendSignal("p2p-answer", { to: this.peerId, sdp: this.pc.localDescription.sdp });
      await this.applyVideoEncoding();
    });
  }

  applyAnswer(sdp) {
    return this.run(async () => {
      if (this.pc.signalingState === "have-local-offer") {
        await this.pc.setRemoteDescription({ type: "answer", sdp });
        await this.applyVideoEncoding();
      }
    });
  }

  /** The sender of this page's camera on this link, or null. */
  videoSender() {
    return this.pc.getSenders().find((s) => s.track && s.track.kind === "video") || null;
  }

  /** Set the camera sender's first encoding to what videoEncoding() says now. */
  async applyVideoEncoding() {
    const sender = this.videoSender();
    const wanted = this.videoEncoding();
    if (this.closed || !sender || !wanted) return;
    const params = sender.getParameters();
    if (!params.encodings || params.encodings.length === 0) return;
    Object.assign(params.encodings[0], wanted);
    await sender.setParameters(params);
  }

  /** applyVideoEncoding in the link's queue, so it never races a description. */
  refreshVideoEncoding() {
    return this.run(() => this.applyVideoEncoding());
  }

  addCandidate(candidate) {
    return this.run(async () => {
      await this.pc.addIceCandidate(candidate === null ? null : candidate);
    });
  }

  get state() {
    return this.closed ? "closed" : this.pc.connectionState;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.pc.close();
  }
}
