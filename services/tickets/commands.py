"""The tickets service layer: one unit of work per command.

``TicketCommands.execute`` opens a transaction, loads the ticket's stream, lets the
aggregate decide, appends the events with their outbox rows, updates the ticket view
and records the idempotency key, all in that one transaction. A command that loses the
race on the stream version is decided again on the reloaded ticket, a few times, before
it answers ``Conflict``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import psycopg
import structlog
from psycopg.types.json import Jsonb

from services.tickets import projections
from services.tickets.domain import COMMANDS, Actor, Change, Context, Ticket, User
from services.tickets.views import LABELS, render
from shared import idempotency
from shared.contract import Conflict, DomainError, InvalidArgument, TicketNotFound, UnknownUser, VersionMismatch
from shared.db import Connection, Pool
from shared.events import SCHEMA_VERSIONS, encode_data, visible_data
from shared.eventstore import ConcurrencyError, EventStore, NewEvent, RecordedEvent, Statement
from shared.idempotency import IdempotencyKeyReused
from shared.tracing import current_correlation_id

log = structlog.stdlib.get_logger("guichet.tickets")

MAX_ATTEMPTS = 5


def utcnow() -> datetime:
    return datetime.now(UTC)


class DatabaseMembership:
    """Who manages which department, from ``tickets.department_managers``; cached per
    command, since the rules ask the same question several times."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._departments: dict[str, frozenset[str]] = {}
        self._managers: dict[str, list[User]] = {}

    def escalable(self, department_id: str | None) -> bool:
        """Whether escalating from this team can succeed, as the escalation service last
        said (yes until it has said anything)."""
        if not hasattr(self, "_escalable"):
            rows = self.conn.execute(
                "SELECT team FROM tickets.escalable_teams"
                " UNION ALL SELECT NULL FROM tickets.escalable_known"
            ).fetchall()
            known = any(r["team"] is None for r in rows)
            self._escalable = frozenset(r["team"] for r in rows if r["team"]) if known else None
        return self._escalable is None or department_id in self._escalable

    def managers(self, department_id: str) -> list[User]:
        """The department's managers, as the copy of routing's teams says now."""
        if department_id not in self._managers:
            rows = self.conn.execute(
                "SELECT user_id, name, email FROM tickets.department_managers WHERE department_id = %s"
                " ORDER BY user_id", (department_id,)
            ).fetchall()
            self._managers[department_id] = [User(r["user_id"], r["name"], r["email"]) for r in rows]
        return self._managers[department_id]

    def manages(self, user_id: str, department_id: str | None) -> bool:
        if department_id is None:
            return False
        if user_id not in self._departments:
            rows = self.conn.execute(
                "SELECT department_id FROM tickets.department_managers WHERE user_id = %s", (user_id,)
            ).fetchall()
            self._departments[user_id] = frozenset(r["department_id"] for r in rows)
        return department_id in self._departments[user_id]


def _context(conn: Connection, actor: Actor, now: datetime) -> Context:
    membership = DatabaseMembership(conn)
    return Context(actor=actor, now=now, membership=membership, escalable=membership.escalable)


class TicketNumbers:
    """Human ticket numbers from the ``tickets.ticket_number`` sequence, taken a block at
    a time so that filing a ticket costs no extra round trip. Numbers are unique and
    grow; a restart leaves a gap, as a rolled-back transaction already could."""

    def __init__(self, block: int = 20) -> None:
        self.block = block
        self._free: list[int] = []
        self._lock = threading.Lock()

    def next(self, conn: Connection) -> int:
        with self._lock:
            if not self._free:
                rows = conn.execute(
                    "SELECT nextval('tickets.ticket_number') AS n FROM generate_series(1, %s)", (self.block,)
                ).fetchall()
                self._free = sorted((r["n"] for r in rows), reverse=True)
            return self._free.pop()


class TicketCommands:
    """Runs the ticket commands against PostgreSQL."""

    def __init__(
        self,
        pool: Pool,
        store: EventStore | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.pool = pool
        self.store = store or EventStore("tickets")
        self.clock = clock
        self.numbers = TicketNumbers()

    # -- writing

    def execute(
        self,
        action: str,
        actor: Actor,
        ticket_ref: object = None,
        args: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        expected_version: int | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        new_ticket_id: str | None = None,
    ) -> dict[str, Any]:
        """Perform ``action`` as ``actor``; returns the ticket as the actor sees it.

        ``new_ticket_id`` is the id a submitted ticket gets (a fresh uuid by default).
        """
        return self.execute_steps(
            [(action, dict(args or {}))], actor, ticket_ref, idempotency_key=idempotency_key,
            expected_version=expected_version, correlation_id=correlation_id, causation_id=causation_id,
            new_ticket_id=new_ticket_id,
        )

    def execute_steps(
        self,
        steps: Sequence[tuple[str, dict[str, Any]]],
        actor: Actor,
        ticket_ref: object = None,
        *,
        idempotency_key: str | None = None,
        expected_version: int | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        new_ticket_id: str | None = None,
        request: tuple[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Perform several actions on one ticket as ONE command: each is decided on the
        ticket as the previous ones left it, and all their events are appended in one
        transaction, or none (e.g. a ticket submitted with its attachments, or files
        attached with the comment that names them). ``submit`` may only come first.

        ``request`` (a name and the caller's arguments) is what the idempotency key's
        fingerprint is made of when the steps depend on the ticket (files not yet on it)."""
        steps = [(action, dict(args)) for action, args in steps]
        if not steps:
            raise ValueError("no action to perform")
        for index, (action, _) in enumerate(steps):
            if (action == "submit" and index) or (action != "submit" and action not in COMMANDS):
                raise ValueError(f"unknown action {action!r}")
        name = "+".join(action for action, _ in steps)
        # Else the one of the request or event being handled (shared.tracing), kept on every hop.
        correlation_id = correlation_id or current_correlation_id() or str(uuid4())
        payload = steps[0][1] if len(steps) == 1 else {"steps": [args for _, args in steps]}
        if request is not None:
            name, payload = request
        fingerprint = idempotency.fingerprint(name, ticket_ref, payload)
        with structlog.contextvars.bound_contextvars(
            action=name, correlation_id=correlation_id, actor=actor.id
        ):
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    # Reads first; every write of the command is then ONE statement (the
                    # append), so the connection can stay in autocommit.
                    with self.pool.connection() as conn:
                        if idempotency_key is not None:
                            first = self._first_result(conn, actor, idempotency_key, name, fingerprint)
                            if first is not None:
                                log.info("idempotent replay", idempotency_key=idempotency_key)
                                return first
                        remember = None
                        if idempotency_key is not None:
                            remember = (actor, idempotency_key, name, fingerprint)
                        return self._decide_and_append(
                            conn, steps, actor, ticket_ref, expected_version,
                            correlation_id, causation_id, remember, new_ticket_id,
                        )
                except ConcurrencyError:
                    log.info("lost a race on the ticket, deciding again", attempt=attempt)
            raise Conflict(f"{name}: the ticket kept changing, try again")

    def _decide_and_append(
        self,
        conn: Connection,
        steps: list[tuple[str, dict[str, Any]]],
        actor: Actor,
        ticket_ref: object,
        expected_version: int | None,
        correlation_id: str,
        causation_id: str | None,
        remember: tuple[Actor, str, str, str] | None,
        new_ticket_id: str | None = None,
    ) -> dict[str, Any]:
        ctx = _context(conn, actor, self.clock())
        if steps[0][0] == "submit":
            ticket = Ticket()
            ticket_id = new_ticket_id or str(uuid4())
        else:
            ticket = self.load(conn, ticket_ref)
            if ticket is None or not ticket.can_view(ctx):
                raise TicketNotFound(ticket_ref)
            ticket_id = ticket.id
            if expected_version is not None and expected_version != ticket.version:
                raise VersionMismatch(expected_version, ticket.version)
        expected = ticket.version
        new_events: list[NewEvent] = []
        for action, args in steps:
            if action == "submit":
                self._check_category(conn, action, args.get("category_id"))
                number = self.numbers.next(conn)
                changes = Ticket.submit(ctx, ticket_id=ticket_id, number=number, **args)
            else:
                args = self._resolve_users(conn, action, args)
                if action == "move":
                    self._check_category(conn, action, args.get("category_id"))
                changes = COMMANDS[action](ticket, ctx, **args)
            new_events += self._fold(ticket, changes, ctx, correlation_id, causation_id)
        structlog.contextvars.bind_contextvars(ticket_id=ticket_id)
        result = render(ticket, ctx, LABELS.get(conn))
        also = [_remember(*remember, result)] if remember else []
        if new_events:
            try:
                recorded = self.store.append(
                    conn, projections.stream_id(ticket.id), expected, new_events,
                    [projections.view_upsert(ticket), *also],
                )
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name == "idempotency_keys_pkey":
                    raise ConcurrencyError("idempotency", 0) from exc
                raise
            for event in recorded:
                log.info(
                    "event appended", ticket_id=ticket.id, event_type=event.event_type,
                    stream_version=event.stream_version, global_position=event.global_position,
                )
        elif also:
            _run_alone(conn, also[0])
        return result

    def _fold(
        self, ticket: Ticket, changes: list[Change], ctx: Context, correlation_id: str, causation_id: str | None
    ) -> list[NewEvent]:
        """Apply the decided changes to ``ticket`` and make the events to append."""
        actor = {"id": ctx.actor.id, "name": ctx.actor.name, "email": ctx.actor.email, "kind": ctx.actor.kind}
        occurred_at = ctx.now.isoformat()
        traceparent = _traceparent()
        new_events: list[NewEvent] = []
        for change in changes:
            stored, loaded = encode_data(change.event_type, change.data)
            metadata = {
                "actor": actor,
                "occurred_at": occurred_at,
                "correlation_id": correlation_id,
                "causation_id": causation_id,
                "status_before": ticket.status,
            }
            # Fold what the readers will read back, so the live view equals a replay.
            projections.apply_loaded(ticket, change.event_type, loaded, metadata)
            metadata["status_after"] = ticket.status
            if traceparent:
                metadata["traceparent"] = traceparent
            event_id = uuid4()
            message = {
                "event_id": str(event_id),
                "event_type": change.event_type,
                "schema_version": SCHEMA_VERSIONS[change.event_type],
                "stream_id": projections.stream_id(ticket.id),
                "stream_version": ticket.version,
                "occurred_at": occurred_at,
                "actor": {"id": actor["id"], "name": actor["name"], "kind": actor["kind"]},
                "correlation_id": correlation_id,
                "causation_id": causation_id,
                "data": stored,
                "ticket": ticket.summary(),
                "audience": ticket.audience(ctx.membership.managers),
            }
            new_events.append(
                NewEvent(change.event_type, stored, metadata, SCHEMA_VERSIONS[change.event_type], event_id, message)
            )
        return new_events

    def _check_category(self, conn: Connection, action: str, category_id: object) -> None:
        if not isinstance(category_id, str):
            return  # the aggregate explains what a category id must be
        known = LABELS.known_categories(conn)
        # Until routing has published a catalogue, any category is taken (and routing
        # sends what it cannot resolve to triage); once there is one, it is the rule.
        if known and category_id not in known:
            raise InvalidArgument(action, None, "category_id", f"unknown category {category_id!r}")

    def _resolve_users(self, conn: Connection, action: str, args: dict[str, Any]) -> dict[str, Any]:
        """Turn the logins or emails the caller names into the people tickets record."""
        if action in ("assign",) and not isinstance(args.get("assignee"), User):
            args["assignee"] = self.find_user(conn, args.get("assignee"), "assignee")
        if action in ("invite", "watch") and args.get("user") is not None and not isinstance(args["user"], User):
            args["user"] = self.find_user(conn, args["user"])
        return args

    def recheck_access(self, causation_id: str | None = None) -> int:
        """After the copy of the teams changed: release every ticket whose assignee can
        no longer see it, and end the watches of those who cannot (``Ticket.recheck_access``).
        Returns how many tickets were looked at again."""
        with self.pool.connection() as conn:
            rows = conn.execute(_LOST_SIGHT).fetchall()
        system = Actor.system("tickets")
        for row in rows:
            try:
                self.execute("recheck_access", system, str(row["id"]), causation_id=causation_id)
            except (DomainError, Conflict, TicketNotFound) as exc:
                # The ticket moved on meanwhile (closed...): the next change looks again.
                log.warning("access not rechecked", ticket_id=str(row["id"]), error=str(exc))
        if rows:
            log.info("access rechecked after a change of the teams", tickets=len(rows))
        return len(rows)

    def find_user(self, conn: Connection, login_or_email: object, field: str = "user") -> User:
        if not isinstance(login_or_email, str) or not login_or_email.strip():
            raise UnknownUser("a login or an email is required", field)
        key = login_or_email.strip()
        row = conn.execute(
            """
            SELECT id, name, email FROM tickets.users WHERE id = %(key)s OR lower(email) = lower(%(key)s)
            UNION ALL
            SELECT user_id, name, email FROM tickets.department_managers
             WHERE user_id = %(key)s OR lower(email) = lower(%(key)s)
            LIMIT 1
            """,
            {"key": key},
        ).fetchone()
        if row is None:
            # Someone who never signed in may be in the university's directory (503 if it is down).
            from shared.directory import find_person

            person = find_person(key)
            if person is None:
                raise UnknownUser(f"nobody known as {key}", field)
            conn.execute(
                "INSERT INTO tickets.users (id, name, email, establishment) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (person.login, person.name, person.email, person.establishment),
            )
            return User(person.login, person.name, person.email)
        return User(row["id"], row["name"], row["email"])

    # -- idempotency

    def _first_result(
        self, conn: Connection, actor: Actor, key: str, action: str, fingerprint: str
    ) -> dict[str, Any] | None:
        row = conn.execute(
            "SELECT action, fingerprint, result FROM tickets.idempotency_keys WHERE actor_id = %s AND key = %s",
            (actor.id, key),
        ).fetchone()
        if row is None:
            return None
        if (row["action"], row["fingerprint"]) != (action, fingerprint):
            raise IdempotencyKeyReused(f"this Idempotency-Key ({key!r}) was already used with another request")
        return row["result"]

    # -- reading

    def load(self, conn: Connection, ticket_ref: object) -> Ticket | None:
        """The ticket replayed from its stream (the truth), found by uuid or number."""
        ticket_id = projections.parse_ticket_ref(ticket_ref)
        if isinstance(ticket_id, int):
            row = conn.execute("SELECT id FROM tickets.ticket_view WHERE number = %s", (ticket_id,)).fetchone()
            ticket_id = row["id"] if row else None
        if ticket_id is None:
            return None
        events = self.store.load(conn, projections.stream_id(str(ticket_id)))
        return projections.fold(events) if events else None

    def get(self, actor: Actor, ticket_ref: object) -> dict[str, Any]:
        with self.pool.connection() as conn:
            ticket = projections.load_view(conn, str(ticket_ref))
            ctx = _context(conn, actor, self.clock())
            if ticket is None or not ticket.can_view(ctx):
                raise TicketNotFound(ticket_ref)
            return render(ticket, ctx, LABELS.get(conn))

    def can_view(self, actor: Actor, ticket_ref: object) -> bool:
        with self.pool.connection() as conn:
            ticket = projections.load_view(conn, str(ticket_ref))
            ctx = _context(conn, actor, self.clock())
            return ticket is not None and ticket.can_view(ctx)

    def attachment_access(self, actor: Actor, ticket_ref: object, attachment_id: object) -> dict[str, bool]:
        """Whether a file is on the ticket (``attached``), and whether ``actor`` may see
        it there (``visible``: they see the ticket, and an internal file only if they are
        a manager or an admin). Answered from the view, which the append keeps current."""
        with self.pool.connection() as conn:
            ticket = projections.load_view(conn, str(ticket_ref))
            attachment = ticket.attachments.get(str(attachment_id)) if ticket is not None else None
            if ticket is None or attachment is None:
                return {"attached": False, "visible": False}
            ctx = _context(conn, actor, self.clock())
            visible = ticket.can_view(ctx) and (attachment["visibility"] == "public" or ticket.sees_internal(ctx))
            return {"attached": True, "visible": visible}

    def history(self, actor: Actor, ticket_ref: object) -> list[dict[str, Any]]:
        """The ticket's events, oldest first; internal entries only for managers."""
        with self.pool.connection() as conn:
            ticket = self.load(conn, ticket_ref)
            ctx = _context(conn, actor, self.clock())
            if ticket is None or not ticket.can_view(ctx):
                raise TicketNotFound(ticket_ref)
            internal = ticket.sees_internal(ctx)
            events = self.store.load(conn, projections.stream_id(ticket.id))
        attachments = {e.data["attachment_id"]: e.data["visibility"] for e in events if e.event_type == "AttachmentAdded"}
        views = []
        for event in events:
            data = visible_data(event.event_type, event.data, sees_internal=internal,
                                attachment_visibility=attachments.get(event.data.get("attachment_id", "")))
            if data is not None:
                views.append(_event_view(event, data))
        return views


# Tickets not final where the assignee or a watcher is neither the requester, an invitee
# nor a manager of a team that sees the ticket (admin watchers match, and are kept).
_LOST_SIGHT = """
SELECT v.id FROM tickets.ticket_view v
 WHERE v.status NOT IN ('CLOSED', 'CANCELLED', 'REFUSED')
   AND EXISTS (
       SELECT 1 FROM unnest(array_append(v.watcher_ids, v.assignee_id)) AS u(id)
        WHERE u.id IS NOT NULL AND u.id <> v.requester_id AND NOT u.id = ANY(v.invitee_ids)
          AND NOT EXISTS (
              SELECT 1 FROM tickets.department_managers m
               WHERE m.user_id = u.id
                 AND (m.department_id = v.department_id
                      OR (v.escalation = 'escalated' AND m.department_id = v.referent_department_id))))
"""


def _remember(actor: Actor, key: str, action: str, fingerprint: str, result: dict[str, Any]) -> Statement:
    """The idempotency key's row; a concurrent twin's commit makes this one a unique
    violation, so the command is retried and finds the twin's result."""
    return Statement(
        "INSERT INTO tickets.idempotency_keys (actor_id, key, action, fingerprint, ticket_id, result)"
        " VALUES (%(ik_actor)s, %(ik_key)s, %(ik_action)s, %(ik_fingerprint)s, %(ik_ticket)s, %(ik_result)s)",
        {"ik_actor": actor.id, "ik_key": key, "ik_action": action, "ik_fingerprint": fingerprint,
         "ik_ticket": result["id"], "ik_result": Jsonb(result)},
    )


def _run_alone(conn: Connection, statement: Statement) -> None:
    try:
        conn.execute(statement.query, statement.params)
    except psycopg.errors.UniqueViolation as exc:
        raise ConcurrencyError("idempotency", 0) from exc


def _event_view(event: RecordedEvent, data: dict[str, Any]) -> dict[str, Any]:
    meta = event.metadata
    return {
        "id": str(event.event_id),
        "type": event.event_type,
        "version": event.stream_version,
        "occurred_at": meta["occurred_at"],
        "actor": {"id": meta["actor"]["id"], "name": meta["actor"]["name"], "kind": meta["actor"]["kind"]},
        "status_before": meta.get("status_before"),
        "status_after": meta.get("status_after"),
        "data": data,
    }


def _traceparent() -> str | None:
    """The current W3C trace context, stored with each event so the relay continues it."""
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def new_id() -> str:
    return str(uuid4())
