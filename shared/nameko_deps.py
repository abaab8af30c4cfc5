"""Nameko dependency providers every service uses: a PostgreSQL pool handed to workers
as a domain-level wrapper (its size from the environment), the outbox relay started
with the service, the request for routing's catalogue, an RPC client without Nameko's
start-up race, and an RPC entrypoint whose transient failures reach callers as such."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import amqp.exceptions as amqp_exceptions
import eventlet
import kombu
import structlog
from eventlet.greenpool import GreenPool
from nameko import config
from nameko import rpc as nameko_rpc
from nameko.amqp import consume as nameko_consume
from nameko.extensions import DependencyProvider
from nameko.web.handlers import HttpRequestHandler
from psycopg_pool import ConnectionPool

from shared import db, tracing
from shared.failures import TransientFailure, as_transient, is_transient
from shared.outbox import OutboxRelay

log = structlog.stdlib.get_logger("guichet.nameko")


def pool_size(service: str, default: int, env: Mapping[str, str] | None = None) -> int:
    """The most connections ``service``'s pool may open: ``<SERVICE>_DB_POOL_SIZE``, else
    ``DB_POOL_MAX``, else ``default``. Each replica opens up to that many, so the sum over
    every replica must stay under PostgreSQL's ``max_connections`` (``deploy/k8s/README.md``)."""
    env = os.environ if env is None else env
    for key in (f"{service.upper()}_DB_POOL_SIZE", "DB_POOL_MAX"):
        if value := env.get(key, "").strip():
            try:
                size = int(value)
            except ValueError:
                raise ValueError(f"{key} must be a whole number, not {value!r}") from None
            if size < 1:
                raise ValueError(f"{key} must be at least 1")
            return size
    return default


class DatabasePool(DependencyProvider):
    """One connection pool per service container; workers get ``wrap(pool)``.

    ``max_size`` is the default; ``<SERVICE>_DB_POOL_SIZE`` or ``DB_POOL_MAX`` override it."""

    def __init__(self, wrap: Callable[[ConnectionPool], Any], *, max_size: int = 10) -> None:
        self.wrap = wrap
        self.max_size = max_size
        self.pool: ConnectionPool | None = None
        self.wrapped: Any = None

    def setup(self) -> None:
        service = self.container.service_name
        size = pool_size(service, self.max_size)
        self.pool = db.create_pool(config["DATABASE_URL"], min_size=min(2, size), max_size=size, name=service)
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


def worker_counts(service: str, default: int, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(workers, http_workers)`` for ``service``: ``<SERVICE>_MAX_WORKERS`` workers for
    RPC, events and timers (default: Nameko's ``max_workers``, 10), and
    ``<SERVICE>_HTTP_WORKERS`` for HTTP requests (default: as many)."""
    env = os.environ if env is None else env

    def number(key: str, fallback: int) -> int:
        value = env.get(key, "").strip()
        if not value:
            return fallback
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{key} must be a whole number of at least 1, not {value!r}")
        return int(value)

    workers = number(f"{service.upper()}_MAX_WORKERS", default)
    return workers, number(f"{service.upper()}_HTTP_WORKERS", workers)


HTTP_QUEUE_SECONDS = 5.0  # an HTTP request waits this long for a worker, then gets 503


class WorkersBusy(TransientFailure):
    """Every HTTP worker stayed busy while this request waited."""


class WorkerPools:
    """Stands in for a Nameko container's worker pool: HTTP requests in one green pool,
    everything else (RPC, events, timers) in another, so a flood of requests cannot
    starve the consumers (nor a backlog of events the HTTP API). Nameko's container
    only calls ``spawn`` and ``waitall`` on its pool."""

    def __init__(self, workers: int, http_workers: int, queue_seconds: float = HTTP_QUEUE_SECONDS) -> None:
        self.other = GreenPool(workers)
        self.http = GreenPool(http_workers)
        self.queue_seconds = queue_seconds

    def spawn(self, fn: Callable[..., Any], worker_ctx: Any, *args: Any) -> Any:
        if not isinstance(worker_ctx.entrypoint, HttpRequestHandler):
            return self.other.spawn(fn, worker_ctx, *args)
        if self.http.free() == 0:
            with eventlet.Timeout(self.queue_seconds, False):
                while self.http.free() == 0:
                    eventlet.sleep(0.02)
            if self.http.free() == 0:
                raise WorkersBusy("every worker is busy, try again shortly", 1)
        return self.http.spawn(fn, worker_ctx, *args)

    def waitall(self) -> None:
        self.http.waitall()
        self.other.waitall()

    def running(self) -> int:
        return self.http.running() + self.other.running()


def install_worker_pools(container: Any) -> None:
    """Give ``container`` separate HTTP and other worker pools, sized per service from the
    environment (``worker_counts``). Called by the HTTP server's setup, before any worker."""
    if isinstance(container._worker_pool, WorkerPools):
        return
    workers, http_workers = worker_counts(container.service_name, container.max_workers)
    container.max_workers = workers + http_workers
    container._worker_pool = WorkerPools(workers, http_workers)


class Rpc(nameko_rpc.Rpc):
    """Nameko's ``@rpc``, but a transient failure (the database away, a pool timeout...)
    answers the caller with ``shared.failures.TransientFailure``, which Nameko rebuilds
    as itself there: the caller retries instead of taking it for a refusal."""

    def handle_result(self, message: Any, worker_ctx: Any, result: Any, exc_info: Any) -> Any:
        if exc_info is not None and is_transient(exc_info[1]):
            failure = as_transient(exc_info[1])
            exc_info = (type(failure), failure, exc_info[2])
        with tracing.span(f"{worker_ctx.service_name}.{self.method_name} reply", kind=tracing.SpanKind.PRODUCER,
                          attributes={"rpc.system": "nameko", "guichet.error": exc_info is not None}):
            return super().handle_result(message, worker_ctx, result, exc_info)


rpc = Rpc.decorator


def _ack_message(self: nameko_consume.Consumer, message: Any) -> None:
    # Nameko catches amqp's ConnectionError only; a socket reset (ConnectionResetError,
    # BrokenPipeError: OSErrors) escaped from the worker and killed the whole container.
    # The broker requeues an unacked message of a lost connection by itself, and kombu's
    # consumer loop reconnects, so there is nothing to do but say so.
    if message.channel.connection:
        try:
            message.ack()
        except (OSError, amqp_exceptions.ConnectionError) as exc:
            log.warning("ack lost with the broker connection; the broker redelivers", error=repr(exc))


def _requeue_message(self: nameko_consume.Consumer, message: Any) -> None:
    if message.channel.connection:
        try:
            message.requeue()
        except (OSError, amqp_exceptions.ConnectionError) as exc:
            log.warning("requeue lost with the broker connection; the broker redelivers", error=repr(exc))


def harden_acks() -> None:
    """Make every Nameko consumer (RPC, events, ``consume``) survive a broker connection
    reset while it acks or requeues (see ``_ack_message``)."""
    nameko_consume.Consumer.ack_message = _ack_message
    nameko_consume.Consumer.requeue_message = _requeue_message


harden_acks()
tracing.instrument()  # a span per worker and RPC call; trace context and correlation id on every hop


class ServiceRpc(nameko_rpc.ServiceRpc):
    """``nameko.rpc.ServiceRpc`` with the reply listener above: no start-up race, and
    its reply queue declared once per connection instead of before every call."""

    reply_listener = _ReplyListener()
