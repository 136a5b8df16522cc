"""A translated call between two real Chromium pages: Alice speaks English, Bob hears Spanish.

Everything runs for real: the page's controls, WebRTC to the server, voice detection, Whisper,
Apertium, espeak-ng, the mix. Alice's fake microphone plays two LibriVox sentences once, with
long silences around them; Bob's is silent. Bob's page records the level of what it receives
(the server's mix for him) and when each data-channel event arrived, on the machine's clock,
so each audio window can be placed after Alice's voice has stopped: energy there is the dub.
"""

from __future__ import annotations

import asyncio
import re
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import BrowserContext, Page, Playwright, async_playwright, expect

from callserver.app import ROOMS
from callserver.media.frames import SAMPLE_RATE, Pcm16, silence
from callserver.probe import load_wav_48k
from tests.browser import SILENCE_MAX, SPEECH_MIN, first_page, launch, open_page, wait_debug
from tests.conftest import DATA, RunningServer, wait_for

pytestmark = pytest.mark.browser

FIRST = DATA / "sense_and_sensibility_01_austen_64kb-0880"  # "he was not an ill disposed young man"
SECOND = (
    DATA / "sense_and_sensibility_01_austen_64kb-0890"
)  # "unless to be rather cold hearted ..."
LEAD_S = 3.0  # silence before the first sentence: time for Alice's call to connect
GAP_S = 26.0  # silence between the sentences: the first dub plays and Bob turns dubbing off
TAIL_S = 12.0  # silence after the second sentence, so it ends and the dub window is quiet
# Alice's voice reaches Bob's analyser within this long after the fake capture plays it
# (capture, Opus, the server's jitter buffer and mix, the page's jitter buffer, the analyser's
# 43 ms window); measured around 0.2-0.3 s on 2 cores.
TRANSPORT_SLACK_S = 1.0
# A dub of one short sentence (espeak-ng, Spanish) lasts about 3 s and starts as soon as it
# is synthesised, i.e. right after the translated caption.
DUB_WINDOW_S = 6.0


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


def _write_wav(samples: Pcm16, out: Path) -> Path:
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(samples.tobytes())
    return out


def _seconds(s: float) -> Pcm16:
    return silence(round(s * SAMPLE_RATE))


# Test-only, Alice's page: when getUserMedia was called, i.e. when the fake capture file starts.
_GUM_TIME_JS = """
(() => {
  const devices = navigator.mediaDevices;
  if (!devices) return;
  const original = devices.getUserMedia.bind(devices);
  devices.getUserMedia = (constraints) => {
    if (constraints && constraints.audio && window.__gumAt === undefined) {
      window.__gumAt = performance.timeOrigin + performance.now();
    }
    return original(constraints);
  };
})();
"""

# Test-only, Bob's page: every 20 ms, the RMS of the last ~43 ms of the received mix and any
# data-channel events that arrived, stamped with wall-clock milliseconds (the server's and
# Alice's page's clock too).
_MONITOR_JS = """
async () => {
  const stream = document.querySelector("#remote-audio").srcObject;
  const ctx = new AudioContext({ sampleRate: 48000 });
  await ctx.resume();
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 2048;
  source.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  const seen = new WeakSet();
  const monitor = { levels: [], events: [], ctx, source };
  window.__monitor = monitor;
  const tick = () => {
    const t = performance.timeOrigin + performance.now();
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    monitor.levels.push([t, Math.sqrt(sum / buf.length)]);
    for (const event of window.callserverDebug.events) {
      if (!seen.has(event)) {
        seen.add(event);
        monitor.events.push([t, event]);
      }
    }
  };
  monitor.timer = setInterval(tick, 20);
}
"""


class Monitor:
    """Bob's recording: (wall ms, rms) levels and (wall ms, event) arrivals."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def start(self) -> None:
        await self.page.evaluate(_MONITOR_JS)

    async def levels(self, start_s: float, end_s: float) -> list[float]:
        rows: list[list[float]] = await self.page.evaluate(
            "([a, b]) => window.__monitor.levels.filter(([t]) => t >= a && t < b)",
            [start_s * 1000, end_s * 1000],
        )
        return [rms for _, rms in rows]

    async def arrival(self, event_type: str, utterance_id: str, translated: bool = False) -> float:
        """Wall-clock seconds at which the first matching event arrived (with Spanish text)."""
        rows: list[list[Any]] = await self.page.evaluate("window.__monitor.events")
        for t, event in rows:
            if event.get("type") != event_type or event.get("utterance_id") != utterance_id:
                continue
            if not translated or (event.get("translations") or {}).get("es"):
                return float(t) / 1000
        raise AssertionError(f"no {event_type} event for {utterance_id} in {rows}")

    async def events(self) -> list[dict[str, Any]]:
        rows: list[list[Any]] = await self.page.evaluate("window.__monitor.events")
        return [event for _, event in rows]

    async def stop(self) -> None:
        await self.page.evaluate(
            "() => { const m = window.__monitor; clearInterval(m.timer); m.source.disconnect();"
            " return m.ctx.close(); }"
        )


async def _browser(
    playwright: Playwright, tmp_path: Path, label: str, mic: Path, origin: str
) -> tuple[BrowserContext, Page]:
    context = await launch(playwright, tmp_path / f"profile-{label}", mic, origin)
    page = await first_page(context)
    page.on("pageerror", lambda error: print(f"[{label}] page error: {error}"))
    return context, page


async def _join(page: Page, name: str, spoken: str, listen: str, button: str) -> None:
    start = page.locator("#start-screen")
    await start.get_by_label("Your name").fill(name)
    await start.get_by_label("I speak").select_option(spoken)
    await start.get_by_label("I want to hear").select_option(listen)
    await page.get_by_role("button", name=button).click()
    await expect(page.locator("#state-text")).to_have_text("Connected", timeout=30_000)
    await wait_debug(page, "d.events.some((e) => e.type === 'media-ready')", 30_000)


async def _final_caption(
    page: Page, after: set[str], translated: bool, timeout_ms: float = 60_000
) -> str:
    """Id of the first final caption with text not in ``after`` (and a translation)."""
    await page.wait_for_function(
        """([known, translated]) => [...document.querySelectorAll(
             "#caption-list .caption[data-final='true']")].some((c) =>
             !known.includes(c.dataset.utterance)
             && c.querySelector('.caption-original')?.textContent
             && (!translated || c.querySelector('.caption-translation')))""",
        arg=[sorted(after), translated],
        timeout=timeout_ms,
    )
    ids: list[str] = await page.evaluate(
        """([known, translated]) => [...document.querySelectorAll(
             "#caption-list .caption[data-final='true']")].filter((c) =>
             !known.includes(c.dataset.utterance)
             && c.querySelector('.caption-original')?.textContent
             && (!translated || c.querySelector('.caption-translation')))
           .map((c) => c.dataset.utterance)""",
        [sorted(after), translated],
    )
    return ids[0]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-záéíóúñü]+", text.lower()))


async def _wait_until(wall_s: float) -> None:
    delay = wall_s - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def test_translated_call_captions_and_dub(
    make_server: Any, playwright: Playwright, tmp_path: Path
) -> None:
    first, second = load_wav_48k(str(FIRST) + ".wav"), load_wav_48k(str(SECOND) + ".wav")
    first_s, second_s = first.size / SAMPLE_RATE, second.size / SAMPLE_RATE
    alice_mic = _write_wav(
        np.concatenate((_seconds(LEAD_S), first, _seconds(GAP_S), second, _seconds(TAIL_S))),
        tmp_path / "alice.wav",
    )
    bob_mic = _write_wav(_seconds(2.0), tmp_path / "bob.wav")
    # Engines load while the browsers start, so the first utterance does not wait for Whisper.
    async with make_server(translate_calls=True, preload_engines=True) as server:
        (ctx_a, alice), (ctx_b, bob) = await asyncio.gather(
            _browser(playwright, tmp_path, "alice", Path(f"{alice_mic}%noloop"), server.url),
            _browser(playwright, tmp_path, "bob", bob_mic, server.url),
        )
        try:
            await alice.add_init_script(_GUM_TIME_JS)
            await _run(server, alice, bob, first_s, second_s)
        finally:
            await asyncio.gather(ctx_a.close(), ctx_b.close())


async def _run(
    server: RunningServer, alice: Page, bob: Page, first_s: float, second_s: float
) -> None:
    # Bob creates the room, speaking and hearing Spanish; alone, his mix is silence.
    await open_page(bob, server.url)
    await _join(bob, "Bob", "es", "es", "Create a room")
    room_id: str = await bob.evaluate("window.callserverDebug.roomId")
    link = await bob.locator("#share-link").input_value()
    monitor = Monitor(bob)
    await monitor.start()
    floor_from = time.time()
    await asyncio.sleep(1.5)

    # Alice joins through the link, speaking and hearing English; her sentences start playing.
    await open_page(alice, link)
    await _join(alice, "Alice", "en", "en", "Join the call")
    gum_at = float(await alice.evaluate("window.__gumAt")) / 1000
    assert gum_at >= floor_from
    floor_levels = await monitor.levels(floor_from + 0.3, gum_at)
    assert len(floor_levels) > 30, "the monitor did not run before Alice joined"
    floor = max(floor_levels)
    assert floor < SILENCE_MAX, f"alone in the room but Bob hears {floor:.4f}"
    # Wall-clock times at which Alice's sentences play into her microphone.
    first_start = gum_at + LEAD_S
    first_end = first_start + first_s
    second_start = first_end + GAP_S
    second_end = second_start + second_s

    # (1) Bob's page shows a final caption: Alice's English words and their Spanish translation.
    u1 = await _final_caption(bob, set(), translated=True)
    caption = bob.locator(f"#caption-list .caption[data-utterance='{u1}']")
    await expect(caption.locator(".caption-speaker")).to_have_text("Alice")
    english = await caption.locator(".caption-original").inner_text()
    spanish = await caption.locator(".caption-translation").inner_text()
    heard = _words(english) & _words(FIRST.with_suffix(".txt").read_text())
    assert len(heard) >= 4, f"caption {english!r} is not the clip's sentence"
    assert await caption.locator(".caption-original").get_attribute("lang") == "en"
    assert await caption.locator(".caption-translation").get_attribute("lang") == "es"

    # (2) The latency badge: the dub's first frame reached Bob's mix.
    badge = caption.locator(".caption-latency")
    await expect(badge).to_be_visible(timeout=30_000)
    await expect(badge).to_have_text(re.compile(r"^\d+(\.\d)? s$"))

    # The room's transcript has the same text and translation, and it is Apertium's Spanish.
    async with server.session.get(f"{server.url}/api/rooms/{room_id}/transcript.json") as resp:
        assert resp.status == 200
        transcript = await resp.json()
    entry = next(e for e in transcript["entries"] if e["utterance_id"] == u1)
    assert entry["speaker_name"] == "Alice"
    assert entry["language"] == "en"
    assert entry["text"].strip() == english.strip()
    assert entry["translations"]["es"].strip() == spanish.strip()
    assert _words(spanish) & {"hombre", "joven", "no", "fue", "era"}, spanish
    assert _words(spanish) - _words(english), f"{spanish!r} is not a translation"

    # (3) The dub is heard: energy after Alice's voice stopped and the translation arrived.
    translated_at = await monitor.arrival("caption", u1, translated=True)
    latency_at = await monitor.arrival("latency", u1)
    # Captions come after the end of speech is detected, so her voice had stopped by then.
    assert translated_at > first_end, (translated_at - first_end, "caption before speech end")
    window_start = max(translated_at, first_end + TRANSPORT_SLACK_S)
    window_end = min(window_start + DUB_WINDOW_S, second_start)
    assert window_end - window_start > 3.0, "the first caption came too late to hear its dub"
    original = await monitor.levels(first_start, first_end + TRANSPORT_SLACK_S)
    assert max(original) > SPEECH_MIN, f"Bob never heard Alice's voice: {max(original):.4f}"
    await _wait_until(window_end + 0.3)
    dub = await monitor.levels(window_start, window_end)
    assert len(dub) > 0.5 * (window_end - window_start) / 0.02, "the monitor stalled"
    dub_level = float(np.percentile(dub, 90))
    assert max(dub) > SPEECH_MIN, (
        f"no dub heard: max {max(dub):.4f} p90 {dub_level:.4f} in {window_end - window_start:.1f}"
        f" s after the caption (floor {floor:.4f}); latency event at"
        f" +{latency_at - window_start:.1f} s"
    )
    assert max(dub) > 10 * max(floor, 1e-4)

    # (5) Bob turns dubbing off in the Sound popover; Alice's next sentence is captioned and
    # translated but not dubbed: the same window after it stays silent.
    rooms = server.app[ROOMS]
    await bob.get_by_role("button", name="Sound").click()
    await expect(bob.locator("#sound-panel")).to_be_visible()
    await bob.get_by_role("switch", name="Dubbing").uncheck()
    await bob.keyboard.press("Escape")
    await expect(bob.locator("#sound-panel")).to_be_hidden()
    bob_id: str = await bob.evaluate("window.callserverDebug.self.id")
    room = rooms.get(room_id)
    assert room is not None
    await wait_for(lambda: room.participants[bob_id].dub is False)
    dub_off_at = time.time()
    # Its dub is queued after the end of the sentence is detected, so this is early enough.
    assert dub_off_at < second_end, (
        f"dubbing was turned off {dub_off_at - second_end:.1f} s after the second sentence "
        "ended: the machine is too slow for this test's timeline"
    )

    u2 = await _final_caption(bob, {u1}, translated=True)
    second_caption = bob.locator(f"#caption-list .caption[data-utterance='{u2}']")
    english_2 = await second_caption.locator(".caption-original").inner_text()
    heard_2 = _words(english_2) & _words(SECOND.with_suffix(".txt").read_text())
    assert len(heard_2) >= 4, f"caption {english_2!r} is not the second sentence"
    await expect(second_caption.locator(".caption-translation")).not_to_be_empty()
    translated_2 = await monitor.arrival("caption", u2, translated=True)
    assert translated_2 > second_end
    quiet_start = max(translated_2, second_end + TRANSPORT_SLACK_S)
    quiet_end = quiet_start + DUB_WINDOW_S
    await _wait_until(quiet_end + 0.3)
    quiet = await monitor.levels(quiet_start, quiet_end)
    assert len(quiet) > 0.5 * DUB_WINDOW_S / 0.02, "the monitor stalled"
    assert max(quiet) < SILENCE_MAX, f"dubbing is off but Bob hears {max(quiet):.4f}"
    bob_events = await monitor.events()
    print(
        f"floor {floor:.4f} original {max(original):.4f} dub max {max(dub):.4f} p90 {dub_level:.4f}"
        f" quiet {max(quiet):.4f}; caption 1 at +{translated_at - first_end:.1f} s after speech,"
        f" latency +{latency_at - first_end:.1f} s, caption 2 +{translated_2 - second_end:.1f} s;"
        f" dubbing off {second_start - dub_off_at:.1f} s before sentence 2 began"
    )
    assert not [e for e in bob_events if e.get("type") == "latency" and e["utterance_id"] == u2]
    await expect(badge).to_have_count(1)
    await expect(second_caption.locator(".caption-latency")).to_have_count(0)
    await monitor.stop()

    # (4) Alice sees her own words, untranslated, and is sent no dub (no latency events).
    for uid, text in ((u1, english), (u2, english_2)):
        own = alice.locator(f"#caption-list .caption[data-utterance='{uid}']")
        await expect(own.locator(".caption-original")).to_have_text(text)
        await expect(own).to_have_attribute("data-final", "true")
        await expect(own.locator(".caption-translation")).to_have_count(0)
    alice_events: list[dict[str, Any]] = await alice.evaluate("window.callserverDebug.events")
    assert not [e for e in alice_events if e.get("type") == "latency"], alice_events
    await expect(alice.locator(".caption-latency")).to_have_count(0)
