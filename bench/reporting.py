"""The reporting service's two costs: the department report over an academic year, and
the rebuild of its projection from the event log.

On a scratch database: writes ``--tickets`` tickets' events straight into
``tickets.events`` (filed over a year across 20 departments and 50 categories; taken,
some asked for information, most closed and rated), times ``guichet
rebuild-projections``' reporting part (events per second), then times the summary of
one department over the academic year, grouped by manager, as the HTTP handler
computes it (``--requests`` times: p50, p99). Prints the figures and writes
``bench/results/reporting.json``.

    .venv/bin/python bench/reporting.py --tickets 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared import db  # noqa: E402  (picks psycopg's wait function first)
from shared.config import database_name, with_database  # noqa: E402

DEPARTMENTS = [f"dept-{i:02d}" for i in range(20)]
CATEGORIES = [f"cat-{i:02d}" for i in range(50)]
SUBJECTS = ["Connexion impossible à l'ENT", "Imprimante en panne", "Wifi lent dans l'amphithéâtre",
            "Mot de passe oublié", "Messagerie saturée", "Inscription pédagogique bloquée"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ticket_events(rng: random.Random, n: int, start: datetime) -> list[tuple]:
    """One ticket's events as ``tickets.events`` rows (without global_position)."""
    ticket_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    stream = f"ticket-{ticket_id}"
    department = rng.choice(DEPARTMENTS)
    manager = f"{department}-m{rng.randint(1, 5)}"
    requester = {"id": f"user{rng.randint(1, 50_000)}", "name": None, "email": None}
    at = start + timedelta(seconds=rng.randint(0, 365 * 86400))
    events: list[tuple[str, dict, dict, datetime]] = [
        ("TicketSubmitted", {"ticket_id": ticket_id, "number": n, "subject": rng.choice(SUBJECTS),
                             "description": "…", "phone": None, "priority": 3, "category_id": rng.choice(CATEGORIES),
                             "establishment": f"05400{rng.randint(10, 99)}A", "requester": requester},
         {"id": requester["id"], "name": None, "kind": "user"}, at),
        ("TicketRouted", {"department_id": department, "previous_department_id": None},
         {"id": "system:routing", "name": "routing", "kind": "system"}, at),
    ]
    person = {"id": manager, "name": manager, "kind": "user"}
    at += timedelta(minutes=rng.randint(5, 3000))
    events.append(("TicketAssigned", {"assignee": {"id": manager, "name": manager, "email": None},
                                      "previous_assignee": None, "taken": True}, person, at))
    if rng.random() < 0.3:
        at += timedelta(minutes=rng.randint(5, 600))
        events.append(("InformationRequested", {"question": "?"}, person, at))
        at += timedelta(minutes=rng.randint(5, 3000))
        events.append(("InformationProvided", {"comment_id": "c"}, {**requester, "kind": "user"}, at))
    if rng.random() < 0.9:
        at += timedelta(minutes=rng.randint(5, 3000))
        events.append(("ClosureRequested", {"resolution": "…"}, person, at))
        at += timedelta(minutes=rng.randint(5, 3000))
        events.append(("ClosureApproved", {"rating": rng.randint(1, 5), "feedback": None},
                       {**requester, "kind": "user"}, at))
    return [(str(uuid.UUID(int=rng.getrandbits(128), version=4)), stream, version, kind, 1, json.dumps(data),
             json.dumps({"actor": actor, "occurred_at": when.isoformat()}))
            for version, (kind, data, actor, when) in enumerate(events, start=1)]


def fill(url: str, tickets: int, start: datetime) -> int:
    rng = random.Random(16)
    count = 0
    with db.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY tickets.events (event_id, stream_id, stream_version, event_type, schema_version, data,"
                      " metadata) FROM STDIN") as copy:
            for n in range(tickets):
                for row in ticket_events(rng, 1000 + n, start):
                    copy.write_row(row)
                    count += 1
        conn.commit()
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/reporting.json")
    args = parser.parse_args()

    from services.cli import SCHEMAS, SERVICES_DIR
    from services.reporting import figures, storage
    from shared.calendar import WorkingCalendar
    from shared.migrations import migrate

    base = os.environ.get("DATABASE_URL", "postgresql://127.0.0.1/guichet")
    url = with_database(base, f"{database_name(base)}_bench_reporting_{os.getpid()}")
    db.drop_database(url)
    db.ensure_database(url)
    try:
        with db.connect(url) as conn:
            for service in ("tickets", "reporting"):
                migrate(conn, SCHEMAS[service], SERVICES_DIR / service / "migrations")
        start = datetime(2025, 9, 1, tzinfo=UTC)
        began = time.perf_counter()
        events = fill(url, args.tickets, start)
        print(f"{events} events of {args.tickets} tickets written in {time.perf_counter() - began:.1f} s")

        calendar = WorkingCalendar()
        began = time.perf_counter()
        with db.connect(url) as conn, conn.transaction():
            storage.rebuild(conn, calendar)
        rebuild_seconds = time.perf_counter() - began
        with db.connect(url) as conn:
            conn.execute("ANALYZE reporting.tickets")
            conn.execute("ANALYZE reporting.status_periods")

        period = figures.period_of("academic-year", date(2025, 10, 1), calendar.zone)
        scope = storage.Scope(teams=frozenset({DEPARTMENTS[0]}))
        filters = {"department": None, "category": None, "establishment": None, "manager": None}
        latencies = []
        with db.connect(url) as conn:
            for _ in range(args.requests):
                began = time.perf_counter()
                found = storage.aggregates(conn, period.start, period.end, scope, filters, "manager")
                report = {key: figures.figures(value) for key, value in found.items()}
                latencies.append((time.perf_counter() - began) * 1000)
        total = report[storage.TOTAL]
        results = {
            "tickets": args.tickets, "events": events,
            "rebuild_seconds": round(rebuild_seconds, 2), "rebuild_events_per_second": round(events / rebuild_seconds),
            "department_year_report_ms": {"p50": round(percentile(latencies, 0.5), 1),
                                          "p99": round(percentile(latencies, 0.99), 1),
                                          "mean": round(statistics.fmean(latencies), 1)},
            "department_tickets": total["created"],
        }
        print(json.dumps(results, indent=2))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        db.drop_database(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
