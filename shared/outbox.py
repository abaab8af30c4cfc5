"""The outbox relay: publishes committed events to RabbitMQ, at least once, in order.

One relay publishes at a time: it holds a PostgreSQL session advisory lock, and the
other replicas stand by until the holder's connection goes away. The active relay takes
the unpublished outbox rows in ``global_position`` order, publishes each with publisher
confirms and ``mandatory=True``, and only then marks them published. Killed between the
two, it publishes those rows again when it (or a standby) takes over: consumers see a
duplicate with the same ``event_id`` and skip it, and nothing is lost.

No event is lost for want of a queue either: before publishing ticket events, the relay
declares every consumer's queue (``shared.consumer.ticket_event_topology``), so an event
committed before routing or the notifier ever started waits in their queue. Should the
broker still return a message as unroutable (its queues lost, deleted by hand), the
relay marks the rows before it only, declares the queues again, and publishes from that
row again after a pause.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import kombu
import psycopg
import structlog
from psycopg import sql

from shared import db, tracing
from shared.events import EXCHANGE
from shared.failures import is_transient

log = structlog.stdlib.get_logger("guichet.outbox")

APPLICATION_NAME = "guichet-outbox-relay"  # how operators (and tests) spot its sessions


def event_exchange(name: str = EXCHANGE) -> kombu.Exchange:
    """The topic exchange, declared exactly as Nameko's event handlers expect it."""
    return kombu.Exchange(name, type="topic", durable=True, auto_delete=False)


class OutboxRelay:
    """Moves rows of ``<schema>.outbox`` to the ``tickets.events`` exchange."""

    def __init__(
        self,
        database_url: str,
        amqp_uri: str,
        *,
        schema: str = "tickets",
        exchange: str = EXCHANGE,
        batch_size: int = 200,
        idle_wait: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        topology: list[Any] | None = None,
    ) -> None:
        self.database_url = database_url
        self.amqp_uri = amqp_uri
        self.schema = schema
        self.exchange = event_exchange(exchange)
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.sleep = sleep
        self.channel_name = f"{schema}_outbox"
        self.lock_key = int.from_bytes(hashlib.sha256(f"outbox-relay:{schema}".encode()).digest()[:7], "big")
        self.active = False
        self._stopping = False
        self._returned: set[str] = set()
        self._outbox = sql.Identifier(schema, "outbox")
        if topology is None and exchange == EXCHANGE:
            from shared.consumer import ticket_event_topology

            topology = ticket_event_topology()
        # With a topology, an unroutable message is an error to repair, not an event
        # nobody wants: it is not marked published (see the module's docstring).
        self.topology = list(topology or ())

    def stop(self) -> None:
        self._stopping = True

    def run(self) -> None:
        """Relay until ``stop()``; survives database and broker outages by retrying."""
        backoff = 0.5
        while not self._stopping:
            try:
                self._run_once()
                backoff = 0.5
            except Exception as exc:
                # A broker that closed the connection (amqp's ConnectionForced is neither
                # an OSError nor a KombuError) must not end the relay, nor the service.
                if not (is_transient(exc) or isinstance(exc, (OSError, kombu.exceptions.KombuError, BrokerRefused))):
                    raise
                self.active = False
                log.warning("relay connection lost, retrying", error=str(exc), retry_in=backoff)
                self.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _run_once(self) -> None:
        with db.connect(self.database_url, autocommit=True, application_name=APPLICATION_NAME) as conn:
            if not conn.execute("SELECT pg_try_advisory_lock(%s) AS got", (self.lock_key,)).fetchone()["got"]:
                self.active = False
                self.sleep(self.idle_wait)  # another replica relays; stand by
                return
            log.info("outbox relay active", schema=self.schema)
            self.active = True
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel_name)))
            with kombu.Connection(self.amqp_uri) as broker:
                confirms = Confirms(broker)
                confirms.channel.events["basic_return"].add(self._on_return)
                producer = kombu.Producer(confirms.channel, exchange=self.exchange, serializer="json")
                self.exchange(confirms.channel).declare()
                self.declare_topology(confirms.channel)
                while not self._stopping:
                    if self.publish_batch(conn, producer, confirms) < self.batch_size:
                        # Woken at once by the NOTIFY of a commit, else polls.
                        for _ in conn.notifies(timeout=self.idle_wait, stop_after=1):
                            pass
            self.active = False

    def publish_batch(self, conn: psycopg.Connection, producer: kombu.Producer, confirms: Confirms) -> int:
        """Publish the oldest unpublished rows, wait for the broker to confirm them all,
        then mark them; returns how many."""
        rows = conn.execute(
            sql.SQL(
                "SELECT global_position, event_id, routing_key, payload FROM {}"
                " WHERE published_at IS NULL ORDER BY global_position LIMIT %s"
            ).format(self._outbox),
            (self.batch_size,),
        ).fetchall()
        if not rows:
            return 0
        for row in rows:
            self._publish(producer, row)
        confirms.wait()  # raises if the broker refused one: nothing is marked, all come again
        # The broker sends a return before its confirm, so every return is in by now.
        returned = [i for i, row in enumerate(rows) if str(row["event_id"]) in self._returned]
        self._returned.clear()
        for i in returned:
            row = rows[i]
            log.warning(
                "event published to no queue", event_id=str(row["event_id"]), event_type=row["routing_key"],
                global_position=row["global_position"], kept=bool(self.topology),
            )
        if returned and self.topology:
            # Mark what came before the first unroutable row; declare the queues again;
            # that row and the ones after it go again (consumers skip the duplicates).
            rows = rows[:returned[0]]
            self.declare_topology(confirms.channel)
            self.sleep(min(self.idle_wait, 0.5))
            if not rows:
                return 0
        conn.execute(
            sql.SQL("UPDATE {} SET published_at = now() WHERE global_position = ANY(%s)").format(self._outbox),
            ([r["global_position"] for r in rows],),
        )
        log.debug("outbox batch published", count=len(rows), last=rows[-1]["global_position"])
        return len(rows)

    def declare_topology(self, channel: Any) -> None:
        """Declare the consumers' exchanges and queues (idempotent)."""
        for entity in self.topology:
            entity(channel).declare()

    def _publish(self, producer: kombu.Producer, row: dict[str, Any]) -> None:
        # The position is known only once the event is inserted, so it joins here.
        payload = {**row["payload"], "global_position": row["global_position"]}
        with tracing.span(f"{row['routing_key']} publish", kind=tracing.SpanKind.PRODUCER,
                          parent=row["payload"].get("traceparent"),
                          attributes={"messaging.system": "rabbitmq", "messaging.operation": "publish",
                                      "messaging.destination.name": self.exchange.name,
                                      "guichet.event_id": str(row["event_id"])}):
            # The publish span's context goes on: W3C's header for any consumer, and
            # Nameko's context-data headers for ours (shared.tracing).
            headers: dict[str, str] = {}
            if traceparent := tracing.current_traceparent():
                headers["traceparent"] = headers[f"nameko.{tracing.TRACEPARENT_KEY}"] = traceparent
            if correlation_id := tracing.sane_correlation_id(payload.get("correlation_id")):
                headers[f"nameko.{tracing.CORRELATION_KEY}"] = correlation_id
            producer.publish(
                payload,
                routing_key=row["routing_key"],
                mandatory=True,
                delivery_mode=2,
                message_id=str(row["event_id"]),
                correlation_id=payload.get("correlation_id"),
                headers=headers,
                retry=False,
            )

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        message_id = getattr(message, "properties", {}).get("message_id")
        if message_id:
            self._returned.add(message_id)


class BrokerRefused(Exception):
    """The broker nacked a message, or did not confirm in time."""


class Confirms:
    """Publisher confirms for a whole batch: publish everything, then wait once for the
    broker's acks (one round trip per batch instead of one per message)."""

    def __init__(self, broker: kombu.Connection, timeout: float = 10.0) -> None:
        self.broker = broker
        self.timeout = timeout
        self.channel = broker.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self.published = 0  # delivery tags count from 1 on a confirmed channel
        self.acked = 0
        self.nacked = False
        self._pending: set[int] = set()
        original = self.channel.basic_publish

        def basic_publish(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            self.published += 1
            self._pending.add(self.published)
            return result

        self.channel.basic_publish = basic_publish

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._pending = {t for t in self._pending if t > delivery_tag}
        else:
            self._pending.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked = True
        self._on_ack(delivery_tag, multiple)

    def wait(self) -> None:
        deadline = time.monotonic() + self.timeout
        while self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerRefused(f"{len(self._pending)} messages not confirmed in {self.timeout} s")
            try:
                self.broker.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        if self.nacked:
            self.nacked = False
            raise BrokerRefused("the broker refused a message")
