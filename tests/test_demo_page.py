"""The speech demo page (/demo) in a real headless Chromium against the real server and engines.

Everything goes through the page's own controls: file inputs, the Record button (fed by
Chromium's fake microphone), selects, text boxes and buttons; the checks read what the page
shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect

from models.stt.score import edit_distance
from models.stt.score import words as scored_words
from tests.browser import fake_microphone, first_page, launch
from tests.conftest import CLIPS

pytestmark = pytest.mark.browser

# Whisper's first request also assembles and loads its model: generous on 2 shared cores.
STT_TIMEOUT_MS = 90_000
STEP_TIMEOUT_MS = 30_000
# A time as the page prints it: "8.0 ms", "251 ms", "2.60 s".
TIME = re.compile(r"^\d+(\.\d+)? (ms|s)$")


def words(text: str) -> list[str]:
    """Lower-case words, hyphenated ones split ("ill-disposed" -> "ill", "disposed")."""
    return re.findall(r"[a-z']+", text.lower().replace("-", " "))


def wrong_words(shown: str, clip: Path) -> int:
    """Words ``shown`` gets wrong against the clip's transcript (substituted, lost or added)."""
    reference = clip.with_suffix(".txt").read_text()
    return edit_distance(scored_words(reference), scored_words(shown))


# Whisper base (the page's recogniser) gets both clips word for word on this machine, as it
# does all 44 words of the three clips in test_stt. One wrong word per clip is the allowance
# test_stt makes for other CPUs' int8 kernels; a broken upload, resampling or model would
# lose far more.
MAX_WRONG_WORDS = 1


async def metric(page: Page, endpoint: str, field: str = "requests") -> int:
    """A count shown in the live metrics table."""
    text = await page.text_content(f'#metrics-body tr[data-endpoint="{endpoint}"] .{field}')
    assert text is not None
    return int(text)


async def wait_metric(page: Page, endpoint: str, field: str, at_least: int) -> None:
    """Wait until the metrics table (updated by the page's own polling) shows ``at_least``."""
    await page.wait_for_function(
        """([endpoint, field, at_least]) => {
          const cell = document.querySelector(
            `#metrics-body tr[data-endpoint="${endpoint}"] .${field}`);
          return cell && Number(cell.textContent) >= at_least;
        }""",
        arg=[endpoint, field, at_least],
        timeout=10_000,
    )


async def audio_duration(page: Page, selector: str) -> float:
    """The duration an ``<audio>`` element found in what it loaded (0 until it has loaded)."""
    await page.wait_for_function(
        f"(() => {{ const a = document.querySelector('{selector}');"
        " return a && Number.isFinite(a.duration) && a.duration > 0; })()",
        timeout=10_000,
    )
    duration: float = await page.evaluate(f"document.querySelector('{selector}').duration")
    return duration


async def panel_done(page: Page, panel: str, timeout_ms: float) -> None:
    """Wait until a panel's request finished (its state leaves "busy")."""
    await page.wait_for_function(
        f"(() => {{ const s = document.querySelector('#{panel}').dataset.state;"
        " return s === 'done' || s === 'error'; })()",
        timeout=timeout_ms,
    )


async def test_demo_page_drives_every_engine(
    make_server: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh speech/translation cache, so the first synthesis is a real miss.
    monkeypatch.setenv("CALLSERVER_CACHE_DIR", str(tmp_path / "cache"))
    mic_clip, stt_clip, chain_clip = CLIPS[0], CLIPS[1], CLIPS[2]
    mic = fake_microphone(mic_clip, tmp_path / "mic.wav")

    async with make_server() as server, async_playwright() as playwright:
        context = await launch(playwright, tmp_path / "profile", mic, server.url)
        try:
            page = await first_page(context)
            page_errors: list[str] = []
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            await page.goto(f"{server.url}/demo")
            await page.wait_for_selector("body[data-ready='true']", timeout=15_000)

            # Live metrics and engine health fill in by themselves.
            await expect(page.locator("#metrics-updated")).to_contain_text("updated")
            await expect(page.locator("#health .health-card")).to_have_count(3)
            before = {e: await metric(page, e) for e in ("stt", "translate", "tts")}
            assert before == {"stt": 0, "translate": 0, "tts": 0}
            await expect(page.locator("#health .health-card").first).to_contain_text("not loaded")

            # (a) Speech to text from an uploaded file.
            await page.set_input_files("#stt-file", str(stt_clip))
            await panel_done(page, "stt-panel", STT_TIMEOUT_MS)
            await expect(page.locator("#stt-error")).to_be_hidden()
            transcript = await page.text_content("#stt-text") or ""
            assert wrong_words(transcript, stt_clip) <= MAX_WRONG_WORDS, transcript
            await expect(page.locator("#stt-detected")).to_contain_text("English")
            assert re.search(r"\d+%", await page.text_content("#stt-detected") or "")
            for cell in ("#stt-decode", "#stt-recognize", "#stt-total"):
                assert TIME.match(await page.text_content(cell) or ""), cell
            # Engine health now reports the loaded recogniser (polled every few seconds).
            stt_health = page.locator("#health .health-card").first
            await expect(stt_health).to_contain_text("loaded", timeout=10_000)
            await expect(stt_health).not_to_contain_text("not loaded", timeout=10_000)
            await expect(stt_health).to_contain_text("cpu")

            # (b) Translate English to Spanish.
            await page.select_option("#mt-source", "en")
            await page.select_option("#mt-target", "es")
            await page.fill("#mt-text", "The house is big")
            await page.click("#mt-go")
            await panel_done(page, "mt-panel", STEP_TIMEOUT_MS)
            await expect(page.locator("#mt-output")).to_contain_text(
                re.compile("casa", re.IGNORECASE)
            )
            assert (await page.text_content("#mt-engine") or "–") != "–"
            assert TIME.match(await page.text_content("#mt-time") or "")

            # (c) Text to speech: played in the page, then the same request hits the cache.
            await page.select_option("#tts-language", "en")
            await page.fill("#tts-text", "The demo page speaks this sentence aloud.")
            await page.click("#tts-speak")
            await panel_done(page, "tts-panel", STEP_TIMEOUT_MS)
            await expect(page.locator("#tts-error")).to_be_hidden()
            engine = await page.text_content("#tts-engine") or ""
            assert engine in ("piper", "espeak"), engine
            assert (await page.text_content("#tts-voice-used") or "–") != "–"
            await expect(page.locator("#tts-cache")).to_have_text("Miss")
            assert TIME.match(await page.text_content("#tts-synthesis") or "")
            assert await audio_duration(page, "#tts-audio") > 1.0
            await page.click("#tts-speak")
            await panel_done(page, "tts-panel", STEP_TIMEOUT_MS)
            await expect(page.locator("#tts-cache")).to_have_text("Hit")
            assert await audio_duration(page, "#tts-audio") > 1.0

            # (d) The whole chain on an uploaded English clip, heard in Spanish.
            await page.select_option("#chain-target", "es")
            await page.set_input_files("#chain-file", str(chain_clip))
            await panel_done(page, "chain-panel", STT_TIMEOUT_MS)
            await expect(page.locator("#chain-error")).to_be_hidden()
            heard = await page.text_content("#chain-transcript") or ""
            assert wrong_words(heard, chain_clip) <= MAX_WRONG_WORDS, heard
            translated = await page.text_content("#chain-translation") or ""
            assert translated.strip() and translated.strip() != heard.strip()
            for stage in ("recognize", "translate", "synthesize", "network", "total"):
                value = page.locator(f'#chain-bars [data-stage="{stage}"] .bar-value')
                assert TIME.match(await value.text_content() or ""), stage
            assert await audio_duration(page, "#chain-audio") > 1.0

            # (f) An error in words: a pair no engine here serves shows the server's message.
            await page.select_option("#mt-target", "vi")
            await page.click("#mt-go")
            error = page.locator("#mt-error")
            await expect(error).to_be_visible(timeout=STEP_TIMEOUT_MS)
            message = await error.text_content() or ""
            assert "translate" in message.lower() and "vi" in message, message
            assert "{" not in message and "unsupported_language" not in message, message
            await expect(page.locator("#mt-result")).to_be_hidden()

            # Optional path: record ~4 s from the (fake) microphone, stop, see the transcript.
            await page.click("#stt-record")
            await expect(page.locator("#stt-record")).to_have_attribute("aria-pressed", "true")
            # The counter shows m:ss and counts up; waiting until it reads 0:04 (rather than
            # for a fixed time) lets the recording hold "john dashwood", spoken in its first
            # 2 s. Its pace is the page's clock, so only reaching the value is checked.
            elapsed = page.locator("#stt-elapsed")
            await expect(elapsed).to_be_visible()
            await expect(elapsed).to_have_text(re.compile(r"^0:0\d$"))
            await expect(elapsed).to_have_text(re.compile(r"^0:0[4-9]$"), timeout=STEP_TIMEOUT_MS)
            await page.click("#stt-record")
            await expect(page.locator("#stt-record")).to_have_attribute("aria-pressed", "false")
            await page.wait_for_function(
                "document.querySelector('#stt-text').textContent.toLowerCase().includes('john')",
                timeout=STT_TIMEOUT_MS,
            )
            spoken = words(await page.text_content("#stt-text") or "")
            assert {"john", "dashwood"} <= set(spoken) or {"john", "then"} <= set(spoken), spoken

            # (e) The live metrics panel counted all of it, without reloading the page.
            await wait_metric(page, "stt", "requests", before["stt"] + 3)  # file, chain, mic
            await wait_metric(page, "translate", "requests", before["translate"] + 3)
            await wait_metric(page, "translate", "errors", 1)
            await wait_metric(page, "tts", "requests", before["tts"] + 3)
            p50 = await page.text_content('#metrics-body tr[data-endpoint="stt"] .p50') or ""
            assert TIME.match(p50), p50
            await expect(page.locator('#caches [data-cache="tts"] .cache-counts')).to_contain_text(
                "1 hit"
            )

            assert page_errors == []
        finally:
            await context.close()
