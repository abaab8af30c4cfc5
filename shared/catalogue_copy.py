"""What every service keeping a copy of routing's catalogue shares: routing announces a
whole snapshot (``CatalogueChanged``) on each change, and a copy is replaced only by a
newer one, ordered by the snapshot's ``global_position`` in routing's outbox.

Each service's ``<schema>.catalogue_revision`` table holds the revision of its copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
import structlog
from psycopg import sql

from shared.db import Connection

log = structlog.stdlib.get_logger("guichet.catalogue_copy")


def take_if_newer(conn: Connection, schema: str, revision: int) -> int | None:
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


def replace_copy(conn: Connection, schema: str, snapshot: dict[str, Any], tables: Iterable[str],
                 fill: Callable[[psycopg.Cursor[Any]], None]) -> bool:
    """Replace a service's copy with routing's ``snapshot`` in one transaction, unless a
    newer one was applied: empty ``tables`` (of ``schema``, in that order), then ``fill``
    them with the cursor given. True if replaced."""
    revision = snapshot["global_position"]
    with conn.transaction():
        current = take_if_newer(conn, schema, revision)
        if current is not None:
            log.info("older catalogue snapshot ignored", schema=schema, revision=revision, current=current)
            return False
        for table in tables:
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(schema, table)))
        with conn.cursor() as cur:
            fill(cur)
    log.info("catalogue copy replaced", schema=schema, revision=revision, teams=len(snapshot["teams"]),
             categories=len(snapshot.get("categories", [])))
    return True


REVISION_SQL = "SELECT revision FROM {schema}.catalogue_revision WHERE singleton"
