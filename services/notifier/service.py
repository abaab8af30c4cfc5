"""The notifier Nameko service: turns every ticket event into news-feed entries and
emails (``WORKFLOW.md``, "Who hears about what"), and serves the feed and preferences.

- ``on_ticket_event`` consumes ``tickets.events`` (queue ``notifier.ticket-events``, with
  a dead-letter queue: ``shared.consumer``); each event is handled once
  (``notifier.processed_events``, in the transaction that writes its feed entries and
  queues its emails: ``services.notifier.notifications``).
- ``on_catalogue_changed`` keeps the copy of routing's teams and managers.
- ``sender`` delivers the queued emails in a managed green thread
  (``services.notifier.sender``).

Configuration (Nameko config, else the environment): ``SMTP_URL`` (unset: ``.eml`` files
under ``MAIL_DIR``, default ``var/mail``), ``PUBLIC_URL``, ``MAIL_FROM``, and for the
sender ``NOTIFIER_POLL_INTERVAL`` (s, default 5), ``NOTIFIER_RETRY_BASE`` (s, 5),
``NOTIFIER_RETRY_MAX`` (s, 900), ``NOTIFIER_MAX_ATTEMPTS`` (100).
"""

from __future__ import annotations

import os
from typing import Any

import structlog
from nameko import config
from nameko.events import event_handler
from nameko.extensions import DependencyProvider

from services.notifier import storage
from services.notifier.http import NotifierBackend, NotifierHttp
from services.notifier.mail import MailRenderer
from services.notifier.notifications import PoisonMessage, handle_ticket_event, parse_envelope
from services.notifier.sender import MailSender, transport_for
from shared.catalogue_copy import REVISION_SQL
from shared.config import Settings
from shared.consumer import consume_ticket_events
from shared.nameko_deps import CatalogueRequest, DatabasePool

log = structlog.stdlib.get_logger("guichet.notifier")


def _setting(name: str, default: Any = None) -> Any:
    """A Nameko config value, else the environment's, else ``default`` (an empty
    ``SMTP_URL`` in the config means: no SMTP, write files)."""
    if name in config:
        return config[name]
    return os.environ.get(name, default)


class MailSenderRunner(DependencyProvider):
    """Runs the delivery loop in a managed green thread while the service runs; every
    replica runs one, and they share the queue safely (``FOR NO KEY UPDATE SKIP LOCKED``)."""

    def __init__(self) -> None:
        self.sender: MailSender | None = None

    def setup(self) -> None:
        settings = Settings.from_env()
        smtp_url = _setting("SMTP_URL", settings.smtp_url) or None
        transport = transport_for(smtp_url, _setting("MAIL_DIR", "var/mail"))
        public_url = _setting("PUBLIC_URL", settings.public_url)
        self.sender = MailSender(
            config["DATABASE_URL"], transport, MailRenderer(public_url, _setting("MAIL_FROM")).sender,
            poll_interval=float(_setting("NOTIFIER_POLL_INTERVAL", 5.0)),
            retry_base=float(_setting("NOTIFIER_RETRY_BASE", 5.0)),
            retry_max=float(_setting("NOTIFIER_RETRY_MAX", 900.0)),
            max_attempts=int(_setting("NOTIFIER_MAX_ATTEMPTS", 100)),
        )
        log.info("email delivery", smtp=smtp_url.split("@")[-1] if smtp_url else None,
                 files=None if smtp_url else str(_setting("MAIL_DIR", "var/mail")))

    def start(self) -> None:
        assert self.sender is not None
        self.container.spawn_managed_thread(self.sender.run, identifier="mail_sender")

    def stop(self) -> None:
        if self.sender is not None:
            self.sender.stop()

    def kill(self) -> None:
        if self.sender is not None:
            self.sender.stop(timeout=0)

    def get_dependency(self, worker_ctx: Any) -> MailSender | None:
        return self.sender


class NotifierService(NotifierHttp):
    name = "notifier"

    backend: NotifierBackend = DatabasePool(NotifierBackend)
    sender = MailSenderRunner()
    # Routing announces its teams again if this copy missed the last announcement.
    catalogue_request = CatalogueRequest(REVISION_SQL.format(schema="notifier"))

    @consume_ticket_events("notifier", expected_exceptions=(PoisonMessage,))
    def on_ticket_event(self, body: Any) -> None:
        event = parse_envelope(body)
        with structlog.contextvars.bound_contextvars(
            ticket_id=event.ticket["id"], event_type=event.event_type, event_id=event.event_id,
            correlation_id=event.correlation_id,
        ):
            with self.backend.pool.connection() as conn:
                handle_ticket_event(conn, event, self.backend.renderer)

    @event_handler("routing", "CatalogueChanged", requeue_on_error=True)
    def on_catalogue_changed(self, snapshot: dict[str, Any]) -> None:
        with self.backend.pool.connection() as conn:
            storage.apply_snapshot(conn, snapshot)
