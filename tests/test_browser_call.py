"""The call page in real headless Chromiums against the real server, driven through its controls."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, Playwright, async_playwright, expect

from callserver.app import HUB, MEDIA, ROOMS
from signaling.errors import ErrorCode
from tests.browser import (
    CONNECT_TIMEOUT_MS,
    SILENCE_MAX,
    SPEECH_MIN,
    audio_level,
    audio_level_until,
    fake_microphone,
    first_page,
    launch,
    open_page,
    video_progress,
)
from tests.conftest import CLIPS, RunningServer, wait_for

pytestmark = pytest.mark.browser

WEB = Path(__file__).resolve().parent.parent / "web"


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


async def _browser(
    playwright: Playwright,
    tmp_path: Path,
    label: str,
    clip: Path,
    origin: str,
    devices_allowed: bool = True,
) -> tuple[BrowserContext, Page]:
    wav = fake_microphone(clip, tmp_path / f"{label}.wav")
    context = await launch(
        playwright, tmp_path / f"profile-{label}", wav, origin, devices_allowed=devices_allowed
    )
    page = await first_page(context)
    page.on("pageerror", lambda error: print(f"[{label}] page error: {error}"))
    return context, page


async def test_two_pages_call_each_other(
    server: RunningServer, playwright: Playwright, tmp_path: Path
) -> None:
    rooms, hub = server.app[ROOMS], server.app[HUB]
    (ctx_a, alice), (ctx_b, bao) = await asyncio.gather(
        _browser(playwright, tmp_path, "alice", CLIPS[0], server.url),
        _browser(playwright, tmp_path, "bao", CLIPS[1], server.url),
    )
    try:
        # Alice creates a room from the start screen.
        await open_page(alice, server.url)
        await expect(alice.locator("#join-button")).to_be_hidden()
        await alice.locator("#start-screen").get_by_label("Your name").fill("Alice")
        await alice.locator("#start-screen").get_by_label("I speak").select_option("en")
        await alice.locator("#start-screen").get_by_label("I want to hear").select_option("vi")
        await alice.get_by_role("button", name="Create a room").click()
        await expect(alice.locator("#state-text")).to_have_text(
            "Connected", timeout=CONNECT_TIMEOUT_MS
        )
        await expect(alice.locator("#waiting")).to_be_visible()

        # Alone in the room, her mix is silence: the floor the speech check is measured against.
        floor = await audio_level(alice, "#remote-audio", 1.0)
        assert floor is not None, "no remote audio stream attached"
        assert floor["max"] < SILENCE_MAX, f"alone in the room but hearing {floor}"

        # The copy-link control puts the join link on the clipboard.
        await alice.get_by_role("button", name="Copy link").click()
        await expect(alice.locator("#copy-button")).to_contain_text("Copied")
        link = await alice.evaluate("navigator.clipboard.readText()")
        assert link == await alice.locator("#share-link").input_value()
        room_id = await alice.evaluate("window.callserverDebug.roomId")
        assert link == f"{server.url}/?room={room_id}"
        assert await rooms.get(room_id) is not None

        # Bao opens the link: a Join button for that room, not Create.
        await open_page(bao, link)
        await expect(bao.get_by_role("button", name="Create a room")).to_be_hidden()
        await expect(bao.locator("#room-info")).to_contain_text("1 person is in this call")
        await bao.locator("#start-screen").get_by_label("Your name").fill("Bao")
        await bao.locator("#start-screen").get_by_label("I speak").select_option("vi")
        await bao.locator("#start-screen").get_by_label("I want to hear").select_option("en")
        await bao.get_by_role("button", name="Join the call").click()
        await expect(bao.locator("#state-text")).to_have_text(
            "Connected", timeout=CONNECT_TIMEOUT_MS
        )
        assert hub.participant_count == 2

        # Each sees the other's tile with name and languages.
        bao_tile = alice.locator(".remote-tile")
        await expect(bao_tile).to_have_count(1)
        await expect(bao_tile.locator(".tile-name")).to_have_text("Bao")
        await expect(bao_tile.locator(".tile-langs")).to_have_text(
            "speaks Tiếng Việt (Vietnamese) · hears English"
        )
        await expect(bao.locator(".remote-tile .tile-name")).to_have_text("Alice")
        await expect(alice.locator("#waiting")).to_be_hidden()

        # Video: each remote <video> plays frames from the other browser's camera.
        for page in (alice, bao):
            await page.wait_for_function(
                "document.querySelector('.remote-tile video').videoWidth > 0",
                timeout=CONNECT_TIMEOUT_MS,
            )
        videos = await asyncio.gather(
            video_progress(alice, ".remote-tile video", 1.0),
            video_progress(bao, ".remote-tile video", 1.0),
        )
        for video in videos:
            assert video is not None
            assert video["width"] > 0, video
            assert video["frames"] >= 5, video
            assert video["callbacks"] >= 5, video

        # Audio: each hears the other's voice through the server's mix, well above the floor.
        # Windows are measured until one holds speech: the first audio may still be on its way.
        windows = await asyncio.gather(
            audio_level_until(alice, "#remote-audio", above=SPEECH_MIN, window_s=2.5),
            audio_level_until(bao, "#remote-audio", above=SPEECH_MIN, window_s=2.5),
        )
        for who, seen in zip(("alice", "bao"), windows, strict=True):
            level = seen[-1]
            assert level is not None, f"{who} has no remote audio"
            assert level["max"] > SPEECH_MIN, f"{who} hears nothing: {seen}, floor {floor}"
            assert level["max"] > 10 * max(floor["max"], 1e-4)

        # Mute really silences Bao for Alice; unmute brings him back.
        await bao.get_by_role("button", name="Mute", exact=True).click()
        await expect(bao.locator("#mic-button")).to_have_attribute("aria-pressed", "true")
        # (The clips never pause for a whole second, so a silent 1 s window means muted.)
        muted = await audio_level_until(alice, "#remote-audio", below=SILENCE_MAX)
        assert muted[-1] is not None
        assert muted[-1]["max"] < SILENCE_MAX, f"Bao is muted but Alice hears {muted}"
        await bao.get_by_role("button", name="Unmute").click()
        back = await audio_level_until(alice, "#remote-audio", above=SPEECH_MIN, window_s=1.5)
        assert back[-1] is not None
        assert back[-1]["max"] > SPEECH_MIN, f"Bao unmuted but Alice hears {back}"

        # Changing a language during the call sends an update that Alice's tile shows.
        await bao.locator("#call-listen-select").select_option("fr")
        await expect(bao_tile.locator(".tile-langs")).to_have_text(
            "speaks Tiếng Việt (Vietnamese) · hears Français (French)"
        )
        room = await rooms.get(room_id)
        assert room is not None
        assert sorted(p.listen for p in room.participants.values()) == ["fr", "vi"]

        # Bao leaves: Alice's tile for him goes away and he is back on the start screen.
        await bao.get_by_role("button", name="Leave").click()
        await expect(bao.locator("#start-screen")).to_be_visible()
        await expect(bao.locator("#start-message")).to_contain_text("You left the call")
        await expect(alice.locator(".remote-tile")).to_have_count(0)
        await expect(alice.locator("#waiting")).to_be_visible()
        await wait_for(lambda: hub.participant_count == 1)
        assert await alice.evaluate("Object.keys(window.callserverDebug.peerPcs).length") == 0
    finally:
        await asyncio.gather(ctx_a.close(), ctx_b.close())


async def test_full_room_is_refused_in_words(
    server: RunningServer, playwright: Playwright, tmp_path: Path
) -> None:
    rooms, hub, media = server.app[ROOMS], server.app[HUB], server.app[MEDIA]
    room_id = "full-room-test"
    first, second = server.caller(name="One"), server.caller(name="Two")
    await first.join(room_id)
    await second.join(room_id)
    baseline = (hub.participant_count, hub.connection_count, media.peer_count)
    assert baseline == (2, 2, 0)

    context, page = await _browser(playwright, tmp_path, "carol", CLIPS[2], server.url)
    try:
        await open_page(page, f"{server.url}/?room={room_id}")
        await expect(page.locator("#room-info")).to_have_text(
            "This call is full right now (2 people)."
        )
        await page.locator("#start-screen").get_by_label("Your name").fill("Carol")
        await page.locator("#start-screen").get_by_label("I speak").select_option("de")
        await page.locator("#start-screen").get_by_label("I want to hear").select_option("ja")
        await page.get_by_role("button", name="Join the call").click()
        message = page.locator("#start-message")
        await expect(message).to_have_text(
            "This call is full (2 people).", timeout=CONNECT_TIMEOUT_MS
        )
        text = await message.inner_text()
        assert "{" not in text
        assert "room_full" not in text
        await expect(page.locator("#call-screen")).to_be_hidden()
        await expect(page.get_by_role("button", name="Join the call")).to_be_enabled()

        # The refused page holds nothing on the server.
        await wait_for(
            lambda: (hub.participant_count, hub.connection_count, media.peer_count) == baseline
        )
        full_room = await rooms.get(room_id)
        assert full_room is not None
        assert len(full_room.participants) == 2

        # Every server error code has its own sentence, none of them the code or the fallback.
        fallback = await page.evaluate("window.callserverDebug.errorText('no_such_code')")
        for code in ErrorCode:
            words = await page.evaluate(
                "([c]) => window.callserverDebug.errorText(c, {capacity: 2, nameMax: 64})",
                [str(code)],
            )
            assert words != fallback, f"{code} has no sentence"
            assert str(code) not in words
            assert re.match(r"^[A-Z].*[.…]$", words), words

        # The name and languages are remembered for the next visit.
        await page.reload()
        await page.wait_for_selector("body[data-ready='true']")
        assert (
            await page.locator("#start-screen").get_by_label("Your name").input_value() == "Carol"
        )
        assert await page.locator("#start-screen").get_by_label("I speak").input_value() == "de"
        assert (
            await page.locator("#start-screen").get_by_label("I want to hear").input_value() == "ja"
        )
    finally:
        await context.close()
        await first.close()
        await second.close()


_WATCH_STATE_JS = """
() => {
  const el = document.getElementById("state-text");
  window.__stateWords = [el.textContent];
  new MutationObserver(() => window.__stateWords.push(el.textContent)).observe(el, {
    childList: true, characterData: true, subtree: true,
  });
}
"""


async def test_page_recovers_from_media_failure_and_server_restart(
    server: RunningServer, playwright: Playwright, tmp_path: Path
) -> None:
    hub, media = server.app[HUB], server.app[MEDIA]
    context, page = await _browser(playwright, tmp_path, "dana", CLIPS[0], server.url)
    try:
        await open_page(page, server.url)
        await page.locator("#start-screen").get_by_label("Your name").fill("Dana")
        await page.get_by_role("button", name="Create a room").click()
        state = page.locator("#state-text")
        await expect(state).to_have_text("Connected", timeout=CONNECT_TIMEOUT_MS)
        room_id = await page.evaluate("window.callserverDebug.roomId")
        first_id = await page.evaluate("window.callserverDebug.self.id")
        await page.evaluate(_WATCH_STATE_JS)

        # The server loses the media connection: the page says so, re-offers and stays in.
        await media.remove(room_id, first_id, "failed")
        await expect(state).to_have_text("Connected", timeout=CONNECT_TIMEOUT_MS)
        words = await page.evaluate("window.__stateWords")
        assert "Media failed — retrying" in words, words
        await wait_for(lambda: media.peer_count == 1)
        assert await page.evaluate("window.callserverDebug.self.id") == first_id

        # Draining, then the server closes every socket: the page shows it and rejoins.
        await hub.notify_draining(30)
        await expect(state).to_have_text("Server is shutting down")
        await hub.close_all()
        await expect(state).to_have_text("Connected", timeout=20_000)
        assert await page.evaluate("window.callserverDebug.self.id") != first_id
        await wait_for(lambda: hub.participant_count == 1 and media.peer_count == 1)
        await expect(page.locator("#call-screen")).to_be_visible()
    finally:
        await context.close()


async def test_blocked_devices_still_join_to_watch_and_listen(
    server: RunningServer, playwright: Playwright, tmp_path: Path
) -> None:
    (ctx_a, host), (ctx_b, viewer) = await asyncio.gather(
        _browser(playwright, tmp_path, "host", CLIPS[1], server.url),
        _browser(playwright, tmp_path, "viewer", CLIPS[0], server.url, devices_allowed=False),
    )
    try:
        await open_page(host, server.url)
        await host.locator("#start-screen").get_by_label("Your name").fill("Host")
        await host.get_by_role("button", name="Create a room").click()
        await expect(host.locator("#state-text")).to_have_text(
            "Connected", timeout=CONNECT_TIMEOUT_MS
        )
        link = await host.locator("#share-link").input_value()

        await open_page(viewer, link)
        await viewer.locator("#start-screen").get_by_label("Your name").fill("Viewer")
        await viewer.get_by_role("button", name="Join the call").click()
        await expect(viewer.locator("#state-text")).to_have_text(
            "Connected", timeout=CONNECT_TIMEOUT_MS
        )
        await expect(viewer.locator("#call-message")).to_contain_text("watch and listen only")
        await expect(viewer.locator("#mic-button")).to_be_disabled()
        await expect(viewer.locator("#camera-button")).to_be_disabled()

        # The viewer still gets the host's voice and picture.
        await viewer.wait_for_function(
            "document.querySelector('.remote-tile video').videoWidth > 0",
            timeout=CONNECT_TIMEOUT_MS,
        )
        video = await video_progress(viewer, ".remote-tile video", 1.0)
        assert video is not None
        assert video["frames"] >= 5, video
        heard = await audio_level_until(viewer, "#remote-audio", above=SPEECH_MIN, window_s=2.5)
        assert heard[-1] is not None
        assert heard[-1]["max"] > SPEECH_MIN, heard

        # The host sees the viewer's tile with initials instead of a picture, and hears nothing.
        tile = host.locator(".remote-tile")
        await expect(tile.locator(".tile-name")).to_have_text("Viewer")
        await expect(tile.locator(".placeholder")).to_be_visible()
        await expect(tile.locator(".placeholder")).to_have_text("V")
        silent = await audio_level(host, "#remote-audio", 1.0)
        assert silent is not None
        assert silent["max"] < SILENCE_MAX, silent
    finally:
        await asyncio.gather(ctx_a.close(), ctx_b.close())
