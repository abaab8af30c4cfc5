"""A small, versioned migration runner for PostgreSQL schemas.

Each service keeps numbered SQL files (``0001_event_store.sql`` ...) in its
``migrations`` folder and owns one schema. Applied files are recorded with a checksum
in ``<schema>.schema_migrations``; a file edited after it was applied is an error, not
a silent divergence. Each file runs in its own transaction, and an advisory lock keeps
two replicas starting at once from applying the same file twice.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from shared.db import Connection

FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """A migration folder or history that cannot be applied safely."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def discover(directory: Path) -> list[Migration]:
    """The migrations of a folder, in version order; unexpected names are refused."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: name must look like 0001_what_it_does.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a version number")
    return found


def migrate(conn: Connection, schema: str, directory: Path) -> list[Migration]:
    """Apply the pending migrations of ``directory`` to ``schema``; returns those applied."""
    migrations = discover(directory)
    table = sql.Identifier(schema, "schema_migrations")
    lock_key = int.from_bytes(hashlib.sha256(f"migrate:{schema}".encode()).digest()[:7], "big")
    applied_now: list[Migration] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(table)
        )
        rows = conn.execute(sql.SQL("SELECT version, name, checksum FROM {}").format(table)).fetchall()
        applied = {_value(row, "version", 0): _value(row, "checksum", 2) for row in rows}
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"{migration.path}: changed after it was applied to schema {schema};"
                        " write a new migration instead"
                    )
                continue
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
                conn.execute(migration.text.encode())
                conn.execute(
                    sql.SQL("INSERT INTO {} (version, name, checksum) VALUES (%s, %s, %s)").format(table),
                    (migration.version, migration.name, migration.checksum),
                )
            applied_now.append(migration)
    return applied_now


def _value(row: object, key: str, index: int) -> object:
    return row[key] if isinstance(row, dict) else row[index]  # type: ignore[index]
