// "Turn off incoming video": a participant whose machine struggles asks the others' pages to
// stop sending their cameras (prefs `video: false`; they set their senders to this page
// inactive) and sees name placeholders instead of video. The choice lasts while the page is
// open, rejoins included (mix-controls.js sends it again with the mix after each welcome).

const $ = (id) => document.getElementById(id);

let on = true;
let changed = () => {};

export function incomingVideoOn() {
  return on;
}

function render() {
  const button = $("incoming-video-button");
  const words = on ? "Turn off incoming video" : "Turn on incoming video";
  button.setAttribute("aria-pressed", String(!on));
  button.setAttribute("aria-label", words);
  button.title = words;
  button.classList.toggle("off", !on);
  button.querySelector(".label").textContent = on ? "Incoming video" : "Incoming video off";
  $("stage").dataset.incomingVideo = on ? "on" : "off";
}

/** Wire the button; `onChange()` sends the choice to the server. */
export function setupIncomingVideo({ onChange }) {
  changed = onChange;
  render();
  $("incoming-video-button").addEventListener("click", () => {
    on = !on;
    render();
    changed();
  });
}
