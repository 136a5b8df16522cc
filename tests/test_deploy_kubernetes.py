"""The Kubernetes manifests (deploy/kubernetes), as the real `kubectl kustomize` renders them.

Each kustomization (the base and every overlay) is rendered once; the tests read the objects
the cluster would get: probes, security context, resources, the drain timing, the
PodDisruptionBudget and Service selectors, and the CALLSERVER_* settings they set.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from callserver.cli import main, settings_classes
from callserver.settings import Settings

KUBERNETES = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
TARGETS = ["base", "overlays/dev", "overlays/production"]
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
    result = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES / target)],
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
    # One replica until the distributed mode; the old pod drains before the new one starts.
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
    templates = [template for _, template in pod_specs(objects)]
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
    _, template, container = callserver_workload(objects)
    volumes = {volume["name"]: volume for volume in template["spec"].get("volumes", [])}
    secret_mounts = {
        mount["mountPath"]: volumes[mount["name"]]["secret"]["secretName"]
        for mount in container["volumeMounts"]
        if "secret" in volumes[mount["name"]]
    }
    for name in [name for name in os.environ if name.startswith("CALLSERVER_")]:
        monkeypatch.delenv(name)
    for name, entry in environment(objects, container).items():
        if "value" in entry:
            value = entry["value"]
        else:
            assert entry["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP", name
            value = NODE_IP
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
    if target == "overlays/production":
        assert server.join_secret is not None and server.turn_credential is not None
        assert server.turn_urls and server.public_url and server.trust_forwarded_for


@pytest.mark.parametrize("target", TARGETS)
def test_data_volume_and_image_per_overlay(target: str) -> None:
    objects = render(target)
    _, template, container = callserver_workload(objects)
    volumes = {volume["name"]: volume for volume in template["spec"]["volumes"]}
    mounted = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    data = mounted["/data"]
    claims = {obj["metadata"]["name"] for obj in of_kind(objects, "PersistentVolumeClaim")}
    if target == "overlays/production":
        # Models and cache survive restarts; the claim is part of the overlay.
        assert volumes[data]["persistentVolumeClaim"]["claimName"] in claims
        assert "emptyDir" not in volumes[data]
        assert container["image"] != "callserver:latest", "production pins a released tag"
    else:
        assert "emptyDir" in volumes[data] and not claims
    assert "emptyDir" in volumes[mounted["/tmp"]]
    # No registry is assumed: a side-loaded image must not be pulled again.
    assert container.get("imagePullPolicy") == "IfNotPresent"
