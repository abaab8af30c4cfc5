"""The sender's record of an attempt cut short (the sender died between handing an email
over and recording it): the next attempt warns, is numbered after it, and both stay;
and a burst sent over several SMTP connections at once, each email once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime

import eventlet
import pytest

from services.notifier import storage
from services.notifier.sender import MailSender, smtp_connections, transport_for
from shared import db
from tests.helpers import Inbox, SmtpServer, free_port, wait_until

NOTIFIER_EMAIL_TABLES = "notifier.delivery_attempts, notifier.emails"


class Accepting:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, sender: str, recipient: str, message_id: str, raw: bytes) -> None:
        self.sent.append(message_id)

    def close(self) -> None:
        pass


def test_an_attempt_cut_short_keeps_its_row_and_the_next_one_follows_it(pool, database_url):
    with pool.connection() as conn:
        conn.execute(f"TRUNCATE {NOTIFIER_EMAIL_TABLES}")
        email = storage.QueuedEmail(
            event_id="7f0c5a1e-0000-4000-8000-000000000001", recipient_id="alice",
            ticket_id="7f0c5a1e-0000-4000-8000-0000000000aa", ticket_number=1000,
            event_type="TicketSubmitted", occurred_at=datetime.now(UTC),
            to_address="alice@univ.example", message_id="<m1@guichet>", raw=b"Subject: x\r\n\r\nx\r\n",
        )
        assert storage.queue_emails(conn, [email]) == 1
        assert storage.queue_emails(conn, [email]) == 0  # its key is taken: not queued twice
        email_id = conn.execute("SELECT id FROM notifier.emails").fetchone()["id"]
        # What a sender killed after the SMTP server's 250 leaves: an attempt never finished,
        # and the email still pending with no attempt counted (its transaction rolled back).
        conn.execute("INSERT INTO notifier.delivery_attempts (email_id, attempt) VALUES (%s, 1)", (email_id,))
    transport = Accepting()
    sender = MailSender(database_url, transport, "Guichet <noreply@univ.example>")
    with db.connect(database_url, autocommit=True) as conn, db.connect(database_url, autocommit=True) as log_conn:
        assert sender.deliver_due(conn, log_conn) == 1
    assert transport.sent == ["<m1@guichet>"]
    with pool.connection() as conn:
        attempts = conn.execute("SELECT attempt, outcome, error, finished_at IS NOT NULL AS finished"
                                " FROM notifier.delivery_attempts ORDER BY attempt").fetchall()
        email = conn.execute("SELECT status, attempts FROM notifier.emails").fetchone()
    assert [(a["attempt"], a["outcome"], a["error"], a["finished"]) for a in attempts] == [
        (1, None, "cut short", True), (2, "sent", None, True)]
    assert (email["status"], email["attempts"]) == ("sent", 2)


class SlowInbox(Inbox):
    """An SMTP server that takes a moment per message, and counts how many sessions
    hand it a message at the same time."""

    def __init__(self) -> None:
        super().__init__()
        self.at_once = 0
        self.most_at_once = 0

    async def handle_DATA(self, server, session, envelope):
        self.at_once += 1
        self.most_at_once = max(self.most_at_once, self.at_once)
        try:
            await asyncio.sleep(0.02)
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.at_once -= 1


def queue(conn, count: int) -> set[str]:
    emails = [storage.QueuedEmail(
        event_id=str(uuid.uuid4()), recipient_id=f"user{n}", ticket_id=str(uuid.uuid4()), ticket_number=1000 + n,
        event_type="TicketSubmitted", occurred_at=datetime.now(UTC), to_address=f"user{n}@univ.example",
        message_id=f"<burst-{n}@guichet>",
        raw=f"Message-ID: <burst-{n}@guichet>\r\nSubject: n{n}\r\n\r\nx\r\n".encode(),
    ) for n in range(count)]
    assert storage.queue_emails(conn, emails) == count
    return {e.message_id for e in emails}


def test_several_smtp_connections_send_a_burst_each_email_once(pool, database_url):
    with pool.connection() as conn:
        conn.execute(f"TRUNCATE {NOTIFIER_EMAIL_TABLES}")
        queued = queue(conn, 120)
    server = SmtpServer(free_port())
    server.inbox = SlowInbox()
    server.start()
    sender = MailSender(database_url, transport_for(f"smtp://127.0.0.1:{server.port}", "unused"),
                        "Guichet <noreply@univ.example>", poll_interval=0.2, connections=4)
    assert sender.connections == 4
    loop = eventlet.spawn(sender.run)
    try:
        wait_until(lambda: len(server.inbox.messages) >= len(queued), timeout=60, what="every email sent")
        with pool.connection() as conn:
            wait_until(lambda: conn.execute("SELECT count(*) AS n FROM notifier.emails WHERE status = 'sent'")
                       .fetchone()["n"] == len(queued), what="every email marked sent")
        eventlet.sleep(0.5)  # time for a duplicate to show, were there one
    finally:
        sender.stop()
        loop.kill()
        server.stop()
    received = Counter(server.inbox.ids())
    assert set(received) == queued and set(received.values()) == {1}  # all of them, each once
    assert server.inbox.most_at_once >= 2  # sent side by side, not one after the other


def test_smtp_connections_is_read_from_the_environment():
    assert smtp_connections({}) == 4
    assert smtp_connections({"SMTP_CONNECTIONS": "8"}) == 8
    for bad in ("0", "many", "1000"):
        with pytest.raises(ValueError, match="SMTP_CONNECTIONS"):
            smtp_connections({"SMTP_CONNECTIONS": bad})
