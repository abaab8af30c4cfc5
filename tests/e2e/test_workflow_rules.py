"""Issue #12's smaller rules through the running services (real HTTP, the broker, the
test database): a subject is one line, the requester cannot reopen a refused ticket, a
category that open tickets use cannot be deleted."""

from __future__ import annotations

import pytest

from services.routing.service import RoutingService
from services.tickets.service import TicketsService
from shared import db
from tests.e2e.conftest import ALICE, MARC, ROOT, SECRET, Api
from tests.e2e.test_tickets_api import ok, problem
from tests.helpers import load_routing, serve, wait_until

CONFIG = {
    "departments": [
        {"id": "dnum-ent", "label": "DNUM - ENT", "assignment_policy": "none",
         "managers": [{"user": "marc", "name": "Marc Leroy", "email": "marc@univ.example"}]},
    ],
    "categories": [
        {"id": "ent-connexion", "label": "Problème de connexion", "department": "dnum-ent"},
        {"id": "wifi", "label": "Wifi", "department": "dnum-ent"},
        {"id": "vide", "label": "Catégorie sans ticket", "department": "dnum-ent"},
    ],
}


@pytest.fixture
def desk(container_factory, broker_uri, database_url, tickets_db, monkeypatch) -> tuple[Api, Api]:
    """tickets and routing running over HTTP; marc manages dnum-ent."""
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    with db.connect(database_url) as conn:
        load_routing(conn, CONFIG)
    options = {"AMQP_URI": broker_uri, "DATABASE_URL": database_url}
    tickets = Api(serve(container_factory, TicketsService, "tickets", **options))
    routing = Api(serve(container_factory, RoutingService, "routing", **options))

    def copied() -> bool:
        with tickets_db.connection() as conn:
            return conn.execute("SELECT count(*) AS n FROM tickets.department_managers").fetchone()["n"] == 1

    wait_until(copied, what="the tickets' copy of the teams")
    return tickets, routing


def routed(tickets: Api, **fields: str) -> dict:
    ticket = tickets.submit(ALICE, **fields)
    return wait_until(lambda: (t := ok(tickets.get(f"/api/v1/tickets/{ticket['id']}", ALICE)))["department"] and t,
                      what="the ticket routed")


@pytest.mark.parametrize("subject", ["Connexion\nimpossible", "Connexion\r\nimpossible", "Écran\u2028noir"])
def test_a_subject_is_one_line(desk, subject):
    tickets, _ = desk
    body = {"category_id": "ent-connexion", "subject": subject, "description": "Écran blanc."}
    error = problem(tickets.post("/api/v1/tickets", ALICE, json=body), 422)
    assert "subject" in error["errors"] and "one line" in error["detail"]
    ticket = routed(tickets)
    error = problem(tickets.act(ticket, "change-subject", ALICE, subject=subject), 422)
    assert "subject" in error["errors"]
    assert ok(tickets.get(f"/api/v1/tickets/{ticket['id']}", ALICE))["subject"] == "Connexion impossible"


def test_the_requester_cannot_reopen_a_refused_ticket(desk):
    tickets, _ = desk
    ticket = routed(tickets)
    refused = ok(tickets.act(ticket, "refuse", MARC, reason="Hors du périmètre"))
    assert "reopen" not in ok(tickets.get(f"/api/v1/tickets/{ticket['id']}", ALICE))["allowed_actions"]
    problem(tickets.act(ticket, "reopen", ALICE, reason="Mais si !"), 403)
    assert ok(tickets.get(f"/api/v1/tickets/{ticket['id']}", ALICE))["version"] == refused["version"]
    # a cancelled one, they may; and a manager may reopen a refused one
    assert ok(tickets.act(ticket, "reopen", MARC))["status"] == "FREE"
    ok(tickets.act(ticket, "cancel", ALICE))
    assert ok(tickets.act(ticket, "reopen", ALICE))["status"] == "FREE"


def test_a_category_that_open_tickets_use_cannot_be_deleted(desk):
    tickets, routing = desk
    ticket = routed(tickets, category_id="wifi")
    wait_until(lambda: routing.delete("/api/v1/categories/wifi", ROOT).status_code == 409,
               what="routing to know of the open ticket")
    error = problem(routing.delete("/api/v1/categories/wifi", ROOT), 409)
    assert "open ticket" in error["detail"] and "wifi" in error["detail"]
    assert ok(routing.get("/api/v1/categories/wifi", ALICE))["id"] == "wifi"  # still there
    assert routing.delete("/api/v1/categories/vide", ROOT).status_code == 204  # unused: deleted
    # once the ticket is closed, the category can go
    ok(tickets.act(ticket, "close", ALICE))
    wait_until(lambda: routing.delete("/api/v1/categories/wifi", ROOT).status_code == 204,
               what="the category deleted once its ticket is closed")
