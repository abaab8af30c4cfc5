"""The escalation Nameko service: forwards local referents' requests to the central
support, escalates by itself what nobody handled in time, and fires the clock-driven
transitions (expired closure requests, recall of postponed tickets).

It consumes every ticket event (one durable queue bound to ``tickets.events`` with
``#``, idempotent through ``escalation.processed_events``): each one updates the
service's view of the ticket and its timers (``rules.plan``); ``EscalationRequested``
is also answered, by ``tickets.escalate_to`` or ``tickets.refuse_escalation``. A timer
entrypoint fires the due timers. Timers live in the database, never in memory, so a
restart loses none; each action carries the causing event's id in its idempotency key
(``escalate:``, ``expire:``, ``resume:``, ``auto-escalate:``), so none fires twice.

The clock is a dependency (``clock``: a ``now()`` callable), so tests move time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from nameko import config
from nameko.events import EventDispatcher, event_handler
from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from services.escalation import rules, storage
from services.escalation.http import EscalationBackend, EscalationHttp
from shared import contract  # the tickets' errors, registered: they come back typed
from shared.catalogue_copy import REVISION_SQL
from shared.consumer import consume_ticket_events
from shared.nameko_deps import CatalogueRequest, DatabasePool, ServiceRpc

log = structlog.stdlib.get_logger("guichet.escalation")

ACTOR = {"id": "system:escalation", "name": "escalation", "kind": "system"}
CONSUMER = "escalation"
DEFAULT_TICK_SECONDS = 30.0
BATCH = 50



def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock(DependencyProvider):
    """Workers get ``now()``; tests replace it (``replace_dependencies``) to move time."""

    def get_dependency(self, worker_ctx: Any) -> Callable[[], datetime]:
        return utcnow


class Tick(Timer):
    """A timer whose interval is ``ESCALATION_TICK_SECONDS`` (Nameko config, else the
    environment, else 30 s)."""

    def setup(self) -> None:
        configured = config.get("ESCALATION_TICK_SECONDS") or os.environ.get("ESCALATION_TICK_SECONDS")
        self.interval: float = float(configured or self.interval or DEFAULT_TICK_SECONDS)


tick = Tick.decorator


ESCALABLE_TEAMS = "EscalableTeamsChanged"


class EscalationService(EscalationHttp):
    name = "escalation"

    backend: EscalationBackend = DatabasePool(EscalationBackend)
    dispatch = EventDispatcher()
    clock: Callable[[], datetime] = Clock()
    tickets = ServiceRpc("tickets")
    # Routing announces its teams again if this copy missed the last announcement.
    catalogue_request = CatalogueRequest(REVISION_SQL.format(schema="escalation"))

    # -- routing's catalogue

    @event_handler("routing", "CatalogueChanged", requeue_on_error=True)
    def on_catalogue_changed(self, snapshot: dict[str, Any]) -> None:
        with self.backend.pool.connection() as conn:
            storage.apply_snapshot(conn, snapshot)
        self.announce_escalable_teams()

    def announce_escalable_teams(self) -> None:
        """Tell the tickets service where a referent's escalation can succeed now, so it
        offers ``escalate`` only there (a whole list: a copy that missed one is right
        again with the next)."""
        with self.backend.pool.connection() as conn:
            catalogue = storage.load_catalogue(conn)
            rows = storage.settings_rows(conn)
        if not catalogue.known:
            return
        teams = rules.escalable_teams(catalogue, rows, self.backend.default_support)
        self.dispatch(ESCALABLE_TEAMS, {"teams": teams, "at": datetime.now(UTC).isoformat()})

    # -- ticket events

    @consume_ticket_events("escalation")
    def on_ticket_event(self, message: dict[str, Any]) -> None:
        event_id, event_type, ticket = message["event_id"], message["event_type"], message["ticket"]
        with structlog.contextvars.bound_contextvars(
            ticket_id=ticket["id"], event_type=event_type, correlation_id=message.get("correlation_id")
        ):
            with self.backend.pool.connection() as conn:
                if storage.seen(conn, CONSUMER, event_id):
                    log.info("event already processed")
                    return
                catalogue = storage.load_catalogue(conn)
            decided = self.answer_request(message, catalogue) if event_type == "EscalationRequested" else None
            with self.backend.pool.connection() as conn, conn.transaction():
                if not storage.first_time(conn, CONSUMER, event_id):
                    return  # a redelivered twin got here first
                storage.follow(conn, message, rules.plan(message, catalogue))
                if decided is not None:
                    storage.record_escalation(conn, **decided)

    def answer_request(self, message: dict[str, Any], catalogue: rules.Catalogue) -> dict[str, Any] | None:
        """Forward a referent's request to the central support, or refuse it; returns the
        escalation row to record (None when the ticket is gone)."""
        event_id, ticket = message["event_id"], message["ticket"]
        team = ticket["department_id"]
        uai = team.partition(":")[2] if team and catalogue.is_referent_team(team) else None
        with self.backend.pool.connection() as conn:
            row = storage.settings_row(conn, uai) if uai else None
        settings = rules.settings_for(uai, row, catalogue, self.backend.default_support, team) if uai else None
        decision = rules.decide(ticket, settings, catalogue)
        options = {"causation_id": event_id, "correlation_id": message.get("correlation_id")}
        escalation = {
            "id": event_id, "ticket_id": ticket["id"], "establishment": uai or ticket.get("establishment"),
            "referent_department_id": team or "", "requested_by_id": message["actor"]["id"],
            "requested_by_name": message["actor"].get("name"), "reason": (message.get("data") or {}).get("reason", ""),
            "automatic": False, "requested_at": message["occurred_at"], "decided_at": self.clock(),
        }
        try:
            if decision.forward:
                try:
                    result = self.tickets.escalate_to(
                        ACTOR, ticket["id"], decision.support_department_id, reason=escalation["reason"],
                        idempotency_key=f"escalate:{event_id}", **options,
                    )
                    log.info("escalation forwarded", support=decision.support_department_id)
                    return {**escalation, "support_department_id": decision.support_department_id,
                            "status": "escalated", "escalated_version": result["version"]}
                except contract.DomainError as exc:
                    # The ticket moved on (closed, awaiting approval...) before the service got to it.
                    decision = rules.Decision(False, None, rules.no_longer_open_reason(exc.reason))
            try:
                self.tickets.refuse_escalation(
                    ACTOR, ticket["id"], decision.reason, idempotency_key=f"refuse-escalation:{event_id}", **options
                )
            except contract.DomainError as exc:
                log.warning("refusal not recorded on the ticket", error=str(exc))
            log.info("escalation refused", reason=decision.reason)
            return {**escalation, "support_department_id": None, "status": "refused",
                    "refusal_reason": decision.reason}
        except contract.TicketNotFound:
            log.warning("the ticket is gone")
            return None

    # -- the clock

    @tick(interval=DEFAULT_TICK_SECONDS, eager=True)
    def fire_due_timers(self) -> int:
        """Fire every timer whose time has come; returns how many were settled."""
        settled = 0
        while True:
            now = self.clock()
            batch = 0
            with self.backend.pool.connection() as conn, conn.transaction():
                due = storage.due_timers(conn, now, BATCH)
                for timer in due:
                    if self.fire(conn, timer, now):
                        batch += 1
            settled += batch
            if len(due) < BATCH or batch == 0:
                return settled

    def fire(self, conn: Any, timer: dict[str, Any], now: datetime) -> bool:
        """One timer's action, settled in the caller's transaction; False to try again at
        the next tick (the tickets service or the broker is unreachable)."""
        event_id, ticket_id, kind = str(timer["event_id"]), str(timer["ticket_id"]), timer["kind"]
        options = {"causation_id": event_id}
        with structlog.contextvars.bound_contextvars(ticket_id=ticket_id, timer=kind, causation_id=event_id):
            try:
                if kind == rules.EXPIRE_CLOSURE:
                    self.tickets.expire_closure(ACTOR, ticket_id, idempotency_key=f"expire:{event_id}", **options)
                elif kind == rules.RESUME:
                    self.tickets.resume(ACTOR, ticket_id, idempotency_key=f"resume:{event_id}", **options)
                else:
                    reason = rules.auto_escalation_reason(timer["first_response_hours"])
                    result = self.tickets.escalate_to(
                        ACTOR, ticket_id, timer["support_department_id"], reason=reason,
                        idempotency_key=f"auto-escalate:{event_id}", **options,
                    )
            except (contract.DomainError, contract.TicketNotFound) as exc:
                log.info("timer moot: the ticket moved on", error=str(exc))
                storage.settle_timer(conn, timer["event_id"], "cancelled", f"moot: {exc}")
                return True
            except Exception as exc:  # noqa: BLE001 - an RPC failure: the next tick retries (idempotently)
                log.warning("timer not fired, will retry", error=repr(exc))
                return False
            if kind == rules.FIRST_RESPONSE:
                storage.record_escalation(
                    conn, id=event_id, ticket_id=ticket_id, establishment=timer["establishment"],
                    referent_department_id=timer["team"], support_department_id=timer["support_department_id"],
                    requested_by_id=ACTOR["id"], requested_by_name=ACTOR["name"], reason=reason, automatic=True,
                    status="escalated", escalated_version=result["version"], requested_at=now, decided_at=now,
                )
            storage.settle_timer(conn, timer["event_id"], "fired", "done")
            log.info("timer fired")
            return True
