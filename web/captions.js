// Live captions: the server's `caption`, `latency` and `caption-dropped` data-channel events
// rendered as a scrolling list, each utterance in the speaker's words and the listener's.

const MAX_ITEMS = 60;
// Within this many pixels of the bottom the list follows new captions; further up, the
// reader has scrolled back on purpose and is left there.
const STICKY_PX = 48;

// What a `caption-dropped` event's reason means to the listener (docs/protocol.md).
const DROPPED_TEXT = {
  backlog: "… skipped to catch up",
  catch_up: "… skipped to catch up",
  deadline: "… not translated: the translation service was too busy",
  unavailable: "… not translated: translation is overloaded or unreachable for now",
};

const STAGE_LABELS = {
  endpoint: "End of speech detected",
  recognize: "Speech recognition",
  translate: "Translation",
  synthesize: "Speech synthesis",
  first_dub_frame: "First dubbed audio",
  mouth_to_ear: "Total, mouth to ear",
};

/** "0.8 s", "1.1 s", "12 s": short enough for a badge. */
export function formatSeconds(ms) {
  const s = Math.max(0, Number(ms) || 0) / 1000;
  return s >= 10 ? `${Math.round(s)} s` : `${s.toFixed(1)} s`;
}

function formatMs(ms) {
  return `${Math.round(Number(ms) || 0)} ms`;
}

function isText(value) {
  return typeof value === "string";
}

function primary(code) {
  return String(code || "").split("-")[0].toLowerCase();
}

/** The translation for `listen`: the exact tag first, then its primary language. */
export function translationFor(translations, listen) {
  if (!translations || typeof translations !== "object" || !listen) return null;
  if (isText(translations[listen])) return translations[listen];
  const want = primary(listen);
  for (const [code, text] of Object.entries(translations)) {
    if (primary(code) === want && isText(text)) return text;
  }
  return null;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export class CaptionPanel {
  /**
   * root: the panel (hidden while captions are off or there are none yet);
   * list: the <ol> the captions go in; listenLanguage(): the listener's language now.
   */
  constructor({ root, list, listenLanguage, maxItems = MAX_ITEMS }) {
    this.root = root;
    this.list = list;
    this.listenLanguage = listenLanguage;
    this.maxItems = maxItems;
    this.items = new Map(); // utterance_id -> {node, caption}
    this.latencies = new Map(); // utterance_id -> stages_ms, for a latency before its caption
    this.enabled = true;
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest(".caption-latency");
      if (button) this.toggleStages(button);
    });
    this.sync();
  }

  /** Handle one data-channel event; false when it is not a caption event. */
  handle(event) {
    if (!event || typeof event !== "object" || !isText(event.utterance_id)) return false;
    if (event.type === "caption") this.onCaption(event);
    else if (event.type === "latency") this.onLatency(event);
    else if (event.type === "caption-dropped") this.onDropped(event);
    else return false;
    return true;
  }

  setEnabled(on) {
    this.enabled = Boolean(on);
    this.sync();
  }

  clear() {
    this.items.clear();
    this.latencies.clear();
    this.list.replaceChildren();
    this.sync();
  }

  /** The listener changed language: show the matching translations. */
  refresh() {
    for (const item of this.items.values()) {
      if (item.caption) this.fill(item.node, item.caption);
    }
  }

  sync() {
    this.root.hidden = !this.enabled || this.items.size === 0;
  }

  // --- events --------------------------------------------------------------------------

  onCaption(caption) {
    if (!isText(caption.text)) return;
    const id = caption.utterance_id;
    const item = this.items.get(id);
    // Interim text may be revised any number of times; a late interim never undoes the final.
    if (item && item.caption && item.caption.final && !caption.final) return;
    this.withScroll(() => {
      const node = item ? item.node : this.add(id);
      this.items.get(id).caption = caption;
      this.fill(node, caption);
      const stages = this.latencies.get(id);
      if (stages) this.showLatency(node, stages);
    });
  }

  onLatency(event) {
    const stages = event.stages_ms;
    if (!stages || typeof stages !== "object" || !Number.isFinite(stages.mouth_to_ear)) return;
    this.latencies.set(event.utterance_id, stages);
    if (this.latencies.size > this.maxItems) {
      this.latencies.delete(this.latencies.keys().next().value);
    }
    const item = this.items.get(event.utterance_id);
    if (item) this.showLatency(item.node, stages);
  }

  onDropped(event) {
    const id = event.utterance_id;
    this.withScroll(() => {
      let item = this.items.get(id);
      if (!item) {
        const node = this.add(id);
        item = this.items.get(id);
        const name = isText(event.speaker_name) && event.speaker_name ? event.speaker_name : "";
        node.querySelector(".caption-speaker").textContent = name;
      }
      item.node.classList.add("dropped");
      item.node.classList.remove("interim");
      if (!item.node.querySelector(".caption-dropped")) {
        const why = DROPPED_TEXT[event.reason] || DROPPED_TEXT.backlog;
        item.node.append(el("p", "caption-dropped", why));
      }
    });
  }

  // --- rendering -----------------------------------------------------------------------

  add(id) {
    const node = el("li", "caption");
    node.dataset.utterance = id;
    const head = el("div", "caption-head");
    head.append(el("span", "caption-speaker"));
    node.append(head);
    this.list.append(node);
    this.items.set(id, { node, caption: null });
    while (this.items.size > this.maxItems) {
      const [oldId, oldest] = this.items.entries().next().value;
      oldest.node.remove();
      this.items.delete(oldId);
      this.latencies.delete(oldId);
    }
    this.sync();
    return node;
  }

  fill(node, caption) {
    const final = caption.final === true;
    node.classList.toggle("interim", !final);
    node.dataset.final = String(final);
    node.querySelector(".caption-speaker").textContent = isText(caption.speaker_name)
      ? caption.speaker_name
      : "";
    const listen = this.listenLanguage();
    const sameLanguage = primary(caption.language) === primary(listen);
    const translation = sameLanguage ? null : translationFor(caption.translations, listen);

    let original = node.querySelector(".caption-original");
    if (!original) {
      original = el("p", "caption-original");
      node.querySelector(".caption-head").after(original);
    }
    original.textContent = caption.text;
    if (isText(caption.language)) original.lang = caption.language;

    let translated = node.querySelector(".caption-translation");
    if (translation) {
      if (!translated) {
        translated = el("p", "caption-translation");
        original.after(translated);
      }
      translated.textContent = translation;
      translated.lang = listen;
    } else if (translated) {
      translated.remove();
    }
  }

  showLatency(node, stages) {
    let badge = node.querySelector(".caption-latency");
    if (!badge) {
      badge = el("button", "caption-latency");
      badge.type = "button";
      badge.setAttribute("aria-expanded", "false");
      node.querySelector(".caption-head").append(badge);
    }
    const total = formatSeconds(stages.mouth_to_ear);
    badge.textContent = total;
    const parts = Object.entries(stages)
      .filter(([name, ms]) => name !== "mouth_to_ear" && Number.isFinite(ms))
      .map(([name, ms]) => `${STAGE_LABELS[name] || name}: ${formatMs(ms)}`);
    badge.title = `Heard ${total} after it was said\n${parts.join("\n")}`;
    badge.setAttribute("aria-label", `Delay ${total}. Show the delay of each step`);

    let table = node.querySelector(".caption-stages");
    if (!table) {
      table = el("dl", "caption-stages");
      table.hidden = badge.getAttribute("aria-expanded") !== "true";
      node.append(table);
    }
    table.replaceChildren();
    for (const [name, ms] of Object.entries(stages)) {
      if (!Number.isFinite(ms)) continue;
      const row = el("div", name === "mouth_to_ear" ? "stage-row total" : "stage-row");
      row.append(el("dt", "", STAGE_LABELS[name] || name), el("dd", "", formatMs(ms)));
      table.append(row);
    }
  }

  toggleStages(badge) {
    const node = badge.closest(".caption");
    const table = node && node.querySelector(".caption-stages");
    if (!table) return;
    const open = badge.getAttribute("aria-expanded") !== "true";
    badge.setAttribute("aria-expanded", String(open));
    table.hidden = !open;
  }

  /** Run a change and keep following the newest caption if the reader was at the bottom. */
  withScroll(change) {
    const list = this.list;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight <= STICKY_PX;
    change();
    if (atBottom) list.scrollTop = list.scrollHeight;
  }
}
