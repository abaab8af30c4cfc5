"""The Kubernetes manifests parse, keep the rules of deploy/k8s/check.py, and cover every
service of ``services.cli.ORDER``: Deployment, Service, probes, KEDA queues, replica
counts in both overlays, and an Ingress route for every HTTP path each service serves.

The expectations come from the code itself (Nameko entrypoints, ``shared.web``'s ports),
not from a second list, so a new service, route or queue that the manifests miss fails
here.
"""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.messaging import Consumer
from nameko.rpc import Rpc
from nameko.web.handlers import HttpRequestHandler

from services.cli import ORDER, PRESENT, service_classes
from shared.web import DEFAULT_PORTS
from tests.conftest import ROOT

K8S = ROOT / "deploy/k8s"
# shared/web.py's table predates the portal, which keeps its own default (services/portal/app.py).
PORTS = {**DEFAULT_PORTS, "portal": 8005}
# Served by every service on its own port; the Ingress sends the public ones to tickets.
SHARED_PATHS = {"/healthz", "/readyz", "/api/v1/openapi.json"}


def test_kubernetes_manifests_pass_the_offline_check():
    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy/k8s/check.py")], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def documents(kustomization_dir: Path) -> list[dict[str, Any]]:
    """Every document of the files a kustomization lists as resources (not recursive)."""
    kustomization = yaml.safe_load((kustomization_dir / "kustomization.yaml").read_text())
    docs = []
    for entry in kustomization.get("resources") or []:
        path = kustomization_dir / entry
        if path.is_file():
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


BASE = documents(K8S / "base")
KEDA = documents(K8S / "components/keda")
INGRESS = by_kind(documents(K8S / "overlays/production"), "Ingress")["guichet"]


def entrypoints(name: str) -> list[Any]:
    cls = service_classes()[name]
    return [
        entrypoint
        for attribute in dir(cls)
        for entrypoint in getattr(getattr(cls, attribute, None), ENTRYPOINT_EXTENSIONS_ATTR, None) or ()
    ]


def consumed_queues(name: str) -> set[str]:
    """The queues a service's consumers compete on: ``rpc-<name>`` for its RPC methods,
    and the named queue of each ``consume`` entrypoint. Nameko's event_handler queues
    (the rare CatalogueChanged broadcast) are not scaled on."""
    queues = set()
    for entrypoint in entrypoints(name):
        if isinstance(entrypoint, Rpc):
            queues.add(f"rpc-{name}")
        elif isinstance(entrypoint, Consumer) and getattr(entrypoint, "queue", None) is not None:
            queues.add(entrypoint.queue.name)
    return queues


def http_paths(name: str) -> set[str]:
    """The paths a service serves, each ``<converter:param>`` replaced by a sample value."""
    return {
        re.sub(r"<[^>]+>", "x", entrypoint.url)
        for entrypoint in entrypoints(name)
        if isinstance(entrypoint, HttpRequestHandler)
    }


def ingress_backend(path: str) -> str | None:
    """The Service the production Ingress sends a request path to (Kubernetes rules:
    Exact matches whole, Prefix by whole path segments; the longest match wins)."""
    best: tuple[int, str] | None = None
    for rule in INGRESS["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            prefix = entry["path"]
            if entry["pathType"] == "Exact":
                matched = path == prefix
            else:
                matched = path == prefix or path.startswith(prefix.rstrip("/") + "/")
            if matched and (best is None or len(prefix) > best[0]):
                best = (len(prefix), entry["backend"]["service"]["name"])
    return best[1] if best else None


def test_every_service_of_the_suite_has_a_manifest():
    deployments = by_kind(BASE, "Deployment")
    assert set(ORDER) <= set(deployments), f"no Deployment for {set(ORDER) - set(deployments)}"


@pytest.mark.parametrize("name", ORDER)
def test_each_service_runs_with_its_port_probes_and_service(name):
    deployment = by_kind(BASE, "Deployment")[name]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["guichet", "run", name]
    [port] = container["ports"]
    assert port == {"name": "http", "containerPort": PORTS[name]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    labels = {"app.kubernetes.io/name": name}
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    service = by_kind(BASE, "Service")[name]
    assert service["spec"]["selector"] == labels
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert by_kind(BASE, "PodDisruptionBudget")[name]["spec"]["selector"]["matchLabels"] == labels


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_each_overlay_sets_every_service_replica_count(overlay):
    kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    counts = {r["name"]: r["count"] for r in kustomization["replicas"]}
    assert set(counts) == set(ORDER)


def test_production_replicas_equal_the_keda_minimums():
    kustomization = yaml.safe_load((K8S / "overlays/production/kustomization.yaml").read_text())
    counts = {r["name"]: r["count"] for r in kustomization["replicas"]}
    minimums = {n: s["spec"]["minReplicaCount"] for n, s in by_kind(KEDA, "ScaledObject").items()}
    assert counts == minimums


def test_attachments_keeps_one_pod_on_its_readwriteonce_volume():
    deployment = by_kind(BASE, "Deployment")["attachments"]
    claim = by_kind(BASE, "PersistentVolumeClaim")["attachments"]
    if claim["spec"]["accessModes"] == ["ReadWriteOnce"]:
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        assert by_kind(KEDA, "ScaledObject")["attachments"]["spec"]["maxReplicaCount"] == 1
    config = by_kind(BASE, "ConfigMap")["guichet-config"]["data"]
    [mount] = [
        m for m in deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        if m["name"] == "attachments"
    ]
    assert mount["mountPath"] == config["ATTACHMENTS_DIR"]
    assert int(config["MAX_ATTACHMENT_BYTES"]) > 0


@pytest.mark.parametrize("name", [n for n in ORDER if n in PRESENT])
def test_keda_scales_each_service_on_the_queues_it_consumes(name):
    scaled = by_kind(KEDA, "ScaledObject")[name]
    assert scaled["spec"]["scaleTargetRef"]["name"] == name
    queues = {t["metadata"]["queueName"] for t in scaled["spec"]["triggers"] if t["type"] == "rabbitmq"}
    assert queues == consumed_queues(name)
    if not queues:  # a service that consumes no queue (the portal) scales on its CPU
        assert [t["type"] for t in scaled["spec"]["triggers"]] == ["cpu"]


@pytest.mark.parametrize("name", [n for n in ORDER if n in PRESENT])
def test_the_ingress_sends_every_http_path_to_the_service_serving_it(name):
    paths = http_paths(name) - SHARED_PATHS  # empty for a service without public routes
    wrong = {path: ingress_backend(path) for path in paths if ingress_backend(path) != name}
    assert not wrong, f"Ingress routes of {name}'s paths go elsewhere: {wrong}"


def test_the_shared_paths_go_to_tickets():
    assert {path: ingress_backend(path) for path in SHARED_PATHS} == dict.fromkeys(SHARED_PATHS, "tickets")
