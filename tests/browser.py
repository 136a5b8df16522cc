"""Helpers for tests that drive the call page in a real headless Chromium through Playwright."""

from __future__ import annotations

import base64
import wave
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page, Playwright, expect

from bench.chromium import CHROMIUM, chromium_flags
from callserver.media.frames import SAMPLE_RATE, Pcm16
from callserver.probe import load_wav_48k

# RMS of received audio (float samples, full scale 1.0). Digital silence through Opus stays
# below 0.001; the LibriVox speech after Chromium's processing peaks around 0.05-0.2.
SILENCE_MAX = 0.003
SPEECH_MIN = 0.02
# Page loads, connections (ICE, DTLS) and first frames: a second or two here, but CI is a
# loaded 2-core machine running Whisper beside the browsers.
CONNECT_TIMEOUT_MS = 45_000


def fake_microphone(clip: Path, out: Path) -> Path:
    """Write ``clip`` as a 48 kHz mono s16 WAV for Chromium's fake audio capture."""
    samples = load_wav_48k(str(clip))
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(samples.tobytes())
    return out


async def launch(
    playwright: Playwright,
    profile: Path,
    fake_audio: Path,
    origin: str,
    devices_allowed: bool = True,
) -> BrowserContext:
    """A Chromium with its own profile and fake devices; the clipboard is allowed for ``origin``."""
    context = await playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=chromium_flags(fake_audio, devices_allowed=devices_allowed),
        viewport={"width": 1100, "height": 720},
    )
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
    return context


async def first_page(context: BrowserContext) -> Page:
    """The tab a persistent context opens with, or a new one."""
    return context.pages[0] if context.pages else await context.new_page()


async def open_page(page: Page, url: str) -> None:
    """Load the call page and wait until it has its configuration."""
    await page.goto(url)
    await page.wait_for_selector("body[data-ready='true']", timeout=CONNECT_TIMEOUT_MS)


async def open_browser(
    playwright: Playwright, tmp_path: Path, label: str, mic: Path, origin: str
) -> tuple[BrowserContext, Page]:
    """A Chromium with its own profile and ``mic`` as its microphone; page errors printed."""
    context = await launch(playwright, tmp_path / f"profile-{label}", mic, origin)
    page = await first_page(context)
    page.on("pageerror", lambda error: print(f"[{label}] page error: {error}"))
    return context, page


async def join_from_start(page: Page, name: str, spoken: str, listen: str, button: str) -> None:
    """Fill the start form, press ``button`` and wait until the server's media is up."""
    start = page.locator("#start-screen")
    await start.get_by_label("Your name").fill(name)
    await start.get_by_label("I speak").select_option(spoken)
    await start.get_by_label("I want to hear").select_option(listen)
    await page.get_by_role("button", name=button).click()
    await expect(page.locator("#state-text")).to_have_text("Connected", timeout=CONNECT_TIMEOUT_MS)
    await wait_debug(page, "d.events.some((e) => e.type === 'media-ready')", CONNECT_TIMEOUT_MS)


async def debug(page: Page, field: str) -> Any:
    """One read-only field of the page's test hook ``window.callserverDebug``."""
    return await page.evaluate(f"window.callserverDebug.{field}")


async def wait_debug(page: Page, expression: str, timeout_ms: float = 15_000) -> None:
    """Wait until a JS ``expression`` over ``d = window.callserverDebug`` is true."""
    await page.wait_for_function(
        f"(() => {{ const d = window.callserverDebug; return {expression}; }})()",
        timeout=timeout_ms,
    )


_LEVEL_JS = """
async ([selector, seconds]) => {
  const element = document.querySelector(selector);
  const stream = element && element.srcObject;
  if (!stream || stream.getAudioTracks().length === 0) return null;
  const ctx = new AudioContext({ sampleRate: 48000 });
  await ctx.resume();
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 2048;
  source.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  const levels = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    levels.push(Math.sqrt(sum / buf.length));
  }
  source.disconnect();
  await ctx.close();
  levels.sort((a, b) => a - b);
  return { max: levels[levels.length - 1], p90: levels[Math.floor(levels.length * 0.9)] };
}
"""


async def audio_level(page: Page, selector: str, seconds: float) -> dict[str, float] | None:
    """RMS levels (max and 90th percentile of ~43 ms windows) of an element's received audio."""
    result: dict[str, float] | None = await page.evaluate(_LEVEL_JS, [selector, seconds])
    return result


async def audio_level_until(
    page: Page,
    selector: str,
    *,
    above: float | None = None,
    below: float | None = None,
    window_s: float = 1.0,
    attempts: int = 5,
) -> list[dict[str, float] | None]:
    """Measure windows of received audio until one's max level is above/below a threshold.

    Returns every window measured; the last one meets the condition unless all attempts ran out.
    Polling absorbs the variable latency of a loaded machine without loosening the threshold.
    """
    seen: list[dict[str, float] | None] = []
    for _ in range(attempts):
        level = await audio_level(page, selector, window_s)
        seen.append(level)
        if level is None:
            continue
        if above is not None and level["max"] > above:
            break
        if below is not None and level["max"] < below:
            break
    return seen


_VIDEO_JS = """
async ([selector, seconds]) => {
  const video = document.querySelector(selector);
  if (!video) return null;
  const before = video.getVideoPlaybackQuality().totalVideoFrames;
  let callbacks = 0;
  const count = () => { callbacks += 1; video.requestVideoFrameCallback(count); };
  video.requestVideoFrameCallback(count);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return {
    width: video.videoWidth,
    height: video.videoHeight,
    frames: video.getVideoPlaybackQuality().totalVideoFrames - before,
    callbacks,
    paused: video.paused,
  };
}
"""


async def video_progress(page: Page, selector: str, seconds: float) -> dict[str, Any] | None:
    """Size of a ``<video>`` and how many frames it showed over ``seconds``."""
    result: dict[str, Any] | None = await page.evaluate(_VIDEO_JS, [selector, seconds])
    return result


# Test-only, before the page's own scripts: getUserMedia hands out a WebAudio stream instead of
# the fake capture device, so the microphone is silent until the test plays PCM into it (the
# fake capture file starts at getUserMedia and would put the test on a fixed timeline). Video
# still comes from the fake camera. Each call gets a clone, so the page may stop its track.
_CONTROLLED_MIC_JS = """
(() => {
  const devices = navigator.mediaDevices;
  if (!devices || !devices.getUserMedia) return;
  const original = devices.getUserMedia.bind(devices);
  let mic = null;
  const ensure = async () => {
    if (!mic) {
      const ctx = new AudioContext({ sampleRate: 48000 });
      const dest = ctx.createMediaStreamDestination();
      dest.channelCount = 1;
      // The destination delivers audio only while a source plays into it: a source of
      // zeros keeps the track sending silence between sentences, as a real microphone does.
      const floor = ctx.createConstantSource();
      floor.offset.value = 0;
      floor.connect(dest);
      floor.start();
      mic = { ctx, dest, floor, endsAt: 0, acquired: 0 };
    }
    await mic.ctx.resume();
    return mic;
  };
  const wall = () => performance.timeOrigin + performance.now();
  window.__testMic = {
    get acquired() { return mic ? mic.acquired : 0; },
    // Plays base64 s16le mono 48 kHz after what is already queued; resolves when it ended,
    // with the wall-clock milliseconds [started, ended] on this machine's clock.
    async play(b64) {
      const m = await ensure();
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const pcm = new Int16Array(bytes.buffer);
      const buffer = m.ctx.createBuffer(1, pcm.length, 48000);
      const channel = buffer.getChannelData(0);
      for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 32768;
      const source = m.ctx.createBufferSource();
      source.buffer = buffer;
      source.connect(m.dest);
      const at = Math.max(m.ctx.currentTime + 0.05, m.endsAt);
      const started = wall() + (at - m.ctx.currentTime) * 1000;
      m.endsAt = at + buffer.duration;
      const ended = new Promise((resolve) => { source.onended = () => resolve(wall()); });
      source.start(at);
      return [started, await ended];
    },
  };
  devices.getUserMedia = async (constraints) => {
    const wantsAudio = Boolean(constraints && constraints.audio);
    const rest = { ...(constraints || {}), audio: false };
    const stream = rest.video ? await original(rest) : new MediaStream();
    if (wantsAudio) {
      const m = await ensure();
      m.acquired += 1;
      stream.addTrack(m.dest.stream.getAudioTracks()[0].clone());
    }
    return stream;
  };
})();
"""


class Microphone:
    """A page's microphone that is silent until the test plays audio into it.

    ``install`` must run before the page loads (it is an init script).
    """

    def __init__(self, page: Page) -> None:
        self.page = page

    async def install(self) -> None:
        await self.page.add_init_script(_CONTROLLED_MIC_JS)

    async def acquired(self) -> int:
        """How many times the page took the microphone (getUserMedia with audio)."""
        count: int = await self.page.evaluate("window.__testMic.acquired")
        return count

    async def play(self, samples: Pcm16) -> tuple[float, float]:
        """Play 48 kHz mono s16 ``samples``; returns when done with wall seconds (start, end).

        The end is when the page saw playback end, so it is no earlier than the real end.
        """
        b64 = base64.b64encode(samples.astype("<i2").tobytes()).decode("ascii")
        started, ended = await self.page.evaluate("(b64) => window.__testMic.play(b64)", b64)
        return float(started) / 1000, float(ended) / 1000
