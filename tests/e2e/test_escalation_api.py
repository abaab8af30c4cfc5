"""Escalation end to end over real HTTP: the tickets, routing and escalation services
running, people acting through the tickets API with their tokens, and the escalation
API (``API.md``, "Escalations")."""

from __future__ import annotations

from typing import Any

import pytest

from shared.config import Settings
from tests.e2e.conftest import Api, User
from tests.helpers import wait_until
from tests.integration.test_escalation_flow import HOME, OTHER, SECRET, SUPPORT, desk  # noqa: F401

ALICE = User("alice", "alice@univ.example", "Alice Martin", HOME)        # requester
BOB = User("bob", "bob@univ.example", "Bob Durand", OTHER)               # requester elsewhere
RENE = User("rene", "rene@lycee.example", "René Lefebvre", HOME)         # referent of HOME
RACHEL = User("rachel", "rachel@lycee.example", "Rachel Simon", HOME)    # referent of HOME
RITA = User("rita", "rita@lycee.example", "Rita Moreau", OTHER)          # referent of OTHER
SAM = User("sam", "sam@support.example", "Sam Girard", None)             # central support
MARC = User("marc", "marc@univ.example", "Marc Leroy", None)             # manager of dnum-ent
ROOT = User("root", "root@univ.example", "Admin", None, admin=True)


class Clients:
    """One API client per service, signing tokens with the test secret."""

    def __init__(self, running: Any) -> None:
        self.desk = running
        self.tickets = self._client(running.ports["tickets"])

    @staticmethod
    def _client(port: int) -> Api:
        api = Api(f"http://127.0.0.1:{port}")
        api.settings = Settings.from_env({"GUICHET_JWT_SECRET": SECRET})
        return api

    @property
    def escalation(self) -> Api:
        return self._client(self.desk.ports["escalation"])  # a restart changes the port

    def ticket(self, ticket_id: str, user: User) -> dict[str, Any]:
        response = self.tickets.get(f"/api/v1/tickets/{ticket_id}", user)
        assert response.status_code == 200, response.text
        return response.json()

    def history(self, ticket_id: str, user: User) -> list[dict[str, Any]]:
        return self.tickets.get(f"/api/v1/tickets/{ticket_id}/history", user).json()["items"]

    def file(self, user: User, category: str = "messagerie") -> dict[str, Any]:
        ticket = self.tickets.submit(user, category_id=category, subject="La messagerie ne s'ouvre plus",
                                     description="Écran blanc après la connexion.")
        return wait_until(lambda: (t := self.ticket(ticket["id"], user))["department"] and t, what="routing")


@pytest.fixture
def clients(desk) -> Clients:  # noqa: F811 - the fixture imported above
    return Clients(desk)


def test_the_full_exchange_between_requester_referent_and_central_support(clients):
    api = clients.tickets
    ticket = clients.file(ALICE)
    ticket_id = ticket["id"]
    # the establishment's referents get it; the central support and other referents do not see it
    assert ticket["department"]["id"] == f"referents-ent:{HOME}"
    assert "escalate" in clients.ticket(ticket_id, RENE)["allowed_actions"]
    for outsider in (SAM, RITA):
        assert api.get(f"/api/v1/tickets/{ticket_id}", outsider).status_code == 404
    assert clients.escalation.get("/api/v1/escalations", SAM).json()["items"] == []

    # a referent forwards it ("Transmettre la demande au support")
    asked = api.act(ticket_id, "escalate", RENE, reason="Compte bloqué dans l'annuaire académique")
    assert asked.status_code == 200, asked.text
    assert asked.json()["escalation"] in ("requested", "escalated")
    wait_until(lambda: clients.ticket(ticket_id, RENE)["escalation"] == "escalated", what="the escalation")

    # the central support sees it, answers; the requester and the referents see the answer
    seen = clients.ticket(ticket_id, SAM)
    assert seen["department"]["id"] == SUPPORT
    answer = "Compte débloqué dans l'annuaire : reconnectez-vous."
    commented = api.post(f"/api/v1/tickets/{ticket_id}/comments", SAM, json={"body": answer, "visibility": "public"})
    assert commented.status_code == 201, commented.text
    for reader in (ALICE, RENE, RACHEL):
        assert answer in [c["body"] for c in clients.ticket(ticket_id, reader)["comments"]], reader.login

    # the central support requests closure, the requester approves
    assert api.act(ticket_id, "take", SAM).status_code == 200
    assert api.act(ticket_id, "request-closure", SAM, resolution="Compte débloqué").status_code == 200
    approved = api.act(ticket_id, "approve-closure", ALICE, rating=5)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["resolution"]) == ("CLOSED", "approved")

    # the escalation is part of the ticket's history; the referent and the support list it
    kinds = [h["type"] for h in clients.history(ticket_id, RENE)]
    assert kinds.index("EscalationRequested") < kinds.index("TicketEscalated") < kinds.index("ClosureApproved")
    for handler in (RENE, RACHEL, SAM, ROOT):
        [item] = clients.escalation.get("/api/v1/escalations", handler).json()["items"]
        assert (item["ticket"]["id"], item["status"], item["support_department_id"]) == (ticket_id, "escalated",
                                                                                         SUPPORT)
        assert item["requested_by"]["id"] == "rene" and item["requested_at"] and item["decided_at"]
    assert clients.escalation.get("/api/v1/escalations", RITA).json()["items"] == []  # another establishment's
    # the closure request's expiry timer was cancelled by the approval
    wait_until(lambda: [t["state"] for t in clients.desk.timers(ticket_id, "expire_closure")] == ["cancelled"],
               what="the expiry timer cancelled")


def test_support_returns_the_ticket_to_the_referents(clients):
    api = clients.tickets
    ticket_id = clients.file(ALICE)["id"]
    api.act(ticket_id, "escalate", RENE, reason="Annuaire")
    wait_until(lambda: clients.ticket(ticket_id, RENE)["escalation"] == "escalated", what="the escalation")
    back = api.act(ticket_id, "return-to-referent", SAM, comment="Rien d'anormal côté annuaire")
    assert back.status_code == 200, back.text
    assert api.get(f"/api/v1/tickets/{ticket_id}", SAM).status_code == 404
    returned = wait_until(lambda: (i := clients.escalation.get("/api/v1/escalations?status=returned", RENE)
                                   .json()["items"]) and i, what="the escalation returned")
    assert returned[0]["returned_by"]["id"] == "sam" and returned[0]["returned_at"]


def test_escalation_disabled_by_the_admin_is_refused_with_a_reason(clients):
    put = clients.escalation.put(f"/api/v1/establishments/{OTHER}/escalation", ROOT,
                                 json={"enabled": False, "support_department_id": SUPPORT})
    assert put.status_code == 200, put.text
    assert put.json() == {"establishment": OTHER, "enabled": False, "support_department_id": SUPPORT,
                          "first_response_hours": None, "configured": True}
    ticket_id = clients.file(BOB)["id"]
    # WORKFLOW.md: escalate is not offered where it is disabled, and refused up front
    wait_until(lambda: "escalate" not in clients.ticket(ticket_id, RITA)["allowed_actions"], what="not offered")
    refused = clients.tickets.act(ticket_id, "escalate", RITA, reason="Besoin du support")
    assert refused.status_code == 409 and "not enabled" in refused.json()["detail"]
    after = clients.ticket(ticket_id, RITA)
    assert (after["escalation"], after["department"]["id"]) == ("none", f"referents-ent:{OTHER}")
    assert "EscalationRequested" not in [h["type"] for h in clients.history(ticket_id, RITA)]
    assert clients.tickets.get(f"/api/v1/tickets/{ticket_id}", SAM).status_code == 404
    assert clients.escalation.get("/api/v1/escalations", SAM).json()["items"] == []  # never reached the support


def test_only_a_referent_of_the_ticket_may_escalate(clients):
    api = clients.tickets
    ticket_id = clients.file(ALICE)["id"]
    assert api.act(ticket_id, "escalate", ALICE, reason="Urgent").status_code == 403  # sees it, not a referent
    for outsider in (SAM, RITA, MARC, BOB):  # cannot see it: it does not exist for them
        assert api.act(ticket_id, "escalate", outsider, reason="Urgent").status_code == 404, outsider.login
    assert api.act(ticket_id, "escalate", RENE, reason="   ").status_code == 422
    assert clients.ticket(ticket_id, ALICE)["escalation"] == "none"


# --- the escalation API: identity, roles, garbage ----------------------------------------------------


def test_probes_and_openapi_need_no_token(clients):
    api = clients.escalation
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    document = api.get("/api/v1/openapi.json").json()
    assert {"/api/v1/escalations", "/api/v1/establishments/{uai}/escalation"} <= set(document["paths"])


def test_identity_and_roles(clients):
    api = clients.escalation
    path = f"/api/v1/establishments/{HOME}/escalation"
    for method in (api.get, api.put):
        assert method(path).status_code == 401
        assert method(path, token="not-a-jwt").status_code == 401
        assert method(path, RENE, json={"enabled": True, "support_department_id": SUPPORT}).status_code == 403
    assert api.get("/api/v1/escalations").status_code == 401
    expired = api.token(RENE, ttl_seconds=-3600)
    assert api.get("/api/v1/escalations", token=expired).status_code == 401
    for nobody in (ALICE, MARC):  # neither a referent nor the central support
        response = api.get("/api/v1/escalations", nobody)
        assert response.status_code == 403 and response.headers["Content-Type"] == "application/problem+json"
    defaults = api.get(path, ROOT).json()
    assert defaults == {"establishment": HOME, "enabled": True, "support_department_id": SUPPORT,
                        "first_response_hours": None, "configured": False}


GARBAGE_SETTINGS = [
    pytest.param(b"{", "application/json", 400, id="broken-json"),
    pytest.param(b"[]", "application/json", 400, id="not-an-object"),
    pytest.param(b"enabled=true", "application/x-www-form-urlencoded", 415, id="form"),
    pytest.param(b"{}", "application/json", 422, id="empty"),
    pytest.param(b'{"enabled": "yes", "support_department_id": "support-ent"}', "application/json", 422,
                 id="enabled-not-bool"),
    pytest.param(b'{"enabled": true}', "application/json", 422, id="no-support"),
    pytest.param(b'{"enabled": true, "support_department_id": ""}', "application/json", 422, id="blank-support"),
    pytest.param(b'{"enabled": true, "support_department_id": "nowhere"}', "application/json", 422,
                 id="unknown-support"),
    pytest.param(b'{"enabled": true, "support_department_id": "referents-ent:0540001A"}', "application/json", 422,
                 id="referents-as-support"),
    pytest.param(b'{"enabled": true, "support_department_id": 12}', "application/json", 422, id="support-number"),
    pytest.param(b'{"enabled": true, "support_department_id": "support-ent", "first_response_hours": 0}',
                 "application/json", 422, id="hours-zero"),
    pytest.param(b'{"enabled": true, "support_department_id": "support-ent", "first_response_hours": "4"}',
                 "application/json", 422, id="hours-text"),
    pytest.param(b'{"enabled": true, "support_department_id": "support-ent", "first_response_hours": 1e99}',
                 "application/json", 422, id="hours-huge"),
    pytest.param(b'{"enabled": true, "support_department_id": "support-ent", "first_response_hours": 2.5}',
                 "application/json", 422, id="hours-fraction"),
    pytest.param(b'{"enabled": true, "support_department_id": "support-ent", "color": "red"}', "application/json",
                 422, id="unknown-field"),
    pytest.param(b'{"enabled": true, "support_department_id": "sup\\u0000port"}', "application/json", 422,
                 id="nul"),
    pytest.param(b'{"enabled": true, "support_department_id": "' + b"x" * 300_000 + b'"}', "application/json", 413,
                 id="too-large"),
]


@pytest.mark.parametrize("body, content_type, status", GARBAGE_SETTINGS)
def test_garbage_settings_are_refused_and_change_nothing(clients, body, content_type, status):
    api = clients.escalation
    path = f"/api/v1/establishments/{HOME}/escalation"
    response = api.put(path, ROOT, data=body, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert set(response.json()) >= {"type", "title", "status", "detail"}
    assert api.get(path, ROOT).json()["configured"] is False


@pytest.mark.parametrize("uai", ["a b", "0540001A;DROP", "x" * 21, "%00", "été"])
def test_a_path_that_is_not_a_uai_is_not_found(clients, uai):
    api = clients.escalation
    for method in (api.get, api.put):
        response = method(f"/api/v1/establishments/{uai}/escalation", ROOT,
                          json={"enabled": True, "support_department_id": SUPPORT})
        assert response.status_code in (400, 404), response.text
        assert response.headers["Content-Type"] == "application/problem+json"


def test_settings_round_trip_with_a_first_response_deadline(clients):
    api = clients.escalation
    path = f"/api/v1/establishments/{HOME}/escalation"
    body = {"enabled": True, "support_department_id": SUPPORT, "first_response_hours": 48}
    assert api.put(path, ROOT, json=body).json() == {**body, "establishment": HOME, "configured": True}
    assert api.get(path, ROOT).json()["first_response_hours"] == 48
    assert api.put(path, ROOT, json={**body, "first_response_hours": None}).json()["first_response_hours"] is None


@pytest.mark.parametrize("query", [
    "status=closed", "status=", "limit=0", "limit=101", "limit=abc", "cursor=garbage", "cursor=" + "A" * 300,
    "cursor=WyJub3QgYSBkYXRlIiwgIngiXQ", "colour=red", "limit=%00",
])
def test_garbage_queries_are_refused(clients, query):
    response = clients.escalation.get(f"/api/v1/escalations?{query}", ROOT)
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"


def test_escalations_are_paged(clients):
    api = clients.tickets
    ids = []
    for _ in range(3):
        ticket_id = clients.file(ALICE)["id"]
        assert api.act(ticket_id, "escalate", RENE, reason="Annuaire").status_code == 200
        ids.append(ticket_id)
    wait_until(lambda: len(clients.escalation.get("/api/v1/escalations", ROOT).json()["items"]) == 3,
               what="three escalations")
    first = clients.escalation.get("/api/v1/escalations?limit=2&status=escalated", RENE).json()
    second = clients.escalation.get(f"/api/v1/escalations?limit=2&cursor={first['next_cursor']}", RENE).json()
    assert second["next_cursor"] is None
    assert sorted(i["ticket"]["id"] for i in first["items"] + second["items"]) == sorted(ids)


def test_escalate_is_offered_only_where_it_can_succeed(clients):
    """The escalation service announces where a referent's escalation is forwarded; the
    tickets service offers ``escalate`` only there."""
    ticket_id = clients.file(ALICE)["id"]
    wait_until(lambda: "escalate" in clients.ticket(ticket_id, RENE)["allowed_actions"], what="escalate offered")
    path = f"/api/v1/establishments/{HOME}/escalation"
    off = clients.escalation.put(path, ROOT, json={"enabled": False, "support_department_id": SUPPORT})
    assert off.status_code == 200, off.text
    wait_until(lambda: "escalate" not in clients.ticket(ticket_id, RENE)["allowed_actions"],
               what="escalate no longer offered")
    refused = clients.tickets.act(ticket_id, "escalate", RENE, reason="Compte bloqué")
    assert refused.status_code == 409 and "not enabled" in refused.json()["detail"]
    assert clients.ticket(ticket_id, RENE)["escalation"] == "none"
    # a support department that is not configured: not offered either
    elsewhere = clients.escalation.put(path, ROOT, json={"enabled": True, "support_department_id": "nowhere"})
    assert elsewhere.status_code in (200, 422), elsewhere.text
    if elsewhere.status_code == 200:
        wait_until(lambda: (t := clients.ticket(ticket_id, RENE))["version"] and "escalate" not in t["allowed_actions"],
                   what="escalate not offered towards an unknown support")
    on = clients.escalation.put(path, ROOT, json={"enabled": True, "support_department_id": SUPPORT})
    assert on.status_code == 200, on.text
    wait_until(lambda: "escalate" in clients.ticket(ticket_id, RENE)["allowed_actions"], what="escalate offered again")
