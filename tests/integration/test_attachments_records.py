"""The attachments' metadata on the real PostgreSQL: claims (idempotent per ticket,
exclusive across tickets, even when raced), the ticket events (once each, the events
win), and the sweep (uploads never attached, pending claims settled with the tickets
service, abandoned temporary files, blobs no row uses)."""

import hashlib
import os
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import eventlet
import pytest

from services.attachments.errors import AttachmentInUse, UnknownAttachment
from services.attachments.records import CLAIM_LEASE, UNATTACHED_TTL, AttachmentRecords, Uploader
from services.attachments.storage import LocalDirectoryStore


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def records(pool, tmp_path, clock):
    with pool.connection() as conn:
        conn.execute("TRUNCATE attachments.files, attachments.processed_events")
    return AttachmentRecords(pool, LocalDirectoryStore(tmp_path), clock)


def upload(records, data: bytes = b"%PDF-1.4 facture", uploader: str = "alice") -> dict:
    writer = records.store.writer()
    writer.write(data)
    return records.add(writer, uploader=Uploader(uploader), filename="facture.pdf", content_type="application/pdf")


def test_a_claim_is_idempotent_per_ticket_and_exclusive_across_tickets(records):
    row, ticket, other = upload(records), str(uuid4()), str(uuid4())
    first = records.claim("alice", str(row["id"]), ticket)
    assert first["claimed_now"] and first["filename"] == "facture.pdf" and first["size"] == 16
    assert not records.claim("alice", str(row["id"]), ticket)["claimed_now"]
    with pytest.raises(AttachmentInUse) as in_use:
        records.claim("alice", str(row["id"]), other)
    assert in_use.value.ticket_id == ticket and not in_use.value.stale
    with pytest.raises(UnknownAttachment):
        records.claim("bob", str(row["id"]), ticket)  # not bob's
    for bad in ("nope", str(uuid4())):
        with pytest.raises(UnknownAttachment):
            records.claim("alice", bad, ticket)


def test_raced_claims_for_two_tickets_one_wins(records):
    rows = [upload(records, f"%PDF-1.4 n°{i}".encode()) for i in range(10)]
    for row in rows:
        tickets = [str(uuid4()) for _ in range(4)]

        def claim(ticket, attachment=str(row["id"])):
            try:
                return records.claim("alice", attachment, ticket)["claimed_now"]
            except AttachmentInUse:
                return False

        pool = eventlet.GreenPool()
        assert sorted(pool.imap(claim, tickets)) == [False, False, False, True]


def test_a_stale_pending_claim_may_be_taken_over(records, clock):
    row, crashed, retry = upload(records), str(uuid4()), str(uuid4())
    records.claim("alice", str(row["id"]), crashed)
    clock.advance(CLAIM_LEASE + timedelta(seconds=1))
    with pytest.raises(AttachmentInUse) as in_use:
        records.claim("alice", str(row["id"]), retry)
    assert in_use.value.stale
    assert records.claim("alice", str(row["id"]), retry, take_over_from=crashed)["claimed_now"]
    # Once attached, never again.
    records.on_added(str(uuid4()), retry, str(row["id"]), "public", clock())
    clock.advance(CLAIM_LEASE * 10)
    with pytest.raises(AttachmentInUse):
        records.claim("alice", str(row["id"]), crashed, take_over_from=retry)


def test_release_gives_up_only_a_pending_claim(records, clock):
    row, ticket = upload(records), str(uuid4())
    records.claim("alice", str(row["id"]), ticket)
    assert not records.release("bob", str(row["id"]), ticket)
    assert records.release("alice", str(row["id"]), ticket)
    assert records.get(row["id"])["ticket_id"] is None
    records.claim("alice", str(row["id"]), ticket)
    records.on_added(str(uuid4()), ticket, str(row["id"]), "internal", clock())
    assert not records.release("alice", str(row["id"]), ticket)
    assert records.get(row["id"])["visibility"] == "internal"


def test_events_are_handled_once_and_win_over_a_released_claim(records, clock):
    row, ticket = upload(records), str(uuid4())
    event = str(uuid4())
    records.on_added(event, ticket, str(row["id"]), "public", clock())  # no claim: the event is the truth
    stored = records.get(row["id"])
    assert str(stored["ticket_id"]) == ticket and stored["attached_at"] is not None
    removal = str(uuid4())
    records.on_removed(removal, ticket, str(row["id"]), clock())
    removed_at = records.get(row["id"])["removed_at"]
    assert removed_at is not None and not records.store.exists(row["sha256"])
    records.on_added(event, ticket, str(row["id"]), "public", clock())  # redelivered: nothing happens
    records.on_removed(removal, ticket, str(row["id"]), clock() + timedelta(hours=1))
    assert records.get(row["id"])["removed_at"] == removed_at
    with pytest.raises(UnknownAttachment):
        records.claim("alice", str(row["id"]), ticket)  # removed files do not come back


def test_the_sweep(records, clock):
    forgotten = upload(records, b"forgotten")
    attached = upload(records, b"attached")
    upload(records, b"attached", uploader="bob")  # same bytes as an attached file
    landed, lost, unanswered = (upload(records, f"pending {i}".encode()) for i in range(3))
    tickets = {name: str(uuid4()) for name in ("attached", "landed", "lost", "unanswered")}
    records.claim("alice", str(attached["id"]), tickets["attached"])
    records.on_added(str(uuid4()), tickets["attached"], str(attached["id"]), "public", clock())
    for name, row in (("landed", landed), ("lost", lost), ("unanswered", unanswered)):
        records.claim("alice", str(row["id"]), tickets[name])
    young = upload(records, b"young")
    abandoned = records.store.tmp_dir / "upload-abandoned.part"
    abandoned.write_bytes(b"half an upload")
    orphan = records.store.path(hashlib.sha256(b"orphan").hexdigest())
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"orphan")
    old = (clock() - timedelta(hours=2)).timestamp()
    os.utime(abandoned, (old, old))
    os.utime(orphan, (old, old))

    asked = []

    def is_attached(ticket_id, attachment_id):
        asked.append(attachment_id)
        return {str(landed["id"]): True, str(lost["id"]): False}.get(attachment_id)

    assert records.sweep(is_attached)["uploads"] == 0  # nothing is 24 hours old yet
    assert abandoned.exists() is False and orphan.exists() is False  # those only needed an hour
    clock.advance(UNATTACHED_TTL + timedelta(minutes=1))
    with records.pool.connection() as conn:
        conn.execute("UPDATE attachments.files SET created_at = %s WHERE id = %s", (clock(), young["id"]))
    counts = records.sweep(is_attached)
    assert counts["uploads"] == 3 and counts["confirmed"] == 1  # forgotten, twin, lost; landed confirmed
    assert sorted(asked) == sorted(str(r["id"]) for r in (landed, lost, unanswered))
    remaining = {r["id"] for r in (attached, landed, unanswered, young)}
    with records.pool.connection() as conn:
        assert {r["id"] for r in conn.execute("SELECT id FROM attachments.files").fetchall()} == remaining
    assert records.store.exists(attached["sha256"])  # twin's bytes: still the attached file's
    assert not records.store.exists(forgotten["sha256"]) and not records.store.exists(lost["sha256"])
    assert records.get(landed["id"])["attached_at"] is not None
