"""The ticket answer says why it is in its state (API.md, "The ticket"):
``pending_question``, ``proposed_resolution``, ``postponed_until``, ``last_refusal``,
through real HTTP to the running tickets service, and the same after a rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests

from services.tickets import projections
from shared.eventstore import EventStore
from tests.e2e.conftest import ALICE, INES, MARC
from tests.e2e.test_tickets_api import ok


def test_the_answer_carries_question_resolution_recall_date_and_last_refusal(api, routed, tickets_db):
    tid = routed["id"]
    assert {k: routed[k] for k in ("pending_question", "proposed_resolution", "postponed_until", "last_refusal")} == {
        "pending_question": None, "proposed_resolution": None, "postponed_until": None, "last_refusal": None}
    ok(api.act(tid, "take", MARC))

    asked = ok(api.act(tid, "request-information", MARC, question="Quel navigateur ?"))
    assert asked["pending_question"] == "Quel navigateur ?"
    # the requester and the invitee see the question they are asked
    assert ok(api.get(f"/api/v1/tickets/{tid}", ALICE))["pending_question"] == "Quel navigateur ?"
    assert ok(api.get(f"/api/v1/tickets/{tid}", INES))["pending_question"] == "Quel navigateur ?"
    answered = ok(api.post(f"/api/v1/tickets/{tid}/comments", ALICE, json={"body": "Firefox"}), 201)
    assert answered["status"] == "IN_PROGRESS" and answered["pending_question"] is None

    until = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    postponed = ok(api.act(tid, "postpone", MARC, until=until.isoformat(), reason="Attente du fournisseur"))
    assert datetime.fromisoformat(postponed["postponed_until"]) == until
    assert datetime.fromisoformat(ok(api.get(f"/api/v1/tickets/{tid}", ALICE))["postponed_until"]) == until
    assert ok(api.act(tid, "resume", MARC))["postponed_until"] is None

    proposed = ok(api.act(tid, "request-closure", MARC, resolution="Compte réactivé."))
    assert proposed["proposed_resolution"] == "Compte réactivé."
    refused = ok(api.act(tid, "refuse-closure", ALICE, justification="Toujours bloqué ce matin"))
    assert refused["proposed_resolution"] is None
    refusal = refused["last_refusal"]
    assert {k: refusal[k] for k in ("kind", "justification")} == {
        "kind": "closure", "justification": "Toujours bloqué ce matin"}
    assert refusal["by"]["id"] == "alice" and datetime.fromisoformat(refusal["at"])
    seen_by_marc = ok(api.get(f"/api/v1/tickets/{tid}", MARC))
    assert seen_by_marc["last_refusal"] == refusal

    # the rebuilt view gives the same answer
    with tickets_db.connection() as conn, conn.transaction():
        projections.rebuild(conn, EventStore("tickets"))
    assert ok(api.get(f"/api/v1/tickets/{tid}", MARC)) == seen_by_marc


def test_a_refused_ticket_shows_the_managers_reason(api, routed):
    refused = ok(api.act(routed["id"], "refuse", MARC, reason="Hors du périmètre de la DNUM"))
    assert refused["last_refusal"]["kind"] == "ticket"
    assert refused["last_refusal"]["justification"] == "Hors du périmètre de la DNUM"
    assert ok(api.get(f"/api/v1/tickets/{routed['id']}", ALICE))["last_refusal"] == refused["last_refusal"]


def test_the_openapi_document_describes_the_new_fields(api):
    document = requests.get(f"{api.base_url}/api/v1/openapi.json", timeout=10).json()
    ticket = document["components"]["schemas"]["TicketOut"]
    for name in ("pending_question", "proposed_resolution", "postponed_until", "last_refusal"):
        assert name in ticket["properties"] and name in ticket["required"], name
    refusal = document["components"]["schemas"]["Refusal"]
    assert set(refusal["properties"]) == {"kind", "justification", "by", "at"}
