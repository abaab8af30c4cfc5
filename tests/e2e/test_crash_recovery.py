"""Nothing lost, nothing doubled, when the services are killed.

The tickets, routing and notifier services run as real processes (``guichet run
<service>``), over the test database, a throwaway RabbitMQ vhost and an SMTP server of
the test's own. Requesters file tickets over HTTP, retrying with the same
``Idempotency-Key`` whenever the tickets service is away, while each of the three
services is killed with SIGKILL in turn, at a random moment once it is back at work (in
the middle of requests, relay batches, routing RPCs, feed transactions and SMTP
sessions), and started again.

Afterwards: one ticket per request; each routed and assigned exactly once; every email
the notifier queued was delivered, each exactly once but for the one case no sender to
an outside SMTP server can close: the server accepted the message and the sender was
killed before its COMMIT (``services.notifier.sender``). Such a resend carries the same
``Message-ID``, and is accepted only where the delivery log shows that attempt cut
short, at most one per kill of the notifier.
"""

# ruff: noqa: F811 - the fixtures desk and smtp come from tests.e2e.processes

from __future__ import annotations

import random
from collections import Counter

import eventlet
import pytest

from tests.e2e.processes import CLIENTS, SERVICES, Desk, desk, query, requester, smtp  # noqa: F401  (fixtures)
from tests.helpers import wait_until

KILLS = ("tickets", "routing", "notifier", "notifier", "tickets", "routing", "notifier")


def chaos(desk: Desk) -> None:
    """Kill each service in turn, at a random moment once it is back at work, and start
    it again at once."""
    for name in KILLS:
        wait_until(lambda: all(desk.ready(n) for n in SERVICES), timeout=60, interval=0.2, what="every service back")
        eventlet.sleep(random.uniform(0.3, 1.5))
        desk.kill(name)
        desk.start(name)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_killing_every_service_in_turn_loses_no_ticket_and_doubles_no_email(desk, tickets_db, smtp):
    killer = eventlet.spawn(chaos, desk)
    filed: list[tuple[str, int]] = []
    clients = [eventlet.spawn(requester, desk, killer, n, filed) for n in range(CLIENTS)]
    try:
        for client in clients:
            client.wait()
        killer.wait()
        ids = [ticket_id for ticket_id, _ in filed]
        tickets = len(ids)
        assert max(attempts for _, attempts in filed) > 1  # the tickets service did die under requests
        assert len(set(ids)) == tickets
        assert query(tickets_db, "SELECT count(*) AS n FROM tickets.ticket_view")[0]["n"] == tickets

        def event_counts() -> dict[str, int]:
            counts = query(tickets_db, "SELECT event_type, count(*) AS n FROM tickets.events GROUP BY event_type")
            return {r["event_type"]: r["n"] for r in counts}

        expected = {"TicketSubmitted": tickets, "TicketRouted": tickets, "TicketAssigned": tickets}
        wait_until(lambda: event_counts() == expected, timeout=180, interval=0.5,
                   what="every ticket routed and assigned")

        def notified() -> bool:
            handled = query(tickets_db, "SELECT count(*) AS n FROM notifier.processed_events")[0]["n"]
            return handled == 3 * tickets

        wait_until(notified, timeout=180, interval=0.5, what="the notifier to handle every event")

        def all_sent() -> bool:
            return query(tickets_db, "SELECT count(*) AS n FROM notifier.emails WHERE status <> 'sent'")[0]["n"] == 0

        wait_until(all_sent, timeout=120, interval=0.5, what="every queued email sent")
        eventlet.sleep(2)  # time for a late duplicate, were there one, to show
        assert event_counts() == expected
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{desk.tail()}") from None
    finally:
        killer.kill()
        for client in clients:
            client.kill()

    per_ticket = query(tickets_db, "SELECT stream_id, count(*) AS n FROM tickets.events GROUP BY stream_id")
    assert sorted(r["stream_id"] for r in per_ticket) == sorted(f"ticket-{i}" for i in ids)
    assert {r["n"] for r in per_ticket} == {3}
    assert {f"<ticket-{ticket_id}@guichet>" for ticket_id in ids} <= set(smtp.inbox.ids())  # acknowledgements
    queued = {r["message_id"]: r for r in query(tickets_db, "SELECT id, message_id FROM notifier.emails")}
    received = Counter(smtp.inbox.ids())
    assert set(received) == set(queued)  # nothing lost, nothing that was not queued
    submitted_feed = query(tickets_db, "SELECT user_id FROM notifier.feed_entries WHERE event_type = 'TicketSubmitted'")
    assert len(submitted_feed) == tickets and len({r["user_id"] for r in submitted_feed}) == tickets
    cut_short = {r["email_id"] for r in query(
        tickets_db, "SELECT email_id FROM notifier.delivery_attempts WHERE error = 'cut short'")}
    doubled = {message_id for message_id, n in received.items() if n > 1}
    assert all(received[m] == 2 and queued[m]["id"] in cut_short for m in doubled), (doubled, cut_short)
    # Each delivery loop sends one email at a time: each kill of the notifier can cut
    # short one send per SMTP connection.
    assert len(doubled) <= KILLS.count("notifier") * desk.smtp_connections
    assert sum(desk.starts.values()) == len(SERVICES) + len(KILLS)
