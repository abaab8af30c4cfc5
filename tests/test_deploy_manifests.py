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


def test_the_public_openapi_document_is_tickets_and_probes_and_metrics_are_not_published():
    assert ingress_backend("/api/v1/openapi.json") == "tickets"
    unpublished = by_kind(documents(K8S / "overlays/production"), "Service")["unpublished"]
    assert "selector" not in unpublished["spec"]  # no endpoints: the controller answers 503
    for path in ("/healthz", "/readyz", "/metrics"):
        assert ingress_backend(path) == "unpublished", path


def rendered(overlay: str) -> list[dict[str, Any]]:
    """The overlay as kustomize renders it (kubectl's built-in kustomize)."""
    from deploy.k8s.validate import render

    return render(K8S / "overlays" / overlay)


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_every_container_takes_the_image_of_the_images_entry(overlay):
    images = {c["image"] for d in rendered(overlay) if d["kind"] in ("Deployment", "Job")
              for c in d["spec"]["template"]["spec"].get("initContainers", []) + d["spec"]["template"]["spec"]["containers"]}
    [image] = images
    assert image.startswith("ghcr.io/univ-example/guichet")
    if overlay == "production":
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert "@sha256:" in image or (tag and tag != "latest"), image


def test_the_namespace_enforces_the_restricted_pod_security_profile():
    [namespace] = [d for d in rendered("production") if d["kind"] == "Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("name", ORDER)
def test_each_service_spreads_its_replicas_and_pauses_before_stopping(name):
    spec = by_kind(BASE, "Deployment")[name]["spec"]["template"]["spec"]
    keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]
            if c["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    pause = spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < pause < spec["terminationGracePeriodSeconds"]


def test_traffic_is_denied_by_default_then_allowed_per_need():
    policies = by_kind(BASE, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    production = {d["metadata"]["name"] for d in rendered("production") if d["kind"] == "NetworkPolicy"}
    assert {"guichet-db", "guichet-rabbitmq", "guichet-db-pooler-rw", "allow-dns"} <= production


def test_tickets_scales_on_its_cpu_too():
    triggers = by_kind(KEDA, "ScaledObject")["tickets"]["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"rabbitmq", "cpu"}


def test_the_event_store_is_backed_up_with_its_wal():
    cnpg = documents(K8S / "components/cloudnative-pg")
    cluster = by_kind(cnpg, "Cluster")["guichet-db"]["spec"]
    assert cluster["backup"]["barmanObjectStore"]["destinationPath"].startswith("s3://")
    assert cluster["backup"]["barmanObjectStore"]["wal"]
    [scheduled] = by_kind(cnpg, "ScheduledBackup").values()
    assert scheduled["spec"]["cluster"]["name"] == "guichet-db"
    readme = (K8S / "README.md").read_text()
    assert "guichet rebuild-projections" in readme and "targetTime" in readme


def test_monitoring_alerts_on_what_the_services_export():
    import json

    monitoring = documents(K8S / "components/monitoring")
    [rule] = by_kind(monitoring, "PrometheusRule").values()
    exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
    for metric in ("guichet_outbox_lag_seconds", "guichet_email_oldest_age_seconds", "guichet_dead_letters",
                   "guichet_http_requests_total"):
        assert metric in exprs
    dashboard = json.loads((K8S / "components/monitoring/dashboard.json").read_text())
    assert dashboard["panels"]
    source = (ROOT / "shared/metrics.py").read_text()
    for metric in re.findall(r"guichet_[a-z_]+", exprs + json.dumps(dashboard)):
        base = re.sub(r"_(total|bucket|count|sum)$", "", metric)
        assert f'"{base}"' in source, f"{metric} is not exported by shared/metrics.py"


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_both_overlays_validate_against_the_kubernetes_and_crd_schemas(overlay):
    from deploy.k8s.validate import validate_overlay

    problems, counted = validate_overlay(K8S / "overlays" / overlay)
    assert not problems, "\n".join(problems)
    assert counted > 20


def test_a_typo_in_a_scaledobject_field_fails_validation(tmp_path):
    import shutil

    from deploy.k8s.validate import validate_overlay

    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("schemas"))
    scaled = copy / "components/keda/tickets-scaledobject.yaml"
    scaled.write_text(scaled.read_text().replace("minReplicaCount:", "minReplicaCont:"))
    problems, _ = validate_overlay(copy / "overlays/production", schemas=K8S / "schemas")
    assert any("ScaledObject/tickets" in p and "minReplicaCont" in p for p in problems), problems


def test_a_wrong_type_in_a_kubernetes_field_fails_validation(tmp_path):
    import shutil

    from deploy.k8s.validate import validate_overlay

    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("schemas"))
    tickets = copy / "base/tickets.yaml"
    tickets.write_text(tickets.read_text().replace("containerPort: 8000", "containerPort: eight-thousand"))
    problems, _ = validate_overlay(copy / "overlays/dev", schemas=K8S / "schemas")
    assert any("Deployment/tickets" in p for p in problems), problems
