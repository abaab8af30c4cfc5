"""The notifier schema: processed events, ticket facts, the directory of people, the copy
of routing's catalogue, feed entries, the email queue and preferences."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
import structlog
from psycopg.types.json import Jsonb

from services.notifier.recipients import Fact, Person
from services.notifier.texts import Labels
from shared.catalogue_copy import replace_copy
from shared.db import Connection
from shared.tracing import current_traceparent

log = structlog.stdlib.get_logger("guichet.notifier.storage")

CONSUMER = "notifier"
EMAILS_CHANNEL = "notifier_emails"  # NOTIFY'd when emails are queued: wakes the sender


def first_time_locked(conn: Connection, event_id: str, ticket_id: str) -> bool:
    """Record that the notifier handles ``event_id`` and, if it had not, take the
    ticket's lock until the transaction ends (one event of a ticket at a time, so an
    event sees the facts of the one handled just before it); False if it had. One
    round trip."""
    key = int.from_bytes(hashlib.sha256(f"notifier-ticket:{ticket_id}".encode()).digest()[:7], "big")
    row = conn.execute(
        "WITH new AS (INSERT INTO notifier.processed_events (consumer, event_id) VALUES (%s, %s)"
        " ON CONFLICT DO NOTHING RETURNING 1) SELECT pg_advisory_xact_lock(%s) FROM new",
        (CONSUMER, event_id, key),
    ).fetchone()
    return row is not None


# -- ticket facts ---------------------------------------------------------------------------


def record_facts(conn: Connection, ticket_id: str, version: int, facts: Iterable[Fact]) -> None:
    rows = [(ticket_id, f.kind, f.key, version, f.present, Jsonb(f.data)) for f in facts]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO notifier.ticket_facts (ticket_id, kind, key, version, present, data)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                rows,
            )


def facts_as_of(conn: Connection, ticket_id: str, version: int) -> list[Fact]:
    """The latest fact of each (kind, key) of a ticket up to ``version``."""
    rows = conn.execute(
        "SELECT DISTINCT ON (kind, key) kind, key, present, data FROM notifier.ticket_facts"
        " WHERE ticket_id = %s AND version <= %s ORDER BY kind, key, version DESC",
        (ticket_id, version),
    ).fetchall()
    return [Fact(r["kind"], r["key"], r["present"], r["data"]) for r in rows]


# -- people -----------------------------------------------------------------------------------


def remember_people(conn: Connection, people: Iterable[Person]) -> None:
    """Keep each person's latest name and address (writes only what changed)."""
    unique = {p.id: p for p in people if p.email or p.name}
    if not unique:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO notifier.people (user_id, name, email) VALUES (%s, %s, %s)
            ON CONFLICT (user_id) DO UPDATE
               SET name = COALESCE(EXCLUDED.name, notifier.people.name),
                   email = COALESCE(EXCLUDED.email, notifier.people.email), updated_at = now()
             WHERE (EXCLUDED.name IS NOT NULL AND EXCLUDED.name IS DISTINCT FROM notifier.people.name)
                OR (EXCLUDED.email IS NOT NULL AND EXCLUDED.email IS DISTINCT FROM notifier.people.email)
            """,
            [(p.id, p.name, p.email) for p in sorted(unique.values(), key=lambda p: p.id)],
        )


def directory(conn: Connection, ids: Iterable[str]) -> tuple[dict[str, Person], dict[str, Preferences]]:
    """What the directory knows of each person (name, address), and each one's
    preferences (the defaults for those who never set any), in one query."""
    rows = conn.execute(
        "SELECT u.id, p.name, p.email, p.user_id IS NOT NULL AS known, pr.language, pr.email_off"
        " FROM unnest(%s::text[]) AS u(id) LEFT JOIN notifier.people p ON p.user_id = u.id"
        " LEFT JOIN notifier.preferences pr ON pr.user_id = u.id",
        (list(ids),),
    ).fetchall()
    known = {r["id"]: Person(r["id"], r["name"], r["email"]) for r in rows if r["known"]}
    prefs = {r["id"]: Preferences.of(r) for r in rows}
    return known, prefs


# -- the copy of routing's catalogue ----------------------------------------------------------


def apply_snapshot(conn: Connection, snapshot: dict[str, Any]) -> bool:
    """Replace the copy with a ``CatalogueChanged`` snapshot unless a newer one was
    applied (by ``global_position``); True if applied."""
    teams = snapshot["teams"]

    def fill(cur: psycopg.Cursor) -> None:
        cur.executemany(
            "INSERT INTO notifier.teams (id, department_id, label_fr, label_en, assignment_policy)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(t["id"], t.get("department_id") or t["id"], t["label_fr"], t.get("label_en"),
              t.get("assignment_policy")) for t in teams],
        )
        cur.executemany(
            "INSERT INTO notifier.team_managers (team_id, user_id, name, email, available)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(t["id"], m["id"], m.get("name"), m.get("email"), m.get("available", True))
             for t in teams for m in t["managers"]],
        )
        cur.executemany(
            "INSERT INTO notifier.categories (id, label_fr, label_en) VALUES (%s, %s, %s)",
            [(c["id"], c["label_fr"], c.get("label_en")) for c in snapshot.get("categories", [])],
        )
        remember_people(cur.connection, [Person(m["id"], m.get("name"), m.get("email"))
                                         for t in teams for m in t["managers"]])

    return replace_copy(conn, "notifier", snapshot, ("team_managers", "teams", "categories"), fill)


def team_managers(conn: Connection, team_ids: Iterable[str | None]) -> dict[str, list[Person]]:
    wanted = sorted({t for t in team_ids if t})
    found: dict[str, list[Person]] = {t: [] for t in wanted}
    for r in conn.execute(
        "SELECT team_id, user_id, name, email FROM notifier.team_managers WHERE team_id = ANY(%s)"
        " ORDER BY team_id, user_id",
        (wanted,),
    ).fetchall():
        found[r["team_id"]].append(Person(r["user_id"], r["name"], r["email"]))
    return found


def teams_routing_assigns(conn: Connection, team_ids: Iterable[str | None]) -> set[str]:
    """The teams whose policy gives a new ticket to an available manager at once (known
    only when routing's snapshot carries ``assignment_policy``)."""
    rows = conn.execute(
        "SELECT t.id FROM notifier.teams t WHERE t.id = ANY(%s) AND t.assignment_policy IS NOT NULL"
        " AND t.assignment_policy <> 'none' AND EXISTS (SELECT 1 FROM notifier.team_managers m"
        " WHERE m.team_id = t.id AND m.available)",
        ([t for t in team_ids if t],),
    ).fetchall()
    return {r["id"] for r in rows}


def labels(conn: Connection, team_ids: Iterable[str | None], category_ids: Iterable[str | None]) -> Labels:
    rows = conn.execute(
        "SELECT 'team' AS kind, id, label_fr, label_en FROM notifier.teams WHERE id = ANY(%s)"
        " UNION ALL SELECT 'category', id, label_fr, label_en FROM notifier.categories WHERE id = ANY(%s)",
        ([t for t in team_ids if t], [c for c in category_ids if c]),
    ).fetchall()
    return Labels(
        {r["id"]: (r["label_fr"], r["label_en"]) for r in rows if r["kind"] == "team"},
        {r["id"]: (r["label_fr"], r["label_en"]) for r in rows if r["kind"] == "category"},
    )


# -- preferences -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Preferences:
    language: str = "fr"
    email_off: frozenset[str] = frozenset()

    @classmethod
    def of(cls, row: dict[str, Any] | None) -> Preferences:
        """From a ``notifier.preferences`` row (``language``, ``email_off``); the
        defaults where there is none."""
        return cls(row["language"], frozenset(row["email_off"])) if row and row["language"] else cls()


def preferences(conn: Connection, ids: Iterable[str]) -> dict[str, Preferences]:
    """Each person's preferences (the defaults for those who never set any)."""
    wanted = list(ids)
    rows = conn.execute(
        "SELECT user_id, language, email_off FROM notifier.preferences WHERE user_id = ANY(%s)", (wanted,)
    ).fetchall()
    found = {r["user_id"]: r for r in rows}
    return {i: Preferences.of(found.get(i)) for i in wanted}


def save_preferences(conn: Connection, user_id: str, language: str | None,
                     email: dict[str, bool] | None) -> Preferences:
    """Change a person's language and turn kinds of email on or off (others unchanged)."""
    with conn.transaction():
        current = preferences(conn, [user_id])[user_id]
        off = set(current.email_off)
        for kind, on in (email or {}).items():
            (off.discard if on else off.add)(kind)
        saved = Preferences(language or current.language, frozenset(off))
        conn.execute(
            "INSERT INTO notifier.preferences (user_id, language, email_off) VALUES (%s, %s, %s)"
            " ON CONFLICT (user_id) DO UPDATE SET language = EXCLUDED.language, email_off = EXCLUDED.email_off,"
            " updated_at = now()",
            (user_id, saved.language, sorted(saved.email_off)),
        )
    return saved


# -- the feed --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedEntry:  # fields in the order of the INSERT's columns
    user_id: str
    event_id: str
    ticket_id: str
    ticket_number: int
    event_type: str
    summary_fr: str
    summary_en: str
    created_at: datetime


def add_feed_entries(conn: Connection, entries: list[FeedEntry]) -> None:
    """One entry per person and event (a second one for the same pair is ignored)."""
    if not entries:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO notifier.feed_entries (user_id, event_id, ticket_id, ticket_number, event_type, summary_fr,"
            " summary_en, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id, user_id) DO NOTHING",
            [astuple(e) for e in entries],
        )


class InvalidCursor(ValueError):
    pass


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(["feed", position]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        tag, position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidCursor("the cursor is not one this API gave") from exc
    if tag != "feed" or not isinstance(position, int) or isinstance(position, bool) or not 0 < position < 2**63:
        raise InvalidCursor("the cursor is not one this API gave")
    return position


def feed(conn: Connection, user_id: str, *, unread_only: bool, limit: int, cursor: str | None) -> dict[str, Any]:
    """A page of a person's feed, newest first, with their unread count."""
    language = preferences(conn, [user_id])[user_id].language
    params: dict[str, Any] = {"user": user_id, "limit": limit + 1}
    where = "user_id = %(user)s"
    if unread_only:
        where += " AND read_at IS NULL"
    if cursor:
        params["before"] = decode_cursor(cursor)
        where += " AND position < %(before)s"
    rows = conn.execute(
        f"SELECT position, id, ticket_id, ticket_number, event_type, summary_fr, summary_en, created_at, read_at"
        f" FROM notifier.feed_entries WHERE {where} ORDER BY position DESC LIMIT %(limit)s",
        params,
    ).fetchall()
    unread = conn.execute(  # type: ignore[index]  # an aggregate always gives one row
        "SELECT count(*) AS n FROM notifier.feed_entries WHERE user_id = %s AND read_at IS NULL", (user_id,)
    ).fetchone()["n"]
    page = rows[:limit]
    return {
        "items": [
            {
                "id": str(r["id"]),
                "ticket_id": str(r["ticket_id"]),
                "ticket_number": r["ticket_number"],
                "event_type": r["event_type"],
                "summary": r["summary_en"] if language == "en" else r["summary_fr"],
                "created_at": r["created_at"].isoformat(),
                "read": r["read_at"] is not None,
            }
            for r in page
        ],
        "unread": unread,
        "next_cursor": encode_cursor(page[-1]["position"]) if len(rows) > limit else None,
    }


def mark_read(conn: Connection, user_id: str, entry_id: str) -> bool:
    """Mark one of the person's entries read; False if they have no such entry."""
    try:
        UUID(entry_id)
    except ValueError:
        return False
    row = conn.execute(
        "UPDATE notifier.feed_entries SET read_at = COALESCE(read_at, now()) WHERE id = %s AND user_id = %s"
        " RETURNING 1 AS found",
        (entry_id, user_id),
    ).fetchone()
    return row is not None


def mark_all_read(conn: Connection, user_id: str) -> int:
    cur = conn.execute(
        "UPDATE notifier.feed_entries SET read_at = now() WHERE user_id = %s AND read_at IS NULL", (user_id,)
    )
    return cur.rowcount


# -- the email queue -------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedEmail:  # fields in the order of the INSERT's columns
    event_id: str
    recipient_id: str
    ticket_id: str
    ticket_number: int
    event_type: str
    occurred_at: datetime
    to_address: str
    message_id: str
    raw: bytes


def queue_emails(conn: Connection, emails: list[QueuedEmail]) -> int:
    """Queue each email under its key (event, recipient); how many keys were new."""
    if not emails:
        return 0
    queued = 0
    traceparent = current_traceparent()  # the send continues this trace (shared.tracing)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO notifier.emails (event_id, recipient_id, ticket_id, ticket_number, event_type,"
            " event_occurred_at, to_address, message_id, message, traceparent)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
            [(*astuple(e), traceparent) for e in emails],
            returning=True,
        )
        while True:
            queued += len(cur.fetchall())
            if not cur.nextset():
                return queued


def wake_sender(conn: Connection) -> None:
    conn.execute("SELECT pg_notify(%s, '')", (EMAILS_CHANNEL,))
