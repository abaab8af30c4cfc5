"""Reading tickets for lists and search, and the small user directory.

Lists never show a ticket the caller may not see: every query is filtered by the same
rule as ``Ticket.can_view`` (requester, invitee, manager of the current department or
of the referent department of an escalated ticket; admins see all).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql

from services.tickets.commands import DatabaseMembership
from services.tickets.domain import Actor, Context
from services.tickets.projections import state_from_json
from services.tickets.views import LABELS, render
from shared.db import Pool

SCOPES = ("mine", "invited", "watched", "assigned", "department", "all")


class InvalidCursor(ValueError):
    pass


def encode_cursor(updated_at: datetime, ticket_id: UUID | str) -> str:
    raw = json.dumps([updated_at.isoformat(), str(ticket_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, ticket_id = json.loads(raw)
        return datetime.fromisoformat(at), UUID(ticket_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidCursor("the cursor is not one this API gave") from exc


class TicketQueries:
    def __init__(self, pool: Pool, clock: Any) -> None:
        self.pool = pool
        self.clock = clock

    def list(
        self,
        actor: Actor,
        *,
        scope: str = "mine",
        statuses: list[str] | None = None,
        category_id: str | None = None,
        department_id: str | None = None,
        q: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """A page of tickets, newest activity first, and the cursor of the next page."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT department_id FROM tickets.department_managers WHERE user_id = %s", (actor.id,)
            ).fetchall()
            managed = [r["department_id"] for r in rows]
            params: dict[str, Any] = {"me": actor.id, "managed": managed, "limit": limit + 1}
            where = [_SCOPE[scope]]
            if not actor.admin:
                where.append(_VISIBLE)
            if statuses:
                where.append(sql.SQL("status = ANY(%(statuses)s)"))
                params["statuses"] = statuses
            if category_id:
                where.append(sql.SQL("category_id = %(category_id)s"))
                params["category_id"] = category_id
            if department_id:
                where.append(sql.SQL("department_id = %(department_id)s"))
                params["department_id"] = department_id
            if q:
                where.append(sql.SQL(
                    "search @@ (websearch_to_tsquery('french', %(q)s)"
                    " || websearch_to_tsquery('tickets.french_unaccent', %(q)s))"
                ))
                params["q"] = q
            if cursor:
                params["after_at"], params["after_id"] = decode_cursor(cursor)
                where.append(sql.SQL("(updated_at, id) < (%(after_at)s, %(after_id)s)"))
            query = sql.SQL(
                "SELECT id, updated_at, state FROM tickets.ticket_view WHERE {}"
                " ORDER BY updated_at DESC, id DESC LIMIT %(limit)s"
            ).format(sql.SQL(" AND ").join(where))
            found = conn.execute(query, params).fetchall()
            ctx = Context(actor=actor, now=self.clock(), membership=(m := DatabaseMembership(conn)),
                          escalable=m.escalable)
            labels = LABELS.get(conn)
            page = found[:limit]
            items = [render(state_from_json(r["state"]), ctx, labels) for r in page]
        next_cursor = encode_cursor(page[-1]["updated_at"], page[-1]["id"]) if len(found) > limit else None
        return {"items": items, "next_cursor": next_cursor}


_VISIBLE = sql.SQL(
    "(requester_id = %(me)s OR %(me)s = ANY(invitee_ids) OR department_id = ANY(%(managed)s)"
    " OR (escalation = 'escalated' AND referent_department_id = ANY(%(managed)s)))"
)
_SCOPE = {
    "mine": sql.SQL("requester_id = %(me)s"),
    "invited": sql.SQL("%(me)s = ANY(invitee_ids)"),
    "watched": sql.SQL("%(me)s = ANY(watcher_ids)"),
    "assigned": sql.SQL("assignee_id = %(me)s"),
    "department": sql.SQL(
        "(department_id = ANY(%(managed)s)"
        " OR (escalation = 'escalated' AND referent_department_id = ANY(%(managed)s)))"
    ),
    "all": sql.SQL("TRUE"),
}
