"""Slow clients and busy workers cost the other clients nothing (issue #14, finding 2).

Ten clients send a POST's headers with ``Content-Length: 1000`` and then nothing. Before,
each held one of the service's ten Nameko workers until it went away, and the tickets,
attachments and notifier services stopped answering entirely, ``/healthz`` included.
Now bodies are received before a worker is given (within ``HTTP_BODY_TIMEOUT``, a few
at once per client and in all), liveness needs no worker, and HTTP requests have
workers of their own.
"""

from __future__ import annotations

import http.client
import json
import time

import eventlet
import pytest
from nameko import config

from services.attachments.service import AttachmentsService
from services.notifier.service import NotifierService
from shared.nameko_deps import WorkerPools, worker_counts
from shared.web import BodyGuard
from tests.e2e.conftest import ALICE, SECRET, Api
from tests.fault_helpers import SlowClient
from tests.helpers import free_port, wait_until

SLOW_CLIENTS = 10
BODY_TIMEOUT = 2.0

# service -> (a POST path that takes a JSON body, a GET path answered from the database)
PATHS = {
    "tickets": ("/api/v1/tickets", "/api/v1/tickets"),
    "notifier": ("/api/v1/feed/read-all", "/api/v1/feed"),
    "attachments": ("/api/v1/attachments", "/api/v1/openapi.json"),
}


@pytest.fixture
def service(request, api, container_factory, broker_uri, database_url, tmp_path, monkeypatch):
    """The service named by the test's parameter, on a free port (tickets is ``api``)."""
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    name = request.param
    if name == "tickets":
        return name, api
    port = free_port()
    addresses = {**(config.get("HTTP_ADDRESSES") or {}), name: f"127.0.0.1:{port}"}
    if name == "notifier":
        container_factory(NotifierService, {"AMQP_URI": broker_uri, "DATABASE_URL": database_url, "SMTP_URL": "",
                                            "HTTP_ADDRESSES": addresses}).start()
    else:
        container_factory(AttachmentsService, {"HTTP_ADDRESSES": addresses, "ATTACHMENTS_DIR": str(tmp_path)}).start()
    return name, Api(f"http://127.0.0.1:{port}")


@pytest.fixture(autouse=True)
def short_body_timeout(monkeypatch):
    monkeypatch.setenv("HTTP_BODY_TIMEOUT", str(BODY_TIMEOUT))


def post_from(address: str, base_url: str, path: str, token: str, body: dict) -> int:
    """A POST from another local source address (another client, as the server sees it)."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(address, 0))
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize("service", ["tickets", "notifier", "attachments"], indirect=True)
def test_ten_slow_bodies_do_not_freeze_the_service(service):
    name, api = service
    post_path, get_path = PATHS[name]
    token = api.token(ALICE)
    slow = [SlowClient(api.base_url, post_path, token) for _ in range(SLOW_CLIENTS)]
    try:
        eventlet.sleep(0.3)  # every slow request is in, waiting for its body
        started = time.monotonic()
        assert api.get("/healthz").status_code == 200
        assert api.get("/readyz").status_code == 200
        assert api.get(get_path, ALICE).status_code == 200
        if name == "tickets":
            # Another client may still send bodies: the bound is per client address.
            assert post_from("127.0.0.2", api.base_url, post_path, token, {
                "category_id": "ent-connexion", "subject": "Pendant les lents", "description": "Ça répond."}) == 201
        assert time.monotonic() - started < 1.5  # answered at once, not after the slow clients gave up
        # The slow clients get an answer too: too many at once from one address (429),
        # or a body that did not come in time (408), and their connections are closed.
        answers = [client.answer(timeout=BODY_TIMEOUT + 5) for client in slow]
    finally:
        for client in slow:
            client.close()
    statuses = sorted(int(a.split(b" ")[1]) for a in answers if a)
    assert len(statuses) == SLOW_CLIENTS, answers
    assert set(statuses) <= {408, 429} and 408 in statuses and 429 in statuses, statuses
    assert api.get(get_path, ALICE).status_code == 200


def test_the_bound_on_bodies_in_all_and_per_client():
    guard = BodyGuard(timeout=1, per_client=2, total=3)
    guard._admit("a")
    guard._admit("a")
    with pytest.raises(Exception) as per_client:
        guard._admit("a")
    assert per_client.value.status == 429
    guard._admit("b")
    with pytest.raises(Exception) as in_all:
        guard._admit("c")
    assert in_all.value.status == 503 and in_all.value.headers["Retry-After"]
    guard._release("a")
    guard._admit("c")


def test_http_requests_and_rpc_have_workers_of_their_own(monkeypatch):
    monkeypatch.setenv("TICKETS_MAX_WORKERS", "6")
    monkeypatch.setenv("TICKETS_HTTP_WORKERS", "3")
    assert worker_counts("tickets", 10) == (6, 3)
    assert worker_counts("routing", 10) == (10, 10)
    monkeypatch.setenv("ROUTING_MAX_WORKERS", "zero")
    with pytest.raises(ValueError, match="ROUTING_MAX_WORKERS"):
        worker_counts("routing", 10)
    pools = WorkerPools(2, 3)
    assert (pools.other.size, pools.http.size) == (2, 3)


def test_busy_http_workers_leave_liveness_and_rpc_answering(api, monkeypatch):
    """Every HTTP worker busy (slow database reads): ``/healthz`` still answers at once,
    and so does the RPC, which has workers of its own."""
    from nameko.standalone.rpc import ServiceRpcClient

    from tests.helpers import person

    with ServiceRpcClient("tickets") as rpc:
        ticket = rpc.submit(person("alice"), "ent-connexion", "Lent", "Très lent.")
    slow_reads = [eventlet.spawn(api.get, "/api/v1/tickets?q=lent", ALICE) for _ in range(30)]
    started = time.monotonic()
    assert api.get("/healthz").status_code == 200
    with ServiceRpcClient("tickets") as rpc:
        assert rpc.get(person("alice"), ticket["id"])["id"] == ticket["id"]
    assert time.monotonic() - started < 5
    statuses = [gt.wait().status_code for gt in slow_reads]
    assert set(statuses) <= {200, 503}
    wait_until(lambda: api.get("/api/v1/tickets", ALICE).status_code == 200, what="the API")
