"""Hosted rooms on the call page (issue 14), in real Chromium pages against the real server.

One Chromium, one context per person (each its own localStorage, so only the creator holds the
host key), fake cameras and silent microphones. Hana creates a titled room for four from the
start screen; Bea, Chi and Dan join through her link and see the title and who is in; Eve is
told the room is full. Then the host's controls, each seen from the other side: mute (the
guest's microphone button says so), remove (the guest is told and stays out), lock (a new page
is refused in words) and end (every page shows the call ended, nobody rejoins). On the way:
the grid, the host badge, captions and the active speaker with several people, what each page
sends per peer for the call's size (and not with `?videocaps=off`), and incoming video turned
off. A second test brings a host back as host after leaving and after a reload, then fills a
room of eight and checks that every tile fits a laptop and a phone without scrolling; a third
has a page opened with a host token share a link with a guest token instead.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    Page,
    Playwright,
    ViewportSize,
    async_playwright,
    expect,
)

from bench.chromium import CHROMIUM, chromium_flags
from callserver.app import HUB, MEDIA
from callserver.media.frames import SAMPLE_RATE, silence
from callserver.probe import ScriptedCaller
from signaling.video_caps import VIDEO_CAPS, cap_for
from tests.browser import CONNECT_TIMEOUT_MS, join_from_start, open_page
from tests.conftest import RunningServer, wait_for

pytestmark = pytest.mark.browser

LAPTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
TITLE = "Weekly sync"
SECRET = "hosted-room-page-secret"
# Set to a folder to keep screenshots of the pages while working on their look.
SHOTS = os.environ.get("CALLSERVER_SCREENSHOTS")

# The camera sender's first encoding on every direct link, by peer id (null: no sender yet).
_ENCODINGS_JS = """
() => {
  const out = {};
  for (const [id, pc] of Object.entries(window.callserverDebug.peerPcs)) {
    const sender = pc.getSenders().find((s) => s.track && s.track.kind === "video");
    const encoding = sender ? sender.getParameters().encodings[0] : null;
    out[id] = encoding ? {
      active: encoding.active,
      maxBitrate: encoding.maxBitrate ?? null,
      scaleResolutionDownBy: encoding.scaleResolutionDownBy ?? null,
      maxFramerate: encoding.maxFramerate ?? null,
    } : null;
  }
  return out;
}
"""

# Every tile's box, and whether the page scrolls.
_LAYOUT_JS = """
() => {
  const box = (el) => { const r = el.getBoundingClientRect();
    return { left: r.left, top: r.top, right: r.right, bottom: r.bottom }; };
  const tiles = [...document.querySelectorAll("#tiles .tile")].map(box);
  const controls = box(document.querySelector(".controls"));
  const root = document.scrollingElement;
  return { tiles, controls, width: innerWidth, height: innerHeight,
           scrollWidth: root.scrollWidth, scrollHeight: root.scrollHeight };
}
"""


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


@pytest.fixture
async def browser(playwright: Playwright, tmp_path: Path) -> AsyncIterator[Browser]:
    """One Chromium whose fake microphone is silence (nothing here listens to speech)."""
    wav = tmp_path / "silence.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(silence(SAMPLE_RATE).astype("<i2").tobytes())
    chromium = await playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=chromium_flags(wav)
    )
    try:
        yield chromium
    finally:
        await chromium.close()


async def _page(browser: Browser, label: str, viewport: ViewportSize = LAPTOP) -> Page:
    """A page in a context of its own: its own localStorage, so its own host keys."""
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    page.on("pageerror", lambda error: print(f"[{label}] page error: {error}"))
    return page


async def _shot(page: Page, name: str) -> None:
    if SHOTS:
        await page.screenshot(path=str(Path(SHOTS) / f"hosted-{name}.png"))


async def _encodings(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(_ENCODINGS_JS)
    return result


async def _wait_encodings(page: Page, expected: dict[str, Any], timeout_s: float = 20) -> None:
    """Wait until every link's encoding holds ``expected`` (fields compared by value)."""
    seen: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                seen = await _encodings(page)
                if seen and all(
                    enc is not None and all(enc[k] == v for k, v in expected.items())
                    for enc in seen.values()
                ):
                    return
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"the links never sent {expected}: {seen}") from None


def _cap(others: int) -> dict[str, Any]:
    row = cap_for(others)
    return {
        "maxBitrate": row.max_bitrate_bps,
        "scaleResolutionDownBy": row.scale_resolution_down_by,
        "maxFramerate": row.max_framerate,
    }


async def _self_id(page: Page) -> str:
    pid: str = await page.evaluate("window.callserverDebug.self.id")
    return pid


async def _guest_joins(page: Page, link: str, name: str, spoken: str, listen: str) -> str:
    await open_page(page, link)
    await expect(page.locator("#room-title")).to_have_text(TITLE)
    await join_from_start(page, name, spoken, listen, "Join the call")
    return await _self_id(page)


async def test_hosted_room_of_four_from_the_start_screen(
    server: RunningServer, browser: Browser
) -> None:
    hub, media = server.app[HUB], server.app[MEDIA]
    hana, bea, chi, dan, eve = await asyncio.gather(
        *(_page(browser, label) for label in ("hana", "bea", "chi", "dan", "eve"))
    )

    # --- Hana creates a titled room for four --------------------------------------------------
    await open_page(hana, server.url)
    await _shot(hana, "start")
    size = hana.locator("#start-screen").get_by_label("Call size")
    await expect(size).to_have_value("2")  # a two-person call unless she chooses
    await expect(size.locator("option")).to_have_count(7)  # 2..8 (room_max_capacity)
    await size.select_option("4")
    await hana.locator("#start-screen").get_by_label("Call title").fill(TITLE)
    await join_from_start(hana, "Hana", "en", "en", "Create a room")
    room_id: str = await hana.evaluate("window.callserverDebug.roomId")
    link = await hana.locator("#share-link").input_value()
    assert link == f"{server.url}/?room={room_id}"
    # The host key stays in her browser's storage: not in her address, not in the link.
    stored = await hana.evaluate("JSON.parse(localStorage.getItem('callserver.host-keys'))")
    key = stored[room_id]["key"]
    assert len(key) >= 16
    assert key not in hana.url and key not in link
    assert await hana.evaluate("window.callserverDebug.isHost")
    await expect(hana.locator("#call-title")).to_have_text(TITLE)
    await expect(hana.get_by_role("button", name="Host")).to_be_visible()
    await expect(hana.locator("#local-host")).to_be_visible()

    # --- Three guests open the link: the title, who is in and in which languages --------------
    await open_page(bea, link)
    await expect(bea.locator("#room-title")).to_have_text(TITLE)
    await expect(bea.locator("#room-info")).to_have_text(
        "You're invited: 1 person is in this call, 3 places left."
    )
    await expect(bea.locator("#room-people li")).to_have_text(
        ["Hana (host) speaks English · hears English"]
    )
    await expect(bea.get_by_role("button", name="Host")).to_be_hidden()
    await join_from_start(bea, "Bea", "es", "es", "Join the call")
    bea_id = await _self_id(bea)
    # Hana's camera goes to one peer: the first row of the table.
    await _wait_encodings(hana, {"active": True, **_cap(1)})

    chi_id = await _guest_joins(chi, link, "Chi", "vi", "en")
    # Dan measures without the caps (`?videocaps=off`, docs/protocol.md "Video in a mesh").
    await open_page(dan, f"{link}&videocaps=off")
    await expect(dan.locator("#room-info")).to_have_text(
        "You're invited: 3 people are in this call, 1 place left."
    )
    await expect(dan.locator("#room-people li")).to_have_count(3)
    await expect(dan.locator("#room-people li").nth(2)).to_contain_text("Chi")
    await expect(dan.locator("#room-people li").nth(2)).to_contain_text("Vietnamese")
    await _shot(dan, "preview")
    await join_from_start(dan, "Dan", "en", "es", "Join the call")
    dan_id = await _self_id(dan)
    everyone = {hana: "Hana", bea: "Bea", chi: "Chi", dan: "Dan"}

    # --- Eve: the room is full, said before she tries and when she does -----------------------
    await open_page(eve, link)
    await expect(eve.locator("#room-info")).to_have_text("This call is full right now (4 people).")
    await eve.locator("#start-screen").get_by_label("Your name").fill("Eve")
    await eve.get_by_role("button", name="Join the call").click()
    await expect(eve.locator("#start-message")).to_have_text(
        "This call is full (4 people).", timeout=CONNECT_TIMEOUT_MS
    )

    # --- The call screen for four: a 2x2 grid, the host badge, nobody else's host controls ----
    for page in everyone:
        await expect(page.locator("#tiles")).to_have_attribute("data-count", "4")
        await expect(page.locator("#tiles .tile")).to_have_count(4)
    host_tile = bea.locator(".remote-tile", has_text="Hana")
    await expect(host_tile.locator(".tile-host")).to_be_visible()
    await expect(host_tile.get_by_role("button", name="Remove Hana from the call")).to_be_hidden()
    await expect(bea.locator(".remote-tile", has_text="Dan").locator(".tile-host")).to_be_hidden()
    await expect(hana.get_by_role("button", name="Remove Bea from the call")).to_be_visible()

    # What each page sends each peer in a call of four: the row for three others, re-applied
    # on Hana's links as Chi and Dan joined; Dan's page leaves the browser's own choice.
    for page in (hana, bea, chi):
        await _wait_encodings(page, {"active": True, **_cap(3)})
    await _wait_encodings(dan, {"active": True})
    uncapped = await _encodings(dan)
    assert len(uncapped) == 3
    for encoding in uncapped.values():
        assert encoding["maxBitrate"] is None and encoding["maxFramerate"] is None, uncapped
    assert cap_for(3) != cap_for(1) and cap_for(3) == VIDEO_CAPS[1]

    # --- Captions name their speaker; the speaker's tile lights up while they speak ----------
    for speaker, name, text in ((bea_id, "Bea", "Hola a todos."), (dan_id, "Dan", "Hi there.")):
        caption = {
            "type": "caption",
            "utterance_id": f"u_{name}",
            "speaker": speaker,
            "speaker_name": name,
            "final": True,
            "language": "en",
            "text": text,
            "translations": {},
            "started_at": 1.0,
            "ended_at": 2.0,
        }
        assert media.send_event(room_id, await _self_id(chi), caption)
    captions = chi.locator("#caption-list .caption")
    await expect(captions.locator(".caption-speaker")).to_have_text(["Bea", "Dan"])
    hana_id = await _self_id(hana)
    speaking = {"type": "speaking", "speaker": dan_id, "speaking": True}
    assert media.send_event(room_id, hana_id, speaking)
    assert media.send_event(room_id, dan_id, speaking)
    dan_tile = hana.locator(f".remote-tile[data-participant='{dan_id}']")
    await expect(dan_tile).to_have_attribute("data-speaking", "true")
    await expect(dan.locator("#local-tile")).to_have_attribute("data-speaking", "true")
    assert media.send_event(room_id, hana_id, {**speaking, "speaking": False})
    await expect(dan_tile).to_have_attribute("data-speaking", "false")

    # --- Mute: Dan is told, and his microphone button cannot lift it ---------------------------
    await hana.get_by_role("button", name="Mute Dan").click()
    await expect(dan.locator("#call-message")).to_have_text(
        "The host muted your microphone. Only the host can turn it back on."
    )
    mic = dan.locator("#mic-button")
    await expect(mic).to_have_text("Muted by host")
    await expect(mic).to_be_disabled()
    await _shot(dan, "muted-by-host")
    await expect(dan_tile.locator(".tile-muted")).to_be_visible()
    await expect(
        chi.locator(f".remote-tile[data-participant='{dan_id}'] .tile-muted")
    ).to_be_visible()
    await hana.get_by_role("button", name="Unmute Dan").click()
    await expect(mic).to_have_text("Mute")
    await expect(mic).to_be_enabled()
    await expect(dan_tile.locator(".tile-muted")).to_be_hidden()

    # --- Chi turns incoming video off: the others stop sending to her, she sees names ---------
    await chi.get_by_role("button", name="Turn off incoming video").click()
    await expect(chi.locator("#stage")).to_have_attribute("data-incoming-video", "off")
    await expect(chi.locator(".remote-tile .placeholder").first).to_be_visible()
    for page in (hana, bea, dan):
        await page.wait_for_function(
            f"""(() => {{
              const pc = window.callserverDebug.peerPcs[{chi_id!r}];
              const s = pc && pc.getSenders().find((x) => x.track && x.track.kind === "video");
              return s && s.getParameters().encodings[0].active === false;
            }})()"""
        )
        encodings = await _encodings(page)
        assert [enc["active"] for pid, enc in encodings.items() if pid != chi_id] == [True, True]
    await chi.get_by_role("button", name="Turn on incoming video").click()
    for page in (hana, bea, dan):
        await _wait_encodings(page, {"active": True})

    # --- Remove: Bea is told by whom, and stays out --------------------------------------------
    await _shot(hana, "four")
    await hana.get_by_role("button", name="Remove Bea from the call").click()
    dialog = hana.get_by_role("dialog")
    await expect(dialog).to_contain_text("Remove Bea from the call?")
    await _shot(hana, "confirm-remove")
    await dialog.get_by_role("button", name="Remove").click()
    await expect(bea.locator("#start-screen")).to_be_visible()
    await expect(bea.locator("#start-message")).to_have_text(
        "You were removed from the call by Hana."
    )
    await _shot(bea, "removed")
    for page in (hana, chi, dan):
        await expect(page.locator(".remote-tile", has_text="Bea")).to_have_count(0)
    await expect(chi.locator("#call-message")).to_have_text(
        "Bea was removed from the call by the host."
    )
    await wait_for(lambda: hub.participant_count == 3)

    # --- Lock: everyone is told; a new page is refused in words --------------------------------
    await hana.get_by_role("button", name="Host").click()
    await _shot(hana, "host-menu")
    await hana.get_by_role("button", name="Lock the room").click()
    await expect(hana.locator("#room-locked")).to_be_visible()
    for page in (chi, dan):
        await expect(page.locator("#call-message")).to_have_text("The host locked the room.")
        await expect(page.locator("#room-locked")).to_be_visible()
    await open_page(eve, link)
    await expect(eve.locator("#room-info")).to_have_text(
        "The host has locked this call: nobody new can join until they unlock it."
    )
    await eve.get_by_role("button", name="Join the call").click()
    await expect(eve.locator("#start-message")).to_have_text(
        "The host has locked this call, so nobody new can join. Ask the host to unlock it.",
        timeout=CONNECT_TIMEOUT_MS,
    )
    # Bea was not rejoined behind anyone's back, and the lock keeps her out too.
    assert await bea.evaluate("window.callserverDebug.phase") == "start"
    assert hub.participant_count == 3
    # Chi's page reloads (as after a dropped connection): her tab's rejoin key gets her back
    # in through the lock.
    await chi.reload()
    await chi.wait_for_selector("body[data-ready='true']")
    await chi.get_by_role("button", name="Join the call").click()
    await expect(chi.locator("#state-text")).to_have_text("Connected", timeout=CONNECT_TIMEOUT_MS)
    await expect(hana.locator(".remote-tile", has_text="Chi")).to_have_count(1)
    await wait_for(lambda: hub.participant_count == 3)

    # --- End: every page shows the call ended, and nobody joins again --------------------------
    await hana.get_by_role("button", name="Host").click()
    await hana.get_by_role("button", name="End call for everyone").click()
    await hana.get_by_role("dialog").get_by_role("button", name="End the call").click()
    await expect(hana.locator("#start-message")).to_have_text("You ended the call for everyone.")
    for page in (chi, dan):
        await expect(page.locator("#start-message")).to_have_text("Hana ended the call.")
    await _shot(chi, "ended")
    for page in (hana, chi, dan):
        await expect(page.locator("#start-screen")).to_be_visible()
        await expect(page.locator("#room-info")).to_have_text("This call has ended.")
    await wait_for(lambda: hub.participant_count == 0)
    # Longer than the first rejoin wait (1 s, +25%): still nobody in, every page on its start.
    await asyncio.sleep(2)
    assert hub.participant_count == 0
    for page in everyone:
        assert await page.evaluate("window.callserverDebug.phase") == "start"


async def test_host_comes_back_and_eight_tiles_fit_a_laptop_and_a_phone(
    server: RunningServer, browser: Browser
) -> None:
    page = await _page(browser, "host", LAPTOP)
    # Measuring without the caps: the switch stays on the address once the room is made.
    await open_page(page, f"{server.url}/?videocaps=off")
    await page.locator("#start-screen").get_by_label("Call size").select_option("8")
    await join_from_start(page, "Hana", "en", "en", "Create a room")
    room_id: str = await page.evaluate("window.callserverDebug.roomId")
    address = await page.evaluate("new URLSearchParams(location.search).toString()")
    assert address == f"room={room_id}&videocaps=off", address
    # The host who leaves, or reloads the page, comes back as host (the key in storage).
    await page.get_by_role("button", name="Leave").click()
    await expect(page.locator("#room-info")).to_contain_text("You host this call.")
    await page.get_by_role("button", name="Join the call").click()
    await expect(page.locator("#state-text")).to_have_text("Connected", timeout=CONNECT_TIMEOUT_MS)
    assert await page.evaluate("window.callserverDebug.isHost")
    await page.reload()
    await page.wait_for_selector("body[data-ready='true']")
    await page.get_by_role("button", name="Join the call").click()
    await expect(page.locator("#state-text")).to_have_text("Connected", timeout=CONNECT_TIMEOUT_MS)
    assert await page.evaluate("window.callserverDebug.isHost")
    await expect(page.get_by_role("button", name="Host")).to_be_visible()
    # Seven more participants, through the server (signaling only: tiles with initials).
    guests: list[ScriptedCaller] = []
    try:
        for n in range(7):
            guest = server.caller(name=f"Guest number {n + 1}", spoken="vi", listen="pt")
            await guest.join(room_id)
            guests.append(guest)
        await expect(page.locator("#tiles .tile")).to_have_count(8)
        await expect(page.locator("#tiles")).to_have_attribute("data-count", "8")
        for viewport in (LAPTOP, PHONE):
            await page.set_viewport_size(viewport)
            await page.wait_for_timeout(100)  # one layout after the resize
            layout = await page.evaluate(_LAYOUT_JS)
            where = f"{viewport['width']}x{viewport['height']}"
            await _shot(page, f"eight-{where}")
            assert layout["scrollHeight"] <= layout["height"], (where, layout)
            assert layout["scrollWidth"] <= layout["width"], (where, layout)
            assert len(layout["tiles"]) == 8
            for tile in layout["tiles"]:
                assert tile["left"] >= 0 and tile["top"] >= 0, (where, tile)
                assert tile["right"] <= layout["width"], (where, tile)
                assert tile["bottom"] <= layout["controls"]["top"], (where, tile, layout)
                # Big enough to show a face and a name: not squeezed to a strip.
                assert tile["bottom"] - tile["top"] >= 100, (where, tile)
                assert tile["right"] - tile["left"] >= 150, (where, tile)
            assert layout["controls"]["bottom"] <= layout["height"], (where, layout)
            await expect(page.get_by_role("button", name="Leave")).to_be_in_viewport()
        # The page's camera to seven peers would use the last row (no links to these callers:
        # they never offer video, so the table is checked where the page computes it).
        row = await page.evaluate(
            "async () => (await import('/static/video-caps.js'))"
            ".encodingFor({video: true}, 7, true)"
        )
        last = VIDEO_CAPS[-1]
        assert row == {
            "active": True,
            "maxBitrate": last.max_bitrate_bps,
            "scaleResolutionDownBy": last.scale_resolution_down_by,
            "maxFramerate": last.max_framerate,
        }
    finally:
        for guest in guests:
            await guest.close()


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


async def test_a_host_token_page_shares_a_guest_link(make_server: Any, browser: Browser) -> None:
    async with make_server(join_secret=SECRET) as server:
        async with server.session.post(
            f"{server.url}/api/rooms",
            json={"capacity": 3, "title": "Board"},
            headers={"Authorization": f"Bearer {SECRET}"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            room = await resp.json()
        assert _claims(room["host_token"])["grants"]["host"] is True
        host, guest = await asyncio.gather(_page(browser, "host"), _page(browser, "guest"))

        # The operator hands the host a link with the host token: the page hosts because the
        # server says so, and the link it shares carries the welcome's guest token instead.
        await open_page(host, f"{server.url}/?room={room['id']}&token={room['host_token']}")
        await expect(host.locator("#room-title")).to_have_text("Board")
        await join_from_start(host, "Hana", "en", "en", "Join the call")
        assert await host.evaluate("window.callserverDebug.isHost")
        link = await host.locator("#share-link").input_value()
        token = link.split("token=")[1]
        assert room["host_token"] not in link and room["host_token"] not in token
        assert _claims(token).get("grants", {}).get("host", False) is False
        assert _claims(token)["room"] == room["id"]

        # A guest with that link sees who is in (the token lets the preview name them), joins
        # as a guest and sees no host controls.
        await open_page(guest, link)
        await expect(guest.locator("#room-people li")).to_have_text(
            ["Hana (host) speaks English · hears English"]
        )
        await expect(guest.locator("#room-info")).to_have_text(
            "You're invited: 1 person is in this call, 2 places left."
        )
        await join_from_start(guest, "Bea", "es", "es", "Join the call")
        assert not await guest.evaluate("window.callserverDebug.isHost")
        await expect(guest.get_by_role("button", name="Host")).to_be_hidden()
        await expect(guest.locator(".remote-tile .tile-host")).to_be_visible()
