"""Delivering queued emails: through SMTP (``SMTP_URL``), or as ``.eml`` files under
``var/mail/`` when no SMTP server is configured.

Each email is claimed in its own transaction (``SELECT ... FOR NO KEY UPDATE SKIP
LOCKED``: the variant of ``FOR UPDATE`` that still lets the attempt log, which references
the row, be written), so several senders (replicas) never take the same row; it is sent
while the row stays locked, and marked sent in that same transaction. A server that is down, or answers
4xx, makes the email wait (exponential backoff) and try again; a 5xx answer is final:
the email is marked failed and keeps the server's error.

The one window that cannot be closed: the SMTP server accepted the message (its 250
reply to DATA) and the sender dies, or loses PostgreSQL, before the COMMIT that marks
the row sent. The row is then still pending and the email goes out a second time. The
window is kept as short as it can be: nothing but the UPDATE and the COMMIT stand between
the 250 and the end of the transaction (no QUIT, no logging, no other row), and stopping
the service waits for the email in flight to be committed. Such a resend is
recognisable: it carries the same ``Message-ID`` (mail clients and many servers drop a
message whose id they have seen), and the attempt that was cut short stays in
``notifier.delivery_attempts`` without an outcome, so the sender logs the resend as a
possible duplicate. A file written in place of SMTP has the key in its name and is
overwritten, so it is never doubled.

One SMTP connection sends some 30-40 emails a second, so the sender runs
``SMTP_CONNECTIONS`` delivery loops (default 4), each with its own SMTP connection and
its own PostgreSQL connections (two: the claim's transaction, the attempt log). They
share the queue exactly as replicas do: each email is claimed with ``SKIP LOCKED`` and
marked sent in its claim's transaction, so no two loops ever send the same one, and the
window above stays one email wide per loop.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import eventlet
import psycopg
import structlog
from eventlet.greenpool import GreenPool
from eventlet.semaphore import Semaphore

from services.notifier.storage import EMAILS_CHANNEL
from shared import db, tracing

log = structlog.stdlib.get_logger("guichet.notifier.sender")


class TransientFailure(Exception):
    """Try again later: the server is unreachable, or answered 4xx."""


class PermanentFailure(Exception):
    """Never try again: the server answered 5xx."""


class Transport(Protocol):
    def send(self, sender: str, recipient: str, message_id: str, raw: bytes) -> None:
        """Hand one message over; raises TransientFailure or PermanentFailure."""

    def close(self) -> None:
        """Let the connection go (the sender is idle)."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: bool = False  # smtps:// (TLS from the start)
    username: str | None = None
    password: str | None = None
    starttls: bool = False  # smtp+starttls:// (STARTTLS required before anything is sent)
    ca_file: str | None = None  # SMTP_CA_FILE: trust this CA (a private relay's) instead of the system's

    @classmethod
    def from_url(cls, url: str, ca_file: str | None = None) -> SmtpSettings:
        """``smtp://host:port``, ``smtps://`` (TLS, port 465) or ``smtp+starttls://``
        (port 587, STARTTLS required), optionally with ``user:password@``."""
        parts = urlsplit(url)
        schemes = {"smtp": 25, "smtps": 465, "smtp+starttls": 587}
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"SMTP_URL must look like smtp://host:port (or smtps://, smtp+starttls://), not {url!r}")
        username = unquote(parts.username) if parts.username else None
        if username and parts.scheme == "smtp":
            # AUTH would send the password in clear: refuse it up front.
            raise ValueError("SMTP_URL has a user and password: use smtp+starttls:// or smtps:// to send them")
        return cls(parts.hostname, parts.port or schemes[parts.scheme], parts.scheme == "smtps", username,
                   unquote(parts.password) if parts.password else None, parts.scheme == "smtp+starttls",
                   ca_file or os.environ.get("SMTP_CA_FILE") or None)

    def tls_context(self) -> ssl.SSLContext:
        """Certificates verified, against ``ca_file`` if set, else the system's CAs."""
        return ssl.create_default_context(cafile=self.ca_file)


class StartTlsRefused(TransientFailure):
    """The server offers no STARTTLS (or it failed): nothing is sent in clear, the
    email waits and is tried again."""


class SmtpTransport:
    """One SMTP connection, opened on the first message and kept while there is work."""

    def __init__(self, settings: SmtpSettings, timeout: float = 30.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self.client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=self.timeout, context=s.tls_context())
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=self.timeout)
        if s.starttls:
            try:
                client.ehlo()
                if not client.has_extn("starttls"):
                    raise StartTlsRefused(f"{s.host}:{s.port} offers no STARTTLS; nothing sent in clear")
                client.starttls(context=s.tls_context())
                client.ehlo()
            except StartTlsRefused:
                client.close()
                raise
            except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
                client.close()
                raise StartTlsRefused(f"STARTTLS with {s.host}:{s.port} failed: {type(exc).__name__}: {exc}") from None
        if s.username:
            client.login(s.username, s.password or "")
        return client

    def send(self, sender: str, recipient: str, message_id: str, raw: bytes) -> None:
        try:
            if self.client is None:
                self.client = self._connect()
            refused = self.client.sendmail(sender, [recipient], raw)
        except smtplib.SMTPAuthenticationError as exc:  # wrong credentials: fixable, so the email waits
            self._drop()
            raise TransientFailure(f"SMTP authentication refused: {exc.smtp_code} {exc.smtp_error!r}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            self._drop()
            code, answer = next(iter(exc.recipients.values()))
            raise _by_code(code, answer) from None
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, 4xx/5xx
            self._drop()
            raise _by_code(exc.smtp_code, exc.smtp_error) from None
        except StartTlsRefused:
            self._drop()
            raise
        except (smtplib.SMTPException, OSError) as exc:  # unreachable, disconnected, timed out
            self._drop()
            raise TransientFailure(f"{type(exc).__name__}: {exc}") from None
        if refused:  # one recipient only: refused means this one
            code, answer = next(iter(refused.values()))
            raise _by_code(code, answer)

    def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except OSError:
                pass

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()

    def clone(self) -> SmtpTransport:
        """Another transport to the same server, with a connection of its own."""
        return SmtpTransport(self.settings, self.timeout)


def _by_code(code: int, answer: bytes | str) -> Exception:
    text = answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer)
    error = f"{code} {text}"
    return PermanentFailure(error) if 500 <= code < 600 else TransientFailure(error)


class FileTransport:
    """Writes each message to ``<directory>/<message id>.eml`` (no SMTP server set up).

    The file is written whole, then renamed: a reader never sees half of one, and a
    second delivery of the same key overwrites the same file.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, sender: str, recipient: str, message_id: str, raw: bytes) -> None:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", message_id.strip("<>")) + ".eml"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / f".{name}.tmp"
            temporary.write_bytes(raw)
            os.replace(temporary, self.directory / name)
        except OSError as exc:
            raise TransientFailure(f"cannot write {name}: {exc}") from None

    def close(self) -> None:
        return None

    def clone(self) -> FileTransport:
        return self  # no connection: one writer per file name is all it needs


def transport_for(smtp_url: str | None, mail_dir: str | Path) -> Transport:
    if smtp_url:
        return SmtpTransport(SmtpSettings.from_url(smtp_url))
    return FileTransport(Path(mail_dir))


def backoff_seconds(attempts: int, base: float, ceiling: float) -> float:
    """How long an email waits after its ``attempts``-th failure: base, 2·base, 4·base..."""
    return min(ceiling, base * 2 ** max(0, attempts - 1))


class MailSender:
    """The delivery loop: woken by NOTIFY when emails are queued, else every
    ``poll_interval`` seconds, and when the next retry is due."""

    def __init__(
        self,
        database_url: str,
        transport: Transport,
        sender: str,
        *,
        poll_interval: float = 5.0,
        retry_base: float = 5.0,
        retry_max: float = 900.0,
        max_attempts: int = 100,
        sleep: Callable[[float], None] = eventlet.sleep,
        connections: int | None = None,
    ) -> None:
        self.database_url = database_url
        self.transport = transport
        self.sender = _envelope_sender(sender)
        self.poll_interval = poll_interval
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.max_attempts = max_attempts
        self.sleep = sleep
        self._stopping = False
        # A transport without ``clone`` (a test's) cannot be multiplied: one loop then.
        wanted = connections if connections is not None else smtp_connections()
        self.connections = wanted if hasattr(transport, "clone") else 1
        # One unit per loop, held while its email is between claim and commit.
        self._in_flight = Semaphore(self.connections)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the emails in flight, if any, are committed (shrinks the window)."""
        self._stopping = True
        held = 0
        deadline = time.monotonic() + timeout
        while held < self.connections and self._in_flight.acquire(timeout=max(0.0, deadline - time.monotonic())):
            held += 1
        for _ in range(held):
            self._in_flight.release()

    def run(self) -> None:
        """Deliver until ``stop()`` with ``connections`` loops; survives PostgreSQL
        outages by reconnecting."""
        if self.connections == 1:
            self._loop(self.transport)
            return
        transports = [self.transport] + [self.transport.clone() for _ in range(self.connections - 1)]
        loops = GreenPool(self.connections)
        try:
            for transport in transports:
                loops.spawn(self._loop, transport)
            loops.waitall()
        finally:  # killed with the service: the loops go too
            for loop in list(loops.coroutines_running):
                loop.kill()

    def _loop(self, transport: Transport) -> None:
        pause = 0.5
        while not self._stopping:
            try:
                with db.connect(self.database_url, autocommit=True, application_name="guichet-notifier-sender") as conn, \
                        db.connect(self.database_url, autocommit=True) as log_conn:
                    conn.execute(f"LISTEN {EMAILS_CHANNEL}")
                    pause = 0.5
                    while not self._stopping:
                        self.deliver_due(conn, log_conn, transport)
                        transport.close()
                        for _ in conn.notifies(timeout=self._idle_wait(conn), stop_after=1):
                            pass
            except psycopg.OperationalError as exc:
                log.warning("sender lost the database, retrying", error=str(exc), retry_in=pause)
                self.sleep(pause)
                pause = min(pause * 2, 10.0)

    def _idle_wait(self, conn: psycopg.Connection) -> float:
        row = conn.execute(
            "SELECT EXTRACT(EPOCH FROM min(next_attempt_at) - clock_timestamp()) AS wait FROM notifier.emails"
            " WHERE status = 'pending'"
        ).fetchone()
        wait = row["wait"] if row and row["wait"] is not None else self.poll_interval
        return max(0.01, min(float(wait), self.poll_interval))

    def deliver_due(self, conn: psycopg.Connection, log_conn: psycopg.Connection,
                    transport: Transport | None = None) -> int:
        """Deliver every email due now, one transaction each; returns how many were tried."""
        tried = 0
        while not self._stopping:
            with self._in_flight:
                if not self._deliver_one(conn, log_conn, transport or self.transport):
                    return tried
            tried += 1
        return tried

    def _deliver_one(self, conn: psycopg.Connection, log_conn: psycopg.Connection, transport: Transport) -> bool:
        with conn.transaction():
            # NO KEY UPDATE: as exclusive between senders as FOR UPDATE, but lets the
            # attempt's row (which references this one) be committed from log_conn.
            row = conn.execute(
                "SELECT id, event_id, ticket_id, recipient_id, to_address, message_id, message, attempts, traceparent"
                " FROM notifier.emails"
                " WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()"
                " ORDER BY next_attempt_at, id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED"
            ).fetchone()
            if row is None:
                return False
            attempt = self._start_attempt(log_conn, row)
            try:
                with tracing.span("smtp send", kind=tracing.SpanKind.CLIENT, parent=row["traceparent"],
                                  attributes={"guichet.email_id": row["id"], "guichet.attempt": attempt,
                                              "guichet.event_id": str(row["event_id"])}):
                    transport.send(self.sender, row["to_address"], row["message_id"], bytes(row["message"]))
            except PermanentFailure as exc:
                outcome, error = "failed", str(exc)
            except TransientFailure as exc:
                outcome, error = ("failed", f"gave up after {attempt} attempts: {exc}") \
                    if attempt >= self.max_attempts else ("retry", str(exc))
            else:
                # Accepted: only this UPDATE and the COMMIT remain (see the module's docstring).
                conn.execute(
                    "WITH attempt AS (UPDATE notifier.delivery_attempts SET finished_at = clock_timestamp(),"
                    " outcome = 'sent' WHERE email_id = %(id)s AND attempt = %(attempt)s)"
                    " UPDATE notifier.emails SET status = 'sent', sent_at = clock_timestamp(), attempts = %(attempt)s,"
                    " last_error = NULL WHERE id = %(id)s",
                    {"id": row["id"], "attempt": attempt},
                )
                return True
            delay = backoff_seconds(attempt, self.retry_base, self.retry_max)
            conn.execute(
                "UPDATE notifier.emails SET status = %s, attempts = %s, last_error = %s,"
                " next_attempt_at = clock_timestamp() + make_interval(secs => %s) WHERE id = %s",
                ("failed" if outcome == "failed" else "pending", attempt, error[:2000], delay, row["id"]),
            )
            conn.execute(
                "UPDATE notifier.delivery_attempts SET finished_at = clock_timestamp(), outcome = %s, error = %s"
                " WHERE email_id = %s AND attempt = %s",
                (outcome, error[:2000], row["id"], attempt),
            )
        level = log.error if outcome == "failed" else log.warning
        level("email not delivered", email_id=row["id"], event_id=str(row["event_id"]), ticket_id=str(row["ticket_id"]),
              recipient=row["recipient_id"], attempt=attempt, outcome=outcome, error=error,
              retry_in=delay if outcome == "retry" else None)
        return True

    def _start_attempt(self, log_conn: psycopg.Connection, row: dict[str, Any]) -> int:
        """Write (and commit at once) that an attempt starts, and return its number; warn
        when an earlier one never finished, as the message may then already have been
        delivered. A cut-short attempt keeps its own row: the next one is numbered after it."""
        previous = log_conn.execute(
            "SELECT attempt, finished_at FROM notifier.delivery_attempts WHERE email_id = %s", (row["id"],),
        ).fetchall()
        cut_short = [r["attempt"] for r in previous if r["finished_at"] is None]
        if cut_short:
            log.warning("a previous attempt was cut short: this may deliver a duplicate",
                        email_id=row["id"], message_id=row["message_id"], attempts=cut_short)
            log_conn.execute(
                "UPDATE notifier.delivery_attempts SET finished_at = clock_timestamp(), error = 'cut short'"
                " WHERE email_id = %s AND finished_at IS NULL",
                (row["id"],),
            )
        attempt = max([row["attempts"], *(r["attempt"] for r in previous)]) + 1
        log_conn.execute(
            "INSERT INTO notifier.delivery_attempts (email_id, attempt) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (row["id"], attempt),
        )
        return attempt


def smtp_connections(env: dict[str, str] | None = None) -> int:
    """``SMTP_CONNECTIONS``: how many emails the notifier sends at once (default 4)."""
    value = (os.environ if env is None else env).get("SMTP_CONNECTIONS", "").strip() or "4"
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise ValueError(f"SMTP_CONNECTIONS must be a whole number from 1 to 64, not {value!r}")
    return int(value)


def _envelope_sender(sender: str) -> str:
    """The bare address of a From header (``Guichet <noreply@x>`` -> ``noreply@x``)."""
    match = re.search(r"<([^<>]+)>", sender)
    return match.group(1) if match else sender.strip()
