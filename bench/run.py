"""``make bench``: tickets submitted over HTTP against the raw PostgreSQL and RabbitMQ limits.

Starts the tickets and routing services (one process each, more tickets replicas with
``--replicas``) on a scratch database with a small catalogue, has N concurrent clients
submit tickets over HTTP and read each back for a fixed time, then measures from the
event store how long each ticket took to be routed and assigned, how long a membership
change takes to reach ticket access, and, in the same run, how many single-event append
transactions per second PostgreSQL takes straight from psycopg, and how many persistent
messages per second RabbitMQ confirms, with the same number of connections. Prints a
table and writes ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.auth import issue_token  # noqa: E402
from shared.config import Settings, database_name, with_database  # noqa: E402

SECRET = "bench-secret-bench-secret-bench-secret"


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)

    def merge(self, other: Samples) -> None:
        self.latencies += other.latencies
        self.errors += other.errors
        for kind, count in other.error_kinds.items():
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + count

    def fail(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def prepare_database(url: str) -> None:
    subprocess.run([sys.executable, "-m", "services.cli", "migrate"], cwd=ROOT, check=True,
                   env={**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning"})
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE tickets.outbox, tickets.events, tickets.ticket_view, tickets.idempotency_keys")
        conn.execute("INSERT INTO tickets.categories VALUES ('ent-connexion', 'Connexion ENT', 'ENT login')"
                     " ON CONFLICT DO NOTHING")


def drop_database(url: str) -> None:
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database_name(url)}" WITH (FORCE)')


TRANSFER_BYTES = 50 * 1024 * 1024
BENCH_CONFIG = """\
departments:
  - id: dnum-ent
    label: {fr: "DNUM - ENT", en: "IT - ENT"}
    assignment_policy: least_loaded
    managers:
      - {user: marc, name: Marc Leroy, email: marc@univ.example}
      - {user: mona, name: Mona Blanc, email: mona@univ.example}
      - {user: max, name: Max Petit, email: max@univ.example}
categories:
  - {id: ent-connexion, label: {fr: "Problème de connexion", en: "Login problem"}, department: dnum-ent}
"""


def load_catalogue(url: str) -> None:
    path = ROOT / "var" / "bench-config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCH_CONFIG, encoding="utf-8")
    subprocess.run([sys.executable, "-m", "services.cli", "config", "load", str(path)], cwd=ROOT, check=True,
                   env={**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning"})


def start_services(url: str, ports: dict[str, int], replicas: int, smtp_port: int) -> list[subprocess.Popen]:
    """One process per service (``replicas`` tickets processes sharing its port)."""
    env = {**os.environ, "DATABASE_URL": url, "GUICHET_JWT_SECRET": SECRET, "LOG_FORMAT": "json",
           "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}", "MAX_ATTACHMENT_BYTES": str(TRANSFER_BYTES + 1024 * 1024),
           "ATTACHMENTS_DIR": str(ROOT / "var" / "bench-attachments"),
           "LOG_LEVEL": "warning", **{f"{name.upper()}_HTTP_ADDRESS": f"127.0.0.1:{port}" for name, port in ports.items()}}
    processes = []
    for name in ports:
        for _ in range(replicas if name == "tickets" else 1):
            processes.append(subprocess.Popen([sys.executable, "-m", "services.cli", "run", name], cwd=ROOT, env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return processes


def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the service on port {port} did not become ready")


def client(port: int, token: str, stop_at: float, submit: Samples, read: Samples) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    while time.monotonic() < stop_at:
        body = json.dumps({"category_id": "ent-connexion", "subject": "Connexion impossible",
                           "description": "Écran blanc après l'authentification. " + uuid.uuid4().hex})
        started = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/tickets", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status != 201:
                submit.fail(f"HTTP {response.status}")
                continue
            submit.latencies.append(time.perf_counter() - started)
            ticket_id = json.loads(payload)["id"]
            started = time.perf_counter()
            conn.request("GET", f"/api/v1/tickets/{ticket_id}", headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                read.fail(f"HTTP {response.status}")
                continue
            read.latencies.append(time.perf_counter() - started)
        except (OSError, http.client.HTTPException) as exc:
            submit.fail(type(exc).__name__)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)


def run_http_load(port: int, clients: int, seconds: float) -> tuple[Samples, Samples, float]:
    settings = Settings.from_env({"GUICHET_JWT_SECRET": SECRET})
    stop_at = time.monotonic() + seconds
    results = [(Samples(), Samples()) for _ in range(clients)]
    threads = [
        threading.Thread(
            target=client,
            args=(port, issue_token(settings, sub=f"user{i}", email=f"user{i}@univ.example",
                                    establishment="0540001A"), stop_at, *results[i]),
        )
        for i in range(clients)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    submit, read = Samples(), Samples()
    for s, r in results:
        submit.merge(s)
        read.merge(r)
    return submit, read, elapsed


def run_raw_appends(url: str, connections: int, seconds: float) -> tuple[int, float]:
    """Single-event append transactions straight into a copy of tickets.events."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS tickets.bench_events")
        conn.execute("CREATE TABLE tickets.bench_events (LIKE tickets.events INCLUDING ALL)")
    counts = [0] * connections
    stop_at = time.monotonic() + seconds
    data = json.dumps({"subject": "Connexion impossible", "description": "Écran blanc."})

    def writer(i: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            stream = f"ticket-{uuid.uuid4()}"
            version = 0
            while time.monotonic() < stop_at:
                version += 1
                conn.execute(
                    "INSERT INTO tickets.bench_events (event_id, stream_id, stream_version, event_type,"
                    " schema_version, data, metadata) VALUES (%s, %s, %s, 'TicketSubmitted', 1, %s, '{}')",
                    (uuid.uuid4(), stream, version, data),
                )
                counts[i] += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE tickets.bench_events")
    return sum(counts), elapsed


def run_raw_publishes(amqp_uri: str, connections: int, seconds: float) -> tuple[int, float]:
    """Persistent messages published with publisher confirms, one at a time per
    connection, to a durable queue: RabbitMQ's limit for what the outbox relay does."""
    import kombu

    queue_name = f"bench-raw-{uuid.uuid4().hex[:8]}"
    counts = [0] * connections
    stop_at = time.monotonic() + seconds
    body = {"event_type": "TicketSubmitted", "data": {"subject": "Connexion impossible", "description": "Écran blanc."}}
    with kombu.Connection(amqp_uri) as conn:
        kombu.Queue(queue_name, durable=True, max_length=10_000)(conn.channel()).declare()

    def publisher(i: int) -> None:
        with kombu.Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
            producer = conn.Producer(serializer="json")
            while time.monotonic() < stop_at:
                producer.publish(body, routing_key=queue_name, delivery_mode=2)
                counts[i] += 1

    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    with kombu.Connection(amqp_uri) as conn:
        conn.channel().queue_delete(queue_name)
    return sum(counts), elapsed


class SmtpSink:
    """A real SMTP server (aiosmtpd) that accepts every message and counts them."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        sink = self
        self.count = 0

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
                sink.count += 1
                return "250 OK"

        with __import__("socket").socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def email_latencies(url: str, timeout: float = 120) -> tuple[list[float], int]:
    """Seconds from each ``TicketSubmitted`` (the requester's acknowledgement) to the SMTP
    server's acceptance of its email, once the notifier caught up; and how many were
    not accepted before the deadline."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url) as conn:
        submitted = conn.execute("SELECT count(*) FROM tickets.events WHERE event_type = 'TicketSubmitted'").fetchone()[0]
        while True:
            rows = conn.execute(
                "SELECT extract(epoch FROM sent_at - event_occurred_at) FROM notifier.emails"
                " WHERE event_type = 'TicketSubmitted' AND status = 'sent'"
            ).fetchall()
            if len(rows) >= submitted or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    return [float(r[0]) for r in rows], submitted - len(rows)


def routing_latencies(url: str, timeout: float = 120) -> tuple[list[float], list[float], int]:
    """Seconds from each ticket's ``TicketSubmitted`` to its ``TicketRouted`` and to its
    ``TicketAssigned``, as the event store recorded them, once routing has caught up;
    and how many tickets were not routed before the deadline."""
    query = """
        SELECT s.stream_id,
               extract(epoch FROM r.recorded_at - s.recorded_at) AS routed,
               extract(epoch FROM a.recorded_at - s.recorded_at) AS assigned
        FROM tickets.events s
        LEFT JOIN LATERAL (SELECT min(recorded_at) AS recorded_at FROM tickets.events
                           WHERE stream_id = s.stream_id AND event_type = 'TicketRouted') r ON true
        LEFT JOIN LATERAL (SELECT min(recorded_at) AS recorded_at FROM tickets.events
                           WHERE stream_id = s.stream_id AND event_type = 'TicketAssigned') a ON true
        WHERE s.event_type = 'TicketSubmitted'"""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url) as conn:
        while True:
            rows = conn.execute(query).fetchall()
            pending = sum(1 for row in rows if row[2] is None)
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    return ([float(r[1]) for r in rows if r[1] is not None], [float(r[2]) for r in rows if r[2] is not None],
            pending)


def membership_latencies(url: str, routing_port: int, rounds: int = 10) -> list[float]:
    """Seconds from an admin's change of a department's managers (routing's HTTP API)
    until the tickets service's access rules know it (its copy of the teams)."""
    settings = Settings.from_env({"GUICHET_JWT_SECRET": SECRET})
    token = issue_token(settings, sub="root", email="root@univ.example", admin=True)
    managers = [{"user": u, "name": u.title(), "email": f"{u}@univ.example"} for u in ("marc", "mona", "max")]
    latencies = []
    with psycopg.connect(url, autocommit=True) as db:
        for i in range(rounds):
            newcomer = f"newcomer{i}"
            for members, present in ((managers + [{"user": newcomer, "email": f"{newcomer}@univ.example"}], True),
                                     (managers, False)):
                body = json.dumps({"label": {"fr": "DNUM - ENT", "en": "IT - ENT"}, "assignment_policy": "least_loaded",
                                   "managers": members})
                conn = http.client.HTTPConnection("127.0.0.1", routing_port, timeout=10)
                started = time.perf_counter()
                conn.request("PUT", "/api/v1/departments/dnum-ent", body=body,
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise SystemExit(f"routing refused the membership change: HTTP {response.status}")
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    found = db.execute("SELECT 1 FROM tickets.department_managers WHERE user_id = %s",
                                       (newcomer,)).fetchone()
                    if bool(found) == present:
                        latencies.append(time.perf_counter() - started)
                        break
                    time.sleep(0.002)
    return latencies


def attachment_transfer(port: int, pid: int) -> dict[str, float]:
    """Upload and download of a 50 MB file through the attachments service: MB/s each
    way, and the service's peak memory during it (it streams: far below the file)."""
    from services.attachments.transfer import measure_transfer

    settings = Settings.from_env({"GUICHET_JWT_SECRET": SECRET})
    token = issue_token(settings, sub="user0", email="user0@univ.example", establishment="0540001A")
    return measure_transfer(f"http://127.0.0.1:{port}", token, TRANSFER_BYTES, pid=pid)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def count_published(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM tickets.outbox"
        ).fetchone()
    return row[0], row[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--raw-seconds", type=float, default=10.0)
    parser.add_argument("--replicas", type=int, default=1, help="tickets service processes sharing the port")
    parser.add_argument("--port", type=int, default=18000, help="tickets HTTP port; the next ones for the others")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/latest.json")
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "postgresql://127.0.0.1/guichet")
    url = with_database(base, "guichet_bench")
    amqp_uri = os.environ.get("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/")
    drop_database(url)
    prepare_database(url)
    load_catalogue(url)
    ports = {"tickets": args.port, "routing": args.port + 1, "notifier": args.port + 2, "attachments": args.port + 3}
    smtp = SmtpSink().__enter__()
    services = start_services(url, ports, args.replicas, smtp.port)
    names = [name for name in ports for _ in range(args.replicas if name == "tickets" else 1)]
    try:
        for port in ports.values():
            wait_ready(port)
        time.sleep(1)  # the tickets service applies routing's first snapshot
        pids = [service.pid for service in services]
        cpu_before = cpu_seconds(pids)
        submit, read, elapsed = run_http_load(args.port, args.clients, args.seconds)
        service_cpu = cpu_seconds(pids) - cpu_before
        routed, assigned, unrouted = routing_latencies(url)
        emailed, not_emailed = email_latencies(url)
        outbox_total, outbox_pending = count_published(url)
        membership = membership_latencies(url, ports["routing"])
        transfer = attachment_transfer(ports["attachments"], services[names.index("attachments")].pid)
    finally:
        for service in services:
            service.send_signal(signal.SIGTERM)
        for service in services:
            try:
                service.wait(timeout=15)
            except subprocess.TimeoutExpired:
                service.kill()
        smtp.__exit__(None, None, None)
        shutil.rmtree(ROOT / "var" / "bench-attachments", ignore_errors=True)
    raw_count, raw_elapsed = run_raw_appends(url, args.clients, args.raw_seconds)
    drop_database(url)
    raw_amqp_count, raw_amqp_elapsed = run_raw_publishes(amqp_uri, args.clients, args.raw_seconds)
    raw_amqp_per_second = raw_amqp_count / raw_amqp_elapsed

    tickets_per_second = len(submit.latencies) / elapsed
    raw_per_second = raw_count / raw_elapsed
    ms = 1000.0
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "clients": args.clients,
        "replicas": args.replicas,
        "seconds": round(elapsed, 2),
        "submit": {
            "tickets_per_second": round(tickets_per_second, 1),
            "count": len(submit.latencies),
            "p50_ms": round(percentile(submit.latencies, 50) * ms, 2),
            "p95_ms": round(percentile(submit.latencies, 95) * ms, 2),
            "p99_ms": round(percentile(submit.latencies, 99) * ms, 2),
            "mean_ms": round(statistics.fmean(submit.latencies) * ms, 2) if submit.latencies else None,
            "errors": submit.errors,
            "error_kinds": submit.error_kinds,
        },
        "read_back": {
            "count": len(read.latencies),
            "p50_ms": round(percentile(read.latencies, 50) * ms, 2),
            "p99_ms": round(percentile(read.latencies, 99) * ms, 2),
            "errors": read.errors,
        },
        "routing": {
            "submitted_to_routed_p50_ms": round(percentile(routed, 50) * ms, 1),
            "submitted_to_routed_p99_ms": round(percentile(routed, 99) * ms, 1),
            "submitted_to_assigned_p50_ms": round(percentile(assigned, 50) * ms, 1),
            "submitted_to_assigned_p99_ms": round(percentile(assigned, 99) * ms, 1),
            "not_assigned_after_120s": unrouted,
        },
        "notifier": {
            "submitted_to_email_accepted_p50_ms": round(percentile(emailed, 50) * ms, 1),
            "submitted_to_email_accepted_p99_ms": round(percentile(emailed, 99) * ms, 1),
            "acknowledgements_not_sent_after_120s": not_emailed,
            "messages_accepted_by_smtp": smtp.count,
        },
        "attachments_50mb": transfer,
        "membership_change_to_access": {
            "changes": len(membership),
            "p50_ms": round(percentile(membership, 50) * ms, 1),
            "max_ms": round(max(membership, default=float("nan")) * ms, 1),
        },
        "outbox": {"events": outbox_total, "unpublished_after_routing": outbox_pending},
        "services_cpu_ms_per_ticket": round(service_cpu / max(1, len(submit.latencies)) * ms, 3),
        "raw_postgres_appends_per_second": round(raw_per_second, 1),
        "raw_rabbitmq_confirmed_publishes_per_second": round(raw_amqp_per_second, 1),
        "ratio_to_raw": round(tickets_per_second / raw_per_second, 3),
        "targets": {"tickets_per_second": 500, "p99_ms": 100, "ratio_to_raw": 0.30},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")

    rows = [
        ("tickets submitted over HTTP / s", f"{tickets_per_second:.0f}", ">= 500"),
        ("submit latency p50 / p95 / p99 (ms)",
         f"{result['submit']['p50_ms']} / {result['submit']['p95_ms']} / {result['submit']['p99_ms']}", "p99 < 100"),
        ("read-back latency p50 / p99 (ms)", f"{result['read_back']['p50_ms']} / {result['read_back']['p99_ms']}", ""),
        ("errors (submit + read)", f"{submit.errors + read.errors}", "0"),
        ("raw PostgreSQL single-event appends / s", f"{raw_per_second:.0f}", ""),
        ("HTTP tickets / raw appends", f"{tickets_per_second / raw_per_second:.0%}", ">= 30%"),
        ("raw RabbitMQ confirmed persistent publishes / s", f"{raw_amqp_per_second:.0f}", ""),
        ("events published by the relays", f"{outbox_total - outbox_pending} of {outbox_total}", "all"),
        ("submitted -> routed p50 / p99 (ms)", f"{result['routing']['submitted_to_routed_p50_ms']} / "
         f"{result['routing']['submitted_to_routed_p99_ms']}", ""),
        ("submitted -> assigned p50 / p99 (ms)", f"{result['routing']['submitted_to_assigned_p50_ms']} / "
         f"{result['routing']['submitted_to_assigned_p99_ms']}", ""),
        ("tickets not assigned 120 s after the load", f"{unrouted}", "0"),
        ("submitted -> acknowledgement email accepted p50 / p99 (ms)",
         f"{result['notifier']['submitted_to_email_accepted_p50_ms']} / "
         f"{result['notifier']['submitted_to_email_accepted_p99_ms']}", ""),
        ("acknowledgements not accepted 120 s after the load", f"{not_emailed}", "0"),
        ("50 MB attachment upload / download (MB/s)",
         f"{transfer['upload_mb_s']:.0f} / {transfer['download_mb_s']:.0f}", ""),
        ("attachments service RSS before -> peak during the transfer (MB)",
         f"{transfer.get('rss_before_mb', float('nan')):.0f} -> {transfer.get('peak_rss_mb', float('nan')):.0f}",
         "growth << 50"),
        ("membership change -> ticket access p50 / max (ms)", f"{result['membership_change_to_access']['p50_ms']} / "
         f"{result['membership_change_to_access']['max_ms']}", "< 1000"),
        ("services CPU per ticket (submit, read, route, assign, notify, relay; ms)",
         f"{result['services_cpu_ms_per_ticket']}", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\nGuichet bench: {args.clients} clients, {elapsed:.1f} s, {args.replicas} tickets process(es) + routing + notifier,"
          f" {os.cpu_count()} CPUs")
    print(f"{'measure':<{width}}  {'value':>22}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>22}  {target}")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
