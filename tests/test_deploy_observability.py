"""deploy/prometheus and deploy/grafana: checked by the real promtool, and every alert and
dashboard expression run by a real Prometheus scraping a real server with the shipped config."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import RunningServer, free_port
from tests.process_helpers import terminate

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
GRAFANA_DIR = DEPLOY / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "callserver.json"

#: What issue 8 asks the rules to catch, by alert name.
ALERTS = {
    "CallserverDown",
    "CallserverNotReady",
    "CallserverMouthToEarSlow",
    "CallserverMixerUnderruns",
    "CallserverBacklogDrops",
    "CallserverCacheLayerFailing",
    "CallserverEngineErrors",
}
#: Metrics the dashboard must show (issue 8: calls, latency, engines, caches, errors, process).
DASHBOARD_METRICS = {
    "callserver_rooms",
    "callserver_participants",
    "callserver_peer_connections",
    "callserver_mouth_to_ear_seconds_bucket",
    "callserver_pipeline_stage_seconds_bucket",
    "callserver_engine_seconds_bucket",
    "callserver_engine_queue_depth",
    "callserver_engine_requests_total",
    "callserver_cache_events_total",
    "callserver_errors_total",
    "callserver_mixer_underruns_total",
    "callserver_mixer_dropped_frames_total",
    "callserver_utterances_total",
    "callserver_ready",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
}
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
#: Grafana's built-in interval variables, as Grafana would fill them for a 1 s scrape.
BUILTIN_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
#: Series Prometheus makes itself for each target rather than reading them from /metrics.
SCRAPE_SERIES = {"up"}
#: Bounded waits: Prometheus answers in a second or two, its first scrape data in about 7 s.
START_TIMEOUT_S = 30.0
POLL_S = 0.5


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args} failed:\n{result.stdout}\n{result.stderr}"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


# --- PromQL helpers ---------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_NAME = re.compile(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
_KEYWORDS |= {"group_left", "group_right", "inf", "nan", "atan2"}
_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)(?::[A-Za-z]+)?\}|\$([A-Za-z0-9_]+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords left out)."""
    text = _STRING.sub('""', expr)
    # A name inside braces: {__name__="x"}; the tests' expressions do not use that form.
    text = _MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        name, call = match.group(1), match.group(2)
        if call is None and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def exposed_names(exposition: str) -> set[str]:
    """Series names a Prometheus scrape of this text can hold, from samples and TYPE lines.

    TYPE lines count, so a labeled metric with no sample yet is found. A histogram is selected
    as ``_bucket``, ``_sum``, ``_count`` (never by its bare name), a counter with ``_total``.
    """
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            elif kind == "summary":
                names |= {name, f"{name}_sum", f"{name}_count"}
            elif kind == "counter":
                names.add(name if name.endswith("_total") else f"{name}_total")
            else:
                names.add(name)
        elif line and not line.startswith("#"):
            match = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
            if match:
                names.add(match.group())
    return names


def substitute(expr: str, variables: dict[str, str]) -> str:
    """``expr`` with Grafana's variables replaced as Grafana would (unknown ones fail)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise AssertionError(f"unknown Grafana variable ${name} in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(value, expr)


def dashboard_expressions(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and template variable, variables substituted."""
    variables = dict(BUILTIN_VARIABLES)
    out: list[tuple[str, str]] = []
    for var in board.get("templating", {}).get("list", []):
        # A multi-value variable set to All is its allValue in a regex matcher.
        variables[var["name"]] = var.get("allValue") or ".*"
        query = var.get("definition") or var["query"]
        if isinstance(query, dict):
            query = query["query"]
        inner = _LABEL_VALUES.match(query)
        out.append((f"variable {var['name']}", inner.group(1) if inner else query))
    for panel in panels(board):
        for target in panel.get("targets", []):
            out.append((f"panel {panel['id']} {panel['title']!r}", target["expr"]))
    return [(where, substitute(expr, variables)) for where, expr in out]


def test_metric_names_finds_selectors_not_functions_labels_or_keywords() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (stage, le) (rate(callserver_a_bucket{job="x", '
        'stage=~"recognize|up"}[5m]))) / on (job) group_left (instance) callserver_b_total '
        "> bool 1e3 and up offset 5m or vector(1)"
    )
    assert metric_names(expr) == {"callserver_a_bucket", "callserver_b_total", "up"}
    assert metric_names("time() - max(process_start_time_seconds)") == {
        "process_start_time_seconds"
    }


def test_exposed_names_map_histograms_and_counters() -> None:
    text = (
        "# HELP h_seconds a histogram\n# TYPE h_seconds histogram\n"
        "# HELP c_total a counter\n# TYPE c_total counter\n"
        "# HELP g a gauge\n# TYPE g gauge\ng 1.0\n"
    )
    assert exposed_names(text) == {"h_seconds_bucket", "h_seconds_sum", "h_seconds_count"} | {
        "c_total",
        "g",
    }


# --- promtool ---------------------------------------------------------------------------------


@pytest.mark.needs("promtool")
def test_promtool_accepts_the_scrape_config() -> None:
    # Also loads and checks the rule files it names, relative to its folder.
    assert_ok(promtool("check", "config", "prometheus.yml"))


@pytest.mark.needs("promtool")
def test_promtool_accepts_the_alert_rules() -> None:
    assert_ok(promtool("check", "rules", "alerts.yml"))


@pytest.mark.needs("promtool")
def test_alert_rules_pass_their_unit_tests() -> None:
    assert_ok(promtool("test", "rules", "alerts.test.yml"))


def test_every_alert_is_there_with_for_severity_annotations_and_a_unit_test() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == ALERTS
    tests = load_yaml(PROMETHEUS_DIR / "alerts.test.yml")
    assert tests["rule_files"] == ["alerts.yml"]
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    for rule in rules:
        name = rule["alert"]
        assert rule.get("for"), f"{name} has no `for`: one bad scrape would page"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), name
        assert "$labels.instance" in annotations["description"], name
        assert name in fired, f"{name}: no promtool unit test expects it to fire"


def test_scrape_config_follows_the_conventions() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"callserver", "prometheus"}
    callserver = jobs["callserver"]
    assert callserver.get("metrics_path", "/metrics") == "/metrics"
    assert callserver["static_configs"] == [{"targets": ["127.0.0.1:8080"]}]
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["127.0.0.1:9090"]}]
    assert config["global"]["scrape_interval"] == "15s"


# --- Grafana ----------------------------------------------------------------------------------


def test_dashboard_is_a_grafana_dashboard_on_the_provisioned_datasource() -> None:
    board = dashboard()
    assert board["uid"] == "callserver" and board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {sorted(ids)}"
    graphs = [panel for panel in panels(board) if panel["type"] != "row"]
    assert graphs
    for panel in graphs:
        where = f"panel {panel['id']} {panel['title']!r}"
        assert panel["type"] in {"timeseries", "stat", "gauge", "table", "bargauge"}, where
        assert panel["datasource"] == DATASOURCE, where
        assert panel["targets"], f"{where} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, where
            assert target["expr"].strip(), where
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] + pos["w"] <= 24, where
    for row in panels(board):
        if row["type"] == "row":
            assert not row.get("targets"), f"row {row['title']!r} has queries"
    for var in board["templating"]["list"]:
        assert var["datasource"] == DATASOURCE, var["name"]
    named = set().union(*(metric_names(expr) for _, expr in dashboard_expressions(board)))
    missing = DASHBOARD_METRICS - named
    assert not missing, f"no panel shows {sorted(missing)}"


def test_grafana_provisioning_names_the_datasource_and_the_dashboard_folder() -> None:
    datasources = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml")
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert {"uid": source["uid"], "type": source["type"]} == DATASOURCE
    assert source["url"] == "http://127.0.0.1:9090"
    providers = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "callserver.yaml")
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


# --- a real Prometheus ------------------------------------------------------------------------


@dataclass
class Prometheus:
    url: str
    session: aiohttp.ClientSession
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    async def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query``'s answer (status success or error, and why)."""
        async with self.session.get(f"{self.url}/api/v1/query", params={"query": expr}) as reply:
            answer: dict[str, Any] = await reply.json(content_type=None)
            return answer

    async def poll(self, what: str, check: Callable[[], Awaitable[Any]]) -> Any:
        """Await ``check()`` every 0.5 s until it returns something truthy, at most 30 s."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                found = await check()
                if found:
                    return found
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus: {what} after {START_TIMEOUT_S:.0f} s\n{self.log_tail()}")
            await asyncio.sleep(POLL_S)


def shipped_config_aimed_at(target: str, self_target: str) -> dict[str, Any]:
    """prometheus.yml with only the scrape targets and the interval (1 s) changed."""
    config: dict[str, Any] = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config["global"]["scrape_interval"] = "1s"
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [target if job["job_name"] == "callserver" else self_target]
    return config


@pytest.fixture
async def traced_server(make_server: Callable[..., Any]) -> AsyncIterator[RunningServer]:
    """A server with call translation on, as served by default: its pipeline metrics exist."""
    async with make_server(translate_calls=True) as running:
        yield running


@pytest.fixture
async def prometheus(traced_server: RunningServer, tmp_path: Path) -> AsyncIterator[Prometheus]:
    port = free_port()
    folder = tmp_path / "prometheus"
    folder.mkdir()
    # The rule file beside the config, where its relative rule_files entry finds it.
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", folder / "alerts.yml")
    target = traced_server.url.removeprefix("http://")
    config = shipped_config_aimed_at(target, f"127.0.0.1:{port}")
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            "prometheus",
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    running = Prometheus(f"http://127.0.0.1:{port}", traced_server.session, log)
    try:

        async def ready() -> bool:
            if process.returncode is not None:
                pytest.fail(f"prometheus exited {process.returncode}:\n{running.log_tail()}")
            async with running.session.get(f"{running.url}/-/ready") as reply:
                return reply.status == 200

        await running.poll("not ready", ready)
        yield running
    finally:
        await terminate(process)


@pytest.mark.needs("prometheus")
async def test_every_expression_runs_on_a_real_prometheus_scraping_the_server(
    traced_server: RunningServer, prometheus: Prometheus
) -> None:
    target = traced_server.url.removeprefix("http://")

    async def scraped() -> list[Any]:
        answer = await prometheus.query('up{job="callserver"}')
        result: list[Any] = answer["data"]["result"]
        return result

    (up,) = await prometheus.poll("no scrape of the callserver job", scraped)
    assert up["metric"]["instance"] == target
    assert up["value"][1] == "1", f"scraping {target} failed:\n{prometheus.log_tail()}"
    data = await prometheus.query('count({job="callserver", __name__=~"callserver_.+"})')
    assert data["status"] == "success" and data["data"]["result"], data
    assert int(data["data"]["result"][0]["value"][1]) > 0

    async with traced_server.session.get(f"{traced_server.url}/metrics") as reply:
        assert reply.status == 200
        exposed = exposed_names(await reply.text()) | SCRAPE_SERIES

    expressions = dashboard_expressions(dashboard())
    expressions += [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]
    problems: list[str] = []
    for where, expr in expressions:
        names = metric_names(expr)
        if not names:
            problems.append(f"{where}: names no metric: {expr}")
        if names - exposed:
            problems.append(f"{where}: not in /metrics: {sorted(names - exposed)}")
        answer = await prometheus.query(expr)
        if answer.get("status") != "success":
            problems.append(f"{where}: {answer.get('errorType')}: {answer.get('error')}: {expr}")
    assert not problems, "\n".join(problems)

    # The running Prometheus loaded the shipped rules from the relative rule_files entry.
    async with prometheus.session.get(f"{prometheus.url}/api/v1/rules") as reply:
        groups = (await reply.json())["data"]["groups"]
    assert {rule["name"] for group in groups for rule in group["rules"]} == ALERTS
