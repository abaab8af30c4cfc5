"""PostgreSQL access through psycopg 3, safe under eventlet.

psycopg's default C wait function blocks eventlet's hub (five concurrent one-second
queries take five seconds); ``wait_selector`` goes through ``select``, which eventlet
patches. It must be chosen before psycopg is first imported, so every entry point
imports this module first (after ``eventlet.monkey_patch()``). Entry points that run
under eventlet then call ``use_eventlet_wait()``, a cheaper wait on the hub itself.
"""

from __future__ import annotations

import os

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_selector")

from time import monotonic  # noqa: E402
from typing import Any, TypeAlias  # noqa: E402

import eventlet  # noqa: E402
import psycopg  # noqa: E402
from eventlet.green import select as green_select  # noqa: E402
from eventlet.hubs import trampoline  # noqa: E402
from psycopg import sql, waiting  # noqa: E402
from psycopg.rows import DictRow, dict_row  # noqa: E402
from psycopg.waiting import READY_NONE, READY_R, READY_W, WAIT_R, WAIT_W  # noqa: E402
from psycopg_pool import ConnectionPool  # noqa: E402

from shared.config import database_name, with_database  # noqa: E402

# Every connection here gives rows as dictionaries (``connect``, ``create_pool``): code
# annotates with these so the type checker knows ``row["column"]`` is right.
Connection: TypeAlias = psycopg.Connection[DictRow]
Pool: TypeAlias = ConnectionPool[Connection]


def wait_eventlet(gen: Any, fileno: int, interval: float = 0.0, timeout: float | None = None) -> Any:
    """psycopg's wait function on eventlet's hub directly (``trampoline``).

    ``wait_selector`` is correct under eventlet too, but builds a selector and a green
    ``select`` per wait; this is the same loop with a fraction of the work per query.
    """
    deadline = monotonic() + timeout if timeout is not None else None
    try:
        state = next(gen)
        while True:
            wait = interval if deadline is None else max(0.0, min(interval, deadline - monotonic()))
            try:
                if state == WAIT_R:
                    trampoline(fileno, read=True, timeout=wait or None)
                    ready: int = READY_R
                elif state == WAIT_W:
                    trampoline(fileno, write=True, timeout=wait or None)
                    ready = READY_W
                else:  # both: rare (a large query while the server talks); green select
                    readable, writable, _ = green_select.select([fileno], [fileno], [], wait or None)
                    ready = (READY_R if readable else READY_NONE) | (READY_W if writable else READY_NONE)
            except eventlet.Timeout:
                ready = READY_NONE
            state = gen.send(ready)
            if deadline is not None and monotonic() >= deadline:
                raise psycopg.errors._WaitTimeout("wait timeout expired")
    except StopIteration as stop:
        return stop.value


def use_eventlet_wait() -> None:
    """Make psycopg wait through eventlet's hub (call after ``eventlet.monkey_patch()``)."""
    waiting.wait = wait_eventlet


def connect(url: str, **kwargs: Any) -> Connection:
    """A plain connection whose rows are dictionaries."""
    return psycopg.connect(url, row_factory=dict_row, **kwargs)


# A request waits this long for a free pooled connection (``DB_POOL_TIMEOUT``), and a new
# connection this long for the server (``DB_CONNECT_TIMEOUT``): during an outage a
# request fails fast with a transient error (503) instead of holding a worker for 30 s.
POOL_TIMEOUT_SECONDS = float(os.environ.get("DB_POOL_TIMEOUT", "5"))
CONNECT_TIMEOUT_SECONDS = int(os.environ.get("DB_CONNECT_TIMEOUT", "5"))


def create_pool(url: str, *, min_size: int = 2, max_size: int = 10, name: str = "guichet") -> Pool:
    """An opened pool of autocommit connections whose rows are dictionaries.

    Autocommit: a single statement needs no BEGIN/COMMIT round trips; code that needs
    several statements to be atomic says so with ``conn.transaction()``.

    Each connection is checked as it leaves the pool (an empty query): one that died
    while idle (a PostgreSQL restart, a failover, an idle reaper, ``pg_terminate_backend``)
    is thrown away and replaced, instead of failing the next request that takes it.
    """
    pool: Pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        # application_name: operators see in pg_stat_activity which service holds what.
        kwargs={"row_factory": dict_row, "autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "application_name": f"guichet-{name}"},
        check=ConnectionPool.check_connection,
        timeout=POOL_TIMEOUT_SECONDS,
        open=False,
    )
    pool.open(wait=True, timeout=30)
    return pool


def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it does not exist; True if created."""
    name = database_name(url)
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def drop_database(url: str) -> None:
    """Drop the database named in ``url`` (tests only), closing its sessions first."""
    name = database_name(url)
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
