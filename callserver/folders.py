"""The start-up check of every folder the server writes: one clear log line per problem.

The system callserver replaces lost a node to a cache volume owned by root while the server ran
as uid 1000: every speech request routed there failed with a 500, and nothing said why. Here
each folder is probed once at start, as the server's own uid; an unusable one is reported with
its path, owner, mode and the uid that cannot write it, and the server goes on with that
folder's fallback (the layers already skip an unwritable folder), so no request fails for it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from models.cache import CacheSettings
from models.store import ModelStore, StoreSettings
from models.store.files import is_writable_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WrittenFolder:
    """A folder the server writes, the setting that moves it and what happens without it."""

    path: Path
    setting: str
    fallback: str


@dataclass(frozen=True)
class FolderProblem:
    """A folder the server's uid cannot write, with who owns it (or its nearest parent)."""

    folder: WrittenFolder
    owner_path: Path
    owner: str
    mode: str
    uid: int
    gid: int

    def log_fields(self) -> dict[str, object]:
        """The structured fields of the one log line that reports it."""
        return {
            "path": str(self.folder.path),
            "setting": self.folder.setting,
            "owner": self.owner,
            "owner_path": str(self.owner_path),
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "fallback": self.folder.fallback,
        }


def written_folders(
    cache: CacheSettings | None = None, store: StoreSettings | None = None
) -> list[WrittenFolder]:
    """Every folder the server writes with these settings (defaults: from the environment)."""
    cache = cache if cache is not None else CacheSettings()
    models = ModelStore(store if store is not None else StoreSettings())
    folders = [
        WrittenFolder(
            models.settings.models_dir,
            "CALLSERVER_MODELS_DIR",
            f"models are assembled or downloaded into {models.fallback_dir}",
        ),
        WrittenFolder(
            Path(tempfile.gettempdir()),
            "TMPDIR",
            "none: model downloads and speech synthesis need a writable temporary folder",
        ),
    ]
    if cache.cache_enabled and cache.cache_dir is not None:
        fallback = "the Redis cache only" if cache.redis_url else "no cache"
        folders.insert(
            0,
            WrittenFolder(
                cache.cache_dir,
                "CALLSERVER_CACHE_DIR",
                f"the file cache is skipped ({fallback}; speech is synthesized again)",
            ),
        )
    return folders


def check_folders(folders: list[WrittenFolder]) -> list[FolderProblem]:
    """Probe each folder (creating it if missing) and log one warning per unusable one."""
    problems = []
    for folder in folders:
        if is_writable_dir(folder.path):
            continue
        problem = _describe(folder)
        log.warning("folder not writable", extra=problem.log_fields())
        problems.append(problem)
    return problems


def _describe(folder: WrittenFolder) -> FolderProblem:
    # The folder may not exist (its parent refused the mkdir): the nearest existing ancestor
    # is then the one whose owner matters.
    owner_path = folder.path
    while not owner_path.exists() and owner_path != owner_path.parent:
        owner_path = owner_path.parent
    try:
        info = owner_path.stat()
        owner, mode = f"{info.st_uid}:{info.st_gid}", oct(info.st_mode & 0o7777)
    except OSError as exc:
        owner, mode = f"unknown ({exc.strerror})", "unknown"
    return FolderProblem(folder, owner_path, owner, mode, os.getuid(), os.getgid())
