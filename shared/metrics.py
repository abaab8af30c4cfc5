"""Prometheus metrics (``/metrics`` on each service's HTTP port).

``/metrics`` is answered by ``shared.web.ProblemWsgiApp`` in the connection's green
thread, like ``/healthz``: a scrape never waits for a worker, so it answers while every
worker is busy. Two kinds of figures:

- counted as things happen (process-wide, labelled by ``service``): HTTP requests by
  route and status with their latency, workers (RPC, event, timer) by entrypoint and
  outcome with their latency;
- read at scrape time from the service's own tables and queues (gauges): the outbox lag
  (age of the oldest unpublished row) where the service has an outbox, the email queue
  (pending count and oldest age) in the notifier, timers due in escalation, and the
  dead letters waiting in the service's dead-letter queue. Each read is bounded
  (``statement_timeout``, a short broker timeout); a failed read leaves its gauge out
  and counts ``guichet_scrape_errors_total`` instead of failing the scrape.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from werkzeug.wrappers import Response

log = structlog.stdlib.get_logger("guichet.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter("guichet_http_requests", "HTTP requests answered", ["service", "method", "route", "status"],
                        registry=REGISTRY)
HTTP_LATENCY = Histogram("guichet_http_request_duration_seconds", "Time to answer an HTTP request",
                         ["service", "method", "route"], registry=REGISTRY,
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
WORKERS = Counter("guichet_workers", "Nameko workers run (RPC, events, timers), by outcome",
                  ["service", "entrypoint", "kind", "outcome"], registry=REGISTRY)
WORKER_LATENCY = Histogram("guichet_worker_duration_seconds", "Time a worker took (an RPC method: its latency)",
                           ["service", "entrypoint", "kind"], registry=REGISTRY,
                           buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
SCRAPE_ERRORS = Counter("guichet_scrape_errors", "Gauges that could not be read at scrape time", ["service", "gauge"],
                        registry=REGISTRY)

# Outbox tables by service (the relays' schemas).
OUTBOXES = {"tickets": "tickets", "routing": "routing"}


def observe_request(service: str, method: str, route: str, status: int, seconds: float) -> None:
    """Count one HTTP request (``route`` is the URL rule, so label values stay few)."""
    HTTP_REQUESTS.labels(service, method, route, str(status)).inc()
    HTTP_LATENCY.labels(service, method, route).observe(seconds)


def observe_worker(service: str, entrypoint: str, kind: str, failed: bool, seconds: float) -> None:
    """Count one worker: ``kind`` is rpc, event, http, timer...; ``failed`` an unexpected error."""
    WORKERS.labels(service, entrypoint, kind, "failed" if failed else "handled").inc()
    WORKER_LATENCY.labels(service, entrypoint, kind).observe(seconds)


def _pool(container: Any) -> Any:
    from shared.nameko_deps import DatabasePool

    for provider in getattr(container, "dependencies", ()):
        if isinstance(provider, DatabasePool) and provider.pool is not None:
            return provider.pool
    return None


class ServiceGauges:
    """The gauges read from one service's tables and broker queues at scrape time."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.service = container.service_name

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = _pool(self.container)
        if pool is not None:
            yield from self._from_database(pool)
        yield from self._dead_letters()

    def _query(self, pool: Any, gauge: str, query: str) -> dict[str, Any] | None:
        try:
            with pool.connection(timeout=2) as conn, conn.transaction():
                conn.execute("SET LOCAL statement_timeout = '2s'")
                return conn.execute(query).fetchone()
        except Exception as exc:  # noqa: BLE001 - a scrape reports what it can
            SCRAPE_ERRORS.labels(self.service, gauge).inc()
            log.warning("metric not read", gauge=gauge, error=f"{type(exc).__name__}: {exc}"[:200])
            return None

    def _from_database(self, pool: Any) -> Iterator[GaugeMetricFamily]:
        if schema := OUTBOXES.get(self.service):
            row = self._query(pool, "outbox", (
                "SELECT count(*) AS n, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS age"
                f" FROM {schema}.outbox WHERE published_at IS NULL"))
            if row is not None:
                yield _gauge("guichet_outbox_unpublished", "Outbox rows not yet published", self.service, row["n"])
                yield _gauge("guichet_outbox_lag_seconds", "Age of the oldest unpublished outbox row",
                             self.service, row["age"])
        if self.service == "notifier":
            row = self._query(pool, "emails", (
                "SELECT count(*) AS n, COALESCE(EXTRACT(EPOCH FROM now() - min(queued_at)), 0) AS age"
                " FROM notifier.emails WHERE status = 'pending'"))
            if row is not None:
                yield _gauge("guichet_email_queue_depth", "Emails waiting to be sent", self.service, row["n"])
                yield _gauge("guichet_email_oldest_age_seconds", "Age of the oldest email waiting",
                             self.service, row["age"])
            row = self._query(pool, "emails_failed", "SELECT count(*) AS n FROM notifier.emails WHERE status = 'failed'")
            if row is not None:
                yield _gauge("guichet_emails_failed", "Emails given up on (5xx)", self.service, row["n"])
        if self.service == "escalation":
            row = self._query(pool, "timers", (
                "SELECT count(*) AS n FROM escalation.timers WHERE state = 'pending' AND due_at <= now()"))
            if row is not None:
                yield _gauge("guichet_timers_due", "Escalation timers due and not yet fired", self.service, row["n"])

    def _dead_letters(self) -> Iterator[GaugeMetricFamily]:
        from shared.consumer import TICKET_EVENT_SUBSCRIPTIONS, dead_letter_queue

        if self.service not in TICKET_EVENT_SUBSCRIPTIONS:
            return
        import kombu
        from nameko import config

        try:
            with kombu.Connection(config["AMQP_URI"], connect_timeout=2) as connection:
                queue = dead_letter_queue(self.service)(connection.default_channel)
                _, count, _ = queue.queue_declare(passive=True)
        except Exception as exc:  # noqa: BLE001 - a scrape reports what it can
            SCRAPE_ERRORS.labels(self.service, "dead_letters").inc()
            log.warning("metric not read", gauge="dead_letters", error=f"{type(exc).__name__}: {exc}"[:200])
            return
        yield _gauge("guichet_dead_letters", "Messages waiting in the dead-letter queue", self.service, count)


def _gauge(name: str, documentation: str, service: str, value: Any) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["service"])
    family.add_metric([service], float(value or 0))
    return family


def metrics_response(container: Any) -> Response:
    """The Prometheus text exposition for ``container``'s service."""
    started = time.perf_counter()
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(ServiceGauges(container))
    body = generate_latest(REGISTRY) + generate_latest(scrape)
    log.debug("metrics scraped", duration_ms=round((time.perf_counter() - started) * 1000, 1))
    return Response(body, status=200, headers={"Content-Type": CONTENT_TYPE_LATEST})
