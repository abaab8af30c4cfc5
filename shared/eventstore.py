"""An append-only event store on PostgreSQL, with a transactional outbox.

A stream is ``<category>-<id>`` (``ticket-<uuid>``). Writers state the version they
expect the stream to be at; the ``UNIQUE (stream_id, stream_version)`` constraint is the
concurrency check, so two writers that decided on the same version cannot both win.
Appending writes the events and their outbox rows in the caller's transaction: either
both are committed or neither is, and the relay (``shared.outbox``) publishes what was
committed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from shared.tracing import current_traceparent


class ConcurrencyError(Exception):
    """The stream was not at the expected version: someone else appended first."""

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__(f"stream {stream_id} is no longer at version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version


@dataclass(frozen=True)
class NewEvent:
    """An event about to be appended; ``data``, ``metadata`` and ``message`` are JSON-ready.

    ``message`` is the body to publish through the outbox (None: not published); the
    relay adds the event's ``global_position`` to it when it publishes.
    """

    event_type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    schema_version: int = 1
    event_id: UUID = field(default_factory=uuid4)
    message: dict[str, Any] | None = None


@dataclass(frozen=True)
class RecordedEvent:
    global_position: int
    event_id: UUID
    stream_id: str
    stream_version: int
    event_type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime


@dataclass(frozen=True)
class Statement:
    """A data-modifying statement to run atomically with an append (named parameters,
    which must not start with ``ev_``)."""

    query: str
    params: dict[str, Any]


_COLUMNS = (
    "global_position, event_id, stream_id, stream_version, event_type, schema_version,"
    " data, metadata, recorded_at"
)

# Raised by the events_gap_free trigger: the stream is not at the expected version.
VERSION_GAP = "GU409"


class EventStore:
    """Events and outbox of one schema (``tickets``)."""

    def __init__(self, schema: str = "tickets") -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
            raise ValueError(f"not a plain schema name: {schema!r}")
        self.schema = schema
        self.notify_channel = f"{schema}_outbox"
        self._events = sql.Identifier(schema, "events")
        self._outbox = sql.Identifier(schema, "outbox")

    def append(
        self,
        conn: psycopg.Connection,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        also: Sequence[Statement] = (),
    ) -> list[RecordedEvent]:
        """Append ``events`` after ``expected_version`` (0 for a new stream), in ONE statement.

        The statement also writes the outbox rows of the events that carry a message,
        wakes the relay, and runs ``also`` (e.g. the read model's upsert): all of it
        happens or none of it, even on an autocommit connection. Raises
        ``ConcurrencyError`` when the stream is not at ``expected_version``.
        """
        if not events:
            return []
        params: dict[str, Any] = {"ev_stream": stream_id, "ev_channel": self.notify_channel}
        rows, messages = [], []
        # The trace context of the append goes with each event (its metadata) and with
        # its message, so the relay's publish continues the trace that wrote it.
        traceparent = current_traceparent()
        if traceparent:
            events = [_with_traceparent(event, traceparent) for event in events]
        for i, event in enumerate(events):
            params.update({
                f"ev_id{i}": event.event_id, f"ev_version{i}": expected_version + i + 1,
                f"ev_type{i}": event.event_type, f"ev_schema{i}": event.schema_version,
                f"ev_data{i}": Jsonb(event.data), f"ev_meta{i}": Jsonb(event.metadata),
            })
            rows.append(
                f"(%(ev_id{i})s::uuid, %(ev_stream)s, %(ev_version{i})s::integer, %(ev_type{i})s,"
                f" %(ev_schema{i})s::smallint, %(ev_data{i})s::jsonb, %(ev_meta{i})s::jsonb)"
            )
            if event.message is not None:
                params[f"ev_message{i}"] = Jsonb(event.message)
                messages.append(f"(%(ev_id{i})s::uuid, %(ev_message{i})s::jsonb)")
        # Plain strings: the schema is a checked identifier, and this runs per command.
        parts = [
            f"appended AS (INSERT INTO {self.schema}.events (event_id, stream_id, stream_version,"
            f" event_type, schema_version, data, metadata) VALUES {', '.join(rows)} RETURNING {_COLUMNS})"
        ]
        if messages:
            parts.append(
                f"queued AS (INSERT INTO {self.schema}.outbox (global_position, event_id, routing_key, payload)"
                " SELECT a.global_position, a.event_id, a.event_type, m.payload FROM appended a"
                f" JOIN (VALUES {', '.join(messages)}) AS m (event_id, payload) USING (event_id))"
            )
        for n, statement in enumerate(also):
            parts.append(f"also{n} AS ({statement.query})")
            params.update(statement.params)
        notify = ", pg_notify(%(ev_channel)s, '') AS notified" if messages else ""
        query = f"WITH {', '.join(parts)} SELECT {_COLUMNS}{notify} FROM appended ORDER BY stream_version"
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                found = cur.fetchall()
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "events_stream_id_stream_version_key":
                raise ConcurrencyError(stream_id, expected_version) from exc
            raise
        except psycopg.Error as exc:
            if exc.sqlstate == VERSION_GAP:
                raise ConcurrencyError(stream_id, expected_version) from exc
            raise
        return [_recorded({k: row[k] for k in row if k != "notified"}) for row in found]

    def load(self, conn: psycopg.Connection, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        """The events of a stream, oldest first."""
        rows = conn.execute(
            sql.SQL(
                "SELECT " + _COLUMNS + " FROM {} WHERE stream_id = %s AND stream_version > %s"
                " ORDER BY stream_version"
            ).format(self._events),
            (stream_id, after_version),
        ).fetchall()
        return [_recorded(row) for row in rows]

    def read_all(
        self, conn: psycopg.Connection, from_position: int = 0, batch_size: int = 500
    ) -> Iterator[list[RecordedEvent]]:
        """Every event after ``from_position``, in global order, ``batch_size`` at a time."""
        position = from_position
        while True:
            rows = conn.execute(
                sql.SQL(
                    "SELECT " + _COLUMNS + " FROM {} WHERE global_position > %s"
                    " ORDER BY global_position LIMIT %s"
                ).format(self._events),
                (position, batch_size),
            ).fetchall()
            if not rows:
                return
            batch = [_recorded(row) for row in rows]
            yield batch
            position = batch[-1].global_position


def _with_traceparent(event: NewEvent, traceparent: str) -> NewEvent:
    metadata = event.metadata if "traceparent" in event.metadata else {**event.metadata, "traceparent": traceparent}
    message = event.message
    if message is not None and "traceparent" not in message:
        message = {**message, "traceparent": metadata["traceparent"]}
    if metadata is event.metadata and message is event.message:
        return event
    return replace(event, metadata=metadata, message=message)


def _recorded(row: Any) -> RecordedEvent:
    if isinstance(row, dict):
        return RecordedEvent(**row)
    return RecordedEvent(*row)
