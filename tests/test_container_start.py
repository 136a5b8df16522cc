"""What a container start needs: folders it cannot write, secrets from files, its healthcheck.

These run the real ``callserver`` command, the way the image's entrypoint and healthcheck do.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from callserver.folders import WrittenFolder, check_folders, written_folders
from callserver.pipeline.settings import PipelineSettings
from callserver.probe import ProbeError, ScriptedCaller
from callserver.settings import Settings
from models.cache import CacheSettings
from models.env import FILE_VALUE_MAX_BYTES
from models.store import StoreSettings
from tests.process_helpers import start_server

#: The owner of the folder the server may not write: another user, as in the seed's outage.
OTHER_UID = 1000


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callserver", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def foreign_folder(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A folder owned by someone else, and the wrapper that runs the server unable to write it.

    As root, the server runs without the capability that lets root write any folder (setpriv),
    which leaves it exactly where a uid-1000 container meets a root-owned volume.
    """
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o755)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder, []
        folder.chmod(0o755)
        return
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's override of folder modes")
    os.chown(folder, OTHER_UID, OTHER_UID)
    yield folder, ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


async def test_unwritable_cache_folder_is_named_once_and_speech_still_works(
    session: aiohttp.ClientSession, foreign_folder: tuple[Path, list[str]]
) -> None:
    folder, wrap = foreign_folder
    server = await start_server(
        wrap=wrap,
        CALLSERVER_CACHE_DIR=str(folder),
        CALLSERVER_LOG_FORMAT="json",
        CALLSERVER_PRELOAD_ENGINES="false",
    )
    try:
        for _ in range(2):  # the second request too: nothing fails later
            body = {"text": "The cache folder is not ours.", "language": "en"}
            async with session.post(server.url + "/api/tts", json=body) as resp:
                assert resp.status == 200
                assert resp.content_type == "audio/wav"
                assert len(await resp.read()) > 10_000
    finally:
        code, logged = await server.stop()
    assert code == 0
    records = [json.loads(line) for line in logged.splitlines()]
    reports = [r for r in records if r["msg"] == "folder not writable"]
    assert len(reports) == 1, reports
    report = reports[0]
    info = folder.stat()
    assert report["path"] == str(folder)
    assert report["setting"] == "CALLSERVER_CACHE_DIR"
    assert report["owner"] == f"{info.st_uid}:{info.st_gid}"
    assert report["uid"] == os.getuid()
    assert report["level"] == "WARNING"
    assert "file cache is skipped" in report["fallback"]
    assert "Traceback" not in logged
    assert not any(folder.iterdir())


def test_check_names_the_nearest_existing_owner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "models"
    blocker.write_text("a file where a folder should be")
    good = WrittenFolder(tmp_path / "fine" / "deeper", "CALLSERVER_X", "none")
    bad = WrittenFolder(blocker / "whisper", "CALLSERVER_MODELS_DIR", "temporary folder")
    with caplog.at_level(logging.WARNING, logger="callserver.folders"):
        problems = check_folders([good, bad])
    assert (tmp_path / "fine" / "deeper").is_dir()  # created, as the server would anyway
    assert [p.folder for p in problems] == [bad]
    assert problems[0].owner_path == blocker
    assert problems[0].owner == f"{os.getuid()}:{os.getgid()}"
    assert [r.getMessage() for r in caplog.records] == ["folder not writable"]


def test_written_folders_follow_the_settings(tmp_path: Path) -> None:
    folders = written_folders(
        CacheSettings(cache_dir=tmp_path / "c", redis_url="redis://127.0.0.1:1/0"),
        StoreSettings(models_dir=tmp_path / "m", models_fallback_dir=tmp_path / "f"),
    )
    by_setting = {f.setting: f for f in folders}
    assert by_setting["CALLSERVER_CACHE_DIR"].path == tmp_path / "c"
    assert "Redis" in by_setting["CALLSERVER_CACHE_DIR"].fallback
    assert by_setting["CALLSERVER_MODELS_DIR"].path == tmp_path / "m"
    assert str(tmp_path / "f") in by_setting["CALLSERVER_MODELS_DIR"].fallback
    off = written_folders(CacheSettings(cache_enabled=False), StoreSettings())
    assert "CALLSERVER_CACHE_DIR" not in {f.setting for f in off}


# --- secrets from files ----------------------------------------------------------------------
def test_every_setting_can_come_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "join_secret"
    secret.write_text("s3cret value\n")  # what `echo ... > file` and editors leave
    window = tmp_path / "window"
    window.write_text("7.5")
    monkeypatch.setenv("CALLSERVER_JOIN_SECRET_FILE", str(secret))
    monkeypatch.setenv("callserver_pipeline_echo_window_s_file", str(window))
    settings = Settings()
    assert settings.join_secret is not None
    assert settings.join_secret.get_secret_value() == "s3cret value"
    assert PipelineSettings().echo_window_s == 7.5
    # A constructor argument still wins, as it does over a plain variable.
    assert Settings(join_secret="given").join_secret.get_secret_value() == "given"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"CALLSERVER_JOIN_SECRET_FILE": "/nonexistent/secret"}, "cannot read /nonexistent"),
        (
            {"CALLSERVER_JOIN_SECRET_FILE": "SECRET", "CALLSERVER_JOIN_SECRET": "x"},
            "CALLSERVER_JOIN_SECRET and CALLSERVER_JOIN_SECRET_FILE are both set",
        ),
        ({"CALLSERVER_TURN_CREDENTIAL_FILE": "BIG"}, f"is over {FILE_VALUE_MAX_BYTES} bytes"),
        ({"CALLSERVER_PIPELINE_ECHO_WINDOW_S_FILE": "SECRET"}, "ECHO_WINDOW_S"),
    ],
)
def test_a_bad_secret_file_stops_the_start_with_one_line(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    files = {"SECRET": tmp_path / "secret", "BIG": tmp_path / "big"}
    files["SECRET"].write_text("not a number\n")
    files["BIG"].write_bytes(b"x" * (FILE_VALUE_MAX_BYTES + 1))
    env = {k: str(files[v]) if v in files else v for k, v in env.items()}
    result = cli("serve", "--port", "0", **env)
    assert result.returncode != 0
    assert "callserver: invalid settings" in result.stderr
    assert says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


async def test_join_secret_file_guards_a_real_server(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    secret = tmp_path / "join_secret"
    secret.write_text("from-a-docker-secret\n")
    token = cli("token", "secret-room", CALLSERVER_JOIN_SECRET_FILE=str(secret))
    assert token.returncode == 0, token.stderr
    host_token = cli("token", "secret-room", "--host", CALLSERVER_JOIN_SECRET_FILE=str(secret))
    assert host_token.returncode == 0, host_token.stderr
    server = await start_server(CALLSERVER_JOIN_SECRET_FILE=str(secret))
    try:
        stranger = ScriptedCaller(server.url, session, name="Stranger")
        with pytest.raises(ProbeError) as refused:
            await stranger.join("secret-room")
        assert isinstance(refused.value.message, dict)
        assert refused.value.message["code"] == "token_required"
        await stranger.close()
        host = ScriptedCaller(server.url, session, name="Host")
        welcome = await host.join("secret-room", token=host_token.stdout.strip())
        assert welcome["participant"]["host"] is True
        guest = ScriptedCaller(server.url, session, name="Guest")
        welcome = await guest.join("secret-room", token=token.stdout.strip())
        assert welcome["participant"]["host"] is False
        for caller in (guest, host):
            await caller.leave()
            await caller.close()
    finally:
        code, logged = await server.stop()
    assert code == 0 and "Traceback" not in logged


# --- the container healthcheck ------------------------------------------------------------
async def test_healthcheck_command_follows_the_server() -> None:
    server = await start_server(drain_timeout_s=30)
    port = server.url.rsplit(":", 1)[1]
    try:
        alive = cli("healthcheck", CALLSERVER_PORT=port)
        assert alive.returncode == 0, alive.stderr
        await server.wait_ready()
        assert cli("healthcheck", "--ready", CALLSERVER_PORT=port).returncode == 0
        # Draining needs a call to hold it open; a websocket without one ends the drain at once.
        async with aiohttp.ClientSession() as session:
            caller = ScriptedCaller(server.url, session, name="Holder")
            await caller.join("health-room")
            server.proc.terminate()
            await caller.expect("draining")
            draining = cli("healthcheck", "--ready", CALLSERVER_PORT=port)
            assert draining.returncode == 1
            assert "answered 503" in draining.stderr
            assert cli("healthcheck", CALLSERVER_PORT=port).returncode == 0  # alive, though
            await caller.leave()
            await caller.close()
    finally:
        code, logged = await server.stop()
    assert code == 0 and "Traceback" not in logged
    gone = cli("healthcheck", CALLSERVER_PORT=port)
    assert gone.returncode == 1
    assert "Traceback" not in gone.stderr and gone.stderr.startswith("callserver: http://")
