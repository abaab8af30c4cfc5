"""Membership changes reach ticket access without anyone calling routing on a hot path.

Routing and tickets run together over real HTTP and a throwaway vhost: an admin adds a
manager to a department through routing's API, and that manager can read the
department's tickets through the tickets API as soon as the tickets service has applied
routing's ``CatalogueChanged`` snapshot; removing them takes it away again. The test
polls with a deadline (how fast it is, is measured by ``make bench``, not asserted).
"""

from __future__ import annotations

from typing import Any

import pytest

from services.routing.service import RoutingService
from services.tickets.service import TicketsService
from shared import db
from tests.e2e.conftest import ALICE, MARC, ROOT, SECRET, Api, User
from tests.helpers import free_port, load_routing, wait_until

NORA = User("nora", "nora@univ.example", "Nora Vidal")

CONFIG = {
    "departments": [
        {"id": "dnum-ent", "label": "DNUM - ENT", "assignment_policy": "none",
         "managers": [{"user": "marc", "name": "Marc Leroy", "email": "marc@univ.example"}]},
    ],
    "categories": [{"id": "ent-connexion", "label": "Problème de connexion", "department": "dnum-ent"}],
}

DEPARTMENT = {"label": "DNUM - ENT", "assignment_policy": "none"}
MARC_ENTRY = {"user": "marc", "name": "Marc Leroy", "email": "marc@univ.example"}
NORA_ENTRY = {"user": "nora", "name": "Nora Vidal", "email": "nora@univ.example"}


def eventually(predicate, what: str) -> Any:
    """``wait_until`` with a 15 s deadline, polling every 20 ms."""
    return wait_until(predicate, timeout=15.0, what=what, interval=0.02)


@pytest.fixture
def both(container_factory, broker_uri, database_url, tickets_db, monkeypatch) -> tuple[Api, Api]:
    """(tickets, routing) on free ports, over CONFIG."""
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    with db.connect(database_url) as conn:
        load_routing(conn, CONFIG)
    ports = {"tickets": free_port(), "routing": free_port()}
    config = {"AMQP_URI": broker_uri, "DATABASE_URL": database_url,
              "HTTP_ADDRESSES": {name: f"127.0.0.1:{port}" for name, port in ports.items()}}
    container_factory(TicketsService, config).start()  # its queue exists before routing announces
    container_factory(RoutingService, config).start()
    tickets, routing = (Api(f"http://127.0.0.1:{ports[name]}") for name in ("tickets", "routing"))
    with tickets_db.connection() as conn:
        eventually(lambda: conn.execute("SELECT count(*) AS n FROM tickets.department_managers WHERE user_id = 'marc'"
                                        ).fetchone()["n"], "the tickets service's copy of the teams")
    return tickets, routing


def status_for(api: Api, user: User, ticket_id: str) -> int:
    return api.get(f"/api/v1/tickets/{ticket_id}", user).status_code


def test_a_manager_added_then_removed_gains_then_loses_access(both):
    tickets, routing = both
    ticket = tickets.submit(ALICE)
    eventually(lambda: tickets.get(f"/api/v1/tickets/{ticket['id']}", ALICE).json()["department"], "routing")
    assert status_for(tickets, MARC, ticket["id"]) == 200
    assert status_for(tickets, NORA, ticket["id"]) == 404
    assert ticket["id"] not in {t["id"] for t in tickets.get("/api/v1/tickets?scope=department", NORA).json()["items"]}

    added = routing.put("/api/v1/departments/dnum-ent", ROOT, json={**DEPARTMENT, "managers": [MARC_ENTRY, NORA_ENTRY]})
    assert added.status_code == 200, added.text
    eventually(lambda: status_for(tickets, NORA, ticket["id"]) == 200, "nora to see the department's ticket")
    assert ticket["id"] in {t["id"] for t in tickets.get("/api/v1/tickets?scope=department", NORA).json()["items"]}
    taken = tickets.act(ticket, "take", NORA)  # and act as a manager of it
    assert taken.status_code == 200, taken.text

    removed = routing.put("/api/v1/departments/dnum-ent", ROOT, json={**DEPARTMENT, "managers": [MARC_ENTRY]})
    assert removed.status_code == 200, removed.text
    eventually(lambda: status_for(tickets, NORA, ticket["id"]) == 404, "nora to lose the ticket")
    assert status_for(tickets, MARC, ticket["id"]) == 200
