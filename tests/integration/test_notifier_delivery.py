"""The notifier through the real broker, PostgreSQL and an SMTP server (aiosmtpd) started
here: events published as the tickets service's outbox relay publishes them, emails
delivered exactly once through outages, duplicates and poison messages."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from itertools import count

import kombu
import pytest
from nameko.testing.services import entrypoint_waiter

from services.notifier.service import NotifierService
from shared.consumer import dead_letter_queue, ticket_events_queue
from shared.events import EXCHANGE, SCHEMA_VERSIONS
from shared.outbox import event_exchange
from tests.helpers import SmtpServer, free_port, wait_until

NOTIFIER_TABLES = (
    "notifier.processed_events, notifier.ticket_facts, notifier.people, notifier.team_managers, notifier.teams,"
    " notifier.categories, notifier.catalogue_revision, notifier.feed_entries, notifier.delivery_attempts,"
    " notifier.emails, notifier.preferences"
)
PUBLIC_URL = "https://guichet.test"
ALICE = {"id": "alice", "name": "Alice Martin", "email": "alice@univ.example"}
MARC = {"id": "marc", "name": "Marc Leroy", "email": "marc@univ.example"}
INES = {"id": "ines", "name": "Inès Petit", "email": "ines@univ.example"}
SNAPSHOT = {
    "teams": [
        {"id": "dnum-ent", "department_id": "dnum-ent", "label_fr": "DNUM - ENT", "label_en": "IT - ENT",
         "managers": [{"id": u, "name": u.title(), "email": f"{u}@univ.example", "available": True}
                      for u in ("marc", "mona", "max")]},
    ],
    "categories": [{"id": "ent-connexion", "label_fr": "Connexion à l'ENT", "label_en": "ENT login"}],
}
_positions = count(1)


@pytest.fixture
def smtp():
    server = SmtpServer(free_port())
    yield server
    server.stop()


@pytest.fixture
def notifier_db(pool):
    with pool.connection() as conn:
        conn.execute(f"TRUNCATE {NOTIFIER_TABLES}")
    return pool


def notifier_config(broker_uri, database_url, **extra):
    return {"AMQP_URI": broker_uri, "DATABASE_URL": database_url, "HTTP_ADDRESSES": {"notifier": "127.0.0.1:0"},
            "PUBLIC_URL": PUBLIC_URL, "NOTIFIER_POLL_INTERVAL": 0.5, "NOTIFIER_RETRY_BASE": 0.1,
            "NOTIFIER_RETRY_MAX": 0.4, **extra}


def publish(broker_uri, body, routing_key, exchange=EXCHANGE, **properties):
    with kombu.Connection(broker_uri) as conn:
        producer = conn.Producer()
        options = {"serializer": "json"} if not isinstance(body, bytes) else {}
        producer.publish(body, exchange=event_exchange(exchange), routing_key=routing_key, delivery_mode=2,
                         declare=[event_exchange(exchange)], **options, **properties)


def publish_snapshot(broker_uri, pool, snapshot=SNAPSHOT):
    """As routing's relay does: the snapshot with its outbox position, on routing.events."""
    publish(broker_uri, {**snapshot, "global_position": next(_positions) + int(time.time())}, "CatalogueChanged",
            exchange="routing.events")

    def copied():
        with pool.connection() as conn:
            return conn.execute("SELECT count(*) AS n FROM notifier.teams").fetchone()["n"] == len(snapshot["teams"])

    wait_until(copied, what="the notifier's copy of the teams")


class Ticket:
    """Builds event envelopes for one ticket, as the tickets service's outbox does."""

    def __init__(self, requester=ALICE, number=53350, subject="Connexion impossible") -> None:
        self.id = str(uuid.uuid4())
        self.version = 0
        self.summary = {"id": self.id, "number": number, "subject": subject, "status": "FREE",
                        "category_id": "ent-connexion", "department_id": "dnum-ent", "establishment": "0540001A",
                        "requester": requester, "assignee": None, "escalation": "none", "version": 0}

    def event(self, event_type, data, actor=ALICE, **summary):
        self.version += 1
        self.summary = {**self.summary, **summary, "version": self.version}
        return {
            "event_id": str(uuid.uuid4()), "event_type": event_type, "schema_version": SCHEMA_VERSIONS[event_type],
            "stream_id": f"ticket-{self.id}", "stream_version": self.version, "global_position": next(_positions),
            "occurred_at": datetime.now(UTC).isoformat(),
            "actor": {"id": actor["id"], "name": actor["name"], "kind": "user"},
            "correlation_id": str(uuid.uuid4()), "causation_id": None, "data": data, "ticket": dict(self.summary),
        }

    def submitted(self):
        s = self.summary
        return self.event("TicketSubmitted", {
            "ticket_id": self.id, "number": s["number"], "subject": s["subject"], "description": "Écran blanc.",
            "phone": None, "priority": 3, "category_id": "ent-connexion", "establishment": "0540001A",
            "requester": s["requester"]})


def emails(pool, **where):
    clause = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    with pool.connection() as conn:
        return conn.execute(f"SELECT * FROM notifier.emails WHERE {clause} ORDER BY id", where).fetchall()


def handled(container, expected: int):
    """Wait (as a context manager) until ``expected`` ticket events have been handled."""
    done = count(1)
    return entrypoint_waiter(container, "on_ticket_event", timeout=20,
                             callback=lambda worker_ctx, result, exc_info: next(done) >= expected)


def test_the_same_event_twice_gives_one_email_and_one_feed_entry(container_factory, broker_uri, database_url,
                                                                   notifier_db, smtp):
    smtp.start()
    container = container_factory(NotifierService, notifier_config(broker_uri, database_url,
                                                                   SMTP_URL=f"smtp://127.0.0.1:{smtp.port}"))
    container.start()
    ticket = Ticket()
    submitted = ticket.submitted()
    with handled(container, 2):
        publish(broker_uri, submitted, "TicketSubmitted")
        publish(broker_uri, submitted, "TicketSubmitted")
    wait_until(lambda: all(e["status"] == "sent" for e in emails(notifier_db)), what="the email sent")
    with notifier_db.connection() as conn:
        feed = conn.execute("SELECT user_id FROM notifier.feed_entries").fetchall()
    assert [f["user_id"] for f in feed] == ["alice"]
    assert smtp.inbox.ids() == [f"<ticket-{ticket.id}@guichet>"]
    assert len(emails(notifier_db)) == 1


def test_smtp_down_then_up_every_email_arrives_exactly_once(container_factory, broker_uri, database_url,
                                                            notifier_db, smtp):
    container = container_factory(NotifierService, notifier_config(broker_uri, database_url,
                                                                   SMTP_URL=f"smtp://127.0.0.1:{smtp.port}"))
    container.start()
    publish_snapshot(broker_uri, notifier_db)
    tickets = [Ticket(number=n) for n in (1, 2, 3)]
    with handled(container, 6):
        for ticket in tickets:
            publish(broker_uri, ticket.submitted(), "TicketSubmitted")  # alice
            publish(broker_uri, ticket.event("TicketRouted", {"department_id": "dnum-ent",
                                                              "previous_department_id": None},
                                             actor={"id": "system:routing", "name": "routing"}), "TicketRouted")
    queued = emails(notifier_db)
    assert len(queued) == 3 * 4  # alice, then marc, mona and max
    # the server is down: every email is tried, and tried again
    wait_until(lambda: all(e["attempts"] >= 2 and e["status"] == "pending" for e in emails(notifier_db)),
               what="retries while the server is down")
    assert "ConnectionRefusedError" in emails(notifier_db)[0]["last_error"]
    smtp.inbox.temporary_failures = 2  # then it answers 451 twice before accepting
    smtp.start()
    wait_until(lambda: all(e["status"] == "sent" for e in emails(notifier_db)), what="every email sent")
    ids = smtp.inbox.ids()
    assert sorted(ids) == sorted(e["message_id"] for e in emails(notifier_db))
    assert len(ids) == len(set(ids)) == 12
    with notifier_db.connection() as conn:
        outcomes = conn.execute("SELECT outcome, count(*) AS n FROM notifier.delivery_attempts GROUP BY outcome"
                                ).fetchall()
    counts = {r["outcome"]: r["n"] for r in outcomes}
    assert counts["sent"] == 12 and counts["retry"] >= 24 + 2 and "failed" not in counts
    assert all(e["sent_at"] >= e["queued_at"] for e in emails(notifier_db))


def test_a_5xx_answer_is_final_and_kept(container_factory, broker_uri, database_url, notifier_db, smtp):
    smtp.inbox.refused["alice@univ.example"] = "550 5.1.1 <alice@univ.example>: no such user"
    smtp.start()
    container = container_factory(NotifierService, notifier_config(broker_uri, database_url,
                                                                   SMTP_URL=f"smtp://127.0.0.1:{smtp.port}"))
    container.start()
    ticket = Ticket()
    publish(broker_uri, ticket.submitted(), "TicketSubmitted")
    [email] = wait_until(lambda: [e for e in emails(notifier_db) if e["status"] == "failed"], what="a failed email")
    assert email["attempts"] == 1 and email["last_error"].startswith("550 5.1.1") and email["sent_at"] is None
    assert smtp.inbox.messages == []


def test_a_poison_message_goes_to_the_dead_letter_queue_and_the_next_events_are_handled(
        container_factory, broker_uri, database_url, notifier_db, smtp):
    smtp.start()
    container = container_factory(NotifierService, notifier_config(broker_uri, database_url,
                                                                   SMTP_URL=f"smtp://127.0.0.1:{smtp.port}"))
    container.start()
    unknown = {**Ticket().submitted(), "event_type": "TicketTeleported"}
    invalid = Ticket().submitted()
    invalid["data"]["priority"] = 9
    publish(broker_uri, b"{not json", "TicketSubmitted", content_type="application/json", content_encoding="utf-8")
    publish(broker_uri, unknown, "TicketTeleported")
    publish(broker_uri, invalid, "TicketSubmitted")
    good = Ticket()
    publish(broker_uri, good.submitted(), "TicketSubmitted")
    wait_until(lambda: [e for e in emails(notifier_db, ticket_id=good.id) if e["status"] == "sent"],
               what="the event after the poison handled")

    dead = []

    def drained():
        with kombu.Connection(broker_uri) as conn:
            channel = conn.default_channel
            while (message := channel.basic_get(dead_letter_queue("notifier").name, no_ack=True)) is not None:
                dead.append(message)
        return len(dead) >= 3

    wait_until(drained, what="three dead letters")
    errors = {m.headers["x-original-routing-key"] + ": " + m.headers["x-guichet-error"] for m in dead}
    assert any(e.startswith("TicketTeleported: unknown event type") for e in errors), errors
    assert any("priority" in e for e in errors), errors
    assert any(m.body in (b"{not json", "{not json") for m in dead), [m.body for m in dead]
    assert all(m.headers["x-guichet-consumer"] == "notifier" for m in dead)
    assert emails(notifier_db, ticket_id=invalid["ticket"]["id"]) == []


def test_the_queue_dead_letters_what_it_rejects():
    queue = ticket_events_queue("notifier")
    assert queue.queue_arguments == {"x-dead-letter-exchange": "notifier.dead-letters"} and queue.durable


def test_without_smtp_emails_are_written_as_eml_files(container_factory, broker_uri, database_url, notifier_db,
                                                      tmp_path):
    container = container_factory(NotifierService, notifier_config(broker_uri, database_url, SMTP_URL="",
                                                                   MAIL_DIR=str(tmp_path / "mail")))
    container.start()
    ticket = Ticket(subject="<b>Imprimante</b> & scanner")
    publish(broker_uri, ticket.submitted(), "TicketSubmitted")
    [path] = wait_until(lambda: list((tmp_path / "mail").glob("*.eml")), what="an .eml file")
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["Subject"] == "[Ticket n°53350] <b>Imprimante</b> & scanner — Demande enregistrée"
    assert message["Message-ID"] == f"<ticket-{ticket.id}@guichet>"
    html = message.get_body(("html",)).get_content()
    assert "&lt;b&gt;Imprimante&lt;/b&gt; &amp; scanner" in html and f'href="{PUBLIC_URL}/tickets/{ticket.id}"' in html
    # The file is written before the row is marked sent (in the same transaction as the claim).
    wait_until(lambda: [e["status"] for e in emails(notifier_db)] == ["sent"], what="the email marked sent")


def test_an_email_kind_turned_off_still_reaches_the_feed(container_factory, broker_uri, database_url, notifier_db,
                                                        smtp):
    smtp.start()
    with notifier_db.connection() as conn:
        conn.execute("INSERT INTO notifier.preferences (user_id, language, email_off) VALUES"
                     " ('alice', 'en', '{TicketSubmitted}'), ('marc', 'en', '{}')")
    container = container_factory(NotifierService, notifier_config(broker_uri, database_url,
                                                                   SMTP_URL=f"smtp://127.0.0.1:{smtp.port}"))
    container.start()
    ticket = Ticket()
    assigned = ticket.event("TicketAssigned", {"assignee": MARC, "previous_assignee": None, "taken": False},
                            actor=INES, assignee=MARC, status="IN_PROGRESS")
    with handled(container, 2):
        publish(broker_uri, ticket.submitted(), "TicketSubmitted")
        publish(broker_uri, assigned, "TicketAssigned")
    wait_until(lambda: len(smtp.inbox.messages) == 2, what="two emails")
    assert sorted(m["To"].addresses[0].username for m in smtp.inbox.messages) == ["alice", "marc"]
    assert {m["Subject"] for m in smtp.inbox.messages} == {
        "[Ticket n°53350] Connexion impossible — Request taken in charge",
        "[Ticket n°53350] Connexion impossible — Request assigned to you"}
    with notifier_db.connection() as conn:
        rows = conn.execute("SELECT user_id, event_type, summary_en FROM notifier.feed_entries ORDER BY position"
                            ).fetchall()
    assert {(r["user_id"], r["event_type"], r["summary_en"]) for r in rows} == {
        ("alice", "TicketSubmitted", "Your request is registered as no. 53350"),
        ("alice", "TicketAssigned", "Marc Leroy is handling your request"),
        ("marc", "TicketAssigned", "Inès Petit assigned the request to you"),
    }


def test_two_replicas_share_the_queue_and_send_each_email_once(container_factory, broker_uri, database_url,
                                                               notifier_db, smtp):
    smtp.start()
    config = notifier_config(broker_uri, database_url, SMTP_URL=f"smtp://127.0.0.1:{smtp.port}")
    first = container_factory(NotifierService, config)
    first.start()
    container_factory(NotifierService, config).start()
    tickets = [Ticket(number=n) for n in range(20)]
    for ticket in tickets:
        publish(broker_uri, ticket.submitted(), "TicketSubmitted")
    wait_until(lambda: len(emails(notifier_db, status="sent")) == 20, what="twenty emails sent")
    ids = smtp.inbox.ids()
    assert sorted(ids) == sorted(f"<ticket-{t.id}@guichet>" for t in tickets)
    with notifier_db.connection() as conn:
        attempts = conn.execute("SELECT count(*) AS n FROM notifier.delivery_attempts").fetchone()["n"]
    assert attempts == 20
