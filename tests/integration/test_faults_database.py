"""A database blip costs a short delay, nothing else (issue #14, findings 1 and 5).

The tickets and routing services run for real over the test database and a throwaway
vhost. While tickets are filed, every connection to the test database is terminated
(``pg_terminate_backend``, as a PostgreSQL restart or failover does): routing's calls to
the tickets service then fail with a transient error, which must be retried, never
dead-lettered; the pools must replace their dead connections instead of failing a
request with each; and HTTP answers 503 with ``Retry-After`` while the database is
away, never 500.
"""

from __future__ import annotations

import eventlet
import pytest
import requests
from nameko.standalone.rpc import ServiceRpcClient

from shared import db
from shared.config import database_name, with_database
from shared.failures import DependencyUnavailable, TransientFailure, is_transient
from tests.e2e.conftest import ALICE, SECRET, Api
from tests.fault_helpers import (
    event_counts,
    file_until_accepted,
    queue_depth,
    start_desk,
    terminate_database_connections,
)
from tests.helpers import person, wait_until

TICKETS = 40


@pytest.fixture
def desk(container_factory, broker_uri, database_url, tickets_db, monkeypatch) -> Api:
    """Tickets (with HTTP on a free port) and routing, their teams copied."""
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    base_url, _ = start_desk(container_factory, broker_uri, database_url, monkeypatch)
    return Api(base_url)


def test_killed_pooled_connections_under_load_leave_no_ticket_unrouted(desk, database_url, broker_uri):
    ids: list[str] = []

    def requester(first: int) -> None:
        with ServiceRpcClient("tickets", timeout=30) as rpc:
            for n in range(first, TICKETS, 4):
                ids.append(file_until_accepted(rpc, n))
                eventlet.sleep(0.02)

    clients = [eventlet.spawn(requester, first) for first in range(4)]
    terminated = 0
    for _ in range(4):  # several blips while routing is busy calling the tickets service
        eventlet.sleep(0.4)
        terminated += terminate_database_connections(database_url)
    for client in clients:
        client.wait()
    terminated += terminate_database_connections(database_url)  # idle pooled connections too
    assert terminated >= 8  # the blips did hit the services' pools

    def events() -> dict[str, int]:
        return event_counts(database_url)

    expected = {"TicketSubmitted": TICKETS, "TicketRouted": TICKETS, "TicketAssigned": TICKETS}
    wait_until(lambda: events() == expected, timeout=90, interval=0.3, what=f"every ticket routed once: {events()}")
    assert len(set(ids)) == TICKETS
    assert queue_depth(broker_uri, "routing.ticket-events.dead-letters") == 0
    eventlet.sleep(1)
    assert events() == expected  # nothing twice


def test_dead_pooled_connections_fail_no_request(desk, database_url):
    assert desk.get("/api/v1/tickets", ALICE).status_code == 200
    assert terminate_database_connections(database_url) >= 1  # the pools' idle connections, all dead now
    # Each dead connection is found out as it leaves the pool and replaced: no request fails.
    answers = [desk.get("/api/v1/tickets", ALICE).status_code for _ in range(30)]
    assert answers == [200] * 30
    with ServiceRpcClient("tickets") as rpc:
        ticket = rpc.submit(person("alice"), "ent-connexion", "Après la coupure", "Ça marche ?")
    assert ticket["number"]


def test_a_database_outage_answers_503_with_retry_after_never_500(desk, database_url):
    """The service's pooled connections are dead and no new one may open (the database
    refuses connections, as during a restart): a request gets 503 and Retry-After, fast."""
    name = database_name(database_url)
    with db.connect(with_postgres(database_url), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        try:
            terminate_database_connections(database_url)
            started = eventlet.hubs.get_hub().clock()
            response = desk.get("/api/v1/tickets", ALICE)
            elapsed = eventlet.hubs.get_hub().clock() - started
            created = desk.post("/api/v1/tickets", ALICE, json={
                "category_id": "ent-connexion", "subject": "Pendant la panne", "description": "?"})
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert int(response.headers["Retry-After"]) >= 1
    assert "Traceback" not in response.text and "psycopg" not in response.text
    assert elapsed < 12  # the pool's timeout, not 30 s per request
    assert created.status_code == 503, created.text
    # Back at once once the database accepts connections again.
    wait_until(lambda: desk.get("/api/v1/tickets", ALICE).status_code == 200, timeout=15, what="the service back")


def test_transient_failures_cross_rpc_as_themselves():
    from nameko.exceptions import RemoteError, deserialize, serialize

    again = deserialize(serialize(DependencyUnavailable("the attachments service is unavailable", 7)))
    assert isinstance(again, DependencyUnavailable) and again.retry_after == 7 and is_transient(again)
    assert isinstance(deserialize(serialize(TransientFailure("x"))), TransientFailure)
    # A service that does not translate its errors: the type's name is enough.
    assert is_transient(RemoteError("OperationalError", "server closed the connection unexpectedly"))
    assert is_transient(RemoteError("AdminShutdown", "terminating connection due to administrator command"))
    assert is_transient(RemoteError("PoolTimeout", "couldn't get a connection after 5.00 sec"))
    assert not is_transient(RemoteError("InvalidTransition", "the ticket is closed"))
    assert not is_transient(KeyError("bug"))
    assert not is_transient(requests.HTTPError("nope"))


def with_postgres(url: str) -> str:
    return with_database(url, "postgres")
