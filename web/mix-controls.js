// The listener's own controls: dubbing on or off, the original voices' volume (both applied by
// the server and remembered in localStorage), and captions on or off. Every `prefs` message
// goes through sendPrefs, the incoming video choice (incoming-video.js) too.

import { ORIGINAL_VOLUME_MAX, ORIGINAL_VOLUME_MIN } from "./generated.js";
import { incomingVideoOn } from "./incoming-video.js";
import { Phase, inPhase } from "./phases.js";
import { loadPrefs, savePrefs } from "./prefs.js";
import { send } from "./socket.js";

const $ = (id) => document.getElementById(id);

let mix = { dub: true, originalVolume: ORIGINAL_VOLUME_MAX };
let pending = 0; // prefs messages sent and not answered yet
let sliderTimer = null; // a send waiting while the slider moves
let captions = null;

function clampVolume(value) {
  const number = Number(value);
  if (!Number.isFinite(number)) return ORIGINAL_VOLUME_MAX;
  return Math.min(ORIGINAL_VOLUME_MAX, Math.max(ORIGINAL_VOLUME_MIN, number));
}

export function currentMix() {
  return { ...mix };
}

function renderMix() {
  $("dub-toggle").checked = mix.dub;
  const percent = Math.round(mix.originalVolume * 100);
  $("original-volume").value = String(percent);
  $("original-volume-value").textContent = `${percent}%`;
}

/** Send a `prefs` message while in the call; its answer is awaited like the mix's own. */
export function sendPrefs(fields) {
  if (inPhase(Phase.CALL) && send("prefs", fields)) pending += 1;
}

/** Send the mix now (and forget any send waiting on the slider). */
function sendMix() {
  clearTimeout(sliderTimer);
  sliderTimer = null;
  const fields = { dub: mix.dub, original_volume: mix.originalVolume };
  // The server starts everyone with incoming video on: only a page that turned it off says so.
  if (!incomingVideoOn()) fields.video = false;
  sendPrefs(fields);
}

/** The server starts every participant with its defaults: restore this listener's choice. */
export function restoreMix() {
  pending = 0;
  sendMix();
}

/** The server's `prefs` answer: the mix it applies. */
export function onMixApplied(msg) {
  pending = Math.max(0, pending - 1);
  // While the user is still moving the slider, an older echo must not pull it back.
  if (pending > 0 || sliderTimer !== null) return;
  if (typeof msg.dub === "boolean") mix.dub = msg.dub;
  if (typeof msg.original_volume === "number") mix.originalVolume = clampVolume(msg.original_volume);
  renderMix();
}

/** A server without listener preferences still carries the call: nothing to tell the user. */
export function onMixRefused(code) {
  pending = Math.max(0, pending - 1);
  console.info("signaling: prefs refused:", code);
}

function onDubToggle() {
  mix.dub = $("dub-toggle").checked;
  savePrefs({ dub: mix.dub });
  sendMix();
}

function onVolumeInput(event) {
  mix.originalVolume = clampVolume(Number($("original-volume").value) / 100);
  $("original-volume-value").textContent = `${Math.round(mix.originalVolume * 100)}%`;
  savePrefs({ original_volume: mix.originalVolume });
  if (event.type === "change") {
    sendMix();
  } else if (sliderTimer === null) {
    // Dragging fires many input events: at most a few messages a second reach the server.
    sliderTimer = setTimeout(sendMix, 150);
  }
}

function setCaptions(on, { save = true } = {}) {
  captions.setEnabled(on);
  const button = $("captions-button");
  button.setAttribute("aria-pressed", String(on));
  button.classList.toggle("off", !on);
  button.querySelector(".label").textContent = on ? "Captions" : "No captions";
  if (save) savePrefs({ captions: on });
}

/** Wire the controls to `panel` (a CaptionPanel) and show what the last visit chose. */
export function setupMixControls(panel) {
  captions = panel;
  const prefs = loadPrefs();
  mix = {
    dub: typeof prefs.dub === "boolean" ? prefs.dub : true,
    originalVolume:
      prefs.original_volume === undefined ? ORIGINAL_VOLUME_MAX : clampVolume(prefs.original_volume),
  };
  renderMix();
  setCaptions(prefs.captions !== false, { save: false });
  $("captions-button").addEventListener("click", () =>
    setCaptions($("captions-button").getAttribute("aria-pressed") !== "true"),
  );
  $("dub-toggle").addEventListener("change", onDubToggle);
  $("original-volume").addEventListener("input", onVolumeInput);
  $("original-volume").addEventListener("change", onVolumeInput);
}
