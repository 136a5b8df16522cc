"""Helpers for tests that drive the call page in a real headless Chromium through Playwright."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page, Playwright

from callserver.media.frames import SAMPLE_RATE
from callserver.probe import load_wav_48k

CHROMIUM = "/usr/lib/chromium/chromium"

# RMS of received audio (float samples, full scale 1.0). Digital silence through Opus stays
# below 0.001; the LibriVox speech after Chromium's processing peaks around 0.05-0.2.
SILENCE_MAX = 0.003
SPEECH_MIN = 0.02


def chromium_flags(fake_audio: Path, devices_allowed: bool = True) -> list[str]:
    """Flags for a headless Chromium caller on a loopback-only machine (see the testing notes).

    Without ``devices_allowed`` the permission prompt is not auto-accepted, so getUserMedia is
    refused (NotAllowedError) as when a user blocks the camera and microphone.
    """
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_audio}",
        "--autoplay-policy=no-user-gesture-required",
        "--allow-loopback-in-peer-connection",
        # One switch only: the last --disable-features wins and replaces Playwright's list.
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
    ]
    if not devices_allowed:
        flags.remove("--use-fake-ui-for-media-stream")
    return flags


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
        args=chromium_flags(fake_audio, devices_allowed),
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
    await page.wait_for_selector("body[data-ready='true']", timeout=10_000)


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
