"""The reporting Nameko service: statistics projected from the ticket events.

It consumes every ticket event (its durable queue ``reporting.ticket-events`` bound to
``tickets.events`` with ``#``): each one is kept with the ticket's others, and the
ticket's facts are folded again from them (``facts.project``), in one transaction with
the ``reporting.processed_events`` row, so a redelivery changes nothing and the order
events arrive in does not matter. ``guichet rebuild-projections`` replays the event log
into the same tables (``storage.rebuild``). Routing's ``CatalogueChanged`` snapshots
keep the copy of teams that decides who sees which figures.
"""

from __future__ import annotations

from typing import Any

import structlog
from nameko.events import event_handler

from services.reporting import storage
from services.reporting.http import ReportingBackend, ReportingHttp
from shared.catalogue_copy import REVISION_SQL
from shared.consumer import consume_ticket_events
from shared.nameko_deps import CatalogueRequest, DatabasePool

log = structlog.stdlib.get_logger("guichet.reporting")

CONSUMER = "reporting"


class ReportingService(ReportingHttp):
    name = "reporting"

    backend: ReportingBackend = DatabasePool(ReportingBackend, max_size=4)
    # Routing announces its teams again if this copy missed the last announcement.
    catalogue_request = CatalogueRequest(REVISION_SQL.format(schema="reporting"))

    @event_handler("routing", "CatalogueChanged", requeue_on_error=True)
    def on_catalogue_changed(self, snapshot: dict[str, Any]) -> None:
        with self.backend.pool.connection() as conn:
            storage.apply_snapshot(conn, snapshot)

    @consume_ticket_events("reporting")
    def on_ticket_event(self, message: dict[str, Any]) -> None:
        event_id, event_type = message["event_id"], message["event_type"]
        with structlog.contextvars.bound_contextvars(
            stream_id=message.get("stream_id"), event_type=event_type, correlation_id=message.get("correlation_id")
        ):
            with self.backend.pool.connection() as conn, conn.transaction():
                if not storage.first_time(conn, CONSUMER, event_id):
                    log.info("event already processed")
                    return
                ticket_id = storage.keep_event(conn, message)
                facts = storage.refold(conn, ticket_id, self.backend.calendar)
            log.info("ticket facts folded", version=facts.version, status=facts.status)
