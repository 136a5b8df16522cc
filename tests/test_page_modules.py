"""The call page's ES modules: every import resolves, and the phase table and backoff hold."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import ConsoleMessage, async_playwright

from bench.chromium import CHROMIUM
from signaling.errors import CloseCode, ErrorCode
from tests.conftest import RunningServer

WEB = Path(__file__).resolve().parent.parent / "web"

_IMPORT = re.compile(
    r'^import\s+(?:\{(?P<names>[^}]*)\}|\*\s+as\s+\w+)\s+from\s+"\./(?P<file>[\w.-]+)";',
    re.MULTILINE,
)
_EXPORT = re.compile(
    r"^export\s+(?:async\s+)?(?:function\*?|class|const|let)\s+(?P<name>\w+)"
    r"|^export\s+\{(?P<names>[^}]*)\}",
    re.MULTILINE,
)


def exports(source: str) -> set[str]:
    names: set[str] = set()
    for match in _EXPORT.finditer(source):
        if match["name"]:
            names.add(match["name"])
        else:
            names.update(n.split(" as ")[-1].strip() for n in match["names"].split(","))
    return names - {""}


def test_every_import_names_an_export_of_a_module_that_exists() -> None:
    modules = sorted(WEB.glob("*.js"))
    assert len(modules) > 10
    for module in modules:
        source = module.read_text("utf-8")
        for match in _IMPORT.finditer(source):
            target = WEB / match["file"]
            assert target.is_file(), f"{module.name} imports missing {match['file']}"
            if match["names"] is None:
                continue
            wanted = {n.split(" as ")[0].strip() for n in match["names"].split(",")} - {""}
            missing = wanted - exports(target.read_text("utf-8"))
            assert not missing, f"{module.name} imports {missing} that {target.name} lacks"


def test_only_the_phase_module_holds_the_phase() -> None:
    for module in WEB.glob("*.js"):
        if module.name != "phases.js":
            assert not re.search(r"\bphase\s*=[^=]", module.read_text("utf-8")), module.name


_MODULES_JS = """
async () => {
  const phases = await import("/static/phases.js");
  const { Backoff } = await import("/static/backoff.js");
  const generated = await import("/static/generated.js");
  const { Phase } = phases;
  const walk = [phases.phase()];
  const moved = [];
  for (const next of [Phase.CALL, Phase.JOINING, Phase.START, Phase.JOINING, Phase.CALL,
                      Phase.RECONNECTING, Phase.RECONNECTING, Phase.CALL, Phase.JOINING,
                      Phase.START]) {
    moved.push(phases.moveTo(next, "test"));
    walk.push(phases.phase());
  }

  // Record the waits instead of waiting them.
  const waits = [];
  const realSetTimeout = window.setTimeout;
  window.setTimeout = (task, ms) => { waits.push(ms); return 0; };
  try {
    const rejoin = new Backoff({ baseMs: 1000, maxMs: 10000, jitter: 0.25 });
    for (let i = 0; i < 200; i += 1) rejoin.schedule(() => {});
    const media = new Backoff({ baseMs: 500, maxMs: 8000, immediateFirst: true });
    const mediaDelays = [0, 1, 2, 3, 4, 5].map((n) => media.delay(n));
    const p2p = new Backoff({ baseMs: 1000, maxAttempts: 3 });
    const p2pScheduled = [1, 2, 3, 4].map(() => p2p.schedule(() => {}));
    const p2pWaits = waits.slice(200);
    p2p.reset();
    const afterReset = p2p.schedule(() => {});
    return {
      walk, moved, mediaDelays, p2pScheduled, p2pWaits, afterReset,
      rejoinWaits: waits.slice(0, 200),
      errorCodes: { ...generated.ErrorCode },
      closeCodes: { ...generated.CloseCode },
      roomIds: ["abcdef", "abc", "abcdef\\n", "a-b_c-1234"].map((id) => generated.ROOM_ID.test(id)),
    };
  } finally {
    window.setTimeout = realSetTimeout;
  }
}
"""


@pytest.mark.browser
async def test_phase_table_backoff_and_generated_names_in_chromium(
    server: RunningServer,
) -> None:
    console: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page()

            def keep(message: ConsoleMessage) -> None:
                if message.type == "error" and message.text.startswith("call phase"):
                    console.append(message.text)

            page.on("console", keep)
            await page.goto(server.url + "/healthz")
            result: dict[str, Any] = await page.evaluate(_MODULES_JS)
        finally:
            await browser.close()

    # Moves outside the table are refused, logged and leave the phase as it was.
    assert result["walk"] == [
        "start", "start", "joining", "start", "joining", "call",
        "reconnecting", "reconnecting", "call", "call", "start",
    ]  # fmt: skip
    refused = [i for i, ok in enumerate(result["moved"]) if not ok]
    assert refused == [0, 8]
    assert console == [
        "call phase: refused start -> call (test)",
        "call phase: refused call -> joining (test)",
    ]

    # Rejoining: 1, 2, 4, 8, then 10 s at most, each within ±25%.
    rejoin = result["rejoinWaits"]
    for attempt, wait in enumerate(rejoin):
        nominal = min(10_000, 1000 * 2**attempt)
        assert 0.75 * nominal <= wait <= 1.25 * nominal, (attempt, wait)
    assert max(rejoin) > 10_000 and min(rejoin[4:]) < 10_000  # the jitter spreads pages out
    assert result["mediaDelays"] == [0, 1000, 2000, 4000, 8000, 8000]
    assert result["p2pScheduled"] == [True, True, True, False]
    assert result["p2pWaits"] == [1000, 2000, 4000]
    assert result["afterReset"] is True

    # generated.js is valid JavaScript holding the server's own values.
    assert result["errorCodes"] == {code.name: code.value for code in ErrorCode}
    assert result["closeCodes"] == {code.name: code.value for code in CloseCode}
    assert result["roomIds"] == [True, False, False, True]
