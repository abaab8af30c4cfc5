"""The attachments' metadata (schema ``attachments``) and the rules of their life:
uploaded, claimed by a ticket, attached, removed, or swept away unattached.

Blob and row change together under a per-blob PostgreSQL advisory lock, so a blob is
never deleted while an upload of the same bytes is recording its row, and never left
without the row that needs it: an upload renames its blob into place and inserts its
row under the lock; a removal deletes or marks its row, then deletes the blob only if
no other live row uses it, under the same lock. What a crash can leave behind (a blob
with no row, a temporary file) is harmless and swept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import structlog

from services.attachments.errors import AttachmentInUse, UnknownAttachment
from services.attachments.storage import BlobStore, BlobWriter
from shared.db import Connection

log = structlog.stdlib.get_logger("guichet.attachments")

UNATTACHED_TTL = timedelta(hours=24)  # an upload nobody attached is removed after this
CLAIM_LEASE = timedelta(minutes=2)  # a pending claim older than this may be taken over
ORPHAN_AGE = timedelta(hours=1)  # temporary files and row-less blobs older than this go
CONSUMER = "attachments"

COLUMNS = ("id, uploader_id, uploader_name, filename, size, content_type, sha256, created_at,"
           " ticket_id, claimed_at, attached_at, visibility, removed_at")


@dataclass(frozen=True)
class Uploader:
    id: str
    name: str | None = None


def public(row: dict[str, Any]) -> dict[str, Any]:
    """What an upload's answer shows (API.md, Attachments)."""
    return {"id": str(row["id"]), "filename": row["filename"], "size": row["size"],
            "content_type": row["content_type"], "sha256": row["sha256"]}


def as_uuid(value: object) -> UUID | None:
    if not isinstance(value, str | UUID):
        return None
    try:
        return value if isinstance(value, UUID) else UUID(value)
    except ValueError:
        return None


def _lock_key(sha256: str) -> int:
    return int.from_bytes(hashlib.sha256(f"attachments-blob:{sha256}".encode()).digest()[:7], "big")


class AttachmentRecords:
    """The metadata store, with the blob store it keeps in step."""

    def __init__(self, pool: Any, store: BlobStore, clock: Callable[[], datetime]) -> None:
        self.pool = pool
        self.store = store
        self.clock = clock

    # -- the blob lock

    @contextmanager
    def _blob_lock(self, conn: Connection, sha256: str) -> Iterator[None]:
        key = _lock_key(sha256)
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def _drop_blob_if_unused(self, conn: Connection, sha256: str) -> bool:
        """Delete the blob unless a live row uses it; the caller holds the blob lock."""
        used = conn.execute(
            "SELECT 1 FROM attachments.files WHERE sha256 = %s AND removed_at IS NULL LIMIT 1", (sha256,)
        ).fetchone()
        if used:
            return False
        self.store.delete(sha256)
        log.info("blob deleted", sha256=sha256)
        return True

    # -- upload and read

    def add(self, writer: BlobWriter, *, uploader: Uploader, filename: str, content_type: str) -> dict[str, Any]:
        """Keep the bytes ``writer`` received and record them as a new upload."""
        sha256 = writer.sha256()
        with self.pool.connection() as conn, self._blob_lock(conn, sha256):
            self.store.keep(writer)
            try:
                row = conn.execute(
                    f"INSERT INTO attachments.files (id, uploader_id, uploader_name, filename, size, content_type,"
                    f" sha256, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {COLUMNS}",
                    (uuid4(), uploader.id, uploader.name, filename, writer.size, content_type, sha256, self.clock()),
                ).fetchone()
            except BaseException:
                self._drop_blob_if_unused(conn, sha256)
                raise
        return row

    def get(self, attachment_id: object) -> dict[str, Any] | None:
        key = as_uuid(attachment_id)
        if key is None:
            return None
        with self.pool.connection() as conn:
            return conn.execute(f"SELECT {COLUMNS} FROM attachments.files WHERE id = %s", (key,)).fetchone()

    # -- joining tickets

    def claim(self, uploader_id: str, attachment_id: str, ticket_id: str, visibility: str = "public",
              take_over_from: str | None = None) -> dict[str, Any]:
        """Reserve an upload for a ticket before the tickets service records it there.

        Idempotent per ticket: claiming again for the same ticket renews the claim and
        answers the same (``claimed_now`` False). Only the uploader may claim; an upload attached (or pending)
        elsewhere is ``AttachmentInUse``, unless ``take_over_from`` names that ticket and
        its claim is pending and stale (the caller checked the file is not on it).
        """
        key, ticket = as_uuid(attachment_id), as_uuid(ticket_id)
        if key is None or ticket is None:
            raise UnknownAttachment(str(attachment_id))
        now = self.clock()
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                f"SELECT {COLUMNS} FROM attachments.files WHERE id = %s FOR UPDATE", (key,)
            ).fetchone()
            if row is None or row["uploader_id"] != uploader_id or row["removed_at"] is not None:
                raise UnknownAttachment(str(attachment_id))
            current = row["ticket_id"]
            if current is None and row["created_at"] < now - UNATTACHED_TTL:
                raise UnknownAttachment(str(attachment_id))  # expired, about to be swept
            if current is not None and current != ticket:
                stale = row["attached_at"] is None and row["claimed_at"] < now - CLAIM_LEASE
                if not (stale and take_over_from is not None and as_uuid(take_over_from) == current):
                    raise AttachmentInUse(str(attachment_id), str(current), stale)
                log.warning("stale claim taken over", attachment_id=str(key), from_ticket=str(current))
            claimed_now = current != ticket
            if row["attached_at"] is None:
                conn.execute(
                    "UPDATE attachments.files SET ticket_id = %s, claimed_at = %s, visibility = %s WHERE id = %s",
                    (ticket, now, visibility, key),
                )
        log.info("attachment claimed", attachment_id=str(key), ticket_id=str(ticket), claimed_now=claimed_now)
        return {**public(row), "claimed_now": claimed_now}

    def release(self, uploader_id: str, attachment_id: str, ticket_id: str) -> bool:
        """Give up a pending claim (the tickets service refused to attach the file)."""
        key, ticket = as_uuid(attachment_id), as_uuid(ticket_id)
        if key is None or ticket is None:
            return False
        with self.pool.connection() as conn:
            row = conn.execute(
                "UPDATE attachments.files SET ticket_id = NULL, claimed_at = NULL, visibility = NULL"
                " WHERE id = %s AND uploader_id = %s AND ticket_id = %s AND attached_at IS NULL RETURNING id",
                (key, uploader_id, ticket),
            ).fetchone()
        if row:
            log.info("claim released", attachment_id=str(key), ticket_id=str(ticket))
        return row is not None

    # -- what the ticket events say (idempotent: processed_events in the same transaction)

    def on_added(self, event_id: str, ticket_id: str, attachment_id: str, visibility: str, at: datetime) -> None:
        key = as_uuid(attachment_id)
        with self.pool.connection() as conn, conn.transaction():
            if not _first_time(conn, event_id) or key is None or as_uuid(ticket_id) is None:
                return
            row = conn.execute(
                "SELECT ticket_id, attached_at FROM attachments.files WHERE id = %s FOR UPDATE", (key,)
            ).fetchone()
            if row is None:
                log.warning("a ticket names an attachment this service does not know", attachment_id=attachment_id)
                return
            if row["attached_at"] is not None and str(row["ticket_id"]) != ticket_id:
                log.error("attachment recorded on two tickets", attachment_id=attachment_id,
                          kept=str(row["ticket_id"]), also=ticket_id)
                return
            conn.execute(
                "UPDATE attachments.files SET ticket_id = %s, claimed_at = coalesce(claimed_at, %s),"
                " attached_at = coalesce(attached_at, %s), visibility = %s WHERE id = %s",
                (ticket_id, at, at, visibility, key),
            )
        log.info("attachment confirmed on its ticket", attachment_id=attachment_id)

    def on_removed(self, event_id: str, ticket_id: str, attachment_id: str, at: datetime) -> None:
        key = as_uuid(attachment_id)
        with self.pool.connection() as conn:
            with conn.transaction():
                if not _first_time(conn, event_id) or key is None or as_uuid(ticket_id) is None:
                    return
                row = conn.execute(
                    "UPDATE attachments.files SET removed_at = %s"
                    " WHERE id = %s AND ticket_id = %s AND removed_at IS NULL RETURNING sha256",
                    (at, key, ticket_id),
                ).fetchone()
            if row is None:
                return
            log.info("attachment removed from its ticket", attachment_id=attachment_id)
            # After the commit: a crash here leaves an unused blob, which the sweep removes.
            with self._blob_lock(conn, row["sha256"]):
                self._drop_blob_if_unused(conn, row["sha256"])

    # -- the sweep

    def sweep(self, attached: Callable[[str, str], bool | None], batch: int = 200) -> dict[str, int]:
        """Remove uploads never attached within ``UNATTACHED_TTL``, abandoned temporary
        files and blobs no row uses.

        ``attached(ticket_id, attachment_id)`` asks the tickets service about a pending
        claim past its lease (True: confirm it; False: the claim never made it; None: no
        answer now, try next time).
        """
        now = self.clock()
        counts = {"uploads": 0, "confirmed": 0, "temporary": 0, "orphans": 0}
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT id, sha256, ticket_id, claimed_at FROM attachments.files"
                " WHERE attached_at IS NULL AND removed_at IS NULL AND created_at < %s ORDER BY created_at LIMIT %s",
                (now - UNATTACHED_TTL, batch),
            ).fetchall()
        for row in rows:
            if row["ticket_id"] is not None:
                if row["claimed_at"] >= now - CLAIM_LEASE:
                    continue  # being attached right now
                verdict = attached(str(row["ticket_id"]), str(row["id"]))
                if verdict is None:
                    continue
                if verdict:
                    with self.pool.connection() as conn:
                        conn.execute("UPDATE attachments.files SET attached_at = %s WHERE id = %s AND attached_at IS NULL",
                                     (now, row["id"]))
                    counts["confirmed"] += 1
                    continue
            if self._delete_unattached(row):
                counts["uploads"] += 1
        counts["temporary"] = self.store.sweep_temporary(now - ORPHAN_AGE)
        counts["orphans"] = self._sweep_orphans(now - ORPHAN_AGE)
        if any(counts.values()):
            log.info("attachments swept", **counts)
        return counts

    def _delete_unattached(self, row: dict[str, Any]) -> bool:
        with self.pool.connection() as conn, self._blob_lock(conn, row["sha256"]):
            # Only if nothing changed since it was read (no claim renewed, nothing attached).
            deleted = conn.execute(
                "DELETE FROM attachments.files WHERE id = %s AND attached_at IS NULL AND removed_at IS NULL"
                " AND ticket_id IS NOT DISTINCT FROM %s AND claimed_at IS NOT DISTINCT FROM %s RETURNING id",
                (row["id"], row["ticket_id"], row["claimed_at"]),
            ).fetchone()
            if deleted:
                log.info("unattached upload removed", attachment_id=str(row["id"]))
                self._drop_blob_if_unused(conn, row["sha256"])
        return deleted is not None

    def _sweep_orphans(self, older_than: datetime) -> int:
        candidates = [sha for sha, mtime in self.store.blobs() if mtime < older_than]
        removed = 0
        with self.pool.connection() as conn:
            for start in range(0, len(candidates), 500):
                chunk = candidates[start:start + 500]
                used = {r["sha256"] for r in conn.execute(
                    "SELECT DISTINCT sha256 FROM attachments.files WHERE sha256 = ANY(%s) AND removed_at IS NULL",
                    (chunk,),
                ).fetchall()}
                for sha in chunk:
                    if sha not in used:
                        with self._blob_lock(conn, sha):
                            removed += self._drop_blob_if_unused(conn, sha)
        return removed


def _first_time(conn: Connection, event_id: str) -> bool:
    row = conn.execute(
        "INSERT INTO attachments.processed_events (consumer, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING"
        " RETURNING 1 AS new",
        (CONSUMER, event_id),
    ).fetchone()
    return row is not None
