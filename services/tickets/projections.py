"""The ticket view: the aggregate's state as a row, kept in step with the events.

The live path writes the row in the same transaction as the events (read-your-writes
for the API); ``rebuild`` replays ``tickets.events`` and must give the same rows.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from services.tickets.domain import Ticket
from shared.db import Connection
from shared.events import load_data
from shared.eventstore import EventStore, RecordedEvent, Statement

STREAM_PREFIX = "ticket-"


def stream_id(ticket_id: str) -> str:
    return f"{STREAM_PREFIX}{ticket_id}"


def fold(events: list[RecordedEvent], ticket: Ticket | None = None) -> Ticket:
    """Replay recorded events into a ticket."""
    ticket = ticket or Ticket()
    for event in events:
        apply_recorded(ticket, event.event_type, event.schema_version, event.data, event.metadata)
    return ticket


def apply_recorded(
    ticket: Ticket, event_type: str, schema_version: int, data: dict[str, Any], metadata: dict[str, Any]
) -> None:
    apply_loaded(ticket, event_type, load_data(event_type, schema_version, data), metadata)


def apply_loaded(ticket: Ticket, event_type: str, data: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Fold event data already read back by its schema."""
    ticket.apply(
        event_type, data, occurred_at=datetime.fromisoformat(metadata["occurred_at"]), actor=metadata["actor"]
    )


# -- state <-> JSON ---------------------------------------------------------------------

_DATETIMES = ("postponed_until", "final_at", "created_at", "updated_at")


def state_to_json(ticket: Ticket) -> dict[str, Any]:
    # Not dataclasses.asdict: it deep-copies everything first, and this runs per command.
    return {f.name: _jsonable(getattr(ticket, f.name)) for f in dataclasses.fields(ticket)}


_FIELDS = frozenset(f.name for f in dataclasses.fields(Ticket))


def state_from_json(state: dict[str, Any]) -> Ticket:
    # A field added since the row was written takes its default (rebuild fills it in).
    values = {k: v for k, v in state.items() if k in _FIELDS}
    for name in _DATETIMES:
        values[name] = _parse(values.get(name))
    values["comments"] = [{**c, "created_at": _parse(c["created_at"])} for c in values["comments"]]
    values["attachments"] = {
        key: {**a, "added_at": _parse(a["added_at"])} for key, a in values["attachments"].items()
    }
    return Ticket(**values)


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# -- the ticket_view table ---------------------------------------------------------------

_UPSERT = """
INSERT INTO tickets.ticket_view (id, number, status, category_id, department_id,
    referent_department_id, establishment, escalation, requester_id, assignee_id,
    invitee_ids, watcher_ids, created_at, updated_at, version, state, search)
VALUES (%(v_id)s, %(v_number)s, %(v_status)s, %(v_category_id)s, %(v_department_id)s,
    %(v_referent_department_id)s, %(v_establishment)s, %(v_escalation)s, %(v_requester_id)s,
    %(v_assignee_id)s, %(v_invitee_ids)s, %(v_watcher_ids)s, %(v_created_at)s, %(v_updated_at)s,
    %(v_version)s, %(v_state)s,
    to_tsvector('french', %(v_search_text)s) || to_tsvector('tickets.french_unaccent', %(v_search_text)s))
ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status, category_id = EXCLUDED.category_id,
    department_id = EXCLUDED.department_id,
    referent_department_id = EXCLUDED.referent_department_id,
    establishment = EXCLUDED.establishment, escalation = EXCLUDED.escalation,
    assignee_id = EXCLUDED.assignee_id, invitee_ids = EXCLUDED.invitee_ids,
    watcher_ids = EXCLUDED.watcher_ids, updated_at = EXCLUDED.updated_at,
    version = EXCLUDED.version, state = EXCLUDED.state, search = EXCLUDED.search
"""


def view_upsert(ticket: Ticket) -> Statement:
    """The view's upsert, to run in the same statement as the append of its events."""
    return Statement(_UPSERT, _row(ticket))


def _row(ticket: Ticket) -> dict[str, Any]:
    return {
        "v_id": ticket.id,
        "v_number": ticket.number,
        "v_status": ticket.status,
        "v_category_id": ticket.category_id,
        "v_department_id": ticket.department_id,
        "v_referent_department_id": ticket.referent_department_id,
        "v_establishment": ticket.establishment,
        "v_escalation": ticket.escalation,
        "v_requester_id": ticket.requester["id"] if ticket.requester else None,
        "v_assignee_id": ticket.assignee["id"] if ticket.assignee else None,
        "v_invitee_ids": list(ticket.invitees),
        "v_watcher_ids": list(ticket.watchers),
        "v_created_at": ticket.created_at,
        "v_updated_at": ticket.updated_at,
        "v_version": ticket.version,
        "v_state": Jsonb(state_to_json(ticket)),
        "v_search_text": search_text(ticket),
    }


def search_text(ticket: Ticket) -> str:
    """What full-text search looks at: subject, description and public comments.

    Indexed twice, French-stemmed as written and French-stemmed without accents: the
    stemmer needs the accents ("bloquée" and "bloqué" share a stem only with them),
    people typing without accents need the second ("ecran" finds "écran").
    """
    public = [c["body"] for c in ticket.comments if c["visibility"] == "public"]
    return "\n".join([ticket.subject, ticket.description, *public])


def load_view(conn: Connection, ticket_ref: str) -> Ticket | None:
    """The ticket by uuid or by number, from the view; None when unknown."""
    ticket_id = parse_ticket_ref(ticket_ref)
    if ticket_id is None:
        return None
    column = "number" if isinstance(ticket_id, int) else "id"
    row = conn.execute(
        f"SELECT state FROM tickets.ticket_view WHERE {column} = %s", (ticket_id,)
    ).fetchone()
    return None if row is None else state_from_json(row["state"])


def parse_ticket_ref(ticket_ref: object) -> UUID | int | None:
    """A ticket is named by its uuid or its human number; anything else names nothing."""
    if isinstance(ticket_ref, int) and not isinstance(ticket_ref, bool):
        return ticket_ref if 0 < ticket_ref < 2**63 else None
    if not isinstance(ticket_ref, str):
        return None
    if ticket_ref.isascii() and ticket_ref.isdigit() and len(ticket_ref) < 19:
        return int(ticket_ref)
    try:
        return UUID(ticket_ref)
    except ValueError:
        return None


def rebuild(conn: Connection, store: EventStore, batch_size: int = 1000) -> int:
    """Replace every ticket view by a replay of the event log; returns the ticket count.

    Runs in the caller's transaction, so readers see the old rows until it commits.
    """
    conn.execute("LOCK TABLE tickets.ticket_view IN EXCLUSIVE MODE")
    conn.execute("DELETE FROM tickets.ticket_view")
    tickets: dict[str, Ticket] = {}
    for batch in store.read_all(conn, 0, batch_size):  # type: ignore[arg-type]  # shared.eventstore still annotates tuple rows (issue #18)
        for event in batch:
            ticket = tickets.setdefault(event.stream_id, Ticket())
            fold([event], ticket)
    with conn.cursor() as cur:
        cur.executemany(_UPSERT, [_row(t) for t in tickets.values()])
    return len(tickets)
