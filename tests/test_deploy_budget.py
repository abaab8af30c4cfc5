"""The PostgreSQL connection budget of the Kubernetes manifests (issue #14, finding 7):
at every service's KEDA maximum, the pods' pools and their own connections stay under
the pooler's server connections, which stay under the cluster's ``max_connections``.

Before, pool sizes were hard-coded (tickets 20, the others 10): at the maxima, up to
370 connections against PostgreSQL's default of 100.
"""

from __future__ import annotations

import yaml

from services.cli import ORDER, SCHEMAS
from tests.conftest import ROOT

K8S = ROOT / "deploy/k8s"
# Connections a pod opens besides its pool: the outbox relay (tickets and routing hold
# one each, active or standing by), the notifier's delivery loops (two per SMTP
# connection), and one more for the start-up catalogue request or announcement.
EXTRA_PER_POD = {"tickets": 2, "routing": 2, "attachments": 0, "escalation": 1, "reporting": 1}
# The services with a database pool (the portal has none: it calls the others over HTTP).
POOLED = [name for name in ORDER if name in SCHEMAS]
RESERVED = 10  # superuser and operator sessions, the migration Job


def load(path: str) -> dict:
    return yaml.safe_load((K8S / path).read_text())


def budget() -> dict[str, int]:
    config = load("base/config.yaml")["data"]
    per_service = {}
    for name in POOLED:
        maximum = load(f"components/keda/{name}-scaledobject.yaml")["spec"]["maxReplicaCount"]
        pool = int(config[f"{name.upper()}_DB_POOL_SIZE"])
        extra = 2 * int(config["SMTP_CONNECTIONS"]) + 1 if name == "notifier" else EXTRA_PER_POD[name]
        per_service[name] = maximum * (pool + extra)
    return per_service


def test_every_service_has_its_pool_size_in_the_config():
    config = load("base/config.yaml")["data"]
    assert {f"{name.upper()}_DB_POOL_SIZE" for name in POOLED} <= set(config)


def test_the_pools_at_keda_maxima_fit_the_pooler_and_the_database():
    total = sum(budget().values())
    pooler = load("overlays/production/pooler.yaml")
    cluster = load("components/cloudnative-pg/cluster.yaml")
    server_connections = int(pooler["spec"]["pgbouncer"]["parameters"]["default_pool_size"])
    max_connections = int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])
    assert total <= server_connections <= max_connections - RESERVED, (budget(), total)
    assert pooler["spec"]["pgbouncer"]["poolMode"] == "session"  # the relay's advisory lock, LISTEN


def test_the_readme_states_the_budget():
    readme = (K8S / "README.md").read_text()
    assert f"**{sum(budget().values())}**" in readme
