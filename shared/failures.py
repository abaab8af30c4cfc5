"""Failures, classified once for every service: transient or permanent.

A *transient* failure says nothing about the request or the message: a server is away
(PostgreSQL or RabbitMQ unreachable, a pooled connection that died, a pool with no
connection free in time, another service timing out or down, a circuit open). The same
work will succeed later, so consumers requeue it after a backoff and never dead-letter
it, and HTTP answers ``503`` with ``Retry-After``. Anything else is *permanent* (an
unreadable message, a domain refusal, a bug): retrying would fail the same way.

The class crosses services: an RPC method that fails for a transient reason answers
with :class:`TransientFailure` (``shared.nameko_deps.rpc`` translates it), which Nameko
rebuilds as itself at the caller; a ``RemoteError`` naming a transient exception type
(a service not using that entrypoint) counts as transient too.

:class:`Circuit` makes a dependency that is down fail fast: after a failure, calls are
refused at once for a few seconds instead of each waiting for its timeout.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import amqp.exceptions
import eventlet
import kombu.exceptions
import psycopg
import structlog
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService, deserialize_to_instance

log = structlog.stdlib.get_logger("guichet.failures")

T = TypeVar("T")

DEFAULT_RETRY_AFTER = 2  # seconds a client is told to wait when nothing says better


@deserialize_to_instance
class TransientFailure(Exception):
    """A server is away; the same call may succeed later. Nameko's RPC rebuilds it at
    the caller as itself (its arguments are strings there)."""

    def __init__(self, detail: str = "a dependency is unavailable", retry_after: Any = DEFAULT_RETRY_AFTER) -> None:
        super().__init__(detail, retry_after)
        self.detail = detail
        try:
            self.retry_after = max(1, int(float(retry_after)))
        except (TypeError, ValueError):
            self.retry_after = DEFAULT_RETRY_AFTER

    def __str__(self) -> str:
        return self.detail


@deserialize_to_instance
class DependencyUnavailable(TransientFailure):
    """A service this one calls is down, too slow, or its circuit is open."""


# Exception types that mean "a server is away", whatever was asked.
TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientFailure,
    psycopg.OperationalError,  # connection lost, pool timeout, admin shutdown, serialization failure, deadlock
    psycopg.InterfaceError,  # a connection already closed
    kombu.exceptions.OperationalError,
    amqp.exceptions.ConnectionError,  # the broker closed the connection (RecoverableConnectionError...)
    ConnectionError,  # ConnectionResetError, BrokenPipeError, ConnectionRefusedError
    TimeoutError,  # socket timeouts too
    RpcTimeout,
    UnknownService,  # nobody consumes that service's RPC queue yet
    eventlet.Timeout,
)


def _names(types: tuple[type[BaseException], ...]) -> frozenset[str]:
    seen: set[type] = set()
    todo = list(types)
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.add(cls)
            todo.extend(cls.__subclasses__())
    return frozenset(cls.__name__ for cls in seen)


_remote_names: frozenset[str] | None = None


def _transient_names() -> frozenset[str]:
    # Computed on first use, once every psycopg error class is defined.
    global _remote_names
    if _remote_names is None:
        _remote_names = _names(TRANSIENT_TYPES) - {"Exception", "OSError"}
    return _remote_names


def is_transient(exc: BaseException | None) -> bool:
    """True if ``exc`` (or what caused it) means a server is away, not that the work is bad."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, TRANSIENT_TYPES):
            return True
        if isinstance(exc, RemoteError) and exc.exc_type in _transient_names():
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def retry_after(exc: BaseException) -> int:
    """Seconds a client should wait before trying again after ``exc``."""
    seconds: int = getattr(exc, "retry_after", None) or DEFAULT_RETRY_AFTER
    return seconds


def as_transient(exc: BaseException) -> TransientFailure:
    """``exc`` as a :class:`TransientFailure` that survives Nameko's RPC serialization."""
    if isinstance(exc, TransientFailure):
        return exc
    return TransientFailure(f"{type(exc).__name__}: {exc}"[:500])


def backoff(attempt: int, base: float = 0.5, cap: float = 10.0) -> float:
    """The pause before try number ``attempt + 1`` (``attempt`` failures so far): doubling, capped."""
    return min(cap, base * 2.0 ** max(0, attempt - 1))


class CircuitOpen(DependencyUnavailable):
    """Refused at once: the dependency failed a moment ago."""


class Circuit:
    """Fail fast while a dependency is down.

    ``call(fn, ...)`` runs ``fn`` under a deadline of ``timeout`` seconds. A transient
    failure (or the deadline) opens the circuit for ``open_seconds``: calls in that
    time raise :class:`CircuitOpen` at once, so callers answer 503 in milliseconds
    instead of each holding a worker for the whole timeout. The first call after that
    goes through again (half-open): success closes the circuit, failure opens it anew.
    Permanent errors (a domain refusal from the dependency) pass through and leave the
    circuit closed: the dependency did answer.
    """

    def __init__(self, name: str, *, timeout: float = 3.0, open_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.timeout = timeout
        self.open_seconds = open_seconds
        self.clock = clock
        self.open_until = 0.0
        self.tripped = False

    @property
    def is_open(self) -> bool:
        return self.clock() < self.open_until

    def _refusal(self, detail: str) -> DependencyUnavailable:
        wait = max(1, round(self.open_until - self.clock()))
        return CircuitOpen(f"the {self.name} service is unavailable ({detail}), try again shortly", wait)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, or :class:`DependencyUnavailable` fast."""
        if self.is_open:
            raise self._refusal("circuit open")
        if self.tripped:
            # Half-open: this call tries the dependency; the others are refused meanwhile
            # rather than each waiting for the timeout again.
            self.open_until = self.clock() + self.timeout
        try:
            with eventlet.Timeout(self.timeout):
                result = fn(*args, **kwargs)
        except eventlet.Timeout:
            self.trip("no answer in time")
            raise self._refusal(f"no answer in {self.timeout:g} s") from None
        except BaseException as exc:
            if is_transient(exc):
                self.trip(f"{type(exc).__name__}: {exc}")
                raise self._refusal(type(exc).__name__) from exc
            if self.tripped:
                self.close()  # it answered (with a refusal): it is up
            raise
        self.close()
        return result

    def trip(self, why: str) -> None:
        """Open the circuit for ``open_seconds``."""
        log.warning("circuit opened", dependency=self.name, why=why, seconds=self.open_seconds)
        self.tripped = True
        self.open_until = self.clock() + self.open_seconds

    def close(self) -> None:
        if self.tripped:
            log.info("circuit closed", dependency=self.name)
        self.tripped = False
        self.open_until = 0.0


_circuits: dict[tuple[str, str], Circuit] = {}


def circuit(service: str) -> Circuit:
    """The process's circuit for calls to ``service`` over the configured broker
    (Nameko's ``AMQP_URI``): ``RPC_TIMEOUT`` seconds per call (default 3), open
    ``CIRCUIT_OPEN_SECONDS`` (default 5) after a failure."""
    from nameko import config

    key = (str(config.get("AMQP_URI", "")), service)
    if key not in _circuits:
        _circuits[key] = Circuit(service, timeout=float(os.environ.get("RPC_TIMEOUT", "3")),
                                 open_seconds=float(os.environ.get("CIRCUIT_OPEN_SECONDS", "5")))
    return _circuits[key]
