"""The attachments Nameko service: uploads and downloads over HTTP (``http``), claims
over RPC for the tickets service, and the ticket events that settle a file's fate.

How a file joins a ticket: the tickets service ``claim``s the upload for the ticket
(checked here: it exists, the caller uploaded it, it is on no other ticket; claiming
again for the same ticket is a no-op), then appends ``AttachmentAdded``. This service
consumes ``AttachmentAdded`` (the claim is confirmed) and ``AttachmentRemoved`` (the
blob is deleted unless another upload shares it) from a durable queue on
``tickets.events``, idempotently; a message it can never read goes to the dead-letter
queue ``attachments.ticket-events.dead-letters`` (``shared.consumer``). A claim whose
``AttachmentAdded`` never came (a crash in between) blocks nothing: the same ticket may
claim it again at once, another once the claim's lease has passed, and the sweep
settles it with the tickets service.

Who may download is not copied here: the tickets service, which owns the rules (who
sees the ticket, internal files for managers and admins), answers per download
(``attachment_access``), from its read model updated in the same transaction as the
append, so a file is downloadable the moment it is attached and not a moment after it
is removed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import eventlet
import structlog
from nameko.exceptions import RemoteError, UnknownService
from nameko.timer import timer

from services.attachments.errors import EXPECTED
from services.attachments.http import RPC_TIMEOUT, AttachmentsBackend, AttachmentsHttp
from services.attachments.records import as_uuid
from shared import contract  # noqa: F401  (registers the tickets' errors: they come back typed)
from shared.consumer import consume_ticket_events
from shared.nameko_deps import DatabasePool, ServiceRpc, rpc

log = structlog.stdlib.get_logger("guichet.attachments")

ACTOR = {"id": "system:attachments", "name": "attachments", "kind": "system"}
SWEEP_INTERVAL_SECONDS = 600
VISIBILITIES = ("public", "internal")

EVENT_TYPES = ("AttachmentAdded", "AttachmentRemoved")


class UnreadableEvent(ValueError):
    """An attachment event this service can never handle: it is dead-lettered."""


class AttachmentsService(AttachmentsHttp):
    name = "attachments"

    backend: AttachmentsBackend = DatabasePool(AttachmentsBackend)
    tickets = ServiceRpc("tickets")

    # -- RPC for the tickets service

    @rpc(expected_exceptions=EXPECTED)
    def claim(self, actor: dict[str, Any], attachment_id: str, ticket_id: str, visibility: str = "public",
              take_over_from: str | None = None) -> dict[str, Any]:
        """Reserve ``actor``'s upload for ``ticket_id``; its ``{"id", "filename", "size",
        "content_type", "sha256"}`` to record in ``AttachmentAdded``."""
        with structlog.contextvars.bound_contextvars(ticket_id=ticket_id):
            return self.backend.records.claim(
                _actor_id(actor), attachment_id, ticket_id,
                visibility if visibility in VISIBILITIES else "public", take_over_from,
            )

    @rpc(expected_exceptions=EXPECTED)
    def release(self, actor: dict[str, Any], attachment_id: str, ticket_id: str) -> bool:
        """Give up a claim the ticket refused; True if there was one to give up."""
        with structlog.contextvars.bound_contextvars(ticket_id=ticket_id):
            return self.backend.records.release(_actor_id(actor), attachment_id, ticket_id)

    # -- ticket events

    @consume_ticket_events("attachments", EVENT_TYPES, expected_exceptions=(UnreadableEvent,))
    def on_ticket_event(self, message: dict[str, Any]) -> None:
        """Requeued on a transient error (the database may be down for a while); a
        message that can never be read goes to the dead-letter queue."""
        try:
            event_type, event_id = message["event_type"], message["event_id"]
            ticket_id, data = message["ticket"]["id"], message["data"]
            attachment_id, at = data["attachment_id"], datetime.fromisoformat(message["occurred_at"])
            if as_uuid(event_id) is None:
                raise ValueError(f"event_id {event_id!r} is not a uuid")
        except (KeyError, TypeError, ValueError) as exc:
            raise UnreadableEvent(f"unreadable attachment event: {exc!r}") from None
        with structlog.contextvars.bound_contextvars(
            ticket_id=ticket_id, event_type=event_type, correlation_id=message.get("correlation_id")
        ):
            if event_type == "AttachmentAdded":
                visibility = data.get("visibility") if data.get("visibility") in VISIBILITIES else "public"
                self.backend.records.on_added(event_id, ticket_id, attachment_id, visibility, at)
            elif event_type == "AttachmentRemoved":
                self.backend.records.on_removed(event_id, ticket_id, attachment_id, at)

    # -- the sweep of files never attached

    @timer(interval=SWEEP_INTERVAL_SECONDS)
    def sweep_unattached(self) -> dict[str, int]:
        return self.backend.records.sweep(self._attached)

    def _attached(self, ticket_id: str, attachment_id: str) -> bool | None:
        try:
            with eventlet.Timeout(RPC_TIMEOUT):
                return bool(self.tickets.attachment_access(ACTOR, ticket_id, attachment_id)["attached"])
        except (UnknownService, RemoteError, eventlet.Timeout) as exc:
            log.warning("the tickets service did not answer; the claim waits", ticket_id=ticket_id,
                        attachment_id=attachment_id, error=repr(exc))
            return None


def _actor_id(actor: Any) -> str:
    if not isinstance(actor, dict) or not isinstance(actor.get("id"), str) or not actor["id"]:
        raise ValueError("actor must be a dict with an id")
    return actor["id"]
