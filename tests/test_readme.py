"""The README's configuration tables are what `callserver settings` prints: they cannot drift."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from callserver.cli import main
from models.store import CATALOGUE

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_lists_every_setting_as_the_code_defines_it() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["settings"]) == 0
    tables = out.getvalue().strip()
    assert tables.count("| `CALLSERVER_") > 50
    assert tables in README.read_text("utf-8"), "README is stale: paste `callserver settings`"


def test_readme_lists_every_model_with_its_licence() -> None:
    rows = [
        line
        for line in README.read_text("utf-8").split("## Models and licences")[1].splitlines()
        if line.startswith("| `")
    ]
    for spec in CATALOGUE.values():
        row = [line for line in rows if f"`{spec.name}`" in line]
        assert len(row) == 1, f"README's models table lacks {spec.name}"
        assert row[0].rstrip(" |").split("|")[-1].strip().startswith(spec.licence), row[0]
        if spec.non_commercial:
            assert "non-commercial" in row[0]
