"""The outbox relay against the real PostgreSQL and RabbitMQ: every committed event
reaches the broker in per-ticket order, even when the relay is killed mid-batch."""

import os
import signal
import subprocess
import sys
from collections import defaultdict

import eventlet
import kombu
import pytest

from services.tickets import domain
from services.tickets.commands import TicketCommands
from shared.events import EventMessageSchema
from shared.outbox import APPLICATION_NAME, OutboxRelay, event_exchange
from tests.conftest import ROOT
from tests.helpers import wait_until

ALICE = domain.Actor("alice", "Alice Martin", "alice@univ.example")
NEW_TICKET = {"category_id": "ent-connexion", "subject": "Connexion impossible", "description": "Rien."}


def bind_audit_queue(uri: str) -> kombu.Queue:
    queue = kombu.Queue("audit", event_exchange(), routing_key="#", durable=True)
    with kombu.Connection(uri) as conn:
        queue(conn.channel()).declare()
    return queue


def queue_depth(uri: str) -> int:
    with kombu.Connection(uri) as conn:
        return conn.default_channel.queue_declare("audit", passive=True).message_count


def drain(uri: str) -> list[dict]:
    bodies = []
    with kombu.Connection(uri) as conn:
        channel = conn.default_channel
        while (message := channel.basic_get("audit", no_ack=True)) is not None:
            bodies.append(kombu.serialization.loads(message.body, "application/json", "utf-8"))
    return bodies


def all_event_ids(pool) -> list[str]:
    with pool.connection() as conn:
        return [str(r["event_id"]) for r in conn.execute("SELECT event_id FROM tickets.events").fetchall()]


def unpublished(pool) -> int:
    with pool.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM tickets.outbox WHERE published_at IS NULL").fetchone()["n"]


def start_relay(database_url: str, broker_uri: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "AMQP_URI": broker_uri, "LOG_FORMAT": "json"}
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "relay", "--batch-size", "100"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def first_seen_in_order(bodies: list[dict]) -> dict[str, list[int]]:
    seen: set[str] = set()
    versions: dict[str, list[int]] = defaultdict(list)
    for body in bodies:
        if body["event_id"] not in seen:
            seen.add(body["event_id"])
            versions[body["stream_id"]].append(body["stream_version"])
    return versions


@pytest.mark.slow
def test_a_relay_killed_mid_batch_loses_nothing_when_restarted(tickets_db, database_url, broker_uri):
    bind_audit_queue(broker_uri)
    pool = eventlet.GreenPool(20)

    def writer(n: int) -> None:
        commands = TicketCommands(tickets_db)
        ticket = commands.execute("submit", ALICE, args=NEW_TICKET)
        for i in range(49):
            commands.execute("comment", ALICE, ticket["id"], {"comment_id": f"{n}-{i}", "body": f"n°{i}"})

    for _ in pool.imap(writer, range(20)):
        pass
    expected = all_event_ids(tickets_db)
    assert len(expected) == 1000

    # Hold the rows after position 450: the relay publishes its fifth batch (401-500),
    # then blocks marking it. Killed there, it has published rows it never marked.
    holder = tickets_db.getconn()
    holder.autocommit = False  # the lock lasts until the rollback below
    holder.execute("SELECT 1 FROM tickets.outbox WHERE global_position > 450 FOR UPDATE")
    relay = start_relay(database_url, broker_uri)
    try:
        wait_until(lambda: queue_depth(broker_uri) >= 500, timeout=30.0, what="the first 500 messages")
        eventlet.sleep(0.3)
        assert queue_depth(broker_uri) == 500
        relay.send_signal(signal.SIGKILL)
        relay.wait(timeout=10)
        # Its session is still blocked in the UPDATE and would mark the batch once the
        # lock goes: end it too, as when the crash takes the relay's machine down.
        with tickets_db.connection() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND datname = current_database()",
                (APPLICATION_NAME,),
            )
    finally:
        holder.rollback()
        holder.autocommit = True
        tickets_db.putconn(holder)
    assert unpublished(tickets_db) == 600  # rows 401-1000: the killed batch was never marked

    relay = start_relay(database_url, broker_uri)
    try:
        wait_until(lambda: unpublished(tickets_db) == 0, timeout=30.0, what="the restarted relay to catch up")
        wait_until(lambda: queue_depth(broker_uri) == 1100, timeout=30.0, what="every message on the queue")
    except AssertionError:
        relay.kill()
        raise AssertionError(relay.communicate(timeout=10)[1].decode()[-3000:]) from None
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=10)

    bodies = drain(broker_uri)
    assert len(bodies) == 1100  # the hundred of the killed batch came twice ...
    assert sorted({b["event_id"] for b in bodies}) == sorted(expected)  # ... and nothing is missing
    duplicates = defaultdict(list)
    for body in bodies:
        duplicates[body["event_id"]].append(body)
    assert all(copies[0] == copies[-1] for copies in duplicates.values())  # same event, same body
    for stream, versions in first_seen_in_order(bodies).items():
        assert versions == list(range(1, 51)), stream
    for body in bodies[:5]:
        EventMessageSchema().load(body)


def test_only_one_relay_publishes_and_a_standby_takes_over(tickets_db, database_url, broker_uri):
    bind_audit_queue(broker_uri)
    relays = [OutboxRelay(database_url, broker_uri, idle_wait=0.1) for _ in range(2)]
    commands = TicketCommands(tickets_db)
    threads = [eventlet.spawn(r.run) for r in relays]
    try:
        wait_until(lambda: any(r.active for r in relays), timeout=30.0, what="a relay to become active")
        eventlet.sleep(0.5)
        assert sum(r.active for r in relays) == 1
        active = next(r for r in relays if r.active)
        standby = next(r for r in relays if not r.active)

        commands.execute("submit", ALICE, args=NEW_TICKET)
        wait_until(lambda: queue_depth(broker_uri) == 1, timeout=30.0, what="the first event")

        active.stop()
        threads[relays.index(active)].wait()
        wait_until(lambda: standby.active, timeout=30.0, what="the standby to take over")
        commands.execute("submit", ALICE, args=NEW_TICKET)
        wait_until(lambda: queue_depth(broker_uri) == 2, timeout=30.0, what="the second event")
    finally:
        for relay in relays:
            relay.stop()
        for thread in threads:
            thread.wait()
    bodies = drain(broker_uri)
    assert [b["event_type"] for b in bodies] == ["TicketSubmitted", "TicketSubmitted"]
    assert [b["ticket"]["number"] for b in bodies] == [1000, 1001]
