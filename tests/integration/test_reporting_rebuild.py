"""The reporting projection rebuilt from the event log equals the live one: a few
hundred random actions through the tickets service, published by its outbox relay to a
throwaway vhost and consumed by the reporting service, then
``guichet rebuild-projections``."""

from __future__ import annotations

import os
import random
import subprocess
import sys

from services.reporting import storage
from services.reporting.service import ReportingService
from services.tickets import domain
from services.tickets.commands import Conflict, IdempotencyKeyReused, TicketCommands, TicketNotFound, UnknownUser
from services.tickets.service import TicketsService
from tests.conftest import ROOT, add_manager
from tests.helpers import free_port, wait_until
from tests.integration.test_rebuild_projections import PEOPLE, SYSTEM, random_action
from tests.integration.test_reporting_figures import REPORTING_TABLES


def counts(pool) -> tuple[int, int]:
    with pool.connection() as conn:
        logged = conn.execute("SELECT count(*) AS n FROM tickets.events").fetchone()["n"]
        kept = conn.execute("SELECT count(*) AS n FROM reporting.ticket_events").fetchone()["n"]
    return logged, kept


def test_rebuilt_facts_equal_the_live_ones_after_hundreds_of_random_actions(
        container_factory, broker_uri, database_url, tickets_db, monkeypatch):
    monkeypatch.setenv("GUICHET_JWT_SECRET", "reporting-rebuild-test-secret-32-bytes!")
    with tickets_db.connection() as conn:
        conn.execute(f"TRUNCATE {REPORTING_TABLES}")
        conn.execute("INSERT INTO tickets.users (id, name, email) VALUES ('bob', 'Bob', 'bob@univ.example')")
    for user, dept in [("marc", "dnum-ent"), ("mona", "dnum-ent"), ("sam", "support")]:
        add_manager(tickets_db, dept, user)
    config = {"AMQP_URI": broker_uri, "DATABASE_URL": database_url,
              "HTTP_ADDRESSES": {"tickets": f"127.0.0.1:{free_port()}", "reporting": f"127.0.0.1:{free_port()}"}}
    container_factory(ReportingService, config).start()
    container_factory(TicketsService, config).start()  # its relay publishes what the commands append

    commands = TicketCommands(tickets_db)
    rng = random.Random(16)
    tickets = [commands.execute("submit", rng.choice(PEOPLE[:2]), args={
        "category_id": rng.choice(["ent-connexion", "wifi"]), "subject": f"Connexion wifi impossible {i}",
        "description": "Détails"}) for i in range(12)]
    applied = attempts = 0
    while applied < 300 and attempts < 20_000:  # most random actions are refused by the rules
        attempts += 1
        action, args = random_action(rng)
        try:
            commands.execute(action, rng.choice(PEOPLE + SYSTEM + PEOPLE[:4]), rng.choice(tickets)["id"], args)
            applied += 1
        except (domain.DomainError, TicketNotFound, UnknownUser, Conflict, IdempotencyKeyReused):
            pass
    assert applied >= 300

    wait_until(lambda: (c := counts(tickets_db))[0] == c[1], timeout=60, what="the live projection to catch up")
    with tickets_db.connection() as conn:
        live = storage.snapshot_of_facts(conn)
    assert len(live["tickets"]) == 12
    assert sum(1 for t in live["tickets"] if t["resolved_at"]) > 0 and len(live["status_periods"]) > 24

    env = {**os.environ, "DATABASE_URL": database_url, "LOG_FORMAT": "json"}
    subprocess.run([sys.executable, "-m", "services.cli", "rebuild-projections"], cwd=ROOT, env=env, check=True)
    with tickets_db.connection() as conn:
        rebuilt = storage.snapshot_of_facts(conn)
    assert rebuilt == live
