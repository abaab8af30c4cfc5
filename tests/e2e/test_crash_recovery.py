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

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import eventlet
import pytest
import requests

from shared.auth import issue_token
from shared.config import Settings
from tests.conftest import ROOT
from tests.helpers import SmtpServer, free_port, load_routing, wait_until

SECRET = "crash-test-secret-of-at-least-32-bytes"
SERVICES = ("tickets", "routing", "notifier")
MIN_TICKETS = 40
CLIENTS = 4
KILLS = ("tickets", "routing", "notifier", "notifier", "tickets", "routing", "notifier")
CONFIG = {
    "departments": [
        {"id": "dnum-ent", "label": "DNUM - ENT", "assignment_policy": "round_robin",
         "managers": [{"user": "marc", "name": "Marc Leroy", "email": "marc@univ.example"},
                      {"user": "mona", "name": "Mona Blanc", "email": "mona@univ.example"}]},
    ],
    "categories": [{"id": "ent-connexion", "label": "Problème de connexion à l'ENT", "department": "dnum-ent"}],
}
NOTIFIER_TABLES = (
    "notifier.processed_events, notifier.ticket_facts, notifier.people, notifier.team_managers, notifier.teams,"
    " notifier.categories, notifier.catalogue_revision, notifier.feed_entries, notifier.delivery_attempts,"
    " notifier.emails, notifier.preferences"
)


class Desk:
    """The three services as processes, each of which can be killed and started again."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}
        self.starts: Counter = Counter()

    def start(self, name: str) -> None:
        self.starts[name] += 1
        log = open(self.logs / f"{name}-{self.starts[name]}.log", "wb")  # noqa: SIM115 - the process owns it
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", name], cwd=ROOT, env=self.env, stdout=log, stderr=log,
        )

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def ready(self, name: str) -> bool:
        try:
            return requests.get(f"{self.url(name)}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def url(self, name: str) -> str:
        return f"http://{self.env[f'{name.upper()}_HTTP_ADDRESS']}"

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(self.logs.iterdir()))


@pytest.fixture
def smtp() -> SmtpServer:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def desk(database_url, broker_uri, tickets_db, smtp, tmp_path) -> Desk:
    with tickets_db.connection() as conn:
        load_routing(conn, CONFIG, NOTIFIER_TABLES)
    env = {
        **os.environ, "DATABASE_URL": database_url, "AMQP_URI": broker_uri, "GUICHET_JWT_SECRET": SECRET,
        "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "PUBLIC_URL": "https://guichet.univ.example",
        "NOTIFIER_POLL_INTERVAL": "0.5", "NOTIFIER_RETRY_BASE": "0.2", "NOTIFIER_RETRY_MAX": "1",
        "LOG_FORMAT": "json", "LOG_LEVEL": "warning",
        **{f"{name.upper()}_HTTP_ADDRESS": f"127.0.0.1:{free_port()}" for name in SERVICES},
    }
    desk = Desk(env, tmp_path)
    for name in SERVICES:
        desk.start(name)
    try:
        for name in SERVICES:
            wait_until(lambda name=name: desk.ready(name), timeout=60, what=f"{name} to be ready")

        def catalogue_copied() -> bool:
            with tickets_db.connection() as conn:
                return conn.execute("SELECT count(*) AS n FROM tickets.department_managers").fetchone()["n"] == 2

        wait_until(catalogue_copied, timeout=30, what="the tickets service's copy of routing's teams")
        yield desk
    finally:
        desk.stop()


def file_ticket(desk: Desk, n: int) -> tuple[str, int]:
    """One requester's ticket, asked again with the same key until an answer comes back;
    its id and how many times it was asked."""
    login = f"etudiant{n}"
    token = issue_token(Settings.from_env({"GUICHET_JWT_SECRET": SECRET}), sub=login,
                        email=f"{login}@etu.univ.example", name=f"Étudiant {n}", establishment="0540001A")
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
    body = {"category_id": "ent-connexion", "subject": f"Connexion impossible n°{n}",
            "description": "Écran blanc après l'authentification."}
    for attempt in range(1, 600):
        try:
            response = requests.post(f"{desk.url('tickets')}/api/v1/tickets", json=body, headers=headers, timeout=10)
        except requests.RequestException:
            eventlet.sleep(0.2)  # the service is down, or died with the request
            continue
        if response.status_code in (200, 201):
            return response.json()["id"], attempt
        assert response.status_code in (502, 503, 504), response.text
        eventlet.sleep(0.2)
    raise AssertionError(f"ticket {n} never filed")


def chaos(desk: Desk) -> None:
    """Kill each service in turn, at a random moment once it is back at work, and start
    it again at once."""
    for name in KILLS:
        wait_until(lambda: all(desk.ready(n) for n in SERVICES), timeout=60, interval=0.2, what="every service back")
        eventlet.sleep(random.uniform(0.3, 1.5))
        desk.kill(name)
        desk.start(name)


def requester(desk: Desk, killer: Any, first: int, filed: list[tuple[str, int]]) -> None:
    """Files a ticket a second until the killer is done (and a few at the least)."""
    n = first
    while not killer.dead or len(filed) < MIN_TICKETS:
        filed.append(file_ticket(desk, n))
        n += CLIENTS
        eventlet.sleep(1.0)


def query(pool: Any, sql: str, *params: Any) -> list[dict[str, Any]]:
    with pool.connection() as conn:
        return conn.execute(sql, params).fetchall()


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
    # One sender sends one email at a time: each kill of the notifier can cut short one send.
    assert len(doubled) <= KILLS.count("notifier")
    assert sum(desk.starts.values()) == len(SERVICES) + len(KILLS)
