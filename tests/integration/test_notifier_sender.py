"""The sender's record of an attempt cut short (the sender died between handing an email
over and recording it): the next attempt warns, is numbered after it, and both stay."""

from __future__ import annotations

from datetime import UTC, datetime

from services.notifier import storage
from services.notifier.sender import MailSender
from shared import db

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
