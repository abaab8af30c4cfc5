"""The ticket as a caller sees it (``API.md``, "The ticket, as every answer shows it")."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from services.tickets.domain import Context, Ticket


# API action names are the domain's with hyphens (``request-information``).
def action_name(domain_action: str) -> str:
    return domain_action.replace("_", "-")


def render(ticket: Ticket, ctx: Context, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The ticket for ``ctx.actor``: internal comments and attachments only for managers."""
    labels = labels or {}
    internal = ticket.sees_internal(ctx)
    return {
        "id": ticket.id,
        "number": ticket.number,
        "subject": ticket.subject,
        "description": ticket.description,
        "phone": ticket.phone,
        "status": ticket.status,
        "resolution": ticket.resolution,
        "priority": ticket.priority,
        "category": {"id": ticket.category_id, "label": labels.get(f"category:{ticket.category_id}", ticket.category_id)},
        "department": (
            {"id": ticket.department_id, "label": labels.get(f"department:{ticket.department_id}", ticket.department_id)}
            if ticket.department_id
            else None
        ),
        "establishment": ticket.establishment,
        "requester": ticket.requester,
        "assignee": ticket.assignee,
        "invitees": list(ticket.invitees.values()),
        "watchers": list(ticket.watchers.values()),
        "escalation": ticket.escalation,
        "comments": [
            {**c, "created_at": _iso(c["created_at"])}
            for c in ticket.comments
            if internal or c["visibility"] == "public"
        ],
        "attachments": [
            {k: a[k] for k in ("id", "filename", "size", "content_type", "visibility")}
            for a in ticket.attachments.values()
            if internal or a["visibility"] == "public"
        ],
        "rating": ticket.rating,
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
        "version": ticket.version,
        # What the screens need to show the state's "why": the question awaiting an
        # answer, the resolution awaiting approval, the recall date, the last refusal.
        "pending_question": ticket.question,
        "proposed_resolution": ticket.closure_message,
        "postponed_until": _iso(ticket.postponed_until),
        "last_refusal": ticket.last_refusal,
        "allowed_actions": [action_name(a) for a in ticket.allowed_actions(ctx)],
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class Labels:
    """Category and department labels, re-read at most every few seconds."""

    def __init__(self, ttl_seconds: float = 5.0) -> None:
        self.ttl = ttl_seconds
        self._labels: dict[str, str] = {}
        self._categories: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    def get(self, conn: Any) -> dict[str, str]:
        now = time.monotonic()
        if now - self._read_at > self.ttl:
            rows = conn.execute(
                "SELECT 'category:' || id AS key, label_fr FROM tickets.categories"
                " UNION ALL SELECT 'department:' || id, label_fr FROM tickets.departments"
            ).fetchall()
            self._labels = {r["key"]: r["label_fr"] for r in rows}
            self._categories = frozenset(k.split(":", 1)[1] for k in self._labels if k.startswith("category:"))
            self._read_at = now
        return self._labels

    def known_categories(self, conn: Any) -> frozenset[str]:
        self.get(conn)
        return self._categories

    def forget(self) -> None:
        """Re-read at the next use (after the catalogue changed)."""
        self._read_at = float("-inf")


LABELS = Labels()
