"""Captions and listener controls on the call page, with events sent by the real server."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Playwright, async_playwright, expect

from callserver.app import HUB, MEDIA
from signaling.rooms import Participant
from signaling.tokens import mint_token
from tests.browser import (
    CONNECT_TIMEOUT_MS,
    fake_microphone,
    first_page,
    launch,
    open_page,
    wait_debug,
)
from tests.conftest import CLIPS, RunningServer, wait_for

pytestmark = pytest.mark.browser

SECRET = "captions-test-secret"
ROOM = "captions-room-1"
# Set to a folder to keep screenshots of the captions while working on their look.
SHOTS = os.environ.get("CALLSERVER_SCREENSHOTS")

# Test-only: record every message the page sends on its signaling WebSocket.
_RECORD_SENT_JS = """
(() => {
  window.__sent = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try { window.__sent.push(JSON.parse(data)); } catch (e) {}
    return send.call(this, data);
  };
})();
"""

T0 = 1_764_230_000.12


def _caption(final: bool, text: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "caption",
        "utterance_id": "u_ab12",
        "speaker": "p_x",
        "speaker_name": "Alice",
        "final": final,
        "language": "en",
        "text": text,
        "translations": {},
        "started_at": T0,
        "ended_at": None,
    }
    event.update(fields)
    return event


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


async def _sent(page: Page, kind: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = await page.evaluate("window.__sent")
    return [m for m in sent if m.get("type") == kind]


async def _shot(page: Page, name: str) -> None:
    if SHOTS:
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


async def _join(page: Page, url: str, first_time: bool = False) -> tuple[str, str]:
    """Join through the start screen; (room id, participant id) once the data channel is up."""
    await open_page(page, url)
    if first_time:
        start = page.locator("#start-screen")
        await start.get_by_label("Your name").fill("Bea")
        await start.get_by_label("I speak").select_option("es")
        await start.get_by_label("I want to hear").select_option("es")
    await page.get_by_role("button", name="Join the call").click()
    await expect(page.locator("#state-text")).to_have_text("Connected", timeout=CONNECT_TIMEOUT_MS)
    await wait_debug(page, "d.events.some((e) => e.type === 'media-ready')")
    return (
        await page.evaluate("window.callserverDebug.roomId"),
        await page.evaluate("window.callserverDebug.self.id"),
    )


async def test_captions_latency_and_listener_controls(
    make_server: Any, playwright: Playwright, tmp_path: Path
) -> None:
    async with make_server(join_secret=SECRET) as server:
        await _run(server, playwright, tmp_path)


async def _run(server: RunningServer, playwright: Playwright, tmp_path: Path) -> None:
    media, hub = server.app[MEDIA], server.app[HUB]
    token = mint_token(SECRET.encode(), ROOM, 600)
    wav = fake_microphone(CLIPS[0], tmp_path / "mic.wav")
    context = await launch(playwright, tmp_path / "profile", wav, server.url)
    try:
        page = await first_page(context)
        page.on("pageerror", lambda error: print(f"page error: {error}"))
        await context.add_init_script(_RECORD_SENT_JS)
        room_id, me = await _join(page, f"{server.url}/?room={ROOM}&token={token}", True)
        assert room_id == ROOM

        panel = page.locator("#captions")
        await expect(panel).to_be_hidden()  # nothing said yet

        def send(event: dict[str, Any]) -> None:
            assert media.send_event(room_id, me, event), "data channel not open"

        # Interim text, revised in place: one caption, shown as interim.
        send(_caption(False, "hello every"))
        item = page.locator("#caption-list .caption")
        await expect(item).to_have_count(1)
        await expect(item.locator(".caption-original")).to_have_text("hello every")
        await expect(item).to_have_class("caption interim")
        await expect(item.locator(".caption-speaker")).to_have_text("Alice")
        send(_caption(False, "hello everyone", translations={"es": "hola a to"}))
        await expect(item.locator(".caption-original")).to_have_text("hello everyone")
        await expect(item.locator(".caption-translation")).to_have_text("hola a to")
        style = await item.locator(".caption-original").evaluate(
            "(e) => getComputedStyle(e).fontStyle"
        )
        assert style == "italic"
        await _shot(page, "1-interim")

        # The final text replaces it, with the translation into this listener's language only.
        final = _caption(
            True,
            "Hello everyone.",
            translations={"es": "Hola a todos.", "fr": "Bonjour à tous."},
            ended_at=T0 + 1.78,
            stages_ms={"endpoint": 410, "recognize": 520, "translate": 90},
        )
        send(final)
        await expect(item).to_have_count(1)
        await expect(item).to_have_attribute("data-final", "true")
        await expect(item).not_to_have_class("caption interim")
        await expect(item.locator(".caption-original")).to_have_text("Hello everyone.")
        await expect(item.locator(".caption-original")).to_have_attribute("lang", "en")
        await expect(item.locator(".caption-translation")).to_have_text("Hola a todos.")
        assert "Bonjour" not in await panel.inner_text()
        # A late interim never undoes the final text.
        send(_caption(False, "hello every"))
        send({**final, "utterance_id": "u_marker", "text": "Marker.", "translations": {}})
        await expect(item).to_have_count(2)
        await expect(item.first.locator(".caption-original")).to_have_text("Hello everyone.")

        # Mouth-to-ear time, with the stages one click away.
        send(
            {
                "type": "latency",
                "utterance_id": "u_ab12",
                "language": "es",
                "stages_ms": {
                    "endpoint": 410,
                    "recognize": 520,
                    "translate": 90,
                    "synthesize": 60,
                    "first_dub_frame": 25,
                    "mouth_to_ear": 1105,
                },
            }
        )
        badge = item.first.locator(".caption-latency")
        await expect(badge).to_have_text("1.1 s")
        assert "Speech recognition: 520 ms" in (await badge.get_attribute("title") or "")
        await _shot(page, "1b-final")
        stages = item.first.locator(".caption-stages")
        await expect(stages).to_be_hidden()
        await badge.click()
        await expect(stages).to_be_visible()
        await expect(stages.locator(".stage-row.total")).to_have_text("Total, mouth to ear1105 ms")
        await expect(stages).to_contain_text("Speech synthesis60 ms")

        # An utterance the server skipped to catch up shows a marker, not text.
        send(
            {
                "type": "caption-dropped",
                "utterance_id": "u_cd34",
                "speaker": "p_x",
                "speaker_name": "Alice",
                "reason": "backlog",
            }
        )
        dropped = page.locator(".caption.dropped")
        await expect(dropped).to_have_count(1)
        await expect(dropped).to_contain_text("Alice")
        await expect(dropped.locator(".caption-dropped")).to_have_text("… skipped to catch up")
        # One whose engines were unreachable says so, in words.
        send(
            {
                "type": "caption-dropped",
                "utterance_id": "u_cd35",
                "speaker": "p_x",
                "speaker_name": "Alice",
                "reason": "unavailable",
            }
        )
        await expect(dropped).to_have_count(2)
        await expect(dropped.nth(1).locator(".caption-dropped")).to_have_text(
            "… not translated: translation is overloaded or unreachable for now"
        )
        await _shot(page, "2-final-latency-dropped")

        # Captions off hides the panel (the page keeps them); on again shows them.
        captions = page.get_by_role("button", name="Captions")
        await captions.click()
        await expect(panel).to_be_hidden()
        await expect(page.locator("#captions-button")).to_have_attribute("aria-pressed", "false")
        await page.locator("#captions-button").click()
        await expect(panel).to_be_visible()
        await expect(item).to_have_count(4)

        # Joining sent this listener's mix; the toggles send it again.

        def participant() -> Participant:
            now = hub.participant(me)
            assert now is not None
            return now

        assert await _sent(page, "prefs") == [
            {"v": 1, "type": "prefs", "dub": True, "original_volume": 1}
        ]
        await page.get_by_role("button", name="Sound").click()
        await expect(page.locator("#sound-panel")).to_be_visible()
        await _shot(page, "3-sound")
        await page.get_by_role("switch", name="Dubbing").uncheck()
        await page.locator("#original-volume").fill("40")
        await expect(page.locator("#original-volume-value")).to_have_text("40%")
        await wait_for(lambda: participant().original_volume == 0.4)
        prefs = await _sent(page, "prefs")
        assert prefs[1] == {"v": 1, "type": "prefs", "dub": False, "original_volume": 1}
        assert prefs[-1] == {"v": 1, "type": "prefs", "dub": False, "original_volume": 0.4}
        assert participant().dub is False
        await page.keyboard.press("Escape")
        await expect(page.locator("#sound-panel")).to_be_hidden()

        # The transcript menu links to the room's downloads, with the invitation token.
        await page.get_by_role("button", name="Transcript").click()
        menu = page.locator("#transcript-menu")
        await expect(menu).to_be_visible()
        await _shot(page, "4-transcript")
        for ext in ("srt", "vtt", "json"):
            link = menu.locator(f"#transcript-{ext}")
            href = f"/api/rooms/{ROOM}/transcript.{ext}?token={token}"
            assert await link.get_attribute("href") == href
            assert await link.get_attribute("download") == f"transcript-{ROOM}.{ext}"
        await page.locator("#stage").click(position={"x": 20, "y": 20})
        await expect(menu).to_be_hidden()

        # A new visit remembers the choices and sends them right after joining again.
        await page.get_by_role("button", name="Leave").click()
        await expect(page.locator("#start-screen")).to_be_visible()
        room_id, me = await _join(page, f"{server.url}/?room={ROOM}&token={token}")
        sent = await page.evaluate("window.__sent")
        kinds = [m["type"] for m in sent]
        assert kinds.index("join") < kinds.index("prefs")
        assert await _sent(page, "prefs") == [
            {"v": 1, "type": "prefs", "dub": False, "original_volume": 0.4}
        ]
        await wait_for(lambda: participant().dub is False and participant().original_volume == 0.4)
        await expect(page.locator("#dub-toggle")).not_to_be_checked()
        await expect(page.locator("#original-volume")).to_have_value("40")
        await page.locator("#captions-button").click()
        await open_page(page, f"{server.url}/?room={ROOM}&token={token}")
        stored = json.loads(await page.evaluate("localStorage.getItem('callserver.prefs')") or "{}")
        assert stored["captions"] is False
        await expect(page.locator("#captions-button")).to_have_attribute("aria-pressed", "false")
    finally:
        await context.close()
