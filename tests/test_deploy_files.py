"""The compose and Swarm stack files, checked with the real tools (no Docker engine needed).

Each file is validated and rendered by a real Compose implementation: deploy/compose.yaml by
Compose (`docker-compose config`, Debian's 1.29, which rejects unknown keys), every
deploy/swarm/*.yaml by the Docker CLI's own stack loader (`docker stack config`, what
`docker stack deploy` reads). The checks then read what the tool rendered (anchors merged,
variables at their defaults, paths made absolute), plus the raw text for names in comments:

- every ``CALLSERVER_*`` name is a real setting (`callserver settings`), ``_FILE`` forms too;
- callserver's stop grace outlasts its drain timeout, with a margin;
- every service runs as a non-root uid that the file sets (exceptions listed, with reasons);
- every long-running service has a healthcheck (and, in compose, a restart policy);
- images are overridable variables, host networking, files mounted exist, secrets files
  named by ``*_FILE`` variables are mounted, one callserver replica;
- Traefik (Swarm) mounts the shipped dynamic.yaml where the shipped traefik.yaml reads it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import missing_dependency

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE_FILES = [DEPLOY / "compose.yaml"]
STACK_FILES = sorted([*DEPLOY.glob("swarm/*.yaml"), *DEPLOY.glob("swarm/*.yml")])
FILES = [*COMPOSE_FILES, *STACK_FILES]
TRAEFIK_STATIC = DEPLOY / "traefik" / "traefik.yaml"
TRAEFIK_DYNAMIC = DEPLOY / "traefik" / "dynamic.yaml"

#: Seconds callserver's stop grace must exceed its drain timeout by: after the drain the
#: process still closes peer connections and exits.
DRAIN_MARGIN_S = 10.0
#: The uid:gid of the callserver image (deploy/docker/Dockerfile).
CALLSERVER_USER = "10001:10001"
#: ``CALLSERVER_`` names in the files that are not settings.
NOT_SETTINGS = {"CALLSERVER_IMAGE": "the image variable (docs/deploy.md)"}
#: Services that may run as root, and why. Every other service must set a non-root `user:`
#: in the file (whatever its image's default: the file is what operators read and change).
ROOT_ALLOWED = {
    "traefik": "binds :80 and :443 on the host network; Docker gives a non-root user no "
    "capability (moby/moby#8460) and the official image's binary has no file capability",
}
#: One-shot services: they run to completion, so no healthcheck and no restart.
ONE_SHOT = {"secrets": "makes the random secrets on the first compose up, then exits"}

SETTING_ROW = re.compile(r"^\| `(CALLSERVER_[A-Z0-9_]+)` \| `([^`]*)` \|", re.MULTILINE)
CALLSERVER_NAME = re.compile(r"\bCALLSERVER_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
IMAGE_VARIABLE = re.compile(r"^\$\{[A-Z][A-Z0-9_]*_IMAGE:-[^}]+\}$")
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)")
DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def file_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def clean_env(home: str) -> dict[str, str]:
    """No operator variables: every ``${VAR:-default}`` renders at its default."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}


@functools.cache
def rendered(path: Path) -> dict[str, Any]:
    """The file as the real tool loads it (fails the test when the tool rejects it)."""
    with tempfile.TemporaryDirectory() as home:
        if path in COMPOSE_FILES:
            if shutil.which("docker-compose") is None:
                missing_dependency("docker-compose not installed (make test installs it)")
            command = ["docker-compose", "-f", str(path), "config"]
        else:
            docker = shutil.which("docker")
            if docker is None or stack_config_missing(docker):
                missing_dependency("a docker CLI with `docker stack config` (Docker 23 or later)")
            command = ["docker", "stack", "config", "-c", str(path)]
        result = subprocess.run(
            command, capture_output=True, text=True, env=clean_env(home), timeout=60, check=False
        )
    assert result.returncode == 0, f"{' '.join(command)} rejects {path}:\n{result.stderr}"
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


@functools.cache
def stack_config_missing(docker: str) -> bool:
    probe = subprocess.run(
        [docker, "stack", "config", "--help"], capture_output=True, timeout=30, check=False
    )
    return probe.returncode != 0


@functools.cache
def raw(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


@functools.cache
def settings() -> dict[str, str]:
    """Every setting `callserver settings` prints, with its default."""
    program = Path(sys.executable).parent / "callserver"
    command = [str(program)] if program.exists() else ["callserver"]
    result = subprocess.run(
        [*command, "settings"], capture_output=True, text=True, timeout=60, check=True
    )
    table = dict(SETTING_ROW.findall(result.stdout))
    assert "CALLSERVER_DRAIN_TIMEOUT_S" in table, result.stdout[:500]
    return table


def services(path: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = rendered(path)["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    result: dict[str, Any] = env
    return result


def runs_callserver(path: Path, name: str) -> bool:
    """The service uses the callserver image (by its variable, as the conventions name it)."""
    image = str(raw(path)["services"][name].get("image", ""))
    return image.startswith("${CALLSERVER_IMAGE")


def long_running(name: str) -> bool:
    return name not in ONE_SHOT


def seconds(duration: str | int | float) -> float:
    """A Go/Compose duration (``45s``, ``1m30s``) in seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    parts = DURATION_PART.findall(duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration}"
    return sum(float(number) * DURATION_UNITS[unit] for number, unit in parts)


def mounts(service: dict[str, Any]) -> list[dict[str, str]]:
    """Volumes as {type, source, target} (long or short syntax)."""
    result = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
            kind = "bind" if source.startswith(("/", ".")) else "volume"
            result.append({"type": kind, "source": source, "target": target})
        else:
            result.append(
                {
                    "type": str(volume.get("type", "volume")),
                    "source": str(volume.get("source", "")),
                    "target": str(volume["target"]),
                }
            )
    return result


files = pytest.mark.parametrize("path", FILES, ids=file_id)


def test_the_files_exist() -> None:
    assert (DEPLOY / "compose.yaml").is_file()
    assert STACK_FILES, "no Swarm stack file in deploy/swarm/"


@files
def test_the_real_tool_accepts_the_file(path: Path) -> None:
    # Compose's and the stack loader's schemas reject a misspelled key, a wrong type, a
    # key of another file format; the rendering is what the other tests read.
    assert services(path), f"{path} has no services"


@files
def test_every_callserver_variable_is_a_setting(path: Path) -> None:
    known = settings()
    names: dict[str, str] = {}
    # Everything the file says, comments and ${VARIABLES} included...
    for name in CALLSERVER_NAME.findall(path.read_text()):
        names.setdefault(name, "the file's text")
    # ...and what the tool rendered: environment keys and env files.
    for service_name, service in services(path).items():
        for name in environment(service):
            names.setdefault(name, f"environment of {service_name}")
        for env_file in service.get("env_file") or []:
            env_path = Path(env_file if isinstance(env_file, str) else env_file["path"])
            for line in env_path.read_text().splitlines():
                key = line.split("=", 1)[0].strip()
                if key and not key.startswith("#"):
                    names.setdefault(key, f"{env_path}, env file of {service_name}")
    unknown = {
        name: where
        for name, where in names.items()
        if name.startswith("CALLSERVER_")
        and name not in known
        and name not in NOT_SETTINGS
        and not (name.endswith("_FILE") and name.removesuffix("_FILE") in known)
    }
    assert not unknown, f"not callserver settings (see `callserver settings`): {unknown}"


@files
def test_callserver_stop_grace_outlasts_its_drain(path: Path) -> None:
    default = float(settings()["CALLSERVER_DRAIN_TIMEOUT_S"])
    checked = 0
    for name, service in services(path).items():
        if not runs_callserver(path, name) or not long_running(name):
            continue
        drain = environment(service).get("CALLSERVER_DRAIN_TIMEOUT_S")
        drain_s = default if drain in (None, "") else float(drain)
        assert "stop_grace_period" in service, f"{name}: no stop_grace_period (Docker's is 10 s)"
        grace_s = seconds(service["stop_grace_period"])
        assert grace_s >= drain_s + DRAIN_MARGIN_S, (
            f"{name}: stop_grace_period {grace_s:g}s does not outlast the drain "
            f"({drain_s:g}s) by {DRAIN_MARGIN_S:g}s: calls would be killed, not drained"
        )
        assert service.get("stop_signal", "SIGTERM") == "SIGTERM", name
        checked += 1
    assert checked, f"no callserver service in {path}"


@files
def test_every_service_runs_as_a_non_root_user_the_file_sets(path: Path) -> None:
    problems = []
    for name, service in services(path).items():
        user = str(service.get("user", ""))
        if name in ROOT_ALLOWED:
            continue
        if not user:
            problems.append(f"{name}: no `user:` (the image's default may be root)")
        elif user.split(":")[0] in ("0", "root"):
            problems.append(f"{name} runs as root ({user})")
        elif runs_callserver(path, name) and user != CALLSERVER_USER:
            problems.append(f"{name}: {user}, but callserver's image runs as {CALLSERVER_USER}")
    assert not problems, "\n".join(problems)


@files
def test_every_long_running_service_has_a_healthcheck(path: Path) -> None:
    problems = []
    for name, service in services(path).items():
        if not long_running(name):
            continue
        check = service.get("healthcheck") or {}
        test = check.get("test")
        if not test or test in (["NONE"], "NONE") or check.get("disable"):
            problems.append(f"{name}: no healthcheck")
        elif runs_callserver(path, name) and test != ["CMD", "callserver", "healthcheck"]:
            problems.append(f"{name}: healthcheck {test}, not `callserver healthcheck`")
    assert not problems, "\n".join(problems)


def test_compose_services_restart_and_one_shots_do_not() -> None:
    for path in COMPOSE_FILES:
        for name, service in services(path).items():
            restart = service.get("restart", "no")
            if long_running(name):
                assert restart in ("always", "unless-stopped"), f"{name}: restart {restart}"
            else:
                assert restart == "no", f"{name} is a one-shot service: restart {restart}"


@files
def test_images_are_overridable_variables(path: Path) -> None:
    # No registry on air-gapped sites (nor in make test-deploy): every image can be pointed
    # at a mirrored or locally built one.
    for name, service in raw(path)["services"].items():
        image = str(service.get("image", ""))
        assert IMAGE_VARIABLE.match(image), f"{name}: image {image!r} is not ${{X_IMAGE:-...}}"
    for name, service in raw(path)["services"].items():
        if name == "callserver":
            assert service["image"] == "${CALLSERVER_IMAGE:-callserver:latest}"


@files
def test_services_share_the_host_network(path: Path) -> None:
    # aiortc cannot bind a port range, so callserver uses host networking, and everything
    # that talks to it (or that it talks to) meets it on 127.0.0.1.
    top_networks = rendered(path).get("networks") or {}
    for name, service in services(path).items():
        if not long_running(name):
            continue
        if path in COMPOSE_FILES:
            assert service.get("network_mode") == "host", f"{name}: not on the host network"
            continue
        networks = service.get("networks") or {}
        assert networks, f"{name}: no network (Swarm would put it on an overlay network)"
        for network in networks:
            spec = top_networks.get(network) or {}
            assert spec.get("external") and spec.get("name") == "host", (
                f"{name}: network {network} is not the external `host` network"
            )


@files
def test_every_file_mounted_exists(path: Path) -> None:
    for name, service in services(path).items():
        for mount in mounts(service):
            if mount["type"] == "bind":
                assert Path(mount["source"]).exists(), f"{name}: {mount['source']} does not exist"
    for config_name, config in (rendered(path).get("configs") or {}).items():
        if "file" in config:
            assert Path(config["file"]).is_file(), f"config {config_name}: {config['file']}"


@files
def test_secret_files_named_by_variables_are_mounted(path: Path) -> None:
    for name, service in services(path).items():
        targets = {m["target"] for m in mounts(service)}
        secrets = set()
        for secret in service.get("secrets") or []:
            if isinstance(secret, str):
                secrets.add(f"/run/secrets/{secret}")
            else:
                target = secret.get("target") or secret["source"]
                secrets.add(target if target.startswith("/") else f"/run/secrets/{target}")
        for key, value in environment(service).items():
            if not key.endswith("_FILE") or not isinstance(value, str):
                continue
            mounted = value in secrets or any(
                value.startswith(target.rstrip("/") + "/") for target in targets
            )
            assert mounted, f"{name}: {key}={value} but nothing is mounted there"


@files
def test_one_callserver_replica(path: Path) -> None:
    # Rooms, calls and their media live in one process until the distributed mode exists.
    for name, service in services(path).items():
        if runs_callserver(path, name) and long_running(name):
            replicas = (service.get("deploy") or {}).get("replicas", 1)
            assert replicas == 1, f"{name}: {replicas} replicas"


def test_swarm_traefik_uses_the_shipped_routing() -> None:
    static = yaml.safe_load(TRAEFIK_STATIC.read_text())
    provider_file = static["providers"]["file"]["filename"]
    for path in STACK_FILES:
        stack = rendered(path)
        configs = stack.get("configs") or {}
        proxies = {
            name: service
            for name, service in stack["services"].items()
            if "traefik" in str(service.get("image", ""))
        }
        if not proxies:
            continue
        for name, service in proxies.items():
            mounted: dict[str, Path] = {}
            for config in service.get("configs") or []:
                source = config if isinstance(config, str) else config["source"]
                target = config.get("target", f"/{source}") if isinstance(config, dict) else source
                mounted[target] = Path(configs[source]["file"]).resolve()
            for mount in mounts(service):
                if mount["type"] == "bind":
                    mounted[mount["target"]] = Path(mount["source"]).resolve()
            assert mounted.get(provider_file) == TRAEFIK_DYNAMIC.resolve(), (
                f"{path}: {name} does not mount {TRAEFIK_DYNAMIC} at {provider_file}, where "
                f"{TRAEFIK_STATIC} points its file provider: {mounted}"
            )
            command = service.get("command") or []
            flags = [
                c for c in command if isinstance(c, str) and c.lower().startswith("--configfile=")
            ]
            for flag in flags:
                target = flag.split("=", 1)[1]
                assert mounted.get(target) == TRAEFIK_STATIC.resolve(), (
                    f"{path}: {name} reads its static configuration from {target}, which is "
                    f"not the shipped {TRAEFIK_STATIC}"
                )
