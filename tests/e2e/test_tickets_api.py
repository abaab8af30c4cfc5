"""The tickets HTTP API's happy paths, through real HTTP (API.md "Tickets", WORKFLOW.md).

Every request goes to the running tickets service; routing's decisions are made over
RPC as ``system:routing``, as the routing service will.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import ALICE, BOB, INES, MARC, MONA, OSCAR, ROOT, Api, User

TICKET_KEYS = {
    "id", "number", "subject", "description", "status", "resolution", "priority", "category",
    "department", "establishment", "requester", "assignee", "invitees", "watchers", "escalation",
    "comments", "attachments", "rating", "created_at", "updated_at", "version", "allowed_actions",
}
# The action names API.md lists for POST /api/v1/tickets/{id}/actions/{action}.
API_ACTIONS = (
    "take", "take-over", "assign", "release", "request-information", "postpone", "resume", "request-closure",
    "approve-closure", "refuse-closure", "close", "cancel", "refuse", "reopen", "move",
    "change-subject", "change-priority", "escalate", "return-to-referent", "remove-attachment",
)


# -- helpers -------------------------------------------------------------------------------


def rpc(method: str, actor: str, *args: Any) -> dict[str, Any]:
    """Call the tickets service over RPC as a system service (routing, escalation)."""
    from nameko.standalone.rpc import ServiceRpcClient

    with ServiceRpcClient("tickets") as tickets:
        return getattr(tickets, method)({"id": actor, "kind": "system"}, *args)


def route(ticket: dict[str, Any], department: str) -> dict[str, Any]:
    return rpc("route", "system:routing", ticket["id"], department)


def ok(response, status: int = 200) -> dict[str, Any]:
    """The JSON body of a successful answer, with its ETag checked."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    if "version" in body:
        assert response.headers["ETag"] == f'"{body["version"]}"'
    return body


def problem(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    return body


def get(api: Api, ticket: dict[str, Any] | str, user: User) -> dict[str, Any]:
    ticket_id = ticket["id"] if isinstance(ticket, dict) else ticket
    return ok(api.get(f"/api/v1/tickets/{ticket_id}", user))


def listing(api: Api, user: User, **params: Any) -> dict[str, Any]:
    return ok(api.get("/api/v1/tickets", user, params=params))


def ids(page: dict[str, Any]) -> list[str]:
    return [t["id"] for t in page["items"]]


def act(api: Api, ticket: dict[str, Any], action: str, user: User, **body: Any) -> dict[str, Any]:
    """Perform ``action`` after checking the caller was offered it in ``allowed_actions``."""
    offered = get(api, ticket, user)["allowed_actions"]
    assert action in offered, f"{user.login} was not offered {action}: {offered}"
    done = ok(api.act(ticket, action, user, **body))
    assert done["version"] > ticket["version"]
    return done


def know(api: Api, *users: User) -> None:
    """Let the user directory learn these people (any authenticated request does)."""
    for user in users:
        assert api.get("/api/v1/tickets", user).status_code == 200


# -- service endpoints -------------------------------------------------------------------


def test_healthz_and_readyz_answer_without_a_token(api):
    """Alive, and ready: database and broker reachable."""
    assert ok(api.get("/healthz")) == {"status": "ok"}
    ready = ok(api.get("/readyz"))
    assert ready["status"] == "ok"
    assert ready["checks"] == {"database": "ok", "broker": "ok"}


def test_openapi_document_lists_every_tickets_path(api):
    """Valid JSON, public, with every path and action of API.md."""
    response = api.get("/api/v1/openapi.json")  # no token: the document is public
    document = ok(response)
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in (
        "/api/v1/tickets", "/api/v1/tickets/{ticket}", "/api/v1/tickets/{ticket}/history",
        "/api/v1/tickets/{ticket}/comments", "/api/v1/tickets/{ticket}/invitations",
        "/api/v1/tickets/{ticket}/invitations/{user}", "/api/v1/tickets/{ticket}/watchers/{user}",
        "/api/v1/tickets/{ticket}/attachments",
    ):
        assert path in paths, path
    for action in API_ACTIONS:
        assert f"/api/v1/tickets/{{ticket}}/actions/{action}" in paths, action
    assert set(paths["/api/v1/tickets"]) == {"get", "post"}
    assert set(paths["/api/v1/tickets/{ticket}/watchers/{user}"]) == {"put", "delete"}


# -- filing and reading -------------------------------------------------------------------


def test_file_a_ticket(api):
    """201 with the whole ticket, its Location and its ETag."""
    response = api.post("/api/v1/tickets", ALICE, json={
        "category_id": "wifi", "subject": "Pas de Wi-Fi en salle B12",
        "description": "Eduroam refuse mon mot de passe.", "phone": "03 83 00 00 00", "priority": 4,
    })
    ticket = ok(response, 201)
    assert response.headers["Location"] == f"/api/v1/tickets/{ticket['id']}"
    assert response.headers["ETag"] == '"1"'
    assert TICKET_KEYS <= ticket.keys()
    assert uuid.UUID(ticket["id"])
    assert isinstance(ticket["number"], int) and ticket["number"] > 0
    assert ticket["subject"] == "Pas de Wi-Fi en salle B12"
    assert ticket["description"] == "Eduroam refuse mon mot de passe."
    assert ticket["status"] == "FREE"
    assert ticket["resolution"] is None and ticket["rating"] is None
    assert ticket["priority"] == 4
    assert ticket["category"] == {"id": "wifi", "label": "Wi-Fi (eduroam)"}
    assert ticket["department"] is None  # routing has not decided yet
    assert ticket["establishment"] == "0540001A"
    assert ticket["requester"] == {"id": "alice", "name": "Alice Martin", "email": "alice@univ.example"}
    assert ticket["assignee"] is None
    assert ticket["invitees"] == [] and ticket["watchers"] == []
    assert ticket["escalation"] == "none"
    assert ticket["comments"] == [] and ticket["attachments"] == []
    assert ticket["version"] == 1
    assert datetime.fromisoformat(ticket["created_at"]) == datetime.fromisoformat(ticket["updated_at"])
    offered = set(ticket["allowed_actions"])
    assert {"comment", "cancel", "close", "change-subject", "change-priority", "invite", "watch",
            "attach"} <= offered
    assert not offered & {"take", "assign", "refuse", "move", "approve-closure", "unwatch", "uninvite"}
    assert ok(api.get(response.headers["Location"], ALICE)) == ticket


def test_priority_defaults_to_3(api):
    """WORKFLOW.md: priority 1 to 5, default 3."""
    assert api.submit(ALICE)["priority"] == 3


def test_get_one_ticket_by_uuid_and_by_number(api, routed):
    """{id} is the uuid or the number; both answer the same ticket and ETag."""
    by_id = api.get(f"/api/v1/tickets/{routed['id']}", ALICE)
    by_number = api.get(f"/api/v1/tickets/{routed['number']}", ALICE)
    assert ok(by_id) == ok(by_number) == routed
    assert by_id.headers["ETag"] == by_number.headers["ETag"] == f'"{routed["version"]}"'
    assert routed["department"]["id"] == "dnum-ent"
    assert [i["id"] for i in routed["invitees"]] == ["ines"]


def test_managers_are_offered_manager_actions(api, routed):
    """allowed_actions depends on who asks."""
    offered = set(get(api, routed, MARC)["allowed_actions"])
    assert {"take", "assign", "refuse", "move", "comment", "escalate", "change-priority"} <= offered
    assert not offered & {"approve-closure", "cancel", "close", "request-closure"}


def test_invisible_ticket_is_404(api, routed):
    """Unknown and invisible look the same: 404."""
    for user in (BOB, OSCAR):
        problem(api.get(f"/api/v1/tickets/{routed['id']}", user), 404)
        problem(api.get(f"/api/v1/tickets/{routed['number']}", user), 404)
        problem(api.get(f"/api/v1/tickets/{routed['id']}/history", user), 404)
    assert get(api, routed, ROOT)["id"] == routed["id"]  # admins see everything


def test_a_visible_ticket_but_a_forbidden_action_is_403_and_a_wrong_status_409(api, routed):
    """403 and 409 are problems and change nothing."""
    before = get(api, routed, ROOT)
    problem(api.act(routed, "take", INES), 403)  # an invitee is not a manager
    problem(api.act(routed, "approve-closure", ALICE), 409)  # nothing to approve on a FREE ticket
    assert get(api, routed, ROOT) == before


# -- lists ---------------------------------------------------------------------------------


def test_list_scopes(api, routed):
    """mine (the default), invited, watched, assigned, department, all."""
    bobs = api.submit(BOB, subject="Ticket de Bob")
    oscars = route(api.submit(BOB, category_id="apogee", subject="Inscription"), "scolarite")  # bob's too
    know(api, MARC, MONA, OSCAR)

    assert ids(listing(api, ALICE)) == [routed["id"]]
    assert ids(listing(api, ALICE, scope="mine")) == [routed["id"]]
    assert ids(listing(api, BOB)) == [oscars["id"], bobs["id"]]

    assert ids(listing(api, INES, scope="invited")) == [routed["id"]]
    assert ids(listing(api, INES, scope="mine")) == []
    assert ids(listing(api, ALICE, scope="invited")) == []

    ok(api.put(f"/api/v1/tickets/{routed['id']}/watchers/me", MONA))
    assert ids(listing(api, MONA, scope="watched")) == [routed["id"]]
    assert ids(listing(api, MARC, scope="watched")) == []

    taken = ok(api.act(routed, "take", MARC))
    assert ids(listing(api, MARC, scope="assigned")) == [taken["id"]]
    assert ids(listing(api, MONA, scope="assigned")) == []

    assert ids(listing(api, MARC, scope="department")) == [routed["id"]]
    assert ids(listing(api, OSCAR, scope="department")) == [oscars["id"]]
    assert ids(listing(api, BOB, scope="department")) == []

    assert ids(listing(api, ROOT, scope="all")) == [routed["id"], oscars["id"], bobs["id"]]
    # "all" is still only what the caller may see.
    assert ids(listing(api, OSCAR, scope="all")) == [oscars["id"]]
    assert ids(listing(api, INES, scope="all")) == [routed["id"]]
    page = listing(api, MARC, scope="all")
    assert ids(page) == [routed["id"]]
    assert page["next_cursor"] is None
    assert page["items"][0] == get(api, routed, MARC)  # items are whole tickets


def test_list_filters(api):
    """status (repeatable), category_id, department_id."""
    free = route(api.submit(ALICE, category_id="wifi"), "dnum-ent")
    taken = route(api.submit(ALICE, category_id="impression"), "dnum-ent")
    taken = ok(api.act(taken, "take", MARC))
    cancelled = ok(api.act(route(api.submit(ALICE, category_id="apogee"), "scolarite"), "cancel", ALICE))

    def found(**params: Any) -> set[str]:
        return set(ids(listing(api, ROOT, scope="all", **params)))

    assert found(status="FREE") == {free["id"]}
    assert found(status=["FREE", "IN_PROGRESS"]) == {free["id"], taken["id"]}
    assert found(status=["CANCELLED", "CLOSED"]) == {cancelled["id"]}
    assert found(status="REFUSED") == set()
    assert found(category_id="wifi") == {free["id"]}
    assert found(category_id="apogee") == {cancelled["id"]}
    assert found(department_id="dnum-ent") == {free["id"], taken["id"]}
    assert found(department_id="scolarite") == {cancelled["id"]}
    assert found(department_id="dnum-ent", status="IN_PROGRESS") == {taken["id"]}
    assert set(ids(listing(api, ALICE, status="CANCELLED"))) == {cancelled["id"]}


def test_cursor_pagination_newest_activity_first(api):
    """25 tickets, limit 10: pages of 10, 10 and 5, no duplicates, next_cursor null at the end."""
    filed = [api.submit(ALICE, subject=f"Ticket {n}") for n in range(25)]
    pages, cursor = [], None
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = listing(api, ALICE, **params)
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
    assert [len(p) for p in pages] == [10, 10, 5]
    seen = [t["id"] for p in pages for t in p]
    assert len(seen) == len(set(seen)) == 25
    assert seen == [t["id"] for t in reversed(filed)]  # newest first
    stamps = [datetime.fromisoformat(t["updated_at"]) for p in pages for t in p]
    assert stamps == sorted(stamps, reverse=True)

    # Activity, not creation, orders the list: a comment lifts the oldest ticket to the top.
    ok(api.post(f"/api/v1/tickets/{filed[0]['id']}/comments", ALICE, json={"body": "Toujours en panne"}), 201)
    assert ids(listing(api, ALICE, limit=2)) == [filed[0]["id"], filed[-1]["id"]]


def test_default_limit_is_20(api):
    """limit defaults to 20 and goes up to 100."""
    for n in range(21):
        api.submit(ALICE, subject=f"Ticket {n}")
    page = listing(api, ALICE)
    assert len(page["items"]) == 20
    assert page["next_cursor"] is not None
    assert len(listing(api, ALICE, limit=100)["items"]) == 21


def test_french_full_text_search(api):
    """Accent-insensitive, stemmed; public comments count, internal ones do not."""
    screen = api.submit(ALICE, subject="Écran noir", description="Le poste ne démarre plus.")
    printer = api.submit(ALICE, category_id="impression", subject="Bourrage papier",
                         description="L'imprimante du bureau 12 est bloquée.")
    wifi = route(api.submit(ALICE, category_id="wifi", subject="Réseau lent",
                            description="La connexion coupe souvent."), "dnum-ent")
    ok(api.post(f"/api/v1/tickets/{wifi['id']}/comments", MARC,
                json={"body": "Voir l'hyperviseur du contrôleur", "visibility": "internal"}), 201)
    ok(api.post(f"/api/v1/tickets/{wifi['id']}/comments", ALICE,
                json={"body": "J'ai essayé avec un tournevis"}), 201)

    def search(q: str, user: User = ALICE) -> list[str]:
        return ids(listing(api, user, scope="all", q=q))

    assert search("ecran") == [screen["id"]]
    assert search("ÉCRAN") == [screen["id"]]
    assert search("imprimantes") == [printer["id"]]
    assert search("tournevis") == [wifi["id"]]
    assert search("tournevis", MARC) == [wifi["id"]]
    # A word only in an internal comment is found by nobody, not even managers.
    assert search("hyperviseur") == []
    assert search("hyperviseur", MARC) == []
    assert search("hyperviseur", ROOT) == []
    assert search("parapluie") == []
    assert search("ecran", BOB) == []  # only tickets the caller may see


# -- history and comments --------------------------------------------------------------------


def test_comments_public_and_internal(api, routed):
    """Internal comments are shown to managers and admins only."""
    response = api.post(f"/api/v1/tickets/{routed['id']}/comments", ALICE,
                        json={"body": "Voici une capture.", "visibility": "public"})
    public = ok(response, 201)
    assert public["version"] == routed["version"] + 1
    (comment,) = public["comments"]
    assert comment["author"] == {"id": "alice", "name": "Alice Martin", "email": "alice@univ.example"}
    assert comment["body"] == "Voici une capture."
    assert comment["visibility"] == "public"
    assert comment["attachment_ids"] == []
    assert uuid.UUID(comment["id"]) and datetime.fromisoformat(comment["created_at"])

    by_invitee = ok(api.post(f"/api/v1/tickets/{routed['id']}/comments", INES, json={"body": "Moi aussi."}), 201)
    assert [c["author"]["id"] for c in by_invitee["comments"]] == ["alice", "ines"]

    internal = ok(api.post(f"/api/v1/tickets/{routed['id']}/comments", MARC,
                           json={"body": "Compte verrouillé dans l'annuaire.", "visibility": "internal"}), 201)
    assert [c["visibility"] for c in internal["comments"]] == ["public", "public", "internal"]
    assert [c["visibility"] for c in get(api, routed, MARC)["comments"]] == ["public", "public", "internal"]
    assert [c["visibility"] for c in get(api, routed, ROOT)["comments"]] == ["public", "public", "internal"]
    for user in (ALICE, INES):
        seen = get(api, routed, user)
        assert [c["body"] for c in seen["comments"]] == ["Voici une capture.", "Moi aussi."]
        assert "verrouillé" not in str(seen)
    problem(api.post(f"/api/v1/tickets/{routed['id']}/comments", ALICE,
                     json={"body": "secret", "visibility": "internal"}), 403)


def test_history_hides_internal_entries_from_the_requester(api, routed):
    """Events oldest first; internal entries only for managers."""
    ok(api.post(f"/api/v1/tickets/{routed['id']}/comments", MARC,
                json={"body": "Note interne", "visibility": "internal"}), 201)
    ok(api.post(f"/api/v1/tickets/{routed['id']}/comments", MARC, json={"body": "Bonjour"}), 201)
    ok(api.act(routed, "take", MARC))

    for_manager = ok(api.get(f"/api/v1/tickets/{routed['id']}/history", MARC))["items"]
    assert [e["type"] for e in for_manager] == [
        "TicketSubmitted", "TicketRouted", "UserInvited", "CommentAdded", "CommentAdded", "TicketAssigned",
    ]
    assert [e["version"] for e in for_manager] == [1, 2, 3, 4, 5, 6]  # oldest first
    first = for_manager[0]
    assert {"id", "type", "version", "occurred_at", "actor", "status_before", "status_after", "data"} <= first.keys()
    assert first["actor"]["id"] == "alice" and first["status_after"] == "FREE"
    assert for_manager[1]["actor"] == {"id": "system:routing", "name": None, "kind": "system"}
    assert (for_manager[-1]["status_before"], for_manager[-1]["status_after"]) == ("FREE", "IN_PROGRESS")

    for_requester = ok(api.get(f"/api/v1/tickets/{routed['number']}/history", ALICE))["items"]
    assert [e["version"] for e in for_requester] == [1, 2, 3, 5, 6]
    assert "Note interne" not in str(for_requester)
    assert ok(api.get(f"/api/v1/tickets/{routed['id']}/history", ROOT))["items"] == for_manager


# -- the workflow, every action ---------------------------------------------------------------


def test_every_action_along_a_realistic_flow(api, routed):
    """Each action is offered to its actor, then done, and lands in the history."""
    know(api, MONA)
    t = act(api, routed, "take", MARC)
    assert (t["status"], t["assignee"]["id"]) == ("IN_PROGRESS", "marc")
    t = act(api, t, "assign", MARC, assignee="mona@univ.example")
    assert (t["status"], t["assignee"]["id"]) == ("IN_PROGRESS", "mona")
    t = act(api, t, "release", MONA)
    assert (t["status"], t["assignee"]) == ("FREE", None)
    t = act(api, t, "take", MARC)
    t = act(api, t, "request-information", MARC, question="Quel navigateur utilisez-vous ?")
    assert t["status"] == "WAITING_FOR_INFO"

    # The requester's public comment answers the question.
    assert "comment" in get(api, t, ALICE)["allowed_actions"]
    t = ok(api.post(f"/api/v1/tickets/{t['id']}/comments", ALICE, json={"body": "Firefox 128"}), 201)
    assert t["status"] == "IN_PROGRESS"

    until = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    t = act(api, t, "postpone", MARC, until=until, reason="En attente du fournisseur")
    assert t["status"] == "POSTPONED"
    t = act(api, t, "resume", MARC)
    assert t["status"] == "IN_PROGRESS"
    t = act(api, t, "request-closure", MARC, resolution="Cache du navigateur vidé.")
    assert t["status"] == "CLOSURE_REQUESTED"
    t = act(api, t, "refuse-closure", ALICE, justification="Toujours la même erreur.")
    assert t["status"] == "IN_PROGRESS"
    t = act(api, t, "request-closure", MARC, resolution="Mot de passe réinitialisé.")
    t = act(api, t, "approve-closure", ALICE, rating=5, feedback="Merci !")
    assert (t["status"], t["resolution"], t["rating"]) == ("CLOSED", "approved", 5)
    assert get(api, t, ALICE)["allowed_actions"] == ["reopen", "watch"]

    t = act(api, t, "reopen", ALICE, reason="Le problème revient.")
    assert (t["status"], t["assignee"]["id"], t["resolution"]) == ("IN_PROGRESS", "marc", None)
    t = act(api, t, "change-subject", ALICE, subject="Connexion impossible depuis Firefox")
    assert t["subject"] == "Connexion impossible depuis Firefox"
    t = act(api, t, "change-priority", MARC, priority=5)
    assert t["priority"] == 5
    t = act(api, t, "move", MARC, category_id="wifi")
    assert t["category"] == {"id": "wifi", "label": "Wi-Fi (eduroam)"}
    t = act(api, t, "escalate", MARC, reason="Problème national")
    assert t["escalation"] == "requested"
    t = act(api, t, "refuse", MARC, reason="Hors du périmètre du support")
    assert t["status"] == "REFUSED"

    cancelled = act(api, api.submit(ALICE), "cancel", ALICE, reason="Résolu tout seul")
    assert cancelled["status"] == "CANCELLED"
    closed = act(api, api.submit(ALICE), "close", ALICE)
    assert (closed["status"], closed["resolution"]) == ("CLOSED", "closed_by_owner")

    types = [e["type"] for e in ok(api.get(f"/api/v1/tickets/{routed['id']}/history", MARC))["items"]]
    assert types[3:] == [
        "TicketAssigned", "TicketAssigned", "TicketReleased", "TicketAssigned", "InformationRequested",
        "CommentAdded", "InformationProvided", "TicketPostponed", "TicketResumed", "ClosureRequested",
        "ClosureRefused", "ClosureRequested", "ClosureApproved", "TicketReopened", "SubjectChanged",
        "PriorityChanged", "TicketMoved", "EscalationRequested", "TicketRefused",
    ]


def test_escalation_and_return_to_referent(api, routed):
    """The escalation service forwards a ticket to the central support (here: scolarite)."""
    rpc("escalate_to", "system:escalation", routed["id"], "scolarite", "Bug de la plateforme")
    t = get(api, routed, OSCAR)
    assert (t["escalation"], t["department"]["id"]) == ("escalated", "scolarite")
    assert get(api, t, MARC)["id"] == t["id"]  # the referent department keeps access
    assert t["id"] in ids(listing(api, MARC, scope="department"))
    t = act(api, t, "return-to-referent", OSCAR, comment="Corrigé côté plateforme, à vérifier.")
    assert (t["escalation"], t["department"]["id"]) == ("returned", "dnum-ent")
    problem(api.get(f"/api/v1/tickets/{t['id']}", OSCAR), 404)
    history = ok(api.get(f"/api/v1/tickets/{t['id']}/history", ALICE))["items"]
    # the requester knows it came back (WORKFLOW.md: they are told), not the support's note
    [back] = [e for e in history if e["type"] == "TicketReturnedToReferent"]
    assert "comment" not in back["data"] and "Corrigé" not in repr(history)


def test_a_referents_escalation_reaches_the_central_support(api, routed):
    """escalate (HTTP) -> EscalationRequested -> the escalation service calls tickets.escalate_to."""
    t = act(api, routed, "escalate", MARC, reason="Bug de la plateforme")
    assert (t["escalation"], t["department"]["id"]) == ("requested", "dnum-ent")
    problem(api.act(t, "escalate", MARC, reason="Encore"), 409)  # already requested
    assert "EscalationRequested" not in str(ok(api.get(f"/api/v1/tickets/{t['id']}/history", ALICE)))
    rpc("escalate_to", "system:escalation", t["id"], "scolarite", "Bug de la plateforme")
    t = get(api, t, OSCAR)
    assert (t["escalation"], t["department"]["id"]) == ("escalated", "scolarite")


def test_search_matches_masculine_and_feminine_forms(api):
    """French stemming: 'bloqué' finds 'bloquée'."""
    stuck = api.submit(ALICE, subject="Session bloquée", description="Ma session reste bloquée.")
    assert ids(listing(api, ALICE, q="bloqué")) == [stuck["id"]]


# -- invitations and watchers -----------------------------------------------------------------


def test_invite_and_uninvite(api, routed):
    """An invitee gains access (by email), and loses it when uninvited."""
    know(api, BOB)
    problem(api.get(f"/api/v1/tickets/{routed['id']}", BOB), 404)
    response = api.post(f"/api/v1/tickets/{routed['id']}/invitations", ALICE, json={"user": "bob@univ.example"})
    invited = ok(response, 201)
    assert [i["id"] for i in invited["invitees"]] == ["ines", "bob"]
    assert get(api, routed, BOB)["id"] == routed["id"]
    assert routed["id"] in ids(listing(api, BOB, scope="invited"))

    revoked = ok(api.delete(f"/api/v1/tickets/{routed['id']}/invitations/bob", MARC))
    assert [i["id"] for i in revoked["invitees"]] == ["ines"]
    problem(api.get(f"/api/v1/tickets/{routed['id']}", BOB), 404)
    assert ids(listing(api, BOB, scope="invited")) == []


def test_watch_and_unwatch(api, routed):
    """`me` for oneself; a manager may add another user who can see the ticket."""
    watched = ok(api.put(f"/api/v1/tickets/{routed['id']}/watchers/me", ALICE))
    assert [w["id"] for w in watched["watchers"]] == ["alice"]
    assert "unwatch" in watched["allowed_actions"] and "watch" not in watched["allowed_actions"]
    unwatched = ok(api.delete(f"/api/v1/tickets/{routed['id']}/watchers/me", ALICE))
    assert unwatched["watchers"] == []

    # A manager may add (and remove) another user who can see the ticket.
    added = ok(api.put(f"/api/v1/tickets/{routed['id']}/watchers/ines", MARC))
    assert [w["id"] for w in added["watchers"]] == ["ines"]
    assert ids(listing(api, INES, scope="watched")) == [routed["id"]]
    removed = ok(api.delete(f"/api/v1/tickets/{routed['id']}/watchers/ines", MARC))
    assert removed["watchers"] == []
    assert ids(listing(api, INES, scope="watched")) == []

    know(api, BOB)
    problem(api.put(f"/api/v1/tickets/{routed['id']}/watchers/bob", MARC), 422)  # bob cannot see it
    problem(api.put(f"/api/v1/tickets/{routed['id']}/watchers/marc", INES), 403)  # not a manager


def test_losing_the_invitation_ends_the_watch(api, routed):
    """A watcher must be able to see the ticket."""
    ok(api.put(f"/api/v1/tickets/{routed['id']}/watchers/me", INES))
    revoked = ok(api.delete(f"/api/v1/tickets/{routed['id']}/invitations/ines", ALICE))
    assert revoked["invitees"] == [] and revoked["watchers"] == []


# -- idempotency and optimistic concurrency ---------------------------------------------------


def test_idempotency_key_replays_the_first_answer(api):
    """A repeat returns the first answer and files nothing new."""
    body = {"category_id": "wifi", "subject": "Wi-Fi coupé", "description": "Plus de réseau."}
    headers = {"Idempotency-Key": "a3f1c2d4-filing-1"}
    first = api.post("/api/v1/tickets", ALICE, json=body, headers=headers)
    again = api.post("/api/v1/tickets", ALICE, json=body, headers=headers)
    assert ok(again, 201) == ok(first, 201)
    assert again.headers["Location"] == first.headers["Location"]
    assert ids(listing(api, ALICE)) == [first.json()["id"]]

    # The same key for another request is refused, and files nothing either.
    problem(api.post("/api/v1/tickets", ALICE, json={**body, "subject": "Autre"}, headers=headers), 422)
    assert len(listing(api, ALICE)["items"]) == 1
    # Another key is another ticket.
    ok(api.post("/api/v1/tickets", ALICE, json=body, headers={"Idempotency-Key": "a3f1c2d4-filing-2"}), 201)
    assert len(listing(api, ALICE)["items"]) == 2
    # Keys belong to their user: bob's same key files bob's own ticket, never replays alice's.
    bobs = ok(api.post("/api/v1/tickets", BOB, json=body, headers=headers), 201)
    assert bobs["id"] != first.json()["id"] and bobs["requester"]["id"] == "bob"


def test_if_match(api, routed):
    """The current version works; a stale one is 412 and changes nothing."""
    current = api.get(f"/api/v1/tickets/{routed['id']}", MARC).headers["ETag"]
    taken = ok(api.post(f"/api/v1/tickets/{routed['id']}/actions/take", MARC, json={},
                        headers={"If-Match": current}))
    assert taken["version"] == routed["version"] + 1

    stale = api.post(f"/api/v1/tickets/{routed['id']}/actions/change-priority", MARC, json={"priority": 5},
                     headers={"If-Match": current})
    assert str(taken["version"]) in problem(stale, 412)["detail"]
    stale_comment = api.post(f"/api/v1/tickets/{routed['id']}/comments", ALICE, json={"body": "Alors ?"},
                             headers={"If-Match": f'"{routed["version"]}"'})
    problem(stale_comment, 412)
    assert get(api, routed, ROOT) == get(api, taken, ROOT)
    assert get(api, routed, MARC) == taken

    weak = api.post(f"/api/v1/tickets/{routed['id']}/actions/change-priority", MARC, json={"priority": 5},
                    headers={"If-Match": f'W/"{taken["version"]}"'})
    assert ok(weak)["priority"] == 5
