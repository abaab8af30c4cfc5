"""No event lost for want of a queue (issue #14, finding 6).

Before, an event the relay published while no consumer queue was bound (the tickets
service started before routing and the notifier ever declared theirs, or a broker that
lost its queues) was routed nowhere, marked published anyway, and lost: the ticket was
never routed. Now the relay declares every consumer's queue before it publishes, and a
message the broker returns as unroutable is not marked published: the relay declares
the queues again and publishes it again.
"""

from __future__ import annotations

import kombu
import pytest
from nameko.standalone.rpc import ServiceRpcClient

from services.routing.service import RoutingService
from services.tickets.service import TicketsService
from shared import db
from shared.consumer import TICKET_EVENT_SUBSCRIPTIONS, TicketEventConsumer
from tests.fault_helpers import ROUTING_CONFIG, event_counts, queue_depth
from tests.helpers import load_routing, person, wait_until


@pytest.fixture
def config(broker_uri, database_url, tickets_db, monkeypatch):
    monkeypatch.setenv("DB_POOL_MAX", "4")
    with db.connect(database_url) as conn:
        load_routing(conn, ROUTING_CONFIG)
    return {"AMQP_URI": broker_uri, "DATABASE_URL": database_url,
            "HTTP_ADDRESSES": {"tickets": "127.0.0.1:0", "routing": "127.0.0.1:0"}}


def published(database_url: str) -> int:
    with db.connect(database_url) as conn:
        return conn.execute("SELECT count(*) AS n FROM tickets.outbox WHERE published_at IS NOT NULL").fetchone()["n"]


def unpublished(database_url: str) -> int:
    with db.connect(database_url) as conn:
        return conn.execute("SELECT count(*) AS n FROM tickets.outbox WHERE published_at IS NULL").fetchone()["n"]


def routed_once(database_url: str) -> bool:
    counts = event_counts(database_url)
    return counts.get("TicketRouted") == counts.get("TicketSubmitted") == counts.get("TicketAssigned")


def test_an_event_published_before_any_consumer_queue_exists_still_reaches_routing(
        container_factory, config, broker_uri, database_url):
    container_factory(TicketsService, config).start()  # alone on a fresh vhost: no consumer queue yet
    with ServiceRpcClient("tickets") as rpc:
        ticket = rpc.submit(person("alice"), "ent-connexion", "Avant routing", "Routing ne tourne pas encore.")
    wait_until(lambda: published(database_url) >= 1, what="the relay to publish the event")
    assert queue_depth(broker_uri, "routing.ticket-events") == 1  # kept, waiting for routing

    container_factory(RoutingService, config).start()  # routing starts later
    with ServiceRpcClient("tickets") as rpc:
        routed = wait_until(lambda: (t := rpc.get(person("alice"), ticket["id"]))["assignee"] and t,
                            timeout=30, what="the ticket routed and assigned")
    assert routed["department"]["id"] == "dnum-ent"
    assert routed_once(database_url)


def test_a_message_returned_as_unroutable_is_published_again_not_lost(
        container_factory, config, broker_uri, database_url):
    container_factory(TicketsService, config).start()
    with ServiceRpcClient("tickets") as rpc:
        rpc.submit(person("alice"), "ent-connexion", "Premier", "Avant la perte des files.")
        wait_until(lambda: published(database_url) >= 1 and unpublished(database_url) == 0,
                   what="the first event published")
        with kombu.Connection(broker_uri) as connection:  # the broker loses every consumer queue
            channel = connection.channel()
            for service in TICKET_EVENT_SUBSCRIPTIONS:
                channel.queue_delete(f"{service}.ticket-events")
        second = rpc.submit(person("bob"), "ent-connexion", "Second", "Après la perte des files.")
        # Returned as unroutable: not marked; the queues are declared again; published again.
        wait_until(lambda: unpublished(database_url) == 0 and queue_depth(broker_uri, "routing.ticket-events") >= 1,
                   timeout=20, what="the second event kept in routing's queue, declared again")
        container_factory(RoutingService, config).start()
        wait_until(lambda: rpc.get(person("bob"), second["id"])["assignee"], timeout=30,
                   what="the second ticket routed")


def test_a_consumer_not_listed_for_the_relay_refuses_to_start():
    entrypoint = TicketEventConsumer("a-service-nobody-listed")
    with pytest.raises(ValueError, match="TICKET_EVENT_SUBSCRIPTIONS"):
        entrypoint.setup()
    wrong = TicketEventConsumer("attachments", ("TicketSubmitted",))
    with pytest.raises(ValueError, match="TICKET_EVENT_SUBSCRIPTIONS"):
        wrong.setup()
