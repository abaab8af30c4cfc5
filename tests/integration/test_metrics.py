"""``/metrics`` for real: the services on free ports over the test database and a
throwaway vhost, scraped over HTTP and parsed with prometheus-client's own parser."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from uuid import uuid4

import eventlet
import pytest
import requests
from eventlet.event import Event
from nameko.standalone.rpc import ServiceRpcClient
from prometheus_client.parser import text_string_to_metric_families

from services.notifier import storage as notifier_storage
from services.notifier.service import NotifierService
from services.tickets.service import TicketsService
from shared import db
from shared.nameko_deps import OutboxRelayRunner
from tests.e2e.conftest import ALICE, SECRET, Api
from tests.helpers import SmtpServer, free_port, person, wait_until
from tests.integration.test_notifier_delivery import NOTIFIER_TABLES, notifier_config


def scrape(base_url: str) -> dict[str, float]:
    """Every sample of ``/metrics`` as ``name{label=value,...}`` -> value."""
    response = requests.get(base_url + "/metrics", timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


@pytest.fixture
def tickets(container_factory, broker_uri, database_url, tickets_db, monkeypatch):
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    monkeypatch.setenv("TICKETS_HTTP_WORKERS", "2")
    monkeypatch.setenv("TICKETS_MAX_WORKERS", "2")
    port = free_port()
    container = container_factory(TicketsService, {"AMQP_URI": broker_uri, "DATABASE_URL": database_url,
                                                   "HTTP_ADDRESSES": {"tickets": f"127.0.0.1:{port}"}})
    container.start()
    return container, Api(f"http://127.0.0.1:{port}")


def test_requests_are_counted_by_route_and_status(tickets):
    _, api = tickets
    assert api.get("/api/v1/tickets", ALICE).status_code == 200
    assert api.get("/api/v1/tickets/not-a-uuid", ALICE).status_code in (404, 422)
    assert api.get("/nowhere").status_code == 404
    samples = scrape(api.base_url)
    assert samples["guichet_http_requests_total{method=GET,route=/api/v1/tickets,service=tickets,status=200}"] >= 1
    assert samples["guichet_http_requests_total{method=GET,route=unmatched,service=tickets,status=404}"] >= 1
    assert samples["guichet_http_request_duration_seconds_count{method=GET,route=/api/v1/tickets,service=tickets}"] >= 1
    # no path of its own becomes a label (the ticket id is in the rule, not the route)
    assert not any("not-a-uuid" in key for key in samples)


def test_metrics_answer_while_every_worker_is_busy(tickets):
    container, api = tickets
    release = Event()
    pools = container._worker_pool
    blockers = [pools.http.spawn(release.wait) for _ in range(pools.http.size)]
    blockers += [pools.other.spawn(release.wait) for _ in range(pools.other.size)]
    try:
        assert pools.http.free() == 0 and pools.other.free() == 0
        started = time.monotonic()
        samples = scrape(api.base_url)
        assert time.monotonic() - started < 2
        assert samples["guichet_outbox_lag_seconds{service=tickets}"] >= 0
    finally:
        release.send(None)
        for blocker in blockers:
            blocker.wait()


def test_the_outbox_lag_grows_while_the_relay_is_stopped(tickets):
    container, api = tickets
    runner = next(p for p in container.dependencies if isinstance(p, OutboxRelayRunner))
    assert scrape(api.base_url)["guichet_outbox_unpublished{service=tickets}"] == 0
    runner.relay.stop()
    wait_until(lambda: not runner.relay.active, what="the relay to stop", timeout=10)
    eventlet.sleep(1.5)  # its last wait for a NOTIFY ends
    with ServiceRpcClient("tickets") as rpc:
        rpc.submit(person("alice"), "ent-connexion", "Relais arrêté", "Le relais est arrêté.")
    eventlet.sleep(1.2)
    stopped = scrape(api.base_url)
    assert stopped["guichet_outbox_unpublished{service=tickets}"] == 1
    assert stopped["guichet_outbox_lag_seconds{service=tickets}"] >= 1
    runner.relay._stopping = False
    container.spawn_managed_thread(runner.relay.run, identifier="outbox_relay_again")
    wait_until(lambda: scrape(api.base_url)["guichet_outbox_lag_seconds{service=tickets}"] == 0,
               what="the lag back to 0 once the relay runs", timeout=15)


def test_the_email_age_grows_while_the_smtp_server_is_down(container_factory, broker_uri, database_url, tickets_db):
    with db.connect(database_url) as conn:
        conn.execute(f"TRUNCATE {NOTIFIER_TABLES}")
    smtp = SmtpServer(free_port())  # not started yet: the relay is down
    port = free_port()
    container_factory(NotifierService, notifier_config(
        broker_uri, database_url, SMTP_URL=f"smtp://127.0.0.1:{smtp.port}",
        HTTP_ADDRESSES={"notifier": f"127.0.0.1:{port}"})).start()
    base_url = f"http://127.0.0.1:{port}"
    assert scrape(base_url)["guichet_email_queue_depth{service=notifier}"] == 0
    with db.connect(database_url) as conn:
        notifier_storage.queue_emails(conn, [notifier_storage.QueuedEmail(
            str(uuid4()), "alice", str(uuid4()), 7, "TicketSubmitted", datetime.now(UTC), "alice@univ.example",
            f"<{uuid4()}@guichet.test>", b"Subject: test\r\nMessage-ID: <x@guichet.test>\r\n\r\nBonjour.\r\n")])
        notifier_storage.wake_sender(conn)
    eventlet.sleep(1.5)
    down = scrape(base_url)
    assert down["guichet_email_queue_depth{service=notifier}"] == 1
    assert down["guichet_email_oldest_age_seconds{service=notifier}"] >= 1
    assert down["guichet_dead_letters{service=notifier}"] == 0
    smtp.start()
    try:
        wait_until(lambda: scrape(base_url)["guichet_email_queue_depth{service=notifier}"] == 0,
                   what="the email to go once the SMTP server is back", timeout=20)
        assert scrape(base_url)["guichet_email_oldest_age_seconds{service=notifier}"] == 0
        assert len(smtp.inbox.messages) == 1
    finally:
        smtp.stop()
