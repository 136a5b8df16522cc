"""The README's configuration tables are what `callserver settings` prints: they cannot drift."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from callserver.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_lists_every_setting_as_the_code_defines_it() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["settings"]) == 0
    tables = out.getvalue().strip()
    assert tables.count("| `CALLSERVER_") > 50
    assert tables in README.read_text("utf-8"), "README is stale: paste `callserver settings`"
