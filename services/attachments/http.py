"""The attachments HTTP API (API.md, "Attachments"): upload and download.

Uploads are streamed from the socket to the blob store (``upload``); downloads are
streamed from the blob store to the socket, ``Content-Disposition: attachment`` with
the original name, the stored type and ``nosniff``. Who may download: the uploader
while the file is on no ticket; afterwards whoever the tickets service says may see
it on its ticket (internal files: managers and admins). Anyone else gets 404, as for
a file that does not exist.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from nameko import config
from nameko.exceptions import RemoteError
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from services.attachments import names, upload
from services.attachments.openapi import openapi_document
from services.attachments.records import AttachmentRecords, Uploader, public
from services.attachments.storage import LocalDirectoryStore
from shared.auth import Identity, TokenVerifier
from shared.config import Settings
from shared.failures import circuit
from shared.idempotency import Responses
from shared.web import ApiHandler, HttpProblem, ServiceProbes, json_response, readiness

log = structlog.stdlib.get_logger("guichet.attachments")

RPC_TIMEOUT = 15.0  # seconds to wait for the tickets service


class AttachmentsApiHandler(ApiHandler):
    errors = ()


http = AttachmentsApiHandler.decorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class AttachmentsBackend:
    """What the attachments service's workers get: identity, the blob store and the
    metadata. ``clock`` may be replaced (tests move it a day ahead)."""

    def __init__(self, pool: Any, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.pool = pool
        self.max_bytes = int(config.get("MAX_ATTACHMENT_BYTES") or self.settings.max_attachment_bytes)
        self.store = LocalDirectoryStore(config.get("ATTACHMENTS_DIR") or self.settings.attachments_dir)
        self.clock: Callable[[], datetime] = utcnow
        self.records = AttachmentRecords(pool, self.store, lambda: self.clock())
        self.responses = Responses(pool, "attachments")
        self.verifier = TokenVerifier(self.settings)

    def identity(self, request: Request) -> Identity:
        return self.verifier.verify(request.headers.get("Authorization"))

    def ready(self) -> dict[str, str]:
        checks = readiness(self.pool, config.get("AMQP_URI") or self.settings.amqp_uri)
        writable = os.access(self.store.tmp_dir, os.W_OK) and os.access(self.store.blob_dir, os.W_OK)
        checks["storage"] = "ok" if writable else "not writable"
        return checks


def actor_of(identity: Identity) -> dict[str, Any]:
    """The caller as the tickets service's RPC expects an actor."""
    return {"id": identity.login, "name": identity.name, "email": identity.email, "kind": "user",
            "admin": identity.is_admin, "establishment": identity.establishment}


def call_tickets(method: Callable[..., Any], *args: Any) -> Any:
    """An RPC to the tickets service; 503 + Retry-After at once when it does not answer."""
    return circuit("tickets").call(method, *args)


class AttachmentsHttp(ServiceProbes):
    """HTTP entrypoints of the attachments service (mixed into ``AttachmentsService``)."""

    backend: AttachmentsBackend
    tickets: Any

    openapi_document = staticmethod(openapi_document)

    @http("POST", "/api/v1/attachments")
    def upload_file(self, request: Request) -> Response:
        identity = self.backend.identity(request)  # 401 before a byte of the body is read
        boundary = upload.boundary_of(request.mimetype, request.mimetype_params)
        received = upload.receive(
            request.stream,  # type: ignore[arg-type]  # werkzeug types it IO[bytes]
            boundary, request.content_length, self.backend.store, self.backend.max_bytes,
        )

        def keep() -> Response:
            row = self.backend.records.add(
                received.writer, uploader=Uploader(identity.login, identity.name),
                filename=received.filename, content_type=received.verdict.content_type,
            )
            log.info("file uploaded", attachment_id=str(row["id"]), size=row["size"],
                     content_type=row["content_type"], uploader=identity.login)
            return json_response(public(row), 201, {"Location": f"/api/v1/attachments/{row['id']}"})

        # A repeated upload (same key, same file) answers the first one and keeps nothing new.
        sent = {"filename": received.filename, "sha256": received.writer.sha256()}
        try:
            return self.backend.responses.run(request, identity.login, "upload", None, sent, keep)
        finally:
            received.writer.abort()  # no-op once kept: the temporary file was renamed

    @http("GET", "/api/v1/attachments/<attachment_id>")
    def download_file(self, request: Request, attachment_id: str) -> Response:
        identity = self.backend.identity(request)
        row = self.backend.records.get(attachment_id)
        if row is None or row["removed_at"] is not None or not self._may_download(identity, row):
            raise HttpProblem(404, f"no attachment {attachment_id!r}")
        try:
            blob = self.backend.store.open(row["sha256"])
        except FileNotFoundError:
            log.error("blob missing", attachment_id=str(row["id"]), sha256=row["sha256"])
            raise HttpProblem(404, f"no attachment {attachment_id!r}") from None
        headers = {
            "Content-Length": str(row["size"]),
            "Content-Disposition": names.content_disposition(row["filename"]),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-cache",
            "ETag": f'"{row["sha256"]}"',
        }
        body = wrap_file(request.environ, blob, upload.CHUNK)
        return Response(body, 200, headers, content_type=row["content_type"], direct_passthrough=True)

    def _may_download(self, identity: Identity, row: dict[str, Any]) -> bool:
        uploader = row["uploader_id"] == identity.login
        if row["ticket_id"] is None:
            return uploader
        with structlog.contextvars.bound_contextvars(ticket_id=str(row["ticket_id"])):
            try:
                access = call_tickets(self.tickets.attachment_access, actor_of(identity), str(row["ticket_id"]),
                                      str(row["id"]))
            except RemoteError as exc:
                log.error("the tickets service could not say who may download", error=str(exc))
                raise HttpProblem(503, "the tickets service could not answer, try again shortly") from None
        if access["attached"]:
            return bool(access["visible"])
        # Claimed but not (yet, or ever) on the ticket: still the uploader's alone.
        return uploader and row["attached_at"] is None
