"""The call page tells a listener what each language pair gives, with real Chromium pages.

A default install (Apertium: English<->Spanish only) with translation on. Alice speaks and
hears English; Nam speaks and hears Vietnamese, his microphone an espeak-ng Vietnamese
sentence. Nothing translates Vietnamese into English here, so Alice's page shows the server's
notice about Nam, marks English in her "I hear" picker as original-only for this room, says so
in the line about Nam, and shows Nam's words as an untranslated Vietnamese caption.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Playwright, async_playwright, expect

from callserver.media.frames import SAMPLE_RATE, silence
from callserver.probe import load_wav_48k
from tests.browser import (
    CONNECT_TIMEOUT_MS,
    join_from_start,
    open_browser,
    open_page,
    wait_debug,
)

pytestmark = pytest.mark.browser

SENTENCE = "Xin chào các bạn. Hôm nay trời đẹp lắm, chúng ta đi uống cà phê nhé."
# Whisper on a loaded 2-core machine, after the media connects.
CAPTION_TIMEOUT_MS = 120_000


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


def _write_mic(samples: np.ndarray, out: Path) -> Path:
    """48 kHz mono s16, the format the tests give Chromium's fake capture."""
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(samples.astype("<i2").tobytes())
    return out


def _vietnamese_mic(tmp_path: Path) -> Path:
    """The sentence, then 1.5 s of silence so each loop of the file ends an utterance."""
    raw = tmp_path / "vi-espeak.wav"
    subprocess.run(["espeak-ng", "-v", "vi", "-w", str(raw), SENTENCE], check=True)
    speech = load_wav_48k(str(raw))
    gap = silence(round(1.5 * SAMPLE_RATE))
    return _write_mic(np.concatenate([speech, gap]), tmp_path / "vi-mic.wav")


async def test_pair_marks_notice_and_original_caption(
    make_server: Any, playwright: Playwright, tmp_path: Path
) -> None:
    quiet_mic = _write_mic(silence(2 * SAMPLE_RATE), tmp_path / "silence.wav")
    nam_mic = _vietnamese_mic(tmp_path)
    async with make_server(translate_calls=True, preload_engines=True) as server:
        async with server.session.get(f"{server.url}/api/config") as resp:
            pairs = (await resp.json())["pairs"]
        # What this install does: the premise of the test.
        assert pairs["vi"]["en"]["gives"] == "original", pairs["vi"]["en"]
        assert pairs["es"]["en"]["gives"] in {"voice", "captions"}, pairs["es"]["en"]

        (ctx_a, alice), (ctx_n, nam) = await asyncio.gather(
            open_browser(playwright, tmp_path, "alice", quiet_mic, server.url),
            open_browser(playwright, tmp_path, "nam", nam_mic, server.url),
        )
        try:
            await open_page(alice, server.url)
            # Before joining: nothing translates into Vietnamese here; into English, something.
            start_hear = alice.locator("#listen-select")
            await expect(start_hear.locator("option[value='vi']")).to_have_attribute(
                "data-gives", "original"
            )
            await expect(start_hear.locator("option[value='vi']")).to_contain_text("original only")
            assert await start_hear.locator("option[value='en']").get_attribute("data-gives") in {
                "voice",
                "captions",
            }

            await join_from_start(alice, "Alice", "en", "en", "Create a room")
            # Alone in the room: the call picker marks nothing.
            hear = alice.locator("#call-listen-select")
            await expect(hear.locator("option[data-gives]")).to_have_count(0)
            await expect(alice.locator("#pair-summary li")).to_have_count(0)

            link = await alice.locator("#share-link").input_value()
            await open_page(nam, link)
            await join_from_start(nam, "Nam", "vi", "vi", "Join the call")
            nam_id: str = await nam.evaluate("window.callserverDebug.self.id")

            # (1) The server's notice about Nam, in its words.
            notice = alice.locator(f"#pair-notices .pair-notice[data-speaker='{nam_id}']")
            await expect(notice).to_be_visible(timeout=CONNECT_TIMEOUT_MS)
            await expect(notice).to_contain_text("Nam speaks Vietnamese")
            await expect(notice).to_have_attribute("data-gives", "original")
            status = alice.get_by_role("status").filter(has_text="Nam speaks Vietnamese")
            await expect(status).to_have_attribute("id", "pair-notices")

            # (2) The "I hear" picker: English gives only the original for this room; Spanish
            # (Apertium has no vi->es either) too; Vietnamese is Nam's own language.
            await expect(hear.locator("option[value='en']")).to_have_attribute(
                "data-gives", "original"
            )
            await expect(hear.locator("option[value='en']")).to_contain_text("— original only")
            await expect(hear.locator("option[value='vi']")).to_have_attribute("data-gives", "same")

            # (3) The line about Nam says what Alice's current choice gets from him.
            line = alice.locator(f"#pair-summary li[data-participant='{nam_id}']")
            await expect(line).to_have_attribute("data-gives", "original")
            await expect(line).to_contain_text("From Nam (Vietnamese): original captions and voice")

            # (4) Nam's words reach Alice as an untranslated Vietnamese caption.
            # The first loop of the file may start before the media connects, so a fragment
            # of it can end as a final caption with no words: the first one with words counts.
            caption = (
                alice.locator("#caption-list .caption[data-final='true']")
                .filter(has=alice.locator(".caption-speaker", has_text="Nam"))
                .filter(has=alice.locator(".caption-original", has_text=re.compile(r"\w")))
            )
            await expect(caption.first).to_be_visible(timeout=CAPTION_TIMEOUT_MS)
            original = caption.first.locator(".caption-original")
            await expect(original).to_have_attribute("lang", "vi")
            await expect(caption.first.locator(".caption-translation")).to_have_count(0)
            print(f"Nam's caption on Alice's page: {await original.inner_text()!r}")

            # (5) Nam leaves: his notice and his line go, and the picker is unmarked again.
            await nam.get_by_role("button", name="Leave").click()
            await expect(notice).to_have_count(0, timeout=CONNECT_TIMEOUT_MS)
            await expect(alice.locator("#pair-notices")).to_be_hidden()
            await expect(alice.locator("#pair-summary li")).to_have_count(0)
            await expect(hear.locator("option[data-gives]")).to_have_count(0)
            await wait_debug(alice, "d.participants.length === 0")
        finally:
            await asyncio.gather(ctx_a.close(), ctx_n.close())
