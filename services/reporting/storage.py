"""The reporting schema: each ticket's events, the facts folded from them, the copy of
routing's catalogue, processed events; and the rows the reports add up."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
import structlog
from psycopg.types.json import Jsonb

from services.reporting.facts import Event, Facts, project
from shared.calendar import WorkingCalendar
from shared.catalogue_copy import replace_copy
from shared.db import Connection

log = structlog.stdlib.get_logger("guichet.reporting")

STREAM_PREFIX = "ticket-"


# -- processed events -------------------------------------------------------------------------


def first_time(conn: Connection, consumer: str, event_id: str) -> bool:
    """Record that ``consumer`` handles ``event_id``; False if it already had."""
    return conn.execute(
        "INSERT INTO reporting.processed_events (consumer, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING"
        " RETURNING 1 AS new",
        (consumer, event_id),
    ).fetchone() is not None


# -- the catalogue copy -------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    """Routing's teams as copied: their labels, managers (id -> name) and categories."""

    teams: dict[str, dict[str, Any]] = field(default_factory=dict)
    managers: dict[str, dict[str, str | None]] = field(default_factory=dict)  # team -> {user: name}
    categories: dict[str, dict[str, Any]] = field(default_factory=dict)

    def managed_teams(self, user_id: str) -> set[str]:
        return {team for team, people in self.managers.items() if user_id in people}

    def referent_establishments(self, user_id: str) -> set[str]:
        """The establishments whose ENT referents ``user_id`` is one of."""
        return {team.partition(":")[2] for team in self.managed_teams(user_id)
                if self.teams.get(team, {}).get("per_establishment") and ":" in team}

    def manager_name(self, user_id: str) -> str | None:
        for people in self.managers.values():
            if user_id in people and people[user_id]:
                return people[user_id]
        return None


def load_catalogue(conn: Connection) -> Catalogue:
    managers: dict[str, dict[str, str | None]] = {}
    for r in conn.execute("SELECT team_id, user_id, name FROM reporting.team_managers").fetchall():
        managers.setdefault(r["team_id"], {})[r["user_id"]] = r["name"]
    teams = {r["id"]: r for r in conn.execute("SELECT * FROM reporting.teams").fetchall()}
    categories = {r["id"]: r for r in conn.execute("SELECT * FROM reporting.categories").fetchall()}
    return Catalogue(teams, managers, categories)


def apply_snapshot(conn: Connection, snapshot: dict[str, Any]) -> bool:
    """Replace the copy with routing's ``snapshot`` unless a newer one was applied."""

    def fill(cur: psycopg.Cursor) -> None:
        cur.executemany(
            "INSERT INTO reporting.teams (id, department_id, label_fr, label_en, per_establishment)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(t["id"], t.get("department_id") or t["id"].partition(":")[0], t.get("label_fr"), t.get("label_en"),
              bool(t.get("per_establishment", ":" in t["id"]))) for t in snapshot["teams"]],
        )
        cur.executemany(
            "INSERT INTO reporting.team_managers (team_id, user_id, name) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [(t["id"], m["id"], m.get("name")) for t in snapshot["teams"] for m in t["managers"]],
        )
        cur.executemany(
            "INSERT INTO reporting.categories (id, label_fr, label_en) VALUES (%s, %s, %s)",
            [(c["id"], c.get("label_fr"), c.get("label_en")) for c in snapshot.get("categories", [])],
        )

    return replace_copy(conn, "reporting", snapshot, ("team_managers", "teams", "categories"), fill)


# -- ticket events and facts ------------------------------------------------------------------------

_INSERT_EVENT = (
    "INSERT INTO reporting.ticket_events (ticket_id, stream_version, event_id, global_position, event_type,"
    " schema_version, occurred_at, actor_id, actor_name, actor_kind, data)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


def ticket_id_of(stream_id: str) -> str:
    return stream_id.removeprefix(STREAM_PREFIX)


def keep_event(conn: Connection, message: dict[str, Any]) -> str:
    """Keep a ticket event from the broker (a redelivery changes nothing); returns the
    ticket's id. Call inside a transaction."""
    ticket_id = ticket_id_of(message["stream_id"])
    # One ticket's events are folded one transaction at a time (held until it ends):
    # two workers folding the same ticket at once would each miss the other's event.
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('reporting:' || %s, 0))", (ticket_id,))
    actor = message.get("actor") or {}
    conn.execute(_INSERT_EVENT, (
        ticket_id, message["stream_version"], message["event_id"], message.get("global_position"),
        message["event_type"], message.get("schema_version", 1), datetime.fromisoformat(message["occurred_at"]),
        actor.get("id") or "unknown", actor.get("name"), actor.get("kind") or "user", Jsonb(message.get("data") or {}),
    ))
    return ticket_id


def ticket_events(conn: Connection, ticket_id: str) -> list[Event]:
    rows = conn.execute(
        "SELECT * FROM reporting.ticket_events WHERE ticket_id = %s ORDER BY stream_version", (ticket_id,)
    ).fetchall()
    return [_event(r) for r in rows]


def _event(r: dict[str, Any]) -> Event:
    return Event(r["stream_version"], r["event_type"], r["schema_version"], r["occurred_at"], r["actor_id"],
                 r["actor_kind"], r["data"], r["actor_name"])


def refold(conn: Connection, ticket_id: str, calendar: WorkingCalendar) -> Facts:
    """Fold the ticket's kept events into its facts again and save them (in the caller's
    transaction)."""
    facts = project(ticket_id, ticket_events(conn, ticket_id), calendar)
    save_facts(conn, [facts])
    return facts


_FACT_COLUMNS = (
    "ticket_id", "version", "number", "subject", "establishment", "created_at", "category_id", "department_id",
    "assignee_id", "routed_at", "status", "first_response_at", "first_response_by", "first_response_department_id",
    "first_response_category_id", "first_response_seconds", "first_response_working_seconds", "resolved_at",
    "resolution", "resolution_department_id", "resolution_category_id", "resolution_assignee_id",
    "resolution_seconds", "resolution_working_seconds", "reopen_count", "escalated_at", "escalation_seconds",
    "escalation_working_seconds", "approved_at", "rating", "has_feedback",
)
_PERIOD_COLUMNS = ("ticket_id", "seq", "status", "started_at", "ended_at", "department_id", "category_id",
                   "assignee_id", "seconds", "working_seconds")
_ESCALATION_COLUMNS = ("ticket_id", "seq", "department_id", "category_id", "requested_by_id", "requested_at",
                       "escalated_at", "support_department_id", "refused_at", "returned_at")


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO reporting.{table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"


def save_facts(conn: Connection, many: list[Facts]) -> None:
    """Replace the facts of these tickets (their periods and escalations go with them);
    written with COPY, a round trip per table whatever the number of tickets."""
    if not many:
        return
    conn.execute("DELETE FROM reporting.tickets WHERE ticket_id = ANY(%s)", ([f.ticket_id for f in many],))
    with conn.cursor() as cur:
        _copy(cur, "tickets", _FACT_COLUMNS, (tuple(getattr(f, c) for c in _FACT_COLUMNS) for f in many))
        _copy(cur, "status_periods", _PERIOD_COLUMNS,
              ((f.ticket_id, *(getattr(p, c) for c in _PERIOD_COLUMNS[1:])) for f in many for p in f.periods))
        _copy(cur, "escalations", _ESCALATION_COLUMNS,
              ((f.ticket_id, *(getattr(e, c) for c in _ESCALATION_COLUMNS[1:])) for f in many for e in f.escalations))


def _copy(cur: psycopg.Cursor[Any], table: str, columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> None:
    with cur.copy(f"COPY reporting.{table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# -- rebuild from the event log ---------------------------------------------------------------------------


def rebuild(conn: Connection, calendar: WorkingCalendar, batch_size: int = 2000) -> int:
    """Replace everything the service derived from ticket events by a replay of the
    tickets service's event log; returns how many events were read. Memory stays
    bounded by ``batch_size``: the log is copied in ``global_position`` order, then
    tickets are folded a batch at a time. Runs in the caller's transaction, so readers
    see the old figures until it commits."""
    conn.execute("LOCK TABLE reporting.ticket_events, reporting.tickets IN EXCLUSIVE MODE")
    for table in ("escalations", "status_periods", "tickets", "ticket_events"):
        conn.execute(f"DELETE FROM reporting.{table}")
    # The log is copied inside PostgreSQL (as keep_event would, event by event), in
    # global_position order, a slice at a time.
    position, count = 0, 0
    last = conn.execute("SELECT coalesce(max(global_position), 0) AS last FROM tickets.events").fetchone()["last"]  # type: ignore[index]  # an aggregate always gives one row
    while position < last:
        count += conn.execute(
            "INSERT INTO reporting.ticket_events (ticket_id, stream_version, event_id, global_position, event_type,"
            " schema_version, occurred_at, actor_id, actor_name, actor_kind, data)"
            " SELECT substring(stream_id FROM %s)::uuid, stream_version, event_id, global_position, event_type,"
            " schema_version, (metadata->>'occurred_at')::timestamptz, coalesce(metadata->'actor'->>'id', 'unknown'),"
            " metadata->'actor'->>'name', coalesce(metadata->'actor'->>'kind', 'user'), data"
            " FROM tickets.events WHERE global_position > %s AND global_position <= %s AND stream_id LIKE 'ticket-%%'"
            " ORDER BY global_position ON CONFLICT DO NOTHING",
            (len(STREAM_PREFIX) + 1, position, position + batch_size * 25),
        ).rowcount
        position += batch_size * 25
    tickets = 0
    for batch in _tickets_in_batches(conn, batch_size):
        save_facts(conn, [project(ticket_id, events, calendar) for ticket_id, events in batch])
        tickets += len(batch)
    log.info("reporting projection rebuilt", events=count, tickets=tickets)
    return count


def _tickets_in_batches(conn: Connection, batch_size: int) -> Iterator[list[tuple[str, list[Event]]]]:
    """Each ticket's kept events, about ``batch_size`` events at a time, whole tickets."""
    after = UUID(int=0)
    while True:
        ids = [r["ticket_id"] for r in conn.execute(
            "SELECT DISTINCT ticket_id FROM reporting.ticket_events WHERE ticket_id > %s"
            " ORDER BY ticket_id LIMIT %s", (after, max(1, batch_size // 5)),
        ).fetchall()]
        if not ids:
            return
        grouped: dict[str, list[Event]] = {str(i): [] for i in ids}
        for r in conn.execute(
            "SELECT * FROM reporting.ticket_events WHERE ticket_id = ANY(%s) ORDER BY ticket_id, stream_version",
            (ids,),
        ).fetchall():
            grouped[str(r["ticket_id"])].append(_event(r))
        yield list(grouped.items())
        after = ids[-1]


def snapshot_of_facts(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Every derived row, in a stable order (tests compare the live projection with a
    rebuilt one)."""
    return {
        "tickets": conn.execute("SELECT * FROM reporting.tickets ORDER BY ticket_id").fetchall(),
        "status_periods": conn.execute("SELECT * FROM reporting.status_periods ORDER BY ticket_id, seq").fetchall(),
        "escalations": conn.execute("SELECT * FROM reporting.escalations ORDER BY ticket_id, seq").fetchall(),
    }


# -- what the reports add up ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Whose figures a caller may see: everything (admins), or the facts of the teams
    they manage and of the establishments whose referents they are."""

    everything: bool = False
    teams: frozenset[str] = frozenset()
    establishments: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.everything or self.teams or self.establishments)


# Per kind of fact: its table, its instant, and its dimensions (as they were then).
_KINDS: dict[str, dict[str, str]] = {
    "created": {"at": "t.created_at", "department": "t.department_id", "category": "t.category_id",
                "manager": "t.assignee_id"},
    "first_responses": {"at": "t.first_response_at", "department": "t.first_response_department_id",
                        "category": "t.first_response_category_id", "manager": "t.first_response_by"},
    "resolved": {"at": "t.resolved_at", "department": "t.resolution_department_id",
                 "category": "t.resolution_category_id", "manager": "t.resolution_assignee_id"},
    "approvals": {"at": "t.approved_at", "department": "t.resolution_department_id",
                  "category": "t.resolution_category_id", "manager": "t.resolution_assignee_id"},
    "periods": {"at": "p.ended_at", "department": "p.department_id", "category": "p.category_id",
                "manager": "p.assignee_id"},
}
FINAL_STATUSES = ("CLOSED", "CANCELLED", "REFUSED")
RESOLUTION_KINDS = ("approved", "expired", "closed_by_owner", "cancelled", "refused")


def _where(dims: dict[str, str], scope: Scope, filters: dict[str, str | None]) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if not scope.everything:
        # Only the parts that can match, so a department's manager gets a plain
        # indexed (department, instant) scan.
        parts = []
        if scope.teams:
            parts.append(f"{dims['department']} = ANY(%s)")
            params.append(sorted(scope.teams))
        if scope.establishments:
            parts.append("t.establishment = ANY(%s)")
            params.append(sorted(scope.establishments))
        clauses.append(f"({' OR '.join(parts) or 'false'})")
    for name, value in filters.items():
        if value is not None:
            column = "t.establishment" if name == "establishment" else dims[name]
            clauses.append(f"{column} = %s")
            params.append(value)
    return clauses, params


def _group(dims: dict[str, str], group_by: str | None) -> str:
    if group_by is None:
        return "NULL::text"
    return "t.establishment" if group_by == "establishment" else dims[group_by]


def created_rows(conn: Connection, start: datetime, end: datetime, scope: Scope,
                 filters: dict[str, str | None], group_by: str | None) -> list[dict[str, Any]]:
    """The tickets created in ``[start, end)`` the caller may see and ``filters`` keep,
    each with its subject and ``group_key`` (the recurring problems read them)."""
    dims = _KINDS["created"]
    clauses, params = _where(dims, scope, filters)
    return conn.execute(
        f"SELECT {_group(dims, group_by)} AS group_key, t.ticket_id, t.subject FROM reporting.tickets t"
        " WHERE t.created_at >= %s AND t.created_at < %s" + "".join(f" AND {c}" for c in clauses),
        [start, end, *params],
    ).fetchall()


def _percentiles(column: str, name: str) -> str:
    return (f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {column}) AS {name}_p50,"
            f" percentile_cont(0.9) WITHIN GROUP (ORDER BY {column}) AS {name}_p90")


# Per kind of fact: what the summary adds up (PostgreSQL's percentile_cont interpolates
# linearly, as figures.percentile does; NULLs are left out).
_AGGREGATES = {
    "created": "count(*) AS n, count(t.escalated_at) AS escalated, "
               + _percentiles("t.escalation_seconds", "escalation") + ", "
               + _percentiles("t.escalation_working_seconds", "escalation_working"),
    "first_responses": "count(*) AS n, " + _percentiles("t.first_response_seconds", "wall") + ", "
                       + _percentiles("t.first_response_working_seconds", "working"),
    "resolved": "count(*) AS n, count(*) FILTER (WHERE t.reopen_count > 0) AS reopened, "
                + "".join(f"count(*) FILTER (WHERE t.resolution = '{r}') AS {r}, " for r in RESOLUTION_KINDS)
                + _percentiles("t.resolution_seconds", "wall") + ", "
                + _percentiles("t.resolution_working_seconds", "working"),
    "approvals": "count(*) AS n, count(t.rating) AS ratings, avg(t.rating)::float AS average,"
                 " count(*) FILTER (WHERE t.has_feedback) AS with_feedback, "
                 + ", ".join(f"count(*) FILTER (WHERE t.rating = {n}) AS rated_{n}" for n in range(1, 6)),
    "periods": "count(*) AS n, coalesce(sum(p.seconds), 0) AS total, coalesce(sum(p.working_seconds), 0)"
               " AS total_working, " + _percentiles("p.seconds", "wall") + ", "
               + _percentiles("p.working_seconds", "working"),
}


def aggregates(conn: Connection, start: datetime, end: datetime, scope: Scope,
               filters: dict[str, str | None], group_by: str | None) -> dict[Any, dict[str, Any]]:
    """What the summary adds up over ``[start, end)``, in total (key ``TOTAL``) and per
    group: ``{key: {kind: row}}``, periods as ``{"periods": {status: row}}``, and the
    backlog at both ends (``backlog_start``, ``backlog_end``: ticket counts)."""
    found: dict[Any, dict[str, Any]] = {}
    for kind, dims in _KINDS.items():
        if kind == "periods":
            continue
        for row in _grouped(conn, kind, _AGGREGATES[kind], dims, start, end, scope, filters, group_by):
            found.setdefault(row["key"], {})[kind] = row
    for row in _grouped(conn, "periods", _AGGREGATES["periods"], _KINDS["periods"], start, end, scope, filters,
                        group_by, by_status=True):
        found.setdefault(row["key"], {}).setdefault("periods", {})[row["status"]] = row
    for name, instant in (("backlog_start", start), ("backlog_end", end)):
        for row in _grouped(conn, "backlog", "count(DISTINCT p.ticket_id) AS n", _KINDS["periods"], instant, instant,
                            scope, filters, group_by):
            found.setdefault(row["key"], {})[name] = row["n"]
    return found


class _Total:
    """The key of the totals (``None`` is the key of the group with no value)."""

    def __repr__(self) -> str:
        return "TOTAL"


TOTAL: Any = _Total()


def _grouped(conn: Connection, kind: str, select: str, dims: dict[str, str], start: datetime, end: datetime,
             scope: Scope, filters: dict[str, str | None], group_by: str | None,
             by_status: bool = False) -> list[dict[str, Any]]:
    """One aggregate query: the total and, with ``group_by``, each group (GROUPING SETS)."""
    clauses, params = _where(dims, scope, filters)
    if kind == "backlog":
        window = "p.started_at <= %s AND (p.ended_at IS NULL OR p.ended_at > %s) AND p.status <> ALL(%s)"
    elif kind == "periods":
        window = f"{dims['at']} >= %s AND {dims['at']} < %s AND p.status <> ALL(%s)"
    else:
        window = f"{dims['at']} >= %s AND {dims['at']} < %s"
    window_params: list[Any] = [start, end] + ([list(FINAL_STATUSES)] if kind in ("backlog", "periods") else [])
    source = ("reporting.status_periods p JOIN reporting.tickets t USING (ticket_id)" if kind in ("backlog", "periods")
              else "reporting.tickets t")
    group = _group(dims, group_by)
    status = "p.status, " if by_status else ""
    if group_by:
        sets = f"GROUP BY {status}GROUPING SETS (({group}), ())"
        key = f"{group} AS group_key, GROUPING({group}) = 1 AS is_total"
    else:
        sets = "GROUP BY p.status" if by_status else ""
        key = "NULL::text AS group_key, true AS is_total"
    rows = conn.execute(
        f"SELECT {status}{key}, {select} FROM {source} WHERE {window}"
        + "".join(f" AND {c}" for c in clauses) + f" {sets}",
        [*window_params, *params],
    ).fetchall()
    for row in rows:
        row["key"] = TOTAL if row.pop("is_total") else row["group_key"]
    return rows


def timeline(conn: Connection, start: datetime, end: datetime, step: str, zone: str, scope: Scope,
             filters: dict[str, str | None]) -> dict[str, dict[Any, dict[str, Any]]]:
    """Per ``step`` (day, week or month, in the time zone ``zone``) of ``[start, end)``:
    tickets created and resolved, and the median first-response and resolution times.
    ``{kind: {first day of the step: row}}``."""
    found: dict[str, dict[Any, dict[str, Any]]] = {}
    selects = {
        "created": "count(*) AS n",
        "first_responses": "count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY t.first_response_seconds)"
                           " AS wall_p50, percentile_cont(0.5) WITHIN GROUP"
                           " (ORDER BY t.first_response_working_seconds) AS working_p50",
        "resolved": "count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY t.resolution_seconds) AS wall_p50,"
                    " percentile_cont(0.5) WITHIN GROUP (ORDER BY t.resolution_working_seconds) AS working_p50",
    }
    for kind, select in selects.items():
        dims = _KINDS[kind]
        clauses, params = _where(dims, scope, filters)
        rows = conn.execute(
            f"SELECT date_trunc(%s, {dims['at']} AT TIME ZONE %s)::date AS step, {select} FROM reporting.tickets t"
            f" WHERE {dims['at']} >= %s AND {dims['at']} < %s" + "".join(f" AND {c}" for c in clauses)
            + " GROUP BY 1",
            [step, zone, start, end, *params],
        ).fetchall()
        found[kind] = {r["step"]: r for r in rows}
    return found
