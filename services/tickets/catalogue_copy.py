"""The tickets service's copy of routing's teams, managers and categories.

Routing publishes a whole snapshot on each change; the copy is replaced in one
transaction, so access rules never see half of a change, and never call routing.
"""

from __future__ import annotations

from typing import Any

import psycopg

from services.tickets.views import LABELS
from shared.catalogue_copy import replace_copy
from shared.db import Connection


def apply_snapshot(conn: Connection, snapshot: dict[str, Any]) -> bool:
    """Replace the copy with ``snapshot`` unless a newer one was applied; True if applied."""

    def fill(cur: psycopg.Cursor) -> None:
        cur.executemany(
            "INSERT INTO tickets.departments (id, label_fr, label_en) VALUES (%s, %s, %s)",
            [(t["id"], t["label_fr"], t["label_en"]) for t in snapshot["teams"]],
        )
        cur.executemany(
            "INSERT INTO tickets.department_managers (department_id, user_id, name, email)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(t["id"], m["id"], m["name"], m["email"]) for t in snapshot["teams"] for m in t["managers"]],
        )
        cur.executemany(
            "INSERT INTO tickets.categories (id, label_fr, label_en) VALUES (%s, %s, %s)",
            [(c["id"], c["label_fr"], c["label_en"]) for c in snapshot["categories"]],
        )

    replaced = replace_copy(conn, "tickets", snapshot, ("department_managers", "departments", "categories"), fill)
    if replaced:
        LABELS.forget()
    return replaced
