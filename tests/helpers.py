"""Helpers shared by the integration and end-to-end tests: waiting for a condition, free
local ports, services started on them, routing's catalogue, an SMTP server to receive
mail, and request bodies built from a valid one."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from typing import Any

import eventlet
from aiosmtpd.controller import Controller

from services.routing import storage as routing_storage
from services.routing.config import parse_config

ROUTING_TABLES = (
    "routing.faq, routing.categories, routing.managers, routing.departments, routing.outbox, routing.round_robin,"
    " routing.tickets, routing.processed_events, routing.assignment_decisions"
)


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition",
               interval: float = 0.05) -> Any:
    """``predicate()``'s first true value, polled every ``interval`` seconds for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        eventlet.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(container_factory: Any, service_cls: type, name: str, **config: Any) -> str:
    """Start ``service_cls`` with ``config`` and its HTTP server ``name`` on a free local port; its base URL."""
    port = free_port()
    container = container_factory(service_cls, {**config, "HTTP_ADDRESSES": {name: f"127.0.0.1:{port}"}})
    container.start()
    return f"http://127.0.0.1:{port}"


def load_routing(conn: Any, config: dict[str, Any], *also: str) -> None:
    """Empty routing's tables (and the tables ``also`` names), then store ``config`` as its catalogue."""
    conn.execute(f"TRUNCATE {', '.join((ROUTING_TABLES, *also))}")
    routing_storage.replace_catalogue(conn, parse_config(config))


def person(login: str, establishment: str = "0540001A") -> dict[str, Any]:
    """A user as the tickets RPC takes it."""
    return {"id": login, "name": login.title(), "email": f"{login}@univ.example", "establishment": establishment}


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


DROP = object()  # removes a field from the valid body


def changed(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in {**body, **changes}.items() if v is not DROP}


class Inbox:
    """An aiosmtpd handler keeping what it accepted; it can refuse addresses (5xx) and
    answer the next few messages with a 4xx."""

    def __init__(self) -> None:
        self.messages: list = []
        self.refused: dict[str, str] = {}
        self.temporary_failures = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refused:
            return self.refused[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.temporary_failures > 0:
            self.temporary_failures -= 1
            return "451 4.3.0 Try again later"
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 2.0.0 OK"

    def ids(self) -> list[str]:
        return [m["Message-ID"] for m in self.messages]


class SmtpServer:
    """aiosmtpd on a fixed local port, which can be stopped and started again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
