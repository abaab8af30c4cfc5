"""Bad input on every write endpoint (API.md "Errors").

Each answer is application/problem+json with type, title, status and detail (plus
``errors`` naming the field for invalid values), never a 500, and the tickets are
exactly as they were: the ticket (version and body) and the whole list, read by an
admin before and after.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests

from tests.e2e.conftest import ALICE, BOB, INES, MARC, MONA, OSCAR, ROOT, Api, User
from tests.helpers import DROP, changed, chunks

NEW_TICKET = {"category_id": "wifi", "subject": "Wi-Fi coupé", "description": "Plus de réseau en B12."}

# Every write endpoint that reads a JSON body: method, path under the ticket (None: filing),
# who may send it on the ``ticket`` fixture, and a body the schema accepts.
WRITES: dict[str, tuple[str, str | None, User, dict[str, Any]]] = {
    "create": ("POST", None, ALICE, NEW_TICKET),
    "comment": ("POST", "comments", ALICE, {"body": "Toujours en panne.", "visibility": "public"}),
    "invite": ("POST", "invitations", ALICE, {"user": "bob"}),
    "attach": ("POST", "attachments", ALICE, {"attachment_id": "0b7a3e52-upload", "visibility": "public"}),
    "take": ("POST", "actions/take", MONA, {}),
    "assign": ("POST", "actions/assign", MARC, {"assignee": "mona"}),
    "release": ("POST", "actions/release", MARC, {}),
    "request-information": ("POST", "actions/request-information", MARC, {"question": "Quel navigateur ?"}),
    "postpone": ("POST", "actions/postpone", MARC, {"reason": "Attente du fournisseur"}),
    "resume": ("POST", "actions/resume", MARC, {}),
    "request-closure": ("POST", "actions/request-closure", MARC, {"resolution": "Mot de passe réinitialisé"}),
    "approve-closure": ("POST", "actions/approve-closure", ALICE, {"rating": 4, "feedback": "Merci"}),
    "refuse-closure": ("POST", "actions/refuse-closure", ALICE, {"justification": "Toujours en panne"}),
    "close": ("POST", "actions/close", ALICE, {}),
    "cancel": ("POST", "actions/cancel", ALICE, {"reason": "Réglé tout seul"}),
    "refuse": ("POST", "actions/refuse", MARC, {"reason": "Hors périmètre"}),
    "reopen": ("POST", "actions/reopen", ALICE, {}),
    "move": ("POST", "actions/move", MARC, {"category_id": "impression"}),
    "change-subject": ("POST", "actions/change-subject", ALICE, {"subject": "Wi-Fi coupé en B12"}),
    "change-priority": ("POST", "actions/change-priority", ALICE, {"priority": 5}),
    "escalate": ("POST", "actions/escalate", MARC, {"reason": "Panne nationale"}),
    "return-to-referent": ("POST", "actions/return-to-referent", ROOT, {"comment": "Corrigé"}),
    "remove-attachment": ("POST", "actions/remove-attachment", MARC, {"attachment_id": "a1", "comment": "Doublon"}),
}
# Write endpoints without a body.
BODILESS: dict[str, tuple[str, str, User]] = {
    "uninvite": ("DELETE", "invitations/ines", ALICE),
    "watch": ("PUT", "watchers/me", MARC),
    "unwatch": ("DELETE", "watchers/me", ALICE),
}
ALL = {**{k: v[:3] for k, v in WRITES.items()}, **BODILESS}
ON_A_TICKET = [name for name in ALL if name != "create"]


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def ticket(api: Api, routed: dict[str, Any]) -> dict[str, Any]:
    """alice's ticket in dnum-ent, IN_PROGRESS with marc, ines invited, alice watching."""
    for user in (BOB, MONA, OSCAR):
        api.get("/api/v1/tickets", user)  # the directory learns who they are
    assert api.act(routed, "take", MARC).status_code == 200
    watched = api.put(f"/api/v1/tickets/{routed['id']}/watchers/me", ALICE)
    assert watched.status_code == 200, watched.text
    return watched.json()


def url(name: str, ticket: dict[str, Any] | str | None) -> str:
    path = ALL[name][1]
    if path is None:
        return "/api/v1/tickets"
    ticket_id = ticket["id"] if isinstance(ticket, dict) else ticket
    return f"/api/v1/tickets/{ticket_id}/{path}"


def send(api: Api, name: str, ticket: Any, *, body: Any = None, data: bytes | None = None,
         content_type: str | None = "application/json", user: User | None = None,
         headers: dict[str, str] | None = None) -> requests.Response:
    """Send ``name``'s request with ``body`` (as JSON) or raw ``data``."""
    method, _, who = ALL[name]
    if data is None and body is not None:
        data = json.dumps(body).encode()
    headers = {**({"Content-Type": content_type} if content_type else {}), **(headers or {})}
    return api.request(method, url(name, ticket), user or who, data=data, headers=headers)


def describe(changes: dict[str, Any]) -> str:
    """A readable test id: ``subject=123``, ``subject missing``, ``subject=201 chars``."""
    if not changes:
        return "valid fields"
    parts = []
    for key, value in changes.items():
        if value is DROP:
            parts.append(f"{key} missing")
        elif isinstance(value, str) and len(value) > 40:
            parts.append(f"{key}={len(value)} chars")
        else:
            parts.append(f"{key}={json.dumps(value)}")
    return ",".join(parts)


def named(rows: list[Any]) -> list[Any]:
    """Parametrize rows ``(endpoint, ..., changes, field)`` with ids like ``postpone: until="demain"``."""
    params = []
    for row in rows:
        values, marks = (row.values, row.marks) if hasattr(row, "values") else (row, ())
        params.append(pytest.param(*values, marks=marks, id=f"{values[0]}: {describe(values[-2])}"))
    return params


def snapshot(api: Api, ticket: dict[str, Any]) -> tuple[Any, Any]:
    """The ticket and the whole list, as an admin sees them."""
    one = api.get(f"/api/v1/tickets/{ticket['id']}", ROOT)
    everything = api.get("/api/v1/tickets", ROOT, params={"scope": "all", "limit": 100})
    assert one.status_code == everything.status_code == 200
    return one.json(), everything.json()


def assert_problem(response: requests.Response, status: int | tuple[int, ...], field: str | None = None) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, f"{response.status_code}: {response.text[:500]}"
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert isinstance(body.get("type"), str) and isinstance(body.get("title"), str)
    assert body.get("status") == response.status_code
    assert isinstance(body.get("detail"), str) and body["detail"]
    assert "Traceback" not in response.text
    if field is not None:
        errors = body.get("errors") or {}
        assert any(key == field or key.startswith(f"{field}.") for key in errors), body
        assert all(isinstance(m, list) and all(isinstance(s, str) for s in m) for m in errors.values())


def refused(api: Api, ticket: dict[str, Any], status: int | tuple[int, ...], field: str | None = None,
            **request: Any) -> None:
    """``send(**request)`` gets a problem and changes nothing."""
    before = snapshot(api, ticket)
    assert_problem(send(api, ticket=ticket, **request), status, field)
    assert snapshot(api, ticket) == before


# -- unreadable bodies: 400, 413, 415 --------------------------------------------------------

TEN_MB = b'{"body": "' + b"a" * (10 * 1024 * 1024) + b'"}'
UNREADABLE = {
    "not JSON": (lambda valid: b'{"subject": "oops",', "application/json", 400),
    "invalid UTF-8": (lambda valid: b'{"body": "caf\xe9"}', "application/json", 400),
    "a JSON array": (lambda valid: json.dumps([valid]).encode(), "application/json", 400),
    "JSON null": (lambda valid: b"null", "application/json", 400),
    "text/plain": (lambda valid: json.dumps(valid).encode(), "text/plain", 415),
    "no Content-Type": (lambda valid: json.dumps(valid).encode(), None, 415),
    "a form": (lambda valid: b"subject=oops&body=oops", "application/x-www-form-urlencoded", 415),
    "10 MB": (lambda valid: TEN_MB, "application/json", 413),
}


@pytest.mark.parametrize("case", UNREADABLE)
@pytest.mark.parametrize("name", WRITES)
def test_unreadable_body(api, ticket, name, case):
    """400 not a JSON object, 415 not JSON, 413 over 256 KiB."""
    make, content_type, status = UNREADABLE[case]
    refused(api, ticket, status, name=name, data=make(WRITES[name][3]), content_type=content_type)


@pytest.mark.parametrize("name", ["create", "comment", "take"])
def test_deeply_nested_json_is_400(api, ticket, name):
    """Valid-looking JSON nested 100,000 deep is unreadable, not a crash."""
    refused(api, ticket, 400, name=name, data=b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize("name", ["create", "comment"])
def test_ten_mb_chunked_body_is_413(api, ticket, name):
    """A 10 MB body without Content-Length is still too large."""
    before = snapshot(api, ticket)
    response = api.request("POST", url(name, ticket), WRITES[name][2], data=chunks(TEN_MB),
                           headers={"Content-Type": "application/json"})
    assert_problem(response, 413)
    assert snapshot(api, ticket) == before


def test_a_chunked_json_body_is_read(api):
    """HTTP/1.1 clients may send a body chunked."""
    response = api.post("/api/v1/tickets", ALICE, data=chunks(json.dumps(NEW_TICKET).encode(), 8),
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text


# -- invalid field values: 422 with errors naming the field ----------------------------------

INVALID = [
    # POST /api/v1/tickets: missing, wrong types, limits, unknown category
    ("create", {"category_id": DROP}, "category_id"),
    ("create", {"subject": DROP}, "subject"),
    ("create", {"description": DROP}, "description"),
    ("create", {"subject": 123}, "subject"),
    ("create", {"subject": None}, "subject"),
    ("create", {"description": ["Plus", "de", "réseau"]}, "description"),
    ("create", {"category_id": {"id": "wifi"}}, "category_id"),
    ("create", {"priority": "3"}, "priority"),
    ("create", {"priority": 2.5}, "priority"),
    ("create", {"priority": True}, "priority"),
    ("create", {"priority": 0}, "priority"),
    ("create", {"priority": 6}, "priority"),
    ("create", {"phone": 383000000}, "phone"),
    ("create", {"phone": "0" * 31}, "phone"),
    ("create", {"attachment_ids": "a1"}, "attachment_ids"),
    ("create", {"attachment_ids": [1]}, "attachment_ids"),
    ("create", {"attachment_ids": ["never-uploaded"]}, "attachment_ids"),  # not an upload id (uploads: test_attachments_api)
    ("create", {"subject": "x" * 201}, "subject"),
    ("create", {"description": "x" * 20_001}, "description"),
    ("create", {"category_id": "plomberie"}, "category_id"),
    ("create", {"category_id": "WIFI"}, "category_id"),
    ("create", {"category_id": "x" * 101}, "category_id"),
    ("create", {"status": "CLOSED"}, "status"),
    ("create", {"requester": {"id": "root"}}, "requester"),
    # POST .../comments
    ("comment", {"body": DROP}, "body"),
    ("comment", {"body": 42}, "body"),
    ("comment", {"body": "x" * 20_001}, "body"),
    ("comment", {"visibility": "private"}, "visibility"),
    ("comment", {"visibility": None}, "visibility"),
    ("comment", {"attachment_ids": {"a": 1}}, "attachment_ids"),
    ("comment", {"attachment_ids": ["not-on-this-ticket"]}, "attachment_ids"),  # not an upload id
    ("comment", {"author": "root"}, "author"),
    # POST .../invitations
    ("invite", {"user": DROP}, "user"),
    ("invite", {"user": 7}, "user"),
    ("invite", {"user": "x" * 321}, "user"),
    ("invite", {"user": "alice"}, "user"),  # the requester herself
    pytest.param("invite", {"user": "nobody@nowhere.example"}, "user"),
    # POST .../attachments
    ("attach", {"attachment_id": DROP}, "attachment_id"),
    ("attach", {"attachment_id": 5}, "attachment_id"),
    ("attach", {"visibility": "secret"}, "visibility"),
    ("attach", {"attachment_id": "x" * 101}, "attachment_id"),
    # POST .../actions/{action}
    ("assign", {"assignee": DROP}, "assignee"),
    ("assign", {"assignee": ["mona"]}, "assignee"),
    ("assign", {"assignee": "bob"}, "assignee"),  # not a manager of the department
    pytest.param("assign", {"assignee": "nobody"}, "assignee"),
    ("release", {"reason": 1}, "reason"),
    ("request-information", {"question": DROP}, "question"),
    ("request-information", {"question": "x" * 20_001}, "question"),
    ("postpone", {"reason": DROP}, "reason"),
    ("postpone", {"reason": "x" * 5_001}, "reason"),
    ("postpone", {"until": "demain"}, "until"),
    ("postpone", {"until": "2030-01-01T09:00:00"}, "until"),  # no time zone
    ("postpone", {"until": "2020-01-01T09:00:00+01:00"}, "until"),  # in the past
    ("request-closure", {"resolution": DROP}, "resolution"),
    ("request-closure", {"resolution": "x" * 20_001}, "resolution"),
    ("approve-closure", {"rating": 0}, "rating"),
    ("approve-closure", {"rating": 6}, "rating"),
    ("approve-closure", {"rating": "5"}, "rating"),
    ("approve-closure", {"feedback": 5}, "feedback"),
    ("refuse-closure", {"justification": DROP}, "justification"),
    ("refuse-closure", {"justification": "x" * 20_001}, "justification"),
    ("cancel", {"reason": ["a"]}, "reason"),
    ("refuse", {"reason": DROP}, "reason"),
    ("refuse", {"reason": None}, "reason"),
    ("reopen", {"reason": 3}, "reason"),
    ("move", {"category_id": DROP}, "category_id"),
    ("move", {"category_id": "plomberie"}, "category_id"),
    ("move", {"category_id": "ent-connexion"}, "category_id"),  # already there
    ("change-subject", {"subject": DROP}, "subject"),
    ("change-subject", {"subject": "x" * 201}, "subject"),
    ("change-priority", {"priority": DROP}, "priority"),
    ("change-priority", {"priority": "high"}, "priority"),
    ("change-priority", {"priority": 9}, "priority"),
    ("change-priority", {"priority": None}, "priority"),
    ("escalate", {"reason": DROP}, "reason"),
    ("return-to-referent", {"comment": DROP}, "comment"),
    ("remove-attachment", {"attachment_id": DROP}, "attachment_id"),
    ("remove-attachment", {"comment": DROP}, "comment"),
    ("remove-attachment", {}, "attachment_id"),  # not attached to this ticket
]
# Unknown fields are refused on every endpoint, not silently dropped.
INVALID += [(name, {"assignee_id": "root"}, "assignee_id") for name in WRITES]


@pytest.mark.parametrize(("name", "changes", "field"), named(INVALID))
def test_invalid_field(api, ticket, name, changes, field):
    """422 with `errors` naming the field."""
    refused(api, ticket, 422, field, name=name, body=changed(WRITES[name][3], changes))


# -- blank text where text is required -------------------------------------------------------


def prepare(api: Api, ticket: dict[str, Any], state: str) -> None:
    if state == "closure requested":
        assert api.act(ticket, "request-closure", MARC, resolution="Réglé").status_code == 200
    elif state == "escalated":
        from nameko.standalone.rpc import ServiceRpcClient

        with ServiceRpcClient("tickets") as tickets:
            tickets.escalate_to({"id": "system:escalation", "kind": "system"}, ticket["id"], "scolarite")


BLANK = [
    ("create", None, {"subject": "   "}, "subject"),
    ("create", None, {"subject": ""}, "subject"),
    ("create", None, {"description": " \n\t "}, "description"),
    ("create", None, {"category_id": "  "}, "category_id"),
    ("comment", None, {"body": "   "}, "body"),
    ("comment", None, {"body": ""}, "body"),
    ("request-information", None, {"question": "  "}, "question"),
    ("postpone", None, {"reason": " "}, "reason"),
    ("request-closure", None, {"resolution": "\n"}, "resolution"),
    ("refuse-closure", "closure requested", {"justification": "   "}, "justification"),
    ("refuse-closure", "closure requested", {"justification": ""}, "justification"),
    ("refuse", None, {"reason": "  "}, "reason"),
    ("move", None, {"category_id": " "}, "category_id"),
    ("change-subject", None, {"subject": "   "}, "subject"),
    ("escalate", None, {"reason": "  "}, "reason"),
    ("return-to-referent", "escalated", {"comment": "  "}, "comment"),
    pytest.param("assign", None, {"assignee": "  "}, "assignee"),
    pytest.param("invite", None, {"user": "  "}, "user"),
]


@pytest.mark.parametrize(("name", "state", "changes", "field"), named(BLANK))
def test_blank_text(api, ticket, name, state, changes, field):
    """Sent by someone allowed to act, in a status that allows it: only the blank is wrong."""
    prepare(api, ticket, state)
    user = OSCAR if state == "escalated" else None
    refused(api, ticket, 422, field, name=name, body=changed(WRITES[name][3], changes), user=user)


# -- text PostgreSQL cannot store ------------------------------------------------------------

UNSTORABLE = [
    ("create", {**NEW_TICKET, "subject": "Wi-Fi\u0000coupé"}),
    ("create", {**NEW_TICKET, "description": "Plus de réseau \ud800"}),
    ("comment", {"body": "Toujours\u0000en panne"}),
    ("change-subject", {"subject": "Wi-Fi\u0000"}),
    ("invite", {"user": "bob\u0000"}),
    ("invite", {"user": "\udfff"}),
    ("assign", {"assignee": "mona\u0000"}),
]


@pytest.mark.parametrize(("name", "body"), UNSTORABLE,
                         ids=[f"{name}: {describe(body)}" for name, body in UNSTORABLE])
def test_nul_or_lone_surrogate_is_refused(api, ticket, name, body):
    """Text the database cannot store is invalid input, not a 500."""
    refused(api, ticket, (400, 422), name=name, body=body)


def test_nul_in_a_watcher_login_is_refused(api, ticket):
    """A NUL in a path login is invalid input, not a 500."""
    before = snapshot(api, ticket)
    assert_problem(api.put(f"/api/v1/tickets/{ticket['id']}/watchers/ines%00", MARC), (400, 404, 422))
    assert snapshot(api, ticket) == before


# -- unknown tickets and actions: 404 --------------------------------------------------------

UNKNOWN_TICKET = [
    name for name in ON_A_TICKET
]


@pytest.mark.parametrize("name", UNKNOWN_TICKET)
def test_unknown_ticket(api, ticket, name):
    """Every write on a ticket that does not exist: 404."""
    body = WRITES[name][3] if name in WRITES else None
    before = snapshot(api, ticket)
    assert_problem(send(api, name, str(uuid.uuid4()), body=body), 404)
    assert snapshot(api, ticket) == before


@pytest.mark.parametrize("name", UNKNOWN_TICKET)
def test_invisible_ticket_looks_unknown(api, ticket, name):
    """bob may not see alice's ticket: 404, as if it did not exist."""
    refused(api, ticket, 404, name=name, body=WRITES[name][3] if name in WRITES else None, user=BOB)


@pytest.mark.parametrize("ref", ["0", "999999", "-1", "1e3", "not-a-ticket", "9" * 25,
                                 "00000000-0000-0000-0000-000000000000"])
def test_ticket_references_that_name_nothing(api, ticket, ref):
    """Numbers and strings that are no ticket: 404."""
    before = snapshot(api, ticket)
    assert_problem(api.get(f"/api/v1/tickets/{ref}", ALICE), 404)
    assert_problem(api.get(f"/api/v1/tickets/{ref}/history", ALICE), 404)
    assert_problem(send(api, "comment", ref, body=WRITES["comment"][3]), 404)
    assert snapshot(api, ticket) == before


@pytest.mark.parametrize("action", [
    "explode", "TAKE", "request_information", "comment", "comment-internal", "invite", "watch", "attach",
    "route", "escalate-to", "expire-closure",  # the system's actions are not offered over HTTP
])
def test_unknown_action(api, ticket, action):
    """Unknown actions, and the system's own, are 404 over HTTP."""
    before = snapshot(api, ticket)
    assert_problem(api.post(f"/api/v1/tickets/{ticket['id']}/actions/{action}", ROOT, json={}), 404)
    assert snapshot(api, ticket) == before


@pytest.mark.parametrize(("method", "path"), [
    ("PATCH", "/api/v1/tickets/{id}"), ("DELETE", "/api/v1/tickets/{id}"), ("PUT", "/api/v1/tickets/{id}/comments"),
    ("GET", "/api/v1/tickets/{id}/actions/take"), ("POST", "/api/v1/tickets/{id}/watchers/me"),
])
def test_wrong_method_is_405(api, ticket, method, path):
    """405 problem+json with an Allow header."""
    before = snapshot(api, ticket)
    response = api.request(method, path.format(id=ticket["id"]), ROOT, json={})
    assert_problem(response, 405)
    assert method not in response.headers["Allow"]
    assert snapshot(api, ticket) == before


# -- endpoints without a body ----------------------------------------------------------------

BODILESS_REFUSALS = [
    ("DELETE", "invitations/bob", ALICE, 422),  # not invited
    ("DELETE", "invitations/nobody", MARC, 422),
    ("DELETE", "invitations/ines", INES, 403),  # an invitee may not revoke
    ("PUT", "watchers/nobody", MARC, 422),  # unknown user
    ("PUT", "watchers/bob", MARC, 422),  # cannot see the ticket
    ("PUT", "watchers/me", ALICE, 409),  # already watching
    ("PUT", "watchers/marc", INES, 403),  # only managers add others
    ("DELETE", "watchers/me", MARC, 409),  # not watching
    ("DELETE", "watchers/alice", INES, 403),  # only managers remove others
    ("DELETE", "watchers/mona", MARC, 409),
]


@pytest.mark.parametrize(("method", "path", "user", "status"), BODILESS_REFUSALS,
                         ids=[f"{m} {p} as {u.login}" for m, p, u, _ in BODILESS_REFUSALS])
def test_bodiless_refusals(api, ticket, method, path, user, status):
    """Unknown, uninvited or unseeing users; forbidden or pointless changes."""
    before = snapshot(api, ticket)
    assert_problem(api.request(method, f"/api/v1/tickets/{ticket['id']}/{path}", user), status)
    assert snapshot(api, ticket) == before


@pytest.mark.parametrize("case", ["not JSON", "text/plain", "10 MB"])
@pytest.mark.parametrize("name", BODILESS)
def test_a_body_on_an_endpoint_that_takes_none(api, ticket, name, case):
    """A body sent where none is expected is refused like anywhere else."""
    make, content_type, status = UNREADABLE[case]
    refused(api, ticket, status, name=name, data=make({}), content_type=content_type)


# -- headers and query parameters ------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "9999999999", '"1", "2"'])
def test_malformed_if_match_is_400(api, ticket, value):
    """If-Match must be a version, e.g. "3"."""
    refused(api, ticket, 400, name="change-priority", body={"priority": 5}, headers={"If-Match": value})


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_malformed_idempotency_key_is_400(api, ticket, key):
    """Idempotency-Key is 1 to 200 characters."""
    refused(api, ticket, 400, name="create", body=NEW_TICKET, headers={"Idempotency-Key": key})


LIST_QUERIES = [
    {"scope": "everything"}, {"scope": ""}, {"status": "OPEN"}, {"status": ["FREE", "free"]},
    {"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"limit": -5},
    {"cursor": "garbage"}, {"cursor": ""}, {"cursor": "W10"}, {"cursor": "WyJ4IiwieSJd"},
    {"q": ""}, {"q": "x" * 201}, {"category_id": "x" * 101}, {"order": "asc"},
    pytest.param({"q": "ecran\u0000"}),
    pytest.param({"category_id": "wifi\u0000"}),
    pytest.param({"department_id": "dnum\u0000"}),
]


@pytest.mark.parametrize("params", LIST_QUERIES)
def test_bad_list_query_is_422(api, ticket, params):
    """Invalid query parameters of GET /api/v1/tickets."""
    assert_problem(api.get("/api/v1/tickets", ALICE, params=params), 422)
