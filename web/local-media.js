// This page's camera and microphone: asking for them, the local tile, and the mute buttons
// (the microphone's says so, and cannot be pressed, while the host has muted it).

import { loadPrefs } from "./prefs.js";
import { initials } from "./tiles.js";

const $ = (id) => document.getElementById(id);

const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
const VIDEO_CONSTRAINTS = { width: { ideal: 640 }, height: { ideal: 360 } };

let stream = null;
let audio = null;
let video = null;
let micMuted = false;
let cameraOff = false;
let mutedByHost = false; // the server drops this page's microphone until the host lifts it
let hosting = false;
let note = null; // why the page has less than a camera and a microphone, in words

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
  // One of the two may still work on its own.
  const found = new MediaStream();
  const [mic, camera] = await Promise.allSettled([
    gum({ audio: AUDIO_CONSTRAINTS }),
    gum({ video: VIDEO_CONSTRAINTS }),
  ]);
  if (mic.status === "fulfilled") mic.value.getTracks().forEach((t) => found.addTrack(t));
  if (camera.status === "fulfilled") camera.value.getTracks().forEach((t) => found.addTrack(t));
  let why;
  if (mic.status === "fulfilled" && camera.status !== "fulfilled") {
    why = "No camera found: the others will hear you but not see you.";
  } else if (camera.status === "fulfilled" && mic.status !== "fulfilled") {
    why = "No microphone found: the others will see you but not hear you.";
  } else {
    why = "No camera or microphone found, so you can watch and listen only.";
  }
  return { stream: found, note: why };
}

/** Ask for the camera and microphone unless the page already has them. */
export async function ensureLocalMedia() {
  if (stream) return;
  const got = await acquireMedia();
  stream = got.stream;
  audio = stream.getAudioTracks()[0] || null;
  video = stream.getVideoTracks()[0] || null;
  note = got.note;
  micMuted = false;
  cameraOff = false;
}

export function stopLocalMedia() {
  if (stream) stream.getTracks().forEach((track) => track.stop());
  stream = null;
  audio = null;
  video = null;
  $("local-video").srcObject = null;
  mutedByHost = false;
  hosting = false;
}

export function audioTrack() {
  return audio;
}

export function videoTrack() {
  return video;
}

/** Why the page has less than a camera and a microphone, or null. */
export function mediaNote() {
  return note;
}

/** The local tile: this page's camera, or its initials. */
export function renderLocal() {
  const element = $("local-video");
  $("local-tile").querySelector(".placeholder span").textContent = initials(loadPrefs().name);
  if (video) {
    element.srcObject = new MediaStream([video]);
    element.play().catch(() => {});
  } else {
    element.srcObject = null;
  }
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
  const mic = $("mic-button");
  renderToggle(mic, audio, micMuted || mutedByHost, ["No microphone", "Unmute", "Mute"]);
  if (mutedByHost) {
    mic.disabled = true;
    mic.classList.add("off", "by-host");
    mic.querySelector(".label").textContent = "Muted by host";
    mic.title = "The host muted your microphone. Only the host can turn it back on.";
  } else {
    mic.classList.remove("by-host");
    mic.removeAttribute("title");
  }
  $("local-muted").hidden = !micMuted && !mutedByHost;
  $("local-muted").textContent = mutedByHost ? "Muted by host" : "Muted";
  $("local-host").hidden = !hosting;
  renderToggle($("camera-button"), video, cameraOff, ["No camera", "Camera on", "Camera off"]);
  $("local-tile").classList.toggle("has-video", Boolean(video) && !cameraOff);
}

/** What the server says of this page's participant: muted by the host, hosting. */
export function showSelfState(participant) {
  mutedByHost = Boolean(participant && participant.muted);
  hosting = Boolean(participant && participant.host);
  renderControls();
}

export function isMutedByHost() {
  return mutedByHost;
}

function toggleMic() {
  if (!audio || mutedByHost) return;
  micMuted = !micMuted;
  audio.enabled = !micMuted;
  renderControls();
}

function toggleCamera() {
  if (!video) return;
  cameraOff = !cameraOff;
  video.enabled = !cameraOff;
  renderControls();
}

export function setupLocalControls() {
  $("mic-button").addEventListener("click", toggleMic);
  $("camera-button").addEventListener("click", toggleCamera);
}
