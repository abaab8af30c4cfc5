"""A ticket's state and the fold that builds it from the ticket's events (pure).

The tickets service's aggregate (``services.tickets.domain.Ticket``) is this state plus
the commands that decide new events; the reporting service folds the same events with
this same code, so the statuses it counts are exactly the ones the ticket had.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.contract import CANCELLED, CLOSED, CLOSURE_REQUESTED, FREE, IN_PROGRESS, OPEN, POSTPONED, REFUSED, WAITING_FOR_INFO

DEFAULT_PRIORITY = 3


@dataclass
class TicketState:
    """A ticket's state, as folded from its events (``apply``, the only place it changes)."""

    id: str | None = None
    number: int | None = None
    version: int = 0
    subject: str = ""
    description: str = ""
    phone: str | None = None
    priority: int = DEFAULT_PRIORITY
    category_id: str = ""
    department_id: str | None = None
    referent_department_id: str | None = None
    establishment: str | None = None
    requester: dict[str, Any] | None = None
    assignee: dict[str, Any] | None = None
    status: str | None = None
    resolution: str | None = None
    escalation: str = "none"
    invitees: dict[str, dict[str, Any]] = field(default_factory=dict)
    watchers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Watchers who watched as admins: they see the ticket without another role on it.
    admin_watchers: list[str] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    question: str | None = None
    closure_message: str | None = None
    postponed_until: datetime | None = None
    # The latest refusal, of a proposed closure by the requester or of the ticket by a
    # manager: ``{"kind": "closure" | "ticket", "justification", "by", "at"}``.
    last_refusal: dict[str, Any] | None = None
    rating: int | None = None
    feedback: str | None = None
    final_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    # -- the fold

    def apply(self, event_type: str, data: dict[str, Any], *, occurred_at: datetime, actor: dict[str, Any]) -> None:
        """Fold one event into the state (``actor`` is the event's ``{"id", "name", ...}``)."""
        getattr(self, f"_on_{event_type}")(data, occurred_at, actor)
        self.version += 1
        self.updated_at = occurred_at

    def _on_TicketSubmitted(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.id, self.number = d["ticket_id"], d["number"]
        self.subject, self.description, self.phone = d["subject"], d["description"], d["phone"]
        self.priority, self.category_id = d["priority"], d["category_id"]
        self.establishment, self.requester = d["establishment"], d["requester"]
        self.status, self.created_at = FREE, at

    def _on_TicketRouted(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.department_id = d["department_id"]

    def _on_TicketAssigned(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.assignee = d["assignee"]
        if self.status == FREE:
            self.status = IN_PROGRESS

    def _on_TicketReleased(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.assignee = None
        self.status = FREE if self.status in OPEN else self.status
        self.question = None
        self.postponed_until = None

    def _on_CommentAdded(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.comments.append(
            {
                "id": d["comment_id"],
                "author": _user_ref(actor),
                "body": d["body"],
                "visibility": d["visibility"],
                "created_at": at,
                "attachment_ids": list(d["attachment_ids"]),
            }
        )

    def _on_InformationRequested(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.status, self.question = WAITING_FOR_INFO, d["question"]

    def _on_InformationProvided(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.status, self.question = IN_PROGRESS, None

    def _on_TicketPostponed(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.status, self.postponed_until, self.question = POSTPONED, d["until"], None

    def _on_TicketResumed(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.status, self.postponed_until = IN_PROGRESS, None

    def _on_ClosureRequested(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.status, self.closure_message = CLOSURE_REQUESTED, d["resolution"]
        self.question, self.postponed_until = None, None

    def _on_ClosureApproved(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self._finish(CLOSED, "approved", at)
        self.rating, self.feedback = d["rating"], d["feedback"]

    def _on_ClosureRefused(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.status, self.closure_message = IN_PROGRESS, None
        self.last_refusal = _refusal("closure", d["justification"], actor, at)

    def _on_ClosureExpired(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self._finish(CLOSED, "expired", at)

    def _on_TicketClosedByOwner(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self._finish(CLOSED, "closed_by_owner", at)

    def _on_TicketCancelled(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self._finish(CANCELLED, None, at)

    def _on_TicketRefused(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self._finish(REFUSED, None, at)
        self.last_refusal = _refusal("ticket", d["reason"], actor, at)

    def _finish(self, status: str, resolution: str | None, at: datetime) -> None:
        self.status, self.resolution, self.final_at = status, resolution, at
        self.question, self.postponed_until = None, None

    def _on_TicketReopened(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.assignee = d["assignee"]
        self.status = IN_PROGRESS if self.assignee else FREE
        self.resolution, self.final_at, self.closure_message = None, None, None

    def _on_TicketMoved(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.category_id = d["category_id"]

    def _on_UserInvited(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.invitees[d["user"]["id"]] = d["user"]

    def _on_InvitationRevoked(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.invitees.pop(d["user"]["id"], None)

    def _on_WatchStarted(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.watchers[d["user"]["id"]] = d["user"]
        if d.get("admin") and d["user"]["id"] not in self.admin_watchers:
            self.admin_watchers.append(d["user"]["id"])

    def _on_WatchStopped(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.watchers.pop(d["user"]["id"], None)
        if d["user"]["id"] in self.admin_watchers:
            self.admin_watchers.remove(d["user"]["id"])

    def _on_AttachmentAdded(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.attachments[d["attachment_id"]] = {
            "id": d["attachment_id"],
            "filename": d["filename"],
            "size": d["size"],
            "content_type": d["content_type"],
            "visibility": d["visibility"],
            "uploader": _user_ref(actor),
            "added_at": at,
        }

    def _on_AttachmentRemoved(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.attachments.pop(d["attachment_id"], None)

    def _on_SubjectChanged(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.subject = d["subject"]

    def _on_PriorityChanged(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.priority = d["priority"]

    def _on_EscalationRequested(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.escalation = "requested"

    def _on_EscalationRefused(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.escalation = "none"

    def _on_TicketEscalated(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.referent_department_id = d["referent_department_id"]
        self.department_id = d["department_id"]
        self.escalation = "escalated"

    def _on_TicketReturnedToReferent(self, d: dict[str, Any], at: datetime, actor: dict[str, Any]) -> None:
        self.department_id = d["department_id"]
        self.referent_department_id = None
        self.escalation = "returned"


def _user_ref(actor: dict[str, Any]) -> dict[str, Any]:
    return {"id": actor["id"], "name": actor.get("name"), "email": actor.get("email")}


def _refusal(kind: str, justification: str, actor: dict[str, Any], at: datetime) -> dict[str, Any]:
    # ``at`` is kept as text: the state is stored as JSON and must read back the same.
    return {"kind": kind, "justification": justification, "by": _user_ref(actor), "at": at.isoformat()}
