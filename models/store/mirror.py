"""Copies a model from a local mirror folder laid out like the hub: ``<folder>/<repo id>/<files>``.

A copy cut short (Ctrl-C, a full disk, a crash) is continued by the next pull: each file is
appended to from where its partial copy ends. The mirror's ``SHA256SUMS`` (in the repository's
folder, paths relative to it) is checked afterwards, so bytes from a damaged or changed source
are refused rather than installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm  # type: ignore[import-untyped]

from models.errors import ModelMissing
from models.store.catalogue import ModelSpec
from models.store.checksums import MANIFEST, Expected, read_manifest
from models.store.files import CHUNK

log = logging.getLogger("callserver.models.store.mirror")


def repo_folder(hub: str, spec: ModelSpec) -> Path:
    """The mirror folder of ``spec``'s repository."""
    assert spec.repo_id is not None
    return Path(hub.removeprefix("file://")).expanduser() / spec.repo_id


def copy_from_mirror(
    spec: ModelSpec, hub: str, stage: Path, *, progress: bool
) -> dict[str, Expected]:
    """Copy (or finish copying) ``spec``'s files into ``stage``; returns what SHA256SUMS says."""
    repo = repo_folder(hub, spec)
    source = repo / spec.subfolder if spec.subfolder else repo
    if not source.is_dir():
        raise ModelMissing(f"local hub folder {source} does not exist", retryable=False)
    files = sorted(p for p in source.iterdir() if p.is_file() and spec.wants(p.name))
    sums = read_manifest(repo / MANIFEST)
    prefix = f"{spec.subfolder}/" if spec.subfolder else ""
    expected = {
        p.name: Expected(sha256=sums[prefix + p.name], source=f"{repo / MANIFEST}")
        for p in files
        if prefix + p.name in sums
    }
    if not sums:
        log.info("mirror has no SHA256SUMS: only sizes are checked", extra={"repo": str(repo)})
    total = sum(p.stat().st_size for p in files)
    done = sum(_resumable_bytes(p, stage / p.name) for p in files)
    if done:
        log.info("resuming a partial copy", extra={"model": spec.name, "bytes": done})
    with tqdm(
        total=total, initial=done, unit="B", unit_scale=True, desc=spec.name, disable=not progress
    ) as bar:
        for path in files:
            _copy(path, stage / path.name, bar.update)
    return expected


def _resumable_bytes(source: Path, target: Path) -> int:
    """Bytes of ``target`` that can be kept: a prefix no longer than ``source``."""
    try:
        have = target.stat().st_size
    except FileNotFoundError:
        return 0
    return have if have <= source.stat().st_size else 0


def _copy(source: Path, target: Path, advance: Callable[[int], object]) -> None:
    keep = _resumable_bytes(source, target)
    with source.open("rb") as src, target.open("ab" if keep else "wb") as dst:
        src.seek(keep)
        while chunk := src.read(CHUNK):
            dst.write(chunk)
            advance(len(chunk))
