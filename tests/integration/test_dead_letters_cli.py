"""``guichet dead-letters list|replay SERVICE``: an operator sees what a consumer gave up
on, with why, and sends it back to be handled once its cause is fixed.

A ticket's ``TicketSubmitted`` ends in routing's dead-letter queue (as it did, before
issue #14, when the tickets service's pooled connections died). ``list`` shows it and
leaves it there; ``replay`` moves it back to ``routing.ticket-events``, and the ticket
is routed and assigned, once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import kombu
from nameko.standalone.rpc import ServiceRpcClient

from services.routing.service import RoutingService
from services.tickets.service import TicketsService
from shared import db
from shared.consumer import dead_letter_exchange
from tests.conftest import ROOT
from tests.fault_helpers import ROUTING_CONFIG, event_counts, queue_depth
from tests.helpers import load_routing, person, wait_until


def guichet(*args: str, amqp_uri: str, database_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AMQP_URI": amqp_uri, "DATABASE_URL": database_url, "LOG_FORMAT": "json"}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_list_shows_the_dead_letters_and_replay_gets_them_handled(
        container_factory, broker_uri, database_url, tickets_db, monkeypatch):
    monkeypatch.setenv("DB_POOL_MAX", "4")
    with db.connect(database_url) as conn:
        load_routing(conn, ROUTING_CONFIG)
    config = {"AMQP_URI": broker_uri, "DATABASE_URL": database_url,
              "HTTP_ADDRESSES": {"tickets": "127.0.0.1:0", "routing": "127.0.0.1:0"}}
    container_factory(TicketsService, config).start()
    with ServiceRpcClient("tickets") as rpc:
        ticket = rpc.submit(person("alice"), "ent-connexion", "Perdu", "Resté en lettre morte.")
    wait_until(lambda: queue_depth(broker_uri, "routing.ticket-events") == 1, what="the event in routing's queue")
    # The event dead-lettered by routing, with its error, as the consumer does it.
    with kombu.Connection(broker_uri, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        message = channel.message_to_python(channel.basic_get("routing.ticket-events", no_ack=False))
        connection.Producer().publish(
            message.body, exchange=dead_letter_exchange("routing"), routing_key="TicketSubmitted",
            content_type=message.content_type, content_encoding=message.content_encoding,
            message_id=message.properties.get("message_id"),
            headers={"x-guichet-error": "AdminShutdown terminating connection due to administrator command",
                     "x-guichet-error-type": "RemoteError", "x-guichet-failed-at": "2026-12-01T09:00:00+00:00",
                     "x-original-routing-key": "TicketSubmitted"},
        )
        message.ack()
    container_factory(RoutingService, config).start()

    listed = guichet("dead-letters", "list", "routing", amqp_uri=broker_uri, database_url=database_url)
    assert listed.returncode == 0, listed.stderr
    [letter] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert letter["event_type"] == "TicketSubmitted" and letter["error_type"] == "RemoteError"
    assert "administrator command" in letter["error"] and letter["routing_key"] == "TicketSubmitted"
    assert queue_depth(broker_uri, "routing.ticket-events.dead-letters") == 1  # listing takes nothing
    assert event_counts(database_url).get("TicketRouted") is None

    replayed = guichet("dead-letters", "replay", "routing", amqp_uri=broker_uri, database_url=database_url)
    assert replayed.returncode == 0, replayed.stderr
    with ServiceRpcClient("tickets") as rpc:
        wait_until(lambda: rpc.get(person("alice"), ticket["id"])["assignee"], timeout=30, what="the ticket assigned")
    assert queue_depth(broker_uri, "routing.ticket-events.dead-letters") == 0
    assert event_counts(database_url) == {"TicketSubmitted": 1, "TicketRouted": 1, "TicketAssigned": 1}

    unknown = guichet("dead-letters", "list", "nobody", amqp_uri=broker_uri, database_url=database_url)
    assert unknown.returncode == 2 and "no dead-letter queue" in unknown.stdout + unknown.stderr
