"""Every row of the Actions table of ``WORKFLOW.md``, allowed and refused.

The expectations below are written from ``WORKFLOW.md``, not copied from ``RULES``: who
may do each action (the events it produces and the effect), who may not (``Forbidden``),
from which statuses (else ``InvalidTransition``), which arguments are required
(``InvalidArgument``), then "Who sees what" (``can_view``) and ``allowed_actions``.

Every refusal is checked with ``refused``: the error's type, action and status, and that
the ticket is left exactly as it was with no event appended.

Unless a row says otherwise, a ticket is submitted by REQUESTER, routed to DEPARTMENT
(managed by MANAGER and MANAGER_2), INVITEE is invited, REQUESTER and INVITEE have each
attached a file ("a-requester", "a-invitee"), and MANAGER is the assignee of every status
but FREE (see ``desk_in``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from services.tickets.domain import (
    CANCELLED,
    CLOSED,
    CLOSURE_REQUESTED,
    FREE,
    IN_PROGRESS,
    POSTPONED,
    REFUSED,
    WAITING_FOR_INFO,
    Actor,
    Change,
    DomainError,
    Forbidden,
    InvalidArgument,
    InvalidTransition,
    Ticket,
    User,
)
from tests.unit.tickets.support import (
    ADMIN,
    DEPARTMENT,
    ESCALATION,
    INVITEE,
    MANAGER,
    MANAGER_2,
    OTHER_DEPARTMENT,
    OTHER_MANAGER,
    OTHER_USER,
    REQUESTER,
    ROUTING,
    SUPPORT,
    SUPPORT_MANAGER,
    Desk,
)

EXPIRY = Actor.system("expiry")
RECALL = Actor.system("recall")

OPEN = (FREE, IN_PROGRESS, WAITING_FOR_INFO, POSTPONED)
FINAL = (CLOSED, CANCELLED, REFUSED)
NOT_FINAL = (*OPEN, CLOSURE_REQUESTED)
ALL = (*NOT_FINAL, *FINAL)

NEW_CATEGORY = "scolarite-inscription"

# How each status is reached from a routed ticket; MANAGER is the assignee.
TAKE = ("take", MANAGER, {})
REQUEST_CLOSURE = ("request_closure", MANAGER, {"resolution": "Mot de passe réinitialisé"})
STATUS_PATHS: dict[str, list[tuple[str, Actor, dict[str, Any]]]] = {
    FREE: [],
    IN_PROGRESS: [TAKE],
    WAITING_FOR_INFO: [TAKE, ("request_information", MANAGER, {"question": "Quel navigateur ?"})],
    POSTPONED: [TAKE, ("postpone", MANAGER, {"reason": "En attente du prestataire"})],
    CLOSURE_REQUESTED: [TAKE, REQUEST_CLOSURE],
    CLOSED: [TAKE, REQUEST_CLOSURE, ("approve_closure", REQUESTER, {"rating": 5})],
    CANCELLED: [TAKE, ("cancel", REQUESTER, {})],
    REFUSED: [TAKE, ("refuse", MANAGER, {"reason": "Hors périmètre"})],
}


def user(actor: Actor) -> User:
    return User(actor.id, actor.name, actor.email)


def upload(attachment_id: str, visibility: str = "public") -> dict[str, Any]:
    return {
        "attachment_id": attachment_id,
        "filename": f"{attachment_id}.png",
        "size": 1024,
        "content_type": "image/png",
        "visibility": visibility,
    }


def escalate_directly(desk: Desk) -> None:
    """Escalate to the central support with ``escalate_to`` alone.

    ``escalate`` followed by ``escalate_to`` is refused by the domain (see
    ``test_escalate_then_escalate_to_moves_the_ticket_to_the_central_support``), so the
    escalated situations are built with the escalation service's step only.
    """
    desk.do("escalate_to", ESCALATION, department_id=SUPPORT)


def requester_watches(desk: Desk) -> None:
    desk.do("watch", REQUESTER)


def desk_in(status: str, prepare: Callable[[Desk], None] | None = None) -> Desk:
    """A ticket in ``status``; ``prepare`` runs once it is routed, before the status path."""
    desk = Desk()
    desk.routed()
    desk.do("invite", REQUESTER, user=user(INVITEE))
    desk.do("attach", REQUESTER, **upload("a-requester"))
    desk.do("attach", INVITEE, **upload("a-invitee"))
    if prepare is not None:
        prepare(desk)
    for action, actor, kwargs in STATUS_PATHS[status]:
        desk.do(action, actor, **kwargs)
    assert desk.ticket.status == status
    return desk


def types(changes: list[Change]) -> list[str]:
    return [change.event_type for change in changes]


def state(ticket: Ticket) -> dict[str, Any]:
    """The parts of a ticket the tables below talk about."""
    return {
        "status": ticket.status,
        "assignee": ticket.assignee["id"] if ticket.assignee else None,
        "resolution": ticket.resolution,
        "escalation": ticket.escalation,
        "department": ticket.department_id,
        "category": ticket.category_id,
        "rating": ticket.rating,
        "priority": ticket.priority,
        "subject": ticket.subject,
        "invitees": sorted(ticket.invitees),
        "watchers": sorted(ticket.watchers),
        "attachments": sorted(ticket.attachments),
        "comments": [(c["author"]["id"], c["visibility"]) for c in ticket.comments],
    }


def refused(
    desk: Desk, error: type[DomainError], action: str, actor: Actor, **kwargs: Any
) -> DomainError:
    """``action`` is refused with ``error``; nothing is appended and the ticket is unchanged."""
    before = copy.deepcopy(desk.ticket)
    recorded = len(desk.events)
    with pytest.raises(DomainError) as caught:
        desk.do(action, actor, **kwargs)
    assert type(caught.value) is error, caught.value
    assert caught.value.status == before.status
    assert len(desk.events) == recorded
    assert desk.ticket == before
    assert desk.replay() == before
    return caught.value


def rule_name(action: str, kwargs: dict[str, Any]) -> str:
    """The name an error carries: an internal comment is the ``comment_internal`` row."""
    internal = action == "comment" and kwargs.get("visibility") == "internal"
    return "comment_internal" if internal else action


# --- who may: the events produced and the effect ------------------------------------------


def ok(
    name: str,
    action: str,
    actor: Actor,
    status: str,
    kwargs: dict[str, Any],
    events: list[str],
    /,
    **effects: Any,
) -> Any:
    return pytest.param(action, actor, status, kwargs, events, effects, id=name)


ANSWER = {"body": "J'utilise Firefox 128."}
INTERNAL = {"body": "Compte bloqué côté annuaire.", "visibility": "internal"}
UNTIL = timedelta(days=7)  # added to the clock by the test

# fmt: off
ALLOWED = [
    # submit is covered by test_submit_*.
    # comment: requester, invitee, manager; any but final
    ok("comment-requester", "comment", REQUESTER, IN_PROGRESS, ANSWER, ["CommentAdded"],
       status=IN_PROGRESS, comments=[(REQUESTER.id, "public")]),
    ok("comment-invitee", "comment", INVITEE, FREE, ANSWER, ["CommentAdded"],
       status=FREE, comments=[(INVITEE.id, "public")]),
    ok("comment-manager", "comment", MANAGER_2, POSTPONED, ANSWER, ["CommentAdded"],
       status=POSTPONED),
    ok("comment-admin", "comment", ADMIN, CLOSURE_REQUESTED, ANSWER, ["CommentAdded"],
       status=CLOSURE_REQUESTED),
    ok("comment-requester-answers-the-question", "comment", REQUESTER, WAITING_FOR_INFO,
       ANSWER, ["CommentAdded", "InformationProvided"], status=IN_PROGRESS),
    ok("comment-assignee-answers-the-question", "comment", MANAGER, WAITING_FOR_INFO,
       ANSWER, ["CommentAdded", "InformationProvided"], status=IN_PROGRESS),
    ok("comment-invitee-does-not-answer", "comment", INVITEE, WAITING_FOR_INFO, ANSWER,
       ["CommentAdded"], status=WAITING_FOR_INFO),
    ok("comment-other-manager-does-not-answer", "comment", MANAGER_2, WAITING_FOR_INFO,
       ANSWER, ["CommentAdded"], status=WAITING_FOR_INFO),
    # comment (internal): manager; any status
    ok("comment_internal-manager", "comment", MANAGER_2, IN_PROGRESS, INTERNAL,
       ["CommentAdded"], comments=[(MANAGER_2.id, "internal")]),
    ok("comment_internal-on-final", "comment", MANAGER, CLOSED, INTERNAL, ["CommentAdded"],
       status=CLOSED),
    ok("comment_internal-admin", "comment", ADMIN, REFUSED, INTERNAL, ["CommentAdded"]),
    ok("comment_internal-does-not-answer", "comment", MANAGER, WAITING_FOR_INFO, INTERNAL,
       ["CommentAdded"], status=WAITING_FOR_INFO),
    # take: manager; open
    ok("take-free", "take", MANAGER, FREE, {}, ["TicketAssigned"],
       status=IN_PROGRESS, assignee=MANAGER.id),
    ok("take-over-from-another-manager", "take_over", MANAGER_2, WAITING_FOR_INFO, {},
       ["TicketAssigned"], status=WAITING_FOR_INFO, assignee=MANAGER_2.id),
    ok("take-admin", "take", ADMIN, FREE, {}, ["TicketAssigned"],
       status=IN_PROGRESS, assignee=ADMIN.id),
    # assign: manager; open; to another manager of the department
    ok("assign-free", "assign", MANAGER, FREE, {"assignee": user(MANAGER_2)},
       ["TicketAssigned"], status=IN_PROGRESS, assignee=MANAGER_2.id),
    ok("assign-reassign", "assign", MANAGER_2, POSTPONED, {"assignee": user(MANAGER_2)},
       ["TicketAssigned"], status=POSTPONED, assignee=MANAGER_2.id),
    ok("assign-admin", "assign", ADMIN, FREE, {"assignee": user(MANAGER)},
       ["TicketAssigned"], status=IN_PROGRESS, assignee=MANAGER.id),
    # release: assignee, manager; open but FREE; -> FREE
    ok("release-assignee", "release", MANAGER, IN_PROGRESS, {}, ["TicketReleased"],
       status=FREE, assignee=None),
    ok("release-manager", "release", MANAGER_2, WAITING_FOR_INFO, {}, ["TicketReleased"],
       status=FREE, assignee=None),
    ok("release-admin", "release", ADMIN, POSTPONED, {}, ["TicketReleased"],
       status=FREE, assignee=None),
    # request_information: assignee; IN_PROGRESS
    ok("request_information-assignee", "request_information", MANAGER, IN_PROGRESS,
       {"question": "Quel navigateur ?"}, ["InformationRequested"], status=WAITING_FOR_INFO),
    # postpone: assignee; IN_PROGRESS, WAITING_FOR_INFO
    ok("postpone-in-progress", "postpone", MANAGER, IN_PROGRESS,
       {"reason": "Congés du prestataire", "until": UNTIL}, ["TicketPostponed"],
       status=POSTPONED),
    ok("postpone-waiting-without-date", "postpone", MANAGER, WAITING_FOR_INFO,
       {"reason": "Congés du prestataire"}, ["TicketPostponed"], status=POSTPONED),
    # resume: assignee; system at the recall date; POSTPONED
    ok("resume-assignee", "resume", MANAGER, POSTPONED, {}, ["TicketResumed"],
       status=IN_PROGRESS, assignee=MANAGER.id),
    ok("resume-system", "resume", RECALL, POSTPONED, {}, ["TicketResumed"],
       status=IN_PROGRESS, assignee=MANAGER.id),
    # request_closure: assignee; IN_PROGRESS, WAITING_FOR_INFO, POSTPONED
    ok("request_closure-in-progress", "request_closure", MANAGER, IN_PROGRESS,
       {"resolution": "Mot de passe réinitialisé"}, ["ClosureRequested"],
       status=CLOSURE_REQUESTED),
    ok("request_closure-waiting", "request_closure", MANAGER, WAITING_FOR_INFO,
       {"resolution": "Mot de passe réinitialisé"}, ["ClosureRequested"],
       status=CLOSURE_REQUESTED),
    ok("request_closure-postponed", "request_closure", MANAGER, POSTPONED,
       {"resolution": "Mot de passe réinitialisé"}, ["ClosureRequested"],
       status=CLOSURE_REQUESTED),
    # approve_closure: requester; CLOSURE_REQUESTED; optional rating 1..5
    ok("approve_closure-rating-1", "approve_closure", REQUESTER, CLOSURE_REQUESTED,
       {"rating": 1, "feedback": "Lent"}, ["ClosureApproved"],
       status=CLOSED, resolution="approved", rating=1),
    ok("approve_closure-rating-5", "approve_closure", REQUESTER, CLOSURE_REQUESTED,
       {"rating": 5}, ["ClosureApproved"], status=CLOSED, resolution="approved", rating=5),
    ok("approve_closure-no-rating", "approve_closure", REQUESTER, CLOSURE_REQUESTED, {},
       ["ClosureApproved"], status=CLOSED, resolution="approved", rating=None),
    # refuse_closure: requester; CLOSURE_REQUESTED; -> IN_PROGRESS
    ok("refuse_closure-requester", "refuse_closure", REQUESTER, CLOSURE_REQUESTED,
       {"justification": "Toujours impossible de me connecter"}, ["ClosureRefused"],
       status=IN_PROGRESS, assignee=MANAGER.id),
    # expire_closure: system; CLOSURE_REQUESTED
    ok("expire_closure-system", "expire_closure", EXPIRY, CLOSURE_REQUESTED, {},
       ["ClosureExpired"], status=CLOSED, resolution="expired"),
    # close / cancel: requester; open
    ok("close-requester-free", "close", REQUESTER, FREE, {}, ["TicketClosedByOwner"],
       status=CLOSED, resolution="closed_by_owner"),
    ok("close-requester-postponed", "close", REQUESTER, POSTPONED, {},
       ["TicketClosedByOwner"], status=CLOSED, resolution="closed_by_owner"),
    ok("cancel-requester-free", "cancel", REQUESTER, FREE, {}, ["TicketCancelled"],
       status=CANCELLED, resolution=None),
    ok("cancel-requester-waiting", "cancel", REQUESTER, WAITING_FOR_INFO,
       {"reason": "Problème résolu tout seul"}, ["TicketCancelled"], status=CANCELLED),
    # refuse: manager; open; reason required
    ok("refuse-manager", "refuse", MANAGER_2, IN_PROGRESS, {"reason": "Hors périmètre"},
       ["TicketRefused"], status=REFUSED),
    ok("refuse-admin", "refuse", ADMIN, FREE, {"reason": "Doublon"}, ["TicketRefused"],
       status=REFUSED),
    # reopen: requester, former assignee, manager; final, within 30 days
    ok("reopen-requester", "reopen", REQUESTER, CLOSED, {}, ["TicketReopened"],
       status=IN_PROGRESS, assignee=MANAGER.id, resolution=None),
    ok("reopen-former-assignee", "reopen", MANAGER, CANCELLED, {}, ["TicketReopened"],
       status=IN_PROGRESS, assignee=MANAGER.id),
    ok("reopen-manager", "reopen", MANAGER_2, REFUSED, {"reason": "Erreur"},
       ["TicketReopened"], status=IN_PROGRESS, assignee=MANAGER.id),
    ok("reopen-admin", "reopen", ADMIN, CLOSED, {}, ["TicketReopened"], status=IN_PROGRESS),
    # move: manager; open (routing then runs again: test_move_then_route_*)
    ok("move-manager", "move", MANAGER_2, IN_PROGRESS, {"category_id": NEW_CATEGORY},
       ["TicketMoved"], category=NEW_CATEGORY, status=IN_PROGRESS),
    ok("move-admin", "move", ADMIN, FREE, {"category_id": NEW_CATEGORY}, ["TicketMoved"],
       category=NEW_CATEGORY),
    # invite / uninvite: requester, manager; any but final
    ok("invite-requester", "invite", REQUESTER, FREE, {"user": user(OTHER_USER)},
       ["UserInvited"], invitees=sorted([INVITEE.id, OTHER_USER.id])),
    ok("invite-manager", "invite", MANAGER, CLOSURE_REQUESTED, {"user": user(OTHER_USER)},
       ["UserInvited"], invitees=sorted([INVITEE.id, OTHER_USER.id])),
    ok("invite-admin", "invite", ADMIN, IN_PROGRESS, {"user": user(OTHER_USER)},
       ["UserInvited"]),
    ok("uninvite-requester", "uninvite", REQUESTER, IN_PROGRESS, {"user_id": INVITEE.id},
       ["InvitationRevoked"], invitees=[]),
    ok("uninvite-manager", "uninvite", MANAGER_2, FREE, {"user_id": INVITEE.id},
       ["InvitationRevoked"], invitees=[]),
    # watch: anyone who can see the ticket; any status
    ok("watch-requester", "watch", REQUESTER, CLOSED, {}, ["WatchStarted"],
       watchers=[REQUESTER.id]),
    ok("watch-invitee", "watch", INVITEE, IN_PROGRESS, {}, ["WatchStarted"],
       watchers=[INVITEE.id]),
    ok("watch-manager", "watch", MANAGER_2, FREE, {}, ["WatchStarted"],
       watchers=[MANAGER_2.id]),
    ok("watch-admin", "watch", ADMIN, REFUSED, {}, ["WatchStarted"], watchers=[ADMIN.id]),
    ok("watch-manager-adds-a-viewer", "watch", MANAGER, IN_PROGRESS,
       {"user": user(INVITEE)}, ["WatchStarted"], watchers=[INVITEE.id]),
    ok("watch-admin-adds-a-viewer", "watch", ADMIN, IN_PROGRESS,
       {"user": user(REQUESTER)}, ["WatchStarted"], watchers=[REQUESTER.id]),
    # attach: requester, invitee, manager; any but final; internal only by a manager
    ok("attach-requester", "attach", REQUESTER, FREE, upload("a-new"), ["AttachmentAdded"],
       attachments=["a-invitee", "a-new", "a-requester"]),
    ok("attach-invitee", "attach", INVITEE, CLOSURE_REQUESTED, upload("a-new"),
       ["AttachmentAdded"]),
    ok("attach-manager", "attach", MANAGER_2, WAITING_FOR_INFO, upload("a-new"),
       ["AttachmentAdded"], status=WAITING_FOR_INFO),
    ok("attach-manager-internal", "attach", MANAGER, IN_PROGRESS,
       upload("a-new", "internal"), ["AttachmentAdded"]),
    ok("attach-admin-internal", "attach", ADMIN, IN_PROGRESS, upload("a-new", "internal"),
       ["AttachmentAdded"]),
    # remove_attachment: requester (own files), manager; any but final; comment required
    ok("remove_attachment-requester-own-file", "remove_attachment", REQUESTER, IN_PROGRESS,
       {"attachment_id": "a-requester", "comment": "Mauvais fichier"},
       ["AttachmentRemoved"], attachments=["a-invitee"]),
    ok("remove_attachment-manager-any-file", "remove_attachment", MANAGER_2,
       CLOSURE_REQUESTED, {"attachment_id": "a-invitee", "comment": "Données personnelles"},
       ["AttachmentRemoved"], attachments=["a-requester"]),
    ok("remove_attachment-admin", "remove_attachment", ADMIN, FREE,
       {"attachment_id": "a-requester", "comment": "Virus"}, ["AttachmentRemoved"]),
    # change_subject, change_priority: requester (while open), manager; open; 1..5
    ok("change_subject-requester", "change_subject", REQUESTER, FREE,
       {"subject": "ENT inaccessible"}, ["SubjectChanged"], subject="ENT inaccessible"),
    ok("change_subject-manager", "change_subject", MANAGER_2, POSTPONED,
       {"subject": "ENT inaccessible"}, ["SubjectChanged"], subject="ENT inaccessible"),
    ok("change_priority-requester-1", "change_priority", REQUESTER, IN_PROGRESS,
       {"priority": 1}, ["PriorityChanged"], priority=1),
    ok("change_priority-manager-5", "change_priority", MANAGER, WAITING_FOR_INFO,
       {"priority": 5}, ["PriorityChanged"], priority=5),
    ok("change_priority-admin", "change_priority", ADMIN, FREE, {"priority": 4},
       ["PriorityChanged"], priority=4),
    # escalate: local referent (a manager of the current department); open
    ok("escalate-referent", "escalate", MANAGER_2, IN_PROGRESS,
       {"reason": "Problème d'annuaire central"}, ["EscalationRequested"],
       escalation="requested", department=DEPARTMENT, status=IN_PROGRESS),
    ok("escalate-admin", "escalate", ADMIN, FREE, {"reason": "Panne générale"},
       ["EscalationRequested"], escalation="requested"),
    # escalate_to: the escalation service moves the ticket to the central support
    ok("escalate_to-system", "escalate_to", ESCALATION, IN_PROGRESS,
       {"department_id": SUPPORT}, ["TicketEscalated"], escalation="escalated",
       department=SUPPORT, status=IN_PROGRESS, assignee=MANAGER.id),
]
# fmt: on


@pytest.mark.parametrize("action, actor, status, kwargs, events, effects", ALLOWED)
def test_allowed(
    action: str,
    actor: Actor,
    status: str,
    kwargs: dict[str, Any],
    events: list[str],
    effects: dict[str, Any],
) -> None:
    desk = desk_in(status)
    if isinstance(kwargs.get("until"), timedelta):
        kwargs = {**kwargs, "until": desk.clock.now + kwargs["until"]}
    version = desk.ticket.version
    assert types(desk.do(action, actor, **kwargs)) == events
    assert desk.ticket.version == version + len(events)
    after = state(desk.ticket)
    if "comments" in effects:  # only the new comments
        after["comments"] = after["comments"][-len(effects["comments"]) :]
    assert {key: after[key] for key in effects} == effects
    assert desk.replay() == desk.ticket


# --- who may not: Forbidden --------------------------------------------------------------


def no(name: str, action: str, actor: Actor, status: str, /, **kwargs: Any) -> Any:
    return pytest.param(action, actor, status, kwargs, id=name)


# fmt: off
FORBIDDEN = [
    no("comment-other-user", "comment", OTHER_USER, IN_PROGRESS, **ANSWER),
    no("comment-other-department-manager", "comment", OTHER_MANAGER, IN_PROGRESS, **ANSWER),
    no("comment-support-before-escalation", "comment", SUPPORT_MANAGER, FREE, **ANSWER),
    no("comment_internal-requester", "comment", REQUESTER, IN_PROGRESS, **INTERNAL),
    no("comment_internal-invitee", "comment", INVITEE, IN_PROGRESS, **INTERNAL),
    no("comment_internal-other-department-manager", "comment", OTHER_MANAGER, FREE,
       **INTERNAL),
    no("take-requester", "take", REQUESTER, FREE),
    no("take-invitee", "take", INVITEE, FREE),
    no("take-other-user", "take", OTHER_USER, FREE),
    no("take-other-department-manager", "take", OTHER_MANAGER, FREE),
    no("assign-requester", "assign", REQUESTER, FREE, assignee=user(MANAGER)),
    no("assign-invitee", "assign", INVITEE, FREE, assignee=user(MANAGER)),
    no("assign-other-department-manager", "assign", OTHER_MANAGER, FREE,
       assignee=user(MANAGER)),
    no("release-requester", "release", REQUESTER, IN_PROGRESS),
    no("release-invitee", "release", INVITEE, IN_PROGRESS),
    no("release-other-department-manager", "release", OTHER_MANAGER, IN_PROGRESS),
    no("request_information-manager-not-assignee", "request_information", MANAGER_2,
       IN_PROGRESS, question="Quel navigateur ?"),
    no("request_information-admin-not-assignee", "request_information", ADMIN, IN_PROGRESS,
       question="Quel navigateur ?"),
    no("request_information-requester", "request_information", REQUESTER, IN_PROGRESS,
       question="Quel navigateur ?"),
    no("postpone-manager-not-assignee", "postpone", MANAGER_2, IN_PROGRESS, reason="Congés"),
    no("postpone-requester", "postpone", REQUESTER, IN_PROGRESS, reason="Congés"),
    no("resume-manager-not-assignee", "resume", MANAGER_2, POSTPONED),
    no("resume-requester", "resume", REQUESTER, POSTPONED),
    no("request_closure-manager-not-assignee", "request_closure", MANAGER_2, IN_PROGRESS,
       resolution="Réglé"),
    no("request_closure-admin-not-assignee", "request_closure", ADMIN, IN_PROGRESS,
       resolution="Réglé"),
    no("request_closure-requester", "request_closure", REQUESTER, IN_PROGRESS,
       resolution="Réglé"),
    no("approve_closure-invitee", "approve_closure", INVITEE, CLOSURE_REQUESTED, rating=5),
    no("approve_closure-assignee", "approve_closure", MANAGER, CLOSURE_REQUESTED),
    no("approve_closure-admin", "approve_closure", ADMIN, CLOSURE_REQUESTED),
    no("approve_closure-system", "approve_closure", EXPIRY, CLOSURE_REQUESTED),
    no("refuse_closure-invitee", "refuse_closure", INVITEE, CLOSURE_REQUESTED,
       justification="Non"),
    no("refuse_closure-assignee", "refuse_closure", MANAGER, CLOSURE_REQUESTED,
       justification="Non"),
    no("expire_closure-requester", "expire_closure", REQUESTER, CLOSURE_REQUESTED),
    no("expire_closure-assignee", "expire_closure", MANAGER, CLOSURE_REQUESTED),
    no("expire_closure-admin", "expire_closure", ADMIN, CLOSURE_REQUESTED),
    no("close-invitee", "close", INVITEE, IN_PROGRESS),
    no("close-assignee", "close", MANAGER, IN_PROGRESS),
    no("close-admin", "close", ADMIN, FREE),
    no("cancel-invitee", "cancel", INVITEE, FREE),
    no("cancel-assignee", "cancel", MANAGER, IN_PROGRESS),
    no("cancel-admin", "cancel", ADMIN, FREE),
    no("refuse-requester", "refuse", REQUESTER, FREE, reason="Doublon"),
    no("refuse-invitee", "refuse", INVITEE, FREE, reason="Doublon"),
    no("refuse-other-department-manager", "refuse", OTHER_MANAGER, FREE, reason="Doublon"),
    no("reopen-invitee", "reopen", INVITEE, CLOSED),
    no("reopen-other-user", "reopen", OTHER_USER, CLOSED),
    no("reopen-other-department-manager", "reopen", OTHER_MANAGER, CANCELLED),
    no("move-requester", "move", REQUESTER, FREE, category_id=NEW_CATEGORY),
    no("move-invitee", "move", INVITEE, FREE, category_id=NEW_CATEGORY),
    no("move-other-department-manager", "move", OTHER_MANAGER, FREE,
       category_id=NEW_CATEGORY),
    no("invite-invitee", "invite", INVITEE, FREE, user=user(OTHER_USER)),
    no("invite-other-user", "invite", OTHER_USER, FREE, user=user(OTHER_USER)),
    no("invite-other-department-manager", "invite", OTHER_MANAGER, FREE,
       user=user(OTHER_USER)),
    no("uninvite-invitee", "uninvite", INVITEE, FREE, user_id=INVITEE.id),
    no("uninvite-other-department-manager", "uninvite", OTHER_MANAGER, FREE,
       user_id=INVITEE.id),
    no("watch-other-user", "watch", OTHER_USER, IN_PROGRESS),
    no("watch-other-department-manager", "watch", OTHER_MANAGER, IN_PROGRESS),
    no("watch-requester-adds-another-watcher", "watch", REQUESTER, IN_PROGRESS,
       user=user(INVITEE)),
    no("watch-invitee-adds-another-watcher", "watch", INVITEE, IN_PROGRESS,
       user=user(REQUESTER)),
    no("attach-other-user", "attach", OTHER_USER, FREE, **upload("a-new")),
    no("attach-other-department-manager", "attach", OTHER_MANAGER, FREE, **upload("a-new")),
    no("attach-internal-requester", "attach", REQUESTER, FREE,
       **upload("a-new", "internal")),
    no("attach-internal-invitee", "attach", INVITEE, FREE, **upload("a-new", "internal")),
    no("remove_attachment-requester-not-own-file", "remove_attachment", REQUESTER,
       IN_PROGRESS, attachment_id="a-invitee", comment="Pas utile"),
    no("remove_attachment-invitee-own-file", "remove_attachment", INVITEE, IN_PROGRESS,
       attachment_id="a-invitee", comment="Erreur"),
    no("remove_attachment-other-department-manager", "remove_attachment", OTHER_MANAGER,
       IN_PROGRESS, attachment_id="a-requester", comment="Erreur"),
    no("change_subject-invitee", "change_subject", INVITEE, FREE, subject="Autre sujet"),
    no("change_subject-other-user", "change_subject", OTHER_USER, FREE, subject="Autre"),
    no("change_subject-other-department-manager", "change_subject", OTHER_MANAGER, FREE,
       subject="Autre sujet"),
    no("change_priority-invitee", "change_priority", INVITEE, FREE, priority=5),
    no("change_priority-other-department-manager", "change_priority", OTHER_MANAGER, FREE,
       priority=5),
    no("escalate-requester", "escalate", REQUESTER, IN_PROGRESS, reason="Urgent"),
    no("escalate-invitee", "escalate", INVITEE, IN_PROGRESS, reason="Urgent"),
    no("escalate-other-department-manager", "escalate", OTHER_MANAGER, IN_PROGRESS,
       reason="Urgent"),
    no("escalate-central-support-before-escalation", "escalate", SUPPORT_MANAGER,
       IN_PROGRESS, reason="Urgent"),
    no("escalate_to-manager", "escalate_to", MANAGER, IN_PROGRESS, department_id=SUPPORT),
    no("escalate_to-admin", "escalate_to", ADMIN, IN_PROGRESS, department_id=SUPPORT),
    no("return_to_referent-not-escalated-support", "return_to_referent", SUPPORT_MANAGER,
       IN_PROGRESS, comment="Retour"),
]
# fmt: on


@pytest.mark.parametrize("action, actor, status, kwargs", FORBIDDEN)
def test_forbidden(action: str, actor: Actor, status: str, kwargs: dict[str, Any]) -> None:
    desk = desk_in(status)
    error = refused(desk, Forbidden, action, actor, **kwargs)
    assert error.action == rule_name(action, kwargs)


# --- from which statuses: allowed, else InvalidTransition ---------------------------------

# (row, command, actor allowed to do it, arguments, "from" column, prepare). The actor is
# the one who may, so that only the status decides; MANAGER is the assignee.
# fmt: off
SWEEP: list[tuple[str, str, Actor, dict[str, Any], tuple[str, ...], Any]] = [
    ("comment", "comment", REQUESTER, ANSWER, NOT_FINAL, None),
    ("comment_internal", "comment", MANAGER, INTERNAL, ALL, None),
    ("take", "take", MANAGER_2, {}, (FREE,), None),
    ("take_over", "take_over", MANAGER_2, {}, (IN_PROGRESS, WAITING_FOR_INFO, POSTPONED), None),
    ("assign", "assign", MANAGER, {"assignee": user(MANAGER_2)}, OPEN, None),
    ("release", "release", MANAGER, {}, (IN_PROGRESS, WAITING_FOR_INFO, POSTPONED), None),
    ("request_information", "request_information", MANAGER, {"question": "Quel navigateur ?"},
     (IN_PROGRESS,), None),
    ("postpone", "postpone", MANAGER, {"reason": "Congés"}, (IN_PROGRESS, WAITING_FOR_INFO),
     None),
    ("resume", "resume", MANAGER, {}, (POSTPONED,), None),
    ("request_closure", "request_closure", MANAGER, {"resolution": "Réglé"},
     (IN_PROGRESS, WAITING_FOR_INFO, POSTPONED), None),
    ("approve_closure", "approve_closure", REQUESTER, {"rating": 4}, (CLOSURE_REQUESTED,), None),
    ("refuse_closure", "refuse_closure", REQUESTER, {"justification": "Toujours en panne"},
     (CLOSURE_REQUESTED,), None),
    ("expire_closure", "expire_closure", EXPIRY, {}, (CLOSURE_REQUESTED,), None),
    ("close", "close", REQUESTER, {}, OPEN, None),
    ("cancel", "cancel", REQUESTER, {}, OPEN, None),
    ("refuse", "refuse", MANAGER, {"reason": "Hors périmètre"}, OPEN, None),
    ("reopen", "reopen", MANAGER, {}, FINAL, None),
    ("move", "move", MANAGER, {"category_id": NEW_CATEGORY}, OPEN, None),
    ("invite", "invite", REQUESTER, {"user": user(OTHER_USER)}, NOT_FINAL, None),
    ("uninvite", "uninvite", REQUESTER, {"user_id": INVITEE.id}, NOT_FINAL, None),
    ("watch", "watch", REQUESTER, {}, ALL, None),
    ("unwatch", "unwatch", REQUESTER, {}, ALL, requester_watches),
    ("attach", "attach", REQUESTER, upload("a-new"), NOT_FINAL, None),
    ("remove_attachment", "remove_attachment", REQUESTER,
     {"attachment_id": "a-requester", "comment": "Mauvais fichier"}, NOT_FINAL, None),
    ("change_subject", "change_subject", REQUESTER, {"subject": "ENT inaccessible"}, OPEN, None),
    ("change_priority", "change_priority", MANAGER, {"priority": 5}, OPEN, None),
    ("escalate", "escalate", MANAGER, {"reason": "Annuaire central"}, OPEN, None),
    ("escalate_to", "escalate_to", ESCALATION, {"department_id": SUPPORT}, OPEN, None),
    ("return_to_referent", "return_to_referent", SUPPORT_MANAGER, {"comment": "À vous"}, OPEN,
     escalate_directly),
]
# fmt: on
ASSIGNEE_ONLY = {"request_information", "postpone", "resume", "request_closure"}


def sweep() -> list[Any]:
    params = []
    for row, command, actor, kwargs, allowed, prepare in SWEEP:
        for status in ALL:
            if status in allowed:
                expected: type[DomainError] | None = None
            elif row in ASSIGNEE_ONLY and status == FREE:
                expected = Forbidden  # a FREE ticket has no assignee to act
            else:
                expected = InvalidTransition
            params.append(
                pytest.param(
                    row, command, actor, kwargs, status, prepare, expected, id=f"{row}-{status}"
                )
            )
    return params


@pytest.mark.parametrize("row, command, actor, kwargs, status, prepare, expected", sweep())
def test_from_statuses(
    row: str,
    command: str,
    actor: Actor,
    kwargs: dict[str, Any],
    status: str,
    prepare: Callable[[Desk], None] | None,
    expected: type[DomainError] | None,
) -> None:
    desk = desk_in(status, prepare)
    if expected is None:
        version = desk.ticket.version
        assert desk.do(command, actor, **kwargs)
        assert desk.ticket.version > version
    else:
        error = refused(desk, expected, command, actor, **kwargs)
        assert error.action == row
        assert error.status == status


# --- required and valid arguments: InvalidArgument ----------------------------------------


def bad(name: str, action: str, actor: Actor, status: str, field: str, /, **kwargs: Any) -> Any:
    return pytest.param(action, actor, status, field, kwargs, id=name)


# fmt: off
INVALID = [
    bad("comment-empty-body", "comment", REQUESTER, IN_PROGRESS, "body", body=""),
    bad("comment-blank-body", "comment", MANAGER, IN_PROGRESS, "body", body="  \n"),
    bad("comment-unknown-visibility", "comment", MANAGER, IN_PROGRESS, "visibility",
        body="Note", visibility="secret"),
    bad("comment-unknown-attachment", "comment", REQUESTER, IN_PROGRESS, "attachment_ids",
        body="Voir pièce jointe", attachment_ids=["a-unknown"]),
    bad("assign-other-department-manager", "assign", MANAGER, FREE, "assignee",
        assignee=user(OTHER_MANAGER)),
    bad("assign-requester", "assign", MANAGER, FREE, "assignee", assignee=user(REQUESTER)),
    bad("assign-support-before-escalation", "assign", ADMIN, FREE, "assignee",
        assignee=user(SUPPORT_MANAGER)),
    bad("request_information-blank-question", "request_information", MANAGER, IN_PROGRESS,
        "question", question=" "),
    bad("postpone-blank-reason", "postpone", MANAGER, IN_PROGRESS, "reason", reason=""),
    bad("request_closure-empty-resolution", "request_closure", MANAGER, IN_PROGRESS,
        "resolution", resolution=""),
    bad("request_closure-blank-resolution", "request_closure", MANAGER, POSTPONED,
        "resolution", resolution="   "),
    bad("approve_closure-rating-0", "approve_closure", REQUESTER, CLOSURE_REQUESTED, "rating",
        rating=0),
    bad("approve_closure-rating-6", "approve_closure", REQUESTER, CLOSURE_REQUESTED, "rating",
        rating=6),
    bad("refuse_closure-empty-justification", "refuse_closure", REQUESTER, CLOSURE_REQUESTED,
        "justification", justification=""),
    bad("refuse_closure-whitespace-justification", "refuse_closure", REQUESTER,
        CLOSURE_REQUESTED, "justification", justification=" \t\n "),
    bad("refuse-empty-reason", "refuse", MANAGER, IN_PROGRESS, "reason", reason=""),
    bad("refuse-blank-reason", "refuse", MANAGER, FREE, "reason", reason="   "),
    bad("move-empty-category", "move", MANAGER, IN_PROGRESS, "category_id", category_id=""),
    bad("move-same-category", "move", MANAGER, IN_PROGRESS, "category_id",
        category_id="ent-connexion"),
    bad("invite-the-requester", "invite", MANAGER, FREE, "user", user=user(REQUESTER)),
    bad("uninvite-not-invited", "uninvite", REQUESTER, FREE, "user", user_id=OTHER_USER.id),
    bad("watch-manager-adds-user-who-cannot-see", "watch", MANAGER, IN_PROGRESS, "user",
        user=user(OTHER_USER)),
    bad("watch-manager-adds-manager-who-cannot-see", "watch", MANAGER_2, IN_PROGRESS, "user",
        user=user(OTHER_MANAGER)),
    bad("attach-unknown-visibility", "attach", MANAGER, FREE, "visibility",
        **upload("a-new", "secret")),
    bad("remove_attachment-empty-comment", "remove_attachment", REQUESTER, IN_PROGRESS,
        "comment", attachment_id="a-requester", comment=""),
    bad("remove_attachment-blank-comment", "remove_attachment", MANAGER, IN_PROGRESS,
        "comment", attachment_id="a-invitee", comment="  "),
    bad("remove_attachment-unknown-file", "remove_attachment", MANAGER, IN_PROGRESS,
        "attachment_id", attachment_id="a-unknown", comment="Doublon"),
    bad("change_subject-blank", "change_subject", REQUESTER, FREE, "subject", subject=" "),
    bad("change_priority-0", "change_priority", MANAGER, FREE, "priority", priority=0),
    bad("change_priority-6", "change_priority", REQUESTER, FREE, "priority", priority=6),
    bad("change_priority-not-a-number", "change_priority", MANAGER, FREE, "priority",
        priority="5"),
    bad("escalate-blank-reason", "escalate", MANAGER, IN_PROGRESS, "reason", reason=" "),
    bad("escalate_to-same-department", "escalate_to", ESCALATION, IN_PROGRESS,
        "department_id", department_id=DEPARTMENT),
]
# fmt: on


@pytest.mark.parametrize("action, actor, status, field, kwargs", INVALID)
def test_invalid_argument(
    action: str, actor: Actor, status: str, field: str, kwargs: dict[str, Any]
) -> None:
    desk = desk_in(status)
    error = refused(desk, InvalidArgument, action, actor, **kwargs)
    assert isinstance(error, InvalidArgument)
    assert error.field == field


def test_postpone_until_must_be_in_the_future() -> None:
    desk = desk_in(IN_PROGRESS)
    error = refused(
        desk,
        InvalidArgument,
        "postpone",
        MANAGER,
        reason="Congés",
        until=desk.clock.now - timedelta(hours=1),
    )
    assert isinstance(error, InvalidArgument)
    assert error.field == "until"


# --- submit ---------------------------------------------------------------------------------


def test_submit_by_any_user_gives_a_free_numbered_ticket() -> None:
    desk = Desk()
    ticket = desk.submit(OTHER_USER)
    assert [event for event, *_ in desk.events] == ["TicketSubmitted"]
    assert (ticket.status, ticket.number, ticket.priority) == (FREE, 53350, 3)
    assert ticket.requester is not None and ticket.requester["id"] == OTHER_USER.id
    assert ticket.establishment == OTHER_USER.establishment


@pytest.mark.parametrize(
    "actor, kwargs, error",
    [
        pytest.param(ROUTING, {}, Forbidden, id="system"),
        pytest.param(REQUESTER, {"subject": "  "}, InvalidArgument, id="blank-subject"),
        pytest.param(REQUESTER, {"description": ""}, InvalidArgument, id="empty-description"),
        pytest.param(REQUESTER, {"priority": 0}, InvalidArgument, id="priority-0"),
        pytest.param(REQUESTER, {"priority": 6}, InvalidArgument, id="priority-6"),
    ],
)
def test_submit_refused(actor: Actor, kwargs: dict[str, Any], error: type[DomainError]) -> None:
    desk = Desk()
    with pytest.raises(error):
        desk.submit(actor, **kwargs)
    assert desk.events == []
    assert desk.ticket == Ticket()


# --- the rows' particular rules --------------------------------------------------------------


def test_take_twice_by_the_assignee_is_refused() -> None:
    refused(desk_in(IN_PROGRESS), InvalidTransition, "take", MANAGER)


@pytest.mark.parametrize(
    "days, allowed", [pytest.param(29, True, id="29-days"), pytest.param(31, False, id="31-days")]
)
@pytest.mark.parametrize("final", FINAL)
def test_reopen_only_within_30_days(final: str, days: int, allowed: bool) -> None:
    desk = desk_in(final)
    desk.clock.advance(days=days)
    reopener = MANAGER if final == REFUSED else REQUESTER  # a refused ticket: not its requester
    if allowed:
        assert types(desk.do("reopen", reopener)) == ["TicketReopened"]
        assert desk.ticket.status == IN_PROGRESS
    else:
        error = refused(desk, InvalidTransition, "reopen", reopener)
        assert "30 days" in error.reason


def test_the_requester_cannot_reopen_a_refused_ticket() -> None:
    desk = desk_in(REFUSED)
    error = refused(desk, Forbidden, "reopen", REQUESTER)
    assert "refused" in error.reason
    assert "reopen" not in desk.ticket.allowed_actions(desk.ctx(REQUESTER))
    assert "reopen" in desk.ticket.allowed_actions(desk.ctx(MANAGER))


@pytest.mark.parametrize("subject", ["Connexion\nimpossible", "Connexion\r\nimpossible", "Écran\u2028noir"])
def test_a_subject_is_one_line(subject: str) -> None:
    with pytest.raises(InvalidArgument, match="one line") as caught:
        Ticket.submit(desk_in(FREE).ctx(REQUESTER), ticket_id="t-9", number=9, category_id=NEW_CATEGORY,
                      subject=subject, description="Écran blanc.")
    assert caught.value.field == "subject"
    refused(desk_in(IN_PROGRESS), InvalidArgument, "change_subject", REQUESTER, subject=subject)


@pytest.mark.parametrize(
    "final, reopener",
    # The requester cannot reopen a refused ticket (test_the_requester_cannot_reopen_a_refused_ticket).
    [(final, who) for final in FINAL for who in (REQUESTER, MANAGER, MANAGER_2) if not (final == REFUSED and who is REQUESTER)],
    ids=lambda value: getattr(value, "id", value),
)
@pytest.mark.parametrize(
    "still_manages, status, assignee",
    [
        pytest.param(True, IN_PROGRESS, MANAGER.id, id="assignee-still-manages"),
        pytest.param(False, FREE, None, id="assignee-left-the-department"),
    ],
)
def test_reopen_goes_to_the_former_assignee_only_if_they_still_manage(
    final: str, still_manages: bool, status: str, assignee: str | None, reopener: Actor
) -> None:
    desk = desk_in(final)
    if not still_manages:
        desk.members.departments[DEPARTMENT].discard(MANAGER.id)
    desk.clock.advance(days=3)
    assert types(desk.do("reopen", reopener)) == ["TicketReopened"]
    assert state(desk.ticket)["status"] == status
    assert state(desk.ticket)["assignee"] == assignee
    assert desk.ticket.resolution is None


def test_reopen_of_a_ticket_cancelled_while_free_is_free() -> None:
    desk = desk_in(FREE)
    desk.do("cancel", REQUESTER)
    desk.do("reopen", REQUESTER)
    assert (desk.ticket.status, desk.ticket.assignee) == (FREE, None)


@pytest.mark.parametrize(
    "also_manages_new, status, assignee",
    [
        pytest.param(False, FREE, None, id="assignee-released"),
        pytest.param(True, IN_PROGRESS, MANAGER.id, id="assignee-kept"),
    ],
)
def test_move_then_route_keeps_the_assignee_only_if_they_manage_the_new_department(
    also_manages_new: bool, status: str, assignee: str | None
) -> None:
    desk = desk_in(IN_PROGRESS)
    if also_manages_new:
        desk.members.departments[OTHER_DEPARTMENT].add(MANAGER.id)
    assert types(desk.do("move", MANAGER, category_id=NEW_CATEGORY)) == ["TicketMoved"]
    routed = types(desk.do("route", ROUTING, department_id=OTHER_DEPARTMENT))
    assert routed == ["TicketRouted"] + ([] if also_manages_new else ["TicketReleased"])
    after = state(desk.ticket)
    assert (after["department"], after["category"]) == (OTHER_DEPARTMENT, NEW_CATEGORY)
    assert (after["status"], after["assignee"]) == (status, assignee)


def test_route_stops_the_watch_of_a_manager_who_no_longer_sees_the_ticket() -> None:
    desk = desk_in(IN_PROGRESS)
    desk.do("watch", MANAGER_2)
    desk.do("move", MANAGER, category_id=NEW_CATEGORY)
    desk.do("route", ROUTING, department_id=OTHER_DEPARTMENT)
    assert not desk.ticket.can_view(desk.ctx(MANAGER_2))
    assert MANAGER_2.id not in desk.ticket.watchers


def test_return_to_referent_stops_the_watch_of_the_central_support() -> None:
    desk = desk_in(IN_PROGRESS, escalate_directly)
    desk.do("watch", SUPPORT_MANAGER)
    desk.do("return_to_referent", SUPPORT_MANAGER, comment="À vous")
    assert not desk.ticket.can_view(desk.ctx(SUPPORT_MANAGER))
    assert SUPPORT_MANAGER.id not in desk.ticket.watchers


def test_uninviting_a_watcher_who_then_cannot_see_the_ticket_stops_the_watch() -> None:
    desk = desk_in(IN_PROGRESS)
    desk.do("watch", INVITEE)
    assert types(desk.do("uninvite", MANAGER, user_id=INVITEE.id)) == [
        "InvitationRevoked",
        "WatchStopped",
    ]
    assert (desk.ticket.invitees, desk.ticket.watchers) == ({}, {})
    assert not desk.ticket.can_view(desk.ctx(INVITEE))


def test_uninviting_a_watcher_who_still_sees_the_ticket_keeps_the_watch() -> None:
    desk = desk_in(IN_PROGRESS)
    desk.do("invite", REQUESTER, user=user(MANAGER_2))
    desk.do("watch", MANAGER_2)
    assert types(desk.do("uninvite", REQUESTER, user_id=MANAGER_2.id)) == ["InvitationRevoked"]
    assert list(desk.ticket.watchers) == [MANAGER_2.id]


def test_watch_then_unwatch() -> None:
    desk = desk_in(CLOSED)
    assert types(desk.do("watch", INVITEE)) == ["WatchStarted"]
    refused(desk, InvalidTransition, "watch", INVITEE)
    assert types(desk.do("unwatch", INVITEE)) == ["WatchStopped"]
    refused(desk, InvalidTransition, "unwatch", INVITEE)
    assert desk.ticket.watchers == {}


def test_only_a_manager_may_stop_another_users_watch() -> None:
    desk = desk_in(IN_PROGRESS)
    desk.do("watch", INVITEE)
    refused(desk, Forbidden, "unwatch", REQUESTER, user_id=INVITEE.id)
    assert types(desk.do("unwatch", MANAGER_2, user_id=INVITEE.id)) == ["WatchStopped"]


# --- escalation ---------------------------------------------------------------------------------


def test_escalate_then_escalate_to_moves_the_ticket_to_the_central_support() -> None:
    desk = desk_in(IN_PROGRESS)
    assert types(desk.do("escalate", MANAGER, reason="Annuaire central")) == ["EscalationRequested"]
    assert desk.ticket.escalation == "requested"
    changes = desk.do("escalate_to", ESCALATION, department_id=SUPPORT)
    assert types(changes) == ["TicketEscalated"]
    assert (desk.ticket.department_id, desk.ticket.escalation) == (SUPPORT, "escalated")
    assert desk.ticket.referent_department_id == DEPARTMENT


def test_escalate_twice_is_refused() -> None:
    desk = desk_in(IN_PROGRESS)
    desk.do("escalate", MANAGER, reason="Annuaire central")
    refused(desk, InvalidTransition, "escalate", MANAGER_2, reason="Encore")


def test_escalated_ticket_cannot_be_escalated_again() -> None:
    desk = desk_in(IN_PROGRESS, escalate_directly)
    refused(desk, InvalidTransition, "escalate", ADMIN, reason="Encore")
    refused(desk, InvalidTransition, "escalate_to", ESCALATION, department_id=OTHER_DEPARTMENT)


# Manager actions that both the central support and the referent department keep.
ESCALATED_MANAGER_ACTIONS = [
    pytest.param("comment", INTERNAL, ["CommentAdded"], id="comment_internal"),
    pytest.param("comment", ANSWER, ["CommentAdded"], id="comment"),
    pytest.param("take_over", {}, ["TicketAssigned"], id="take"),
    pytest.param(
        "assign", {"assignee": user(SUPPORT_MANAGER)}, ["TicketAssigned"], id="assign-to-support"
    ),
    pytest.param(
        "assign", {"assignee": user(MANAGER_2)}, ["TicketAssigned"], id="assign-to-referent"
    ),
    pytest.param("release", {}, ["TicketReleased"], id="release"),
    pytest.param("refuse", {"reason": "Hors périmètre"}, ["TicketRefused"], id="refuse"),
    pytest.param("move", {"category_id": NEW_CATEGORY}, ["TicketMoved"], id="move"),
    pytest.param("invite", {"user": user(OTHER_USER)}, ["UserInvited"], id="invite"),
    pytest.param("attach", upload("a-new", "internal"), ["AttachmentAdded"], id="attach"),
    pytest.param("change_priority", {"priority": 1}, ["PriorityChanged"], id="priority"),
    pytest.param("watch", {}, ["WatchStarted"], id="watch"),
]


@pytest.mark.parametrize("action, kwargs, events", ESCALATED_MANAGER_ACTIONS)
@pytest.mark.parametrize(
    "actor", [SUPPORT_MANAGER, MANAGER_2, ADMIN], ids=["central-support", "referent", "admin"]
)
def test_escalated_ticket_is_managed_by_support_and_referent_department(
    actor: Actor, action: str, kwargs: dict[str, Any], events: list[str]
) -> None:
    desk = desk_in(IN_PROGRESS, escalate_directly)
    assert (desk.ticket.department_id, desk.ticket.escalation) == (SUPPORT, "escalated")
    assert desk.ticket.can_view(desk.ctx(actor))
    assert types(desk.do(action, actor, **kwargs)) == events


def test_escalated_ticket_is_still_closed_by_the_referent_assignee() -> None:
    desk = desk_in(IN_PROGRESS, escalate_directly)
    desk.do("request_closure", MANAGER, resolution="Réglé par le support")
    desk.do("approve_closure", REQUESTER, rating=4)
    assert (desk.ticket.status, desk.ticket.resolution) == (CLOSED, "approved")


@pytest.mark.parametrize("actor", [SUPPORT_MANAGER, ADMIN], ids=lambda a: a.id)
def test_central_support_returns_the_ticket_to_the_referent(actor: Actor) -> None:
    desk = desk_in(WAITING_FOR_INFO, escalate_directly)
    changes = desk.do("return_to_referent", actor, comment="Compte recréé, à vous")
    assert types(changes) == ["TicketReturnedToReferent"]
    after = state(desk.ticket)
    assert (after["department"], after["escalation"]) == (DEPARTMENT, "returned")
    assert after["status"] == WAITING_FOR_INFO
    assert not desk.ticket.can_view(desk.ctx(SUPPORT_MANAGER))
    assert desk.ticket.can_view(desk.ctx(MANAGER_2))


@pytest.mark.parametrize(
    "actor, kwargs, error",
    [
        pytest.param(MANAGER, {"comment": "Retour"}, Forbidden, id="referent-assignee"),
        pytest.param(MANAGER_2, {"comment": "Retour"}, Forbidden, id="referent-manager"),
        pytest.param(REQUESTER, {"comment": "Retour"}, Forbidden, id="requester"),
        pytest.param(OTHER_MANAGER, {"comment": "Retour"}, Forbidden, id="other-manager"),
        pytest.param(SUPPORT_MANAGER, {"comment": ""}, InvalidArgument, id="empty-comment"),
        pytest.param(SUPPORT_MANAGER, {"comment": "  "}, InvalidArgument, id="blank-comment"),
    ],
)
def test_return_to_referent_refused(
    actor: Actor, kwargs: dict[str, Any], error: type[DomainError]
) -> None:
    refused(desk_in(IN_PROGRESS, escalate_directly), error, "return_to_referent", actor, **kwargs)


def test_return_to_referent_of_a_ticket_not_escalated_is_refused() -> None:
    desk = desk_in(IN_PROGRESS)
    refused(desk, InvalidTransition, "return_to_referent", ADMIN, comment="Retour")


def test_returned_ticket_can_be_escalated_again() -> None:
    desk = desk_in(IN_PROGRESS, escalate_directly)
    desk.do("return_to_referent", SUPPORT_MANAGER, comment="À vous")
    assert types(desk.do("escalate", MANAGER, reason="Toujours en panne")) == [
        "EscalationRequested"
    ]


def escalation_requested(desk: Desk) -> None:
    desk.do("escalate", MANAGER_2, reason="Annuaire central")


def test_refused_escalation_goes_back_to_none_with_the_reason() -> None:
    desk = desk_in(IN_PROGRESS, escalation_requested)
    changes = desk.do("refuse_escalation", ESCALATION, reason="  Transmission désactivée  ")
    assert [(c.event_type, c.data) for c in changes] == [("EscalationRefused", {"reason": "Transmission désactivée"})]
    after = state(desk.ticket)
    assert (after["escalation"], after["department"], after["status"]) == ("none", DEPARTMENT, IN_PROGRESS)
    assert desk.replay() == desk.ticket
    # the referent may ask again once the reason is dealt with
    assert types(desk.do("escalate", MANAGER, reason="Toujours en panne")) == ["EscalationRequested"]


@pytest.mark.parametrize("status", ALL)
def test_a_pending_escalation_request_is_refused_from_any_status(status: str) -> None:
    """A ticket closed before the escalation service answered still gets the answer, so a
    reopened ticket is not stuck with ``escalation = requested``."""
    desk = desk_in(status, escalation_requested)
    assert types(desk.do("refuse_escalation", ESCALATION, reason="Ticket clôturé")) == ["EscalationRefused"]
    assert (desk.ticket.escalation, desk.ticket.status) == ("none", status)


@pytest.mark.parametrize(
    "actor, prepare, kwargs, error",
    [
        pytest.param(ADMIN, escalation_requested, {"reason": "Non"}, Forbidden, id="admin"),
        pytest.param(MANAGER, escalation_requested, {"reason": "Non"}, Forbidden, id="referent"),
        pytest.param(REQUESTER, escalation_requested, {"reason": "Non"}, Forbidden, id="requester"),
        pytest.param(ESCALATION, None, {"reason": "Non"}, InvalidTransition, id="nothing-requested"),
        pytest.param(ESCALATION, escalate_directly, {"reason": "Non"}, InvalidTransition, id="already-escalated"),
        pytest.param(ESCALATION, escalation_requested, {"reason": " "}, InvalidArgument, id="blank-reason"),
        pytest.param(ESCALATION, escalation_requested, {"reason": None}, InvalidArgument, id="no-reason"),
    ],
)
def test_refuse_escalation_refused(
    actor: Actor, prepare: Callable[[Desk], None] | None, kwargs: dict[str, Any], error: type[DomainError]
) -> None:
    refused(desk_in(IN_PROGRESS, prepare), error, "refuse_escalation", actor, **kwargs)


def test_refuse_escalation_is_never_offered_to_people() -> None:
    desk = desk_in(IN_PROGRESS, escalation_requested)
    for actor in (ADMIN, MANAGER, MANAGER_2, REQUESTER):
        assert "refuse_escalation" not in desk.ticket.allowed_actions(desk.ctx(actor))


# --- who sees what ---------------------------------------------------------------------------


def _uninvited(desk: Desk) -> None:
    desk.do("uninvite", REQUESTER, user_id=INVITEE.id)


def _returned(desk: Desk) -> None:
    escalate_directly(desk)
    desk.do("return_to_referent", SUPPORT_MANAGER, comment="À vous")


SITUATIONS: dict[str, Callable[[Desk], None] | None] = {
    "routed": None,
    "escalated": escalate_directly,
    "returned": _returned,
    "uninvited": _uninvited,
}

VIEWERS = [
    ("routed", REQUESTER, True),
    ("routed", INVITEE, True),
    ("routed", MANAGER, True),
    ("routed", MANAGER_2, True),
    ("routed", ADMIN, True),
    ("routed", OTHER_USER, False),
    ("routed", OTHER_MANAGER, False),
    ("routed", SUPPORT_MANAGER, False),
    ("escalated", SUPPORT_MANAGER, True),
    ("escalated", MANAGER, True),
    ("escalated", MANAGER_2, True),
    ("escalated", REQUESTER, True),
    ("escalated", OTHER_USER, False),
    ("escalated", OTHER_MANAGER, False),
    ("returned", SUPPORT_MANAGER, False),
    ("returned", MANAGER_2, True),
    ("uninvited", INVITEE, False),
]


@pytest.mark.parametrize(
    "situation, actor, sees",
    [pytest.param(s, a, v, id=f"{s}-{a.id}") for s, a, v in VIEWERS],
)
@pytest.mark.parametrize("status", [IN_PROGRESS, CLOSED])
def test_can_view(situation: str, actor: Actor, sees: bool, status: str) -> None:
    desk = desk_in(status, SITUATIONS[situation])
    assert desk.ticket.can_view(desk.ctx(actor)) is sees
    assert desk.ticket.user_can_view(actor.id, desk.members) is (sees and not actor.admin)


# --- allowed_actions ---------------------------------------------------------------------------


def test_allowed_actions_of_a_free_ticket() -> None:
    desk = desk_in(FREE)
    requester = desk.ticket.allowed_actions(desk.ctx(REQUESTER))
    manager = desk.ticket.allowed_actions(desk.ctx(MANAGER))
    assert "take" not in requester
    assert {"comment", "close", "cancel", "invite", "attach", "change_priority"} <= set(requester)
    assert {"take", "assign", "refuse", "move", "comment_internal"} <= set(manager)
    assert not {"close", "cancel", "approve_closure", "release"} & set(manager)
    assert desk.ticket.allowed_actions(desk.ctx(OTHER_USER)) == []
