"""Pulling translation models and voices: from a mirror folder or an HTTP hub, checked against
published checksums, resumable, with licences shown; nothing here reaches the network."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from callserver.cli import main
from models.errors import ModelMissing
from models.mt.synthetic import TINY
from models.store import CATALOGUE, ModelStore, StoreSettings
from models.store import mirror as mirror_module
from models.store.checksums import DamagedModel
from models.store.files import sha256_file
from tests.model_hub import (
    Faults,
    http_hub,
    mirror_translation_model,
    mirror_voice,
    repo_dir,
    write_sha256sums,
)

NLLB = "nllb-200-distilled-600M"
M2M = "m2m100-418M"
VOICE = "vi_VN-vais1000-medium"


@pytest.fixture(scope="module")
def synth_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic-mt")


def store_for(root: Path, hub: Path | str, **overrides: Any) -> ModelStore:
    values: dict[str, Any] = {
        "models_dir": root / "models",
        "models_fallback_dir": root / "fallback",
        "models_hub": str(hub),
        "models_auto_download": False,
    }
    values.update(overrides)
    return ModelStore(StoreSettings(**values), progress=True)


def leftovers(folder: Path) -> list[str]:
    """Anything a failed pull left in a models folder (lock files are no model)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


# --- licences -----------------------------------------------------------------------------------


def test_every_model_has_a_licence_and_nllb_is_flagged_non_commercial() -> None:
    for spec in CATALOGUE.values():
        assert re.fullmatch(r"[A-Za-z0-9.+-]+", spec.licence), spec.name
    assert {n for n, s in CATALOGUE.items() if s.non_commercial} == {
        NLLB,
        "nllb-200-distilled-1.3B",
    }
    assert CATALOGUE[M2M].licence == "MIT"
    assert CATALOGUE[VOICE].licence == "CC-BY-4.0"
    assert CATALOGUE["base"].licence == "MIT"


def test_cli_list_shows_each_licence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLSERVER_MODELS_DIR", str(tmp_path / "models"))
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:6] == ["name", "kind", "where", "size", "licence", "path"]
    rows = {line.split()[0]: line.split() for line in lines[2:-1]}
    assert set(rows) == set(CATALOGUE)
    assert rows[NLLB][1:5] == ["mt", "missing", "-", "CC-BY-NC-4.0*"]
    assert rows[M2M][1:5] == ["mt", "missing", "-", "MIT"]
    assert rows[VOICE][1:5] == ["tts", "missing", "-", "CC-BY-4.0"]
    assert rows["es_ES-davefx-medium"][4] == "CC0-1.0"
    assert rows["base"][5] == "MIT"  # base is in packages: its size takes two columns
    assert lines[-1] == f"* non-commercial use only: {NLLB}, nllb-200-distilled-1.3B"


# --- translation models from a mirror folder ----------------------------------------------------


def test_pull_nllb_from_mirror_shows_progress_and_records_checksums(
    tmp_path: Path,
    synth_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub = tmp_path / "hub"
    source = mirror_translation_model(hub, NLLB, TINY, synth_cache)
    monkeypatch.setenv("CALLSERVER_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("CALLSERVER_MODELS_HUB", str(hub))
    assert main(["models", "pull", NLLB]) == 0
    out, err = capsys.readouterr()
    folder = tmp_path / "models" / NLLB
    assert out.splitlines()[-2] == "licence: CC-BY-NC-4.0 (non-commercial use only)"
    assert out.splitlines()[-1].startswith(f"{NLLB}: models_dir {folder} (")
    assert "100%" in err  # the progress bar
    for path in source.iterdir():
        if path.name != "SHA256SUMS":
            assert sha256_file(folder / path.name) == sha256_file(path), path.name
    # The checksums it was verified against stay with it, so `models verify` can re-check.
    published = hub / str(CATALOGUE[NLLB].repo_id) / "SHA256SUMS"
    assert (folder / "SHA256SUMS").read_text() == published.read_text()
    assert main(["models", "verify", NLLB]) == 0
    assert "sha256 ok" in capsys.readouterr().out
    assert leftovers(tmp_path / "models") == [NLLB]


def test_checksum_mismatch_is_refused_and_nothing_is_installed(
    tmp_path: Path,
    synth_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub = tmp_path / "hub"
    source = mirror_translation_model(hub, NLLB, TINY, synth_cache)
    with (source / "model.bin").open("r+b") as handle:  # same size, other bytes
        handle.seek(1000)
        handle.write(b"\xff" * 16)
    monkeypatch.setenv("CALLSERVER_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("CALLSERVER_MODELS_HUB", str(hub))
    assert main(["models", "pull", NLLB]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"callserver: model '{NLLB}': model\.bin has sha256 [0-9a-f]{{64}}, "
        rf"{re.escape(str(source / 'SHA256SUMS'))} says [0-9a-f]{{64}}; the file is damaged, "
        "nothing was installed",
        err,
    ), err
    assert leftovers(tmp_path / "models") == []


def test_truncated_voice_is_refused_and_nothing_is_installed(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    folder = mirror_voice(hub, VOICE, "vi_VN", "vi")
    onnx = folder / f"{VOICE}.onnx"
    data = onnx.read_bytes()
    onnx.unlink()
    onnx.write_bytes(data[: len(data) // 2])  # a copy cut short
    store = store_for(tmp_path, hub)
    with pytest.raises(DamagedModel) as refused:
        store.pull(VOICE)
    assert refused.value.message == (
        f"model '{VOICE}': {VOICE}.onnx is truncated ({len(data) // 2} bytes; the catalogue "
        f"says {len(data)}); nothing was installed"
    )
    assert not refused.value.retryable  # the mirror itself is damaged
    assert leftovers(tmp_path / "models") == []
    assert store.locate(VOICE).source == "missing"


class InterruptingBar:
    """Fault injection: a progress bar that presses Ctrl-C once ``limit`` bytes were copied."""

    def __init__(self, *args: Any, limit: int, initial: int = 0, **kwargs: Any) -> None:
        self.initial = initial
        self.copied = 0
        self.limit = limit

    def __enter__(self) -> InterruptingBar:
        return self

    def __exit__(self, *args: object) -> None:
        pass

    def update(self, count: int) -> None:
        self.copied += count
        if self.copied >= self.limit:
            raise KeyboardInterrupt


class CountingBar(InterruptingBar):
    """Records the bytes the copy reports; never interrupts."""

    last: CountingBar | None = None

    def __init__(self, *args: Any, initial: int = 0, **kwargs: Any) -> None:
        super().__init__(limit=1 << 62, initial=initial)
        CountingBar.last = self


def test_interrupted_pull_continues_where_it_stopped(
    tmp_path: Path, synth_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = tmp_path / "hub"
    source = mirror_translation_model(hub, NLLB, TINY, synth_cache)
    total = sum(p.stat().st_size for p in source.iterdir() if CATALOGUE[NLLB].wants(p.name))
    monkeypatch.setattr(mirror_module, "CHUNK", 16 * 1024)
    monkeypatch.setattr(
        mirror_module, "tqdm", lambda *a, **k: InterruptingBar(*a, limit=total // 2, **k)
    )
    store = store_for(tmp_path, hub)
    with pytest.raises(KeyboardInterrupt):
        store.pull(NLLB)
    assert store.locate(NLLB).source == "missing"  # no half model under the model's name
    assert leftovers(tmp_path / "models") == [f".{NLLB}.partial"]
    kept = sum(p.stat().st_size for p in (tmp_path / "models" / f".{NLLB}.partial").iterdir())
    assert total // 2 <= kept < total

    monkeypatch.setattr(mirror_module, "tqdm", CountingBar)
    found = store.pull(NLLB)
    bar = CountingBar.last
    assert bar is not None and (bar.initial, bar.copied) == (kept, total - kept)
    for path in source.iterdir():
        if path.name != "SHA256SUMS":
            assert sha256_file(found.path / path.name) == sha256_file(path), path.name
    assert leftovers(tmp_path / "models") == [NLLB]


def test_read_only_models_folder_falls_back_then_says_so(tmp_path: Path, synth_cache: Path) -> None:
    hub = tmp_path / "hub"
    mirror_translation_model(hub, NLLB, TINY, synth_cache)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # A models folder that cannot be created fails like a read-only one, even for root.
    store = store_for(tmp_path, hub, models_dir=blocker / "models")
    assert store.pull(NLLB).path == tmp_path / "fallback" / NLLB
    assert store.locate(NLLB).source == "models_dir"
    stuck = store_for(
        tmp_path, hub, models_dir=blocker / "models", models_fallback_dir=blocker / "fallback"
    )
    with pytest.raises(ModelMissing, match=r"not writable.*set CALLSERVER_MODELS_DIR"):
        stuck.pull(NLLB, force=True)


def test_bad_sha256sums_line_is_a_clear_error(tmp_path: Path, synth_cache: Path) -> None:
    hub = tmp_path / "hub"
    manifest = hub / str(CATALOGUE[NLLB].repo_id) / "SHA256SUMS"
    mirror_translation_model(hub, NLLB, TINY, synth_cache)
    manifest.write_text("not a checksum line\n")
    with pytest.raises(ModelMissing, match=r"SHA256SUMS:1 is not a sha256sum line"):
        store_for(tmp_path, hub).pull(NLLB)
    assert leftovers(tmp_path / "models") == []


# --- over HTTP ----------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, synth_cache: Path) -> Path:
    """A hub folder with the NLLB stand-in and the Vietnamese voice."""
    hub = tmp_path / "served"
    mirror_translation_model(hub, NLLB, TINY, synth_cache)
    mirror_voice(hub, VOICE, "vi_VN", "vi")
    return hub


def test_http_pull_checks_the_hub_published_sha256_file(
    tmp_path: Path, served: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    repo = served / str(CATALOGUE[NLLB].repo_id)
    (repo / "SHA256SUMS").unlink()  # over HTTP only the hub's own checksums count
    with http_hub(served) as url:
        found = store_for(tmp_path, url).pull(NLLB)
    assert "100%" in capfd.readouterr().err
    assert not (found.path / ".cache").exists()
    recorded = (found.path / "SHA256SUMS").read_text().splitlines()
    # The hub publishes sha256 for its LFS files (model.bin, the sentencepiece model).
    assert recorded == [
        f"{sha256_file(repo / name)}  {name}" for name in ("model.bin", "sentencepiece.bpe.model")
    ]
    for name in ("config.json", "shared_vocabulary.json"):
        assert sha256_file(found.path / name) == sha256_file(repo / name)


def test_http_pull_refuses_a_file_unlike_the_hub_says(tmp_path: Path, served: Path) -> None:
    wrong = "0" * 64
    with (
        http_hub(served, published={"model.bin": wrong}) as url,
        pytest.raises(DamagedModel, match=rf"model\.bin has sha256 .*says {wrong}"),
    ):
        store_for(tmp_path, url).pull(NLLB)
    assert leftovers(tmp_path / "models") == []  # the bad bytes are not kept to resume


def test_http_pull_cut_short_is_continued_by_the_next_pull(tmp_path: Path, served: Path) -> None:
    model = served / str(CATALOGUE[NLLB].repo_id) / "model.bin"
    size = model.stat().st_size
    faults = Faults(cut={"model.bin": size // 3})
    with http_hub(served, faults=faults) as url:
        store = store_for(tmp_path, url)
        with pytest.raises(ModelMissing, match="could not download") as cut:
            store.pull(NLLB)
        assert cut.value.retryable
        assert store.locate(NLLB).source == "missing"
        assert leftovers(tmp_path / "models") == [f".{NLLB}.partial"]
        faults.down.clear()  # the hub is back
        found = store.pull(NLLB)
    assert sha256_file(found.path / "model.bin") == sha256_file(model)
    fetched = [path for path, _ in faults.requests]
    # config.json, finished before the cut, was kept and not fetched again; model.bin was asked
    # for again within the first pull (refused: the hub was down), then by the second.
    assert fetched.count("config.json") == 1
    assert fetched.count("model.bin") >= 3
    assert leftovers(tmp_path / "models") == [NLLB]


def test_http_pull_of_a_voice_flattens_its_sub_folder(tmp_path: Path, served: Path) -> None:
    with http_hub(served) as url:
        found = store_for(tmp_path, url).pull(VOICE)
    assert sorted(p.name for p in found.path.iterdir()) == sorted(
        [f"{VOICE}.onnx", f"{VOICE}.onnx.json", f"{VOICE}.onnx.verified", "SHA256SUMS"]
    )
    config = json.loads((found.path / f"{VOICE}.onnx.json").read_text("utf-8"))
    assert config["language"]["code"] == "vi_VN"


def test_sha256sums_paths_are_relative_to_the_repository(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    mirror_voice(hub, VOICE, "vi_VN", "vi")
    manifest = write_sha256sums(hub, CATALOGUE[VOICE])
    assert f"  vi/vi_VN/vais1000/medium/{VOICE}.onnx\n" in manifest.read_text()
    found = store_for(tmp_path, hub).pull(VOICE)
    onnx = repo_dir(hub, CATALOGUE[VOICE]) / f"{VOICE}.onnx"
    assert (
        (found.path / "SHA256SUMS").read_text().startswith(f"{sha256_file(onnx)}  {VOICE}.onnx\n")
    )
    assert os.path.islink(onnx) and not (found.path / f"{VOICE}.onnx").is_symlink()
