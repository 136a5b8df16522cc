"""What a fetched model's files must measure: sizes and sha256 from the catalogue, the hub or a
mirror's ``SHA256SUMS``, and the check that refuses anything else."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelMissing
from models.store.files import sha256_file, write_marker

log = logging.getLogger("callserver.models.store.checksums")

#: The manifest a mirror folder may hold in a repository's folder (``sha256sum`` output).
MANIFEST = "SHA256SUMS"
_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


class DamagedModel(ModelMissing):
    """A fetched file does not match its published size or checksum: nothing was installed.

    Its own class because the partial download must then be thrown away, not resumed."""


@dataclass(frozen=True)
class Expected:
    """What one file must be; None where it is not known."""

    size: int | None = None
    sha256: str | None = None
    #: Who said so, for the error message: ``the hub``, ``SHA256SUMS``, ``the catalogue``.
    source: str = "the catalogue"


def read_manifest(path: Path) -> dict[str, str]:
    """``SHA256SUMS`` as {relative path: sha256}; a missing file is an empty manifest."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelMissing(f"cannot read {path}: {exc}", retryable=False) from exc
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line.rstrip())
        if match is None:
            raise ModelMissing(
                f"{path}:{number} is not a sha256sum line ('<64 hex digits>  <file>'): {line!r}",
                retryable=False,
            )
        sums[match.group(2).removeprefix("./")] = match.group(1).lower()
    return sums


def write_manifest(folder: Path, sums: dict[str, str]) -> None:
    """Record the checksums a model was verified against, so ``models verify`` can re-check it."""
    if not sums:
        return
    lines = [f"{digest}  {name}\n" for name, digest in sorted(sums.items())]
    try:
        (folder / MANIFEST).write_text("".join(lines), "utf-8")
    except OSError as exc:  # a read-only folder loses only the later re-check
        log.debug("cannot write manifest", extra={"folder": str(folder), "error": str(exc)})


def check_files(
    model: str, folder: Path, expected: dict[str, Expected], *, retryable: bool
) -> dict[str, str]:
    """Refuse ``folder`` unless every listed file has its expected size and sha256.

    Sizes are compared first: a truncated file is named as such without hashing it. Returns the
    checksums that were verified. ``retryable``: whether fetching again may help (a download cut
    short) or not (a damaged mirror).
    """
    verified: dict[str, str] = {}
    for name, want in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            raise DamagedModel(
                f"model {model!r}: {name} did not arrive; nothing was installed",
                retryable=retryable,
            )
        size = path.stat().st_size
        if want.size is not None and size != want.size:
            state = "truncated" if size < want.size else "longer than published"
            raise DamagedModel(
                f"model {model!r}: {name} is {state} ({size} bytes; {want.source} says "
                f"{want.size}); nothing was installed",
                retryable=retryable,
            )
        if want.sha256 is None:
            continue
        actual = sha256_file(path)
        if actual != want.sha256.lower():
            raise DamagedModel(
                f"model {model!r}: {name} has sha256 {actual}, {want.source} says "
                f"{want.sha256}; the file is damaged, nothing was installed",
                retryable=retryable,
            )
        write_marker(path, actual)
        verified[name] = actual
    return verified
