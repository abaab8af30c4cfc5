"""Who hears about what (``WORKFLOW.md``): the notifier's rules, pure.

No Nameko, psycopg or SMTP here. ``facts_of`` says what an event changes in the
notifier's picture of a ticket (invitees, watchers, referent department, attachments'
visibility, answers to questions); ``recipients`` says who is told of an event, given
that picture *after* the event and the managers of each team.

Two rules hold for every event: never the actor (but the requester's acknowledgement of
their own new ticket), and never content the recipient may not see (internal comments
and internal attachments reach only the assignee and the watchers who manage the ticket).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

INTERNAL = "internal"
# The events someone may be told of (the others only change who is on the ticket).
NOTIFYING_EVENTS = frozenset({
    "TicketSubmitted", "TicketRouted", "TicketAssigned", "TicketReleased", "CommentAdded", "InformationRequested",
    "InformationProvided", "TicketPostponed", "TicketResumed", "ClosureRequested", "ClosureApproved", "ClosureRefused",
    "ClosureExpired", "TicketClosedByOwner", "TicketCancelled", "TicketReopened", "TicketRefused", "TicketMoved",
    "UserInvited", "TicketEscalated", "TicketReturnedToReferent", "EscalationRefused", "AttachmentAdded",
    "AttachmentRemoved",
})
ANSWERING_STATUS = "WAITING_FOR_INFO"


@dataclass(frozen=True)
class Person:
    id: str
    name: str | None = None
    email: str | None = None

    @classmethod
    def from_ref(cls, ref: dict[str, Any] | None) -> Person | None:
        if not ref or not ref.get("id"):
            return None
        return cls(ref["id"], ref.get("name"), ref.get("email"))


@dataclass(frozen=True)
class Fact:
    """One change to the notifier's picture of a ticket (see ``notifier.ticket_facts``)."""

    kind: str  # invitee | watcher | referent | attachment | answer
    key: str
    present: bool
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class TicketPicture:
    """A ticket as the notifier sees it right after one event: the envelope's summary
    plus the facts it folded from the events so far."""

    id: str
    number: int
    subject: str
    status: str
    requester: Person | None
    assignee: Person | None
    department_id: str | None
    escalation: str = "none"
    referent_department_id: str | None = None
    invitees: dict[str, Person] = field(default_factory=dict)
    watchers: dict[str, Person] = field(default_factory=dict)
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {visibility, filename}
    answers: dict[str, str] = field(default_factory=dict)  # comment id -> body

    @classmethod
    def build(cls, summary: dict[str, Any], facts: Iterable[Fact]) -> TicketPicture:
        """The picture from an envelope's ticket summary and the latest fact of each key."""
        picture = cls(
            id=summary["id"], number=summary["number"], subject=summary["subject"], status=summary["status"],
            requester=Person.from_ref(summary.get("requester")), assignee=Person.from_ref(summary.get("assignee")),
            department_id=summary.get("department_id"), escalation=summary.get("escalation") or "none",
        )
        for fact in facts:
            if not fact.present:
                continue
            if fact.kind == "invitee":
                picture.invitees[fact.key] = Person(fact.key, fact.data.get("name"), fact.data.get("email"))
            elif fact.kind == "watcher":
                picture.watchers[fact.key] = Person(fact.key, fact.data.get("name"), fact.data.get("email"))
            elif fact.kind == "referent":
                picture.referent_department_id = fact.data.get("department_id")
            elif fact.kind == "attachment":
                picture.attachments[fact.key] = fact.data
            elif fact.kind == "answer":
                picture.answers[fact.key] = fact.data.get("body", "")
        return picture


@dataclass(frozen=True)
class Recipient:
    """Someone told of an event: who, why (their role in it), and whether they may see
    internal content (a manager of the ticket)."""

    person: Person
    role: str
    sees_internal: bool


Managers = Callable[[str | None], list[Person]]


@dataclass(frozen=True)
class Audience:
    """Who may see the ticket right after the event, as the tickets service decided it
    (the event's ``audience``): nobody else is told anything of it."""

    people: dict[str, Person]
    internal: frozenset[str]
    teams: dict[str, list[Person]]

    @classmethod
    def of(cls, members: Iterable[dict[str, Any]]) -> Audience:
        people: dict[str, Person] = {}
        internal: set[str] = set()
        teams: dict[str, list[Person]] = {}
        for m in members:
            person = Person(m["id"], m.get("name"), m.get("email"))
            people[person.id] = person
            if m.get("internal"):
                internal.add(person.id)
            for team in m.get("teams") or ():
                teams.setdefault(team, []).append(person)
        return cls(people, frozenset(internal), teams)

    def managers(self, team: str | None) -> list[Person]:
        return list(self.teams.get(team or "", []))


def facts_of(event_type: str, data: dict[str, Any], summary: dict[str, Any]) -> list[Fact]:
    """What ``event_type`` changes in the notifier's picture of its ticket."""
    user = data.get("user") or {}
    if event_type in ("UserInvited", "InvitationRevoked"):
        return [Fact("invitee", user["id"], event_type == "UserInvited", _ref_data(user))]
    if event_type in ("WatchStarted", "WatchStopped"):
        return [Fact("watcher", user["id"], event_type == "WatchStarted", _ref_data(user))]
    if event_type == "TicketEscalated":
        return [Fact("referent", "", True, {"department_id": data.get("referent_department_id")})]
    if event_type == "TicketReturnedToReferent":
        return [Fact("referent", "", False)]
    if event_type == "AttachmentAdded":
        return [Fact("attachment", data["attachment_id"], True,
                     {"visibility": data["visibility"], "filename": data["filename"]})]
    if event_type == "CommentAdded" and data["visibility"] != INTERNAL and summary.get("status") == ANSWERING_STATUS:
        # Maybe the answer to the pending question: InformationProvided will quote it.
        return [Fact("answer", data["comment_id"], True, {"body": data["body"]})]
    return []


def _ref_data(user: dict[str, Any]) -> dict[str, Any]:
    return {"name": user.get("name"), "email": user.get("email")}


def people_in(event_type: str, data: dict[str, Any], summary: dict[str, Any]) -> list[Person]:
    """Everyone an event names, with their address (for the notifier's directory)."""
    refs = [summary.get("requester"), summary.get("assignee"), data.get("requester"), data.get("assignee"),
            data.get("previous_assignee"), data.get("user")]
    return [p for p in (Person.from_ref(r) for r in refs if isinstance(r, dict)) if p is not None]


class _Audience:
    """An ordered set of recipients: the first reason someone is told wins."""

    def __init__(self, picture: TicketPicture, managers: Managers, actor_id: str, keep_actor: bool = False,
                 audience: Audience | None = None) -> None:
        self.picture = picture
        self.audience = audience
        self.managers = managers
        self.actor_id = actor_id
        self.keep_actor = keep_actor
        self.found: dict[str, Recipient] = {}
        self._manager_ids: set[str] | None = None

    def manages(self, person: Person) -> bool:
        """A manager of the ticket: its assignee, a manager of its department, or (while
        escalated) of its referent department."""
        if self.audience is not None:
            return person.id in self.audience.internal
        if self._manager_ids is None:
            ids = {p.id for p in self.managers(self.picture.department_id)}
            if self.picture.escalation == "escalated":
                ids |= {p.id for p in self.managers(self.picture.referent_department_id)}
            if self.picture.assignee:
                ids.add(self.picture.assignee.id)
            self._manager_ids = ids
        return person.id in self._manager_ids

    def add(self, people: Iterable[Person | None], role: str, *, internal_only: bool = False) -> None:
        for person in people:
            if person is None or person.id in self.found:
                continue
            if person.id == self.actor_id and not self.keep_actor:
                continue
            if self.audience is not None and person.id not in self.audience.people:
                continue  # could not see the ticket at the event: hears nothing of it
            sees_internal = self.manages(person)
            if internal_only and not sees_internal:
                continue
            self.found[person.id] = Recipient(person, role, sees_internal)

    def result(self) -> list[Recipient]:
        return list(self.found.values())


def recipients(
    event_type: str,
    data: dict[str, Any],
    actor_id: str,
    picture: TicketPicture,
    managers: Managers,
    routing_assigns: Callable[[str], bool] = lambda team: False,
    audience: Audience | None = None,
) -> list[Recipient]:
    """Who is told of one event (``WORKFLOW.md``, "Who hears about what").

    ``picture`` is the ticket right after the event; ``managers(team)`` the managers of a
    team (empty for None or an unknown team); ``routing_assigns(team)`` is True when
    routing will give a newly routed ticket of that team to a manager at once (its
    policy assigns and someone is available), so the team is not told of it twice;
    ``audience``, when the event carries one, is who may see the ticket: only they are told.
    """
    t = picture
    told = _Audience(t, managers, actor_id, keep_actor=event_type == "TicketSubmitted", audience=audience)
    add = told.add
    if event_type == "TicketSubmitted":
        add([t.requester], "requester")
    elif event_type == "TicketRouted":
        if data.get("previous_department_id") is not None:
            add(managers(t.department_id), "manager")  # moved: the new department's managers
        elif t.assignee is None and not routing_assigns(t.department_id or ""):
            add(managers(t.department_id), "manager")
    elif event_type == "TicketAssigned":
        previous = Person.from_ref(data.get("previous_assignee"))
        if not data.get("taken"):
            add([t.assignee], "assignee")
        if previous is not None:
            # Taken over (or given to someone else): the previous assignee is told; the
            # requester was told "prise en charge" when the ticket was first taken.
            add([previous], "former_assignee")
        else:
            add([t.requester], "requester")
    elif event_type == "TicketReleased":
        # A manager taking a ticket away from its assignee tells them; the department's
        # managers hear it is free again (a released assignee who can no longer see the
        # ticket is not in the audience, so hears nothing).
        if not actor_id.startswith("system:"):
            add([Person.from_ref(data.get("previous_assignee"))], "former_assignee")
        add(managers(t.department_id), "manager")
    elif event_type in ("CommentAdded", "AttachmentAdded", "AttachmentRemoved"):
        _comment_like(told, event_type, data, actor_id)
    elif event_type in ("InformationRequested", "TicketRefused", "TicketPostponed"):
        add([t.requester], "requester")
        add(t.watchers.values(), "watcher")
    elif event_type == "ClosureRequested":
        add([t.requester], "requester")
        add(t.invitees.values(), "invitee")
        add(t.watchers.values(), "watcher")
    elif event_type in ("InformationProvided", "ClosureApproved", "ClosureRefused"):
        add([t.assignee], "assignee")
        add(t.watchers.values(), "watcher")
    elif event_type == "ClosureExpired":
        add([t.assignee], "assignee")
        add([t.requester], "requester")
        add(t.watchers.values(), "watcher")
    elif event_type == "TicketResumed":
        add([t.requester], "requester")
        if data.get("automatic"):  # the recall date came: the assignee is told
            add([t.assignee], "assignee")
        add(t.watchers.values(), "watcher")
    elif event_type in ("TicketCancelled", "TicketReopened", "TicketClosedByOwner"):
        if t.assignee is not None:
            add([t.assignee], "assignee")
        else:
            add(managers(t.department_id), "manager")
        add(t.watchers.values(), "watcher")
    elif event_type == "TicketMoved":
        add([t.assignee], "former_assignee")  # routing then tells the new department
        add([t.requester], "requester")  # the new category
    elif event_type == "UserInvited":
        add([Person.from_ref(data.get("user"))], "invitee")
    elif event_type == "TicketEscalated":
        add(managers(data.get("department_id")), "support")
        add([t.requester], "requester")
        add(managers(data.get("referent_department_id")), "referent")
    elif event_type == "TicketReturnedToReferent":
        add(managers(data.get("department_id")), "referent")
        add([t.requester], "requester")
    elif event_type == "EscalationRefused":
        # Not in the table: the referents who asked hear why the support will not take it.
        add(managers(t.department_id), "referent", internal_only=True)
    # InvitationRevoked, WatchStarted, WatchStopped, SubjectChanged,
    # PriorityChanged, EscalationRequested: nobody (the escalation service acts on the last).
    return told.result()


def _comment_like(audience: _Audience, event_type: str, data: dict[str, Any], actor_id: str) -> None:
    """A comment, and an attachment added or removed: public to the ticket's people,
    internal to its assignee and the watchers who manage it."""
    t = audience.picture
    if event_type == "AttachmentRemoved":
        # An attachment the notifier never saw added may have been internal: assume so.
        visibility = t.attachments.get(data["attachment_id"], {}).get("visibility", INTERNAL)
    else:
        visibility = data["visibility"]
    if visibility == INTERNAL:
        audience.add([t.assignee], "assignee", internal_only=True)
        audience.add(t.watchers.values(), "watcher", internal_only=True)
        return
    answers = (
        event_type == "CommentAdded" and t.status == ANSWERING_STATUS
        and t.requester is not None and actor_id == t.requester.id
    )
    audience.add([t.requester], "requester")
    if not answers:  # the requester's answer reaches the assignee as InformationProvided
        audience.add([t.assignee], "assignee")
    audience.add(t.invitees.values(), "invitee")
    skip = t.assignee.id if answers and t.assignee else None
    audience.add((w for w in t.watchers.values() if w.id != skip), "watcher")
    if t.escalation == "escalated":
        # The referents follow what the central support and the requester say.
        audience.add(audience.managers(t.referent_department_id), "referent")
