// The call screen's other controls: the sound, transcript and host popovers, the transcript
// links, copying the invitation link, and the call bar (the room's title and lock, the
// language pickers).

import { showCallMessage } from "./messages.js";
import { Phase, inPhase } from "./phases.js";
import { savePrefs } from "./prefs.js";
import { joinUrl, roomId, roomLocked, roomTitle, roomToken } from "./room.js";
import { send } from "./socket.js";

const $ = (id) => document.getElementById(id);

const POPOVERS = {
  "sound-button": "sound-panel",
  "transcript-button": "transcript-menu",
  "host-button": "host-menu",
};
const COPIED_MS = 2500;

let copyTimer = null;

export function closePopovers(except = null) {
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

/** The call bar's room label: the title everyone was invited to, and whether it is locked. */
export function renderRoomLabel() {
  const title = roomTitle();
  $("call-title").textContent = title || "";
  $("call-title").hidden = !title;
  $("room-locked").hidden = !roomLocked();
  document.title = title ? `${title} · In a call` : "In a call";
}

/** Point the transcript menu at this room's transcript (with its token when it has one). */
export function renderTranscriptLinks() {
  const id = roomId();
  if (!id) return;
  const base = `/api/rooms/${encodeURIComponent(id)}/transcript`;
  const token = roomToken();
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  for (const ext of ["srt", "vtt", "json"]) {
    const link = $(`transcript-${ext}`);
    link.href = `${base}.${ext}${query}`;
    link.download = `transcript-${id}.${ext}`;
  }
}

async function copyLink() {
  const url = joinUrl();
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
  const button = $("copy-button");
  const label = button.querySelector(".label");
  clearTimeout(copyTimer);
  if (copied) {
    label.textContent = "Copied";
    button.classList.add("done");
  } else {
    showCallMessage(`Copy this link to invite others: ${url}`);
  }
  copyTimer = setTimeout(() => {
    label.textContent = "Copy link";
    button.classList.remove("done");
  }, COPIED_MS);
}

function onCallLanguageChange(field, select) {
  const value = select.value;
  savePrefs({ [field]: value });
  $(field === "spoken" ? "spoken-select" : "listen-select").value = value;
  if (inPhase(Phase.CALL)) send("update", { [field]: value });
}

/** Show the languages the server has for this participant, in both screens' pickers. */
export function syncCallLanguages(self) {
  if (!self) return;
  const spoken = self.spoken.split("-")[0];
  const listen = self.listen.split("-")[0];
  $("call-spoken-select").value = spoken;
  $("call-listen-select").value = listen;
  $("spoken-select").value = spoken;
  $("listen-select").value = listen;
}

/** Wire the call screen's controls; `onLeave` runs when the user leaves. */
export function setupCallControls({ onLeave }) {
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
  $("call-spoken-select").addEventListener("change", (e) =>
    onCallLanguageChange("spoken", e.target),
  );
  $("call-listen-select").addEventListener("change", (e) =>
    onCallLanguageChange("listen", e.target),
  );
  $("copy-button").addEventListener("click", copyLink);
  $("leave-button").addEventListener("click", onLeave);
}
