"""A dependency down fails fast and costs the rest nothing (issue #14, finding 4).

Before, with the attachments service down, each ticket creation naming an upload waited
15 s for the RPC, ten of them took all ten workers, and the liveness probe (which
needed a worker) timed out: Kubernetes would have killed a healthy tickets pod. Now a
call to a service that is down times out quickly (``RPC_TIMEOUT``) and opens a circuit
for a few seconds, so the next creations get 503 with ``Retry-After`` at once, while
``/healthz`` and everything that does not need attachments go on answering.
"""

from __future__ import annotations

import time

import eventlet
import pytest
from nameko import config

from services.attachments.service import AttachmentsService
from shared.failures import Circuit, CircuitOpen, _circuits
from tests.e2e.conftest import ALICE
from tests.helpers import free_port

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
CREATIONS = 10


@pytest.fixture(autouse=True)
def short_rpc_timeout(monkeypatch):
    monkeypatch.setenv("RPC_TIMEOUT", "2")
    monkeypatch.setenv("CIRCUIT_OPEN_SECONDS", "5")
    _circuits.clear()  # built again from this environment
    yield
    _circuits.clear()


@pytest.fixture
def attachments(api, container_factory, tmp_path):
    port = free_port()
    addresses = {**(config.get("HTTP_ADDRESSES") or {}), "attachments": f"127.0.0.1:{port}"}
    container = container_factory(AttachmentsService, {"HTTP_ADDRESSES": addresses, "ATTACHMENTS_DIR": str(tmp_path)})
    container.start()
    return f"http://127.0.0.1:{port}", container


def upload(api, base_url: str) -> str:
    response = api.session.post(f"{base_url}/api/v1/attachments", headers={"Authorization": f"Bearer {api.token(ALICE)}"},
                                files={"file": ("capture.png", PNG, "image/png")}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def create(api, attachment_id: str):
    return api.post("/api/v1/tickets", ALICE, json={
        "category_id": "ent-connexion", "subject": "Avec une capture", "description": "Voir la capture.",
        "attachment_ids": [attachment_id]})


def test_attachments_stopped_creations_get_503_fast_and_healthz_answers(api, attachments):
    base_url, container = attachments
    uploads = [upload(api, base_url) for _ in range(CREATIONS)]
    assert create(api, uploads[0]).status_code == 201  # the path works while attachments runs
    container.stop()  # its RPC queue stays: calls would wait for an answer that never comes

    started = time.monotonic()
    creations = [eventlet.spawn(lambda u=u: (create(api, u), time.monotonic() - started)) for u in uploads[1:]]
    eventlet.sleep(0.2)
    probe_started = time.monotonic()
    assert api.get("/healthz").status_code == 200
    assert time.monotonic() - probe_started < 1.0
    assert api.get("/api/v1/tickets", ALICE).status_code == 200  # what needs no attachments still works
    results = [gt.wait() for gt in creations]
    for response, _ in results:
        assert response.status_code == 503, response.text
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert int(response.headers["Retry-After"]) >= 1
        assert "attachments" in response.json()["detail"]
    assert max(elapsed for _, elapsed in results) < 5  # one RPC timeout at most, not 15 s each

    # While the circuit is open, a creation is refused in milliseconds.
    quick = time.monotonic()
    assert create(api, uploads[1]).status_code == 503
    assert time.monotonic() - quick < 0.5


def test_the_circuit_opens_on_transient_failures_and_closes_when_the_dependency_answers():
    now = [0.0]
    breaker = Circuit("attachments", timeout=1, open_seconds=5, clock=lambda: now[0])

    def down():
        raise ConnectionRefusedError("refused")

    with pytest.raises(CircuitOpen):
        breaker.call(down)
    with pytest.raises(CircuitOpen, match="circuit open"):
        breaker.call(lambda: "never called")
    now[0] = 6.0  # half-open: one call tries again
    assert breaker.call(lambda: "up") == "up"
    assert not breaker.is_open

    def refused():
        raise ValueError("a refusal: the dependency answered")

    with pytest.raises(ValueError):
        breaker.call(refused)
    assert not breaker.is_open  # a permanent error leaves the circuit closed
