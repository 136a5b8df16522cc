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
  named by ``*_FILE`` variables are mounted, one callserver replica per service (or one per
  machine);
- Traefik (Swarm) mounts the shipped dynamic.yaml where the shipped traefik.yaml reads it;
- the distributed mode's files (deploy/compose.cluster.yaml, an overlay rendered on top of
  compose.yaml, and deploy/swarm/cluster.yaml): every media node has its own URL and port,
  nodes and workers share one Redis and key prefix, nodes run no models, workers publish no
  port and are checked by their health file, the cluster's Redis persists and never evicts
  rooms, and the commented GPU blocks are valid once uncommented; compose.yaml alone stays
  the single process;
- worker metrics on host networking: no fixed port (scaled workers would collide on it), the
  operator's CALLSERVER_WORKER_METRICS_PORT passed through to the workers alone; Prometheus
  scrapes only what serves metrics by default, and its commented worker job is valid and
  names the port the compose file's instructions use.
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
COMPOSE_BASE = DEPLOY / "compose.yaml"
#: Overlays: rendered as ``-f compose.yaml -f OVERLAY``, as docs/deploy.md runs them.
COMPOSE_OVERLAYS = [DEPLOY / "compose.cluster.yaml"]
COMPOSE_FILES = [COMPOSE_BASE, *COMPOSE_OVERLAYS]
STACK_FILES = sorted([*DEPLOY.glob("swarm/*.yaml"), *DEPLOY.glob("swarm/*.yml")])
FILES = [*COMPOSE_FILES, *STACK_FILES]
TRAEFIK_STATIC = DEPLOY / "traefik" / "traefik.yaml"
TRAEFIK_DYNAMIC = DEPLOY / "traefik" / "dynamic.yaml"
#: The distributed mode's files (each rendered as the tests above render it).
CLUSTER_FILES = [DEPLOY / "compose.cluster.yaml", DEPLOY / "swarm" / "cluster.yaml"]
#: Redis eviction policies that never evict a key without a time to live (rooms, job streams).
SAFE_EVICTION = {"noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"}
WORKER_HEALTHCHECK = ["CMD", "callserver", "healthcheck", "--worker"]
PROMETHEUS_DIR = DEPLOY / "prometheus"
#: The worker's metrics settings, which host-networked files must leave to the operator.
WORKER_METRICS = ("CALLSERVER_WORKER_METRICS_PORT", "CALLSERVER_WORKER_METRICS_HOST")

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
def rendered(path: Path, given: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """The file as the real tool loads it (fails the test when the tool rejects it), with
    only the variables ``given`` set in its environment."""
    with tempfile.TemporaryDirectory() as home:
        if path in COMPOSE_FILES:
            if shutil.which("docker-compose") is None:
                missing_dependency("docker-compose not installed (make test installs it)")
            command = ["docker-compose"]
            for layer in layers(path):
                command += ["-f", str(layer)]
            command.append("config")
        else:
            docker = shutil.which("docker")
            if docker is None or stack_config_missing(docker):
                missing_dependency("a docker CLI with `docker stack config` (Docker 23 or later)")
            command = ["docker", "stack", "config", "-c", str(path)]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env={**clean_env(home), **dict(given)},
            timeout=60,
            check=False,
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


def layers(path: Path) -> list[Path]:
    """The files the tool is given for ``path``: an overlay comes after compose.yaml."""
    return [COMPOSE_BASE, path] if path in COMPOSE_OVERLAYS else [path]


@functools.cache
def raw(path: Path) -> dict[str, Any]:
    """The file as written (an overlay's services laid over compose.yaml's, key by key)."""
    merged: dict[str, Any] = {}
    for layer in layers(path):
        loaded: dict[str, Any] = yaml.safe_load(layer.read_text())
        for name, service in (loaded.pop("services", None) or {}).items():
            merged.setdefault("services", {}).setdefault(name, {}).update(service)
        merged.update(loaded)
    return merged


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


def services(path: Path, given: tuple[tuple[str, str], ...] = ()) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = rendered(path, given)["services"]
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


def is_worker(service: dict[str, Any]) -> bool:
    """An inference worker (`callserver worker`): the image's entry point with ``worker``."""
    return list(service.get("command") or []) == ["worker"]


def media_nodes(path: Path) -> dict[str, dict[str, Any]]:
    """The services that run `callserver serve` (the image's default command)."""
    return {
        name: service
        for name, service in services(path).items()
        if runs_callserver(path, name) and long_running(name) and not is_worker(service)
    }


def workers(path: Path) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in services(path).items()
        if runs_callserver(path, name) and is_worker(service)
    }


def command_text(service: dict[str, Any]) -> str:
    """A service's command as one string (a list of arguments, or a shell script)."""
    command = service.get("command") or []
    return " ".join(command) if isinstance(command, list) else str(command)


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
    for path in CLUSTER_FILES:
        assert path.is_file() and path in FILES, path


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
        elif runs_callserver(path, name) and is_worker(service):
            # A worker has no HTTP port: the image's check (GET /healthz) would always fail.
            if test != WORKER_HEALTHCHECK:
                problems.append(f"{name}: healthcheck {test}, not {WORKER_HEALTHCHECK}")
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
def test_one_callserver_replica_per_service_or_per_machine(path: Path) -> None:
    # Host networking: a media node holds its port (8080) on the machine, so a service runs
    # one (each compose node has a port of its own) or one per machine (Swarm's global mode).
    nodes = media_nodes(path)
    assert nodes, f"no media node in {path}"
    for name, service in nodes.items():
        deploy = service.get("deploy") or {}
        if deploy.get("mode") == "global":
            assert "replicas" not in deploy, name
            continue
        replicas = deploy.get("replicas", 1)
        assert replicas == 1, f"{name}: {replicas} replicas on one port"


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


# ---- the distributed mode ----------------------------------------------------------------------

cluster_files = pytest.mark.parametrize("path", CLUSTER_FILES, ids=file_id)


def redis_command(path: Path) -> str:
    found = [
        command_text(service)
        for name, service in services(path).items()
        if "redis-server" in command_text(service)
    ]
    assert len(found) == 1, f"{path}: expected one Redis, found {len(found)}"
    return found[0]


def redis_option(command: str, name: str) -> str | None:
    """An option's value from ``--name value`` arguments or a generated ``name value`` line."""
    match = re.search(rf"(?:--|\"|^|\s){re.escape(name)}\s+\"?([^\s\"]+)", command, re.MULTILINE)
    return match.group(1) if match else None


@cluster_files
def test_every_media_node_has_its_own_url_and_port(path: Path) -> None:
    # Joins for a node's rooms are redirected to its CALLSERVER_CLUSTER_NODE_URL: two nodes
    # with one URL would send callers of one room to different processes.
    nodes = media_nodes(path)
    urls: dict[str, str] = {}
    ports: dict[str, str] = {}
    for name, service in nodes.items():
        env = environment(service)
        assert str(env.get("CALLSERVER_CLUSTER_ENABLED")).lower() == "true", name
        url = str(env.get("CALLSERVER_CLUSTER_NODE_URL") or "")
        assert url.startswith(("http://", "https://")), f"{name}: node URL {url!r}"
        port = str(env.get("CALLSERVER_PORT") or settings()["CALLSERVER_PORT"])
        if (service.get("deploy") or {}).get("mode") == "global":
            # One task per machine: the URL must differ per machine, by a Swarm template.
            assert "{{.Node.Hostname}}" in url or "{{.Node.ID}}" in url, f"{name}: {url}"
        else:
            explicit = re.match(r"https?://[^/]+:(\d+)", url)
            if explicit:
                assert explicit.group(1) == port, f"{name}: URL {url} but port {port}"
        assert url not in urls.values(), f"{name} and {urls} share the URL {url}"
        assert port not in ports.values(), f"{name} and {ports} share port {port}"
        urls[name], ports[name] = url, port
    if path in COMPOSE_FILES:
        assert len(nodes) >= 2, f"{path}: {sorted(nodes)}"


@cluster_files
def test_nodes_and_workers_share_one_redis_and_key_prefix(path: Path) -> None:
    nodes, found = media_nodes(path), workers(path)
    assert nodes and found, f"{path}: nodes {sorted(nodes)}, workers {sorted(found)}"
    seen = set()
    for name, service in {**nodes, **found}.items():
        env = environment(service)
        redis = env.get("CALLSERVER_REDIS_URL") or env.get("CALLSERVER_REDIS_URL_FILE")
        assert redis, f"{name}: no CALLSERVER_REDIS_URL(_FILE)"
        prefix = env.get("CALLSERVER_CLUSTER_KEY_PREFIX")
        assert prefix, f"{name}: set CALLSERVER_CLUSTER_KEY_PREFIX explicitly"
        seen.add((redis, prefix))
    assert len(seen) == 1, f"{path}: nodes and workers disagree on Redis or prefix: {seen}"
    for name, service in nodes.items():
        # The models are on the workers: a node that loaded them too would need a worker's
        # memory and CPU.
        env = environment(service)
        assert str(env.get("CALLSERVER_CLUSTER_REMOTE_ENGINES")).lower() == "true", name


@cluster_files
def test_workers_publish_no_port_and_can_be_scaled(path: Path) -> None:
    for name, service in workers(path).items():
        assert not service.get("ports"), f"{name} publishes ports"
        env = environment(service)
        health = str(env.get("CALLSERVER_WORKER_HEALTH_PATH") or "")
        assert health.startswith("/tmp/"), f"{name}: health file {health!r} (tmp is writable)"
        assert service["healthcheck"]["test"] == WORKER_HEALTHCHECK, name
        assert "CALLSERVER_PORT" not in env, f"{name}: a worker listens on nothing"
        # Scaled copies on one machine must not share a named volume (their file caches).
        named = [m for m in mounts(service) if m["type"] == "volume" and m["source"]]
        assert not named, f"{name}: named volumes {named}"
        deploy = service.get("deploy") or {}
        assert deploy.get("mode", "replicated") == "replicated", name


@cluster_files
def test_the_cluster_redis_persists_and_evicts_no_room(path: Path) -> None:
    command = redis_command(path)
    assert redis_option(command, "appendonly") == "yes", command
    policy = redis_option(command, "maxmemory-policy")
    assert policy in SAFE_EVICTION, f"maxmemory-policy {policy}: would evict rooms"
    folder = redis_option(command, "dir")
    assert folder, "no --dir: the append-only file goes to the working folder"
    (service,) = [s for s in services(path).values() if command_text(s) == command]
    volumes = [m for m in mounts(service) if m["target"] == folder and m["type"] == "volume"]
    assert volumes, f"Redis writes {folder}, but no named volume is mounted there"
    assert seconds(service.get("stop_grace_period", "10s")) >= 10, "time to flush the AOF"


def test_compose_without_the_overlay_is_the_single_process() -> None:
    # The embedded default must not change when the cluster overlay exists.
    assert not workers(COMPOSE_BASE)
    assert list(media_nodes(COMPOSE_BASE)) == ["callserver"]
    env = environment(media_nodes(COMPOSE_BASE)["callserver"])
    assert not any(name.startswith("CALLSERVER_CLUSTER_") for name in env), env
    assert redis_option(redis_command(COMPOSE_BASE), "maxmemory-policy") == "allkeys-lru"


def test_swarm_cluster_traefik_runs_beside_every_media_node() -> None:
    # Each node's Traefik sends its names to 127.0.0.1:8080: it must run wherever a node does.
    path = DEPLOY / "swarm" / "cluster.yaml"
    stack = services(path)
    (node,) = media_nodes(path).values()
    assert node["deploy"]["mode"] == "global"
    assert stack["traefik"]["deploy"]["mode"] == "global"
    assert (
        stack["traefik"]["deploy"]["placement"]["constraints"]
        == node["deploy"]["placement"]["constraints"]
    )
    assert yaml.safe_load(TRAEFIK_DYNAMIC.read_text())["http"]["services"]["callserver"][
        "loadBalancer"
    ]["servers"] == [{"url": "http://127.0.0.1:8080"}]


def uncommented(text: str, marker: str) -> str:
    """``text`` with the commented block that starts at the line ``# <marker>`` uncommented."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == f"# {marker}"]
    assert len(starts) == 1, f"one commented `{marker}` block expected"
    start = starts[0]
    prefix = lines[start][: lines[start].index("#")] + "# "
    end = start
    while end < len(lines) and lines[end].startswith(prefix):
        lines[end] = lines[end][: len(prefix) - 2] + lines[end][len(prefix) :]
        end += 1
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("path", "marker", "service"),
    [
        (DEPLOY / "compose.cluster.yaml", "deploy:", "worker"),
        (DEPLOY / "swarm" / "cluster.yaml", "generic_resources:", "worker"),
    ],
    ids=["compose", "swarm"],
)
def test_the_commented_gpu_reservation_is_valid(path: Path, marker: str, service: str) -> None:
    # A comment nobody renders rots: uncommented, the block must load and ask for a GPU.
    with tempfile.TemporaryDirectory() as home:
        copy = Path(home) / path.name
        copy.write_text(uncommented(path.read_text(), marker))
        if path in COMPOSE_FILES:
            if shutil.which("docker-compose") is None:
                missing_dependency("docker-compose not installed (make test installs it)")
            command = ["docker-compose", "-f", str(COMPOSE_BASE), "-f", str(copy), "config"]
        else:
            docker = shutil.which("docker")
            if docker is None or stack_config_missing(docker):
                missing_dependency("a docker CLI with `docker stack config` (Docker 23 or later)")
            # Configs name files relative to the stack file: keep it beside the original's.
            copy = path.parent / f".{path.stem}.gpu-check.yaml"
            copy.write_text(uncommented(path.read_text(), marker))
            command = ["docker", "stack", "config", "-c", str(copy)]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, env=clean_env(home), timeout=60
            )
        finally:
            if copy.parent == path.parent:
                copy.unlink()
    assert result.returncode == 0, result.stderr
    reservations = yaml.safe_load(result.stdout)["services"][service]["deploy"]["resources"][
        "reservations"
    ]
    assert "nvidia" in str(reservations).lower(), reservations


# ---- worker metrics on host networking ---------------------------------------------------------


@cluster_files
def test_host_networked_workers_serve_metrics_only_on_a_port_the_operator_gives(
    path: Path,
) -> None:
    # Every copy of a scaled worker shares the host's ports: with a port in the file, all but
    # the first would exit at start (address in use) and restart forever.
    for name, service in workers(path).items():
        env = environment(service)
        assert "CALLSERVER_WORKER_METRICS_PORT" in env, f"{name}: document the metrics port"
        for key in WORKER_METRICS:
            assert env.get(key) is None, f"{name}: {key}={env.get(key)!r} set by the file"
    # A pass-through: the value in the shell that runs compose reaches the workers alone.
    given = services(path, (("CALLSERVER_WORKER_METRICS_PORT", "9464"),))
    found = workers(path)
    for name, service in given.items():
        value = environment(service).get("CALLSERVER_WORKER_METRICS_PORT")
        assert value == ("9464" if name in found else None), f"{name}: {value!r}"


def test_swarm_workers_with_a_metrics_port_can_be_held_to_one_per_machine() -> None:
    # The commented placement the file names for a metrics port must load and say so.
    path = DEPLOY / "swarm" / "cluster.yaml"
    assert "max_replicas_per_node" in path.read_text()
    copy = path.parent / f".{path.stem}.metrics-check.yaml"
    copy.write_text(uncommented(path.read_text(), "max_replicas_per_node: 1"))
    try:
        (worker,) = workers(copy).values()
    finally:
        copy.unlink()
    assert worker["deploy"]["placement"]["max_replicas_per_node"] == 1


def scrape_targets(config: dict[str, Any]) -> dict[str, list[str]]:
    return {
        job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        for job in config["scrape_configs"]
    }


def test_prometheus_scrapes_only_what_serves_metrics_by_default() -> None:
    # A target nothing serves is down for good (e.g. a worker without a metrics port): the
    # shipped jobs are callserver's port and Prometheus's own, as compose.yaml runs them.
    compose = services(COMPOSE_BASE)
    port = environment(compose["callserver"]).get("CALLSERVER_PORT")
    listen = [a for a in compose["prometheus"]["command"] if a.startswith("--web.listen-address")]
    served = {f"127.0.0.1:{port}", listen[0].split("=", 1)[1]}
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    for job, targets in scrape_targets(config).items():
        assert set(targets) <= served, f"job {job}: {targets}, but only {served} serve metrics"


@pytest.mark.needs("promtool")
def test_the_commented_worker_scrape_job_is_valid_and_names_the_documented_port() -> None:
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(PROMETHEUS_DIR / "alerts.yml", folder)
        copy = Path(folder) / "prometheus.yml"
        copy.write_text(uncommented(text, "- job_name: callserver-worker"))
        check = subprocess.run(
            ["promtool", "check", "config", str(copy)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        targets = scrape_targets(yaml.safe_load(copy.read_text()))["callserver-worker"]
    # The port the compose file tells operators to start the worker with.
    documented = re.findall(
        r"CALLSERVER_WORKER_METRICS_PORT=(\d+)", (DEPLOY / "compose.cluster.yaml").read_text()
    )
    assert documented and targets == [f"127.0.0.1:{documented[0]}"], (documented, targets)
