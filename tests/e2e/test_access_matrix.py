"""Who may do what to a ticket, end to end: the access matrix of WORKFLOW.md ("People",
"Actions", "Who sees what") checked against the running tickets service over real HTTP.

Six callers (``tests/e2e/conftest.py``) try every operation on a ticket of ALICE's,
routed to dnum-ent, with INES invited:

    ALICE  the requester                  BOB    another user
    INES   an invitee                     MARC   a manager of dnum-ent (not the assignee)
    OSCAR  a manager of another department (scolarite)
    ROOT   an admin                       (MONA, a manager of dnum-ent, is the assignee
                                           whenever the ticket is in someone's hands)

Expected answers (API.md, Errors): 200/201 allowed; 403 the ticket is visible but the
caller may not do this; 404 the caller may not see the ticket, indistinguishable from an
unknown ticket id; 409 not allowed in the ticket's status. Admins may do everything a
manager may, and no more (WORKFLOW.md, Actions).

Each test function gets one tickets service (the ``api`` fixture); every cell of a table
gets its own fresh ticket, prepared through the API, because a successful action changes
the ticket. While it is visible to the caller, each cell also reads the ticket first and
checks ``allowed_actions``: an action listed there must not answer 403/409, an action
answering 2xx must be listed, and it is listed exactly when WORKFLOW.md allows it.

Where the running code disagrees with WORKFLOW.md, the table keeps the contract and the
cell is listed in ``DISAGREEMENTS``: its row is then an expected failure (strict, so a fix
shows up), and any *other* cell of that row still fails the test for real.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from tests.conftest import add_manager
from tests.e2e.conftest import ALICE, BOB, INES, MARC, MONA, OSCAR, ROOT, Api, User

ROLES = (ALICE, BOB, INES, MARC, OSCAR, ROOT)
INVISIBLE = (BOB, OSCAR)

# Who manages what in these tests (the ``api`` fixture, plus the referents' department).
REFERENTS = "ent-0540001A"    # a per-establishment department: the ENT referents of 0540001A
SUPPORT = "support-ent"       # the central support department (nobody of ours manages it)
MANAGES = {"marc": {"dnum-ent", REFERENTS}, "mona": {"dnum-ent"}, "oscar": {"scolarite"}}

ROUTING = {"id": "system:routing", "name": "routing", "kind": "system"}
ESCALATION = {"id": "system:escalation", "name": "escalation", "kind": "system"}
ATTACHMENT = "5f0c6a52-0b4e-4c59-9a55-3c1f0c2f7a10"

# --- ticket states, each prepared freshly through the API -----------------------------------

FREE = "FREE"                           # routed to dnum-ent, ines invited, nobody in charge
IN_PROGRESS = "IN_PROGRESS"             # ... and taken by mona
POSTPONED = "POSTPONED"                 # ... and postponed by mona
CLOSURE_REQUESTED = "CLOSURE_REQUESTED" # ... mona asked alice to approve the closure
CLOSED = "CLOSED"                       # ... and alice approved: final, mona former assignee
WATCHED = "FREE+watched"                # FREE, and the caller watches it (when they can see it)
MONA_WATCHES = "FREE+mona-watching"     # FREE, and mona watches it
ATTACHED = "FREE+file"                  # FREE, with a file alice attached
AT_REFERENTS = "FREE@referents"         # FREE, routed to the referents' department (marc)
ESCALATED = "ESCALATED"                 # AT_REFERENTS, then escalated to the central support

STATUS_OF = {WATCHED: FREE, MONA_WATCHES: FREE, ATTACHED: FREE, AT_REFERENTS: FREE, ESCALATED: FREE}


class Desk:
    """The running service, seen from the tests: HTTP as people, RPC as the other services."""

    def __init__(self, api: Api, rpc: Any) -> None:
        self.api = api
        self.rpc = rpc

    def prepare(self, state: str, caller: User | None = None) -> dict[str, Any]:
        """A new ticket of alice's in ``state`` (see the constants above)."""
        api = self.api
        ticket = api.submit(ALICE)
        department = REFERENTS if state in (AT_REFERENTS, ESCALATED) else "dnum-ent"
        self.rpc.route(ROUTING, ticket["id"], department)
        _ok(api.post(f"/api/v1/tickets/{ticket['id']}/invitations", ALICE, json={"user": "ines"}), 201)
        if state in (IN_PROGRESS, POSTPONED, CLOSURE_REQUESTED, CLOSED):
            _ok(api.act(ticket, "take", MONA))
        if state == POSTPONED:
            _ok(api.act(ticket, "postpone", MONA, reason="En attente du prestataire"))
        if state in (CLOSURE_REQUESTED, CLOSED):
            _ok(api.act(ticket, "request-closure", MONA, resolution="Cache vidé, tout fonctionne."))
        if state == CLOSED:
            _ok(api.act(ticket, "approve-closure", ALICE, rating=5))
        if state == WATCHED and caller is not None and caller not in INVISIBLE:
            _ok(api.put(f"/api/v1/tickets/{ticket['id']}/watchers/me", caller))
        if state == MONA_WATCHES:
            _ok(api.put(f"/api/v1/tickets/{ticket['id']}/watchers/me", MONA))
        if state == ATTACHED:  # the attachments service would do this once the upload is scanned
            self.rpc.attach(_actor(ALICE), ticket["id"], ATTACHMENT, "capture.png", 48213, "image/png")
        if state == ESCALATED:
            self.rpc.escalate_to(ESCALATION, ticket["id"], SUPPORT, reason="Problème national")
        ticket = _ok(api.get(f"/api/v1/tickets/{ticket['id']}", ALICE)).json()
        assert ticket["status"] == STATUS_OF.get(state, state), ticket
        return ticket


@pytest.fixture
def desk(api: Api, tickets_db: Any) -> Any:
    from nameko.standalone.rpc import ServiceRpcClient

    add_manager(tickets_db, REFERENTS, MARC.login, MARC.name)
    for user in (INES, BOB):  # the directory learns who they are, so they can be invited
        _ok(api.get("/api/v1/tickets", user))
    with ServiceRpcClient("tickets") as rpc:
        yield Desk(api, rpc)


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.url}: {response.text}"
    return response


def _actor(user: User) -> dict[str, Any]:
    return {"id": user.login, "name": user.name, "email": user.email, "establishment": user.establishment}


# --- the operations --------------------------------------------------------------------------

ACTION_BODIES: dict[str, dict[str, Any]] = {
    "take": {},
    "assign": {"assignee": "mona"},
    "release": {},
    "request-information": {"question": "Quel navigateur utilisez-vous ?"},
    "postpone": {"reason": "En attente du prestataire"},
    "resume": {},
    "request-closure": {"resolution": "Cache vidé, tout fonctionne."},
    "approve-closure": {"rating": 4, "feedback": "Merci"},
    "refuse-closure": {"justification": "Toujours un écran blanc."},
    "close": {},
    "cancel": {"reason": "Réglé tout seul"},
    "refuse": {"reason": "Hors périmètre du service"},
    "reopen": {"reason": "Le problème est revenu"},
    "move": {"category_id": "wifi"},
    "change-subject": {"subject": "Écran blanc à la connexion"},
    "change-priority": {"priority": 5},
    "escalate": {"reason": "Incident sur toute l'académie"},
    "return-to-referent": {"comment": "À traiter localement"},
    "remove-attachment": {"attachment_id": ATTACHMENT, "comment": "Mauvais fichier"},
}

# operation -> (method, path under /api/v1/tickets/{id}, JSON body or None)
OPERATIONS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "read": ("GET", "", None),
    "history": ("GET", "/history", None),
    "comment": ("POST", "/comments", {"body": "Une précision.", "visibility": "public"}),
    "comment-internal": ("POST", "/comments", {"body": "Entre nous.", "visibility": "internal"}),
    "invite": ("POST", "/invitations", {"user": "bob"}),
    "uninvite": ("DELETE", "/invitations/ines", None),
    "watch": ("PUT", "/watchers/me", None),
    "unwatch": ("DELETE", "/watchers/me", None),
    "add-watcher": ("PUT", "/watchers/mona", None),        # mona can see the ticket
    "remove-watcher": ("DELETE", "/watchers/mona", None),
    **{action: ("POST", f"/actions/{action}", body) for action, body in ACTION_BODIES.items()},
}
# Not in allowed_actions: reads, and following on someone else's behalf ("watch" there is
# the caller's own).
NOT_BUTTONS = ("read", "history", "add-watcher", "remove-watcher")


def attempt(api: Api, user: User, operation: str, ticket_ref: str) -> Any:
    method, path, body = OPERATIONS[operation]
    kwargs = {} if body is None else {"json": body}
    return api.request(method, f"/api/v1/tickets/{ticket_ref}{path}", user, **kwargs)


def check_cell(desk: Desk, user: User, operation: str, ticket: dict[str, Any], expected: int) -> list[str]:
    """What is wrong when ``user`` tries ``operation`` on ``ticket``; [] when the contract holds."""
    api, problems, listed = desk.api, [], None
    if expected != 404:
        before = api.get(f"/api/v1/tickets/{ticket['id']}", user)
        if before.status_code != 200:
            return [f"cannot read the ticket first: {before.status_code} {before.text[:200]}"]
        listed = operation in before.json()["allowed_actions"]
    response = attempt(api, user, operation, ticket["id"])
    got = response.status_code
    if got != expected:
        problems.append(f"answered {got}, expected {expected}: {response.text[:200]}")
    if expected == 404:
        problems += differences_from_unknown(api, user, operation, ticket, response)
    if listed is not None and operation not in NOT_BUTTONS:
        allowed = expected in (200, 201)
        if listed != allowed:
            problems.append(f"allowed_actions {'lists' if listed else 'omits'} it, WORKFLOW.md "
                            f"{'allows' if allowed else 'does not allow'} it")
        if listed and got in (403, 409):
            problems.append(f"listed in allowed_actions, yet answered {got}")
        if got in (200, 201) and not listed:
            problems.append(f"answered {got}, yet missing from allowed_actions")
    return problems


def differences_from_unknown(api: Api, user: User, operation: str, ticket: dict[str, Any], response: Any) -> list[str]:
    """An invisible ticket must answer exactly as an unknown one (the ticket ref aside)."""
    refs = [(ticket["id"], str(uuid4()), response)]
    if operation == "read":  # a ticket is also named by its number
        refs.append((str(ticket["number"]), "987654", attempt(api, user, operation, str(ticket["number"]))))
    problems = []
    for ref, unknown_ref, answer in refs:
        unknown = attempt(api, user, operation, unknown_ref)

        def shape(r: Any, r_ref: str) -> tuple[Any, ...]:
            return r.status_code, r.headers.get("Content-Type"), r.text.replace(r_ref, "{ticket}")

        if shape(answer, ref) != shape(unknown, unknown_ref):
            problems.append(f"tells an invisible ticket from an unknown one: {shape(answer, ref)} "
                            f"vs {shape(unknown, unknown_ref)}")
    return problems


class ContractDisagreement(AssertionError):
    """Only the cells listed in DISAGREEMENTS raise this; an xfail row expects nothing else."""


# --- the matrix: role x operation -> expected status (WORKFLOW.md, Actions + Who sees what) ---

MATRIX = [
    # operation             ticket state       ALICE  BOB  INES  MARC  OSCAR  ROOT
    ("read",                FREE,               200,  404,  200,  200,  404,  200),
    ("history",             FREE,               200,  404,  200,  200,  404,  200),
    ("comment",             FREE,               201,  404,  201,  201,  404,  201),
    ("comment-internal",    FREE,               403,  404,  403,  201,  404,  201),
    ("invite",              FREE,               201,  404,  403,  201,  404,  201),
    ("uninvite",            FREE,               200,  404,  403,  200,  404,  200),
    ("watch",               FREE,               200,  404,  200,  200,  404,  200),
    ("unwatch",             WATCHED,            200,  404,  200,  200,  404,  200),
    ("add-watcher",         FREE,               403,  404,  403,  200,  404,  200),
    ("remove-watcher",      MONA_WATCHES,       403,  404,  403,  200,  404,  200),
    ("take",                FREE,               403,  404,  403,  200,  404,  200),
    ("assign",              FREE,               403,  404,  403,  200,  404,  200),
    ("release",             IN_PROGRESS,        403,  404,  403,  200,  404,  200),
    ("request-information", IN_PROGRESS,        403,  404,  403,  403,  404,  403),
    ("postpone",            IN_PROGRESS,        403,  404,  403,  403,  404,  403),
    ("resume",              POSTPONED,          403,  404,  403,  403,  404,  403),
    ("request-closure",     IN_PROGRESS,        403,  404,  403,  403,  404,  403),
    ("approve-closure",     CLOSURE_REQUESTED,  200,  404,  403,  403,  404,  403),
    ("refuse-closure",      CLOSURE_REQUESTED,  200,  404,  403,  403,  404,  403),
    ("close",               FREE,               200,  404,  403,  403,  404,  403),
    ("cancel",              FREE,               200,  404,  403,  403,  404,  403),
    ("refuse",              FREE,               403,  404,  403,  200,  404,  200),
    ("reopen",              CLOSED,             200,  404,  403,  200,  404,  200),
    ("move",                FREE,               403,  404,  403,  200,  404,  200),
    ("change-subject",      FREE,               200,  404,  403,  200,  404,  200),
    ("change-priority",     FREE,               200,  404,  403,  200,  404,  200),
    ("remove-attachment",   ATTACHED,           200,  404,  403,  200,  404,  200),
    ("escalate",            AT_REFERENTS,       403,  404,  403,  200,  404,  200),
    ("return-to-referent",  ESCALATED,          403,  404,  403,  403,  404,  200),
]
# Managers may add a watcher (WORKFLOW.md); removing someone else's watch is read the same
# way. Only the assignee (mona) may request information, postpone, resume or request closure;
# the state helpers do those as mona and assert 200. Nobody but the central support (or
# an admin) returns an escalated ticket: marc is a referent of REFERENTS, not support.

# (operation, state, login) -> how the running code disagrees with WORKFLOW.md
DISAGREEMENTS: dict[tuple[str, str, str], str] = {}


def _row_param(operation: str, state: str, *expected: int) -> Any:
    known = [f"{login}: {why}" for (op, st, login), why in DISAGREEMENTS.items() if (op, st) == (operation, state)]
    marks = [pytest.mark.xfail(strict=True, raises=ContractDisagreement, reason="; ".join(known))] if known else []
    return pytest.param(operation, state, expected, id=f"{operation}@{state}", marks=marks)


@pytest.mark.parametrize("operation, state, expected", [_row_param(*row) for row in MATRIX])
def test_access_matrix(desk: Desk, operation: str, state: str, expected: tuple[int, ...]) -> None:
    unexpected, known = [], []
    for user, status in zip(ROLES, expected, strict=True):
        ticket = desk.prepare(state, caller=user)
        for problem in check_cell(desk, user, operation, ticket, status):
            line = f"{user.login} {operation} on {state}: {problem}"
            (known if (operation, state, user.login) in DISAGREEMENTS else unexpected).append(line)
    assert not unexpected, "\n".join(unexpected + known)
    if known:
        raise ContractDisagreement("\n".join(known))


# --- edges: the right person in the wrong status (409), statuses that do allow, escalation ---

STATUS_EDGES = [
    # operation             ticket state       caller  expected
    ("comment",             CLOSED,             ALICE,  409),  # public comment: any status but final
    ("invite",              CLOSED,             ALICE,  409),  # invite: any status but final
    ("cancel",              CLOSED,             ALICE,  409),  # cancel: open
    ("close",               CLOSURE_REQUESTED,  ALICE,  409),  # close: open (CLOSURE_REQUESTED is not)
    ("approve-closure",     IN_PROGRESS,        ALICE,  409),  # approve: CLOSURE_REQUESTED
    ("reopen",              FREE,               ALICE,  409),  # reopen: final
    ("take",                CLOSED,             MARC,   409),  # take: open
    ("release",             FREE,               MARC,   409),  # release: open but FREE
    ("refuse",              CLOSURE_REQUESTED,  MARC,   409),  # refuse: open
    ("change-subject",      CLOSED,             MARC,   409),  # change_subject: open
    ("resume",              IN_PROGRESS,        MONA,   409),  # resume: POSTPONED
    ("request-closure",     CLOSURE_REQUESTED,  MONA,   409),  # request_closure: open but FREE
    ("return-to-referent",  FREE,               ROOT,   409),  # return: open *and escalated*
    ("comment-internal",    CLOSED,             MARC,   201),  # internal comment: any status
    ("watch",               CLOSED,             ALICE,  200),  # watch: any status
    ("take",                ESCALATED,          MARC,   200),  # the referents keep full access
    ("comment-internal",    ESCALATED,          MARC,   201),
    ("take",                CLOSED,             OSCAR,  404),  # the invisible stay invisible
    ("read",                ESCALATED,          OSCAR,  404),
    ("reopen",              FREE,               BOB,    404),
]
EDGE_DISAGREEMENTS: dict[tuple[str, str, str], str] = {}


def _edge_param(operation: str, state: str, user: User, expected: int) -> Any:
    why = EDGE_DISAGREEMENTS.get((operation, state, user.login))
    marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
    return pytest.param(operation, state, user, expected, id=f"{user.login}-{operation}@{state}", marks=marks)


@pytest.mark.parametrize("operation, state, user, expected", [_edge_param(*row) for row in STATUS_EDGES])
def test_status_edges(desk: Desk, operation: str, state: str, user: User, expected: int) -> None:
    ticket = desk.prepare(state, caller=user)
    problems = check_cell(desk, user, operation, ticket, expected)
    assert not problems, f"{user.login} {operation} on {state}: " + "; ".join(problems)


# --- lists: the ticket appears where it should, and nothing invisible ever does ---------------

LISTS = [
    # scope        alice's ticket in the list of: ALICE  BOB    INES   MARC   OSCAR  ROOT
    ("mine",                                       True,  False, False, False, False, False),
    ("invited",                                    False, False, True,  False, False, False),
    ("department",                                 False, False, False, True,  False, False),
    ("all",                                        True,  False, True,  True,  False, True),
]


def may_see(user: User, ticket: dict[str, Any]) -> bool:
    """WORKFLOW.md, Who sees what (no escalated tickets here)."""
    return (
        user.admin
        or ticket["requester"]["id"] == user.login
        or user.login in {i["id"] for i in ticket["invitees"]}
        or (ticket["department"] or {}).get("id") in MANAGES.get(user.login, set())
    )


@pytest.mark.parametrize("user", ROLES, ids=lambda u: u.login)
def test_lists_show_only_what_the_caller_may_see(desk: Desk, user: User) -> None:
    alices = desk.prepare(FREE)
    bobs = desk.rpc.route(ROUTING, desk.api.submit(BOB)["id"], "scolarite")    # oscar's department
    monas = desk.api.submit(MONA)                                               # not routed yet
    tickets = {t["id"]: t for t in (alices, bobs, monas)}
    column = ROLES.index(user)
    for scope, *appears in LISTS:
        items = _ok(desk.api.get("/api/v1/tickets", user, params={"scope": scope, "limit": 100})).json()["items"]
        listed = {item["id"] for item in items}
        assert (alices["id"] in listed) is appears[column], f"{user.login} scope={scope}: {listed}"
        for item in items:
            assert may_see(user, tickets.get(item["id"], item)), f"{user.login} scope={scope} lists {item['number']}"
            _ok(desk.api.get(f"/api/v1/tickets/{item['id']}", user))
        if scope == "all":
            assert listed == {i for i, t in tickets.items() if may_see(user, t)}, f"{user.login} scope=all"


# --- internal comments: managers and admins only ----------------------------------------------

SEES_INTERNAL = [(ALICE, False), (INES, False), (MARC, True), (ROOT, True)]  # BOB, OSCAR: 404 above


@pytest.mark.parametrize("user, sees", SEES_INTERNAL, ids=[u.login for u, _ in SEES_INTERNAL])
def test_internal_comments_only_for_managers_and_admins(desk: Desk, user: User, sees: bool) -> None:
    ticket = desk.prepare(FREE)
    base = f"/api/v1/tickets/{ticket['id']}"
    _ok(desk.api.post(f"{base}/comments", ALICE, json={"body": "Toujours bloquée."}), 201)
    _ok(desk.api.post(f"{base}/comments", MARC, json={"body": "Compte verrouillé côté LDAP.",
                                                       "visibility": "internal"}), 201)
    expected = ["public", "internal"] if sees else ["public"]

    seen = _ok(desk.api.get(base, user)).json()
    assert [c["visibility"] for c in seen["comments"]] == expected
    assert ("Compte verrouillé" in _ok(desk.api.get(base, user)).text) is sees

    history = _ok(desk.api.get(f"{base}/history", user)).json()["items"]
    assert [e["data"]["visibility"] for e in history if e["type"] == "CommentAdded"] == expected
    assert ("Compte verrouillé" in str(history)) is sees

    items = _ok(desk.api.get("/api/v1/tickets", user, params={"scope": "all"})).json()["items"]
    (listed,) = [item for item in items if item["id"] == ticket["id"]]
    assert [c["visibility"] for c in listed["comments"]] == expected
