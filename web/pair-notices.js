// The server's `notice` events (docs/protocol.md): whose speech this listener will not get
// dubbed, and why, in the server's words. One notice per speaker; `cleared` takes it back, and
// so does the speaker leaving or the call ending.

import { onRosterChange } from "./roster.js";

export class PairNotices {
  /** root: the notice area (role="status"), hidden while it holds nothing. */
  constructor(root) {
    this.root = root;
    this.items = new Map(); // speaker id -> element
    onRosterChange((kind, id) => {
      if (kind === "removed") this.remove(id);
      else if (kind === "cleared") this.clear();
    });
    this.sync();
  }

  /** Handle one data-channel event; false when it is not a notice. */
  handle(event) {
    if (!event || event.type !== "notice" || typeof event.speaker !== "string") return false;
    if (event.code === "cleared") this.remove(event.speaker);
    else if (typeof event.text === "string" && event.text) this.show(event);
    return true;
  }

  show(event) {
    let item = this.items.get(event.speaker);
    if (!item) {
      item = document.createElement("p");
      item.className = "pair-notice";
      item.dataset.speaker = event.speaker;
      this.root.append(item);
      this.items.set(event.speaker, item);
    }
    item.dataset.code = String(event.code || "");
    item.dataset.gives = String(event.gives || "");
    item.textContent = event.text;
    this.sync();
  }

  remove(speaker) {
    const item = this.items.get(speaker);
    if (!item) return;
    item.remove();
    this.items.delete(speaker);
    this.sync();
  }

  clear() {
    this.items.clear();
    this.root.replaceChildren();
    this.sync();
  }

  sync() {
    this.root.hidden = this.items.size === 0;
  }
}
