"""Chaos: every fault of issue #14 while tickets are filed, and nothing but a delay.

The tickets, routing and notifier services run as processes (``tests.e2e.processes``)
over the test database, the test's own RabbitMQ vhost and an SMTP server of the test's
own. While requesters file tickets over HTTP (retrying with their ``Idempotency-Key``
on a connection error or a 503), each service is killed with SIGKILL and started again,
every service connection to the test database is terminated once (``pg_terminate_backend``, as
a PostgreSQL restart would), and every broker connection of the test's vhost is closed
once (through the management API: the vhost-scoped form of ``rabbitmqctl
close_all_connections``, which would also cut the other test runs sharing the broker).

Then, within a bounded time: every ticket exists once, is routed and assigned once,
every requester's acknowledgement email reached the SMTP server, no service process
died by itself, and no dead-letter queue holds anything.
"""

# ruff: noqa: F811 - the fixtures desk and smtp come from tests.e2e.processes

from __future__ import annotations

import random
import time

import eventlet
import pytest

from shared.consumer import TICKET_EVENT_SUBSCRIPTIONS
from tests.e2e.processes import CLIENTS, SERVICES, Desk, desk, query, requester, smtp  # noqa: F401  (fixtures)
from tests.fault_helpers import close_vhost_connections, queue_depth, terminate_database_connections
from tests.helpers import wait_until

SETTLE_SECONDS = 180  # from the last fault to every ticket routed, assigned and acknowledged


def faults(desk: Desk, database_url: str, broker_uri: str, rabbit_manager) -> None:
    """Each fault once, at a random moment once every service is back at work."""
    steps = [("kill", name) for name in SERVICES] + [("database", None), ("broker", None)]
    random.shuffle(steps)
    for fault, name in steps:
        wait_until(lambda: all(desk.ready(n) for n in SERVICES), timeout=90, interval=0.2, what="every service back")
        eventlet.sleep(random.uniform(0.5, 1.5))
        if fault == "kill":
            desk.kill(name)
            desk.start(name)
        elif fault == "database":
            assert terminate_database_connections(database_url) > 0
        else:
            assert close_vhost_connections(rabbit_manager, broker_uri) > 0
    wait_until(lambda: all(desk.ready(n) for n in SERVICES), timeout=90, interval=0.2, what="every service back")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_fault_at_once_costs_only_a_delay(desk, tickets_db, smtp, database_url, broker_uri, rabbit_manager):
    killer = eventlet.spawn(faults, desk, database_url, broker_uri, rabbit_manager)
    filed: list[tuple[str, int]] = []
    clients = [eventlet.spawn(requester, desk, killer, n, filed) for n in range(CLIENTS)]
    try:
        for client in clients:
            client.wait()
        killer.wait()
        settled_from = time.monotonic()
        ids = [ticket_id for ticket_id, _ in filed]
        tickets = len(ids)
        assert len(set(ids)) == tickets

        def event_counts() -> dict[str, int]:
            counts = query(tickets_db, "SELECT event_type, count(*) AS n FROM tickets.events GROUP BY event_type")
            return {r["event_type"]: r["n"] for r in counts}

        expected = {"TicketSubmitted": tickets, "TicketRouted": tickets, "TicketAssigned": tickets}
        wait_until(lambda: event_counts() == expected, timeout=SETTLE_SECONDS, interval=0.5,
                   what="every ticket routed and assigned")
        acknowledgements = {f"<ticket-{ticket_id}@guichet>" for ticket_id in ids}
        left = SETTLE_SECONDS - (time.monotonic() - settled_from)
        wait_until(lambda: acknowledgements <= set(smtp.inbox.ids()), timeout=max(left, 1), interval=0.5,
                   what="every acknowledgement email received")
        eventlet.sleep(2)  # time for a late duplicate, were there one, to show
        assert event_counts() == expected
        # Only the kills stopped a process: none died of a database or broker fault.
        assert all(process.poll() is None for process in desk.processes.values())
        assert sum(desk.starts.values()) == 2 * len(SERVICES)
        for service in TICKET_EVENT_SUBSCRIPTIONS:
            assert queue_depth(broker_uri, f"{service}.ticket-events.dead-letters") == 0, service
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{desk.tail()}") from None
    finally:
        killer.kill()
        for client in clients:
            client.kill()
    per_ticket = query(tickets_db, "SELECT stream_id, count(*) AS n FROM tickets.events GROUP BY stream_id")
    assert sorted(r["stream_id"] for r in per_ticket) == sorted(f"ticket-{i}" for i in ids)
    assert {r["n"] for r in per_ticket} == {3}
