"""File helpers for the model store: checksums, verification markers, atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from models.errors import ModelMissing

log = logging.getLogger("callserver.models.store.files")

CHUNK = 4 * 1024 * 1024
#: Written next to a checked file, so later starts skip re-hashing an unchanged file.
MARKER_SUFFIX = ".verified"


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """SHA-256 of a file, read in chunks; ``progress`` gets the byte count of each chunk."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


def _stamp(path: Path) -> dict[str, int]:
    info = path.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


def marker_matches(path: Path, sha256: str) -> bool:
    """True when ``path`` was verified as ``sha256`` and has not changed since."""
    marker = path.with_name(path.name + MARKER_SUFFIX)
    try:
        recorded = json.loads(marker.read_text("utf-8"))
        return bool(recorded == {"sha256": sha256, **_stamp(path)})
    except (OSError, ValueError):
        return False


def write_marker(path: Path, sha256: str) -> None:
    """Record that ``path`` hashed to ``sha256``; best effort (a read-only folder is fine)."""
    marker = path.with_name(path.name + MARKER_SUFFIX)
    try:
        marker.write_text(json.dumps({"sha256": sha256, **_stamp(path)}), "utf-8")
    except OSError as exc:
        log.debug("cannot write marker", extra={"path": str(marker), "error": str(exc)})


def is_writable_dir(path: Path) -> bool:
    """Create ``path`` if needed and check a file can really be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError:
        return False
    return True


def partial_dir(final: Path) -> Path:
    """Where an interrupted fetch of ``final`` waits to be continued."""
    return final.with_name(f".{final.name}.partial")


@contextlib.contextmanager
def _exclusive(final: Path) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``final``: one process fetches a model into a folder at once."""
    import fcntl  # POSIX only, like the server

    with final.with_name(f".{final.name}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ModelMissing(
                f"another process is fetching {final.name} into {final.parent} now; "
                "try again when it has finished",
                retryable=True,
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def staging_dir(
    final: Path, *, keep: Callable[[BaseException], bool] | None = None
) -> Iterator[Path]:
    """A temporary folder beside ``final`` that replaces it atomically on success.

    Readers never see a half-written model: they see the old folder or the complete new one.
    Without ``keep`` the folder is fresh and removed on any error, leaving ``final`` as it was.
    With ``keep`` it is ``.NAME.partial``, reused when an earlier attempt left it there, and kept
    after an error for which ``keep(error)`` is true, so that the next attempt continues where
    this one stopped; a lock keeps two processes from writing into it at once.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if keep is None:
            stage = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.partial-"))
        else:
            stack.enter_context(_exclusive(final))
            stage = partial_dir(final)
            stage.mkdir(exist_ok=True)
        try:
            yield stage
            stage.chmod(0o755)  # mkdtemp makes it private; models are shared read-only data
            old: Path | None = None
            if final.exists():
                old = final.with_name(f".{final.name}.old-{os.getpid()}")
                shutil.rmtree(old, ignore_errors=True)
                final.rename(old)
            stage.rename(final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException as exc:
            if keep is not None and keep(exc) and any(stage.iterdir()):
                log.info("partial model kept for the next attempt", extra={"path": str(stage)})
            else:
                shutil.rmtree(stage, ignore_errors=True)
            raise


def folder_size(path: Path) -> int:
    """Total bytes of the regular files under ``path`` (a file: its own size)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
