"""The routing schema: reading and replacing the catalogue, assignment state, processed
events, and the snapshot events other services keep their copies from."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from psycopg.types.json import Jsonb

from services.routing.catalogue import DEFAULT_CLOSURE_EXPIRY_DAYS, Catalogue, Category, Department, Faq, Manager
from shared.db import Connection

# The event other services keep their copy of teams, managers and categories from.
CATALOGUE_CHANGED = "CatalogueChanged"
EXCHANGE = "routing.events"


def load_catalogue(conn: Connection) -> Catalogue:
    managers: dict[str, list[Manager]] = {}
    for r in conn.execute(
        "SELECT department_id, establishment, user_id, name, email, available FROM routing.managers"
        " ORDER BY department_id, establishment, user_id"
    ).fetchall():
        managers.setdefault(r["department_id"], []).append(
            Manager(r["user_id"], r["name"], r["email"], r["establishment"], r["available"])
        )
    departments = {
        r["id"]: Department(
            r["id"], r["label_fr"], r["label_en"], r["per_establishment"], r["assignment_policy"],
            r["closure_expiry_days"], r["escalation_enabled"], tuple(managers.get(r["id"], ())),
        )
        for r in conn.execute("SELECT * FROM routing.departments ORDER BY id").fetchall()
    }
    faq: dict[str, list[Faq]] = {}
    for r in conn.execute("SELECT * FROM routing.faq ORDER BY category_id, position, id").fetchall():
        faq.setdefault(r["category_id"], []).append(
            Faq(r["id"], r["question_fr"], r["answer_fr"], r["question_en"], r["answer_en"])
        )
    categories = {
        r["id"]: Category(
            r["id"], r["label_fr"], r["label_en"], r["parent_id"], r["department_id"], r["assignment_policy"],
            r["closure_expiry_days"], r["position"], tuple(faq.get(r["id"], ())),
        )
        for r in conn.execute("SELECT * FROM routing.categories ORDER BY position, id").fetchall()
    }
    return Catalogue(departments, categories)


def same_catalogue(a: Catalogue, b: Catalogue) -> bool:
    """Equal but for the order managers are listed in (stored rows have none)."""
    def managers_sorted(c: Catalogue) -> Catalogue:
        return replace(c, departments={
            k: replace(d, managers=tuple(sorted(d.managers, key=lambda m: (m.establishment, m.user_id))))
            for k, d in c.departments.items()
        })

    return managers_sorted(a) == managers_sorted(b)


CATALOGUE_LOCK = int.from_bytes(hashlib.sha256(b"routing-catalogue").digest()[:7], "big")


def lock_catalogue(conn: Connection) -> None:
    """Hold the catalogue's lock until the end of the transaction: one writer at a time
    (an admin's change, a configuration load), each reading what the last one wrote."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (CATALOGUE_LOCK,))


_cached: tuple[Any, Catalogue] | None = None


def current_catalogue(conn: Connection) -> Catalogue:
    """The stored catalogue, read again only when it changed: every change announces a
    snapshot, so the last announcement's id is the catalogue's version (one
    index lookup instead of four table reads on each ticket routed)."""
    global _cached
    row = conn.execute(
        "SELECT event_id FROM routing.outbox WHERE routing_key = %s ORDER BY global_position DESC LIMIT 1",
        (CATALOGUE_CHANGED,),
    ).fetchone()
    if row is None:  # never announced (a hand-filled database): read it every time
        return load_catalogue(conn)
    version = row["event_id"]
    if _cached is None or _cached[0] != version:
        _cached = (version, load_catalogue(conn))
    return _cached[1]


def replace_catalogue(conn: Connection, catalogue: Catalogue) -> None:
    """Make the stored catalogue exactly ``catalogue`` and announce it, in one transaction.

    Assignment state of teams that still exist is kept.
    """
    with conn.transaction():
        lock_catalogue(conn)
        conn.execute("DELETE FROM routing.faq")
        conn.execute("DELETE FROM routing.categories")
        conn.execute("DELETE FROM routing.managers")
        conn.execute("DELETE FROM routing.departments")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO routing.departments (id, label_fr, label_en, per_establishment, assignment_policy,"
                " closure_expiry_days, escalation_enabled) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(d.id, d.label_fr, d.label_en, d.per_establishment, d.assignment_policy, d.closure_expiry_days,
                  d.escalation_enabled) for d in catalogue.departments.values()],
            )
            cur.executemany(
                "INSERT INTO routing.managers (department_id, establishment, user_id, name, email, available)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                [(d.id, m.establishment, m.user_id, m.name, m.email, m.available)
                 for d in catalogue.departments.values() for m in d.managers],
            )
            cur.executemany(
                "INSERT INTO routing.categories (id, label_fr, label_en, parent_id, department_id,"
                " assignment_policy, closure_expiry_days, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(c.id, c.label_fr, c.label_en, c.parent_id, c.department_id, c.assignment_policy,
                  c.closure_expiry_days, c.position) for c in catalogue.categories.values()],
            )
            cur.executemany(
                "INSERT INTO routing.faq (id, category_id, question_fr, answer_fr, question_en, answer_en, position)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(f.id, c.id, f.question_fr, f.answer_fr, f.question_en, f.answer_en, i)
                 for c in catalogue.categories.values() for i, f in enumerate(c.faq)],
            )
        announce(conn, catalogue)


def announce(conn: Connection, catalogue: Catalogue) -> None:
    """Queue a snapshot of teams, managers and categories for the other services.

    A snapshot, not a diff: a consumer that missed one is right again with the next,
    and the outbox position orders them (an older one arriving late is ignored).
    """
    conn.execute(
        "INSERT INTO routing.outbox (routing_key, payload) VALUES (%s, %s)",
        (CATALOGUE_CHANGED, Jsonb(snapshot(catalogue))),
    )
    conn.execute("SELECT pg_notify('routing_outbox', '')")


def snapshot(catalogue: Catalogue) -> dict[str, Any]:
    """Teams with their managers, and categories, as other services copy them.

    Besides ids and labels: each team's department settings (``per_establishment``,
    ``assignment_policy``, ``escalation_enabled``, ``closure_expiry_days``), and each category's deciding
    department and *effective* closure expiry delay (its own, else the nearest parent's up
    to the category naming the department, else the department's, else the default), as
    routing resolves them. Consumers ignore the fields they do not know.
    """
    def resolved(category_id: str) -> tuple[str | None, int]:
        department_id, days, seen = None, None, set()
        current: str | None = category_id
        while current is not None and current in catalogue.categories and current not in seen:
            seen.add(current)
            category = catalogue.categories[current]
            days = days or category.closure_expiry_days
            if category.department_id:
                department_id = category.department_id
                break
            current = category.parent_id
        department = catalogue.departments.get(department_id or "")
        return department_id, days or (department and department.closure_expiry_days) or DEFAULT_CLOSURE_EXPIRY_DAYS

    return {
        "teams": [
            {
                "id": team,
                "department_id": department.id,
                "label_fr": department.label_fr + (f" ({team.partition(':')[2]})" if ":" in team else ""),
                "label_en": department.label_en,
                "managers": [
                    {"id": m.user_id, "name": m.name, "email": m.email, "available": m.available} for m in managers
                ],
                "per_establishment": department.per_establishment,
                "assignment_policy": department.assignment_policy,
                "escalation_enabled": department.escalation_enabled,
                "closure_expiry_days": department.closure_expiry_days,
            }
            for team, (department, managers) in catalogue.teams().items()
        ],
        "categories": [
            {
                "id": c.id, "label_fr": c.label_fr, "label_en": c.label_en, "parent_id": c.parent_id,
                "department_id": (effective := resolved(c.id))[0], "closure_expiry_days": effective[1],
            }
            for c in catalogue.categories.values()
        ],
    }


# -- assignment state ---------------------------------------------------------------------


def last_assignee(conn: Connection, team: str) -> str | None:
    row = conn.execute("SELECT last_user_id FROM routing.round_robin WHERE team = %s", (team,)).fetchone()
    return row["last_user_id"] if row else None


def remember_assignee(conn: Connection, team: str, user_id: str) -> None:
    conn.execute(
        "INSERT INTO routing.round_robin (team, last_user_id) VALUES (%s, %s)"
        " ON CONFLICT (team) DO UPDATE SET last_user_id = EXCLUDED.last_user_id",
        (team, user_id),
    )


def loads(conn: Connection, team: str) -> dict[str, int]:
    """Open tickets per assignee of a team, as routing has seen them."""
    rows = conn.execute(
        "SELECT assignee_id, count(*) AS n FROM routing.tickets"
        " WHERE open AND team = %s AND assignee_id IS NOT NULL GROUP BY assignee_id",
        (team,),
    ).fetchall()
    return {r["assignee_id"]: r["n"] for r in rows}


def track_ticket(conn: Connection, ticket: dict[str, Any], open_: bool) -> None:
    """Keep routing's view of a ticket's team, assignee and openness (newest version wins)."""
    conn.execute(
        "INSERT INTO routing.tickets (ticket_id, team, assignee_id, open, version, category_id)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (ticket_id) DO UPDATE SET team = EXCLUDED.team, assignee_id = EXCLUDED.assignee_id,"
        " open = EXCLUDED.open, version = EXCLUDED.version, category_id = EXCLUDED.category_id"
        " WHERE routing.tickets.version < EXCLUDED.version",
        (ticket["id"], ticket["department_id"], (ticket.get("assignee") or {}).get("id"), open_, ticket["version"],
         ticket.get("category_id")),
    )


def open_tickets_in(conn: Connection, category_id: str) -> int:
    """How many open tickets (as routing has seen them) are filed in the category."""
    row = conn.execute(
        "SELECT count(*) AS n FROM routing.tickets WHERE open AND category_id = %s", (category_id,)
    ).fetchone()
    return row["n"]  # type: ignore[index]  # an aggregate always gives one row


def count_tentatively(conn: Connection, ticket_id: str, team: str, user_id: str, version: int) -> None:
    """Count the ticket in ``user_id``'s load as soon as routing decides, at the version
    it decided on: the ``TicketAssigned`` event that follows (a higher version) confirms
    or corrects it."""
    conn.execute(
        "INSERT INTO routing.tickets (ticket_id, team, assignee_id, open, version) VALUES (%s, %s, %s, true, %s)"
        " ON CONFLICT (ticket_id) DO UPDATE SET team = EXCLUDED.team, assignee_id = EXCLUDED.assignee_id"
        " WHERE routing.tickets.version <= EXCLUDED.version",
        (ticket_id, team, user_id, version),
    )


def uncount_tentative(conn: Connection, ticket_id: str, user_id: str, version: int) -> None:
    """Take back a tentative count the ticket refused (unless newer events replaced it)."""
    conn.execute(
        "UPDATE routing.tickets SET assignee_id = NULL WHERE ticket_id = %s AND assignee_id = %s AND version = %s",
        (ticket_id, user_id, version),
    )


def decided_assignee(conn: Connection, event_id: str) -> str | None:
    """The assignee already chosen for the ticket this event routed, if any."""
    row = conn.execute("SELECT assignee_id FROM routing.assignment_decisions WHERE event_id = %s", (event_id,)).fetchone()
    return row["assignee_id"] if row else None


def record_decision(conn: Connection, event_id: str, ticket_id: str, team: str, user_id: str) -> None:
    conn.execute(
        "INSERT INTO routing.assignment_decisions (event_id, ticket_id, team, assignee_id) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (event_id) DO UPDATE SET team = EXCLUDED.team, assignee_id = EXCLUDED.assignee_id,"
        " decided_at = now()",
        (event_id, ticket_id, team, user_id),
    )


def first_time(conn: Connection, consumer: str, event_id: str) -> bool:
    """Record that ``consumer`` handles ``event_id``; False if it already had."""
    row = conn.execute(
        "INSERT INTO routing.processed_events (consumer, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING"
        " RETURNING 1 AS new",
        (consumer, event_id),
    ).fetchone()
    return row is not None
