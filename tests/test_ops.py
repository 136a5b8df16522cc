"""Operations: health, readiness, Prometheus metrics, settings from the environment."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from callserver.app import MEDIA
from callserver.cli import settings_classes
from callserver.engines import EngineSet
from callserver.media.frames import PcmFrame
from callserver.settings import Settings
from models.metrics import EngineMetrics
from tests.conftest import RunningServer, wait_for


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


async def test_metrics_follow_a_call(server: RunningServer) -> None:
    async with server.session.get(server.url + "/healthz") as resp:
        assert resp.status == 200
    async with server.session.get(server.url + "/readyz") as resp:
        assert (await resp.json())["status"] == "ready"
    a, b = server.caller(), server.caller()
    await a.join("metrics-room")
    await b.join("metrics-room")
    from_a: list[PcmFrame] = []

    def tap(room: str, participant: str, frame: PcmFrame) -> None:
        if participant == a.participant_id:
            from_a.append(frame)

    server.app[MEDIA].taps.append(tap)  # before the peers exist: they take the list as it is
    await a.start_media()
    await b.start_media()
    await a.send({"type": "teleport"})
    stats = server.app[MEDIA].stats
    # B's queue of A's voice plays once A's frames arrive; A going silent on the wire (no
    # track: no RTP at all) then runs it dry, which is an underrun by definition.
    await wait_for(lambda: len(from_a) > 5 and b.recording.blocks != [], timeout=20)
    assert a.pc is not None
    a.pc.getSenders()[0].replaceTrack(None)
    await wait_for(lambda: stats.underruns >= 1, timeout=20)
    before = stats.underruns
    async with server.session.get(server.url + "/metrics") as resp:
        assert resp.content_type == "text/plain"
        text = await resp.text()
    after = stats.underruns
    assert metric(text, "callserver_rooms") == 1
    assert metric(text, "callserver_ready") == 1
    assert metric(text, "process_resident_memory_bytes") > 0
    assert metric(text, "process_cpu_seconds_total") > 0
    assert metric(text, "callserver_participants") == 2
    assert metric(text, "callserver_peer_connections") == 2
    assert metric(text, "callserver_websockets") == 2
    assert 'callserver_signaling_messages_total{type="join"} 2.0' in text
    assert 'callserver_errors_total{code="unknown_type"} 1.0' in text
    assert metric(text, "callserver_mixed_frames_total") > 0
    assert 1 <= before <= metric(text, "callserver_mixer_underruns_total") <= after
    await a.close()
    await b.close()


class WarmUpThatWaits(EngineSet):
    """Fault injection: an engine warm-up that takes as long as the test wants (a slow disk)."""

    def __init__(self) -> None:
        super().__init__(EngineMetrics())
        self.release = asyncio.Event()

    async def warm_up(self) -> None:
        await self.release.wait()


async def test_not_ready_until_the_engines_are_warm(make_server: Callable[..., Any]) -> None:
    engines = WarmUpThatWaits()
    async with make_server(engines=engines, preload_engines=True) as server:
        async with server.session.get(server.url + "/readyz") as resp:
            assert (resp.status, await resp.json()) == (503, {"status": "starting"})
        async with server.session.get(server.url + "/healthz") as resp:
            assert resp.status == 200  # alive: nothing to restart
        async with server.session.get(server.url + "/metrics") as resp:
            assert metric(await resp.text(), "callserver_ready") == 0
        engines.release.set()

        async def ready() -> bool:
            async with server.session.get(server.url + "/readyz") as resp:
                return bool(resp.status == 200)

        deadline = asyncio.get_running_loop().time() + 10
        while not await ready():
            assert asyncio.get_running_loop().time() < deadline, "never became ready"
            await asyncio.sleep(0.05)


async def test_page_and_config_are_served(server: RunningServer) -> None:
    async with server.session.get(server.url + "/api/config") as resp:
        config = await resp.json()
    assert config["protocol"] == 1
    assert {"code": "vi", "name": "Vietnamese", "native": "Tiếng Việt"} in config["languages"]
    assert config["room_capacity"] == 2
    assert config["room_max_capacity"] == 8
    assert config["token_required"] is False


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLSERVER_ROOM_CAPACITY", "3")
    monkeypatch.setenv("CALLSERVER_ICE_HOST_ADDRESSES", "127.0.0.1, ::1")
    monkeypatch.setenv("CALLSERVER_STUN_URLS", "stun:stun.example.org:3478")
    monkeypatch.setenv("CALLSERVER_TURN_URLS", "turn:turn.example.org")
    monkeypatch.setenv("CALLSERVER_TURN_USERNAME", "u")
    monkeypatch.setenv("CALLSERVER_TURN_CREDENTIAL", "p")
    settings = Settings()
    assert settings.room_capacity == 3
    assert settings.ice_host_addresses == ["127.0.0.1", "::1"]
    assert settings.ice_servers() == [
        {"urls": ["stun:stun.example.org:3478"]},
        {"urls": ["turn:turn.example.org"], "username": "u", "credential": "p"},
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"room_capacity": 9},
        {"room_capacity": 1},
        {"port": 70000},
        {"ice_host_addresses": ["not-an-ip"]},
        {"stun_urls": ["http://x"]},
        {"log_format": "xml"},
        {"ws_max_message_bytes": 10},
    ],
)
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]


#: One bad value for each settings class the server reads, by the variable that sets it.
BAD_VARIABLES = {
    "Settings": "CALLSERVER_PORT",
    "PipelineSettings": "CALLSERVER_PIPELINE_FRAME_QUEUE_MAX",
    "EndpointSettings": "CALLSERVER_VAD_SILENCE_MS",
    "SttSettings": "CALLSERVER_STT_BEAM_SIZE",
    "MtSettings": "CALLSERVER_MT_BEAM_SIZE",
    "TtsSettings": "CALLSERVER_TTS_MAX_CHARS",
    "CacheSettings": "CALLSERVER_CACHE_MAX_BYTES",
    "StoreSettings": "CALLSERVER_MODELS_DOWNLOAD_TIMEOUT_S",
    "ClusterSettings": "CALLSERVER_CLUSTER_HEARTBEAT_S",
    "WorkerSettings": "CALLSERVER_WORKER_SLOTS",
}


def test_cli_reports_bad_settings_without_a_traceback() -> None:
    assert {cls.__name__ for _, cls in settings_classes()} == set(BAD_VARIABLES)
    out = subprocess.run(
        [sys.executable, "-m", "callserver", "serve"],
        capture_output=True,
        text=True,
        env={**dict.fromkeys(BAD_VARIABLES.values(), "banana"), "PATH": ""},
        timeout=60,
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == "callserver: invalid settings"
    named = [line.split(":", 1)[0] for line in lines[1:]]
    # Every bad variable, by its environment name (not the field's), and nothing else.
    assert sorted(named) == sorted(f"  {name}" for name in BAD_VARIABLES.values())


def test_settings_table_lists_every_setting() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "callserver", "settings"], capture_output=True, text=True, check=True
    )
    for name in Settings.model_fields:
        assert f"CALLSERVER_{name.upper()}" in out.stdout
    for engine_setting in (
        "CALLSERVER_STT_MODEL",
        "CALLSERVER_MT_ENGINES",
        "CALLSERVER_VAD_SILENCE_MS",
    ):
        assert engine_setting in out.stdout


@pytest.mark.parametrize(
    ("command", "env", "complaint"),
    [
        (
            "serve",
            {"CALLSERVER_CLUSTER_ENABLED": "true"},
            "  CALLSERVER_CLUSTER_ENABLED: a cluster keeps its rooms in Redis; "
            "set CALLSERVER_REDIS_URL too",
        ),
        (
            "serve",
            {
                "CALLSERVER_CLUSTER_ENABLED": "true",
                "CALLSERVER_REDIS_URL": "redis://127.0.0.1:9/0",
                "CALLSERVER_PORT": "0",
            },
            "  CALLSERVER_CLUSTER_ENABLED: other nodes send callers here: set CALLSERVER_PORT "
            "or CALLSERVER_CLUSTER_NODE_URL",
        ),
        ("worker", {}, "  CALLSERVER_REDIS_URL: a worker takes its jobs from Redis; set it"),
        (
            "serve",
            {"CALLSERVER_CLUSTER_HEARTBEAT_S": "3", "CALLSERVER_CLUSTER_NODE_EXPIRY_S": "5"},
            "  CALLSERVER_CLUSTER_NODE_EXPIRY_S: Value error, must be at least twice "
            "CALLSERVER_CLUSTER_HEARTBEAT_S",
        ),
    ],
)
def test_the_distributed_mode_refuses_settings_it_cannot_run_with(
    command: str, env: dict[str, str], complaint: str
) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "callserver", command],
        capture_output=True,
        text=True,
        env={"PATH": "", **env},
        timeout=60,
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert out.stderr.splitlines() == ["callserver: invalid settings", complaint]
