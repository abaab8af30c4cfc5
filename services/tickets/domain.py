"""The ticket aggregate: statuses, actions and who may do them (``WORKFLOW.md``).

Pure: no Nameko, psycopg or HTTP. A command is a method of ``Ticket`` that checks the
actor's rights and the status, then returns the events it decides (``Change``) without
touching the ticket; ``Ticket.apply`` folds an event into the state, and is the only
place the state changes, so replaying a stream always gives the same ticket.

The caller passes the facts the rules need in a ``Context``: who acts, when, and a
``Membership`` that says who manages which department.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

# The statuses and the errors the rules raise are the contract's; imported from here too (F401).
from shared.contract import (  # noqa: F401
    CANCELLED,
    CLOSED,
    CLOSURE_REQUESTED,
    FINAL,
    FREE,
    IN_PROGRESS,
    NOT_FINAL,
    OPEN,
    POSTPONED,
    REFUSED,
    STATUSES,
    WAITING_FOR_INFO,
    DomainError,
    Forbidden,
    InvalidArgument,
    InvalidTransition,
)
from shared.ticket_state import DEFAULT_PRIORITY, TicketState

REOPEN_WINDOW = timedelta(days=30)


# --- who acts, and the facts the rules need --------------------------------------------


@dataclass(frozen=True)
class User:
    """A person as tickets record them."""

    id: str
    name: str | None = None
    email: str | None = None

    def ref(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "email": self.email}


@dataclass(frozen=True)
class Actor(User):
    """Who performs an action: a user (maybe an admin) or a service (``system:<name>``)."""

    kind: str = "user"
    admin: bool = False
    establishment: str | None = None

    @property
    def is_system(self) -> bool:
        return self.kind == "system"

    @classmethod
    def system(cls, service: str) -> Actor:
        return cls(id=f"system:{service}", name=service, kind="system")


class Membership(Protocol):
    def manages(self, user_id: str, department_id: str | None) -> bool:
        """True when ``user_id`` is a manager of ``department_id``."""

    def managers(self, department_id: str) -> list[User]:
        """The managers of ``department_id`` (who is told, ``Ticket.audience``)."""


def _anywhere(team: str | None) -> bool:
    return True


@dataclass(frozen=True)
class Context:
    actor: Actor
    now: datetime
    membership: Membership
    # Whether a referent team's escalation can succeed now (the escalation service's
    # settings, as the tickets service last heard them); unknown: yes.
    escalable: Callable[[str | None], bool] = _anywhere


@dataclass(frozen=True)
class Change:
    """An event decided by a command, not yet appended."""

    event_type: str
    data: dict[str, Any]


# --- the rules: who may do what, from which status --------------------------------------


def _is_requester(t: Ticket, ctx: Context) -> bool:
    return t.requester is not None and t.requester["id"] == ctx.actor.id


def _is_requester_unless_refused(t: Ticket, ctx: Context) -> bool:
    # A manager's refusal is final for the requester: they may not reopen it again and again.
    return t.status != REFUSED and _is_requester(t, ctx)


def _is_invitee(t: Ticket, ctx: Context) -> bool:
    return ctx.actor.id in t.invitees


def _is_assignee(t: Ticket, ctx: Context) -> bool:
    return t.assignee is not None and t.assignee["id"] == ctx.actor.id


def _is_system(t: Ticket, ctx: Context) -> bool:
    return ctx.actor.is_system


def _is_manager(t: Ticket, ctx: Context) -> bool:
    return ctx.actor.admin or ctx.actor.is_system or t.managed_by(ctx.actor.id, ctx.membership)


def _is_viewer(t: Ticket, ctx: Context) -> bool:
    return t.can_view(ctx)


def _is_central_support(t: Ticket, ctx: Context) -> bool:
    # The central support is the current department of an escalated ticket.
    return ctx.actor.admin or ctx.actor.is_system or ctx.membership.manages(ctx.actor.id, t.department_id)


def _is_local_referent(t: Ticket, ctx: Context) -> bool:
    return ctx.actor.admin or ctx.membership.manages(ctx.actor.id, t.department_id)


ROLES: dict[str, Callable[[Ticket, Context], bool]] = {
    "requester": _is_requester,
    "requester (but of a refused ticket)": _is_requester_unless_refused,
    "invitee": _is_invitee,
    "assignee": _is_assignee,
    "former assignee": _is_assignee,  # a final ticket keeps its last assignee
    "manager": _is_manager,
    "system": _is_system,
    "viewer": _is_viewer,
    "central support": _is_central_support,
    "local referent": _is_local_referent,
}


@dataclass(frozen=True)
class Rule:
    statuses: frozenset[str]
    who: tuple[str, ...]
    # Returns why the action is refused beyond status and role, or None.
    condition: Callable[[Ticket, Context], str | None] | None = None


def _nobody_assigned(t: Ticket, ctx: Context) -> str | None:
    if t.assignee is None:
        return None
    if _is_assignee(t, ctx):
        return "the ticket is already assigned to you"
    # Taking a ticket from someone is an explicit, separate action (the console confirms).
    return f"the ticket is already assigned to {t.assignee['id']}; take it over instead (take-over)"


def _someone_else_assigned(t: Ticket, ctx: Context) -> str | None:
    if t.assignee is None:
        return "nobody is assigned to the ticket; take it instead (take)"
    return "the ticket is already assigned to you" if _is_assignee(t, ctx) else None


def _has_assignee(t: Ticket, ctx: Context) -> str | None:
    return None if t.assignee else "nobody is assigned to the ticket"


def _within_reopen_window(t: Ticket, ctx: Context) -> str | None:
    if t.final_at is not None and ctx.now - t.final_at > REOPEN_WINDOW:
        return "a ticket can be reopened only within 30 days of its closure"
    return None


def _escalable(t: Ticket, ctx: Context) -> str | None:
    if t.department_id is None:
        return "the ticket is not in a department yet"
    if t.escalation in ("requested", "escalated"):
        return f"the ticket is already {t.escalation} to the central support"
    if not ctx.escalable(t.department_id):
        return "escalation to the central support is not enabled for this department or establishment"
    return None


def _a_person(t: Ticket, ctx: Context) -> str | None:
    return "services do not follow tickets" if ctx.actor.is_system else None


def _forwardable(t: Ticket, ctx: Context) -> str | None:
    # The escalation service forwards a requested escalation, or escalates on its own.
    if t.department_id is None:
        return "the ticket is not in a department yet"
    return "the ticket is already escalated" if t.escalation == "escalated" else None


def _escalated(t: Ticket, ctx: Context) -> str | None:
    return None if t.escalation == "escalated" else "the ticket is not escalated"


def _escalation_requested(t: Ticket, ctx: Context) -> str | None:
    return None if t.escalation == "requested" else "no escalation is awaiting an answer"


RULES: dict[str, Rule] = {
    "comment": Rule(NOT_FINAL, ("requester", "invitee", "manager")),
    "comment_internal": Rule(STATUSES, ("manager",)),
    "take": Rule(OPEN, ("manager",), _nobody_assigned),
    "take_over": Rule(OPEN, ("manager",), _someone_else_assigned),
    "assign": Rule(OPEN, ("manager",)),
    "release": Rule(OPEN - {FREE}, ("assignee", "manager"), _has_assignee),
    "request_information": Rule(frozenset({IN_PROGRESS}), ("assignee",)),
    "postpone": Rule(frozenset({IN_PROGRESS, WAITING_FOR_INFO}), ("assignee",)),
    "resume": Rule(frozenset({POSTPONED}), ("assignee", "system")),
    "request_closure": Rule(frozenset({IN_PROGRESS, WAITING_FOR_INFO, POSTPONED}), ("assignee",)),
    "approve_closure": Rule(frozenset({CLOSURE_REQUESTED}), ("requester",)),
    "refuse_closure": Rule(frozenset({CLOSURE_REQUESTED}), ("requester",)),
    "expire_closure": Rule(frozenset({CLOSURE_REQUESTED}), ("system",)),
    "close": Rule(OPEN, ("requester",)),
    "cancel": Rule(OPEN, ("requester",)),
    "refuse": Rule(OPEN, ("manager",)),
    "reopen": Rule(FINAL, ("requester (but of a refused ticket)", "former assignee", "manager"), _within_reopen_window),
    "move": Rule(OPEN, ("manager",)),
    "invite": Rule(NOT_FINAL, ("requester", "manager")),
    "uninvite": Rule(NOT_FINAL, ("requester", "manager")),
    "watch": Rule(STATUSES, ("viewer",), _a_person),
    "unwatch": Rule(STATUSES, ("viewer",), _a_person),
    "attach": Rule(NOT_FINAL, ("requester", "invitee", "manager")),
    "remove_attachment": Rule(NOT_FINAL, ("requester", "manager")),
    "change_subject": Rule(OPEN, ("requester", "manager")),
    "change_priority": Rule(OPEN, ("requester", "manager")),
    "escalate": Rule(OPEN, ("local referent",), _escalable),
    "escalate_to": Rule(OPEN, ("system",), _forwardable),
    "return_to_referent": Rule(OPEN, ("central support",), _escalated),
    # The escalation service answers a request it cannot forward (escalation disabled for
    # the establishment...). From any status: a request left pending when the ticket
    # closed is answered too, so a reopened ticket can be escalated again.
    "refuse_escalation": Rule(STATUSES, ("system",), _escalation_requested),
    # Routing follows a submit or a move, both open; a ticket awaiting the requester's
    # approval keeps its team and its assignee.
    "route": Rule(OPEN, ("system",)),
    # After the teams changed: whoever can no longer see the ticket stops handling or
    # watching it.
    "recheck_access": Rule(NOT_FINAL, ("system",)),
}

# Actions a person may be offered on a ticket (the system-only ones are not).
USER_ACTIONS = tuple(a for a, r in RULES.items() if r.who != ("system",))


def _required_text(action: str, status: str | None, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(action, status, name, f"{name} is required and cannot be blank")
    return value.strip()


def _subject(action: str, status: str | None, value: Any) -> str:
    """A subject is one line: it heads every email and list."""
    subject = _required_text(action, status, "subject", value)
    if any(c in subject for c in "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"):
        raise InvalidArgument(action, status, "subject", "the subject is one line: no line break")
    return subject


# --- the aggregate ------------------------------------------------------------------------


@dataclass
class Ticket(TicketState):
    """A ticket: its state (``shared.ticket_state``, the fold reporting reads too) and the
    commands that decide its events."""

    # -- reading

    @property
    def exists(self) -> bool:
        return self.version > 0

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    def managed_by(self, user_id: str, membership: Membership) -> bool:
        """A manager of the current department, or of the referent one while escalated."""
        if membership.manages(user_id, self.department_id):
            return True
        return self.escalation == "escalated" and membership.manages(
            user_id, self.referent_department_id
        )

    def can_view(self, ctx: Context) -> bool:
        """Admins, the requester, invitees and managers see the ticket; nobody else."""
        return self.user_can_view(ctx.actor.id, ctx.membership) or ctx.actor.admin or ctx.actor.is_system

    def user_can_view(self, user_id: str, membership: Membership) -> bool:
        return (
            (self.requester is not None and self.requester["id"] == user_id)
            or user_id in self.invitees
            or self.managed_by(user_id, membership)
        )

    def sees_internal(self, ctx: Context) -> bool:
        return _is_manager(self, ctx)

    def teams(self) -> list[str]:
        """The departments whose managers see the ticket: its own, and the referent one
        while escalated."""
        teams = [self.department_id] if self.department_id else []
        if self.escalation == "escalated" and self.referent_department_id not in (None, self.department_id):
            teams.append(self.referent_department_id)
        return teams

    def audience(self, managers: Callable[[str], Iterable[User]]) -> list[dict[str, Any]]:
        """Everyone who may see the ticket now, by the same rule as ``user_can_view``
        (``managers(team)`` lists a team's managers): ``{"id", "name", "email",
        "internal", "teams"}``, ``internal`` for those who see internal content. Every
        event carries it, so who is told is decided from who could see the ticket then."""
        found: dict[str, dict[str, Any]] = {}

        def add(ref: dict[str, Any], internal: bool, team: str | None = None) -> None:
            entry = found.setdefault(
                ref["id"], {"id": ref["id"], "name": ref.get("name"), "email": ref.get("email"),
                            "internal": False, "teams": []})
            entry["internal"] = entry["internal"] or internal
            if team is not None and team not in entry["teams"]:
                entry["teams"].append(team)

        for team in self.teams():
            for manager in managers(team):
                add(manager.ref(), True, team)
        if self.requester is not None:
            add(self.requester, False)
        for invitee in self.invitees.values():
            add(invitee, False)
        for user_id in self.admin_watchers:
            if user_id in self.watchers:
                add(self.watchers[user_id], True)
        return list(found.values())

    def refusal(self, action: str, ctx: Context) -> DomainError | None:
        """Why ``action`` is refused to the actor now, or None if it is allowed."""
        rule = RULES[action]
        if not any(ROLES[role](self, ctx) for role in rule.who):
            return Forbidden(action, self.status, f"only the {' or the '.join(rule.who)} may {action}")
        if self.status not in rule.statuses:
            return InvalidTransition(action, self.status, f"{action} is not allowed on a {self.status} ticket")
        reason = rule.condition(self, ctx) if rule.condition else None
        if reason:
            return InvalidTransition(action, self.status, reason)
        return None

    def allowed_actions(self, ctx: Context) -> list[str]:
        """What the actor may do now, so a frontend shows only those buttons."""
        pointless = {
            "watch": ctx.actor.id in self.watchers,
            "unwatch": ctx.actor.id not in self.watchers,
            "uninvite": not self.invitees,
            "remove_attachment": not self.attachments,
        }
        return [a for a in USER_ACTIONS if not pointless.get(a) and self.refusal(a, ctx) is None]

    def _check(self, action: str, ctx: Context) -> None:
        if not self.exists:
            raise InvalidTransition(action, None, "the ticket does not exist")
        error = self.refusal(action, ctx)
        if error is not None:
            raise error

    # -- commands: each returns the events it decides

    @classmethod
    def submit(
        cls,
        ctx: Context,
        *,
        ticket_id: str,
        number: int,
        category_id: str,
        subject: str,
        description: str,
        phone: str | None = None,
        priority: int | None = None,
    ) -> list[Change]:
        status = None
        if ctx.actor.is_system:
            raise Forbidden("submit", status, "tickets are filed by people, not by services")
        data = {
            "ticket_id": ticket_id,
            "number": number,
            "subject": _subject("submit", status, subject),
            "description": _required_text("submit", status, "description", description),
            "phone": phone.strip() if isinstance(phone, str) and phone.strip() else None,
            "priority": _priority("submit", status, DEFAULT_PRIORITY if priority is None else priority),
            "category_id": _required_text("submit", status, "category_id", category_id),
            "establishment": ctx.actor.establishment,
            "requester": _actor_ref(ctx),
        }
        return [Change("TicketSubmitted", data)]

    def comment(
        self,
        ctx: Context,
        *,
        comment_id: str,
        body: str,
        visibility: str = "public",
        attachment_ids: Iterable[str] = (),
    ) -> list[Change]:
        if visibility not in ("public", "internal"):
            raise InvalidArgument("comment", self.status, "visibility", "visibility is public or internal")
        self._check("comment" if visibility == "public" else "comment_internal", ctx)
        body = _required_text("comment", self.status, "body", body)
        attachment_ids = list(attachment_ids)
        unknown = [a for a in attachment_ids if a not in self.attachments]
        if unknown:
            raise InvalidArgument("comment", self.status, "attachment_ids", f"not attached to this ticket: {', '.join(unknown)}")
        changes = [
            Change(
                "CommentAdded",
                {"comment_id": comment_id, "body": body, "visibility": visibility, "attachment_ids": attachment_ids},
            )
        ]
        answers = _is_requester(self, ctx) or _is_assignee(self, ctx)
        if self.status == WAITING_FOR_INFO and visibility == "public" and answers:
            changes.append(Change("InformationProvided", {"comment_id": comment_id}))
        return changes

    def take(self, ctx: Context) -> list[Change]:
        """Take a free ticket; of two takes at once, the second is decided again on the
        ticket the first left, and refused."""
        self._check("take", ctx)
        return [Change("TicketAssigned", {"assignee": _actor_ref(ctx), "previous_assignee": None, "taken": True})]

    def take_over(self, ctx: Context) -> list[Change]:
        """Take the ticket from its assignee, who is told."""
        self._check("take_over", ctx)
        return [Change("TicketAssigned", {"assignee": _actor_ref(ctx), "previous_assignee": self.assignee, "taken": True})]

    def assign(self, ctx: Context, *, assignee: User) -> list[Change]:
        self._check("assign", ctx)
        if not self.managed_by(assignee.id, ctx.membership):
            raise InvalidArgument("assign", self.status, "assignee", f"{assignee.id} does not manage the ticket's department")
        if self.assignee and self.assignee["id"] == assignee.id:
            raise InvalidTransition("assign", self.status, f"the ticket is already assigned to {assignee.id}")
        return [Change("TicketAssigned", {"assignee": assignee.ref(), "previous_assignee": self.assignee, "taken": False})]

    def release(self, ctx: Context, *, reason: str | None = None) -> list[Change]:
        self._check("release", ctx)
        return [Change("TicketReleased", {"previous_assignee": self.assignee, "reason": reason})]

    def request_information(self, ctx: Context, *, question: str) -> list[Change]:
        self._check("request_information", ctx)
        question = _required_text("request_information", self.status, "question", question)
        return [Change("InformationRequested", {"question": question})]

    def postpone(self, ctx: Context, *, reason: str, until: datetime | None = None) -> list[Change]:
        self._check("postpone", ctx)
        reason = _required_text("postpone", self.status, "reason", reason)
        if until is not None and (until.tzinfo is None or until <= ctx.now):
            raise InvalidArgument("postpone", self.status, "until", "until must be a future date with a time zone")
        return [Change("TicketPostponed", {"until": until, "reason": reason})]

    def resume(self, ctx: Context) -> list[Change]:
        self._check("resume", ctx)
        return [Change("TicketResumed", {"automatic": ctx.actor.is_system})]

    def request_closure(self, ctx: Context, *, resolution: str) -> list[Change]:
        self._check("request_closure", ctx)
        resolution = _required_text("request_closure", self.status, "resolution", resolution)
        return [Change("ClosureRequested", {"resolution": resolution})]

    def approve_closure(self, ctx: Context, *, rating: int | None = None, feedback: str | None = None) -> list[Change]:
        self._check("approve_closure", ctx)
        if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5):
            raise InvalidArgument("approve_closure", self.status, "rating", "rating is a whole number from 1 to 5")
        feedback = feedback.strip() if isinstance(feedback, str) and feedback.strip() else None
        return [Change("ClosureApproved", {"rating": rating, "feedback": feedback})]

    def refuse_closure(self, ctx: Context, *, justification: str) -> list[Change]:
        self._check("refuse_closure", ctx)
        justification = _required_text("refuse_closure", self.status, "justification", justification)
        return [Change("ClosureRefused", {"justification": justification})]

    def expire_closure(self, ctx: Context) -> list[Change]:
        self._check("expire_closure", ctx)
        return [Change("ClosureExpired", {})]

    def close(self, ctx: Context) -> list[Change]:
        self._check("close", ctx)
        return [Change("TicketClosedByOwner", {})]

    def cancel(self, ctx: Context, *, reason: str | None = None) -> list[Change]:
        self._check("cancel", ctx)
        reason = reason.strip() if isinstance(reason, str) and reason.strip() else None
        return [Change("TicketCancelled", {"reason": reason})]

    def refuse(self, ctx: Context, *, reason: str) -> list[Change]:
        self._check("refuse", ctx)
        reason = _required_text("refuse", self.status, "reason", reason)
        return [Change("TicketRefused", {"reason": reason})]

    def reopen(self, ctx: Context, *, reason: str | None = None) -> list[Change]:
        self._check("reopen", ctx)
        keeps = self.assignee is not None and ctx.membership.manages(self.assignee["id"], self.department_id)
        reason = reason.strip() if isinstance(reason, str) and reason.strip() else None
        return [Change("TicketReopened", {"reason": reason, "assignee": self.assignee if keeps else None})]

    def move(self, ctx: Context, *, category_id: str) -> list[Change]:
        self._check("move", ctx)
        category_id = _required_text("move", self.status, "category_id", category_id)
        if category_id == self.category_id:
            raise InvalidArgument("move", self.status, "category_id", "the ticket is already in this category")
        return [Change("TicketMoved", {"category_id": category_id, "previous_category_id": self.category_id})]

    def route(self, ctx: Context, *, department_id: str) -> list[Change]:
        """Routing's decision: the department that handles the ticket's category.

        An assignee who does not manage the new department is released.
        """
        self._check("route", ctx)
        department_id = _required_text("route", self.status, "department_id", department_id)
        if department_id == self.department_id:
            return []
        changes = [Change("TicketRouted", {"department_id": department_id, "previous_department_id": self.department_id})]
        if self.assignee and not ctx.membership.manages(self.assignee["id"], department_id):
            changes.append(
                Change("TicketReleased", {"previous_assignee": self.assignee, "reason": "not a manager of the new department",
                                          "automatic": True})
            )
        return changes + self._watches_ending(ctx.membership, department_id, self.referent_department_id)

    def _watches_ending(
        self, membership: Membership, department_id: str | None, referent_department_id: str | None
    ) -> list[Change]:
        """A watcher must be able to see the ticket: the watches of those a change of
        department leaves without sight end with it."""
        def sees(user_id: str) -> bool:
            return (
                (self.requester is not None and self.requester["id"] == user_id)
                or user_id in self.invitees
                or membership.manages(user_id, department_id)
                or membership.manages(user_id, referent_department_id)
            )

        return [Change("WatchStopped", {"user": w}) for uid, w in self.watchers.items() if not sees(uid)]

    def invite(self, ctx: Context, *, user: User) -> list[Change]:
        self._check("invite", ctx)
        if user.id in self.invitees:
            raise InvalidTransition("invite", self.status, f"{user.id} is already invited")
        if self.requester and user.id == self.requester["id"]:
            raise InvalidArgument("invite", self.status, "user", "the requester cannot be invited to their own ticket")
        return [Change("UserInvited", {"user": user.ref()})]

    def uninvite(self, ctx: Context, *, user_id: str) -> list[Change]:
        self._check("uninvite", ctx)
        invitee = self.invitees.get(user_id)
        if invitee is None:
            raise InvalidArgument("uninvite", self.status, "user", f"{user_id} is not invited")
        changes = [Change("InvitationRevoked", {"user": invitee})]
        # A watcher must be able to see the ticket: losing the invitation ends the watch.
        if user_id in self.watchers and not self._sees_without_invitation(user_id, ctx.membership):
            changes.append(Change("WatchStopped", {"user": self.watchers[user_id]}))
        return changes

    def _sees_without_invitation(self, user_id: str, membership: Membership) -> bool:
        return (self.requester is not None and self.requester["id"] == user_id) or self.managed_by(user_id, membership)

    def watch(self, ctx: Context, *, user: User | None = None) -> list[Change]:
        """Follow the ticket by email; a manager may add another user who can see it."""
        self._check("watch", ctx)
        user = user or User(ctx.actor.id, ctx.actor.name, ctx.actor.email)
        if user.id != ctx.actor.id:
            if not _is_manager(self, ctx):
                raise Forbidden("watch", self.status, "only a manager may add another watcher")
            if not self.user_can_view(user.id, ctx.membership):
                raise InvalidArgument("watch", self.status, "user", f"{user.id} cannot see this ticket")
        if user.id in self.watchers:
            raise InvalidTransition("watch", self.status, f"{user.id} already watches the ticket")
        return [Change("WatchStarted", {"user": user.ref(), "admin": user.id == ctx.actor.id and ctx.actor.admin})]

    def unwatch(self, ctx: Context, *, user_id: str | None = None) -> list[Change]:
        self._check("unwatch", ctx)
        user_id = user_id or ctx.actor.id
        if user_id != ctx.actor.id and not _is_manager(self, ctx):
            raise Forbidden("unwatch", self.status, "only a manager may remove another watcher")
        watcher = self.watchers.get(user_id)
        if watcher is None:
            raise InvalidTransition("unwatch", self.status, f"{user_id} does not watch the ticket")
        return [Change("WatchStopped", {"user": watcher})]

    def attach(
        self,
        ctx: Context,
        *,
        attachment_id: str,
        filename: str,
        size: int,
        content_type: str,
        visibility: str = "public",
    ) -> list[Change]:
        self._check("attach", ctx)
        if visibility not in ("public", "internal"):
            raise InvalidArgument("attach", self.status, "visibility", "visibility is public or internal")
        if visibility == "internal" and not _is_manager(self, ctx):
            raise Forbidden("attach", self.status, "only a manager may add an internal attachment")
        if attachment_id in self.attachments:
            raise InvalidTransition("attach", self.status, "this file is already attached to the ticket")
        return [
            Change(
                "AttachmentAdded",
                {
                    "attachment_id": attachment_id,
                    "filename": filename,
                    "size": size,
                    "content_type": content_type,
                    "visibility": visibility,
                },
            )
        ]

    def remove_attachment(self, ctx: Context, *, attachment_id: str, comment: str) -> list[Change]:
        self._check("remove_attachment", ctx)
        attachment = self.attachments.get(attachment_id)
        if attachment is None:
            raise InvalidArgument("remove_attachment", self.status, "attachment_id", "no such attachment on this ticket")
        if not _is_manager(self, ctx) and attachment["uploader"]["id"] != ctx.actor.id:
            raise Forbidden("remove_attachment", self.status, "the requester may remove only their own files")
        comment = _required_text("remove_attachment", self.status, "comment", comment)
        return [Change("AttachmentRemoved", {"attachment_id": attachment_id, "comment": comment})]

    def change_subject(self, ctx: Context, *, subject: str) -> list[Change]:
        self._check("change_subject", ctx)
        subject = _subject("change_subject", self.status, subject)
        if subject == self.subject:
            return []
        return [Change("SubjectChanged", {"subject": subject, "previous_subject": self.subject})]

    def change_priority(self, ctx: Context, *, priority: int) -> list[Change]:
        self._check("change_priority", ctx)
        priority = _priority("change_priority", self.status, priority)
        if priority == self.priority:
            return []
        return [Change("PriorityChanged", {"priority": priority, "previous_priority": self.priority})]

    def escalate(self, ctx: Context, *, reason: str) -> list[Change]:
        """A local referent asks to forward the ticket to the central support."""
        self._check("escalate", ctx)
        reason = _required_text("escalate", self.status, "reason", reason)
        return [Change("EscalationRequested", {"reason": reason})]

    def escalate_to(self, ctx: Context, *, department_id: str, reason: str | None = None) -> list[Change]:
        """The escalation service moves the ticket to the central support department."""
        self._check("escalate_to", ctx)
        department_id = _required_text("escalate_to", self.status, "department_id", department_id)
        if department_id == self.department_id:
            raise InvalidArgument("escalate_to", self.status, "department_id", "the ticket is already in this department")
        return [
            Change(
                "TicketEscalated",
                {"department_id": department_id, "referent_department_id": self.department_id, "reason": reason},
            )
        ]

    def refuse_escalation(self, ctx: Context, *, reason: str) -> list[Change]:
        """The escalation service refuses a requested escalation; the reason goes to the history."""
        self._check("refuse_escalation", ctx)
        reason = _required_text("refuse_escalation", self.status, "reason", reason)
        return [Change("EscalationRefused", {"reason": reason})]

    def return_to_referent(self, ctx: Context, *, comment: str) -> list[Change]:
        self._check("return_to_referent", ctx)
        comment = _required_text("return_to_referent", self.status, "comment", comment)
        back = Change("TicketReturnedToReferent", {"department_id": self.referent_department_id, "comment": comment})
        changes = [back]
        if self.assignee and not ctx.membership.manages(self.assignee["id"], self.referent_department_id):
            # A support member cannot see the ticket once it is back with the referents.
            changes.append(Change("TicketReleased", {"previous_assignee": self.assignee,
                                                     "reason": "returned to the referents", "automatic": True}))
        return changes + self._watches_ending(ctx.membership, self.referent_department_id, None)

    def recheck_access(self, ctx: Context) -> list[Change]:
        """After a change of the teams (a manager removed or moved): an assignee who can
        no longer see the ticket is released, with the reason; watches of those who can
        no longer see it end. Nothing when everyone still sees it."""
        self._check("recheck_access", ctx)
        changes = []
        # Only where a release leads back to FREE: a ticket whose closure awaits the
        # requester keeps its assignee until the answer brings it back to work.
        if self.assignee and self.status in OPEN and not self.user_can_view(self.assignee["id"], ctx.membership):
            changes.append(Change("TicketReleased", {"previous_assignee": self.assignee,
                                                     "reason": "no longer a manager of the department",
                                                     "automatic": True}))
        changes += [
            Change("WatchStopped", {"user": w}) for uid, w in self.watchers.items()
            if uid not in self.admin_watchers and not self.user_can_view(uid, ctx.membership)
        ]
        return changes

    # -- evolution: the only place the state changes

    # -- the ticket summary every message carries

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "subject": self.subject,
            "status": self.status,
            "category_id": self.category_id,
            "department_id": self.department_id,
            "establishment": self.establishment,
            "requester": self.requester,
            "assignee": self.assignee,
            "escalation": self.escalation,
            "version": self.version,
        }


def _priority(action: str, status: str | None, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise InvalidArgument(action, status, "priority", "priority is a whole number from 1 to 5")
    return value


def _actor_ref(ctx: Context) -> dict[str, Any]:
    return User(ctx.actor.id, ctx.actor.name, ctx.actor.email).ref()


COMMANDS: dict[str, Callable[..., list[Change]]] = {
    name: getattr(Ticket, name)
    for name in RULES
    if name not in ("comment_internal",)
}
