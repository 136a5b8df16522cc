// The speech demo page: each engine alone, the whole chain, engine health and live metrics.

import { ApiError, errorWords, postJson, request, requestJson } from "./http.js";

const $ = (id) => document.getElementById(id);

/** Languages offered in the translation pickers besides those the server lists. */
const COMMON_LANGUAGES = [
  "en", "es", "fr", "de", "it", "pt", "nl", "pl", "ru", "uk", "tr", "ar",
  "hi", "bn", "zh", "ja", "ko", "vi", "th", "id", "sv", "el", "he", "ca",
];

const ENDPOINTS = [
  ["stt", "Speech to text"],
  ["translate", "Translate"],
  ["tts", "Text to speech"],
  ["languages", "Languages"],
];

const CACHES = [
  ["tts", "Speech cache"],
  ["mt", "Translation cache"],
];

/** A lead sentence for an API error code; the server's own message follows it. */
const ERROR_LEAD = {
  invalid_input: "The request was not accepted.",
  unsupported_language: "This server cannot do that language.",
  model_missing: "A model this needs is not installed on the server.",
  engine_unavailable: "That engine is not available right now.",
  too_large: "The file is too large.",
  busy: "The server is busy.",
};

/** Lead sentences for translation errors. */
const TRANSLATE_LEADS = {
  unsupported_language: "This server cannot translate between these two languages.",
};

const STATS_INTERVAL_MS = 1000;
const HEALTH_INTERVAL_MS = 4000;
const MAX_RECORDING_S = 30;

// --- words ----------------------------------------------------------------------------------

let displayNames = null;
try {
  displayNames = new Intl.DisplayNames(["en"], { type: "language" });
} catch {
  displayNames = null;
}

/** "Spanish" for "es", "English (United States)" for "en-us"; the code when unknown. */
function languageName(code) {
  if (!code) return "";
  try {
    const name = displayNames && displayNames.of(code);
    if (name && name.toLowerCase() !== code.toLowerCase()) return name;
  } catch {
    // not a valid tag for Intl: fall through
  }
  return code;
}

function ms(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  if (value >= 10) return `${Math.round(value)} ms`;
  return `${value.toFixed(1)} ms`;
}

function seconds(value) {
  return `${value.toFixed(1)} s`;
}

function clock(s) {
  const whole = Math.floor(s);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function percent(rate) {
  return rate === null || rate === undefined ? "–" : `${Math.round(rate * 100)}%`;
}

// --- API ------------------------------------------------------------------------------------

/** The demo's requests: http.js, with a lead sentence for each speech API error code. */
function apiRequest(path, options = {}, leads = {}) {
  return request(path, options, { ...ERROR_LEAD, ...leads });
}

function apiJson(path, options = {}, leads = {}) {
  return requestJson(path, options, { ...ERROR_LEAD, ...leads });
}

// --- small DOM helpers ----------------------------------------------------------------------

function showError(id, error) {
  const box = $(id);
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = errorWords(error);
  if (!(error instanceof ApiError)) console.error(error);
  box.hidden = false;
}

function fillSelect(select, codes, selected, { keepFirst = false } = {}) {
  const first = keepFirst ? select.options[0] : null;
  select.replaceChildren();
  if (first) select.append(first);
  const sorted = [...codes].sort((a, b) => languageName(a).localeCompare(languageName(b)));
  for (const code of sorted) {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = languageName(code) === code ? code : `${languageName(code)} (${code})`;
    select.append(option);
  }
  if (selected !== undefined && [...select.options].some((o) => o.value === selected)) {
    select.value = selected;
  }
}

/** Audio for an ``<audio>`` element; the previous object URL is released. */
function playBlob(audio, blob) {
  if (audio.dataset.url) URL.revokeObjectURL(audio.dataset.url);
  const url = URL.createObjectURL(blob);
  audio.dataset.url = url;
  audio.src = url;
  audio.play().catch(() => {
    // autoplay refused: the controls are there to press play
  });
}

// --- state ----------------------------------------------------------------------------------

const demo = {
  languages: null,
  ttsVoices: new Map(), // language code -> [{engine, voice}]
  mtPairs: [],
};

// --- languages ------------------------------------------------------------------------------

function primary(code) {
  return code.split("-")[0].toLowerCase();
}

async function loadLanguages() {
  const data = await apiJson("/api/languages");
  demo.languages = data;

  const sttCodes = new Set();
  for (const list of Object.values(data.stt || {})) for (const c of list) sttCodes.add(c);
  fillSelect($("stt-language"), sttCodes, "", { keepFirst: true });
  fillSelect($("chain-source"), sttCodes, "", { keepFirst: true });

  const mtCodes = new Set(COMMON_LANGUAGES);
  demo.mtPairs = [];
  for (const info of Object.values(data.translation || {})) {
    for (const c of info.languages || []) mtCodes.add(c);
    for (const pair of info.pairs || []) demo.mtPairs.push(pair);
  }
  fillSelect($("mt-source"), mtCodes, "en");
  fillSelect($("mt-target"), mtCodes, "es");
  describePairs();

  // Text to speech: one entry per language (primary subtag), voices from every engine.
  demo.ttsVoices = new Map();
  for (const [engine, languages] of Object.entries(data.tts || {})) {
    for (const [code, voices] of Object.entries(languages)) {
      if (!/^[a-z]{2,3}$/.test(primary(code))) continue;
      const key = primary(code);
      const list = demo.ttsVoices.get(key) || [];
      for (const voice of voices) {
        if (!list.some((v) => v.engine === engine && v.voice === voice)) list.push({ engine, voice });
      }
      demo.ttsVoices.set(key, list);
    }
  }
  fillSelect($("tts-language"), demo.ttsVoices.keys(), "en");
  fillVoices();

  const chainTargets = new Set([...demo.ttsVoices.keys()].filter((c) => mtCodes.has(c)));
  fillSelect($("chain-target"), chainTargets, "es");
}

function describePairs() {
  const pairs = demo.mtPairs.map(([s, t]) => `${languageName(s)} → ${languageName(t)}`);
  $("mt-pairs").textContent = pairs.length
    ? `Installed here: ${pairs.join(", ")}. Other pairs need a translation model on the server.`
    : "No translation engine is installed on this server.";
}

function fillVoices() {
  const voices = demo.ttsVoices.get($("tts-language").value) || [];
  const select = $("tts-voice");
  select.replaceChildren();
  const auto = document.createElement("option");
  auto.value = "";
  auto.textContent = "Best available";
  select.append(auto);
  for (const { engine, voice } of voices) {
    const option = document.createElement("option");
    option.value = voice;
    option.textContent = `${voice} (${engine})`;
    select.append(option);
  }
  $("tts-voice-field").hidden = voices.length < 2;
}

// --- recording ------------------------------------------------------------------------------

/** A Record/Stop button with an elapsed-time counter that hands the recording to ``onDone``. */
class Recorder {
  constructor(button, elapsed, onDone, onError) {
    this.button = button;
    this.elapsed = elapsed;
    this.onDone = onDone;
    this.onError = onError;
    this.recorder = null;
    this.stream = null;
    this.timer = null;
    button.addEventListener("click", () => (this.recorder ? this.stop() : this.start()));
  }

  get recording() {
    return this.recorder !== null;
  }

  async start() {
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      this.onError(new ApiError("This browser cannot record audio here. Upload a file instead."));
      return;
    }
    this.button.disabled = true;
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      this.button.disabled = false;
      const denied = error && error.name === "NotAllowedError";
      this.onError(
        new ApiError(
          denied
            ? "Microphone access was refused. Allow it in the browser's site settings, or upload a file."
            : "No microphone could be opened. Upload a file instead.",
        ),
      );
      return;
    }
    const chunks = [];
    const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"].find((t) =>
      MediaRecorder.isTypeSupported(t),
    );
    this.recorder = new MediaRecorder(this.stream, type ? { mimeType: type } : undefined);
    this.recorder.addEventListener("dataavailable", (event) => {
      if (event.data.size > 0) chunks.push(event.data);
    });
    this.recorder.addEventListener("stop", () => {
      const blob = new Blob(chunks, { type: this.recorder.mimeType || "audio/webm" });
      this.reset();
      this.onDone(blob);
    });
    const started = performance.now();
    this.recorder.start(250);
    this.button.disabled = false;
    this.button.classList.add("recording");
    this.button.setAttribute("aria-pressed", "true");
    this.button.querySelector(".label").textContent = "Stop";
    this.elapsed.hidden = false;
    this.elapsed.textContent = "0:00";
    this.timer = setInterval(() => {
      const s = (performance.now() - started) / 1000;
      this.elapsed.textContent = clock(s);
      if (s >= MAX_RECORDING_S) this.stop();
    }, 200);
  }

  stop() {
    if (this.recorder && this.recorder.state !== "inactive") this.recorder.stop();
  }

  reset() {
    clearInterval(this.timer);
    this.timer = null;
    for (const track of this.stream ? this.stream.getTracks() : []) track.stop();
    this.stream = null;
    this.recorder = null;
    this.button.classList.remove("recording");
    this.button.setAttribute("aria-pressed", "false");
    this.button.querySelector(".label").textContent = "Record";
    this.elapsed.hidden = true;
  }
}

/** POST audio to /api/stt: a recording as the raw body, a chosen file as multipart. */
async function transcribe(audio, language) {
  const query = new URLSearchParams();
  if (language) query.set("language", language);
  const qs = query.toString();
  const url = qs ? `/api/stt?${qs}` : "/api/stt";
  let options;
  if (audio instanceof File) {
    const form = new FormData();
    form.append("file", audio, audio.name);
    options = { method: "POST", body: form };
  } else {
    options = {
      method: "POST",
      headers: { "Content-Type": audio.type || "application/octet-stream" },
      body: audio,
    };
  }
  return apiJson(url, options);
}

// --- 1. speech to text ----------------------------------------------------------------------

let sttBusy = false;

async function runStt(audio) {
  if (sttBusy) return;
  sttBusy = true;
  showError("stt-error", null);
  $("stt-record").disabled = true;
  $("stt-file").disabled = true;
  $("stt-panel").dataset.state = "busy";
  $("stt-status").textContent = "Transcribing… (the first request also loads the model)";
  const started = performance.now();
  try {
    const result = await transcribe(audio, $("stt-language").value);
    const total = performance.now() - started;
    $("stt-text").textContent = result.text.trim() || "(no speech found)";
    $("stt-text").classList.toggle("empty", !result.text.trim());
    $("stt-detected").textContent =
      `${languageName(result.language)} · ${percent(result.language_probability)}`;
    $("stt-duration").textContent = seconds(result.duration);
    $("stt-decode").textContent = ms(result.timing_ms.decode);
    $("stt-recognize").textContent = ms(result.timing_ms.recognize);
    $("stt-total").textContent = ms(total);
    $("stt-result").hidden = false;
    $("stt-status").textContent = "";
    $("stt-panel").dataset.state = "done";
  } catch (error) {
    $("stt-status").textContent = "";
    $("stt-panel").dataset.state = "error";
    showError("stt-error", error);
  } finally {
    sttBusy = false;
    $("stt-record").disabled = false;
    $("stt-file").disabled = false;
    $("stt-file").value = "";
  }
}

// --- 2. translate ---------------------------------------------------------------------------

async function runTranslate(event) {
  event.preventDefault();
  const text = $("mt-text").value;
  showError("mt-error", null);
  if (!text.trim()) {
    showError("mt-error", new ApiError("Type some text to translate first."));
    return;
  }
  const source = $("mt-source").value;
  const target = $("mt-target").value;
  if (source === target) {
    showError("mt-error", new ApiError("Pick two different languages."));
    return;
  }
  $("mt-go").disabled = true;
  $("mt-go").textContent = "Translating…";
  $("mt-panel").dataset.state = "busy";
  const started = performance.now();
  try {
    const result = await apiJson(
      "/api/translate",
      postJson({ text, source, target }),
      TRANSLATE_LEADS,
    );
    $("mt-output").textContent = result.translation;
    $("mt-output").lang = target;
    $("mt-engine").textContent = result.engine || "–";
    $("mt-time").textContent = ms(result.timing_ms.translate);
    $("mt-total").textContent = ms(performance.now() - started);
    $("mt-result").hidden = false;
    $("mt-panel").dataset.state = "done";
  } catch (error) {
    $("mt-result").hidden = true;
    $("mt-panel").dataset.state = "error";
    showError("mt-error", error);
  } finally {
    $("mt-go").disabled = false;
    $("mt-go").textContent = "Translate";
  }
}

function swapLanguages() {
  const source = $("mt-source").value;
  $("mt-source").value = $("mt-target").value;
  $("mt-target").value = source;
  const output = $("mt-output").textContent;
  if (!$("mt-result").hidden && output) $("mt-text").value = output;
}

// --- 3. text to speech ----------------------------------------------------------------------

/** Synthesize ``text``; the audio blob and what the headers say about it. */
async function synthesize(text, language, voice) {
  const body = { text, language, format: "wav" };
  if (voice) body.voice = voice;
  const response = await apiRequest("/api/tts", postJson(body));
  const blob = await response.blob();
  const header = (name) => response.headers.get(name) || "";
  return {
    blob,
    engine: header("X-Engine"),
    voice: header("X-Voice"),
    cache: header("X-Cache"),
    synthesisMs: parseFloat(header("X-Synthesis-Ms")),
    durationMs: parseFloat(header("X-Audio-Duration-Ms")),
  };
}

async function runTts(event) {
  event.preventDefault();
  const text = $("tts-text").value;
  showError("tts-error", null);
  if (!text.trim()) {
    showError("tts-error", new ApiError("Type some text to speak first."));
    return;
  }
  $("tts-speak").disabled = true;
  $("tts-speak").textContent = "Synthesizing…";
  $("tts-panel").dataset.state = "busy";
  try {
    const speech = await synthesize(text, $("tts-language").value, $("tts-voice").value);
    $("tts-engine").textContent = speech.engine || "–";
    $("tts-voice-used").textContent = speech.voice || "–";
    const cache = $("tts-cache");
    cache.textContent = speech.cache === "hit" ? "Hit" : speech.cache === "miss" ? "Miss" : "–";
    cache.dataset.cache = speech.cache;
    $("tts-synthesis").textContent = ms(speech.synthesisMs);
    $("tts-duration").textContent = Number.isFinite(speech.durationMs) ? seconds(speech.durationMs / 1000) : "–";
    $("tts-result").hidden = false;
    playBlob($("tts-audio"), speech.blob);
    $("tts-panel").dataset.state = "done";
  } catch (error) {
    $("tts-panel").dataset.state = "error";
    showError("tts-error", error);
  } finally {
    $("tts-speak").disabled = false;
    $("tts-speak").textContent = "Speak";
  }
}

// --- 4. whole chain -------------------------------------------------------------------------

let chainBusy = false;

function chainStatus(text) {
  $("chain-status").textContent = text;
}

async function runChain(audio) {
  if (chainBusy) return;
  chainBusy = true;
  showError("chain-error", null);
  $("chain-record").disabled = true;
  $("chain-file").disabled = true;
  $("chain-panel").dataset.state = "busy";
  $("chain-result").hidden = true;
  const target = $("chain-target").value;
  const stages = [];
  const started = performance.now();
  try {
    chainStatus("Recognizing speech…");
    const heard = await transcribe(audio, $("chain-source").value);
    const text = heard.text.trim();
    if (!text) throw new ApiError("No speech was found in that audio.");
    stages.push({ key: "decode", label: "Decode", ms: heard.timing_ms.decode });
    stages.push({ key: "recognize", label: "Recognize", ms: heard.timing_ms.recognize });
    $("chain-transcript").textContent = text;
    $("chain-heard-caption").textContent = `Heard (${languageName(heard.language)})`;

    let translated = text;
    if (primary(heard.language) === primary(target)) {
      stages.push({ key: "translate", label: "Translate", ms: 0, note: "same language" });
    } else {
      chainStatus("Translating…");
      const result = await apiJson(
        "/api/translate",
        postJson({ text, source: heard.language, target }),
        TRANSLATE_LEADS,
      );
      translated = result.translation;
      stages.push({ key: "translate", label: "Translate", ms: result.timing_ms.translate, note: result.engine });
    }
    $("chain-translation").textContent = translated;
    $("chain-translation").lang = target;
    $("chain-translated-caption").textContent = `Translated (${languageName(target)})`;

    chainStatus("Synthesizing speech…");
    const speech = await synthesize(translated, target, "");
    stages.push({
      key: "synthesize",
      label: "Synthesize",
      ms: speech.synthesisMs,
      note: `${speech.engine}${speech.cache === "hit" ? ", cached" : ""}`,
    });
    const total = performance.now() - started;
    const server = stages.reduce((sum, s) => sum + (Number.isFinite(s.ms) ? s.ms : 0), 0);
    stages.push({ key: "network", label: "Network & other", ms: Math.max(0, total - server) });
    drawBars(stages, total);
    $("chain-result").hidden = false;
    playBlob($("chain-audio"), speech.blob);
    chainStatus("");
    $("chain-panel").dataset.state = "done";
  } catch (error) {
    chainStatus("");
    $("chain-panel").dataset.state = "error";
    if (stages.length) {
      drawBars(stages, performance.now() - started);
      $("chain-result").hidden = false;
    }
    showError("chain-error", error);
  } finally {
    chainBusy = false;
    $("chain-record").disabled = false;
    $("chain-file").disabled = false;
    $("chain-file").value = "";
  }
}

function drawBars(stages, total) {
  const box = $("chain-bars");
  box.replaceChildren();
  const rows = [...stages, { key: "total", label: "Total", ms: total }];
  for (const stage of rows) {
    const row = document.createElement("div");
    row.className = "bar-row";
    row.dataset.stage = stage.key;
    const label = document.createElement("span");
    label.className = "bar-label";
    label.textContent = stage.label;
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    const share = total > 0 && Number.isFinite(stage.ms) ? stage.ms / total : 0;
    fill.style.width = `${Math.max(stage.ms > 0 ? 1 : 0, Math.min(100, share * 100))}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = ms(stage.ms);
    if (stage.note) value.title = stage.note;
    row.append(label, track, value);
    box.append(row);
  }
}

// --- 5. engine health -----------------------------------------------------------------------

function healthCard(title, state, stateText, facts) {
  const card = document.createElement("div");
  card.className = "health-card";
  card.dataset.state = state;
  const head = document.createElement("div");
  head.className = "health-head";
  const dot = document.createElement("span");
  dot.className = "dot";
  const name = document.createElement("strong");
  name.textContent = title;
  const badge = document.createElement("span");
  badge.className = "health-state";
  badge.textContent = stateText;
  head.append(dot, name, badge);
  card.append(head);
  const list = document.createElement("dl");
  list.className = "facts compact";
  for (const [key, value] of facts) {
    if (value === undefined || value === null || value === "") continue;
    const item = document.createElement("div");
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    item.append(dt, dd);
    list.append(item);
  }
  if (list.childElementCount) card.append(list);
  return card;
}

function sttCard(info) {
  if (!info || !info.engine) {
    return healthCard("Speech to text", "idle", "not loaded", [["Loads", "on first use"]]);
  }
  return healthCard(
    "Speech to text",
    info.loaded ? "ok" : "idle",
    info.loaded ? "loaded" : "not loaded",
    [
      ["Engine", info.engine],
      ["Model", info.model],
      ["Device", info.device && info.compute_type ? `${info.device} · ${info.compute_type}` : info.device],
      ["Queue", info.queue_depth],
    ],
  );
}

function mtCard(info) {
  if (!info || !info.engines) {
    return healthCard("Translation", "idle", "not loaded", [["Loads", "on first use"]]);
  }
  const facts = info.engines.map((e) => [
    e.engine,
    e.modes ? e.modes.join(", ") : e.model || (e.queue_depth !== undefined ? `queue ${e.queue_depth}` : "ready"),
  ]);
  for (const name of Object.keys(info.unavailable || {})) facts.push([name, "not installed"]);
  const card = healthCard(
    "Translation",
    info.engines.length ? "ok" : "error",
    info.engines.length ? "loaded" : "unavailable",
    facts,
  );
  for (const [name, why] of Object.entries(info.unavailable || {})) {
    const note = document.createElement("details");
    note.className = "health-note";
    note.dataset.engine = name;
    const summary = document.createElement("summary");
    summary.textContent = `Why ${name} is not available`;
    const text = document.createElement("p");
    text.textContent = why;
    note.append(summary, text);
    card.append(note);
  }
  return card;
}

function ttsCard(info) {
  if (!Array.isArray(info)) {
    return healthCard("Text to speech", "idle", "not loaded", [["Loads", "on first use"]]);
  }
  const facts = info.map((e) => {
    if (!e.available) return [e.engine, "unavailable"];
    if (e.languages !== undefined) return [e.engine, `${e.languages} languages`];
    const voices = Object.values(e.voices || {}).flat();
    const loaded = (e.loaded || []).length;
    return [e.engine, `${voices.length} voice${voices.length === 1 ? "" : "s"}, ${loaded} loaded`];
  });
  const any = info.some((e) => e.available);
  return healthCard("Text to speech", any ? "ok" : "error", any ? "loaded" : "unavailable", facts);
}

async function refreshHealth() {
  try {
    const info = await apiJson("/api/engines", { cache: "no-store" });
    const open = new Set(
      [...document.querySelectorAll("#health details[open]")].map((d) => d.dataset.engine),
    );
    $("health").replaceChildren(sttCard(info.stt), mtCard(info.translation), ttsCard(info.tts));
    for (const details of document.querySelectorAll("#health details")) {
      details.open = open.has(details.dataset.engine);
    }
    $("health-updated").textContent = `Checked at ${new Date().toLocaleTimeString()}`;
    $("health-panel").dataset.state = "ok";
  } catch (error) {
    $("health-updated").textContent = errorWords(error, "Health check failed.");
    $("health-panel").dataset.state = "error";
  }
}

// --- 6. live metrics ------------------------------------------------------------------------

function buildMetricsTable() {
  const body = $("metrics-body");
  for (const [key, label] of ENDPOINTS) {
    const row = document.createElement("tr");
    row.dataset.endpoint = key;
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = label;
    row.append(name);
    for (const field of ["requests", "errors", "p50", "p95"]) {
      const cell = document.createElement("td");
      cell.className = field;
      cell.textContent = field === "requests" || field === "errors" ? "0" : "–";
      row.append(cell);
    }
    body.append(row);
  }
  const caches = $("caches");
  for (const [key, label] of CACHES) {
    const row = document.createElement("div");
    row.className = "cache-row";
    row.dataset.cache = key;
    row.innerHTML =
      '<span class="cache-label"></span><span class="bar-track"><span class="bar-fill"></span></span>' +
      '<span class="cache-rate">–</span><span class="cache-counts"></span>';
    row.querySelector(".cache-label").textContent = label;
    caches.append(row);
  }
}

/** Set a cell's text and flash it when the value changed. */
function setCell(cell, text) {
  if (cell.textContent === text) return;
  cell.textContent = text;
  cell.classList.remove("changed");
  void cell.offsetWidth; // restart the animation
  cell.classList.add("changed");
}

let statsTimer = null;
let statsInFlight = false;

async function refreshStats() {
  if (statsInFlight) return;
  statsInFlight = true;
  try {
    const stats = await apiJson("/api/stats", { cache: "no-store" });
    for (const [key] of ENDPOINTS) {
      const row = document.querySelector(`#metrics-body tr[data-endpoint="${key}"]`);
      const e = (stats.endpoints || {})[key] || {};
      setCell(row.querySelector(".requests"), String(e.requests || 0));
      setCell(row.querySelector(".errors"), String(e.errors || 0));
      row.querySelector(".errors").classList.toggle("has-errors", (e.errors || 0) > 0);
      setCell(row.querySelector(".p50"), e.p50_ms == null ? "–" : ms(e.p50_ms));
      setCell(row.querySelector(".p95"), e.p95_ms == null ? "–" : ms(e.p95_ms));
    }
    for (const [key] of CACHES) {
      const row = document.querySelector(`#caches .cache-row[data-cache="${key}"]`);
      const c = (stats.caches || {})[key] || { hits: 0, misses: 0, hit_rate: null, errors: 0 };
      row.querySelector(".bar-fill").style.width = `${(c.hit_rate || 0) * 100}%`;
      setCell(row.querySelector(".cache-rate"), percent(c.hit_rate));
      let counts = `${c.hits} hit${c.hits === 1 ? "" : "s"} · ${c.misses} miss${c.misses === 1 ? "" : "es"}`;
      if (c.errors) counts += ` · ${c.errors} error${c.errors === 1 ? "" : "s"}`;
      setCell(row.querySelector(".cache-counts"), counts);
    }
    $("metrics-updated").textContent = `Server up ${clock(stats.uptime_s)} · updated ${new Date().toLocaleTimeString()}`;
    $("metrics-panel").dataset.state = "ok";
  } catch (error) {
    $("metrics-updated").textContent = errorWords(error, "Metrics unavailable.");
    $("metrics-panel").dataset.state = "error";
  } finally {
    statsInFlight = false;
  }
}

let healthTimer = null;

/** Poll only while the page is visible. */
function schedulePolling() {
  const visible = document.visibilityState === "visible";
  if (visible && statsTimer === null) {
    refreshStats();
    refreshHealth();
    statsTimer = setInterval(refreshStats, STATS_INTERVAL_MS);
    healthTimer = setInterval(refreshHealth, HEALTH_INTERVAL_MS);
  } else if (!visible && statsTimer !== null) {
    clearInterval(statsTimer);
    clearInterval(healthTimer);
    statsTimer = null;
    healthTimer = null;
  }
  $("metrics-live").classList.toggle("paused", !visible);
}

// --- start ----------------------------------------------------------------------------------

async function main() {
  buildMetricsTable();
  schedulePolling();
  document.addEventListener("visibilitychange", schedulePolling);

  const sttRecorder = new Recorder($("stt-record"), $("stt-elapsed"), runStt, (e) => showError("stt-error", e));
  const chainRecorder = new Recorder($("chain-record"), $("chain-elapsed"), runChain, (e) =>
    showError("chain-error", e),
  );
  window.addEventListener("pagehide", () => {
    sttRecorder.stop();
    chainRecorder.stop();
  });
  $("stt-file").addEventListener("change", () => {
    const file = $("stt-file").files[0];
    if (file) runStt(file);
  });
  $("chain-file").addEventListener("change", () => {
    const file = $("chain-file").files[0];
    if (file) runChain(file);
  });
  $("mt-form").addEventListener("submit", runTranslate);
  $("mt-swap").addEventListener("click", swapLanguages);
  $("tts-form").addEventListener("submit", runTts);
  $("tts-language").addEventListener("change", fillVoices);

  try {
    await loadLanguages();
  } catch (error) {
    const box = $("page-message");
    box.textContent = `The language lists could not be loaded. ${
      errorWords(error, "Reload the page to try again.")
    }`;
    box.hidden = false;
    // Sensible defaults so each panel still works.
    fillSelect($("mt-source"), COMMON_LANGUAGES, "en");
    fillSelect($("mt-target"), COMMON_LANGUAGES, "es");
    fillSelect($("tts-language"), COMMON_LANGUAGES, "en");
    fillSelect($("chain-target"), COMMON_LANGUAGES, "es");
    fillVoices();
  }
  document.body.dataset.ready = "true";
}

main();
