"""``Idempotency-Key``: the one mechanism every service's ``POST`` and ``PUT`` honours
(``API.md``, "Errors"): per caller, a repeat returns the first answer and changes
nothing; the same key with another request is 422.

The fingerprint of a request is the same everywhere: the action, what it acts on, and
its validated arguments (``fingerprint``). The tickets service records the key in the
transaction that appends the events (``services.tickets.commands``); the other services
keep their first answers in ``<schema>.idempotency_keys`` through ``Responses``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import structlog
from psycopg import sql
from psycopg.types.json import Jsonb
from werkzeug.wrappers import Request, Response

from shared.db import Connection
from shared.web import HttpProblem

log = structlog.stdlib.get_logger("guichet.idempotency")

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200
# The headers of a first answer that a repeat gives back too.
KEPT_HEADERS = ("Content-Type", "Location", "ETag")


class IdempotencyKeyReused(Exception):
    """The same idempotency key was sent with a different request (HTTP 422)."""


def fingerprint(action: str, target: object, args: Any) -> str:
    """What makes two requests the same: the action, what it acts on, its arguments."""
    text = json.dumps([action, str(target), args], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def key_of(request: Request) -> str | None:
    """The request's ``Idempotency-Key``, if any; 400 when it is not 1 to 200 characters."""
    key = request.headers.get(HEADER)
    if key is not None and not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise HttpProblem(400, f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters")
    return key


def reused_problem() -> HttpProblem:
    return HttpProblem(422, f"this {HEADER} was already used with another request",
                       {HEADER: ["send a new key for a new request"]})


class Responses:
    """First answers to keyed requests, in ``<schema>.idempotency_keys``.

    The key is claimed (a row without an answer) before the request is handled, so a
    twin arriving meanwhile is told to retry (409) instead of acting twice; the answer
    is stored once the request succeeded, and the claim dropped if it failed (a failed
    request changed nothing, so it may be sent again)."""

    def __init__(self, pool: Any, schema: str) -> None:
        self.pool = pool
        self.table = sql.Identifier(schema, "idempotency_keys")

    def run(self, request: Request, actor_id: str, action: str, target: object, args: Any,
            answer: Callable[[], Response]) -> Response:
        """``answer()``, or the first answer to this caller's key."""
        key = key_of(request)
        if key is None:
            return answer()
        signature = fingerprint(action, target, args)
        with self.pool.connection() as conn:
            claimed = conn.execute(
                sql.SQL("INSERT INTO {} (actor_id, key, fingerprint) VALUES (%s, %s, %s)"
                        " ON CONFLICT DO NOTHING RETURNING 1 AS claimed").format(self.table),
                (actor_id, key, signature),
            ).fetchone()
            if claimed is None:
                return self._replay(conn, actor_id, key, signature)
        try:
            response = answer()
        except BaseException:
            self._forget(actor_id, key)
            raise
        if not 200 <= response.status_code < 300:
            self._forget(actor_id, key)
            return response
        headers = {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers}
        with self.pool.connection() as conn:
            conn.execute(
                sql.SQL("UPDATE {} SET status = %s, body = %s, headers = %s WHERE actor_id = %s AND key = %s")
                .format(self.table),
                (response.status_code, response.get_data(), Jsonb(headers), actor_id, key),
            )
        return response

    def _replay(self, conn: Connection, actor_id: str, key: str, signature: str) -> Response:
        row = conn.execute(
            sql.SQL("SELECT fingerprint, status, body, headers FROM {} WHERE actor_id = %s AND key = %s")
            .format(self.table), (actor_id, key),
        ).fetchone()
        if row is None:  # the first request failed and let go of the key just now
            raise HttpProblem(409, f"a request with this {HEADER} was just handled; send it again")
        if row["fingerprint"] != signature:
            raise reused_problem()
        if row["status"] is None:
            raise HttpProblem(409, f"a request with this {HEADER} is being handled; try again shortly",
                              headers={"Retry-After": "1"})
        log.info("idempotent replay", idempotency_key=key)
        return Response(bytes(row["body"]), status=row["status"], headers=row["headers"])

    def _forget(self, actor_id: str, key: str) -> None:
        with self.pool.connection() as conn:
            conn.execute(sql.SQL("DELETE FROM {} WHERE actor_id = %s AND key = %s AND status IS NULL")
                         .format(self.table), (actor_id, key))
