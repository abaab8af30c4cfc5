"""Helpers for driving the pure ticket aggregate in unit tests: no database, no broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.tickets.domain import COMMANDS, Actor, Change, Context, Ticket

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

DEPARTMENT = "dnum-ent"
OTHER_DEPARTMENT = "scolarite"
SUPPORT = "support-central"

REQUESTER = Actor("alice", "Alice Martin", "alice@univ.example", establishment="0540001A")
OTHER_USER = Actor("bob", "Bob Durand", "bob@univ.example", establishment="0540001A")
INVITEE = Actor("ines", "Inès Petit", "ines@univ.example")
MANAGER = Actor("marc", "Marc Leroy", "marc@univ.example")
MANAGER_2 = Actor("mona", "Mona Blanc", "mona@univ.example")
OTHER_MANAGER = Actor("oscar", "Oscar Roux", "oscar@univ.example")
SUPPORT_MANAGER = Actor("sam", "Sam Girard", "sam@univ.example")
ADMIN = Actor("root", "Admin", "admin@univ.example", admin=True)
ROUTING = Actor.system("routing")
ESCALATION = Actor.system("escalation")


@dataclass
class Members:
    """Department -> managers, in memory."""

    departments: dict[str, set[str]] = field(
        default_factory=lambda: {
            DEPARTMENT: {MANAGER.id, MANAGER_2.id},
            OTHER_DEPARTMENT: {OTHER_MANAGER.id},
            SUPPORT: {SUPPORT_MANAGER.id},
        }
    )

    def manages(self, user_id: str, department_id: str | None) -> bool:
        return department_id is not None and user_id in self.departments.get(department_id, set())


@dataclass
class Clock:
    now: datetime = T0

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


class Desk:
    """A ticket and the world around it; ``do`` decides and applies like the service does."""

    def __init__(self, members: Members | None = None, clock: Clock | None = None) -> None:
        self.members = members or Members()
        self.clock = clock or Clock()
        self.ticket = Ticket()
        self.events: list[tuple[str, dict[str, Any], datetime, dict[str, Any]]] = []
        self._ids = 0

    def ctx(self, actor: Actor) -> Context:
        return Context(actor=actor, now=self.clock.now, membership=self.members)

    def _apply(self, changes: list[Change], actor: Actor) -> list[Change]:
        ref = {"id": actor.id, "name": actor.name, "email": actor.email, "kind": actor.kind}
        for change in changes:
            self.ticket.apply(change.event_type, change.data, occurred_at=self.clock.now, actor=ref)
            self.events.append((change.event_type, change.data, self.clock.now, ref))
        return changes

    def submit(self, actor: Actor = REQUESTER, **kwargs: Any) -> Ticket:
        args = {"category_id": "ent-connexion", "subject": "Connexion impossible",
                "description": "Je ne peux plus me connecter à l'ENT.", **kwargs}
        self._apply(Ticket.submit(self.ctx(actor), ticket_id="t-1", number=53350, **args), actor)
        return self.ticket

    def do(self, action: str, actor: Actor, **kwargs: Any) -> list[Change]:
        """Decide ``action`` as ``actor`` and apply the events; raises the domain's errors."""
        if action == "comment":
            self._ids += 1
            kwargs.setdefault("comment_id", f"c-{self._ids}")
        return self._apply(COMMANDS[action](self.ticket, self.ctx(actor), **kwargs), actor)

    def replay(self) -> Ticket:
        ticket = Ticket()
        for event_type, data, at, actor in self.events:
            ticket.apply(event_type, data, occurred_at=at, actor=actor)
        return ticket

    # -- common situations

    def routed(self, department: str = DEPARTMENT) -> Ticket:
        self.submit()
        self.do("route", ROUTING, department_id=department)
        return self.ticket

    def in_progress(self, assignee: Actor = MANAGER) -> Ticket:
        self.routed()
        self.do("take", assignee)
        return self.ticket
