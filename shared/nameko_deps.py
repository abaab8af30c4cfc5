"""Nameko dependency providers every service uses: a PostgreSQL pool handed to workers
as a domain-level wrapper, the outbox relay started with the service, the request for
routing's catalogue, and an RPC client without Nameko's start-up race."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import eventlet
import kombu
import structlog
from nameko import config
from nameko import rpc as nameko_rpc
from nameko.extensions import DependencyProvider
from psycopg_pool import ConnectionPool

from shared import db
from shared.outbox import OutboxRelay

log = structlog.stdlib.get_logger("guichet.nameko")


class DatabasePool(DependencyProvider):
    """One connection pool per service container; workers get ``wrap(pool)``."""

    def __init__(self, wrap: Callable[[ConnectionPool], Any], *, max_size: int = 10) -> None:
        self.wrap = wrap
        self.max_size = max_size
        self.pool: ConnectionPool | None = None
        self.wrapped: Any = None

    def setup(self) -> None:
        self.pool = db.create_pool(
            config["DATABASE_URL"], max_size=self.max_size, name=self.container.service_name
        )
        self.wrapped = self.wrap(self.pool)

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.close()

    kill = stop

    def get_dependency(self, worker_ctx: Any) -> Any:
        return self.wrapped


class OutboxRelayRunner(DependencyProvider):
    """Runs the outbox relay in a managed green thread while the service runs.

    Every replica starts one; the advisory lock lets only one publish at a time.
    Workers get the relay, so health checks can report whether this one is active.
    """

    def __init__(self, schema: str = "tickets", exchange: str = "tickets.events") -> None:
        self.schema = schema
        self.exchange = exchange
        self.relay: OutboxRelay | None = None

    def setup(self) -> None:
        self.relay = OutboxRelay(config["DATABASE_URL"], config["AMQP_URI"], schema=self.schema, exchange=self.exchange)

    def start(self) -> None:
        assert self.relay is not None
        self.container.spawn_managed_thread(self.relay.run, identifier="outbox_relay")

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()

    kill = stop

    def get_dependency(self, worker_ctx: Any) -> OutboxRelay | None:
        return self.relay


class CatalogueRequest(DependencyProvider):
    """On start, ask routing to announce its catalogue again unless this service's copy
    is already the latest: a service that was not listening when routing last announced
    (the first start of a deployment, or a service added to a running one) gets its copy
    of the teams without waiting for the next change, and never calls routing on a hot
    path. ``revision_sql`` reads the ``global_position`` of the copy's last snapshot.
    Asked in the background, retried until routing answers; it never delays the start."""

    def __init__(self, revision_sql: str) -> None:
        self.revision_sql = revision_sql

    def start(self) -> None:
        self.container.spawn_managed_thread(self._ask, identifier="catalogue_request")

    def _ask(self) -> None:
        from nameko.standalone.rpc import ServiceRpcClient

        delay = 0.5
        while True:
            try:
                with db.connect(config["DATABASE_URL"]) as conn:
                    row = conn.execute(self.revision_sql).fetchone()
                known = next(iter(row.values())) if row else None
                with ServiceRpcClient("routing", timeout=10) as routing:
                    announced = routing.announce_catalogue(known)
                log.info("catalogue asked of routing", known_revision=known, announced=announced)
                return
            except Exception as exc:  # routing not up yet, broker or database away: ask again later
                log.info("routing not answering yet", error=f"{type(exc).__name__}: {exc}", retry_in=delay)
                eventlet.sleep(delay)
                delay = min(delay * 2, 30.0)


class _ReplyQueue(kombu.Queue):
    """Nameko's reply queue expires (``x-expires``) once unused, so kombu will not cache
    its declaration, and Nameko declares it before every request: an exchange, a queue
    and a binding declared, three round trips to the broker, per RPC call. Declared once
    per connection is enough: the queue exists while its listener consumes from it (a
    listener away long enough for it to expire is caught by the lost-reply check)."""

    @property
    def can_cache_declaration(self) -> bool:
        return True


class _ReplyListener(nameko_rpc.ReplyListener):
    """Nameko's reply listener checks for lost replies on every connection to the
    broker, the first one included. A worker that starts with the container (a timer,
    an event already waiting in its queue) can register a call before that first
    connection, while the reply queue does not exist yet: the check then finds no
    queue, raises ``ReplyQueueExpiredWithPendingReplies``, the listener's thread dies,
    and ``container.start()`` waits forever for it to be ready. Nothing can have been
    lost before the first connection, so that one is not checked; reconnections are."""

    def setup(self) -> None:
        super().setup()
        self.queue.__class__ = _ReplyQueue  # the same queue, its declaration cached (above)

    def check_for_lost_replies(self) -> None:
        if self.consumer.ready.is_set():
            super().check_for_lost_replies()


class ServiceRpc(nameko_rpc.ServiceRpc):
    """``nameko.rpc.ServiceRpc`` with the reply listener above: no start-up race, and
    its reply queue declared once per connection instead of before every call."""

    reply_listener = _ReplyListener()
