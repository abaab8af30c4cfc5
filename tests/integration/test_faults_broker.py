"""A broker connection reset costs a short delay (issue #14, finding 3).

The tickets and routing services run for real while tickets are filed; every
connection of the test's vhost is closed from the management API several times while
the consumers are busy acking (routing's events, the tickets' RPC requests, replies).
Before, a ``ConnectionResetError`` raised by an ack escaped from the worker and killed
the service's container (the whole process under ``guichet run``). Now each service
lives, reconnects, and every ticket is routed and assigned once.
"""

from __future__ import annotations

import eventlet
import pytest
from nameko.amqp import consume as nameko_consume
from nameko.standalone.rpc import ServiceRpcClient

import shared.nameko_deps  # noqa: F401, E402 - hardens every Nameko consumer's acks
from tests.fault_helpers import (
    close_vhost_connections,
    event_counts,
    file_until_accepted,
    queue_depth,
    start_desk,
)
from tests.helpers import wait_until

TICKETS = 40


class ResetMessage:
    """A message whose connection the broker reset while it was being acked."""

    class channel:  # noqa: N801 - shaped like kombu's
        connection = object()

    def ack(self) -> None:
        raise ConnectionResetError(104, "Connection reset by peer")

    def requeue(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_an_ack_on_a_reset_connection_is_left_to_the_broker():
    consumer = nameko_consume.Consumer("pyamqp://")
    consumer.ack_message(ResetMessage())  # nothing raised: the broker redelivers it
    consumer.requeue_message(ResetMessage())


@pytest.mark.timeout(180)
def test_connections_closed_while_consumers_are_busy_kill_no_service(
        container_factory, broker_uri, database_url, tickets_db, rabbit_manager, monkeypatch):
    _, containers = start_desk(container_factory, broker_uri, database_url, monkeypatch)
    ids: list[str] = []

    def requester(first: int) -> None:
        with ServiceRpcClient("tickets", timeout=30) as rpc:
            for n in range(first, TICKETS, 4):
                for _attempt in range(50):
                    try:
                        ids.append(file_until_accepted(rpc, n))
                        break
                    except Exception:  # noqa: BLE001 - this client's own connection was closed too
                        eventlet.sleep(0.2)
                eventlet.sleep(0.02)

    clients = [eventlet.spawn(requester, first) for first in range(4)]
    closed = 0
    for _ in range(3):
        eventlet.sleep(0.5)
        closed += close_vhost_connections(rabbit_manager, broker_uri)
    for client in clients:
        client.wait()
    assert closed >= 6  # the services' connections were closed under them

    expected = {"TicketSubmitted": TICKETS, "TicketRouted": TICKETS, "TicketAssigned": TICKETS}
    wait_until(lambda: event_counts(database_url) == expected, timeout=90, interval=0.3,
               what="every ticket routed and assigned once")
    assert not any(container._died.ready() for container in containers)  # both services lived through it
    assert len(set(ids)) == TICKETS
    assert queue_depth(broker_uri, "routing.ticket-events.dead-letters") == 0
    eventlet.sleep(1)
    assert event_counts(database_url) == expected
