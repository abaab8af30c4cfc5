"""The escalation schema: settings, escalations, the tickets the service follows and their
timers, the copy of routing's catalogue, and processed events."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
import structlog

from services.escalation import rules
from shared.calendar import WorkingCalendar
from shared.catalogue_copy import replace_copy
from shared.db import Connection

log = structlog.stdlib.get_logger("guichet.escalation")

MARKS = ("left_closure_requested", "left_postponed", "responded", "returned")
# The mark that makes a timer of each kind moot.
ENDED_BY = {rules.EXPIRE_CLOSURE: "left_closure_requested", rules.RESUME: "left_postponed",
            rules.FIRST_RESPONSE: "responded"}


# -- processed events -------------------------------------------------------------------------


def seen(conn: Connection, consumer: str, event_id: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM escalation.processed_events WHERE consumer = %s AND event_id = %s", (consumer, event_id)
    ).fetchone() is not None


def first_time(conn: Connection, consumer: str, event_id: str) -> bool:
    """Record that ``consumer`` handles ``event_id``; False if it already had."""
    return conn.execute(
        "INSERT INTO escalation.processed_events (consumer, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING"
        " RETURNING 1 AS new",
        (consumer, event_id),
    ).fetchone() is not None


# -- the catalogue copy ---------------------------------------------------------------------------


def load_catalogue(conn: Connection) -> rules.Catalogue:
    managers: dict[str, set[str]] = {}
    for r in conn.execute("SELECT team_id, user_id FROM escalation.team_managers").fetchall():
        managers.setdefault(r["team_id"], set()).add(r["user_id"])
    teams = {
        r["id"]: rules.Team(r["id"], r["department_id"], r["per_establishment"], r["escalation_enabled"],
                            r["closure_expiry_days"], frozenset(managers.get(r["id"], ())))
        for r in conn.execute("SELECT * FROM escalation.teams").fetchall()
    }
    days = {r["id"]: r["closure_expiry_days"] for r in conn.execute("SELECT * FROM escalation.categories").fetchall()}
    return rules.Catalogue(teams, days)


def apply_snapshot(conn: Connection, snapshot: dict[str, Any]) -> bool:
    """Replace the copy with routing's ``snapshot`` unless a newer one was applied."""

    def fill(cur: psycopg.Cursor) -> None:
        cur.executemany(
            "INSERT INTO escalation.teams (id, department_id, label_fr, per_establishment, escalation_enabled,"
            " closure_expiry_days) VALUES (%s, %s, %s, %s, %s, %s)",
            [(t["id"], t["department_id"], t.get("label_fr"), bool(t.get("per_establishment", ":" in t["id"])),
              bool(t.get("escalation_enabled", False)), t.get("closure_expiry_days")) for t in snapshot["teams"]],
        )
        cur.executemany(
            "INSERT INTO escalation.team_managers (team_id, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [(t["id"], m["id"]) for t in snapshot["teams"] for m in t["managers"]],
        )
        cur.executemany(
            "INSERT INTO escalation.categories (id, department_id, closure_expiry_days) VALUES (%s, %s, %s)",
            [(c["id"], c.get("department_id"), c.get("closure_expiry_days")) for c in snapshot["categories"]],
        )

    return replace_copy(conn, "escalation", snapshot, ("team_managers", "teams", "categories"), fill)


# -- settings -----------------------------------------------------------------------------------


def settings_rows(conn: Connection) -> dict[str, dict[str, Any]]:
    """Every establishment's stored settings, by establishment."""
    rows = conn.execute("SELECT * FROM escalation.settings").fetchall()
    return {r["establishment"]: r for r in rows}


def settings_row(conn: Connection, establishment: str) -> dict[str, Any] | None:
    return conn.execute("SELECT * FROM escalation.settings WHERE establishment = %s", (establishment,)).fetchone()


def save_settings(conn: Connection, establishment: str, body: dict[str, Any], by: str) -> None:
    conn.execute(
        "INSERT INTO escalation.settings (establishment, enabled, support_department_id, first_response_hours,"
        " updated_by) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (establishment) DO UPDATE SET"
        " enabled = EXCLUDED.enabled, support_department_id = EXCLUDED.support_department_id,"
        " first_response_hours = EXCLUDED.first_response_hours, updated_by = EXCLUDED.updated_by, updated_at = now()",
        (establishment, body["enabled"], body["support_department_id"], body.get("first_response_hours"), by),
    )


def support_departments(conn: Connection, default: str) -> set[str]:
    """Every department escalations go to: the default and the configured ones."""
    rows = conn.execute("SELECT DISTINCT support_department_id AS id FROM escalation.settings").fetchall()
    return {default, *(r["id"] for r in rows)}


# -- following tickets ----------------------------------------------------------------------------


def follow(conn: Connection, message: dict[str, Any], plan: rules.Plan) -> None:
    """Record the ticket after ``message`` (the newest version wins), raise the marks of
    the waits it ends, cancel the timers those make moot, and set its timer. Call inside
    a transaction."""
    t, version = message["ticket"], message["stream_version"]
    marks = {m: plan.marks.get(m, 0) for m in MARKS}
    conn.execute(
        """
        INSERT INTO escalation.tickets AS k (ticket_id, number, subject, status, category_id, department_id,
            establishment, escalation, version, left_closure_requested, left_postponed, responded, returned)
        VALUES (%(id)s, %(number)s, %(subject)s, %(status)s, %(category_id)s, %(department_id)s,
            %(establishment)s, %(escalation)s, %(version)s, %(left_closure_requested)s, %(left_postponed)s,
            %(responded)s, %(returned)s)
        ON CONFLICT (ticket_id) DO UPDATE SET
            number = CASE WHEN k.version < EXCLUDED.version THEN EXCLUDED.number ELSE k.number END,
            subject = CASE WHEN k.version < EXCLUDED.version THEN EXCLUDED.subject ELSE k.subject END,
            status = CASE WHEN k.version < EXCLUDED.version THEN EXCLUDED.status ELSE k.status END,
            category_id = CASE WHEN k.version < EXCLUDED.version THEN EXCLUDED.category_id ELSE k.category_id END,
            department_id = CASE WHEN k.version < EXCLUDED.version THEN EXCLUDED.department_id ELSE k.department_id END,
            establishment = CASE WHEN k.version < EXCLUDED.version THEN EXCLUDED.establishment ELSE k.establishment END,
            escalation = CASE WHEN k.version < EXCLUDED.version THEN EXCLUDED.escalation ELSE k.escalation END,
            version = GREATEST(k.version, EXCLUDED.version),
            left_closure_requested = GREATEST(k.left_closure_requested, EXCLUDED.left_closure_requested),
            left_postponed = GREATEST(k.left_postponed, EXCLUDED.left_postponed),
            responded = GREATEST(k.responded, EXCLUDED.responded),
            returned = GREATEST(k.returned, EXCLUDED.returned)
        """,
        {**{k: t.get(k) for k in ("id", "number", "subject", "status", "category_id", "department_id",
                                  "establishment", "escalation")}, "version": version, **marks},
    )
    for kind, mark in ENDED_BY.items():
        if marks[mark]:
            cancelled = conn.execute(
                "UPDATE escalation.timers SET state = 'cancelled', settled_at = now(), outcome = %s"
                " WHERE ticket_id = %s AND kind = %s AND state = 'pending' AND stream_version < %s"
                " RETURNING event_id",
                (f"moot: {message['event_type']} at version {version}", t["id"], kind, marks[mark]),
            ).fetchall()
            if cancelled:
                log.info("timer cancelled", kind=kind, by=message["event_type"], count=len(cancelled))
    if marks["returned"]:
        conn.execute(
            "UPDATE escalation.escalations SET status = 'returned', returned_at = %s, returned_by_id = %s,"
            " returned_by_name = %s WHERE ticket_id = %s AND status = 'escalated' AND escalated_version < %s",
            (message["occurred_at"], message["actor"]["id"], message["actor"].get("name"), t["id"], version),
        )
    if plan.timer is not None:
        set_timer(conn, plan.timer)


def set_timer(conn: Connection, timer: rules.NewTimer) -> None:
    """Insert ``timer``; already cancelled if a later event ended its wait."""
    mark = ENDED_BY[timer.kind]
    conn.execute(
        f"""
        INSERT INTO escalation.timers (event_id, ticket_id, kind, stream_version, started_at, due_at, team,
            establishment, state, outcome, settled_at)
        SELECT %(event_id)s, %(ticket_id)s, %(kind)s, %(stream_version)s, %(started_at)s, %(due_at)s, %(team)s,
            %(establishment)s,
            CASE WHEN moot THEN 'cancelled' ELSE 'pending' END,
            CASE WHEN moot THEN 'moot: a later event ended the wait' END,
            CASE WHEN moot THEN now() END
        FROM (SELECT coalesce((SELECT {mark} > %(stream_version)s FROM escalation.tickets
                               WHERE ticket_id = %(ticket_id)s), false) AS moot) m
        ON CONFLICT (event_id) DO NOTHING
        """,
        {"event_id": timer.event_id, "ticket_id": timer.ticket_id, "kind": timer.kind,
         "stream_version": timer.stream_version, "started_at": timer.started_at, "due_at": timer.due_at,
         "team": timer.team, "establishment": timer.establishment},
    )
    log.info("timer set", kind=timer.kind, due_at=timer.due_at and timer.due_at.isoformat())


# -- due timers ---------------------------------------------------------------------------------------


def due_timers(conn: Connection, now: datetime, limit: int = 50,
               calendar: WorkingCalendar | None = None) -> list[dict[str, Any]]:
    """Pending timers whose time has come, locked for this transaction (other replicas
    skip them); a first-response timer is due once its establishment's deadline has
    passed in working hours (``calendar``, by default ``WorkingCalendar.from_env()``),
    when escalation is enabled there.

    The SQL keeps ``started_at + hours`` (wall-clock) as a cheap prefilter: working time
    never runs faster than the clock, so a timer it leaves out is not due. The rows it
    lets through are read a page at a time in deadline order until ``limit`` of them are
    due in working hours, so a weekend's worth of not-yet-due timers cannot hide one
    that is due behind them."""
    calendar = calendar or WorkingCalendar.from_env()
    due: list[dict[str, Any]] = []
    after: tuple[datetime, Any] | None = None
    while len(due) < limit:
        rows = conn.execute(
            """
            SELECT t.*, s.first_response_hours, s.support_department_id,
                   coalesce(t.due_at, t.started_at) AS sort_at
              FROM escalation.timers t
              JOIN escalation.tickets k ON k.ticket_id = t.ticket_id
              LEFT JOIN escalation.settings s ON s.establishment = t.establishment
             WHERE t.state = 'pending'
               AND CASE t.kind
                     WHEN 'expire_closure' THEN t.due_at <= %(now)s AND t.stream_version >= k.left_closure_requested
                     WHEN 'resume' THEN t.due_at <= %(now)s AND t.stream_version >= k.left_postponed
                     ELSE s.enabled AND s.first_response_hours IS NOT NULL
                          AND t.started_at + s.first_response_hours * interval '1 hour' <= %(now)s
                          AND t.stream_version >= k.responded
                   END
               AND (%(after_at)s::timestamptz IS NULL
                    OR (coalesce(t.due_at, t.started_at), t.event_id) > (%(after_at)s::timestamptz, %(after_id)s::uuid))
             ORDER BY coalesce(t.due_at, t.started_at), t.event_id
             LIMIT %(limit)s
             FOR UPDATE OF t SKIP LOCKED
            """,
            {"now": now, "limit": limit, "after_at": after[0] if after else None, "after_id": after[1] if after else None},
        ).fetchall()
        for row in rows:
            sort_at = row.pop("sort_at")
            after = (sort_at, row["event_id"])
            if row["kind"] != rules.FIRST_RESPONSE or _first_response_due(row, now, calendar):
                due.append(row)
        if len(rows) < limit:
            break
    return due[:limit]


def _first_response_due(timer: dict[str, Any], now: datetime, calendar: WorkingCalendar) -> bool:
    """The deadline counts working hours only (nights, weekends and holidays excluded)."""
    return calendar.add_working_hours(timer["started_at"], timer["first_response_hours"]) <= now


def settle_timer(conn: Connection, event_id: Any, state: str, outcome: str) -> None:
    conn.execute(
        "UPDATE escalation.timers SET state = %s, outcome = %s, settled_at = now() WHERE event_id = %s",
        (state, outcome[:1000], event_id),
    )


# -- escalations ---------------------------------------------------------------------------------------


def record_escalation(conn: Connection, **row: Any) -> None:
    """One decision (idempotent by its causing event); an escalation the central support
    already returned (its event processed first) is recorded as returned."""
    row.setdefault("refusal_reason", None)
    row.setdefault("escalated_version", None)
    conn.execute(
        """
        INSERT INTO escalation.escalations (id, ticket_id, establishment, referent_department_id,
            support_department_id, requested_by_id, requested_by_name, reason, automatic, status, refusal_reason,
            escalated_version, requested_at, decided_at)
        SELECT %(id)s, %(ticket_id)s, %(establishment)s, %(referent_department_id)s, %(support_department_id)s,
            %(requested_by_id)s, %(requested_by_name)s, %(reason)s, %(automatic)s,
            CASE WHEN %(status)s = 'escalated' AND coalesce(
                (SELECT returned > %(escalated_version)s FROM escalation.tickets WHERE ticket_id = %(ticket_id)s), false)
                 THEN 'returned' ELSE %(status)s END,
            %(refusal_reason)s, %(escalated_version)s, %(requested_at)s, %(decided_at)s
        ON CONFLICT (id) DO NOTHING
        """,
        row,
    )


class InvalidCursor(Exception):
    """A cursor this service did not give (HTTP 422)."""

    field = "cursor"
    reason = "not a cursor this API gave"

    def __str__(self) -> str:
        return self.reason


def _encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["requested_at"].isoformat(), str(row["id"])]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, escalation_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after = datetime.fromisoformat(at)
        if after.tzinfo is None:
            raise ValueError("a cursor's time has a time zone")
        return after, str(UUID(escalation_id))
    except (ValueError, TypeError, AttributeError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor() from None


def list_escalations(
    conn: Connection,
    *,
    everything: bool,
    establishments: set[str],
    support_teams: set[str],
    statuses: list[str],
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """The escalations the caller handles, newest request first: an establishment's
    referents see their establishment's, the central support those sent to it."""
    after = _decode_cursor(cursor) if cursor else None
    rows = conn.execute(
        """
        SELECT e.*, k.number, k.subject, k.status AS ticket_status
          FROM escalation.escalations e
          LEFT JOIN escalation.tickets k ON k.ticket_id = e.ticket_id
         WHERE (%(everything)s OR e.establishment = ANY(%(establishments)s)
                OR (e.status <> 'refused' AND e.support_department_id = ANY(%(support)s)))
           AND (cardinality(%(statuses)s::text[]) = 0 OR e.status = ANY(%(statuses)s))
           AND (%(after_at)s::timestamptz IS NULL OR (e.requested_at, e.id) < (%(after_at)s, %(after_id)s::uuid))
         ORDER BY e.requested_at DESC, e.id DESC
         LIMIT %(limit)s
        """,
        {"everything": everything, "establishments": sorted(establishments), "support": sorted(support_teams),
         "statuses": statuses, "after_at": after[0] if after else None, "after_id": after[1] if after else None,
         "limit": limit + 1},
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [_view(r) for r in rows], "next_cursor": _encode_cursor(rows[-1]) if more else None}


def _view(r: dict[str, Any]) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": str(r["id"]),
        "ticket": {"id": str(r["ticket_id"]), "number": r["number"], "subject": r["subject"],
                   "status": r["ticket_status"]},
        "establishment": r["establishment"],
        "referent_department_id": r["referent_department_id"],
        "support_department_id": r["support_department_id"],
        "status": r["status"],
        "automatic": r["automatic"],
        "reason": r["reason"],
        "refusal_reason": r["refusal_reason"],
        "requested_by": {"id": r["requested_by_id"], "name": r["requested_by_name"]},
        "requested_at": iso(r["requested_at"]),
        "decided_at": iso(r["decided_at"]),
        "returned_at": iso(r["returned_at"]),
        "returned_by": {"id": r["returned_by_id"], "name": r["returned_by_name"]} if r["returned_by_id"] else None,
    }
