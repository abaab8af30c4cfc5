"""The escalation service through the broker: the tickets, routing and escalation services
running for real on the test database and a throwaway vhost, tickets driven over RPC,
and the escalation service's clock moved instead of waited for.

Also the fixtures of ``tests/e2e/test_escalation_api.py``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kombu
import pytest
from nameko.standalone.rpc import ServiceRpcClient
from nameko.testing.services import entrypoint_waiter, replace_dependencies

from services.escalation.service import EscalationService
from services.routing.service import RoutingService
from services.tickets.domain import InvalidTransition
from services.tickets.service import TicketsService
from shared import db
from shared.calendar import WorkingCalendar
from shared.outbox import event_exchange
from tests.helpers import free_port, load_routing, wait_until

SECRET = "escalation-test-secret-of-at-least-32-bytes"
HOME = "0540001A"  # alice's establishment: referents rene and rachel
OTHER = "0880012B"  # referent rita
SUPPORT = "support-ent"

CONFIG = {
    "departments": [
        {"id": "referents-ent", "label": "Référents ENT", "per_establishment": True, "escalation_enabled": True,
         "managers": [{"user": "rene", "establishment": HOME}, {"user": "rachel", "establishment": HOME},
                      {"user": "rita", "establishment": OTHER}]},
        {"id": SUPPORT, "label": "Support ENT (niveau 2)", "closure_expiry_days": 10,
         "managers": [{"user": "sam"}, {"user": "sue"}]},
        {"id": "dnum-ent", "label": "DNUM - ENT", "managers": [{"user": "marc"}]},
    ],
    "categories": [
        {"id": "assistance-ent", "label": "Assistance ENT", "department": "referents-ent"},
        {"id": "messagerie", "parent": "assistance-ent", "label": "Messagerie"},
        {"id": "impression", "parent": "assistance-ent", "label": "Impression", "closure_expiry_days": 5},
        {"id": "ent", "label": "ENT", "department": "dnum-ent"},
    ],
}
MANAGERS = 6
ESCALATION_TABLES = (
    "escalation.settings, escalation.escalations, escalation.tickets, escalation.timers, escalation.team_managers,"
    " escalation.teams, escalation.categories, escalation.catalogue_revision, escalation.processed_events"
)


def person(login: str, establishment: str | None = HOME, admin: bool = False) -> dict[str, Any]:
    return {"id": login, "name": login.title(), "email": f"{login}@univ.example", "establishment": establishment,
            "admin": admin}


ALICE, BOB, RENE, RITA, SAM, MARC = (person("alice"), person("bob", OTHER), person("rene"), person("rita", OTHER),
                                     person("sam", None), person("marc", None))
ROOT = person("root", None, admin=True)


class MovableClock:
    """The escalation service's ``now()``: the real time plus an offset tests move."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **kwargs: float) -> None:
        self.offset += timedelta(**kwargs)

    def set(self, moment: datetime) -> None:
        """From now on, the clock reads ``moment`` (then moves on with the real time)."""
        self.offset = moment - datetime.now(UTC)


@dataclass
class Desk:
    """The three services running, the escalation service's clock, and helpers."""

    factory: Any
    config: dict[str, Any]
    pool: Any
    clock: MovableClock = field(default_factory=MovableClock)
    escalation: Any = None
    ports: dict[str, int] = field(default_factory=dict)

    def start_escalation(self) -> Any:
        """A new escalation container (a restart, when one ran before) on the same clock."""
        self.ports["escalation"] = free_port()
        config = {**self.config, "HTTP_ADDRESSES": {**self.config["HTTP_ADDRESSES"],
                                                     "escalation": f"127.0.0.1:{self.ports['escalation']}"}}
        container = self.factory(EscalationService, config)
        replace_dependencies(container, clock=self.clock)
        container.start()
        self.escalation = container
        return container

    def stop_escalation(self) -> None:
        self.escalation.stop()
        self.escalation = None

    def tick(self) -> None:
        """Wait for one whole run of the timer entrypoint that starts after this call."""
        with entrypoint_waiter(self.escalation, "fire_due_timers", timeout=10):
            pass

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with self.pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def set_settings(self, uai: str, enabled: bool = True, support: str = SUPPORT, hours: int | None = None) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO escalation.settings (establishment, enabled, support_department_id, first_response_hours)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (establishment) DO UPDATE SET enabled = EXCLUDED.enabled,"
                " support_department_id = EXCLUDED.support_department_id,"
                " first_response_hours = EXCLUDED.first_response_hours",
                (uai, enabled, support, hours),
            )

    def timers(self, ticket_id: str, kind: str) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM escalation.timers WHERE ticket_id = %s AND kind = %s ORDER BY started_at",
                          ticket_id, kind)


@pytest.fixture
def desk(container_factory, broker_uri, database_url, tickets_db, monkeypatch) -> Desk:
    """tickets, escalation and routing running (escalation before routing, so its queue
    for routing's catalogue exists when routing announces it); both copies received."""
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    with db.connect(database_url) as conn:
        load_routing(conn, CONFIG, ESCALATION_TABLES)
    ports = {"tickets": free_port(), "routing": free_port()}
    config = {"AMQP_URI": broker_uri, "DATABASE_URL": database_url, "ESCALATION_TICK_SECONDS": 0.1,
              "HTTP_ADDRESSES": {name: f"127.0.0.1:{port}" for name, port in ports.items()}}
    desk = Desk(container_factory, config, tickets_db, ports=ports)
    container_factory(TicketsService, config).start()
    desk.start_escalation()
    container_factory(RoutingService, config).start()

    def copied() -> bool:
        tickets = desk.query("SELECT count(*) AS n FROM tickets.department_managers")[0]["n"]
        ours = desk.query("SELECT count(*) AS n FROM escalation.team_managers")[0]["n"]
        return tickets == ours == MANAGERS

    wait_until(copied, what="the copies of routing's teams")
    return desk


def file_ticket(rpc, requester=ALICE, category="messagerie") -> dict[str, Any]:
    ticket = rpc.submit(requester, category, "La messagerie ne s'ouvre plus", "Écran blanc depuis ce matin.")
    return wait_until(lambda: (t := rpc.get(requester, ticket["id"]))["department"] and t, what="routing")


def history(rpc, ticket_id: str, who=ROOT) -> list[dict[str, Any]]:
    return rpc.history(who, ticket_id)


def types(rpc, ticket_id: str) -> Counter:
    return Counter(h["type"] for h in history(rpc, ticket_id))


# --- manual escalation -----------------------------------------------------------------------------


def test_a_referents_request_is_forwarded_once_even_when_redelivered(desk, broker_uri):
    with ServiceRpcClient("tickets") as rpc:
        ticket = file_ticket(rpc)
        assert ticket["department"]["id"] == f"referents-ent:{HOME}"
        rpc.escalate(RENE, ticket["id"], "Problème de l'annuaire académique")
        escalated = wait_until(lambda: (t := rpc.get(RENE, ticket["id"]))["escalation"] == "escalated" and t,
                               what="the escalation")
        assert escalated["department"]["id"] == SUPPORT
        entry = [h for h in history(rpc, ticket["id"]) if h["type"] == "TicketEscalated"][0]
        assert entry["actor"]["id"] == "system:escalation"
        assert entry["data"] == {"department_id": SUPPORT, "referent_department_id": f"referents-ent:{HOME}",
                                 "reason": "Problème de l'annuaire académique"}
        # the same EscalationRequested delivered again: nothing new
        with desk.pool.connection() as conn:
            row = conn.execute("SELECT payload, global_position FROM tickets.outbox"
                               " WHERE routing_key = 'EscalationRequested'").fetchone()
        with entrypoint_waiter(desk.escalation, "on_ticket_event", timeout=10):
            with kombu.Connection(broker_uri) as conn:
                conn.Producer().publish({**row["payload"], "global_position": row["global_position"]},
                                        exchange=event_exchange(), routing_key="EscalationRequested",
                                        serializer="json")
        assert types(rpc, ticket["id"])["TicketEscalated"] == 1
    [recorded] = desk.query("SELECT * FROM escalation.escalations")
    assert (recorded["status"], recorded["automatic"], recorded["requested_by_id"]) == ("escalated", False, "rene")


def escalable_announced(desk) -> None:
    """Wait until the tickets service heard where escalation succeeds."""
    wait_until(lambda: desk.query("SELECT 1 FROM tickets.escalable_known"), what="the escalable teams announced")


def test_escalation_disabled_for_the_establishment_is_not_offered_and_refused(desk):
    """WORKFLOW.md: escalate is offered only where the settings allow it, else refused up
    front (the escalation service's own refusal, for a copy not yet up to date, is in
    tests/unit/escalation)."""
    import requests

    from shared.auth import issue_token
    from shared.config import Settings

    token = issue_token(Settings.from_env({"GUICHET_JWT_SECRET": SECRET}), sub="root", email="root@univ.example",
                        admin=True)
    put = requests.put(f"http://127.0.0.1:{desk.ports['escalation']}/api/v1/establishments/{OTHER}/escalation",
                       json={"enabled": False, "support_department_id": SUPPORT}, timeout=10,
                       headers={"Authorization": f"Bearer {token}"})
    assert put.status_code == 200, put.text
    with ServiceRpcClient("tickets") as rpc:
        ticket = file_ticket(rpc, BOB)
        wait_until(lambda: "escalate" not in rpc.get(RITA, ticket["id"])["allowed_actions"], what="not offered")
        with pytest.raises(InvalidTransition, match="not enabled"):
            rpc.escalate(RITA, ticket["id"], "Je ne sais pas faire")
        after = rpc.get(RITA, ticket["id"])
    assert (after["escalation"], after["department"]["id"]) == ("none", f"referents-ent:{OTHER}")
    assert desk.query("SELECT * FROM escalation.escalations") == []


def test_a_ticket_of_a_global_department_is_not_forwarded(desk):
    escalable_announced(desk)
    with ServiceRpcClient("tickets") as rpc:
        ticket = file_ticket(rpc, category="ent")
        assert "escalate" not in rpc.get(MARC, ticket["id"])["allowed_actions"]
        with pytest.raises(InvalidTransition):
            rpc.escalate(MARC, ticket["id"], "Trop compliqué")
        assert rpc.get(MARC, ticket["id"])["department"]["id"] == "dnum-ent"


# --- clock-driven transitions -------------------------------------------------------------------------


def closure_requested(rpc, desk, category="impression"):
    ticket = file_ticket(rpc, category=category)
    rpc.take(RENE, ticket["id"])
    rpc.request_closure(RENE, ticket["id"], "Pilote réinstallé")
    [timer] = wait_until(lambda: desk.timers(ticket["id"], "expire_closure"), what="the expiry timer")
    return ticket, timer


def test_an_unanswered_closure_request_expires_once_across_restarts(desk):
    with ServiceRpcClient("tickets") as rpc:
        ticket, timer = closure_requested(rpc, desk)
        assert timer["due_at"] - timer["started_at"] == timedelta(days=5)  # the category's delay
        desk.clock.advance(days=4, hours=23)
        desk.tick()
        assert rpc.get(ALICE, ticket["id"])["status"] == "CLOSURE_REQUESTED"
        desk.stop_escalation()  # the deadline passes while the service is down
        desk.clock.advance(hours=2)
        desk.start_escalation()
        closed = wait_until(lambda: (t := rpc.get(ALICE, ticket["id"]))["status"] == "CLOSED" and t, what="expiry")
        assert closed["resolution"] == "expired"
        desk.stop_escalation()
        desk.start_escalation()
        desk.tick()
        desk.tick()
        assert types(rpc, ticket["id"])["ClosureExpired"] == 1
    [timer] = desk.timers(ticket["id"], "expire_closure")
    assert timer["state"] == "fired"


def test_the_expiry_delay_falls_back_to_the_department_then_14_days(desk):
    with ServiceRpcClient("tickets") as rpc:
        _, timer = closure_requested(rpc, desk, category="messagerie")
    assert timer["due_at"] - timer["started_at"] == timedelta(days=14)


def test_a_refused_closure_cancels_its_expiry(desk):
    with ServiceRpcClient("tickets") as rpc:
        ticket, _ = closure_requested(rpc, desk)
        rpc.refuse_closure(ALICE, ticket["id"], "Toujours en panne")
        wait_until(lambda: desk.timers(ticket["id"], "expire_closure")[0]["state"] == "cancelled",
                   what="the cancellation")
        desk.clock.advance(days=30)
        desk.tick()
        assert rpc.get(ALICE, ticket["id"])["status"] == "IN_PROGRESS"


def test_a_postponed_ticket_comes_back_at_its_recall_date_once(desk):
    with ServiceRpcClient("tickets") as rpc:
        ticket = file_ticket(rpc)
        rpc.take(RENE, ticket["id"])
        until = (datetime.now(UTC) + timedelta(days=3)).isoformat()
        rpc.postpone(RENE, ticket["id"], "En attente du prestataire", until=until)
        wait_until(lambda: desk.timers(ticket["id"], "resume"), what="the recall timer")
        desk.tick()
        assert rpc.get(ALICE, ticket["id"])["status"] == "POSTPONED"
        desk.stop_escalation()
        desk.clock.advance(days=3, minutes=1)
        desk.start_escalation()
        wait_until(lambda: rpc.get(ALICE, ticket["id"])["status"] == "IN_PROGRESS", what="the recall")
        desk.tick()
        resumed = [h for h in history(rpc, ticket["id"]) if h["type"] == "TicketResumed"]
    assert [(h["actor"]["id"], h["data"]) for h in resumed] == [("system:escalation", {"automatic": True})]


def test_a_ticket_resumed_by_hand_is_not_resumed_again(desk):
    with ServiceRpcClient("tickets") as rpc:
        ticket = file_ticket(rpc)
        rpc.take(RENE, ticket["id"])
        rpc.postpone(RENE, ticket["id"], "Congés", until=(datetime.now(UTC) + timedelta(days=1)).isoformat())
        wait_until(lambda: desk.timers(ticket["id"], "resume"), what="the recall timer")
        rpc.resume(RENE, ticket["id"])
        rpc.postpone(RENE, ticket["id"], "Encore", until=(datetime.now(UTC) + timedelta(days=10)).isoformat())
        wait_until(lambda: [t["state"] for t in desk.timers(ticket["id"], "resume")] == ["cancelled", "pending"],
                   what="the first recall cancelled, the second pending")
        desk.clock.advance(days=2)
        desk.tick()
        assert rpc.get(ALICE, ticket["id"])["status"] == "POSTPONED"  # the first recall was moot
        assert types(rpc, ticket["id"])["TicketResumed"] == 1


# --- automatic escalation ------------------------------------------------------------------------------


def test_a_ticket_nobody_took_is_escalated_after_the_deadline_and_not_before(desk):
    desk.set_settings(HOME, hours=4)
    with ServiceRpcClient("tickets") as rpc:
        waiting = file_ticket(rpc)
        taken = file_ticket(rpc)
        wait_until(lambda: desk.timers(waiting["id"], "first_response") and desk.timers(taken["id"], "first_response"),
                   what="the first-response timers")
        rpc.take(RENE, taken["id"])
        wait_until(lambda: desk.timers(taken["id"], "first_response")[0]["state"] == "cancelled",
                   what="the taken ticket's deadline cancelled")
        # Four working hours from the submission (nights and weekends do not count).
        started_at = desk.timers(waiting["id"], "first_response")[0]["started_at"]
        desk.clock.set(WorkingCalendar.from_env().add_working_hours(started_at, 4) - timedelta(minutes=1))
        desk.tick()
        assert rpc.get(ALICE, waiting["id"])["escalation"] == "none"
        desk.clock.advance(minutes=2)
        escalated = wait_until(lambda: (t := rpc.get(ALICE, waiting["id"]))["escalation"] == "escalated" and t,
                               what="the automatic escalation")
        desk.tick()
        assert escalated["department"]["id"] == SUPPORT
        entry = [h for h in history(rpc, waiting["id"]) if h["type"] == "TicketEscalated"]
        assert len(entry) == 1 and entry[0]["actor"]["id"] == "system:escalation"
        assert "dans le délai de 4 heures ouvrées" in entry[0]["data"]["reason"]
        assert rpc.get(ALICE, taken["id"])["escalation"] == "none"
        assert rpc.can_view(SAM, waiting["id"]) and not rpc.can_view(SAM, taken["id"])
    [recorded] = desk.query("SELECT * FROM escalation.escalations")
    assert (recorded["automatic"], str(recorded["ticket_id"])) == (True, waiting["id"])


def test_the_first_response_deadline_counts_working_hours_across_a_weekend(desk, monkeypatch):
    # Opening hours 08:30-12:00 and 13:30-17:30, Paris time: a ticket submitted on Friday
    # 27 November 2026 at 16:00 has 1 h 30 on Friday, then 2 h 30 from Monday 08:30, so
    # its 4 working hours end on Monday 30 November at 11:00 (10:00 UTC), not on Friday
    # at 20:00 as the wall clock would say.
    monkeypatch.setenv("WORKING_HOURS", "08:30-12:00,13:30-17:30")
    monkeypatch.setenv("WORKING_TIMEZONE", "Europe/Paris")
    desk.set_settings(HOME, hours=4)
    friday = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    with ServiceRpcClient("tickets") as rpc:
        ticket = file_ticket(rpc)
        wait_until(lambda: desk.timers(ticket["id"], "first_response"), what="the first-response timer")
        with desk.pool.connection() as conn:  # as if it had been submitted on Friday afternoon
            conn.execute("UPDATE escalation.timers SET started_at = %s WHERE ticket_id = %s AND kind = 'first_response'",
                         (friday, ticket["id"]))
        for moment in (datetime(2026, 11, 27, 19, 30, tzinfo=UTC),  # Friday night: 4 h by the clock
                       datetime(2026, 11, 29, 12, 0, tzinfo=UTC),  # Sunday
                       datetime(2026, 11, 30, 9, 58, tzinfo=UTC)):  # Monday 10:58 in Paris
            desk.clock.set(moment)
            desk.tick()
            assert rpc.get(ALICE, ticket["id"])["escalation"] == "none", moment
            assert desk.timers(ticket["id"], "first_response")[0]["state"] == "pending"
        desk.clock.set(datetime(2026, 11, 30, 10, 1, tzinfo=UTC))  # Monday 11:01 in Paris
        wait_until(lambda: rpc.get(ALICE, ticket["id"])["escalation"] == "escalated", what="the automatic escalation")
        desk.tick()
        assert desk.timers(ticket["id"], "first_response")[0]["state"] == "fired"


def test_no_automatic_escalation_without_a_deadline(desk):
    with ServiceRpcClient("tickets") as rpc:
        ticket = file_ticket(rpc)
        wait_until(lambda: desk.timers(ticket["id"], "first_response"), what="the first-response timer")
        desk.clock.advance(days=60)
        desk.tick()
        assert rpc.get(ALICE, ticket["id"])["escalation"] == "none"
