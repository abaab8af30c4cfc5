"""The routing Nameko service: sends each ticket to its team and, per the team's policy,
to one of its available managers; publishes the teams and the category catalogue.

It consumes every ticket event (one durable queue bound to ``tickets.events`` with
``#``): all of them keep its count of open tickets per manager (``least_loaded``);
``TicketSubmitted``, ``TicketMoved`` and ``TicketReturnedToReferent`` also route. It
changes tickets only through the tickets service's RPC, as ``system:routing``, with the
causing event's id in the idempotency key, so a redelivered event routes nothing twice.
"""

from __future__ import annotations

import hashlib
from typing import Any

import structlog
from nameko.extensions import DependencyProvider

from services.routing import storage
from services.routing.catalogue import Route, choose_assignee
from services.routing.http import RoutingBackend, RoutingHttp
from shared import contract  # the tickets' errors, registered: they come back typed
from shared.consumer import consume_ticket_events
from shared.nameko_deps import DatabasePool, OutboxRelayRunner, ServiceRpc, rpc

log = structlog.stdlib.get_logger("guichet.routing")

ACTOR = {"id": "system:routing", "name": "routing", "kind": "system"}
CONSUMER = "routing"
ROUTING_EVENTS = ("TicketSubmitted", "TicketMoved", "TicketReturnedToReferent")
NOT_FINAL = {"FREE", "IN_PROGRESS", "WAITING_FOR_INFO", "POSTPONED", "CLOSURE_REQUESTED"}



class CatalogueAnnouncer(DependencyProvider):
    """On start, queue a snapshot of the catalogue, so a service that starts later, or
    missed one, gets the current teams and categories without asking."""

    def start(self) -> None:
        from nameko import config

        from shared import db

        with db.connect(config["DATABASE_URL"]) as conn:
            catalogue = storage.load_catalogue(conn)
            if catalogue.departments:
                with conn.transaction():
                    storage.announce(conn, catalogue)


def _policy_applies_again(message: dict[str, Any]) -> bool:
    """A ticket escalated, or released by the system after a change of team (not by
    routing itself, which assigns right after the release it causes)."""
    if message["event_type"] == "TicketEscalated":
        return True
    return (message["event_type"] == "TicketReleased" and bool(message["data"].get("automatic"))
            and message["actor"]["id"] != ACTOR["id"])


def _team_lock(team: str) -> int:
    return int.from_bytes(hashlib.sha256(f"routing-team:{team}".encode()).digest()[:7], "big")


class RoutingService(RoutingHttp):
    name = "routing"

    backend: RoutingBackend = DatabasePool(RoutingBackend)
    relay = OutboxRelayRunner("routing", exchange=storage.EXCHANGE)
    announcer = CatalogueAnnouncer()
    tickets = ServiceRpc("tickets")

    @rpc
    def announce_catalogue(self, known_revision: int | None = None) -> bool:
        """Queue a snapshot of the catalogue unless ``known_revision`` is already the last
        one announced (a service starting with an up-to-date copy); True if queued."""
        with self.backend.pool.connection() as conn, conn.transaction():
            storage.lock_catalogue(conn)
            last = conn.execute(
                "SELECT max(global_position) AS p FROM routing.outbox WHERE routing_key = %s", (storage.CATALOGUE_CHANGED,)
            ).fetchone()["p"]
            if known_revision is not None and last is not None and known_revision >= last:
                return False
            catalogue = storage.load_catalogue(conn)
            if not catalogue.departments:
                return False
            storage.announce(conn, catalogue)
            return True

    @consume_ticket_events("routing")
    def on_ticket_event(self, message: dict[str, Any]) -> None:
        event_type, ticket = message["event_type"], message["ticket"]
        with structlog.contextvars.bound_contextvars(
            ticket_id=ticket["id"], event_type=event_type, correlation_id=message.get("correlation_id")
        ):
            with self.backend.pool.connection() as conn:
                storage.track_ticket(conn, ticket, ticket["status"] in NOT_FINAL)
            if event_type in ROUTING_EVENTS or _policy_applies_again(message):
                self.route(message)

    def route(self, message: dict[str, Any]) -> None:
        event_id, ticket = message["event_id"], message["ticket"]
        with self.backend.pool.connection() as conn:
            if conn.execute(
                "SELECT 1 FROM routing.processed_events WHERE consumer = %s AND event_id = %s", (CONSUMER, event_id)
            ).fetchone():
                log.info("event already routed")
                return
            catalogue = storage.current_catalogue(conn)
        try:
            if message["event_type"] in ("TicketReturnedToReferent", "TicketReleased", "TicketEscalated"):
                # Back with its referents, released after a change of team, or escalated to
                # the central support: the team is set, only its policy may give an assignee.
                team = ticket["department_id"]
                department = catalogue.departments.get(team.partition(":")[0])
                route = Route(team, team.partition(":")[0], department.assignment_policy if department else "none",
                              0, "returned to the referents")
                routed = ticket
            else:
                route = catalogue.route(ticket["category_id"], ticket["establishment"])
                routed = self.tickets.route(
                    ACTOR, ticket["id"], route.team, idempotency_key=f"route:{event_id}", causation_id=event_id
                )
            log.info("ticket routed", team=route.team, why=route.reason)
            if routed["assignee"] is None and routed["status"] == "FREE":
                self.assign(route, routed, event_id)
            elif message["event_type"] == "TicketEscalated" and routed["status"] in NOT_FINAL - {"CLOSURE_REQUESTED"}:
                # The support's policy assigns within the support team, even when a
                # referent was handling it (the referents keep full access).
                self.assign(route, routed, event_id)
        except (contract.DomainError, contract.TicketNotFound) as exc:
            # The ticket moved on (closed, cancelled...) before routing got to it.
            log.warning("routing refused by the ticket", error=str(exc))
        with self.backend.pool.connection() as conn:
            storage.first_time(conn, CONSUMER, event_id)

    def assign(self, route: Route, ticket: dict[str, Any], event_id: str, reuse: bool = True) -> None:
        """Give the ticket to a manager of its team, per the team's policy.

        The decision is taken under the team's lock and written down, with the ticket
        counted in its assignee's load, before the lock is released; the call to the
        tickets service comes after, so the lock is held for a few queries, not for a
        round trip. If the ticket refuses the assignment, the tentative load is taken
        back. If routing dies in between, the redelivered event finds the decision and
        asks for the same assignee under the same idempotency key: the tickets service
        then appends one assignment, whether or not the first call reached it. Should the
        ticket refuse that assignee now (no longer a manager, say), routing chooses again,
        once (a refusal leaves the idempotency key unused).
        """
        ticket_id = ticket["id"]
        with self.backend.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_team_lock(route.team),))
            assignee = storage.decided_assignee(conn, event_id) if reuse else None
            reused = assignee is not None
            if reused:
                log.info("assignment already decided", team=route.team, assignee=assignee)
            else:
                catalogue = storage.current_catalogue(conn)
                chosen, why = choose_assignee(
                    route.policy, catalogue.team_managers(route.team),
                    storage.last_assignee(conn, route.team), storage.loads(conn, route.team),
                )
                log.info("assignment decision", team=route.team, policy=route.policy,
                         assignee=chosen.user_id if chosen else None, why=why)
                if chosen is None:
                    return
                assignee = chosen.user_id
                storage.remember_assignee(conn, route.team, assignee)
                storage.count_tentatively(conn, ticket_id, route.team, assignee, ticket["version"])
                storage.record_decision(conn, event_id, ticket_id, route.team, assignee)
        try:
            self.tickets.assign(ACTOR, ticket_id, assignee, idempotency_key=f"assign:{event_id}", causation_id=event_id)
        except contract.DomainError as exc:
            log.warning("assignment refused by the ticket", assignee=assignee, error=str(exc))
            with self.backend.pool.connection() as conn:
                storage.uncount_tentative(conn, ticket_id, assignee, ticket["version"])  # type: ignore[arg-type]  # set: we got here by assigning
            if reused:
                self.assign(route, ticket, event_id, reuse=False)
