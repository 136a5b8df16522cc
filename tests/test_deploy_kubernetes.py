"""The Kubernetes manifests (deploy/kubernetes), as the real `kubectl kustomize` renders them.

Each kustomization (the base and every overlay) is rendered once; the tests read the objects
the cluster would get: probes, security context, resources, the drain timing, the
PodDisruptionBudget and Service selectors, and the CALLSERVER_* settings they set. The
distributed mode's overlay (overlays/cluster) is checked for what makes a cluster work: every
media pod has its own URL, Service and Ingress host, nodes and workers share one Redis and key
prefix, workers are probed through their health file and serve metrics on their own pod
address (annotated for scraping), Redis persists and evicts no room, and the optional GPU patch
renders.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from callserver.cli import main, settings_classes
from callserver.cluster import ClusterSettings
from callserver.settings import Settings

KUBERNETES = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
TARGETS = ["base", "overlays/dev", "overlays/production", "overlays/cluster"]
CLUSTER = "overlays/cluster"
#: The label the StatefulSet controller puts on each of its pods (not in the template).
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
#: Redis eviction policies that never evict a key without a time to live (rooms, job streams).
SAFE_EVICTION = {"noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"}
NAMESPACE = "callserver"
UID = 10001
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
#: What the downward API would give CALLSERVER_ICE_HOST_ADDRESSES (status.hostIP).
NODE_IP = "192.0.2.10"

pytestmark = pytest.mark.needs("kubectl")

Obj = dict[str, Any]


@functools.cache
def render(target: str) -> tuple[Obj, ...]:
    """The objects `kubectl kustomize` renders for one kustomization (warnings tolerated)."""
    folder = Path(target) if Path(target).is_absolute() else KUBERNETES / target
    result = subprocess.run(
        ["kubectl", "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {target} failed:\n{result.stderr}"
    objects = tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)
    assert objects, f"{target} rendered nothing"
    return objects


def of_kind(objects: tuple[Obj, ...], *kinds: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] in kinds]


def pod_specs(objects: tuple[Obj, ...]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, pod template) for every workload."""
    for obj in of_kind(objects, *WORKLOADS):
        yield obj, obj["spec"]["template"]


def callserver_workload(objects: tuple[Obj, ...]) -> tuple[Obj, Obj, Obj]:
    """The workload running the callserver container, its pod template and that container."""
    found = [
        (workload, template, container)
        for workload, template in pod_specs(objects)
        for container in template["spec"]["containers"]
        if container["name"] == "callserver"
    ]
    assert len(found) == 1, f"expected one callserver container, found {len(found)}"
    return found[0]


def environment(objects: tuple[Obj, ...], container: Obj) -> dict[str, Obj]:
    """The container's variables: envFrom ConfigMaps first, then env (which wins, as in k8s).

    Each value is ``{"value": ...}`` or the env entry itself (``valueFrom``).
    """
    maps = {obj["metadata"]["name"]: obj for obj in of_kind(objects, "ConfigMap")}
    variables: dict[str, Obj] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref is None:
            continue
        assert ref["name"] in maps, f"envFrom names ConfigMap {ref['name']}, not rendered"
        for key, value in maps[ref["name"]].get("data", {}).items():
            variables[key] = {"value": value}
    for entry in container.get("env", []):
        variables[entry["name"]] = entry
    return variables


def setting_names() -> set[str]:
    """Every variable `callserver settings` prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["settings"]) == 0
    return set(re.findall(r"^\| `(CALLSERVER_[A-Z0-9_]+)` \|", out.getvalue(), re.MULTILINE))


def cpu(quantity: str | int | float) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory(quantity: str | int) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    text = str(quantity)
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("target", TARGETS)
def test_renders_into_one_namespace(target: str) -> None:
    objects = render(target)
    for obj in objects:
        assert obj.get("apiVersion") and obj["metadata"].get("name"), obj
        if obj["kind"] not in CLUSTER_SCOPED:
            # kubectl 1.20's kustomize drops the namespace of a ConfigMap merged in an overlay
            # unless the overlay names it too.
            where = f"{obj['kind']}/{obj['metadata']['name']}"
            assert obj["metadata"].get("namespace") == NAMESPACE, where
    assert of_kind(objects, "Deployment", "StatefulSet", "DaemonSet")


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_has_probes_security_and_resources(target: str) -> None:
    for workload, template in pod_specs(render(target)):
        pod = template["spec"]
        pod_security = pod.get("securityContext", {})
        assert pod_security.get("fsGroup") == UID, workload["metadata"]["name"]
        assert pod_security.get("fsGroupChangePolicy") == "OnRootMismatch"
        assert pod.get("automountServiceAccountToken") is False
        for container in pod["containers"] + pod.get("initContainers", []):
            where = f"{workload['metadata']['name']}/{container['name']}"
            if container in pod["containers"]:
                assert "readinessProbe" in container, where
                assert "livenessProbe" in container, where
            effective = {**pod_security, **container.get("securityContext", {})}
            assert effective.get("runAsNonRoot") is True, where
            assert effective.get("runAsUser") == UID, where
            assert effective.get("runAsGroup") == UID, where
            assert effective.get("readOnlyRootFilesystem") is True, where
            assert effective.get("allowPrivilegeEscalation") is False, where
            assert "ALL" in effective.get("capabilities", {}).get("drop", []), where
            assert effective.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            resources = container.get("resources", {})
            requests, limits = resources.get("requests", {}), resources.get("limits", {})
            for name, parse in (("cpu", cpu), ("memory", memory)):
                assert name in requests and name in limits, f"{where}: {name} request and limit"
                assert parse(requests[name]) <= parse(limits[name]), f"{where}: {name}"


@pytest.mark.parametrize("target", TARGETS)
def test_callserver_pod_drains_within_its_grace_period(target: str) -> None:
    objects = render(target)
    workload, template, container = callserver_workload(objects)
    pod = template["spec"]
    if workload["kind"] == "StatefulSet":
        # Media nodes: one pod at a time is replaced (it drains; the others take new rooms).
        assert workload["spec"]["replicas"] >= 2
        assert workload["spec"].get("updateStrategy", {}).get("type") == "RollingUpdate"
        assert "partition" not in workload["spec"]["updateStrategy"].get("rollingUpdate", {})
    else:
        # One process: the old pod drains before the new one starts.
        assert workload["spec"].get("replicas") == 1
        assert workload["spec"].get("strategy", {}).get("type") == "Recreate"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "model load"

    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    pre_stop_s = float(command[1])
    variables = environment(objects, container)
    drain = variables.get("CALLSERVER_DRAIN_TIMEOUT_S", {}).get("value")
    assert drain is not None, "CALLSERVER_DRAIN_TIMEOUT_S set explicitly"
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > float(drain) + pre_stop_s, (grace, drain, pre_stop_s)


@pytest.mark.parametrize("target", TARGETS)
def test_callserver_pod_uses_the_node_network_for_media(target: str) -> None:
    objects = render(target)
    _, template, container = callserver_workload(objects)
    pod = template["spec"]
    assert pod.get("hostNetwork") is True
    assert pod.get("dnsPolicy") == "ClusterFirstWithHostNet"
    # Service links would set CALLSERVER_PORT=tcp://... from the Service named callserver.
    assert pod.get("enableServiceLinks") is False
    ice = environment(objects, container)["CALLSERVER_ICE_HOST_ADDRESSES"]
    assert ice["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    annotations = template["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/scrape") == "true"
    assert annotations.get("prometheus.io/path") == "/metrics"
    ports = {port["containerPort"] for port in container["ports"]}
    assert int(annotations["prometheus.io/port"]) in ports
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert {"/data", "/tmp"} <= mounts


@pytest.mark.parametrize("target", TARGETS)
def test_disruption_budget_selects_callserver_without_blocking_drains(target: str) -> None:
    objects = render(target)
    workload, template, _ = callserver_workload(objects)
    budgets = [
        pdb
        for pdb in of_kind(objects, "PodDisruptionBudget")
        if labels_match(pdb["spec"]["selector"]["matchLabels"], template["metadata"]["labels"])
    ]
    assert len(budgets) == 1, "one PodDisruptionBudget selects the callserver pod"
    spec = budgets[0]["spec"]
    # minAvailable equal to the replicas would refuse every eviction: node drains would hang.
    replicas = workload["spec"]["replicas"]
    assert spec.get("maxUnavailable", 0) >= 1 or spec.get("minAvailable", replicas) < replicas


@pytest.mark.parametrize("target", TARGETS)
def test_services_and_ingresses_reach_pods(target: str) -> None:
    objects = render(target)
    services = {obj["metadata"]["name"]: obj for obj in of_kind(objects, "Service")}
    assert "callserver" in services
    templates = []
    for workload, template in pod_specs(objects):
        templates.append(template)
        if workload["kind"] == "StatefulSet":
            # Each pod carries its own name as a label, which per-pod Services select.
            for ordinal in range(workload["spec"]["replicas"]):
                labels = {
                    **template["metadata"]["labels"],
                    POD_NAME_LABEL: f"{workload['metadata']['name']}-{ordinal}",
                }
                templates.append(
                    {**template, "metadata": {**template["metadata"], "labels": labels}}
                )
    for name, service in services.items():
        selected = [
            template
            for template in templates
            if labels_match(service["spec"].get("selector", {}), template["metadata"]["labels"])
        ]
        assert selected, f"Service {name} selects no pod"
        port_names = {
            port.get("name")
            for template in selected
            for container in template["spec"]["containers"]
            for port in container.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            target_port = port.get("targetPort", port["port"])
            if isinstance(target_port, str):
                assert target_port in port_names, f"Service {name} targetPort {target_port}"
    for ingress in of_kind(objects, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services, backend
                service_ports = services[backend["name"]]["spec"]["ports"]
                wanted = backend["port"]
                assert any(
                    port.get("name") == wanted.get("name") or port["port"] == wanted.get("number")
                    for port in service_ports
                ), backend


@pytest.mark.parametrize("target", TARGETS)
def test_every_callserver_variable_is_a_setting(target: str) -> None:
    known = setting_names()
    assert len(known) > 50
    objects = render(target)
    names = {
        key
        for config in of_kind(objects, "ConfigMap")
        for key in config.get("data", {})
        if key.startswith("CALLSERVER_")
    }
    for _, template in pod_specs(objects):
        for container in template["spec"]["containers"]:
            names |= {name for name in environment(objects, container) if "CALLSERVER_" in name}
    assert names
    unknown = {
        name for name in names if name not in known and name.removesuffix("_FILE") not in known
    }
    assert not unknown, f"not in `callserver settings`: {sorted(unknown)}"


@functools.cache
def secret_template() -> Obj:
    """base/secret.template.yaml: the Secret operators create (no kustomization applies one)."""
    template: Obj = yaml.safe_load(
        (KUBERNETES / "base" / "secret.template.yaml").read_text("utf-8")
    )
    return template


def secret_values(objects: tuple[Obj, ...], name: str) -> dict[str, str]:
    """The Secret called ``name``: rendered, or else the template it is created from."""
    for secret in [*of_kind(objects, "Secret"), secret_template()]:
        if secret["metadata"]["name"] == name:
            values: dict[str, str] = secret.get("stringData", {})
            return values
    raise AssertionError(f"Secret {name} is neither rendered nor base/secret.template.yaml")


@pytest.mark.parametrize("target", TARGETS)
def test_rendered_settings_start_the_server(
    target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The settings classes accept the pod's environment, secret files included."""
    objects = render(target)
    assert not of_kind(objects, "Secret"), "a placeholder Secret would overwrite the real one"
    workload, template, container = callserver_workload(objects)
    volumes = {volume["name"]: volume for volume in template["spec"].get("volumes", [])}
    secret_mounts = {
        mount["mountPath"]: volumes[mount["name"]]["secret"]["secretName"]
        for mount in container["volumeMounts"]
        if "secret" in volumes[mount["name"]]
    }
    for name in [name for name in os.environ if name.startswith("CALLSERVER_")]:
        monkeypatch.delenv(name)
    downward = {"status.hostIP": NODE_IP, "metadata.name": f"{workload['metadata']['name']}-0"}
    seen: dict[str, str] = {}
    for name, entry in environment(objects, container).items():
        if "value" in entry:
            # $(NAME) is the kubelet's reference to a variable defined before this one.
            value = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: seen[m.group(1)], entry["value"]
            )
        else:
            path = entry["valueFrom"]["fieldRef"]["fieldPath"]
            assert path in downward, f"{name}: {path}"
            value = downward[path]
        seen[name] = value
        if name.endswith("_FILE"):
            folder, _, key = value.rpartition("/")
            assert folder in secret_mounts, f"{name}={value} is not in a mounted Secret"
            secret = secret_values(objects, secret_mounts[folder])
            assert key in secret, f"{name}: Secret {secret_mounts[folder]} has no key {key}"
            file = tmp_path / key
            file.write_text(secret[key] + "\n", "utf-8")
            value = str(file)
        monkeypatch.setenv(name, value)
    for _, settings_class in settings_classes():
        settings_class()  # raises on any value the server would refuse at start
    server = Settings()
    assert server.port == 8080 and server.host == "0.0.0.0"
    assert server.ice_host_addresses == [NODE_IP]
    files = {name for name in os.environ if name.endswith("_FILE")}
    assert (server.join_secret is not None) == ("CALLSERVER_JOIN_SECRET_FILE" in files)
    assert (server.turn_credential is not None) == ("CALLSERVER_TURN_CREDENTIAL_FILE" in files)
    if target in ("overlays/production", CLUSTER):
        assert server.join_secret is not None and server.turn_credential is not None
        assert server.turn_urls and server.public_url and server.trust_forwarded_for
    cluster = ClusterSettings()
    assert cluster.enabled == (target == CLUSTER)
    if target == CLUSTER:
        assert cluster.remote_engines
        assert cluster.node_url == f"https://{downward['metadata.name']}.calls.example.org"


@pytest.mark.parametrize("target", TARGETS)
def test_data_volume_and_image_per_overlay(target: str) -> None:
    objects = render(target)
    _, template, container = callserver_workload(objects)
    volumes = {volume["name"]: volume for volume in template["spec"]["volumes"]}
    mounted = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    data = mounted["/data"]
    claims = {obj["metadata"]["name"] for obj in of_kind(objects, "PersistentVolumeClaim")}
    if target == CLUSTER:
        # A media node loads no model (the workers do): nothing on /data is worth a volume.
        assert "emptyDir" in volumes[data]
        assert {claim for claim in claims if "redis" in claim}, "the cluster's Redis persists"
        assert container["image"] != "callserver:latest", "pins a released tag"
    elif target == "overlays/production":
        # Models and cache survive restarts; the claim is part of the overlay.
        assert volumes[data]["persistentVolumeClaim"]["claimName"] in claims
        assert "emptyDir" not in volumes[data]
        assert container["image"] != "callserver:latest", "production pins a released tag"
    else:
        assert "emptyDir" in volumes[data] and not claims
    assert "emptyDir" in volumes[mounted["/tmp"]]
    # No registry is assumed: a side-loaded image must not be pulled again.
    assert container.get("imagePullPolicy") == "IfNotPresent"


# ---- the distributed mode (overlays/cluster) ---------------------------------------------------


def workload_named(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    found = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def worker_container(objects: tuple[Obj, ...]) -> tuple[Obj, Obj]:
    found = [
        (workload, container)
        for workload, template in pod_specs(objects)
        for container in template["spec"]["containers"]
        if container.get("args") == ["worker"]
    ]
    assert len(found) == 1, f"expected one worker container, found {len(found)}"
    return found[0]


def value(objects: tuple[Obj, ...], container: Obj, name: str) -> str | None:
    entry = environment(objects, container).get(name)
    return None if entry is None else entry.get("value")


def test_cluster_every_media_pod_has_its_own_url_service_and_host() -> None:
    objects = render(CLUSTER)
    workload, template, container = callserver_workload(objects)
    assert workload["kind"] == "StatefulSet"
    env = environment(objects, container)
    assert env["CALLSERVER_CLUSTER_ENABLED"]["value"] == "true"
    assert env["CALLSERVER_CLUSTER_REMOTE_ENGINES"]["value"] == "true"
    # The URL is built from the pod's own name (the downward API), defined before it.
    names = list(env)
    pod_name = [
        key
        for key, entry in env.items()
        if entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
    ]
    assert len(pod_name) == 1, pod_name
    url = env["CALLSERVER_CLUSTER_NODE_URL"]["value"]
    assert f"$({pod_name[0]})" in url
    assert names.index(pod_name[0]) < names.index("CALLSERVER_CLUSTER_NODE_URL")
    services = {obj["metadata"]["name"]: obj for obj in of_kind(objects, "Service")}
    hosts = {
        rule["host"]: rule["http"]["paths"][0]["backend"]["service"]["name"]
        for ingress in of_kind(objects, "Ingress")
        for rule in ingress["spec"]["rules"]
    }
    urls = set()
    for ordinal in range(workload["spec"]["replicas"]):
        pod = f"{workload['metadata']['name']}-{ordinal}"
        pod_url = url.replace(f"$({pod_name[0]})", pod)
        urls.add(pod_url)
        host = re.sub(r"^https?://", "", pod_url).split("/")[0]
        assert host in hosts, f"{pod}: no Ingress host {host}"
        service = services[hosts[host]]
        assert service["spec"]["selector"].get(POD_NAME_LABEL) == pod, service["metadata"]
        # The pod keeps its calls while it drains (not ready): its own host must still reach it.
        assert service["spec"].get("publishNotReadyAddresses") is True
    assert len(urls) == workload["spec"]["replicas"] >= 2
    # And one machine per pod: host networking (port 8080) on machines labelled as media nodes.
    assert template["spec"]["nodeSelector"] == {"callserver.media": "true"}
    anti = template["spec"]["affinity"]["podAntiAffinity"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == (
        "kubernetes.io/hostname"
    )


def test_cluster_nodes_and_workers_share_redis_and_prefix() -> None:
    objects = render(CLUSTER)
    _, _, node = callserver_workload(objects)
    worker, container = worker_container(objects)
    for name in ("CALLSERVER_REDIS_URL", "CALLSERVER_CLUSTER_KEY_PREFIX"):
        assert value(objects, node, name), name
        assert value(objects, node, name) == value(objects, container, name), name
    assert value(objects, node, "CALLSERVER_CLUSTER_KEY_PREFIX") == "callserver:"
    assert worker["kind"] == "Deployment"
    # Rolling: a new worker is ready (models loaded, capabilities in Redis) before one stops.
    rolling = worker["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0 and rolling["maxSurge"] >= 1


def test_cluster_workers_take_no_requests_and_are_probed_through_their_health_file() -> None:
    objects = render(CLUSTER)
    worker, container = worker_container(objects)
    # Its metrics are its one port (scraped pod by pod); nothing is routed to it.
    assert [port["name"] for port in container.get("ports", [])] == ["metrics"]
    labels = worker["spec"]["template"]["metadata"]["labels"]
    for service in of_kind(objects, "Service"):
        assert not labels_match(service["spec"].get("selector", {}), labels), service["metadata"]
    health = value(objects, container, "CALLSERVER_WORKER_HEALTH_PATH")
    assert health and health.startswith("/tmp/")
    assert "/tmp" in {mount["mountPath"] for mount in container["volumeMounts"]}
    probe = ["callserver", "healthcheck", "--worker"]
    assert container["livenessProbe"]["exec"]["command"] == probe
    assert container["startupProbe"]["exec"]["command"] == probe
    assert container["readinessProbe"]["exec"]["command"] == [*probe, "--ready"]
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "model load"
    slots = value(objects, container, "CALLSERVER_WORKER_SLOTS")
    assert slots and value(objects, container, "CALLSERVER_STT_WORKERS") == slots


def test_cluster_workers_serve_metrics_on_their_own_pod_address() -> None:
    objects = render(CLUSTER)
    worker, container = worker_container(objects)
    template = worker["spec"]["template"]
    # A network namespace per pod: every replica binds the same port without colliding
    # (host networking would make all but one worker per machine fail at start).
    assert not template["spec"].get("hostNetwork"), "workers must keep their own namespace"
    (port,) = [p for p in container["ports"] if p["name"] == "metrics"]
    assert value(objects, container, "CALLSERVER_WORKER_METRICS_PORT") == str(port["containerPort"])
    # The pod's address, not loopback: Prometheus scrapes from another pod.
    assert value(objects, container, "CALLSERVER_WORKER_METRICS_HOST") == "0.0.0.0"
    annotations = template["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/scrape") == "true"
    assert annotations.get("prometheus.io/path") == "/metrics"
    assert annotations.get("prometheus.io/port") == str(port["containerPort"])


def test_cluster_redis_persists_and_evicts_no_room() -> None:
    objects = render(CLUSTER)
    redis = workload_named(objects, "Deployment", "redis")
    pod = redis["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    options = dict(zip(args[1::2], args[2::2], strict=False))
    assert options.get("--appendonly") == "yes", args
    assert options.get("--maxmemory-policy") in SAFE_EVICTION, args
    folder = options.get("--dir")
    assert folder, "no --dir: the append-only file goes to the working folder"
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    claim = volumes[mounts[folder]].get("persistentVolumeClaim", {}).get("claimName")
    assert claim in {obj["metadata"]["name"] for obj in of_kind(objects, "PersistentVolumeClaim")}
    assert "emptyDir" not in volumes[mounts[folder]]
    assert redis["spec"]["strategy"]["type"] == "Recreate", "one pod on a ReadWriteOnce claim"
    # The base stays a cache: the cluster's settings are the overlay's alone.
    base = workload_named(render("base"), "Deployment", "redis")
    assert "allkeys-lru" in base["spec"]["template"]["spec"]["containers"][0]["args"]


def test_cluster_gpu_patch_gives_each_worker_a_gpu() -> None:
    # The patch is commented out in the kustomization: render the overlay with it here.
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(KUBERNETES / CLUSTER / "worker-gpu.yaml", folder)
        Path(folder, "kustomization.yaml").write_text(
            f"bases:\n  - {os.path.relpath(KUBERNETES / CLUSTER, folder)}\n"
            "patchesStrategicMerge:\n  - worker-gpu.yaml\n"
        )
        objects = render(folder)
    _, container = worker_container(objects)
    limits = container["resources"]["limits"]
    assert str(limits.get("nvidia.com/gpu")) == "1", limits
    # The patch adds the GPU; the CPU and memory of the worker stay.
    assert "cpu" in limits and "memory" in limits
    assert "--worker" in container["livenessProbe"]["exec"]["command"]
