"""Guichet's services as real processes for the end-to-end fault tests
(``test_crash_recovery``, ``test_chaos``): ``guichet run <service>`` over the test
database, the test's RabbitMQ vhost and an SMTP server of the test's own, each of which
can be killed and started again; and requesters filing tickets over HTTP, retrying with
their ``Idempotency-Key`` while the tickets service is away."""

from __future__ import annotations

import os
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
        self.smtp_connections = int(env.get("SMTP_CONNECTIONS") or 4)

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
        "LOG_FORMAT": "json", "LOG_LEVEL": "warning", "DB_POOL_MAX": "4",
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


def query(pool: Any, sql: str, *params: Any) -> list[dict[str, Any]]:
    with pool.connection() as conn:
        return conn.execute(sql, params).fetchall()


def requester(desk: Desk, killer: Any, first: int, filed: list[tuple[str, int]]) -> None:
    """Files a ticket a second until ``killer`` (a green thread) is done, and
    ``MIN_TICKETS`` in all at the least; ``CLIENTS`` requesters share the numbers."""
    n = first
    while not killer.dead or len(filed) < MIN_TICKETS:
        filed.append(file_ticket(desk, n))
        n += CLIENTS
        eventlet.sleep(1.0)
