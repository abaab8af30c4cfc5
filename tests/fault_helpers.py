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


def terminate_database_connections(database_url: str, application_name: str | None = None) -> int:
    """``pg_terminate_backend`` on every client connection to the test database (only
    those of ``application_name``, if given), as a PostgreSQL restart or a failover
    would; how many were terminated. The connection doing it is not in the database."""
    with db.connect(with_database(database_url, "postgres"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            " AND (%s::text IS NULL OR application_name = %s)",
            (database_name(database_url), application_name, application_name),
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
