"""Who hears about what, for real: the tickets, routing and notifier services running
together over the broker, a ticket's life driven through the tickets RPC, the emails
received by an SMTP server (aiosmtpd) and the feed entries read from the notifier."""

from __future__ import annotations

import pytest
from nameko.standalone.rpc import ServiceRpcClient

from services.notifier.service import NotifierService
from services.routing.service import RoutingService
from services.tickets.service import TicketsService
from shared import db
from tests.helpers import SmtpServer, free_port, load_routing, person, wait_until
from tests.integration.test_notifier_delivery import NOTIFIER_TABLES, notifier_config

CONFIG = {
    "departments": [
        {"id": "dnum-ent", "label": {"fr": "DNUM - ENT", "en": "IT - ENT"}, "assignment_policy": "none",
         "managers": [{"user": u, "name": u.title(), "email": f"{u}@univ.example"} for u in ("marc", "mona", "max")]},
    ],
    "categories": [{"id": "ent-connexion", "label": "Problème de connexion", "department": "dnum-ent"}],
}
INTERNAL_NOTE = "NOTE-INTERNE-42 compte bloqué côté annuaire"


@pytest.fixture
def smtp():
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def services(container_factory, broker_uri, database_url, tickets_db, smtp):
    with db.connect(database_url) as conn:
        load_routing(conn, CONFIG, NOTIFIER_TABLES)
        conn.execute("INSERT INTO tickets.users (id, name, email, establishment) VALUES"
                     " ('ines', 'Ines', 'ines@univ.example', '0540001A')")
    config = notifier_config(broker_uri, database_url, SMTP_URL=f"smtp://127.0.0.1:{smtp.port}",
                             HTTP_ADDRESSES={"tickets": "127.0.0.1:0", "routing": "127.0.0.1:0",
                                             "notifier": "127.0.0.1:0"})
    # their queues for routing's snapshot exist before routing publishes it
    container_factory(NotifierService, config).start()
    container_factory(TicketsService, config).start()
    container_factory(RoutingService, config).start()

    def copied():
        with tickets_db.connection() as conn:
            return conn.execute("SELECT (SELECT count(*) FROM notifier.team_managers)"
                                " + (SELECT count(*) FROM tickets.department_managers) AS n").fetchone()["n"] == 6

    wait_until(copied, what="the copies of the teams")
    return tickets_db


def test_each_event_reaches_exactly_its_people_by_email_and_feed(services, smtp):
    pool = services
    with ServiceRpcClient("tickets") as rpc:
        ticket = rpc.submit(person("alice"), "ent-connexion", "Connexion <impossible>", "Écran blanc.")
        tid = ticket["id"]
        wait_until(lambda: rpc.get(person("alice"), tid)["department"], what="the ticket routed")
        rpc.take(person("marc"), tid)
        rpc.invite(person("alice"), tid, "ines")
        rpc.watch(person("mona"), tid)
        rpc.watch(person("ines"), tid)
        rpc.comment(person("marc"), tid, "Pouvez-vous <b>redémarrer</b> ?")
        rpc.comment(person("max"), tid, INTERNAL_NOTE, visibility="internal")
        rpc.request_information(person("marc"), tid, "Quel navigateur ?")
        rpc.comment(person("alice"), tid, "Firefox")
        rpc.request_closure(person("marc"), tid, "Compte réactivé.")
        rpc.refuse_closure(person("alice"), tid, "Toujours bloqué")

    expected = [
        ("TicketSubmitted", {"alice"}),
        ("TicketRouted", {"marc", "mona", "max"}),
        ("TicketAssigned", {"alice"}),
        ("UserInvited", {"ines"}),
        ("WatchStarted", set()),
        ("WatchStarted", set()),
        ("CommentAdded", {"alice", "ines", "mona"}),
        ("CommentAdded", {"marc", "mona"}),  # internal
        # watchers (mona, ines) hear of every step (WORKFLOW.md, "Who hears about what")
        ("InformationRequested", {"alice", "ines", "mona"}),
        ("CommentAdded", {"ines", "mona"}),  # the answer...
        ("InformationProvided", {"marc", "ines", "mona"}),  # ...which the assignee hears as such
        ("ClosureRequested", {"alice", "ines", "mona"}),
        ("ClosureRefused", {"marc", "ines", "mona"}),
    ]
    with pool.connection() as conn:
        events = conn.execute("SELECT event_id::text AS id, event_type FROM tickets.events WHERE stream_id = %s"
                              " ORDER BY stream_version", (f"ticket-{tid}",)).fetchall()
    assert [e["event_type"] for e in events] == [t for t, _ in expected]

    def all_handled_and_sent():
        with pool.connection() as conn:
            done = conn.execute("SELECT count(*) AS n FROM notifier.processed_events WHERE event_id::text = ANY(%s)",
                                ([e["id"] for e in events],)).fetchone()["n"]
            pending = conn.execute("SELECT count(*) AS n FROM notifier.emails WHERE status <> 'sent'").fetchone()["n"]
        return done == len(events) and pending == 0

    wait_until(all_handled_and_sent, what="every event handled and its emails sent")
    with pool.connection() as conn:
        feed = conn.execute("SELECT event_id::text AS id, user_id FROM notifier.feed_entries").fetchall()
    mailed: dict[str, set[str]] = {}
    for message in smtp.inbox.messages:
        event_id = message["X-Guichet-Event"].split()[1]
        mailed.setdefault(event_id, set()).add(message["To"].addresses[0].username)
    for event, (event_type, people) in zip(events, expected, strict=True):
        assert {f["user_id"] for f in feed if f["id"] == event["id"]} == people, f"feed of {event_type}"
        assert mailed.get(event["id"], set()) == people, f"emails of {event_type}"
    assert len(smtp.inbox.messages) == sum(len(p) for _, p in expected)  # nothing twice

    # the internal comment reaches neither the requester nor the invitee, by email or feed
    for message in smtp.inbox.messages:
        if message["To"].addresses[0].username in ("alice", "ines"):
            assert "NOTE-INTERNE-42" not in message.as_string()
    # one thread per ticket: alice's acknowledgement is its root, everything answers it
    root = f"<ticket-{tid}@guichet>"
    for message in smtp.inbox.messages:
        assert message["Message-ID"] == root or (message["In-Reply-To"] == root and message["References"] == root)
        assert message["Subject"].startswith(f"[Ticket n°{ticket['number']}] Connexion <impossible> — ")
    [closure] = [m for m in smtp.inbox.messages if "Clôture demandée" in m["Subject"]
                 and m["To"].addresses[0].username == "alice"]
    html = closure.get_body(("html",)).get_content()
    assert "Compte réactivé." in html and f"https://guichet.test/tickets/{tid}/approve-closure" in html
    [comment] = [m for m in smtp.inbox.messages if m["Subject"].endswith("Nouveau commentaire")
                 and m["To"].addresses[0].username == "alice"]
    assert "&lt;b&gt;redémarrer&lt;/b&gt;" in comment.get_body(("html",)).get_content()
