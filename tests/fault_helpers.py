"""Fault injection for the fault and chaos tests, aimed at this test run only: the
connections of its own PostgreSQL database, the connections of its own RabbitMQ vhost.
Other test runs on the same servers (other pytest processes, other people) are never
touched, and neither server is restarted."""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import kombu

from shared import db
from shared.config import database_name, with_database

# The test run's own session pool (tests/conftest.py's ``pool``, named "tests"): the
# harness, not the system under test, so its connections are spared.
TEST_POOL = "guichet-tests"


def terminate_database_connections(database_url: str, spare: str = TEST_POOL) -> int:
    """``pg_terminate_backend`` on every client connection to the test database but the
    test harness's own pool (``spare``), as a PostgreSQL restart or a failover would do
    to the services; how many were terminated. The connection doing it is not in the
    database."""
    with db.connect(with_database(database_url, "postgres"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            " AND application_name IS DISTINCT FROM %s",
            (database_name(database_url), spare),
        ).fetchall()
    return sum(1 for r in rows if r["done"])


def vhost_of(amqp_uri: str) -> str:
    return unquote(urlsplit(amqp_uri).path.lstrip("/")) or "/"


def close_vhost_connections(rabbit_manager: Any, amqp_uri: str, wait: float = 5.0) -> int:
    """Close every broker connection of the test's vhost through the management API (as
    a broker restart would, for this vhost only); how many were closed.

    The management API lists a new connection a moment after it opened, so an empty
    list is asked again for up to ``wait`` seconds."""
    vhost = vhost_of(amqp_uri)
    deadline = time.monotonic() + wait
    while True:
        connections = rabbit_manager._get("vhosts", vhost, "connections")
        if connections or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    closed = 0
    for connection in connections:
        try:
            rabbit_manager._delete("connections", connection["name"],
                                   headers={"X-Reason": "fault injection (test)"})
            closed += 1
        except Exception:  # noqa: BLE001 - it may have closed by itself meanwhile
            pass
    return closed


def queue_depth(amqp_uri: str, queue: str) -> int:
    """Messages ready in ``queue`` (0 if it does not exist)."""
    with kombu.Connection(amqp_uri) as connection:
        channel = connection.channel()
        try:
            return channel.queue_declare(queue, passive=True).message_count
        except Exception:  # noqa: BLE001 - not declared: nothing in it
            return 0


class SlowClient:
    """A client that sends a request's headers, announcing a body, and then nothing."""

    def __init__(self, base_url: str, path: str, token: str, length: int = 1000) -> None:
        parts = urlsplit(base_url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        self.sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()
        )

    def answer(self, timeout: float) -> bytes:
        """What the server sent back within ``timeout`` seconds (b"" if it closed silently)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096)
        except OSError:
            return b""

    def close(self) -> None:
        self.sock.close()


# -- a desk: the tickets and routing services in this process, their teams copied

ROUTING_CONFIG = {
    "departments": [
        {"id": "dnum-ent", "label": "DNUM - ENT", "assignment_policy": "round_robin",
         "managers": [{"user": "marc", "name": "Marc Leroy", "email": "marc@univ.example"},
                      {"user": "mona", "name": "Mona Blanc", "email": "mona@univ.example"}]},
    ],
    "categories": [{"id": "ent-connexion", "label": "Problème de connexion à l'ENT", "department": "dnum-ent"}],
}


def start_desk(container_factory: Any, broker_uri: str, database_url: str, monkeypatch: Any) -> tuple[str, list[Any]]:
    """Start tickets (HTTP on a free port) and routing over ``ROUTING_CONFIG``; the
    tickets base URL and both containers, once the tickets service has the teams.

    Their pools are small (``DB_POOL_MAX``, unless the test set it): PostgreSQL's
    connections are shared by every test run on the machine."""
    monkeypatch.setenv("DB_POOL_MAX", "4")
    from services.routing.service import RoutingService
    from services.tickets.service import TicketsService
    from tests.helpers import free_port, load_routing, wait_until

    with db.connect(database_url) as conn:
        load_routing(conn, ROUTING_CONFIG)
    port = free_port()
    config = {"AMQP_URI": broker_uri, "DATABASE_URL": database_url,
              "HTTP_ADDRESSES": {"tickets": f"127.0.0.1:{port}", "routing": "127.0.0.1:0"}}
    containers = [container_factory(TicketsService, config), container_factory(RoutingService, config)]
    for container in containers:
        container.start()

    def copied() -> bool:
        with db.connect(database_url) as conn:
            return conn.execute("SELECT count(*) AS n FROM tickets.department_managers").fetchone()["n"] == 2

    wait_until(copied, what="the tickets service's copy of the teams")
    return f"http://127.0.0.1:{port}", containers


def file_until_accepted(rpc: Any, n: int) -> str:
    """Ticket ``n`` filed over RPC, asked again under the same idempotency key while the
    service answers with a transient failure; its id."""
    import eventlet

    from shared.failures import is_transient
    from tests.helpers import person

    key = f"fault-test-{n}-{time.monotonic_ns()}"
    for _ in range(300):
        try:
            ticket = rpc.submit(person(f"etudiant{n}"), "ent-connexion", f"Connexion impossible n°{n}",
                                "Écran blanc.", idempotency_key=key)
            return ticket["id"]
        except Exception as exc:  # noqa: BLE001 - only transient failures may happen here
            assert is_transient(exc), repr(exc)
            eventlet.sleep(0.1)
    raise AssertionError(f"ticket {n} never filed")


def event_counts(database_url: str) -> dict[str, int]:
    """How many events of each type the tickets' event store holds."""
    with db.connect(database_url) as conn:
        rows = conn.execute("SELECT event_type, count(*) AS n FROM tickets.events GROUP BY event_type").fetchall()
    return {r["event_type"]: r["n"] for r in rows}
