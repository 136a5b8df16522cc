"""The ``callserver`` command: ``serve``, ``token``, ``settings`` and ``models``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.error
import urllib.request
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from callserver.logs import configure_logging
from callserver.settings import Settings
from models.env import SettingsFileError
from models.store.cli import add_models_parser
from signaling.rooms import ROOM_ID_PATTERN
from signaling.tokens import Grants, mint_token


def _settings(
    *, every_class: bool = False, media_node: bool = False, **overrides: object
) -> Settings:
    """The server's settings, or exit with a message naming each bad variable.

    ``every_class`` also validates the pipeline's and engines' settings, so that a bad value
    there stops the server at start, reported with the rest, instead of failing a call later;
    ``media_node`` also checks what a node of the distributed mode needs across classes.
    """
    failures: list[tuple[type[BaseSettings], ValidationError | SettingsFileError]] = []
    settings: Settings | None = None
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except (ValidationError, SettingsFileError) as exc:
        failures.append((Settings, exc))
    for _, cls in settings_classes() if every_class else []:
        if cls is Settings:
            continue
        try:
            cls()
        except (ValidationError, SettingsFileError) as exc:
            failures.append((cls, exc))
    if failures or settings is None:
        raise SystemExit(_invalid(failures))
    problem = _cluster_problem(settings) if media_node else None
    if problem:
        raise SystemExit(f"callserver: invalid settings\n  CALLSERVER_CLUSTER_ENABLED: {problem}")
    return settings


def _cluster_problem(settings: Settings) -> str | None:
    """What keeps the distributed mode from starting, across settings classes."""
    from callserver.cluster import ClusterSettings
    from models.cache import CacheSettings

    cluster = ClusterSettings()
    if not cluster.enabled:
        return None
    if not CacheSettings().redis_url:
        return "a cluster keeps its rooms in Redis; set CALLSERVER_REDIS_URL too"
    if settings.port == 0 and not (cluster.node_url or settings.public_url):
        return "other nodes send callers here: set CALLSERVER_PORT or CALLSERVER_CLUSTER_NODE_URL"
    return None


def _invalid(failures: list[tuple[type[BaseSettings], ValidationError | SettingsFileError]]) -> str:
    lines = ["callserver: invalid settings"]
    for cls, exc in failures:
        if isinstance(exc, SettingsFileError):
            # Already one line naming the variable; the same one can fail in two classes.
            if f"  {exc}" not in lines:
                lines.append(f"  {exc}")
            continue
        prefix = str(cls.model_config.get("env_prefix", ""))
        for error in exc.errors():
            loc = error["loc"]
            # Operators set environment variables, not fields: name what they would change.
            where = (prefix + str(loc[0])).upper() if loc else cls.__name__
            lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)


def _serve(args: argparse.Namespace) -> int:
    from callserver.server import serve

    settings = _settings(every_class=True, media_node=True, host=args.host, port=args.port)
    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(serve(settings))


def _worker(args: argparse.Namespace) -> int:
    from callserver.cluster import ClusterSettings
    from callserver.worker import WorkerSettings, run_worker
    from models.cache import CacheSettings

    settings = _settings(every_class=True)
    redis_url = CacheSettings().redis_url
    if not redis_url:
        raise SystemExit(
            "callserver: invalid settings\n"
            "  CALLSERVER_REDIS_URL: a worker takes its jobs from Redis; set it"
        )
    configure_logging(settings.log_level, settings.log_format)
    prefix = ClusterSettings().key_prefix
    return asyncio.run(run_worker(redis_url, prefix, WorkerSettings()))


def _token(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.join_secret is None:
        print("callserver: set CALLSERVER_JOIN_SECRET to mint join tokens", file=sys.stderr)
        return 2
    if not ROOM_ID_PATTERN.match(args.room):
        print("callserver: room ids are 6-64 letters, digits, '-' or '_'", file=sys.stderr)
        return 2
    secret = settings.join_secret.get_secret_value().encode("utf-8")
    ttl_s = args.ttl or settings.token_ttl_s
    grants = Grants(host=True) if args.host else None
    options = settings.join_token_options()
    print(mint_token(secret, args.room, ttl_s, grants=grants, options=options))
    return 0


def _healthcheck(args: argparse.Namespace) -> int:
    """Exit 0 when this machine's server answers /healthz (or /readyz) with 200, else 1.

    What container healthchecks run: the image has no curl, and the port comes from the same
    settings the server uses.
    """
    if args.worker:
        return _worker_healthcheck(ready=args.ready)
    settings = _settings()
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    url = args.url or f"http://{host}:{settings.port}/{'readyz' if args.ready else 'healthz'}"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:  # noqa: S310
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"callserver: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"callserver: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


def _worker_healthcheck(*, ready: bool) -> int:
    """A worker serves no health endpoint: its health file (CALLSERVER_WORKER_HEALTH_PATH) tells."""
    from callserver.worker import WorkerSettings, health_problem

    try:
        path = WorkerSettings().health_path
    except (ValidationError, SettingsFileError) as exc:
        raise SystemExit(_invalid([(WorkerSettings, exc)])) from exc
    if path is None:
        print(
            "callserver: set CALLSERVER_WORKER_HEALTH_PATH (the worker writes it)", file=sys.stderr
        )
        return 1
    problem = health_problem(path, ready=ready)
    if problem:
        print(f"callserver: {problem}", file=sys.stderr)
        return 1
    return 0


def settings_classes() -> list[tuple[str, type[BaseSettings]]]:
    """Every settings class the server reads, with its title in `callserver settings`."""
    from callserver.cluster import ClusterSettings
    from callserver.pipeline.endpoint import EndpointSettings
    from callserver.pipeline.settings import PipelineSettings
    from callserver.worker import WorkerSettings
    from models.cache import CacheSettings
    from models.mt.settings import MtSettings
    from models.store import StoreSettings
    from models.stt.settings import SttSettings
    from models.tts.settings import TtsSettings

    return [
        ("Server, calls and limits", Settings),
        ("Translation pipeline", PipelineSettings),
        ("Voice detection and endpointing", EndpointSettings),
        ("Speech recognition", SttSettings),
        ("Translation", MtSettings),
        ("Speech synthesis", TtsSettings),
        ("Caches", CacheSettings),
        ("Model store", StoreSettings),
        ("Distributed mode", ClusterSettings),
        ("Inference workers", WorkerSettings),
    ]


def _settings_table(args: argparse.Namespace) -> int:
    for title, cls in settings_classes():
        prefix = str(cls.model_config.get("env_prefix", ""))
        print(f"\n### {title}\n\n| variable | default | meaning |\n|---|---|---|")
        for name, field in cls.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if name == "web_dir":
                default = "web/ in the checkout"
            elif isinstance(default, Path) and str(default).startswith(str(Path.home())):
                default = "~" + str(default)[len(str(Path.home())) :]
            if isinstance(default, list):
                default = ",".join(map(str, default))
                if len(default) > 40:
                    default = default[:37] + "..."
            description = (field.description or "").replace("|", "\\|")
            print(f"| `{(prefix + name).upper()}` | `{default}` | {description} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``callserver`` console command."""
    parser = argparse.ArgumentParser(prog="callserver", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server (embedded mode)")
    serve.add_argument("--host", help="bind address (CALLSERVER_HOST)")
    serve.add_argument("--port", type=int, help="port (CALLSERVER_PORT)")
    serve.set_defaults(run=_serve)
    worker = commands.add_parser(
        "worker", help="run recognition, translation and synthesis for the media nodes"
    )
    worker.set_defaults(run=_worker)
    token = commands.add_parser("token", help="mint a join token for ROOM")
    token.add_argument("room")
    token.add_argument("--ttl", type=int, help="lifetime in seconds (CALLSERVER_TOKEN_TTL_S)")
    token.add_argument(
        "--host", action="store_true", help="the holder hosts the room (lock, remove, mute, end)"
    )
    token.set_defaults(run=_token)
    health = commands.add_parser(
        "healthcheck", help="exit 0 when the local server answers /healthz (container checks)"
    )
    health.add_argument("--ready", action="store_true", help="check /readyz instead")
    health.add_argument(
        "--worker",
        action="store_true",
        help="check the local worker's health file instead (with --ready: its capabilities "
        "reached Redis)",
    )
    health.add_argument("--url", help="URL to check instead of the local server's")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds to wait (3)")
    health.set_defaults(run=_healthcheck)
    table = commands.add_parser("settings", help="print every setting as a Markdown table")
    table.set_defaults(run=_settings_table)
    add_models_parser(commands)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result
