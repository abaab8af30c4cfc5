"""What every service keeping a copy of routing's catalogue shares: routing announces a
whole snapshot (``CatalogueChanged``) on each change, and a copy is replaced only by a
newer one, ordered by the snapshot's ``global_position`` in routing's outbox.

Each service's ``<schema>.catalogue_revision`` table holds the revision of its copy.
"""

from __future__ import annotations

import hashlib

import psycopg
from psycopg import sql


def take_if_newer(conn: psycopg.Connection, schema: str, revision: int) -> int | None:
    """Inside the caller's transaction: hold the copy's lock until it ends and, if
    ``revision`` is newer than the copy's, record it and return ``None``; else return the
    copy's revision (the caller then leaves the copy as it is).

    A lock rather than ``FOR UPDATE``: before the first snapshot there is no row to lock,
    and two first snapshots at once would both insert."""
    key = int.from_bytes(hashlib.sha256(f"catalogue-copy:{schema}".encode()).digest()[:7], "big")
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
    table = sql.Identifier(schema, "catalogue_revision")
    row = conn.execute(sql.SQL("SELECT revision FROM {} WHERE singleton").format(table)).fetchone()
    current = None if row is None else (row["revision"] if isinstance(row, dict) else row[0])
    if current is not None and current >= revision:
        return current
    conn.execute(
        sql.SQL("INSERT INTO {} (singleton, revision) VALUES (true, %s)"
                " ON CONFLICT (singleton) DO UPDATE SET revision = EXCLUDED.revision").format(table),
        (revision,),
    )
    return None


REVISION_SQL = "SELECT revision FROM {schema}.catalogue_revision WHERE singleton"
